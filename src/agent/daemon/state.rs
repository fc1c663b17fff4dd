//! The agent's shared state, which its server, keepers, init runner and probes all use: the slots of
//! the members a plugin runs (running, pending, failed), their restart counts (which survive agent
//! restarts), and the status reply built from them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podctl_plugin::{Client as PluginClient, EnvVar, Limits, Member, MemberStatus, State, Volume};
use serde::{Deserialize, Serialize};

use crate::agent::protocol::{PluginMemberDef, PluginMemberStatus, PluginState, ProbeStatus, StatusReply};

/// What the probes last said of each member, by name: the agent's status reply carries it.
pub(super) type ProbeBoard = Arc<std::sync::Mutex<std::collections::HashMap<String, ProbeStatus>>>;

/// Survives agent restarts: how often each member has been restarted.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct PersistentState {
    pub(super) starts: u32,
    pub(super) restarts: BTreeMap<String, u32>,
}

impl PersistentState {
    pub(super) fn restarts_of(&self, name: &str) -> u32 {
        self.restarts.get(name).copied().unwrap_or(0)
    }
}

/// A plugin process of the pod, or why it could not be started.
pub(super) type Plugin = Result<Arc<PluginClient>, String>;

/// A member the pod's plugin runs, by its name there.
#[derive(Clone)]
pub(super) struct PluginMember {
    plugin: Arc<PluginClient>,
    name: String,
}

/// The reason of a run whose plugin failed (it is gone, or hangs).
pub(super) const PLUGIN_FAILED: &str = "PluginFailed";

/// How a run ended.
pub(super) struct RunExit {
    pub code: i32,
    /// The plugin's reason (Completed, Error, OOMKilled, Trap, Stopped) or PluginFailed.
    pub reason: String,
    pub message: String,
    pub finished: f64,
}

impl PluginMember {
    /// Its state; a plugin that is gone or hangs is an error naming it.
    pub(super) async fn status(&self) -> Result<MemberStatus, String> {
        self.plugin.status(&self.name).await.map_err(|e| e.to_string())
    }

    pub(super) async fn running(&self) -> bool {
        self.status().await.is_ok_and(|s| s.state() == State::Running)
    }

    /// Waits for the run to end; a plugin that fails meanwhile ends it.
    pub(super) async fn wait(&self) -> RunExit {
        match self
            .plugin
            .wait(&self.name, Duration::from_secs(u64::from(u32::MAX)))
            .await
        {
            Ok(status) => RunExit {
                code: status.exit_code,
                reason: status.reason,
                message: status.message,
                finished: status.finished_at,
            },
            Err(e) => RunExit {
                code: 1,
                reason: PLUGIN_FAILED.into(),
                message: e.to_string(),
                finished: secs(SystemTime::now()),
            },
        }
    }

    pub(super) async fn stop(&self, grace: Duration) {
        if let Err(e) = self.plugin.stop(&self.name, grace).await {
            eprintln!("agent: stopping {}: {e}", self.name);
        }
    }

    pub(super) async fn kill(&self) {
        if let Err(e) = self.plugin.kill(&self.name).await {
            eprintln!("agent: killing {}: {e}", self.name);
        }
    }
}

/// Kubernetes' reason for a run's end (the plugin's own words beyond these count as Error).
pub(super) fn k8s_reason(reason: &str, code: i32) -> &'static str {
    match reason {
        "OOMKilled" => "OOMKilled",
        "Completed" => "Completed",
        PLUGIN_FAILED => PLUGIN_FAILED,
        "" if code == 0 => "Completed",
        _ => "Error",
    }
}

pub(super) enum Slot {
    /// Not started yet: the pod's init containers run first.
    Pending,
    Running {
        member: PluginMember,
        cache_hit: bool,
        load_ms: f64,
        start_ms: f64,
        pid: Option<u32>,
    },
    Failed {
        message: String,
        at: f64,
    },
}

pub(super) struct MemberSlot {
    pub(super) name: String,
    pub(super) slot: Slot,
    /// Why it is not running while it waits out its restart backoff (`CrashLoopBackOff`).
    pub(super) waiting: Option<String>,
}

pub(super) struct Agent {
    pub(super) probes: ProbeBoard,
    /// WASM members with a readiness or startup probe: ready only once their probes say so.
    pub(super) gated: std::collections::HashSet<String>,
    pub(super) started_at: f64,
    pub(super) state: PersistentState,
    pub(super) state_path: PathBuf,
    pub(super) members: Vec<MemberSlot>,
}

pub(super) fn secs(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl Agent {
    pub(super) async fn status(&self) -> StatusReply {
        let mut members = Vec::new();
        for MemberSlot { name, slot, waiting } in &self.members {
            let status = {
                let restarts = self.state.restarts_of(name);
                let idle = |state| PluginMemberStatus {
                    name: name.clone(),
                    state,
                    ready: false,
                    started_at: None,
                    exit_code: None,
                    reason: None,
                    message: None,
                    restarts,
                    waiting: None,
                    cache_hit: false,
                    load_ms: 0.0,
                    start_ms: 0.0,
                    pid: None,
                    memory_bytes: None,
                    cpu_nanos: None,
                };
                let status = match slot {
                    Slot::Running {
                        member,
                        cache_hit,
                        load_ms,
                        start_ms,
                        pid,
                    } => {
                        let base = PluginMemberStatus {
                            cache_hit: *cache_hit,
                            load_ms: *load_ms,
                            start_ms: *start_ms,
                            pid: *pid,
                            ..idle(PluginState::Running)
                        };
                        match member.status().await {
                            Ok(status) if status.state() == State::Running => PluginMemberStatus {
                                ready: status.ready && self.probed_ready(name),
                                started_at: Some(status.started_at),
                                // 0 and 0: a plugin that does not count (or an older one).
                                memory_bytes: (status.memory_bytes > 0 || status.cpu_nanos > 0)
                                    .then_some(status.memory_bytes),
                                cpu_nanos: (status.memory_bytes > 0 || status.cpu_nanos > 0)
                                    .then_some(status.cpu_nanos),
                                ..base
                            },
                            Ok(status) => exited(base, &status),
                            Err(message) => PluginMemberStatus {
                                reason: Some(PLUGIN_FAILED.into()),
                                message: Some(message),
                                ..idle(PluginState::Failed)
                            },
                        }
                    }
                    Slot::Pending => idle(PluginState::Pending),
                    Slot::Failed { message, at } => PluginMemberStatus {
                        started_at: Some(*at),
                        reason: Some("LoadFailed".into()),
                        message: Some(message.clone()),
                        ..idle(PluginState::Failed)
                    },
                };
                PluginMemberStatus {
                    waiting: waiting.clone(),
                    ..status
                }
            };
            members.push(status);
        }
        let mut probes: Vec<_> = self.probes.lock().expect("not poisoned").values().cloned().collect();
        probes.sort_by(|a, b| a.name.cmp(&b.name));
        StatusReply {
            pid: std::process::id(),
            started_at: self.started_at,
            members,
            probes,
        }
    }

    /// The member's startup and readiness probes passed (or it has none).
    fn probed_ready(&self, name: &str) -> bool {
        !self.gated.contains(name)
            || self
                .probes
                .lock()
                .expect("not poisoned")
                .get(name)
                .is_some_and(|p| p.started && p.ready)
    }

    fn running(&self) -> Vec<PluginMember> {
        self.members
            .iter()
            .filter_map(|m| match &m.slot {
                Slot::Running { member, .. } => Some(member.clone()),
                Slot::Pending | Slot::Failed { .. } => None,
            })
            .collect()
    }

    pub(super) async fn stop_all(&self, grace: Duration) {
        let running = self.running();
        futures_util::future::join_all(running.iter().map(|m| m.stop(grace))).await;
        let all = futures_util::future::join_all(running.iter().map(PluginMember::wait));
        if tokio::time::timeout(grace + Duration::from_secs(2), all).await.is_err() {
            futures_util::future::join_all(running.iter().map(PluginMember::kill)).await;
        }
    }

    /// Writes the restart counts where the next agent of this pod finds them.
    pub(super) fn save_state(&self) -> std::io::Result<()> {
        let json = serde_json::to_vec(&self.state).expect("state serializes");
        crate::agent::write_file(&self.state_path, json)
    }
}

/// Starts a run of one member through the plugin, logging to `log`; a member that cannot be
/// loaded or started (or whose plugin is not there) is a `Failed` slot.
pub(super) async fn start_slot(plugin: &Plugin, def: &PluginMemberDef, log: &Path) -> Slot {
    let began = std::time::Instant::now();
    let failed = |message: String| Slot::Failed {
        message,
        at: secs(SystemTime::now()),
    };
    let plugin = match plugin {
        Ok(plugin) => plugin,
        Err(why) => return failed(why.clone()),
    };
    match plugin.start(member_of(def, log)).await {
        Ok(started) => Slot::Running {
            member: PluginMember {
                plugin: plugin.clone(),
                name: def.name.clone(),
            },
            cache_hit: started.cache_hit,
            load_ms: started.load_millis,
            start_ms: began.elapsed().as_secs_f64() * 1000.0,
            pid: Some(started.pid).filter(|&pid| pid != 0),
        },
        Err(podctl_plugin::ClientError::Refused { message, .. }) => failed(message),
        Err(e) => failed(e.to_string()),
    }
}

/// The log directory of a member's runs (numbered like an OCI member's, next to its first run's).
pub(super) fn log_dir(def: &PluginMemberDef) -> &Path {
    def.log_path.parent().unwrap_or(Path::new("."))
}

/// The log file of a member's `restarts`-th run.
pub(super) fn run_log(def: &PluginMemberDef, restarts: u32) -> PathBuf {
    crate::logs::run_file(log_dir(def), restarts)
}

fn exited(base: PluginMemberStatus, exit: &MemberStatus) -> PluginMemberStatus {
    PluginMemberStatus {
        state: PluginState::Exited,
        ready: false,
        exit_code: Some(exit.exit_code),
        reason: Some(exit.reason.clone()),
        message: Some(exit.message.clone()).filter(|m| !m.is_empty()),
        ..base
    }
}

/// The member as the plugin protocol gives it.
fn member_of(def: &PluginMemberDef, log: &Path) -> Member {
    Member {
        name: def.name.clone(),
        program: def.program.to_string_lossy().into_owned(),
        args: def.args.clone(),
        env: def
            .env
            .iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        volumes: def
            .preopens
            .iter()
            .map(|p| Volume {
                host_path: p.host.to_string_lossy().into_owned(),
                guest_path: p.guest.clone(),
                read_only: p.read_only,
            })
            .collect(),
        log_path: log.to_string_lossy().into_owned(),
        limits: Some(Limits {
            memory_bytes: def.memory_limit.unwrap_or(0),
            cpu_millis: def.cpu_limit_millis.map_or(0, |m| u32::try_from(m).unwrap_or(u32::MAX)),
        }),
        ports: def.ports().into_iter().map(u32::from).collect(),
        log_max_bytes: def.log_rotation.max_bytes,
        log_max_files: def.log_rotation.max_files,
    }
}

pub(super) fn load_state(path: &Path) -> PersistentState {
    std::fs::read(path)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or_default()
}
