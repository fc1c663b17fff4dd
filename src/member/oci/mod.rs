//! The built-in member runtime: an OCI image run by containerd's runc shim inside the sandbox's
//! namespaces. It claims every image no other runtime claims.
//!
//! This file is [`OciRuntime`]'s [`RuntimeDriver`] calls; [`container_record`] makes a member's
//! snapshot, OCI spec and container record (with [`image_accounts`] for USER names),
//! [`member_task`] its task, [`init_containers`] runs init containers and sidecars, and
//! [`task_status`] observes the members.

mod container_record;
mod image_accounts;
mod init_containers;
mod member_task;
mod task_status;

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinSet;

pub(crate) use container_record::{image_stop_signal, interactive_of};
pub(crate) use image_accounts::image_accounts;
pub use init_containers::{run_init, sidecar_id, start_sidecar};
pub(crate) use member_task::start_next_run;

use container_record::{create_records, RecordKind};
use member_task::{create_task, create_task_logging_to, push_event, start_in_ready_sandbox};

use super::image_probe::ImageProbe;
use super::pod_context::PodContext;
use super::runtime_driver::{
    BoxFuture, Claim, Observation, ObserveContext, Payload, PreparedMember, RuntimeDriver, RuntimeInfo,
};
use super::undo::Undo;
use super::MemberError;
use crate::containerd::{signal_number, Client, TaskState};
use crate::image::ResolvedImage;
use crate::manifest::Container;
use crate::record::{member_id, MemberView, PodEvent, PodView};
use crate::settings::Settings;

pub struct OciRuntime;

impl OciRuntime {
    async fn start_one(
        &self,
        ctx: &PodContext<'_>,
        member: PreparedMember<'_>,
        undo: &mut Undo,
        events: &mut Vec<PodEvent>,
    ) -> Result<(), MemberError> {
        let container = member.container;
        let image = member
            .payload
            .downcast::<ResolvedImage>()
            .map_err(|_| MemberError::Damaged {
                pod: ctx.pod.metadata.name.clone(),
                message: "the OCI runtime was handed another runtime's member".into(),
            })?;
        let id = member_id(ctx.sandbox_id, &container.name, member.index);
        let kind = RecordKind {
            kind: "container",
            index: member.index,
            handler: member.handler.as_ref(),
            sidecar: false,
        };
        let records = create_records(ctx, &id, container, &image, kind, undo).await?;
        create_task(ctx, &id, container, records, undo).await?;
        push_event(events, "Created", container);
        if ctx.start_deferred() {
            // The agent starts it once the init containers it took over have completed.
            return Ok(());
        }
        start_in_ready_sandbox(ctx, &id, container, events).await
    }
}

/// The OCI runtime's name in labels and annotations.
pub const NAME: &str = "oci";

impl RuntimeDriver for OciRuntime {
    fn name(&self) -> &str {
        NAME
    }

    fn runs_tasks(&self) -> bool {
        true
    }

    fn info<'a>(&'a self, _settings: &'a Settings) -> BoxFuture<'a, RuntimeInfo> {
        Box::pin(async {
            RuntimeInfo {
                claims: "every image no other runtime claims".into(),
                version: format!(
                    "{} via {}",
                    binary_version("runc"),
                    crate::containerd::DEFAULT_RUNTIME_TYPE
                ),
            }
        })
    }

    fn claim<'a>(
        &'a self,
        _settings: &'a Settings,
        _container: &'a Container,
        probe: &'a ImageProbe,
    ) -> BoxFuture<'a, Claim> {
        let claim = match (&probe.local_file, &probe.local_dir, &probe.url_scheme) {
            (Some(path), _, _) => Claim::Decline(format!("{} is a local file, not an OCI image", path.display())),
            (_, Some(path), _) => Claim::Decline(format!("{} is a local directory, not an OCI image", path.display())),
            (_, _, Some(scheme)) => Claim::Decline(format!(
                "{} is a {scheme}: URL, not an OCI image, and no installed plugin claims {scheme}:",
                probe.reference
            )),
            _ if probe.wasi_program.is_some() => Claim::Decline(format!(
                "{} is a wasi/wasm image (a WebAssembly module, not a Linux program)",
                probe.reference
            )),
            _ => Claim::Accept,
        };
        Box::pin(async move { claim })
    }

    fn prepare<'a>(
        &'a self,
        client: &'a Client,
        _settings: &'a Settings,
        container: &'a Container,
        _probe: &'a ImageProbe,
        _events: &'a mut Vec<PodEvent>,
    ) -> BoxFuture<'a, Result<Payload, MemberError>> {
        Box::pin(async move {
            // `create` pulled it already, per imagePullPolicy.
            let name = crate::image::reference::normalize(&container.image);
            let image = crate::image::resolve_image(client, &name).await?;
            Ok(Box::new(image) as Payload)
        })
    }

    fn start<'a>(
        &'a self,
        ctx: &'a PodContext<'a>,
        members: Vec<PreparedMember<'a>>,
        undo: &'a mut Undo,
        events: &'a mut Vec<PodEvent>,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async move {
            for member in members {
                self.start_one(ctx, member, undo, events).await?;
            }
            Ok(())
        })
    }

    fn observe<'a>(
        &'a self,
        ctx: &'a ObserveContext<'a>,
        pod: &'a PodView,
    ) -> BoxFuture<'a, HashMap<String, Observation>> {
        Box::pin(async move { task_status::observe(ctx, pod).await })
    }

    fn halt<'a>(
        &'a self,
        client: &'a Client,
        members: Vec<&'a MemberView>,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async move {
            let stopping = members
                .into_iter()
                .map(|member| client.stop_task(&member.id, signal_number(&member.stop_signal), grace));
            for result in futures_util::future::join_all(stopping).await {
                result?;
            }
            Ok(())
        })
    }

    fn resume<'a>(
        &'a self,
        client: &'a Client,
        settings: &'a Settings,
        pod: &'a PodView,
        members: Vec<&'a MemberView>,
        now: bool,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async move {
            for member in members {
                // A start killed midway can leave a task created but not started, or one whose
                // process already ended: those are made again; a running one is kept.
                match client.get_task(&member.id).await? {
                    Some(task) if matches!(task.state, TaskState::Running | TaskState::Paused | TaskState::Pausing) => {
                        continue
                    }
                    Some(_) => {
                        let _ = client.kill_task(&member.id, crate::containerd::SIGKILL, true).await;
                        client.delete_task(&member.id).await?;
                    }
                    None => {}
                }
                let log = member.log_path.clone().ok_or_else(|| MemberError::Damaged {
                    pod: pod.name.clone(),
                    message: format!("member {} records no log path", member.name),
                })?;
                create_task_logging_to(client, settings, member, &log).await?;
                if now {
                    client.start_task(&member.id).await?;
                }
            }
            Ok(())
        })
    }

    fn wait_exited<'a>(&'a self, client: &'a Client, members: Vec<&'a MemberView>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for member in members {
                let _ = client.wait_task(&member.id).await;
            }
        })
    }

    fn stop<'a>(
        &'a self,
        client: &'a Client,
        _settings: &'a Settings,
        _pod: &'a PodView,
        members: Vec<&'a MemberView>,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async move {
            // Members stop in parallel, each with the whole grace period, as kubelet does.
            let mut stopping = JoinSet::new();
            for member in members {
                let client = client.clone();
                let id = member.id.clone();
                let signal = signal_number(&member.stop_signal);
                stopping.spawn(async move {
                    client.stop_task(&id, signal, grace).await?;
                    client.delete_container(&id).await?;
                    client.remove_snapshot(&id).await?;
                    Ok::<(), MemberError>(())
                });
            }
            let mut first_error = None;
            while let Some(joined) = stopping.join_next().await {
                if let Ok(Err(e)) = joined {
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }
}

/// The first line of `BINARY --version` (runc, crun and runsc print their version there).
pub fn binary_version(binary: &str) -> String {
    match std::process::Command::new(binary).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        Ok(out) => format!("{binary}: `--version` exited with {}", out.status),
        Err(e) => format!("{binary}: {e}"),
    }
}
