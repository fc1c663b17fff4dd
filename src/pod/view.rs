//! Pods as commands see them: the records assembled (see [`crate::record::view`]) and each
//! member's state observed by its runtime.

use std::collections::HashMap;

use super::*;
use crate::containerd::{ContainerRecord, TaskInfo};
use crate::member::{ObserveContext, Registry};
use crate::record::view::{assemble, managed_filter};

pub(crate) async fn list_sandboxes(client: &Client) -> Result<Vec<ContainerRecord>, PodError> {
    let filter = format!("{},labels.\"{LABEL_KIND}\"==sandbox", managed_filter());
    Ok(client.list_containers(&[filter]).await?)
}

/// All pods of the containerd namespace, sorted by name.
pub async fn list_pods(client: &Client, settings: &Settings, registry: &Registry) -> Result<Vec<PodView>, PodError> {
    let containers = client.list_containers(&[managed_filter()]).await?;
    let tasks = client.list_tasks().await?;
    let mut pods = assemble(containers, &tasks);
    observe(client, settings, registry, &mut pods, &tasks).await;
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(pods)
}

/// Asks each member runtime for the state of its members (one round trip per runtime and pod).
async fn observe(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pods: &mut [PodView],
    tasks: &HashMap<String, TaskInfo>,
) {
    let ctx = ObserveContext {
        client,
        settings,
        tasks,
    };
    for pod in pods.iter_mut() {
        let mut observed = HashMap::new();
        let mut in_agent = Vec::new();
        for (runtime, members) in registry.members_by_runtime(pod) {
            observed.extend(runtime.observe(&ctx, pod).await);
            if runtime.in_agent() {
                in_agent.extend(members.iter().map(|m| m.id.clone()));
            }
        }
        for member in pod.members.iter_mut() {
            member.in_agent = in_agent.contains(&member.id);
        }
        for member in &mut pod.members {
            if let Some(o) = observed.remove(&member.id) {
                member.state = o.state;
                member.ready = o.ready;
                member.restarts = o.restarts;
                member.pid = o.pid;
                member.probe = o.probe;
                member.own_process = o.own_process;
            }
        }
    }
}

pub async fn find_pod(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    name: &str,
) -> Result<Option<PodView>, PodError> {
    // Quoted: pod names may hold '.' and '-', which containerd's filter syntax would otherwise split on.
    let filter = format!("{},labels.\"{LABEL_POD_NAME}\"=={name:?}", managed_filter());
    let containers = client.list_containers(&[filter]).await?;
    if containers.is_empty() {
        return Ok(None);
    }
    let tasks = client.list_tasks().await?;
    let mut pods = assemble(containers, &tasks);
    pods.truncate(1);
    observe(client, settings, registry, &mut pods, &tasks).await;
    Ok(pods.into_iter().next())
}
