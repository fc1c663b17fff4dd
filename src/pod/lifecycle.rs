//! `podctl stop`, `start` and `restart`: members stop with the grace period and start again in the
//! same sandbox. The pause task and the network stay (they hold the pod's namespaces and IP), so a
//! stopped pod keeps its identity; the sandbox record says it is stopped, so nothing restarts it.

use std::time::Duration;

use super::*;
use crate::agent::client as agent;
use crate::containerd::signal_number;

async fn find_existing(client: &Client, settings: &Settings, name: &str) -> Result<PodView, PodError> {
    find_pod(client, settings, name)
        .await?
        .ok_or_else(|| PodError::NotFound {
            name: name.to_string(),
            namespace: client.namespace().to_string(),
        })
}

pub async fn stop_pod(client: &Client, settings: &Settings, name: &str, grace: Option<u64>) -> Result<(), PodError> {
    let pod = find_existing(client, settings, name).await?;
    let grace = Duration::from_secs(
        grace
            .or_else(|| pod.pod.as_ref().map(|p| p.spec.termination_grace_period_seconds))
            .unwrap_or(30),
    );
    // Mark first: a supervisor that sees the exits must not take them for crashes.
    client
        .set_labels(&pod.sandbox_id, &[(LABEL_STOPPED, "true".into())])
        .await?;
    let dir = settings.pod_state_dir(client, &pod.sandbox_id);
    agent::stop(&pod.name, &dir, grace).await?;
    let mut stopping = Vec::new();
    for member in pod.members.iter().filter(|m| m.runtime == "oci") {
        stopping.push(client.stop_task(&member.id, signal_number(&member.stop_signal), grace));
    }
    for result in futures_util::future::join_all(stopping).await {
        result?;
    }
    Ok(())
}

pub async fn start_pod(client: &Client, settings: &Settings, name: &str) -> Result<(), PodError> {
    let pod = find_existing(client, settings, name).await?;
    if pod.sandbox.labels.get(LABEL_STOPPED).is_none_or(|v| v != "true") {
        return Err(PodError::Damaged {
            pod: name.to_string(),
            message: "it is not stopped; `podctl restart` stops and starts it".into(),
        });
    }
    for member in pod.members.iter().filter(|m| m.runtime == "oci") {
        if client.get_task(&member.id).await?.is_some() {
            continue;
        }
        let log = member.log_path.clone().ok_or_else(|| PodError::Damaged {
            pod: name.to_string(),
            message: format!("member {} records no log path", member.name),
        })?;
        let rootfs = client.snapshot_mounts(&member.id).await?;
        client
            .create_task(&member.id, rootfs, &crate::logs::driver::output_uri(&log))
            .await?;
        // Init containers still on record are the agent's to finish; it starts the members then.
        if pod.init_ids.is_empty() {
            client.start_task(&member.id).await?;
        }
    }
    // The agent supervises again and starts the WASM members.
    let dir = settings.pod_state_dir(client, &pod.sandbox_id);
    agent::spawn(&pod.name, &dir)?;
    if pod.members.iter().any(|m| m.runtime != "oci") {
        agent::wait_ready(&pod.name, &dir, Duration::from_secs(30)).await?;
    }
    client
        .set_labels(&pod.sandbox_id, &[(LABEL_STOPPED, String::new())])
        .await?;
    Ok(())
}
