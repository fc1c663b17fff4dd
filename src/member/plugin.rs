//! Member runtimes that are plugins: a `podctl-runtime-NAME` process, which the pod's agent starts
//! inside the pod's namespaces (one per pod and plugin), runs the members. At create, podctl has
//! the plugin validate each member before anything exists; it then writes the member's definition
//! on its container record and into the agent's config, and asks the agent for the members' state.
//!
//! Every installed plugin is one [`PluginRuntime`]. The WASM runtime is the plugin `wasmtime`, whose
//! claims podctl knows without asking ([`super::wasm`]); any other plugin claims what its handshake
//! says (OCI layer media types, local file extensions), learned only for an image that could be
//! its own, so a pod of plain OCI images never starts a plugin at create.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use podctl_plugin::{Client as PluginClient, Validated};

use super::undo::Step;
use super::*;
use crate::agent::client as agent;
use crate::agent::protocol::{PluginLaunch, PluginMemberDef, PluginState, PreopenDef};
use crate::containerd::NewContainer;

/// The container record of a plugin's member carries its definition, not an OCI spec (the name is
/// from when wasmtime was the only plugin; records keep it).
const PLUGIN_MEMBER_TYPE_URL: &str = "podctl.io/wasm-member";

/// What a plugin runs.
#[derive(Clone, Debug, Default)]
pub struct Claims {
    pub media_types: Vec<String>,
    pub extensions: Vec<String>,
    /// Local directories (the directory is the program).
    pub directories: bool,
    /// URL schemes, lower case (the image as written is the program).
    pub schemes: Vec<String>,
}

impl Claims {
    fn of(info: &podctl_plugin::proto::HandshakeReply) -> Claims {
        Claims {
            media_types: info.media_types.clone(),
            extensions: info.file_extensions.clone(),
            directories: info.directories,
            schemes: info.url_schemes.iter().map(|s| s.to_ascii_lowercase()).collect(),
        }
    }
}

pub struct PluginRuntime {
    name: String,
    /// Claims known without a handshake (wasmtime's); others are learned from the plugin.
    known: Option<Claims>,
    /// The plugin process that answers this podctl's handshake and validations, started on first use.
    client: tokio::sync::OnceCell<PluginClient>,
}

/// The program of a prepared member: a local file, and/or bytes that start copies into the pod's
/// state directory (an image's layer; a wasm module, so that the pod keeps running what was
/// validated even if the file changes).
struct Program {
    local: Option<PathBuf>,
    copy: Option<Vec<u8>>,
}

fn member_error(container: &Container, message: impl Into<String>) -> MemberError {
    MemberError::Runtime {
        container: container.name.clone(),
        message: message.into(),
    }
}

/// Whether an image layer is an ordinary root filesystem layer, which only an OCI runtime runs.
fn is_rootfs_layer(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.")
}

/// `command` + `args` with `$(VAR)` expanded, as Kubernetes composes them; `argv0` comes first
/// when `command` is empty (a WASI program's argv[0]).
fn argv(container: &Container, env: &[(String, String)], argv0: Option<&str>) -> Vec<String> {
    let defined: std::collections::BTreeMap<&str, &str> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let expand = |s: &String| crate::spec::expand(s, &defined);
    let mut args: Vec<String> = match (container.command.is_empty(), argv0) {
        (true, Some(argv0)) => vec![argv0.to_string()],
        _ => container.command.iter().map(expand).collect(),
    };
    args.extend(container.args.iter().map(expand));
    args
}

impl PluginRuntime {
    /// An installed plugin that claims what its handshake says.
    pub fn installed(name: &str) -> PluginRuntime {
        PluginRuntime {
            name: name.to_string(),
            known: None,
            client: Default::default(),
        }
    }

    /// A plugin whose claims podctl knows (no handshake needed to pick it).
    pub fn with_claims(name: &str, claims: Claims) -> PluginRuntime {
        PluginRuntime {
            known: Some(claims),
            ..PluginRuntime::installed(name)
        }
    }

    fn is_wasm(&self) -> bool {
        self.name == wasm::PLUGIN
    }

    /// The plugin's binary, or an error naming where it was looked for.
    fn binary(&self, settings: &Settings, container: &str) -> Result<PathBuf, MemberError> {
        settings.find_plugin(&self.name).map_err(|searched| MemberError::Runtime {
            container: container.to_string(),
            message: format!(
                "the member runtime's plugin podctl-runtime-{} is not installed (looked for {}); install it there or point --plugin-dir at its directory{}",
                self.name,
                searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                if self.is_wasm() { " (`cargo build --release --workspace` builds it)" } else { "" },
            ),
        })
    }

    /// The environment the plugin is started with (wasmtime: its AOT cache).
    fn env(&self, settings: &Settings) -> Vec<(String, String)> {
        if self.is_wasm() {
            wasm::plugin_env(settings)
        } else {
            Vec::new()
        }
    }

    /// This podctl's own process of the plugin (for handshake and validation), started once.
    async fn client(&self, settings: &Settings, container: &str) -> Result<&PluginClient, MemberError> {
        self.client
            .get_or_try_init(|| async {
                let binary = self.binary(settings, container)?;
                let dir = settings.state_dir.join("plugins");
                std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
                let socket = dir.join(format!("validate-{}-{}.sock", std::process::id(), self.name));
                let env = self.env(settings);
                let env: Vec<(&str, &std::ffi::OsStr)> =
                    env.iter().map(|(k, v)| (k.as_str(), std::ffi::OsStr::new(v))).collect();
                let launched = PluginClient::launch_with_env(&binary, &socket, &env).await;
                // Connected (or failed): the path is not needed any more, and must not outlive us.
                let _ = std::fs::remove_file(&socket);
                launched.map_err(|e| MemberError::Runtime {
                    container: container.to_string(),
                    message: e.to_string(),
                })
            })
            .await
    }

    async fn claims(&self, settings: &Settings, container: &str) -> Result<Claims, MemberError> {
        if let Some(known) = &self.known {
            return Ok(known.clone());
        }
        Ok(Claims::of(self.client(settings, container).await?.info()))
    }

    /// Has the plugin check the member (a WASM module compiles into the AOT cache here).
    async fn validate(
        &self,
        settings: &Settings,
        container: &Container,
        program: &Program,
    ) -> Result<Validated, MemberError> {
        let plugin = self.client(settings, &container.name).await?;
        // The plugin reads the program from a file: the member's own, or a private copy of an
        // image's, gone after validation.
        let copy = match (&program.local, &program.copy) {
            (None, Some(bytes)) => Some(tempfile_in(&settings.state_dir.join("plugins"), bytes)?),
            _ => None,
        };
        let path = match (&program.local, &copy) {
            (Some(path), _) => path.as_path(),
            (None, Some(copy)) => copy.path.as_path(),
            (None, None) => return Err(member_error(container, "no program to run")),
        };
        let member = podctl_plugin::Member {
            name: container.name.clone(),
            program: path.to_string_lossy().into_owned(),
            ports: container.ports.iter().map(|p| u32::from(p.container_port)).collect(),
            ..Default::default()
        };
        plugin.validate(member).await.map_err(|e| match e {
            podctl_plugin::ClientError::Refused { message, .. } => member_error(container, message),
            other => member_error(container, other.to_string()),
        })
    }

    fn member_def(
        &self,
        ctx: &PodContext<'_>,
        container: &Container,
        program: PathBuf,
    ) -> Result<PluginMemberDef, MemberError> {
        let mut preopens = Vec::new();
        for binding in ctx.volumes(container)? {
            let Some(host) = binding.source else {
                return Err(member_error(
                    container,
                    format!("volume at {}: emptyDir with medium Memory is not supported for members a plugin runs; drop `medium: Memory`", binding.target),
                ));
            };
            preopens.push(PreopenDef {
                host,
                guest: binding.target,
                read_only: binding.read_only,
            });
        }
        let mut env = Vec::new();
        crate::spec::apply_pod_env(&mut env, container);
        Ok(PluginMemberDef {
            name: container.name.clone(),
            plugin: self.name.clone(),
            id: String::new(),
            program,
            args: argv(container, &env, self.is_wasm().then_some(container.name.as_str())),
            env,
            preopens,
            log_path: ctx.log_path(container)?,
            memory_limit: container.resources.memory_limit_bytes(),
            cpu_limit_millis: container.resources.cpu_limit_millis(),
            ports: container.ports.iter().map(|p| p.container_port).collect(),
            http_port: None,
            log_rotation: ctx.settings.log_rotation,
            probes: probe_defs(container),
            hooks: super::hook_defs(container),
        })
    }

    /// Where a copied program goes in the pod's state directory.
    fn program_path(&self, state_dir: &Path, container: &Container) -> PathBuf {
        let file = if self.is_wasm() {
            format!("{}.wasm", container.name)
        } else {
            container.name.clone()
        };
        state_dir.join("programs").join(&self.name).join(file)
    }
}

impl MemberRuntime for PluginRuntime {
    fn name(&self) -> &str {
        &self.name
    }

    fn in_agent(&self) -> bool {
        true
    }

    fn info<'a>(&'a self, settings: &'a Settings) -> BoxFuture<'a, RuntimeInfo> {
        Box::pin(async move {
            let (version, claims) = match self.client(settings, &self.name).await {
                Ok(client) => {
                    let info = client.info();
                    let claims = self.known.clone().unwrap_or_else(|| Claims::of(info));
                    (format!("{} (podctl-runtime-{})", info.version, self.name), Ok(claims))
                }
                Err(e) => ("-".to_string(), Err(e.to_string())),
            };
            let claims = match claims {
                Ok(claims) => describe_claims(&claims),
                Err(why) => why,
            };
            RuntimeInfo { claims, version }
        })
    }

    fn claim<'a>(
        &'a self,
        settings: &'a Settings,
        container: &'a Container,
        probe: &'a ImageProbe,
    ) -> BoxFuture<'a, Claim> {
        Box::pin(async move {
            // An image of root filesystem layers only is an OCI runtime's: no need to ask.
            if probe.local_file.is_none()
                && probe.local_dir.is_none()
                && probe.url_scheme.is_none()
                && probe
                    .layers
                    .as_ref()
                    .is_none_or(|l| l.iter().all(|(m, _)| is_rootfs_layer(m)))
            {
                return Claim::Decline(match probe.layers {
                    Some(_) => "its image has only root filesystem layers".into(),
                    None => "it is neither a local file or directory, nor a URL, nor an image in containerd".into(),
                });
            }
            let claims = match self.claims(settings, &container.name).await {
                Ok(claims) => claims,
                Err(e) => return Claim::Decline(format!("cannot ask it: {e}")),
            };
            if let Some(path) = &probe.local_file {
                let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
                if claims.extensions.iter().any(|e| e == extension) || (self.is_wasm() && wasm::looks_like_wasm(path)) {
                    return Claim::Accept;
                }
                return Claim::Decline(format!("it runs {}, not {}", describe_claims(&claims), path.display()));
            }
            if let Some(path) = &probe.local_dir {
                return match claims.directories {
                    true => Claim::Accept,
                    false => Claim::Decline(format!(
                        "it runs {}, not the directory {}",
                        describe_claims(&claims),
                        path.display()
                    )),
                };
            }
            if let Some(scheme) = &probe.url_scheme {
                return match claims.schemes.contains(scheme) {
                    true => Claim::Accept,
                    false => Claim::Decline(format!("it runs {}, not {scheme}: URLs", describe_claims(&claims))),
                };
            }
            match &probe.layers {
                Some(layers) if layers.iter().any(|(m, _)| claims.media_types.contains(m)) => Claim::Accept,
                _ => Claim::Decline(format!("its image has no layer of {}", describe_claims(&claims))),
            }
        })
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
                    return Err(member_error(
                        container,
                        format!("{field}.exec: a member that plugin {} runs has no container to run a command in; probe it with httpGet or tcpSocket", self.name),
                    ));
                }
            }
            for (field, set) in [("stdin", container.stdin), ("tty", container.tty)] {
                if set {
                    return Err(member_error(
                        container,
                        format!("{field}: a member that plugin {} runs has no standard input or terminal to attach to (WASM members read no input through podctl yet); remove {field}: true, or run the program in an OCI container", self.name),
                    ));
                }
            }
            let lifecycle = container.lifecycle.as_ref();
            for (field, hook) in [
                ("postStart", lifecycle.and_then(|l| l.post_start.as_ref())),
                ("preStop", lifecycle.and_then(|l| l.pre_stop.as_ref())),
            ] {
                if hook.is_some_and(|h| h.exec.is_some()) {
                    return Err(member_error(
                        container,
                        format!("lifecycle.{field}.exec: a member that plugin {} runs has no container to run a command in; use an httpGet or sleep hook", self.name),
                    ));
                }
            }
            let program = match (&probe.local_file, &probe.layers) {
                // A directory, or a URL exactly as written, is handed to the plugin unchanged.
                (None, _) if probe.local_dir.is_some() || probe.url_scheme.is_some() => Program {
                    local: Some(match &probe.local_dir {
                        Some(dir) => dir.clone(),
                        None => PathBuf::from(&probe.reference),
                    }),
                    copy: None,
                },
                (Some(path), _) => Program {
                    local: Some(path.clone()),
                    copy: match self.is_wasm() {
                        true => Some(std::fs::read(path).map_err(io_error(path))?),
                        false => None,
                    },
                },
                (None, Some(layers)) => {
                    let claims = self.claims(settings, &container.name).await?;
                    // A plugin picked by runtimeClassName or annotation gets the first layer that
                    // is not a root filesystem, if none has a media type it claims.
                    let layer = layers
                        .iter()
                        .find(|(m, _)| claims.media_types.contains(m))
                        .or_else(|| layers.iter().find(|(m, _)| !is_rootfs_layer(m)))
                        .ok_or_else(|| {
                            member_error(
                                container,
                                format!(
                                    "its image has no layer plugin {} runs ({})",
                                    self.name,
                                    describe_claims(&claims)
                                ),
                            )
                        })?;
                    Program {
                        local: None,
                        copy: Some(client.read_blob(&layer.1).await?),
                    }
                }
                (None, None) => return Err(member_error(container, "no program to run")),
            };
            let validated = self.validate(settings, container, &program).await?;
            if self.is_wasm() {
                let how = if validated.cache_hit {
                    "loaded from the AOT cache"
                } else {
                    "compiled"
                };
                let message = format!(
                    "{} {} {how} in {:.0} ms",
                    validated.kind, validated.digest, validated.load_millis
                );
                events.push(PodEvent::normal("Compiled", &container.name, message));
            } else {
                let message = format!("plugin {} accepts it as {}", self.name, validated.kind);
                events.push(PodEvent::normal("Validated", &container.name, message));
            }
            Ok(Box::new(program) as Payload)
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
            let binary = self.binary(
                ctx.settings,
                &members.first().map(|m| m.container.name.clone()).unwrap_or_default(),
            )?;
            let mut defs = Vec::new();
            for member in members {
                let container = &ctx.with_pod_ips(member.container).await?;
                let program = member.payload.downcast::<Program>().map_err(|_| MemberError::Damaged {
                    pod: ctx.pod.metadata.name.clone(),
                    message: format!("plugin {} was handed another runtime's member", self.name),
                })?;
                let program = match (&program.copy, &program.local) {
                    (None, Some(path)) => path.clone(),
                    (None, None) => return Err(member_error(container, "no program to run")),
                    (Some(bytes), _) => {
                        let path = self.program_path(&ctx.state_dir, container);
                        let dir = path.parent().expect("in a directory");
                        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
                        std::fs::write(&path, bytes).map_err(io_error(&path))?;
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                            .map_err(io_error(&path))?;
                        path
                    }
                };
                let id = member_id(ctx.sandbox_id, &container.name, member.index);
                let def = PluginMemberDef {
                    id: id.clone(),
                    ..self.member_def(ctx, container, program)?
                };
                let mut labels = ctx.base_labels(&container.name, "container");
                labels.insert(LABEL_MEMBER_INDEX.into(), member.index.to_string());
                labels.insert(LABEL_RUNTIME.into(), self.name.clone());
                labels.insert(LABEL_STOP_SIGNAL.into(), "SIGTERM".into());
                labels.insert(LABEL_LOG_PATH.into(), def.log_path.to_string_lossy().into_owned());
                ctx.client
                    .create_container(
                        &ctx.lease,
                        NewContainer {
                            id: id.clone(),
                            image: container.image.clone(),
                            labels,
                            spec_type_url: PLUGIN_MEMBER_TYPE_URL,
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
            ctx.host_in_agent(
                PluginLaunch {
                    name: self.name.clone(),
                    binary,
                    env: self.env(ctx.settings),
                },
                defs,
            );
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
            for member in pod.members.iter().filter(|m| m.runtime == self.name) {
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
                        own_process: false,
                        probe: None,
                        message: None,
                    },
                    Some(s) => Observation {
                        state: match (s.state, &s.waiting) {
                            (PluginState::Pending, _) => MemberState::Waiting {
                                reason: "PodInitializing".into(),
                            },
                            (PluginState::Running, _) => MemberState::Running { since: s.started_at },
                            (_, Some(reason)) => MemberState::Waiting { reason: reason.clone() },
                            (PluginState::Exited | PluginState::Failed, None) => MemberState::Terminated {
                                exit_code: s.exit_code.unwrap_or(1) as u32,
                                reason: s.reason.clone().unwrap_or_else(|| "Error".into()),
                                finished: None,
                            },
                        },
                        ready: s.ready,
                        restarts: s.restarts,
                        pid: s.pid.or(reply.as_ref().map(|r| r.pid)),
                        own_process: s.pid.is_some(),
                        probe: reply.as_ref().and_then(|r| last_probe(&r.probes, &member.name)),
                        message: s.message.clone().filter(|_| s.state != PluginState::Running),
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
                // A record relabelled by hand may name a task of its own: it goes too.
                client
                    .stop_task(&member.id, crate::containerd::SIGKILL, Duration::ZERO)
                    .await?;
                client.delete_container(&member.id).await?;
            }
            Ok(())
        })
    }
}

fn describe_claims(claims: &Claims) -> String {
    let mut parts = Vec::new();
    if !claims.extensions.is_empty() {
        let extensions: Vec<String> = claims.extensions.iter().map(|e| format!(".{e}")).collect();
        parts.push(format!("local {} files", extensions.join("/")));
    }
    if claims.directories {
        parts.push("local directories".into());
    }
    if !claims.schemes.is_empty() {
        let schemes: Vec<String> = claims.schemes.iter().map(|s| format!("{s}:")).collect();
        parts.push(format!("{} URLs", schemes.join("/")));
    }
    if !claims.media_types.is_empty() {
        parts.push(format!("OCI images with a layer of {}", claims.media_types.join(", ")));
    }
    match parts.is_empty() {
        true => "what runtimeClassName or the podctl.io/runtime.<container> annotation gives it".into(),
        false => parts.join("; "),
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

fn tempfile_in(dir: &Path, bytes: &[u8]) -> Result<TempFile, MemberError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let path = dir.join(format!(
        "program-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bytes).map_err(io_error(&path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).map_err(io_error(&path))?;
    Ok(TempFile { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_layers_are_not_a_plugins_to_claim() {
        assert!(is_rootfs_layer("application/vnd.oci.image.layer.v1.tar+gzip"));
        assert!(is_rootfs_layer("application/vnd.docker.image.rootfs.diff.tar.gzip"));
        assert!(!is_rootfs_layer("application/wasm"));
        assert!(!is_rootfs_layer("application/vnd.example.script.v1"));
    }

    #[test]
    fn claims_read_as_a_user_would_say_them() {
        let claims = Claims {
            media_types: vec!["application/x-demo".into()],
            extensions: vec!["sh".into(), "py".into()],
            directories: true,
            schemes: vec!["demo".into(), "s3".into()],
        };
        assert_eq!(
            describe_claims(&claims),
            "local .sh/.py files; local directories; demo:/s3: URLs; OCI images with a layer of application/x-demo"
        );
        assert!(describe_claims(&Claims::default()).contains("runtimeClassName"));
    }
}
