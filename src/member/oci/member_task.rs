//! A member's containerd task: created on its records with its output logged (and FIFOs for a
//! member with stdin or a tty), started once the sandbox is ready, and made again for a member's
//! next run (`podctl start`, a restore, a new image from `apply`).

use std::path::PathBuf;

use super::container_record::interactive_of;
use crate::containerd::{Client, RootfsMount};
use crate::logs::relay::{member_dir, Interactive};
use crate::manifest::Container;
use crate::member::pod_context::PodContext;
use crate::member::undo::{Step, Undo};
use crate::member::MemberError;
use crate::record::{
    MemberView, PodEvent, LABEL_LAST_RESTART, LABEL_LOG_PATH, LABEL_RESTART_COUNT, LABEL_SANDBOX_ID, LABEL_STDIO,
};
use crate::settings::Settings;

pub(super) fn push_event(events: &mut Vec<PodEvent>, reason: &str, container: &Container) {
    let message = format!("{reason} container {}", container.name);
    events.push(PodEvent::normal(reason, &container.name, message));
}

/// Starts a created member's task once the sandbox is ready (kubelet's order), with its event.
pub(super) async fn start_in_ready_sandbox(
    ctx: &PodContext<'_>,
    id: &str,
    container: &Container,
    events: &mut Vec<PodEvent>,
) -> Result<(), MemberError> {
    ctx.wait_sandbox_ready().await?;
    ctx.client.start_task(id).await?;
    push_event(events, "Started", container);
    Ok(())
}

/// The task (created, not started) on the records [`create_records`] made; recorded in `undo`.
pub(super) async fn create_task(
    ctx: &PodContext<'_>,
    id: &str,
    container: &Container,
    (rootfs, log_path): (Vec<RootfsMount>, PathBuf),
    undo: &mut Undo,
) -> Result<(), MemberError> {
    let pod_dir = ctx.settings.pod_state_dir(ctx.client, ctx.sandbox_id);
    create_member_task(
        ctx.client,
        id,
        rootfs,
        &log_path,
        ctx.settings.log_rotation,
        (interactive_of(container), &pod_dir, &container.name),
    )
    .await?;
    undo.push(Step::DeleteTask(id.to_string()));
    Ok(())
}

/// A member's task, its output logged to `log`; one with stdin or tty (`stdio`, with the pod's
/// directory and the member's name) gets FIFOs held by a relay for `podctl attach`.
pub(crate) async fn create_member_task(
    client: &Client,
    id: &str,
    rootfs: Vec<RootfsMount>,
    log: &std::path::Path,
    rotation: crate::logs::Rotation,
    (stdio, pod_dir, name): (Option<Interactive>, &std::path::Path, &str),
) -> Result<u32, MemberError> {
    let output = crate::logs::relay::task_output(log, rotation, stdio, pod_dir, name).map_err(|e| MemberError::Io {
        path: member_dir(pod_dir, name),
        cause: e,
    })?;
    let pid = client.create_task(id, rootfs, &output.io).await?;
    output.keep();
    Ok(pid)
}

/// A new task of an existing member record on its snapshot, its output logged to `log`
/// (`podctl start`, `podctl system restore`); its stdin and tty as its record says.
pub(crate) async fn create_task_logging_to(
    client: &Client,
    settings: &Settings,
    member: &MemberView,
    log: &std::path::Path,
) -> Result<u32, MemberError> {
    let rootfs = client.snapshot_mounts(&member.id).await?;
    let labels = &member.record.labels;
    let stdio = labels.get(LABEL_STDIO).and_then(|l| Interactive::from_label(l));
    let sandbox = labels.get(LABEL_SANDBOX_ID).cloned().unwrap_or_default();
    let pod_dir = settings.pod_state_dir(client, &sandbox);
    create_member_task(
        client,
        &member.id,
        rootfs,
        log,
        settings.log_rotation,
        (stdio, &pod_dir, &member.name),
    )
    .await
}

/// Starts a member's next run outside its agent (a restore after a reboot, a new image from
/// `apply`): a task logging to run file `restarts` next to its earlier runs (`fallback_log_dir`
/// when it records none), its restart count and log path recorded, plus `labels`.
pub(crate) async fn start_next_run(
    client: &Client,
    settings: &Settings,
    member: &MemberView,
    fallback_log_dir: &std::path::Path,
    restarts: u32,
    labels: &[(&str, String)],
) -> Result<(), MemberError> {
    let log_dir = member
        .log_path
        .as_ref()
        .and_then(|p| p.parent())
        .unwrap_or(fallback_log_dir);
    let log = crate::logs::run_file(log_dir, restarts);
    create_task_logging_to(client, settings, member, &log).await?;
    client.start_task(&member.id).await?;
    let mut recorded = vec![
        (LABEL_RESTART_COUNT, restarts.to_string()),
        (LABEL_LAST_RESTART, crate::record::now_secs().to_string()),
        (LABEL_LOG_PATH, log.to_string_lossy().into_owned()),
    ];
    recorded.extend(labels.iter().cloned());
    client.set_labels(&member.id, &recorded).await?;
    Ok(())
}
