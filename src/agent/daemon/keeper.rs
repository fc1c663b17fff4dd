//! Restarts of the pod's WASM members, from inside the agent that runs them: a member that ends
//! is restarted per the pod's restartPolicy with the same crash-loop backoff as OCI members, and
//! its container record gets the same labels (restart count, last state, log of the run), so
//! `podctl get`, `describe` and `logs --previous` treat both kinds alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, RwLock};

use super::restart::{backoff, next_run_log, record_exit, record_restart, should_restart, RunEnd, BACKOFF_RESET_AFTER};
use super::state::{k8s_reason, log_dir, run_log, start_slot, Agent, MemberSlot, Plugin, Slot, PLUGIN_FAILED};
use super::SharedClient;
use crate::agent::protocol::{PluginMemberDef, SupervisorConfig};
use crate::record::events::record as record_event;
use crate::record::PodEvent;

/// Watches one member a plugin runs, for as long as the agent runs.
pub(super) struct Keeper {
    pub agent: Arc<RwLock<Agent>>,
    pub plugin: Plugin,
    pub def: PluginMemberDef,
    pub index: usize,
    pub config: SupervisorConfig,
    pub stopping: watch::Receiver<bool>,
    pub containerd: SharedClient,
}

/// How a run ended, as the container record keeps it.
struct Ended {
    code: u32,
    reason: String,
    finished: f64,
    /// Why the plugin could not tell how it ended (it is gone or hangs), for the event.
    plugin_failure: Option<String>,
}

impl Keeper {
    pub async fn run(mut self) {
        let mut exponent = 0u32;
        let restarts = self.restarts().await;
        if restarts > 0 {
            // A restarted agent began a new run of every member.
            self.record_run(restarts).await;
        } else {
            self.record_start().await;
        }
        loop {
            let began = Instant::now();
            let Some(ended) = self.wait_for_end().await else {
                return;
            };
            if began.elapsed() >= BACKOFF_RESET_AFTER {
                exponent = 0;
            }
            let delay = backoff(Duration::from_millis(self.config.backoff_base_ms), exponent);
            exponent += 1;
            let restart = should_restart(&self.config.restart_policy, ended.code);
            self.record_end(&ended, restart.then_some(delay)).await;
            if !restart {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.stopping.changed() => return,
            }
            let Some(restarts) = self.restart().await else {
                return;
            };
            self.record_run(restarts).await;
        }
    }

    async fn restarts(&self) -> u32 {
        self.agent.read().await.state.restarts_of(&self.def.name)
    }

    /// Waits for the current run to end; `None` once the agent stops its members.
    async fn wait_for_end(&mut self) -> Option<Ended> {
        let running = match &self.agent.read().await.members[self.index].slot {
            Slot::Running { member, .. } => Some(member.clone()),
            // Keepers start once the members do.
            Slot::Pending => None,
            Slot::Failed { at, .. } => {
                return Some(Ended {
                    code: 1,
                    reason: "LoadFailed".into(),
                    finished: *at,
                    plugin_failure: None,
                })
            }
        };
        let member = running?;
        let exit = tokio::select! {
            exit = member.wait() => exit,
            _ = self.stopping.changed() => return None,
        };
        if *self.stopping.borrow() {
            return None;
        }
        Some(Ended {
            code: exit.code as u32,
            reason: k8s_reason(&exit.reason, exit.code).into(),
            finished: exit.finished,
            plugin_failure: (exit.reason == PLUGIN_FAILED).then_some(exit.message),
        })
    }

    /// Starts the next run unless the agent is stopping; returns its restart count.
    async fn restart(&self) -> Option<u32> {
        let mut agent = self.agent.write().await;
        // Checked under the lock that a stop takes before it stops the members.
        if *self.stopping.borrow() {
            return None;
        }
        let restarts = agent.state.restarts_of(&self.def.name) + 1;
        agent.state.restarts.insert(self.def.name.clone(), restarts);
        if let Err(e) = agent.save_state() {
            eprintln!("agent: saving the restart count of {}: {e}", self.def.name);
        }
        agent.members[self.index] = MemberSlot {
            name: self.def.name.clone(),
            slot: start_slot(&self.plugin, &self.def, &next_run_log(log_dir(&self.def), restarts)).await,
            waiting: None,
        };
        Some(restarts)
    }

    async fn record_end(&self, ended: &Ended, restart_in: Option<Duration>) {
        if restart_in.is_some() {
            self.agent.write().await.members[self.index].waiting = Some("CrashLoopBackOff".into());
        }
        let Some(client) = self.containerd.get().await else {
            return;
        };
        if let Some(why) = &ended.plugin_failure {
            let event = PodEvent::warning(PLUGIN_FAILED, &self.def.name, why.clone());
            let _ = record_event(&client, &self.config.sandbox_id, event).await;
        }
        let end = RunEnd {
            sandbox_id: &self.config.sandbox_id,
            id: &self.def.id,
            name: &self.def.name,
            code: ended.code,
            reason: &ended.reason,
            finished: ended.finished,
            restart_in,
            message: None,
        };
        if let Err(e) = record_exit(&client, &end).await {
            eprintln!("agent: recording the exit of {}: {e}", self.def.name);
            self.containerd.reset().await;
        }
    }

    async fn record_start(&self) {
        let Some(client) = self.containerd.get().await else {
            return;
        };
        let plugin = match &self.plugin {
            Ok(plugin) => format!("plugin {} pid {}", plugin.name(), plugin.pid().unwrap_or_default()),
            Err(_) => "no plugin".into(),
        };
        let message = format!("Started member {} in {plugin}", self.def.name);
        let event = PodEvent::normal("Started", &self.def.name, message);
        let _ = record_event(&client, &self.config.sandbox_id, event).await;
    }

    async fn record_run(&self, restarts: u32) {
        let Some(client) = self.containerd.get().await else {
            return;
        };
        let log = run_log(&self.def, restarts);
        let (sandbox_id, id, name) = (&self.config.sandbox_id, &self.def.id, &self.def.name);
        if let Err(e) = record_restart(&client, sandbox_id, id, name, restarts, &log).await {
            eprintln!("agent: recording the restart of {name}: {e}");
            self.containerd.reset().await;
        }
    }
}
