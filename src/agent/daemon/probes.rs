//! Probes of the pod's members, run by the agent with the wire's actions (`agent::action`): HTTP(S),
//! TCP and gRPC from inside the pod's network namespace for OCI and WASM members, exec through
//! containerd for OCI members. Startup gates the others; liveness failures kill the member (the
//! supervisor or the WASM keeper then restarts it per the restart policy); readiness drives READY.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::state::{Agent, ProbeBoard, Slot};
use super::SharedClient;
use crate::agent::action::run_action;
use crate::agent::protocol::{ProbeDef, ProbeKind, ProbeStatus, SupervisorConfig};
use crate::containerd::{Client, TaskState};

enum Verdict {
    /// successThreshold consecutive successes.
    Passed,
    /// failureThreshold consecutive failures.
    Failed(String),
    /// The run it was probing ended.
    Gone,
}

/// What probes watch: an OCI member's task (through containerd), or a WASM member of this agent.
#[derive(Clone)]
pub(super) enum Target {
    Oci {
        id: String,
    },
    Wasm {
        agent: Arc<tokio::sync::RwLock<Agent>>,
        index: usize,
    },
}

impl Target {
    /// Names the member's current run while it runs (a task's PID, a WASM member's run number):
    /// a restart is a new run.
    pub(super) async fn current_run(&self, client: &Client) -> Option<u64> {
        match self {
            Target::Oci { id } => match client.get_task(id).await {
                Ok(Some(t)) if t.state == TaskState::Running => Some(t.pid.into()),
                _ => None,
            },
            Target::Wasm { agent, index } => {
                let agent = agent.read().await;
                let member = &agent.members[*index];
                match &member.slot {
                    Slot::Running { member: running, .. } if running.running().await => {
                        Some(agent.state.restarts.get(&member.name).copied().unwrap_or(0).into())
                    }
                    _ => None,
                }
            }
        }
    }

    /// The container an exec action runs in: an OCI member's.
    pub(super) fn oci_id(&self) -> Option<&str> {
        match self {
            Target::Oci { id } => Some(id),
            Target::Wasm { .. } => None,
        }
    }

    pub(super) async fn kill(&self, client: &Client) {
        match self {
            Target::Oci { id } => {
                let _ = client.kill_task(id, 9, true).await;
            }
            Target::Wasm { agent, index } => {
                let running = match &agent.read().await.members[*index].slot {
                    Slot::Running { member, .. } => Some(member.clone()),
                    _ => None,
                };
                if let Some(member) = running {
                    member.kill().await;
                }
            }
        }
    }
}

/// One member with probes.
pub(super) struct Probed {
    pub name: String,
    pub probes: Vec<ProbeDef>,
    pub target: Target,
}

pub(super) fn spawn_all(
    config: &SupervisorConfig,
    members: Vec<Probed>,
    board: ProbeBoard,
    containerd: SharedClient,
    stopping: watch::Receiver<bool>,
) {
    for member in members.into_iter().filter(|m| !m.probes.is_empty()) {
        let (config, board, containerd, stopping) =
            (config.clone(), board.clone(), containerd.clone(), stopping.clone());
        tokio::spawn(async move { watch_member(config, member, board, containerd, stopping).await });
    }
}

fn set(board: &ProbeBoard, name: &str, update: impl FnOnce(&mut ProbeStatus)) {
    let mut board = board.lock().expect("not poisoned");
    let entry = board.entry(name.to_string()).or_insert_with(|| ProbeStatus {
        name: name.to_string(),
        ..Default::default()
    });
    update(entry);
}

async fn watch_member(
    config: SupervisorConfig,
    member: Probed,
    board: ProbeBoard,
    containerd: SharedClient,
    mut stopping: watch::Receiver<bool>,
) {
    let find = |kind| member.probes.iter().find(|p| p.kind == kind).cloned();
    let (startup, liveness, readiness) = (
        find(ProbeKind::Startup),
        find(ProbeKind::Liveness),
        find(ProbeKind::Readiness),
    );
    let host = config.pod_ip.clone().unwrap_or_else(|| "127.0.0.1".into());
    let work = async {
        let client = loop {
            match containerd.get().await {
                Some(c) => break c,
                None => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        loop {
            // One iteration per run of the member: a restart starts the probes afresh.
            let run = loop {
                if let Some(run) = member.target.current_run(&client).await {
                    break run;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let probing = Probing {
                client: &client,
                member: &member,
                host: &host,
                run,
                board: &board,
                sandbox_id: &config.sandbox_id,
            };
            set(&board, &member.name, |s| {
                s.started = startup.is_none();
                s.ready = false;
            });
            if let Some(probe) = &startup {
                match probing.until(probe).await {
                    // Without a readiness probe, a started member is ready.
                    Verdict::Passed => set(&board, &member.name, |s| {
                        s.started = true;
                        s.ready = readiness.is_none();
                    }),
                    Verdict::Failed(why) => {
                        probing.kill(&format!("startup probe failed: {why}")).await;
                        continue;
                    }
                    Verdict::Gone => continue,
                }
            }
            let live = async {
                match &liveness {
                    Some(probe) => probing.until(probe).await,
                    None => std::future::pending().await,
                }
            };
            let ready = async {
                if let Some(probe) = &readiness {
                    probing.until(probe).await;
                }
                // The run ended (or there is no readiness probe): wait for it to end.
                while member.target.current_run(&client).await == Some(run) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Verdict::Gone
            };
            let verdict = tokio::select! { v = live => v, v = ready => v };
            if let Verdict::Failed(why) = verdict {
                probing.kill(&format!("liveness probe failed: {why}")).await;
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = stopping.changed() => {}
    }
}

/// One run of one member, as its probes see it.
struct Probing<'a> {
    client: &'a Client,
    member: &'a Probed,
    /// Where HTTP and TCP probes connect unless they name a host.
    host: &'a str,
    run: u64,
    board: &'a ProbeBoard,
    sandbox_id: &'a str,
}

impl Probing<'_> {
    async fn event(&self, message: String) {
        let event = crate::record::PodEvent::warning("Unhealthy", &self.member.name, message);
        let _ = crate::record::events::record(self.client, self.sandbox_id, event).await;
    }

    async fn kill(&self, why: &str) {
        eprintln!("agent: {}: {why}; killing it", self.member.name);
        self.event(format!("{why}; the container will be restarted")).await;
        set(self.board, &self.member.name, |s| {
            s.ready = false;
            s.last = why.to_string();
        });
        self.member.target.kill(self.client).await;
        // Let the supervisor see the exit before the next run is probed.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Probes the run until a verdict: startup passes on successThreshold successes in a row,
    /// startup and liveness fail on failureThreshold failures in a row; readiness never ends by
    /// itself, it flips READY both ways for the whole run.
    async fn until(&self, probe: &ProbeDef) -> Verdict {
        let (client, member) = (self.client, self.member);
        tokio::time::sleep(Duration::from_secs(probe.initial_delay_seconds.into())).await;
        let (mut successes, mut failures) = (0, 0);
        // Readiness failures become an event when READY turns false, not at every period.
        let mut ready = None;
        loop {
            if member.target.current_run(client).await != Some(self.run) {
                return Verdict::Gone;
            }
            match run_action(
                client,
                &probe.action,
                member.target.oci_id(),
                self.host,
                probe.timeout_seconds,
            )
            .await
            {
                Ok(()) => {
                    successes += 1;
                    failures = 0;
                    if successes >= probe.success_threshold {
                        match probe.kind {
                            ProbeKind::Startup => return Verdict::Passed,
                            ProbeKind::Readiness => {
                                ready = Some(true);
                                set(self.board, &member.name, |s| s.ready = true)
                            }
                            ProbeKind::Liveness => {}
                        }
                    }
                }
                Err(why) => {
                    failures += 1;
                    successes = 0;
                    set(self.board, &member.name, |s| {
                        s.last = format!("{:?} probe failed: {why}", probe.kind).to_lowercase()
                    });
                    if failures >= probe.failure_threshold {
                        match probe.kind {
                            ProbeKind::Readiness => {
                                if ready != Some(false) {
                                    self.event(format!("Readiness probe failed: {why}")).await;
                                }
                                ready = Some(false);
                                set(self.board, &member.name, |s| s.ready = false)
                            }
                            _ => return Verdict::Failed(why),
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(probe.period_seconds.into())).await;
        }
    }
}
