//! How the OCI runtime sees its members now: containerd's task state as Kubernetes container state,
//! refined by what the member's record and the pod's agent say (OOM kills, host restarts, a
//! stopped pod, init containers still running, a restart backoff, probes, termination messages).

use std::collections::HashMap;

use super::NAME;
use crate::containerd::{TaskInfo, TaskState};
use crate::member::last_probe;
use crate::member::runtime_driver::{Observation, ObserveContext};
use crate::record::{
    MemberState, PodView, LABEL_HOST_RESTARTED, LABEL_INIT_STATUS, LABEL_OOM_KILLED, LABEL_RESTART_COUNT,
    LABEL_STOPPED, LABEL_WAITING,
};

/// The state of the OCI runtime's members of `pod`, by member container ID.
pub(super) async fn observe(ctx: &ObserveContext<'_>, pod: &PodView) -> HashMap<String, Observation> {
    // Probes run in the agent: ask it once, only if some member has one.
    let spec = |name: &str| pod.pod.as_ref().and_then(|p| p.container(name));
    let gated = |name: &str| spec(name).is_some_and(|c| c.readiness_probe.is_some() || c.startup_probe.is_some());
    let probed = |name: &str| spec(name).is_some_and(|c| c.liveness_probe.is_some()) || gated(name);
    let probes = if pod.members.iter().any(|m| m.runtime == NAME && probed(&m.name)) {
        let dir = ctx.settings.pod_state_dir(ctx.client, &pod.sandbox_id);
        crate::agent::client::status(&pod.name, &dir)
            .await
            .map(|r| r.probes)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    pod.members
        .iter()
        .filter(|m| m.runtime == NAME)
        .map(|m| {
            let task = ctx.tasks.get(&m.id);
            let label = |key: &str| m.record.labels.get(key).filter(|v| !v.is_empty());
            // containerd's /tasks/oom event can trail the exit under load; a SIGKILL under a
            // memory limit is then the kernel's OOM killer too.
            let oom = label(LABEL_OOM_KILLED).is_some_and(|v| v == "true")
                || (task.is_some_and(|t| t.exit_status == 137) && has_memory_limit(&m.record.spec_json));
            let mut state = observe_task(task, oom, m.record.created);
            // After a host restart, a restartPolicy Never pod does not run again.
            if task.is_none() && label(LABEL_HOST_RESTARTED).is_some() {
                state = MemberState::Terminated {
                    exit_code: 255,
                    reason: "Unknown".into(),
                    finished: label(LABEL_HOST_RESTARTED).and_then(|at| at.parse().ok()),
                };
            }
            if task.is_none() && pod.sandbox.labels.get(LABEL_STOPPED).is_some_and(|v| v == "true") {
                state = MemberState::Waiting {
                    reason: "Stopped".into(),
                };
            }
            // Created, and started by the agent once the init containers have completed.
            let initializing = pod.sandbox.labels.get(LABEL_INIT_STATUS).is_some_and(|s| !s.is_empty());
            if initializing && task.is_some_and(|t| t.state == TaskState::Created) {
                state = MemberState::Waiting {
                    reason: "PodInitializing".into(),
                };
            }
            // The supervisor waits out a backoff before restarting a member that exited.
            if let Some(waiting) = label(LABEL_WAITING) {
                if !matches!(state, MemberState::Running { .. }) {
                    state = MemberState::Waiting {
                        reason: waiting.clone(),
                    };
                }
            }
            let running = matches!(state, MemberState::Running { .. });
            let probed_ready = !gated(&m.name) || probes.iter().any(|p| p.name == m.name && p.started && p.ready);
            let message = match (&state, spec(&m.name)) {
                (MemberState::Terminated { exit_code, .. }, container) => {
                    let dir = ctx.settings.pod_state_dir(ctx.client, &pod.sandbox_id);
                    let fallback = container
                        .is_some_and(|c| c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"))
                        && *exit_code != 0;
                    crate::logs::termination_message(
                        &crate::logs::termination_file(&dir, &m.name),
                        m.log_path.as_deref().filter(|_| fallback),
                    )
                }
                _ => None,
            };
            let observation = Observation {
                message,
                ready: running && probed_ready,
                state,
                restarts: label(LABEL_RESTART_COUNT).and_then(|n| n.parse().ok()).unwrap_or(0),
                pid: task.map(|t| t.pid).filter(|p| *p > 0),
                own_process: true,
                probe: last_probe(&probes, &m.name),
            };
            (m.id.clone(), observation)
        })
        .collect()
}

/// containerd's task state as Kubernetes container state; `oom_killed` comes from containerd's
/// `/tasks/oom` event, recorded by the supervisor.
fn observe_task(task: Option<&TaskInfo>, oom_killed: bool, created: Option<f64>) -> MemberState {
    match task {
        None => MemberState::Waiting {
            reason: "ContainerCreating".into(),
        },
        Some(t) => match t.state {
            TaskState::Running | TaskState::Paused | TaskState::Pausing => MemberState::Running { since: created },
            TaskState::Created | TaskState::Unknown => MemberState::Waiting {
                reason: "ContainerCreating".into(),
            },
            TaskState::Stopped => MemberState::Terminated {
                exit_code: t.exit_status,
                reason: match (t.exit_status, oom_killed) {
                    (_, true) => "OOMKilled".into(),
                    (0, _) => "Completed".into(),
                    _ => "Error".into(),
                },
                finished: t.exited_at,
            },
        },
    }
}

fn has_memory_limit(spec_json: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(spec_json)
        .ok()
        .and_then(|s| s["linux"]["resources"]["memory"]["limit"].as_i64())
        .is_some()
}
