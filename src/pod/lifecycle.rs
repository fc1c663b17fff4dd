//! `podctl stop`, `start` and `restart`: members stop with the grace period and start again in the
//! same sandbox. The pause task and the network stay (they hold the pod's namespaces and IP), so a
//! stopped pod keeps its identity; the sandbox record says it is stopped, so nothing restarts it.
//! Each claims the pod's intent (one operation per pod at a time): a stop or start killed midway
//! is taken over by the next, which first lets the killed one's late calls land in containerd
//! (a task create it had sent, which would collide with the next one's).

use std::time::Duration;

use super::intent::{self, IntentFile, Op};
use super::*;
use crate::agent::client as agent;
use crate::member::Registry;

async fn find_existing(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    name: &str,
) -> Result<PodView, PodError> {
    find_pod(client, settings, registry, name)
        .await?
        .ok_or_else(|| PodError::NotFound {
            name: name.to_string(),
            namespace: client.namespace().to_string(),
        })
}

/// Claims the pod for a stop or start; returns the claim and the pod as it is once the late calls
/// of an interrupted operation it took over have landed.
async fn claim(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    name: &str,
    op: Op,
) -> Result<(IntentFile, PodView), PodError> {
    let pod = find_existing(client, settings, registry, name).await?;
    let ours = super::delete::intent_on(op, client, settings, &pod);
    let claimed = intent::claim(settings, client, &ours)?;
    if claimed.settle(&ours).await {
        match find_existing(client, settings, registry, name).await {
            Ok(pod) => return Ok((claimed, pod)),
            Err(e) => {
                claimed.done();
                return Err(e);
            }
        }
    }
    Ok((claimed, pod))
}

pub async fn stop_pod(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    name: &str,
    grace: Option<u64>,
) -> Result<(), PodError> {
    let (claimed, pod) = claim(client, settings, registry, name, Op::Stop).await?;
    // A stop that fails has ended all the same: the next one needs no takeover.
    let stopped = stop_claimed(client, settings, registry, &pod, grace).await;
    claimed.done();
    stopped
}

async fn stop_claimed(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pod: &PodView,
    grace: Option<u64>,
) -> Result<(), PodError> {
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
    // The agent runs the preStop hooks first: they count against the grace period.
    let deadline = std::time::Instant::now() + grace;
    agent::stop(&pod.name, &dir, grace).await?;
    // The app containers first, then the sidecars: all within the one grace period.
    for step in registry.stop_order(pod) {
        super::sidecar_pre_stops(
            client,
            pod,
            &step,
            deadline.saturating_duration_since(std::time::Instant::now()),
        )
        .await;
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let halts = step
            .iter()
            .map(|(runtime, members)| runtime.halt(client, members.clone(), left));
        for result in futures_util::future::join_all(halts).await {
            result?;
        }
    }
    Ok(())
}

pub async fn start_pod(client: &Client, settings: &Settings, registry: &Registry, name: &str) -> Result<(), PodError> {
    let (claimed, pod) = claim(client, settings, registry, name, Op::Start).await?;
    let started = start_claimed(client, settings, registry, &pod).await;
    claimed.done();
    started
}

async fn start_claimed(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pod: &PodView,
) -> Result<(), PodError> {
    if pod.sandbox.labels.get(LABEL_STOPPED).is_none_or(|v| v != "true") {
        return Err(PodError::Damaged {
            pod: pod.name.clone(),
            message: "it is not stopped; `podctl restart` stops and starts it".into(),
        });
    }
    // Init containers still on record are the agent's to finish; it starts the members then.
    let now = pod.init_ids.is_empty();
    let mut in_agent = false;
    for (runtime, members) in registry.members_by_runtime(pod) {
        in_agent |= runtime.in_agent();
        runtime.resume(client, settings, pod, members, now).await?;
    }
    // The agent supervises again and starts the members it hosts.
    let dir = settings.pod_state_dir(client, &pod.sandbox_id);
    agent::spawn(&pod.name, &dir)?;
    if in_agent {
        agent::wait_ready(&pod.name, &dir, Duration::from_secs(30)).await?;
    }
    client
        .set_labels(&pod.sandbox_id, &[(LABEL_STOPPED, String::new())])
        .await?;
    Ok(())
}
