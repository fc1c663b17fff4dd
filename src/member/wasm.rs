//! The WASM member runtime: WASI modules and components hosted by the pod's agent process (one
//! wasmtime engine per pod, inside the pod's network namespace). podctl compiles each module once
//! at create (warming the shared AOT cache and refusing what is not WebAssembly before anything is
//! made); the agent then runs them and reports their state over its socket.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::OnceLock;
use std::time::Duration;

use podctl_wasmtime::{HostConfig, ProgramKind, WasmHost};

use super::undo::Step;
use super::*;
use crate::agent::client as agent;
use crate::agent::protocol::{PreopenDef, WasmMemberDef, WasmState};
use crate::containerd::NewContainer;

use crate::image::WASM_LAYER_MEDIA_TYPES;

/// The container record of a WASM member carries its definition, not an OCI spec.
const WASM_MEMBER_TYPE_URL: &str = "podctl.io/wasm-member";

pub struct WasmRuntime;

struct WasmPayload {
    bytes: Vec<u8>,
    kind: ProgramKind,
}

/// One engine per podctl process, only when a pod has WASM members.
fn host(settings: &Settings) -> Result<&'static WasmHost, String> {
    static HOST: OnceLock<Result<WasmHost, String>> = OnceLock::new();
    HOST.get_or_init(|| {
        WasmHost::new(HostConfig {
            cache_dir: Some(settings.wasm_cache_dir.clone()),
        })
        .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn wasm_error(container: &Container, message: impl Into<String>) -> MemberError {
    MemberError::Runtime {
        container: container.name.clone(),
        message: message.into(),
    }
}

/// argv as Kubernetes composes it, with the member's name as argv[0] when `command` is empty.
fn argv(container: &Container, env: &[(String, String)]) -> Vec<String> {
    let defined: std::collections::BTreeMap<&str, &str> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let expand = |s: &String| crate::spec::expand(s, &defined);
    let mut args: Vec<String> = if container.command.is_empty() {
        vec![container.name.clone()]
    } else {
        container.command.iter().map(expand).collect()
    };
    args.extend(container.args.iter().map(expand));
    args
}

fn environment(container: &Container) -> Vec<(String, String)> {
    let mut env = Vec::new();
    crate::spec::apply_pod_env(&mut env, container);
    env
}

impl WasmRuntime {
    fn member_def(
        &self,
        ctx: &PodContext<'_>,
        container: &Container,
        payload: &WasmPayload,
        module: PathBuf,
    ) -> Result<WasmMemberDef, MemberError> {
        let mut preopens = Vec::new();
        for binding in ctx.volumes(container)? {
            let Some(host) = binding.source else {
                return Err(wasm_error(
                    container,
                    format!("volume at {}: emptyDir with medium Memory is not supported for WASM members; drop `medium: Memory`", binding.target),
                ));
            };
            preopens.push(PreopenDef {
                host,
                guest: binding.target,
                read_only: binding.read_only,
            });
        }
        let env = environment(container);
        Ok(WasmMemberDef {
            name: container.name.clone(),
            id: String::new(),
            module,
            args: argv(container, &env),
            env,
            preopens,
            log_path: ctx.log_path(container)?,
            memory_limit: container.resources.memory_limit_bytes(),
            cpu_limit_millis: container.resources.cpu_limit_millis(),
            http_port: match payload.kind {
                ProgramKind::HttpProxy => container.ports.first().map(|p| p.container_port),
                _ => None,
            },
            probes: probe_defs(container),
        })
    }
}

impl MemberRuntime for WasmRuntime {
    fn name(&self) -> &'static str {
        "wasmtime"
    }

    fn in_agent(&self) -> bool {
        true
    }

    fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            claims: format!(
                "local .wasm/.wat files; OCI images with a wasm layer ({})",
                WASM_LAYER_MEDIA_TYPES.join(", ")
            ),
            version: format!("wasmtime {} (in the pod's agent)", podctl_wasmtime::WASMTIME_VERSION),
        }
    }

    fn claim(&self, probe: &ImageProbe) -> Claim {
        if let Some(path) = &probe.local_file {
            let head = std::fs::read(path)
                .map(|b| b.into_iter().take(4096).collect::<Vec<u8>>())
                .unwrap_or_default();
            return if podctl_wasmtime::is_wasm(&head) || path.extension().is_some_and(|e| e == "wasm" || e == "wat") {
                Claim::Accept
            } else {
                Claim::Decline(format!("{} is not a .wasm/.wat file", path.display()))
            };
        }
        match &probe.layers {
            Some(layers) if layers.iter().any(|(m, _)| WASM_LAYER_MEDIA_TYPES.contains(&m.as_str())) => Claim::Accept,
            Some(_) => Claim::Decline("its OCI image has no wasm layer".into()),
            None => Claim::Decline("it is neither a local .wasm/.wat file nor an image in containerd".into()),
        }
    }

    fn prepare<'a>(
        &'a self,
        client: &'a Client,
        settings: &'a Settings,
        container: &'a Container,
        probe: &'a ImageProbe,
        events: &'a mut Vec<PodEvent>,
    ) -> BoxFuture<'a, Result<Payload, MemberError>> {
        Box::pin(async move {
            for (field, probe) in [
                ("livenessProbe", &container.liveness_probe),
                ("readinessProbe", &container.readiness_probe),
                ("startupProbe", &container.startup_probe),
            ] {
                if probe.as_ref().is_some_and(|p| p.exec.is_some()) {
                    return Err(wasm_error(
                        container,
                        format!("{field}.exec: a WASM member has no process to run a command in; probe it with httpGet or tcpSocket"),
                    ));
                }
            }
            let bytes = match (&probe.local_file, &probe.layers) {
                (Some(path), _) => std::fs::read(path).map_err(io_error(path))?,
                (None, Some(layers)) => {
                    let layer = layers
                        .iter()
                        .find(|(m, _)| WASM_LAYER_MEDIA_TYPES.contains(&m.as_str()))
                        .ok_or_else(|| wasm_error(container, "its image has no wasm layer"))?;
                    client.read_blob(&layer.1).await?
                }
                (None, None) => return Err(wasm_error(container, "no module to run")),
            };
            let host = host(settings).map_err(|e| wasm_error(container, e))?;
            let program = host.load(&bytes).map_err(|e| wasm_error(container, e.to_string()))?;
            if program.kind == ProgramKind::HttpProxy && container.ports.len() != 1 {
                return Err(wasm_error(
                    container,
                    format!(
                        "a wasi:http component is served on exactly one containerPort, and this member lists {}; give it one `ports: [{{containerPort: N}}]`",
                        container.ports.len()
                    ),
                ));
            }
            let how = if program.cache_hit {
                "loaded from the AOT cache"
            } else {
                "compiled"
            };
            events.push(PodEvent::normal(
                "Compiled",
                &container.name,
                format!(
                    "{:?} {} {how} in {:.0} ms",
                    program.kind,
                    program.digest,
                    program.load_time.as_secs_f64() * 1000.0
                ),
            ));
            Ok(Box::new(WasmPayload {
                bytes,
                kind: program.kind,
            }) as Payload)
        })
    }

    fn start<'a>(
        &'a self,
        ctx: &'a PodContext<'a>,
        members: Vec<PreparedMember<'a>>,
        undo: &'a mut Undo,
        _events: &'a mut Vec<PodEvent>,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async move {
            let module_dir = ctx.state_dir.join("wasm");
            std::fs::create_dir_all(&module_dir).map_err(io_error(&module_dir))?;
            let mut defs = Vec::new();
            for member in members {
                let container = member.container;
                let payload = member
                    .payload
                    .downcast::<WasmPayload>()
                    .map_err(|_| MemberError::Damaged {
                        pod: ctx.pod.metadata.name.clone(),
                        message: "the WASM runtime was handed another runtime's member".into(),
                    })?;
                let module = module_dir.join(format!("{}.wasm", container.name));
                std::fs::write(&module, &payload.bytes).map_err(io_error(&module))?;
                std::fs::set_permissions(&module, std::fs::Permissions::from_mode(0o600)).map_err(io_error(&module))?;
                let id = member_id(ctx.sandbox_id, &container.name, member.index);
                let def = WasmMemberDef {
                    id: id.clone(),
                    ..self.member_def(ctx, container, &payload, module)?
                };
                let mut labels = ctx.base_labels(&container.name, "container");
                labels.insert(LABEL_MEMBER_INDEX.into(), member.index.to_string());
                labels.insert(LABEL_RUNTIME.into(), self.name().into());
                labels.insert(LABEL_STOP_SIGNAL.into(), "SIGTERM".into());
                labels.insert(LABEL_LOG_PATH.into(), def.log_path.to_string_lossy().into_owned());
                ctx.client
                    .create_container(
                        &ctx.lease,
                        NewContainer {
                            id: id.clone(),
                            image: container.image.clone(),
                            labels,
                            spec_type_url: WASM_MEMBER_TYPE_URL,
                            spec_json: serde_json::to_vec(&def).expect("member definitions serialize"),
                            snapshot_key: String::new(),
                            extensions: HashMap::new(),
                            runtime: Default::default(),
                        },
                    )
                    .await?;
                undo.push(Step::DeleteContainer(id));
                defs.push(def);
            }
            ctx.agent_members.lock().expect("not poisoned").extend(defs);
            Ok(())
        })
    }

    fn observe<'a>(
        &'a self,
        ctx: &'a ObserveContext<'a>,
        pod: &'a PodView,
    ) -> BoxFuture<'a, HashMap<String, Observation>> {
        Box::pin(async move {
            let dir = ctx.settings.pod_state_dir(ctx.client, &pod.sandbox_id);
            let reply = agent::status(&pod.name, &dir).await.ok();
            let mut observed = HashMap::new();
            for member in pod.members.iter().filter(|m| m.runtime == self.name()) {
                let status = reply
                    .as_ref()
                    .and_then(|r| r.members.iter().find(|s| s.name == member.name));
                let observation = match status {
                    None => Observation {
                        state: MemberState::Waiting {
                            reason: "AgentNotRunning".into(),
                        },
                        ready: false,
                        restarts: 0,
                        pid: None,
                        probe: None,
                    },
                    Some(s) => Observation {
                        state: match (s.state, &s.waiting) {
                            (WasmState::Pending, _) => MemberState::Waiting {
                                reason: "PodInitializing".into(),
                            },
                            (WasmState::Running, _) => MemberState::Running { since: s.started_at },
                            (_, Some(reason)) => MemberState::Waiting { reason: reason.clone() },
                            (WasmState::Exited | WasmState::Failed, None) => MemberState::Terminated {
                                exit_code: s.exit_code.unwrap_or(1) as u32,
                                reason: s.reason.clone().unwrap_or_else(|| "Error".into()),
                                finished: None,
                            },
                        },
                        ready: s.ready,
                        restarts: s.restarts,
                        pid: reply.as_ref().map(|r| r.pid),
                        probe: reply.as_ref().and_then(|r| last_probe(&r.probes, &member.name)),
                    },
                };
                observed.insert(member.id.clone(), observation);
            }
            observed
        })
    }

    fn stop<'a>(
        &'a self,
        client: &'a Client,
        settings: &'a Settings,
        pod: &'a PodView,
        members: Vec<&'a MemberView>,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async move {
            let dir = settings.pod_state_dir(client, &pod.sandbox_id);
            agent::stop(&pod.name, &dir, grace).await?;
            for member in members {
                client.delete_container(&member.id).await?;
            }
            Ok(())
        })
    }
}
