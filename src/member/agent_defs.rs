//! A container's probes and lifecycle hooks as the pod's agent runs them (its wire types, ports
//! resolved), and the agent's last probe result worth showing for a member.

use crate::agent::protocol::{HookDef, Hooks, ProbeAction, ProbeDef, ProbeKind, ProbeStatus};
use crate::manifest::Container;

/// A probe's or hook's action as the agent runs it (ports resolved; validation made sure they resolve).
fn action_of(
    container: &Container,
    http: Option<&crate::manifest::HttpGetAction>,
    tcp: Option<&crate::manifest::TcpSocketAction>,
    exec: Option<&crate::manifest::ExecAction>,
) -> Option<ProbeAction> {
    if let Some(http) = http {
        Some(ProbeAction::Http {
            host: http.host.clone(),
            port: http.port.resolve(container).unwrap_or_default(),
            path: if http.path.is_empty() {
                "/".into()
            } else {
                http.path.clone()
            },
            https: http.scheme.as_deref() == Some("HTTPS"),
            headers: http
                .http_headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        })
    } else if let Some(tcp) = tcp {
        Some(ProbeAction::Tcp {
            host: tcp.host.clone(),
            port: tcp.port.resolve(container).unwrap_or_default(),
        })
    } else {
        exec.map(|exec| ProbeAction::Exec {
            command: exec.command.clone(),
        })
    }
}

/// The container's `lifecycle` hooks as the agent runs them.
pub(crate) fn hook_defs(container: &Container) -> Hooks {
    let def = |handler: &Option<crate::manifest::LifecycleHandler>| {
        let handler = handler.as_ref()?;
        if let Some(sleep) = &handler.sleep {
            return Some(HookDef::Sleep {
                seconds: sleep.seconds.max(0) as u64,
            });
        }
        action_of(
            container,
            handler.http_get.as_ref(),
            handler.tcp_socket.as_ref(),
            handler.exec.as_ref(),
        )
        .map(HookDef::Action)
    };
    let lifecycle = container.lifecycle.clone().unwrap_or_default();
    Hooks {
        post_start: def(&lifecycle.post_start),
        pre_stop: def(&lifecycle.pre_stop),
    }
}

/// The container's probes as the agent runs them (ports resolved; validation made sure they resolve).
pub(crate) fn probe_defs(container: &Container) -> Vec<ProbeDef> {
    let mut defs = Vec::new();
    for (kind, probe) in [
        (ProbeKind::Startup, &container.startup_probe),
        (ProbeKind::Liveness, &container.liveness_probe),
        (ProbeKind::Readiness, &container.readiness_probe),
    ] {
        let Some(probe) = probe else { continue };
        let grpc = probe.grpc.as_ref().map(|grpc| ProbeAction::Grpc {
            port: u16::try_from(grpc.port).unwrap_or_default(),
            service: grpc.service.clone().unwrap_or_default(),
        });
        let Some(action) = grpc.or_else(|| {
            action_of(
                container,
                probe.http_get.as_ref(),
                probe.tcp_socket.as_ref(),
                probe.exec.as_ref(),
            )
        }) else {
            continue;
        };
        defs.push(ProbeDef {
            kind,
            action,
            initial_delay_seconds: probe.initial_delay_seconds,
            period_seconds: probe.period_seconds,
            timeout_seconds: probe.timeout_seconds,
            failure_threshold: probe.failure_threshold,
            success_threshold: probe.success_threshold,
        });
    }
    defs
}

/// The agent's last noteworthy probe result for a member, if any.
pub(crate) fn last_probe(probes: &[ProbeStatus], name: &str) -> Option<String> {
    probes
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.last.clone())
        .filter(|last| !last.is_empty())
}
