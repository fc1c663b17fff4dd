//! `podctl delete`: members get their stop signal and the grace period, then SIGKILL; then the
//! sandbox, the records, the snapshots, the network and the pod's files go.

use std::time::Duration;

use super::intent::{self, Intent, Op};
use super::*;
use crate::containerd::SIGKILL;
use crate::member::Registry;
use crate::record::{NetworkRecord, PodView};

pub struct DeleteOptions {
    /// Overrides the pod's terminationGracePeriodSeconds.
    pub grace_period: Option<u64>,
}

pub async fn delete_pod(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    name: &str,
    options: &DeleteOptions,
) -> Result<(), PodError> {
    finish_others_interrupted(client, settings, registry, name).await;
    for what in stop_orphan_agents(settings, true).await {
        eprintln!("stopped the {what}");
    }
    delete_one(client, settings, registry, name, options).await
}

/// Stops the agents whose pod directory is gone (see [`crate::agent::client::orphan_agents`]):
/// `delete` and `gc` do, so that a later pod never shares an IP or host port with a lost one's
/// namespace. Returns what was found; `stop: false` only looks (`gc --dry-run`).
pub(crate) async fn stop_orphan_agents(settings: &Settings, stop: bool) -> Vec<String> {
    let orphans = crate::agent::client::orphan_agents(&settings.state_dir);
    if stop && !orphans.is_empty() {
        crate::agent::client::stop_orphans(&orphans, Duration::from_secs(5)).await;
    }
    orphans
        .iter()
        .map(|agent| {
            let role = if agent.monitor { "agent monitor" } else { "agent" };
            format!(
                "{role} (pid {}) of a pod whose state directory {} is gone",
                agent.pid,
                agent.pod_dir.display()
            )
        })
        .collect()
}

/// `delete_pod` without the automatic cleanup of other pods (which uses this).
async fn delete_one(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    name: &str,
    options: &DeleteOptions,
) -> Result<(), PodError> {
    let pod = find_pod(client, settings, registry, name)
        .await?
        .ok_or_else(|| PodError::NotFound {
            name: name.to_string(),
            namespace: client.namespace().to_string(),
        })?;
    // On disk before anything goes: a delete killed midway is finished by the next one (or gc),
    // even once every record is gone.
    let intent = intent_on(Op::Delete, client, settings, &pod);
    let claimed = intent::claim(settings, client, &intent)?;
    let pod = if claimed.settle(&intent).await {
        // The intent is ours now: the view no longer says the operation was interrupted.
        let interrupted = pod.interrupted.clone();
        let mut again = find_pod(client, settings, registry, name).await?.unwrap_or(pod);
        again.interrupted = again.interrupted.or(interrupted);
        again
    } else {
        pod
    };
    delete_claimed(client, settings, registry, pod, options).await?;
    // The lease of an interrupted create held what it wrote before the records did.
    if let Some(lease) = &claimed.intent.lease {
        client.delete_lease(lease).await?;
    }
    claimed.done();
    Ok(())
}

/// Removes what an interrupted create or delete of `pod` left (for `gc`, and for a create whose
/// host port it still maps): a delete with no grace period.
pub async fn finish_interrupted(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pod: &str,
) -> Result<(), PodError> {
    match delete_one(
        client,
        settings,
        registry,
        pod,
        &DeleteOptions { grace_period: Some(0) },
    )
    .await
    {
        Err(PodError::NotFound { .. }) => Ok(()),
        other => other,
    }
}

/// The automatic part of gc, at the start of every create and delete: what interrupted creates and
/// deletes of other pods left is removed (reading the intents directory is all it costs when there
/// are none). The pod being worked on is left to its own command, which reports on it.
pub(crate) async fn finish_others_interrupted(client: &Client, settings: &Settings, registry: &Registry, pod: &str) {
    for stale in intent::read_all(settings, client)
        .into_iter()
        .filter(|i| i.pod != pod && i.op.leaves_a_teardown() && !i.owner.alive())
    {
        eprintln!("pod {}: {}; removing what it left", stale.pod, stale.interruption());
        if let Err(e) = finish_interrupted(client, settings, registry, &stale.pod).await {
            eprintln!("warning: pod {}: {e}; `podctl gc` tries again", stale.pod);
        }
    }
}

/// The intent of operation `op` on an existing pod, naming what its teardown would need.
pub(super) fn intent_on(op: Op, client: &Client, settings: &Settings, pod: &PodView) -> Intent {
    let network = pod
        .network
        .clone()
        .unwrap_or_else(|| default_network_record(settings, &pod.sandbox_id));
    Intent::new(
        op,
        &pod.name,
        &pod.namespace,
        &pod.uid,
        &pod.sandbox_id,
        None,
        network,
        settings.pod_state_dir(client, &pod.sandbox_id),
        pod_log_dir(settings, pod),
    )
}

fn pod_log_dir(settings: &Settings, pod: &PodView) -> std::path::PathBuf {
    settings
        .log_dir
        .join(format!("{}_{}_{}", pod.namespace, pod.name, pod.uid))
}

/// What the network of a pod whose create died before recording one was: the default network,
/// with the netns named by its sandbox ID; CNI DEL without prevResult then releases whatever
/// that network reserved.
fn default_network_record(settings: &Settings, sandbox_id: &str) -> NetworkRecord {
    NetworkRecord {
        netns: std::path::Path::new(crate::sandbox::netns::NETNS_RUN_DIR).join(netns_name(sandbox_id)),
        network: crate::sandbox::cni::CniNetwork::default_network().raw,
        bin_dirs: settings.cni_bin_dirs.clone(),
        result: None,
        port_mappings: Vec::new(),
        host_network: false,
    }
}

async fn delete_claimed(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pod: PodView,
    options: &DeleteOptions,
) -> Result<(), PodError> {
    // `get pods` shows Terminating while the members get their grace period.
    let _ = client
        .set_labels(&pod.sandbox_id, &[(LABEL_TERMINATING, "true".into())])
        .await;
    let grace = options
        .grace_period
        .or_else(|| pod.pod.as_ref().map(|p| p.spec.termination_grace_period_seconds))
        .unwrap_or(30);

    // The agent first: it stops supervising (no restart of what is being stopped) and stops the
    // WASM members with the grace period.
    let pod_dir = settings.pod_state_dir(client, &pod.sandbox_id);
    // The agent runs the preStop hooks first: they count against the grace period.
    let deadline = std::time::Instant::now() + Duration::from_secs(grace);
    let agent_stop = crate::agent::client::stop(&pod.name, &pod_dir, Duration::from_secs(grace)).await;
    // Each runtime stops its members; together they get one grace period.
    let mut first_error: Option<PodError> = agent_stop.err().map(PodError::from);
    let members = async {
        let mut results: Vec<Result<(), PodError>> = Vec::new();
        // The app containers first, then the sidecars: all within the one grace period.
        for step in registry.stop_order(&pod) {
            super::sidecar_pre_stops(
                client,
                &pod,
                &step,
                deadline.saturating_duration_since(std::time::Instant::now()),
            )
            .await;
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let stops = step
                .iter()
                .map(|(runtime, members)| runtime.stop(client, settings, &pod, members.clone(), left));
            let stopped = futures_util::future::join_all(stops).await;
            results.extend(stopped.into_iter().map(|r| r.map_err(PodError::from)));
        }
        for id in &pod.init_ids {
            results.push(stop_and_remove(client, id, SIGKILL, Duration::ZERO).await);
        }
        // The pause process holds nothing worth a grace period.
        let sandbox = stop_and_remove(client, &pod.sandbox_id, SIGKILL, Duration::ZERO).await;
        results.into_iter().chain([sandbox]).find_map(Result::err)
    };
    // The network goes as soon as every member has exited (while their records are removed): the
    // netns is pinned, so CNI DEL (~30 iptables processes) needs no task, and in-flight requests
    // were served through the grace period.
    let network = async {
        for (runtime, members) in registry.members_by_runtime(&pod) {
            runtime.wait_exited(client, members).await;
        }
        remove_host_side(client, settings, &pod).await
    };
    let (members, network) = tokio::join!(members, network);
    if pod.interrupted.is_some() && client.end_orphaned_shim(&pod.sandbox_id).await {
        eprintln!(
            "pod {}: ended its shim, which an interrupted create left without tasks",
            pod.name
        );
    }
    for error in [members, network.err()].into_iter().flatten() {
        first_error.get_or_insert(error);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Stops a task, then removes its container record and snapshot.
async fn stop_and_remove(client: &Client, id: &str, signal: u32, grace: Duration) -> Result<(), PodError> {
    client.stop_task(id, signal, grace).await?;
    client.delete_container(id).await?;
    client.remove_snapshot(id).await?;
    Ok(())
}

async fn remove_host_side(client: &Client, settings: &Settings, pod: &PodView) -> Result<(), PodError> {
    let network = pod
        .network
        .clone()
        .unwrap_or_else(|| default_network_record(settings, &pod.sandbox_id));
    let mut result = network.teardown(&pod.sandbox_id).await.map_err(PodError::from);
    let state_dir = settings.pod_state_dir(client, &pod.sandbox_id);
    let log_dir = pod_log_dir(settings, pod);
    for dir in [state_dir, log_dir] {
        // (Secret volumes are tmpfs mounts in the state directory: detached first.)
        match crate::volume::remove_dir_with_mounts(&dir) {
            Err(e) if result.is_ok() => result = Err(io_error(&dir)(e)),
            _ => {}
        }
    }
    result
}
