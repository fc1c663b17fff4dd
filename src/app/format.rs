//! What users read: kubectl-style tables, pod objects with status, `describe` text, ages.

use std::fmt::Write as _;
use std::io::Write as _;

/// Why a pod is `Unknown` after a host restart, and the fix.
pub const LOST_TO_RESTART: &str = "the host restarted: its sandbox, network and members are gone; `podctl system restore` brings it back (the systemd unit of `podctl system install` runs it at boot)";

use serde_json::{json, Value};

use crate::image::ImageInfo;
use crate::manifest::{Pod, PortRef, Probe};
use crate::pod::{node_name, now_secs, MemberState, MemberView, PodView, LABEL_INIT_STATUS};

/// kubectl's human durations: 45s, 3m12s, 47m, 5h3m, 2d4h, 400d, 3y.
pub fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    match s {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => match s % 60 {
            0 => format!("{m}m"),
            sec => format!("{m}m{sec}s"),
        },
        _ if h < 3 => format!("{m}m"),
        _ if h < 8 => match m % 60 {
            0 => format!("{h}h"),
            min => format!("{h}h{min}m"),
        },
        _ if h < 48 => format!("{h}h"),
        _ if h < 192 => match h % 24 {
            0 => format!("{d}d"),
            hr => format!("{d}d{hr}h"),
        },
        _ if d < 730 => format!("{d}d"),
        _ => format!("{}y", d / 365),
    }
}

pub(super) fn age(at: Option<f64>) -> String {
    at.map(|t| human_duration(now_secs() - t))
        .unwrap_or_else(|| "<unknown>".into())
}

pub(super) fn rfc3339(at: Option<f64>) -> Value {
    match at {
        Some(t) => {
            let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t);
            Value::String(humantime::format_rfc3339_seconds(time).to_string())
        }
        None => Value::Null,
    }
}

pub fn tabulate(rows: Vec<Vec<String>>) -> String {
    let mut writer = tabwriter::TabWriter::new(Vec::new()).padding(3);
    for row in rows {
        let _ = writeln!(writer, "{}", row.join("\t"));
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn pod_table(pods: &[PodView], wide: bool) -> String {
    tabulate(pod_rows(pods, wide))
}

/// The rows of `get pods`, the header first.
pub fn pod_rows(pods: &[PodView], wide: bool) -> Vec<Vec<String>> {
    let mut header = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if wide {
        header.extend(["IP", "NODE"]);
    }
    let node = node_name();
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for pod in pods {
        let mut row = vec![
            pod.name.clone(),
            format!("{}/{}", pod.ready_count(), pod.members.len()),
            pod.status(),
            restarts_text(pod),
            age(pod.created),
        ];
        if wide {
            row.push(pod.ip().unwrap_or_else(|| "<none>".into()));
            row.push(node.clone());
        }
        rows.push(row);
    }
    rows
}

/// kubectl's RESTARTS: `3 (20s ago)`.
fn restarts_text(pod: &PodView) -> String {
    match (pod.restarts(), pod.last_restart()) {
        (0, _) => "0".into(),
        (n, Some(at)) => format!("{n} ({} ago)", human_duration(now_secs() - at)),
        (n, None) => n.to_string(),
    }
}

pub fn images(images: &[ImageInfo]) -> String {
    let mut rows = vec![vec![
        "REF".into(),
        "DIGEST".into(),
        "SIZE".into(),
        "PLATFORMS".into(),
        "KIND".into(),
        "AGE".into(),
    ]];
    for image in images {
        rows.push(vec![
            image.name.clone(),
            image.digest.clone(),
            human_size(image.size),
            if image.platforms.is_empty() {
                "-".into()
            } else {
                image.platforms.join(",")
            },
            image.kind.as_str().into(),
            age(image.created),
        ]);
    }
    tabulate(rows)
}

/// `runtime ls`: podctl's member runtimes, then the runtime config's handlers.
/// `infos` are the registry's runtimes' own, in its order.
pub fn runtimes(registry: &crate::member::Registry, infos: &[crate::member::RuntimeInfo]) -> String {
    use crate::member::runtime_handlers::Handler;
    let mut rows = vec![vec!["NAME".into(), "KIND".into(), "RUNS".into(), "VERSION".into()]];
    for ((_, runtime), info) in registry.runtimes().zip(infos) {
        let kind = if runtime.in_agent() { "plugin" } else { "builtin" };
        rows.push(vec![
            runtime.name().into(),
            kind.into(),
            info.claims.clone(),
            info.version.clone(),
        ]);
    }
    for (name, handler) in &registry.config().handlers {
        rows.push(match handler {
            Handler::Containerd(runtime) => {
                let binary = runtime
                    .runc
                    .as_ref()
                    .map(|o| o.binary_name.clone())
                    .filter(|b| !b.is_empty());
                let runs = match &binary {
                    Some(binary) => format!(
                        "OCI members and the sandbox: {} with BinaryName {binary}",
                        runtime.name()
                    ),
                    None => format!("OCI members and the sandbox: {}", runtime.name()),
                };
                let version = crate::member::oci::binary_version(binary.as_deref().unwrap_or("runc"));
                vec![name.clone(), "containerd".into(), runs, version]
            }
            Handler::Plugin(plugin) => {
                let info = registry
                    .runtimes()
                    .zip(infos)
                    .find(|((_, runtime), _)| runtime.name() == plugin)
                    .map(|(_, info)| info);
                vec![
                    name.clone(),
                    format!("plugin {plugin}"),
                    "every container of a pod with this runtimeClassName".into(),
                    info.map(|i| i.version.clone()).unwrap_or_default(),
                ]
            }
        });
    }
    let mut out = tabulate(rows);
    let _ = writeln!(out, "(handlers from {})", registry.config().describe_path());
    out
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

fn member_state_object(state: &MemberState) -> Value {
    match state {
        MemberState::Waiting { reason } => json!({"waiting": {"reason": reason}}),
        MemberState::Running { since } => json!({"running": {"startedAt": rfc3339(*since)}}),
        MemberState::Terminated {
            exit_code,
            reason,
            finished,
        } => json!({"terminated": {"exitCode": exit_code, "reason": reason, "finishedAt": rfc3339(*finished)}}),
    }
}

/// The pod as Kubernetes would print it: the stored manifest plus uid, timestamps and status.
pub fn pod_object(pod: &PodView) -> Value {
    let mut object = pod
        .pod
        .as_ref()
        .and_then(|p| serde_json::to_value(p).ok())
        .unwrap_or_else(|| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod.name}}));
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("uid".into(), json!(pod.uid));
        metadata.insert("creationTimestamp".into(), rfc3339(pod.created));
    }
    // As the scheduler would have bound it: to this host.
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("nodeName".into(), json!(node_name()));
    }
    let host_ip = crate::pod::host_ip();
    let status_of = |m: &MemberView| {
        let mut state = member_state_object(&m.state());
        if let (Some(terminated), Some(message)) = (state.get_mut("terminated"), &m.message) {
            terminated["message"] = json!(message);
        }
        let last_state = m.last_state().map(|l| {
            let mut terminated = json!({
                "exitCode": l["exitCode"], "reason": l["reason"], "finishedAt": rfc3339(l["finishedAt"].as_f64())
            });
            if let Some(message) = l.get("message") {
                terminated["message"] = message.clone();
            }
            json!({ "terminated": terminated })
        });
        json!({
            "name": m.name,
            "image": m.image,
            "containerID": format!("containerd://{}", m.id),
            "ready": m.ready(),
            "restartCount": m.restarts,
            "started": matches!(m.state, MemberState::Running { .. }),
            "state": state,
            "lastState": last_state.unwrap_or_else(|| json!({})),
        })
    };
    let statuses: Vec<Value> = pod.app_members().map(status_of).collect();
    let ip = pod.ip();
    let mut status = json!({
        "phase": pod.phase(),
        "conditions": conditions(pod),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": ip,
        "podIPs": ip.iter().map(|i| json!({"ip": i})).collect::<Vec<_>>(),
        "startTime": rfc3339(pod.created),
        "containerStatuses": statuses,
    });
    if let Some(manifest) = &pod.pod {
        if !manifest.spec.init_containers.is_empty() {
            status["initContainerStatuses"] = init_statuses(pod, manifest, status_of);
        }
        status["qosClass"] = json!(qos_class(manifest));
    }
    if pod.deadline_exceeded() {
        status["reason"] = json!("DeadlineExceeded");
        status["message"] = json!("Pod was active on the node longer than the specified deadline");
    }
    if pod.interrupted.is_some() || pod.lost_to_restart {
        status["reason"] = json!("Unknown");
        status["message"] = json!(pod.interrupted.clone().unwrap_or_else(|| LOST_TO_RESTART.to_string()));
    }
    object["status"] = status;
    object
}

/// How far the init containers are: `Init:N/M` on the sandbox while they run, nothing after.
fn init_progress(pod: &PodView) -> Option<usize> {
    let status = pod.sandbox.labels.get(LABEL_INIT_STATUS)?;
    if status.is_empty() {
        return None;
    }
    // `Init:CrashLoopBackOff` and `Init:Error` keep no index: the first is where it stands.
    let index = status.strip_prefix("Init:")?.split('/').next()?.parse().ok();
    Some(index.unwrap_or(0))
}

/// The init containers' statuses as the API server shows them: a sidecar's is its member's; one
/// that ran to completion is terminated with Completed once the pod is initialized.
fn init_statuses(pod: &PodView, manifest: &Pod, member_status: impl Fn(&MemberView) -> Value) -> Value {
    let progress = init_progress(pod);
    let waiting = pod.sandbox.labels.get(LABEL_INIT_STATUS).cloned();
    let statuses: Vec<Value> = manifest
        .spec
        .init_containers
        .iter()
        .enumerate()
        .map(|(index, container)| {
            if let Some(member) = pod.members.iter().find(|m| m.sidecar && m.name == container.name) {
                return member_status(member);
            }
            let state = match progress {
                None => json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
                Some(at) if index < at => json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
                Some(at) if index == at => match waiting.as_deref() {
                    Some("Init:CrashLoopBackOff") => json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                    Some("Init:Error") => json!({"terminated": {"reason": "Error"}}),
                    _ => json!({"running": {}}),
                },
                Some(_) => json!({"waiting": {"reason": "PodInitializing"}}),
            };
            json!({
                "name": container.name,
                "image": container.image,
                "ready": state.get("terminated").is_some_and(|t| t["exitCode"] == 0),
                "restartCount": 0,
                "started": state.get("running").is_some(),
                "state": state,
            })
        })
        .collect();
    json!(statuses)
}

/// PodScheduled, Initialized, ContainersReady and Ready, as kubelet reports them.
fn conditions(pod: &PodView) -> Value {
    let since = rfc3339(pod.created);
    let condition = |kind: &str, ok: bool, reason: Option<&str>| {
        let mut c = json!({
            "type": kind,
            "status": if ok { "True" } else { "False" },
            "lastProbeTime": null,
            "lastTransitionTime": since,
        });
        if let (false, Some(reason)) = (ok, reason) {
            c["reason"] = json!(reason);
        }
        c
    };
    let initialized = init_progress(pod).is_none();
    let ready = pod.members.len() >= pod.expected_members().max(1)
        && pod.members.iter().all(|m| m.ready())
        && pod.interrupted.is_none()
        && !pod.lost_to_restart;
    json!([
        condition("PodScheduled", true, None),
        condition("Initialized", initialized, Some("ContainersNotInitialized")),
        condition("ContainersReady", ready, Some("ContainersNotReady")),
        condition("Ready", ready, Some("ContainersNotReady")),
    ])
}

/// Kubernetes' QoS class: Guaranteed when every container's CPU and memory limits are set and
/// requests (where given) equal them, BestEffort with no requests or limits at all, else Burstable.
pub fn qos_class(pod: &Pod) -> &'static str {
    let containers: Vec<&crate::manifest::Container> = pod.all_containers().collect();
    if containers.iter().all(|c| c.resources.is_empty()) {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let r = &c.resources;
        r.cpu_limit_millis().is_some()
            && r.memory_limit_bytes().is_some()
            && r.cpu_request_millis().is_none_or(|v| Some(v) == r.cpu_limit_millis())
            && r.memory_request_bytes()
                .is_none_or(|v| Some(v) == r.memory_limit_bytes())
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

pub(super) fn state_line(state: &MemberState) -> String {
    match state {
        MemberState::Waiting { reason } => format!("Waiting\n      Reason:       {reason}"),
        MemberState::Running { since } => format!(
            "Running\n      Started:      {}",
            rfc3339(*since).as_str().unwrap_or("")
        ),
        MemberState::Terminated {
            exit_code,
            reason,
            finished,
        } => format!(
            "Terminated\n      Reason:       {reason}\n      Exit Code:    {exit_code}\n      Finished:     {}",
            rfc3339(*finished).as_str().unwrap_or("")
        ),
    }
}

pub(super) fn key_values(map: &std::collections::BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "<none>".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n              ")
}

/// A probe as `kubectl describe` shows it:
/// `http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3`.
pub(super) fn probe_line(probe: &Probe) -> String {
    let port = |port: &PortRef| match port {
        PortRef::Number(n) => n.to_string(),
        PortRef::Name(name) => name.clone(),
    };
    let action = if let Some(http) = &probe.http_get {
        let scheme = http.scheme.as_deref().unwrap_or("HTTP").to_lowercase();
        let host = http.host.as_deref().unwrap_or("");
        format!("http-get {scheme}://{host}:{}{}", port(&http.port), http.path)
    } else if let Some(tcp) = &probe.tcp_socket {
        format!("tcp-socket {}:{}", tcp.host.as_deref().unwrap_or(""), port(&tcp.port))
    } else if let Some(exec) = &probe.exec {
        format!("exec [{}]", exec.command.join(" "))
    } else if let Some(grpc) = &probe.grpc {
        // kubectl's form: the service may be empty (the server as a whole).
        format!("grpc <pod>:{} {}", grpc.port, grpc.service.as_deref().unwrap_or(""))
    } else {
        "<no action>".into()
    };
    format!(
        "{action} delay={}s timeout={}s period={}s #success={} #failure={}",
        probe.initial_delay_seconds,
        probe.timeout_seconds,
        probe.period_seconds,
        probe.success_threshold,
        probe.failure_threshold
    )
}

#[cfg(test)]
mod tests {
    use super::{human_duration, probe_line};
    use crate::manifest::{PortRef, Probe};

    #[test]
    fn probes_read_like_kubectl_describe() {
        let probe: Probe = serde_json::from_value(serde_json::json!({
            "httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5
        }))
        .unwrap();
        assert_eq!(
            probe_line(&probe),
            "http-get http://:http/healthz delay=0s timeout=1s period=5s #success=1 #failure=3"
        );
        let tcp = Probe {
            tcp_socket: Some(crate::manifest::TcpSocketAction {
                port: PortRef::Number(9999),
                host: None,
            }),
            ..Probe::default()
        };
        assert!(probe_line(&tcp).starts_with("tcp-socket :9999 delay=0s timeout=1s period=10s"));
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(5.0), "5s");
        assert_eq!(human_duration(119.0), "119s");
        assert_eq!(human_duration(185.0), "3m5s");
        assert_eq!(human_duration(47.0 * 60.0), "47m");
        assert_eq!(human_duration(5.0 * 3600.0 + 180.0), "5h3m");
        assert_eq!(human_duration(30.0 * 3600.0), "30h");
        assert_eq!(human_duration(50.0 * 3600.0), "2d2h");
        assert_eq!(human_duration(400.0 * 86400.0), "400d");
    }
}
