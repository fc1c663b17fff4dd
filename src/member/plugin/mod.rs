//! Member runtimes that are plugins: a `podctl-runtime-NAME` process, which the pod's agent starts
//! inside the pod's namespaces (one per pod and plugin), runs the members. At create, podctl has
//! the plugin validate each member before anything exists; it then writes the member's definition
//! on its container record and into the agent's config, and asks the agent for the members' state.
//!
//! Every installed plugin is one [`PluginRuntime`] (this file: this podctl's own process of the
//! plugin, and the [`RuntimeDriver`] calls). The WASM runtime is the plugin `wasmtime`, whose
//! claims podctl knows without asking ([`wasmtime`]); any other plugin claims what its handshake
//! says ([`claims`]: OCI layer media types, local file extensions), learned only for an image that
//! could be its own, so a pod of plain OCI images never starts a plugin at create. [`program`]
//! finds and validates a member's program at `prepare`; [`member_def`] writes its definition at
//! `start`.

pub mod claims;
mod member_def;
mod program;
pub mod wasmtime;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use podctl_plugin::{Client as PluginClient, Validated};

pub use claims::Claims;
use claims::{describe_claims, is_rootfs_layer};
use program::Program;

use super::image_probe::ImageProbe;
use super::pod_context::PodContext;
use super::runtime_driver::{
    BoxFuture, Claim, Observation, ObserveContext, Payload, PreparedMember, RuntimeDriver, RuntimeInfo,
};
use super::undo::Undo;
use super::{io_error, last_probe, MemberError};
use crate::agent::client as agent;
use crate::agent::protocol::{PluginLaunch, PluginState};
use crate::containerd::Client;
use crate::manifest::Container;
use crate::record::{MemberState, MemberView, PodEvent, PodView};
use crate::settings::Settings;

pub struct PluginRuntime {
    name: String,
    /// Claims known without a handshake (wasmtime's); others are learned from the plugin.
    known: Option<Claims>,
    /// The plugin process that answers this podctl's handshake and validations, started on first use.
    client: tokio::sync::OnceCell<PluginClient>,
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

    /// The wasmtime plugin, whose claims podctl knows.
    pub fn wasmtime() -> PluginRuntime {
        PluginRuntime::with_claims(wasmtime::PLUGIN, wasmtime::claims())
    }

    fn is_wasm(&self) -> bool {
        wasmtime::is(&self.name)
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
            wasmtime::plugin_env(settings)
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
        program::validate(plugin, settings, container, program).await
    }
}

impl RuntimeDriver for PluginRuntime {
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
            if let Some(program) = &probe.wasi_program {
                return match self.is_wasm() {
                    true => Claim::Accept,
                    false => Claim::Decline(format!("its image is a wasi/wasm image ({})", program.path)),
                };
            }
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
                if claims.extensions.iter().any(|e| e == extension)
                    || (self.is_wasm() && wasmtime::looks_like_wasm(path))
                {
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
            program::refuse_unsupported(&self.name, container)?;
            let claims = self.claims(settings, &container.name);
            let program = program::locate(client, &self.name, container, probe, claims).await?;
            let validated = self.validate(settings, container, &program).await?;
            events.push(program::validated_event(&self.name, container, &validated));
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
                defs.push(member_def::record_member(&self.name, ctx, member, undo).await?);
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
