//! Init containers the agent took over from `create` (one failed there under a restart policy that
//! retries it): each runs to success in order, a failure retried with the crash-loop backoff for
//! as long as it takes, as kubelet does; then the pod's members start. The sandbox record shows the
//! progress (`Init:N/M`, `Init:CrashLoopBackOff`, `Init:Error` under `Never`). An agent that
//! restarts picks up where its predecessor was: completed init containers have no record left.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, RwLock};

use super::keeper::Keeper;
use super::restart::{backoff, should_restart};
use super::state::{run_log, start_slot, Agent, Plugin, Slot};
use super::SharedClient;
use crate::agent::protocol::{InitRef, PluginMemberDef, ProbeKind, SupervisorConfig};
use crate::containerd::{Client, ContainerdError, TaskState};
use crate::record::events::record as record_event;
use crate::record::{PodEvent, LABEL_INIT_STATUS};

pub(super) struct InitRunner {
    pub init: Vec<InitRef>,
    pub config: SupervisorConfig,
    pub agent: Arc<RwLock<Agent>>,
    /// The plugin of each of `defs`.
    pub plugins: Vec<Plugin>,
    pub defs: Vec<PluginMemberDef>,
    pub stopping: watch::Receiver<bool>,
    pub containerd: SharedClient,
}

/// How one attempt went.
enum Attempt {
    Exited(u32),
    /// containerd could not be asked (restarting, say): try again shortly.
    Unavailable(ContainerdError),
}

impl InitRunner {
    /// Runs the init containers, then starts the members and hands them to their `keepers`.
    pub async fn run(mut self, keepers: Vec<Keeper>) {
        let client = loop {
            match self.containerd.get().await {
                Some(client) => break client,
                None => {
                    if self.pause(Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        };
        for init in self.init.clone() {
            if !self.complete(&client, &init).await {
                return;
            }
        }
        let _ = client
            .set_labels(&self.config.sandbox_id, &[(LABEL_INIT_STATUS, String::new())])
            .await;
        self.start_members(&client, keepers).await;
    }

    /// Sleeps unless the agent stops first; true when it stops.
    async fn pause(&mut self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => *self.stopping.borrow(),
            _ = self.stopping.changed() => true,
        }
    }

    async fn show(&self, client: &Client, status: String) {
        let _ = client
            .set_labels(&self.config.sandbox_id, &[(LABEL_INIT_STATUS, status)])
            .await;
    }

    async fn event(&self, client: &Client, event: PodEvent) {
        let _ = record_event(client, &self.config.sandbox_id, event).await;
    }

    /// Starts a sidecar `create` left created (an earlier agent may have started it) and waits
    /// until it has started: its startup probe passed, or it runs when it has none. Its exits are
    /// the supervisor's; false if the agent stops first.
    async fn start_sidecar(&mut self, client: &Client, init: &InitRef) -> bool {
        self.show(client, format!("Init:{}/{}", init.index, init.total)).await;
        loop {
            if *self.stopping.borrow() {
                return false;
            }
            match client.get_task(&init.id).await {
                Ok(Some(task)) if task.state == TaskState::Created => {
                    if let Err(e) = client.start_task(&init.id).await {
                        eprintln!("agent: starting sidecar {}: {e}", init.name);
                    } else {
                        let message = format!("Started container {}", init.name);
                        self.event(client, PodEvent::normal("Started", &init.name, message))
                            .await;
                    }
                }
                Ok(Some(task)) if task.state == TaskState::Running => {
                    let has_startup_probe = self
                        .config
                        .members
                        .iter()
                        .filter(|m| m.id == init.id)
                        .flat_map(|m| &m.probes)
                        .any(|p| p.kind == ProbeKind::Startup);
                    let board = self.agent.read().await.probes.clone();
                    let started = !has_startup_probe
                        || board
                            .lock()
                            .expect("not poisoned")
                            .get(&init.name)
                            .is_some_and(|status| status.started);
                    if started {
                        return true;
                    }
                }
                // Exited or gone meanwhile: the supervisor restarts it; wait for that run.
                _ => {}
            }
            if self.pause(Duration::from_millis(200)).await {
                return false;
            }
        }
    }

    /// Runs `init` until it succeeds; false if the agent stops first or the policy gives up.
    async fn complete(&mut self, client: &Client, init: &InitRef) -> bool {
        if init.sidecar {
            return self.start_sidecar(client, init).await;
        }
        let mut failures = 0u32;
        loop {
            if *self.stopping.borrow() {
                return false;
            }
            match client.get_container(&init.id).await {
                // Completed already (by an earlier agent of this pod).
                Ok(None) => return true,
                Ok(Some(_)) => {}
                Err(_) => {
                    if self.pause(Duration::from_secs(1)).await {
                        return false;
                    }
                    continue;
                }
            }
            self.show(client, format!("Init:{}/{}", init.index, init.total)).await;
            let code = match self.attempt(client, init).await {
                Attempt::Exited(code) => code,
                Attempt::Unavailable(e) => {
                    eprintln!("agent: init container {}: {e}", init.name);
                    if self.pause(Duration::from_secs(1)).await {
                        return false;
                    }
                    continue;
                }
            };
            if code == 0 {
                let _ = client.delete_container(&init.id).await;
                let _ = client.remove_snapshot(&init.id).await;
                let message = format!("Init container {} completed", init.name);
                self.event(client, PodEvent::normal("Completed", &init.name, message))
                    .await;
                return true;
            }
            if !should_restart(&self.config.restart_policy, code) {
                self.show(client, "Init:Error".into()).await;
                let message = format!("Init container {} exited with code {code}", init.name);
                self.event(client, PodEvent::warning("Failed", &init.name, message))
                    .await;
                return false;
            }
            let delay = backoff(Duration::from_millis(self.config.backoff_base_ms), failures);
            failures += 1;
            self.show(client, "Init:CrashLoopBackOff".into()).await;
            let message = format!(
                "Back-off restarting failed init container {}: exited with code {code}; retrying in {:.1}s",
                init.name,
                delay.as_secs_f64()
            );
            self.event(client, PodEvent::warning("BackOff", &init.name, message))
                .await;
            if self.pause(delay).await {
                return false;
            }
        }
    }

    /// One run of the init container; a run that an earlier agent started is waited for.
    async fn attempt(&self, client: &Client, init: &InitRef) -> Attempt {
        let run = async {
            let code = match client.get_task(&init.id).await? {
                Some(task) if task.state == TaskState::Stopped => task.exit_status,
                Some(task) if task.state == TaskState::Running => client.wait_task(&init.id).await?.code,
                stale => {
                    if stale.is_some() {
                        client.delete_task(&init.id).await?;
                    }
                    // Each run logs to a file of its own, numbered after those before it.
                    let runs = std::fs::read_dir(&init.log_dir).map(|d| d.count()).unwrap_or(0);
                    let log = crate::logs::run_file(&init.log_dir, runs as u32);
                    super::create_run_task(
                        client,
                        (&init.id, &init.name),
                        &log,
                        self.config.log_rotation,
                        init.stdio,
                        self.config.state_dir.as_deref(),
                    )
                    .await?;
                    client.start_task(&init.id).await?;
                    client.wait_task(&init.id).await?.code
                }
            };
            // Task delete waits for the log driver: the run's log is complete afterwards.
            client.delete_task(&init.id).await?;
            Ok::<_, ContainerdError>(code)
        };
        match run.await {
            Ok(code) => Attempt::Exited(code),
            Err(e) => Attempt::Unavailable(e),
        }
    }

    /// Starts the OCI members `create` left created, and the WASM members, then their keepers.
    async fn start_members(&self, client: &Client, keepers: Vec<Keeper>) {
        for member in &self.config.members {
            if let Ok(Some(task)) = client.get_task(&member.id).await {
                if task.state == TaskState::Created {
                    if let Err(e) = client.start_task(&member.id).await {
                        eprintln!("agent: starting {} after the init containers: {e}", member.name);
                    } else {
                        let message = format!("Started container {}", member.name);
                        self.event(client, PodEvent::normal("Started", &member.name, message))
                            .await;
                    }
                }
            }
        }
        {
            let mut agent = self.agent.write().await;
            if *self.stopping.borrow() {
                return;
            }
            for (index, def) in self.defs.iter().enumerate() {
                if matches!(agent.members[index].slot, Slot::Pending) {
                    let log = run_log(def, agent.state.restarts_of(&def.name));
                    agent.members[index].slot = start_slot(&self.plugins[index], def, &log).await;
                }
            }
        }
        for keeper in keepers {
            tokio::spawn(keeper.run());
        }
    }
}
