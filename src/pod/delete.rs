//! `podctl delete`: members get their stop signal and the grace period, then SIGKILL; then the
//! sandbox, the records, the snapshots, the network and the pod's files go.

use std::time::Duration;

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
    let pod = find_pod(client, settings, registry, name)
        .await?
        .ok_or_else(|| PodError::NotFound {
            name: name.to_string(),
            namespace: client.namespace().to_string(),
        })?;
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
    let agent_stop = crate::agent::client::stop(&pod.name, &pod_dir, Duration::from_secs(grace)).await;
    // Each runtime stops its members; together they get one grace period.
    let mut first_error: Option<PodError> = agent_stop.err().map(PodError::from);
    let groups = registry.members_by_runtime(&pod);
    let stops: Vec<_> = groups
        .iter()
        .map(|(runtime, members)| runtime.stop(client, settings, &pod, members.clone(), Duration::from_secs(grace)))
        .collect();
    let members = async {
        let mut results: Vec<Result<(), PodError>> = futures_util::future::join_all(stops)
            .await
            .into_iter()
            .map(|r| r.map_err(PodError::from))
            .collect();
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
    // A pod whose create died before its network was recorded still has a netns by its ID; CNI
    // DEL without prevResult then releases whatever the default network reserved.
    let network = pod.network.clone().unwrap_or_else(|| NetworkRecord {
        netns: std::path::Path::new(crate::sandbox::netns::NETNS_RUN_DIR).join(netns_name(&pod.sandbox_id)),
        network: crate::sandbox::cni::CniNetwork::default_network().raw,
        bin_dirs: settings.cni_bin_dirs.clone(),
        result: None,
        port_mappings: Vec::new(),
    });
    let mut result = network.teardown(&pod.sandbox_id).await.map_err(PodError::from);
    let state_dir = settings.pod_state_dir(client, &pod.sandbox_id);
    let log_dir = settings
        .log_dir
        .join(format!("{}_{}_{}", pod.namespace, pod.name, pod.uid));
    for dir in [state_dir, log_dir] {
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound && result.is_ok() => result = Err(io_error(&dir)(e)),
            _ => {}
        }
    }
    result
}
