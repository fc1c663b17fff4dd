//! The WASM member runtime: WASI modules and components run by the wasmtime plugin
//! (`podctl-runtime-wasmtime`), one process per pod that the pod's agent starts inside the pod's
//! network namespace. At create, podctl has the plugin validate each module (compiling it once into
//! the shared AOT cache and refusing what is not WebAssembly before anything is made); the agent
//! then runs the members through the plugin and reports their state over its socket.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use podctl_plugin::{Client as PluginClient, Validated};

use super::undo::Step;
use super::*;
use crate::agent::client as agent;
use crate::agent::protocol::{PreopenDef, WasmMemberDef, WasmState};
use crate::containerd::NewContainer;

use crate::image::WASM_LAYER_MEDIA_TYPES;

/// The container record of a WASM member carries its definition, not an OCI spec.
const WASM_MEMBER_TYPE_URL: &str = "podctl.io/wasm-member";

/// The plugin that runs WASM members.
pub const PLUGIN: &str = "wasmtime";

/// The module kind the plugin reports for a `wasi:http` proxy component (served on its port).
const HTTP_PROXY: &str = "HttpProxy";

#[derive(Default)]
pub struct WasmRuntime {
    /// The plugin that validates this podctl's modules, started on first use.
    validator: tokio::sync::OnceCell<PluginClient>,
}

struct WasmPayload {
    bytes: Vec<u8>,
    kind: String,
}

/// The wasmtime plugin's binary, or an error naming where it was looked for.
pub fn plugin_binary(settings: &Settings, container: &str) -> Result<PathBuf, MemberError> {
    settings.find_plugin(PLUGIN).map_err(|searched| MemberError::Runtime {
        container: container.to_string(),
        message: format!(
            "the WASM runtime's plugin podctl-runtime-{PLUGIN} is not installed (looked for {}); build it with `cargo build --release --workspace` and put it next to podctl or in --plugin-dir",
            searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// The environment the plugin needs: its AOT cache.
pub fn plugin_env(settings: &Settings) -> [(&'static str, &std::ffi::OsStr); 1] {
    [("PODCTL_WASM_CACHE_DIR", settings.wasm_cache_dir.as_os_str())]
}

/// Whether a local file holds WebAssembly: the binary magic, or WAT text.
fn looks_like_wasm(head: &[u8]) -> bool {
    if head.starts_with(b"\0asm") {
        return true;
    }
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start();
    text.starts_with("(module") || text.starts_with("(component") || text.starts_with(";;")
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
    /// Has the plugin load the module (compiling it into the AOT cache) and check the member.
    async fn validate(
        &self,
        settings: &Settings,
        container: &Container,
        bytes: &[u8],
        local_file: Option<&std::path::Path>,
    ) -> Result<Validated, MemberError> {
        let plugin = self
            .validator
            .get_or_try_init(|| async {
                let binary = plugin_binary(settings, &container.name)?;
                let dir = settings.state_dir.join("plugins");
                std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
                let socket = dir.join(format!("validate-{}-{PLUGIN}.sock", std::process::id()));
                let launched = PluginClient::launch_with_env(&binary, &socket, &plugin_env(settings)).await;
                // Connected (or failed): the path is not needed any more, and must not outlive us.
                let _ = std::fs::remove_file(&socket);
                launched.map_err(|e| wasm_error(container, e.to_string()))
            })
            .await?;
        // The plugin reads the module from a file: the member's own, or for a module from an
        // image a private copy, gone after validation.
        let copy = match local_file {
            Some(_) => None,
            None => Some(tempfile_in(&settings.state_dir.join("plugins"), bytes)?),
        };
        let program = copy
            .as_ref()
            .map(|c| c.path.as_path())
            .or(local_file)
            .expect("one of the two");
        let member = podctl_plugin::Member {
            name: container.name.clone(),
            program: program.to_string_lossy().into_owned(),
            ports: container.ports.iter().map(|p| u32::from(p.container_port)).collect(),
            ..Default::default()
        };
        plugin.validate(member).await.map_err(|e| match e {
            podctl_plugin::ClientError::Refused { message, .. } => wasm_error(container, message),
            other => wasm_error(container, other.to_string()),
        })
    }

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
            http_port: match payload.kind.as_str() {
                HTTP_PROXY => container.ports.first().map(|p| p.container_port),
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
            version: format!("plugin podctl-runtime-{PLUGIN}, one process per pod with WASM members"),
        }
    }

    fn claim(&self, probe: &ImageProbe) -> Claim {
        if let Some(path) = &probe.local_file {
            let head = std::fs::read(path)
                .map(|b| b.into_iter().take(4096).collect::<Vec<u8>>())
                .unwrap_or_default();
            return if looks_like_wasm(&head) || path.extension().is_some_and(|e| e == "wasm" || e == "wat") {
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
            let validated = self
                .validate(settings, container, &bytes, probe.local_file.as_deref())
                .await?;
            let how = if validated.cache_hit {
                "loaded from the AOT cache"
            } else {
                "compiled"
            };
            events.push(PodEvent::normal(
                "Compiled",
                &container.name,
                format!(
                    "{} {} {how} in {:.0} ms",
                    validated.kind, validated.digest, validated.load_millis
                ),
            ));
            Ok(Box::new(WasmPayload {
                bytes,
                kind: validated.kind,
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

/// A file removed when dropped.
struct TempFile {
    path: PathBuf,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn tempfile_in(dir: &std::path::Path, bytes: &[u8]) -> Result<TempFile, MemberError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let path = dir.join(format!(
        "module-{}-{}.wasm",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bytes).map_err(io_error(&path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io_error(&path))?;
    Ok(TempFile { path })
}
