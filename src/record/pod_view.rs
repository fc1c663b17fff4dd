//! [`PodView`] and [`MemberView`]: pods as rebuilt on every command from containerd alone: the sandbox container carries
//! the pod (spec, network, events), members are found by label, task states come from one List.
//! The member runtimes fill in each member's state (see `pod::lookup`). The
//! pod's [`NetworkRecord`] is kept here too: it is on the sandbox record.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::events::{events_of, PodEvent};
use super::*;
use crate::containerd::{ContainerRecord, TaskInfo, TaskState};
use crate::manifest::Pod;
use crate::sandbox::cni::{self, Attachment, CniNetwork, CniResult, PortMapping};
use crate::sandbox::{netns, SandboxError};
use crate::settings::Settings;

/// What podctl needs to tear the pod's network down later, whatever the host's CNI config is then.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub netns: PathBuf,
    /// The CNI conflist used at ADD time.
    pub network: serde_json::Value,
    pub bin_dirs: Vec<PathBuf>,
    pub result: Option<CniResult>,
    pub port_mappings: Vec<PortMapping>,
    /// `hostNetwork`: no netns and no CNI; `result` holds the host's address.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
}

impl NetworkRecord {
    pub fn of(sandbox: &ContainerRecord) -> Option<NetworkRecord> {
        serde_json::from_slice(sandbox.extensions.get(EXT_NETWORK)?).ok()
    }

    /// The CNI network the pod was attached to, as recorded.
    pub fn cni_network(&self) -> CniNetwork {
        CniNetwork {
            name: self.network["name"].as_str().unwrap_or("podctl").to_string(),
            cni_version: self.network["cniVersion"].as_str().unwrap_or("1.0.0").to_string(),
            raw: self.network.clone(),
        }
    }

    /// CNI DEL (with the ADD result as prevResult), then the pinned netns goes.
    pub async fn teardown(&self, sandbox_id: &str) -> Result<(), SandboxError> {
        if self.host_network {
            return Ok(());
        }
        let network = self.cni_network();
        let attachment = Attachment {
            container_id: sandbox_id,
            netns: &self.netns,
            ifname: "eth0",
            bin_dirs: &self.bin_dirs,
            port_mappings: &self.port_mappings,
            requested_ip: None,
        };
        let deleted = cni::del(&network, &attachment, self.result.as_ref()).await;
        let removed = netns::remove_netns(&self.netns);
        deleted?;
        removed?;
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum MemberState {
    Waiting {
        reason: String,
    },
    Running {
        since: Option<f64>,
    },
    Terminated {
        exit_code: u32,
        reason: String,
        finished: Option<f64>,
    },
}

#[derive(Clone, Debug)]
pub struct MemberView {
    pub name: String,
    pub id: String,
    pub image: String,
    /// The member runtime that runs it (`podctl.io/runtime`).
    pub runtime: String,
    pub log_path: Option<PathBuf>,
    pub stop_signal: String,
    pub record: ContainerRecord,
    /// Filled by the member's runtime (see [`crate::member::RuntimeDriver::observe`]).
    pub state: MemberState,
    pub ready: bool,
    pub restarts: u32,
    pub pid: Option<u32>,
    /// The last probe result worth showing, from the agent.
    pub probe: Option<String>,
    /// A plugin in the pod's agent runs it: it has no container to exec in, and its `pid` is the
    /// agent's unless `own_process`.
    pub in_agent: bool,
    /// `pid` is the member's own process (a plugin that runs members as processes says so).
    pub own_process: bool,
    /// An init container with `restartPolicy: Always`.
    pub sidecar: bool,
    /// Its termination message, while it is terminated.
    pub message: Option<String>,
}

impl MemberView {
    /// How the member's previous run ended: `{exitCode, reason, finishedAt}`, from the supervisor.
    pub fn last_state(&self) -> Option<serde_json::Value> {
        serde_json::from_str(self.record.labels.get(LABEL_LAST_STATE)?).ok()
    }

    pub fn state(&self) -> MemberState {
        self.state.clone()
    }

    pub fn ready(&self) -> bool {
        self.ready
    }
}

#[derive(Clone, Debug)]
pub struct PodView {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub sandbox_id: String,
    pub pod: Option<Pod>,
    pub created: Option<f64>,
    pub sandbox: ContainerRecord,
    pub sandbox_task: Option<TaskInfo>,
    pub network: Option<NetworkRecord>,
    pub members: Vec<MemberView>,
    /// Init containers still on record (only while `create` runs them, or after a crash).
    pub init_ids: Vec<String>,
    pub events: Vec<PodEvent>,
    /// Why its create or delete did not finish (podctl was killed): the pod is `Unknown` and
    /// `podctl delete` removes what is left.
    pub interrupted: Option<String>,
    /// The host restarted under it: sandbox task and netns gone (`podctl system restore`).
    pub lost_to_restart: bool,
}

impl PodView {
    pub fn ip(&self) -> Option<String> {
        self.network.as_ref()?.result.as_ref()?.primary_ip()
    }

    pub fn ready_count(&self) -> usize {
        self.members.iter().filter(|m| m.ready()).count()
    }

    /// The app containers, without the sidecars.
    pub fn app_members(&self) -> impl Iterator<Item = &MemberView> {
        self.members.iter().filter(|m| !m.sidecar)
    }

    /// How many members the pod has once it is made: its sidecars and app containers.
    pub fn expected_members(&self) -> usize {
        self.pod.as_ref().map_or(0, |p| p.long_running().count())
    }

    pub fn restarts(&self) -> u32 {
        self.members.iter().map(|m| m.restarts).sum()
    }

    /// When any member was last restarted by the supervisor (Unix seconds).
    pub fn last_restart(&self) -> Option<f64> {
        self.members
            .iter()
            .filter_map(|m| m.record.labels.get(LABEL_LAST_RESTART)?.parse::<f64>().ok())
            .reduce(f64::max)
    }

    /// kubectl's STATUS column: the pod's phase, or the reason of the first member not running.
    pub fn status(&self) -> String {
        if self.interrupted.is_some() || self.lost_to_restart {
            return "Unknown".into();
        }
        if self.sandbox.labels.get(LABEL_TERMINATING).is_some_and(|v| v == "true") {
            return "Terminating".into();
        }
        if self.sandbox.labels.get(LABEL_STOPPED).is_some_and(|v| v == "true") {
            return "Stopped".into();
        }
        if self.deadline_exceeded() {
            return "DeadlineExceeded".into();
        }
        if let Some(init) = self.sandbox.labels.get(LABEL_INIT_STATUS).filter(|s| !s.is_empty()) {
            return init.clone();
        }
        let sandbox_running = matches!(self.sandbox_task.as_ref().map(|t| t.state), Some(TaskState::Running));
        // `create` is still making the pod: the sandbox first, then the members.
        if self.members.len() < self.expected_members() {
            return if sandbox_running {
                "ContainerCreating"
            } else {
                "Pending"
            }
            .into();
        }
        // Sidecars run as long as the pod: the app containers say how it goes.
        let states: Vec<MemberState> = self.app_members().map(MemberView::state).collect();
        if self
            .members
            .iter()
            .all(|m| matches!(m.state, MemberState::Running { .. }))
        {
            return if sandbox_running {
                "Running".into()
            } else {
                "SandboxNotReady".into()
            };
        }
        if !states.is_empty()
            && states
                .iter()
                .all(|s| matches!(s, MemberState::Terminated { exit_code: 0, .. }))
        {
            return "Completed".into();
        }
        for state in &states {
            match state {
                MemberState::Terminated { exit_code, reason, .. } if *exit_code != 0 => return reason.clone(),
                MemberState::Waiting { reason } => return reason.clone(),
                _ => {}
            }
        }
        "NotReady".into()
    }

    /// It ran past its activeDeadlineSeconds: its members were stopped for good.
    pub fn deadline_exceeded(&self) -> bool {
        self.sandbox
            .labels
            .get(LABEL_DEADLINE_EXCEEDED)
            .is_some_and(|v| v == "true")
    }

    /// The Kubernetes phase.
    pub fn phase(&self) -> &'static str {
        if self.interrupted.is_some() || self.lost_to_restart {
            return "Unknown";
        }
        if self.deadline_exceeded() {
            return "Failed";
        }
        let states: Vec<MemberState> = self.app_members().map(MemberView::state).collect();
        let expected = self.pod.as_ref().map_or(0, |p| p.spec.containers.len());
        if states.len() < expected.max(1) || states.iter().any(|s| matches!(s, MemberState::Waiting { .. })) {
            "Pending"
        } else if self
            .members
            .iter()
            .any(|m| matches!(m.state, MemberState::Running { .. }))
        {
            // App containers that ended leave the pod Running until its sidecars have stopped.
            "Running"
        } else if states
            .iter()
            .all(|s| matches!(s, MemberState::Terminated { exit_code: 0, .. }))
        {
            "Succeeded"
        } else {
            "Failed"
        }
    }

    /// The named member, or the default one as kubectl picks it: the
    /// `kubectl.kubernetes.io/default-container` annotation, else the first.
    pub fn member_or_default(&self, name: Option<&str>) -> Result<&MemberView, RecordError> {
        let default = self
            .pod
            .as_ref()
            .and_then(|p| {
                p.metadata
                    .annotations
                    .get("kubectl.kubernetes.io/default-container")
                    .cloned()
            })
            .or_else(|| self.app_members().next().map(|m| m.name.clone()))
            .unwrap_or_default();
        self.member(name.unwrap_or(&default))
    }

    /// The latest run's log of the named init container (`kubectl logs POD -c INIT`), if the pod
    /// has one of that name.
    pub fn init_container_log(&self, settings: &Settings, name: &str) -> Option<PathBuf> {
        let pod = self.pod.as_ref()?;
        pod.spec.init_containers.iter().find(|c| c.name == name)?;
        let dir = settings.pod_log_dir(pod, &self.uid).join(name);
        let latest = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| crate::logs::run_of(&e.ok()?.path()))
            .max()?;
        Some(crate::logs::run_file(&dir, latest))
    }

    pub fn member(&self, name: &str) -> Result<&MemberView, RecordError> {
        self.members
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| RecordError::NoSuchContainer {
                pod: self.name.clone(),
                container: name.to_string(),
                known: self
                    .members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

pub fn managed_filter() -> String {
    format!("labels.\"{LABEL_MANAGED_BY}\"==podctl")
}

/// Members whose sandbox record is gone (a crash mid-create or mid-delete) still form a pod, so
/// `delete` can clean them up.
pub fn assemble(containers: Vec<ContainerRecord>, tasks: &HashMap<String, TaskInfo>) -> Vec<PodView> {
    type Parts = (Option<ContainerRecord>, Vec<ContainerRecord>, Vec<String>);
    let mut by_sandbox: HashMap<String, Parts> = HashMap::new();
    for container in containers {
        let Some(sandbox_id) = container.labels.get(LABEL_SANDBOX_ID).cloned() else {
            continue;
        };
        let entry = by_sandbox.entry(sandbox_id).or_default();
        // An init container exists only while `create` runs it (or after a crash of podctl).
        if container.labels.get(LABEL_KIND).map(String::as_str) == Some("init") {
            entry.2.push(container.id);
            continue;
        }
        if container.labels.get(LABEL_KIND).map(String::as_str) == Some("sandbox") {
            entry.0 = Some(container);
        } else {
            entry.1.push(container);
        }
    }
    let mut pods = Vec::new();
    for (sandbox_id, (sandbox, members, init_ids)) in by_sandbox {
        if sandbox.is_none() && members.is_empty() {
            continue; // only an init container of a create still under way
        }
        let sandbox = sandbox.unwrap_or_else(|| {
            let any = &members[0];
            ContainerRecord {
                id: sandbox_id.clone(),
                image: String::new(),
                labels: any.labels.clone(),
                snapshot_key: String::new(),
                created: any.created,
                extensions: HashMap::new(),
                spec_json: vec![],
            }
        });
        let label = |key: &str| sandbox.labels.get(key).cloned().unwrap_or_default();
        let mut members: Vec<MemberView> = members
            .into_iter()
            .map(|record| MemberView {
                name: record.labels.get(LABEL_CONTAINER_NAME).cloned().unwrap_or_default(),
                id: record.id.clone(),
                image: record.image.clone(),
                runtime: record
                    .labels
                    .get(LABEL_RUNTIME)
                    .cloned()
                    .unwrap_or_else(|| "oci".into()),
                log_path: record.labels.get(LABEL_LOG_PATH).map(PathBuf::from),
                stop_signal: record
                    .labels
                    .get(LABEL_STOP_SIGNAL)
                    .cloned()
                    .unwrap_or_else(|| "SIGTERM".into()),
                sidecar: record.labels.get(LABEL_SIDECAR).is_some_and(|v| v == "true"),
                state: MemberState::Waiting {
                    reason: "Unknown".into(),
                },
                ready: false,
                restarts: 0,
                probe: None,
                pid: None,
                in_agent: false,
                own_process: false,
                message: None,
                record,
            })
            .collect();
        // Sidecars first, in their init order; then the app containers.
        members.sort_by_key(|m| {
            let index = m
                .record
                .labels
                .get(LABEL_MEMBER_INDEX)
                .and_then(|i| i.parse::<usize>().ok())
                .unwrap_or(usize::MAX);
            (!m.sidecar, index)
        });
        pods.push(PodView {
            name: label(LABEL_POD_NAME),
            namespace: label(LABEL_POD_NAMESPACE),
            uid: label(LABEL_POD_UID),
            pod: sandbox
                .extensions
                .get(EXT_POD)
                .and_then(|raw| serde_json::from_slice(raw).ok()),
            created: sandbox.created,
            sandbox_task: tasks.get(&sandbox.id).cloned(),
            network: NetworkRecord::of(&sandbox),
            events: events_of(&sandbox),
            init_ids,
            sandbox_id,
            sandbox,
            members,
            interrupted: None,
            lost_to_restart: false,
        });
    }
    pods
}
