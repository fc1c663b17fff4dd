//! A pod's init containers and sidecars on the OCI runtime, in their init order: an init container
//! runs to completion in the ready sandbox (or is handed to the pod's agent, which retries it); a
//! sidecar is started and left running.

use super::container_record::{create_records, init_record, interactive_of, RecordKind};
use super::member_task::{create_task, push_event, start_in_ready_sandbox};
use crate::agent::protocol::InitRef;
use crate::image::ResolvedImage;
use crate::manifest::Container;
use crate::member::pod_context::PodContext;
use crate::member::undo::Undo;
use crate::member::MemberError;
use crate::record::{member_id, PodEvent, LABEL_INIT_STATUS};

/// The containerd ID of the `index`-th init container when it is a sidecar: a member's ID, numbered
/// after the app containers where the name is too long to be part of it.
pub fn sidecar_id(ctx: &PodContext<'_>, container: &Container, index: usize) -> String {
    member_id(ctx.sandbox_id, &container.name, ctx.pod.spec.containers.len() + index)
}

/// Starts a sidecar (an init container with `restartPolicy: Always`) in its init order: a member
/// record and task, started in the ready sandbox without waiting for it to end. One with a
/// startup probe, or one after an init container the agent took over, is handed to the agent,
/// which starts it and holds the init containers after it until the probe passes: `create` never
/// waits for a probe.
pub async fn start_sidecar(
    ctx: &PodContext<'_>,
    index: usize,
    container: &Container,
    image: &ResolvedImage,
    undo: &mut Undo,
    events: &mut Vec<PodEvent>,
) -> Result<(), MemberError> {
    let id = sidecar_id(ctx, container, index);
    let kind = RecordKind {
        kind: "container",
        index,
        handler: ctx.runtime_class.containerd.as_ref(),
        sidecar: true,
    };
    let records = create_records(ctx, &id, container, image, kind, undo).await?;
    create_task(ctx, &id, container, records, undo).await?;
    push_event(events, "Created", container);
    if ctx.start_deferred() || container.startup_probe.is_some() {
        ctx.hand_over_init(InitRef {
            name: container.name.clone(),
            id,
            log_dir: ctx.log_dir.join(&container.name),
            index,
            total: ctx.pod.spec.init_containers.len(),
            sidecar: true,
            stdio: interactive_of(container),
        });
        return Ok(());
    }
    start_in_ready_sandbox(ctx, &id, container, events).await
}

/// Runs one init container in the ready sandbox. Under `restartPolicy: Never` a failure fails the
/// create (which rolls back, showing the end of its output). Under `Always` and `OnFailure` the
/// agent retries a failure as kubelet does, with the crash-loop backoff and for as long as it
/// takes: this init container and the ones after it are handed over ([`PodContext::hand_over_init`]),
/// with their records kept, and the members are created but started by the agent afterwards.
pub async fn run_init(
    ctx: &PodContext<'_>,
    index: usize,
    container: &Container,
    image: &ResolvedImage,
    undo: &mut Undo,
    events: &mut Vec<PodEvent>,
) -> Result<(), MemberError> {
    let client = ctx.client;
    // Numbered after the app containers and sidecars where the name is too long to be part of it.
    let id = member_id(
        ctx.sandbox_id,
        &format!("init-{}", container.name),
        ctx.pod.spec.containers.len() + ctx.pod.spec.init_containers.len() + index,
    );
    let total = ctx.pod.spec.init_containers.len();
    let handover = InitRef {
        name: container.name.clone(),
        id: id.clone(),
        log_dir: ctx.log_dir.join(&container.name),
        index,
        total,
        sidecar: false,
        stdio: interactive_of(container),
    };
    if ctx.start_deferred() {
        // An earlier init container was handed over: this one waits for it, in the agent.
        create_records(ctx, &id, container, image, init_record(ctx, index), undo).await?;
        ctx.hand_over_init(handover);
        return Ok(());
    }
    ctx.wait_sandbox_ready().await?;
    // `podctl get` shows the progress from the sandbox record while `create` waits here.
    let show = |status: String| async move {
        let _ = client.set_labels(ctx.sandbox_id, &[(LABEL_INIT_STATUS, status)]).await;
    };
    show(format!("Init:{index}/{total}")).await;
    let records = create_records(ctx, &id, container, image, init_record(ctx, index), undo).await?;
    create_task(ctx, &id, container, records, undo).await?;
    client.start_task(&id).await?;
    // A create never waits without bound: an init container still running after --init-wait is
    // the agent's to wait for (it applies the restart policy to how it ends), with the ones after
    // it; create returns with the pod in Init:N/M.
    let exit = match tokio::time::timeout(ctx.settings.init_wait, client.wait_task(&id)).await {
        Ok(exit) => exit?,
        Err(_) => {
            events.push(PodEvent::normal(
                "Started",
                &container.name,
                format!(
                    "Init container {} still runs after {}s; the pod's agent waits for it",
                    container.name,
                    ctx.settings.init_wait.as_secs_f64()
                ),
            ));
            ctx.hand_over_init(handover);
            return Ok(());
        }
    };
    // Task delete waits for the log driver: the log is complete afterwards.
    client.delete_task(&id).await?;
    if exit.code == 0 {
        client.delete_container(&id).await?;
        client.remove_snapshot(&id).await?;
        events.push(PodEvent::normal(
            "Completed",
            &container.name,
            format!("Init container {} completed", container.name),
        ));
        return Ok(());
    }
    if format!("{:?}", ctx.pod.spec.restart_policy) != "Never" {
        show("Init:CrashLoopBackOff".into()).await;
        events.push(PodEvent::warning(
            "BackOff",
            &container.name,
            format!(
                "Init container {} exited with code {}; the pod's agent retries it",
                container.name, exit.code
            ),
        ));
        ctx.hand_over_init(handover);
        return Ok(());
    }
    let raw = std::fs::read(ctx.log_path(container)?).unwrap_or_default();
    let log = String::from_utf8_lossy(&crate::logs::render(&raw, false)).into_owned();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(MemberError::InitFailed {
        pod: ctx.pod.metadata.name.clone(),
        container: container.name.clone(),
        code: exit.code,
        output: tail.join("\n"),
    })
}
