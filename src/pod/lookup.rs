//! Finding and listing pods as commands see them: the records assembled (see
//! [`crate::record::pod_view`]), merged with the intents of interrupted operations, and each
//! member's state observed by its runtime.

use std::collections::HashMap;

use super::*;
use crate::containerd::{ContainerRecord, TaskInfo};
use crate::member::{ObserveContext, Registry};
use crate::record::pod_view::{assemble, managed_filter};

pub(crate) async fn list_sandboxes(client: &Client) -> Result<Vec<ContainerRecord>, PodError> {
    let filter = format!("{},labels.\"{LABEL_KIND}\"==sandbox", managed_filter());
    Ok(client.list_containers(&[filter]).await?)
}

/// All pods of the containerd namespace, sorted by name.
pub async fn list_pods(client: &Client, settings: &Settings, registry: &Registry) -> Result<Vec<PodView>, PodError> {
    let containers = client.list_containers(&[managed_filter()]).await?;
    let tasks = client.list_tasks().await?;
    let mut pods = assemble(containers, &tasks);
    merge_intents(&mut pods, super::intent::read_all(settings, client));
    mark_lost(&mut pods);
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
                member.message = o.message;
            }
        }
    }
}

/// Interrupted creates and deletes (their intents outlived their podctl) mark their pods, and
/// stand for the pod where no record exists any more (or yet); the intent's network record
/// stands for one the sandbox lacks, so teardown uses the CNI config the create used.
fn merge_intents(pods: &mut Vec<PodView>, intents: Vec<super::intent::Intent>) {
    for intent in intents {
        // (An interrupted stop or start left the records whole: they tell the pod's state.)
        let interrupted = !intent.owner.alive() && intent.op.leaves_a_teardown();
        match pods.iter_mut().find(|p| p.sandbox_id == intent.sandbox_id) {
            Some(pod) => {
                if pod.network.is_none() {
                    pod.network = Some(intent.network.clone());
                }
                if interrupted {
                    pod.interrupted = Some(intent.interruption());
                }
            }
            None if interrupted => pods.push(view_of_intent(&intent)),
            // Being made right now: it shows once its sandbox record exists.
            None => {}
        }
    }
}

fn mark_lost(pods: &mut [PodView]) {
    for pod in pods {
        pod.lost_to_restart = lost_to_restart(pod);
    }
}

/// Whether the pod lost its sandbox to a host restart: no sandbox task, no netns, not stopped
/// and not already settled by a restore.
fn lost_to_restart(pod: &PodView) -> bool {
    let label = |key: &str| pod.sandbox.labels.get(key).is_some_and(|v| !v.is_empty());
    pod.sandbox_task.is_none()
        && pod.interrupted.is_none()
        && !label(LABEL_STOPPED)
        && !label(LABEL_HOST_RESTARTED)
        && pod.pod.is_some()
        && pod
            .network
            .as_ref()
            .is_some_and(|n| !crate::sandbox::netns::is_namespace(&n.netns))
}

fn view_of_intent(intent: &super::intent::Intent) -> PodView {
    let labels = HashMap::from([
        (LABEL_POD_NAME.to_string(), intent.pod.clone()),
        (LABEL_POD_NAMESPACE.to_string(), intent.namespace.clone()),
        (LABEL_POD_UID.to_string(), intent.uid.clone()),
        (LABEL_SANDBOX_ID.to_string(), intent.sandbox_id.clone()),
        (LABEL_MANAGED_BY.to_string(), "podctl".to_string()),
        (LABEL_KIND.to_string(), "sandbox".to_string()),
    ]);
    PodView {
        name: intent.pod.clone(),
        namespace: intent.namespace.clone(),
        uid: intent.uid.clone(),
        sandbox_id: intent.sandbox_id.clone(),
        pod: None,
        created: Some(intent.started_at),
        sandbox: ContainerRecord {
            id: intent.sandbox_id.clone(),
            image: String::new(),
            labels,
            snapshot_key: String::new(),
            created: Some(intent.started_at),
            extensions: HashMap::new(),
            spec_json: Vec::new(),
        },
        sandbox_task: None,
        network: Some(intent.network.clone()),
        members: Vec::new(),
        init_ids: Vec::new(),
        events: Vec::new(),
        interrupted: Some(intent.interruption()),
        lost_to_restart: false,
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
    let intent = super::intent::find(settings, client, name);
    let interrupted = intent
        .as_ref()
        .is_some_and(|i| !i.owner.alive() && i.op.leaves_a_teardown());
    if containers.is_empty() && !interrupted {
        return Ok(None);
    }
    let tasks = client.list_tasks().await?;
    let mut pods = assemble(containers, &tasks);
    merge_intents(&mut pods, intent.into_iter().collect());
    mark_lost(&mut pods);
    pods.truncate(1);
    observe(client, settings, registry, &mut pods, &tasks).await;
    Ok(pods.into_iter().next())
}
