//! `lifecycle` hooks, run by the agent from inside the pod's network namespace: `postStart` once
//! per run of a member, right after it started (a failure kills the run, which then restarts per
//! the policy, with a `FailedPostStartHook` event); `preStop` before the stop signal of a stop or
//! delete, within the grace period (a sidecar's after the app containers ended, by podctl). Their actions are the probes' (exec, httpGet, tcpSocket), or a
//! sleep.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::probes::Target;
use super::SharedClient;
use crate::agent::action::{run_hook, PreStopRun};
use crate::agent::protocol::HookDef;
use crate::containerd::Client;
use crate::record::{events::record as record_event, PodEvent};

/// A postStart hook runs at most this long: a create never waits on it, but a hook that hangs
/// should not hold a member's run forever either.
const POST_START_TIMEOUT: Duration = Duration::from_secs(300);

/// On an OCI member's record: the run (task PID) whose postStart hook was started, so an agent
/// that restarts does not run it twice.
const LABEL_POST_START_RUN: &str = "podctl.io/post-start-run";

/// One member with hooks, as the agent sees it.
#[derive(Clone)]
pub(super) struct Hooked {
    pub name: String,
    /// Its container record, for OCI members (where the run of the last postStart is kept).
    pub record_id: Option<String>,
    pub post_start: Option<HookDef>,
    pub pre_stop: Option<HookDef>,
    pub sidecar: bool,
    pub target: Target,
}

/// Watches each member with a postStart hook and runs it once per run.
pub(super) fn spawn_post_start(
    members: &[Hooked],
    host: String,
    sandbox_id: String,
    containerd: SharedClient,
    stopping: watch::Receiver<bool>,
) {
    for member in members.iter().filter(|m| m.post_start.is_some()).cloned() {
        let (host, sandbox_id, containerd, mut stopping) =
            (host.clone(), sandbox_id.clone(), containerd.clone(), stopping.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = watch_post_start(member, &host, &sandbox_id, containerd) => {}
                _ = stopping.changed() => {}
            }
        });
    }
}

async fn watch_post_start(member: Hooked, host: &str, sandbox_id: &str, containerd: SharedClient) {
    let client = loop {
        match containerd.get().await {
            Some(c) => break c,
            None => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    };
    let hook = member.post_start.clone().expect("filtered on it");
    let mut last_run = None;
    loop {
        let current = member.target.current_run(&client).await;
        if current.is_none() || current == last_run {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        last_run = current;
        let run_text = current.map(|r| r.to_string()).unwrap_or_default();
        if let Some(id) = &member.record_id {
            let record = client.get_container(id).await.ok().flatten();
            if record.is_some_and(|r| r.labels.get(LABEL_POST_START_RUN) == Some(&run_text)) {
                continue; // an earlier agent ran it for this run
            }
            let _ = client.set_labels(id, &[(LABEL_POST_START_RUN, run_text.clone())]).await;
        }
        if let Err(why) = run_hook(&client, &hook, member.target.oci_id(), host, POST_START_TIMEOUT).await {
            eprintln!("agent: {}: postStart hook failed: {why}; killing it", member.name);
            let message = format!("PostStartHook failed: {why}");
            let event = PodEvent::warning("FailedPostStartHook", &member.name, message);
            let _ = record_event(&client, sandbox_id, event).await;
            member.target.kill(&client).await;
        }
    }
}

/// Runs the app containers' preStop hooks together, within `grace`. A sidecar's runs later, just
/// before it is stopped, after the app containers have ended (`action::pre_stop_from_host`).
pub(super) async fn pre_stop_all(client: &Client, members: &[Hooked], host: &str, sandbox_id: &str, grace: Duration) {
    let deadline = Instant::now() + grace;
    let apps = members.iter().filter(|m| !m.sidecar && m.pre_stop.is_some());
    let left = deadline.saturating_duration_since(Instant::now());
    futures_util::future::join_all(apps.map(|m| pre_stop(client, m, host, sandbox_id, left))).await;
}

/// Runs one member's preStop hook, if it runs, for at most `left`.
pub(super) async fn pre_stop(client: &Client, member: &Hooked, host: &str, sandbox_id: &str, left: Duration) {
    let Some(hook) = &member.pre_stop else { return };
    if member.target.current_run(client).await.is_none() {
        return;
    }
    let run = PreStopRun {
        sandbox_id,
        name: &member.name,
        exec_in: member.target.oci_id(),
        host,
    };
    run.run(client, hook, left).await;
}
