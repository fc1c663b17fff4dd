//! Supervision of the pod's OCI members, from inside the agent: every init-process exit is recorded
//! on the member's container record, and the member is restarted per the pod's restartPolicy with
//! kubelet's backoff (base doubling to 5 minutes, reset after 10 minutes of running). The records
//! are the truth: `podctl get` reads restart counts and states from their labels, and an agent that
//! restarts re-adopts the pod from containerd (exits it missed are found by listing the tasks).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Mutex};

use super::restart::{backoff, next_run_log, record_exit, record_restart, should_restart, RunEnd, BACKOFF_RESET_AFTER};
use crate::agent::protocol::{OciMemberRef, SupervisorConfig};
use crate::containerd::{signal_number, Client, ExitStatus, TaskEvent, TaskState};
use crate::record::LABEL_OOM_KILLED;
use crate::record::{now_secs, LABEL_RESTART_COUNT, LABEL_WAITING};

struct MemberTrack {
    restarts: u32,
    backoff_exponent: u32,
    running_since: Instant,
    /// An exit is being handled (backoff sleep or restart): a second report of it is ignored.
    busy: bool,
}

pub struct Supervisor {
    config: SupervisorConfig,
    tracks: Mutex<HashMap<String, MemberTrack>>,
    stopping: watch::Receiver<bool>,
    /// The pod has app containers a plugin runs: only the keepers know when those end, so the
    /// sidecars are left to the pod's stop or delete.
    apps_in_plugins: bool,
    /// Every app container has ended for good: the sidecars are being stopped, not restarted.
    ending_sidecars: AtomicBool,
}

impl Supervisor {
    pub fn new(config: SupervisorConfig, apps_in_plugins: bool, stopping: watch::Receiver<bool>) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            config,
            tracks: Mutex::new(HashMap::new()),
            stopping,
            apps_in_plugins,
            ending_sidecars: AtomicBool::new(false),
        })
    }

    /// Once every app container has ended and none runs again (restartPolicy Never or
    /// OnFailure), the sidecars are stopped, the last first, as kubelet does: the pod completes.
    /// Every app container has ended and none runs again (none waits out a backoff): the pod's
    /// work is done. A pod with app containers in a plugin is never judged here.
    async fn apps_ended_for_good(&self, client: &Client) -> bool {
        if self.apps_in_plugins {
            return false;
        }
        for app in self.config.members.iter().filter(|m| !m.sidecar) {
            let code = match client.get_task(&app.id).await {
                Ok(Some(task)) if task.state == TaskState::Stopped => task.exit_status,
                _ => return false,
            };
            let runs_again = should_restart(&self.config.restart_policy, code)
                || self.tracks.lock().await.get(&app.id).is_some_and(|t| t.busy);
            if runs_again {
                return false;
            }
        }
        true
    }

    async fn end_sidecars_after_apps(&self, client: &Client) {
        let sidecars: Vec<&OciMemberRef> = self.config.members.iter().filter(|m| m.sidecar).collect();
        if sidecars.is_empty() || !self.apps_ended_for_good(client).await {
            return;
        }
        if self.ending_sidecars.swap(true, Ordering::SeqCst) {
            return;
        }
        let grace = Duration::from_secs(self.config.grace_seconds.unwrap_or(30));
        let host = self.config.pod_ip.clone().unwrap_or_else(|| "127.0.0.1".into());
        for sidecar in sidecars.into_iter().rev() {
            if let Some(hook) = sidecar.hooks.pre_stop.clone() {
                let sandbox = &self.config.sandbox_id;
                crate::agent::action::pre_stop_from_host(
                    client,
                    sandbox,
                    &sidecar.id,
                    &sidecar.name,
                    hook,
                    &host,
                    grace,
                )
                .await;
            }
            let signal = signal_number(sidecar.stop_signal.as_deref().unwrap_or("SIGTERM"));
            if let Err(e) = client.end_task(&sidecar.id, signal, grace).await {
                eprintln!("agent: stopping sidecar {} after the app containers: {e}", sidecar.name);
            }
        }
    }

    fn member(&self, id: &str) -> Option<&OciMemberRef> {
        self.config.members.iter().find(|m| m.id == id)
    }

    /// Runs until the agent stops; survives containerd restarts by reconnecting and reconciling.
    pub async fn run(self: Arc<Self>) {
        let mut stopping = self.stopping.clone();
        loop {
            if *stopping.borrow() {
                return;
            }
            let session = async {
                let client = Client::connect(&self.config.address, &self.config.namespace)
                    .await
                    .map_err(|e| eprintln!("agent: supervisor cannot connect to containerd: {e}"))
                    .ok()?;
                // containerd answers a subscription only with its first event, so adopting what
                // happened meanwhile cannot wait for it; exits reported twice are sorted out in
                // `handle_exit`, which acts only on a task that is stopped now.
                let subscribe = client.subscribe_task_events();
                let adopt = async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    self.adopt(&client).await;
                };
                let (exits, ()) = tokio::join!(subscribe, adopt);
                let mut exits = exits
                    .map_err(|e| eprintln!("agent: supervisor cannot subscribe to task exits: {e}"))
                    .ok()?;
                while let Some(event) = exits.next().await {
                    match event {
                        TaskEvent::OomKilled { container_id } if self.member(&container_id).is_some() => {
                            // Recorded before the exit is handled, which reads it.
                            let _ = client
                                .set_labels(&container_id, &[(LABEL_OOM_KILLED, "true".into())])
                                .await;
                        }
                        TaskEvent::Exited { container_id, status } if self.member(&container_id).is_some() => {
                            let this = self.clone();
                            let client = client.clone();
                            tokio::spawn(async move { this.handle_exit(&client, &container_id, status).await });
                        }
                        _ => {}
                    }
                }
                Some(())
            };
            tokio::select! {
                _ = session => {}
                _ = stopping.changed() => return,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Takes over what containerd knows: restart counts from labels, exits that happened unwatched.
    async fn adopt(self: &Arc<Self>, client: &Client) {
        for member in &self.config.members {
            let record = client.get_container(&member.id).await.ok().flatten();
            let restarts = record
                .as_ref()
                .and_then(|r| r.labels.get(LABEL_RESTART_COUNT))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            self.tracks
                .lock()
                .await
                .entry(member.id.clone())
                .or_insert(MemberTrack {
                    restarts,
                    backoff_exponent: 0,
                    running_since: Instant::now(),
                    busy: false,
                });
            let task = client.get_task(&member.id).await.ok().flatten();
            let waiting = record
                .as_ref()
                .and_then(|r| r.labels.get(LABEL_WAITING))
                .is_some_and(|w| !w.is_empty());
            let exited = match &task {
                Some(t) if t.state == TaskState::Stopped => Some(ExitStatus {
                    code: t.exit_status,
                    exited_at: t.exited_at,
                }),
                // A restart interrupted between deleting the old task and starting the new one.
                None if waiting => Some(ExitStatus {
                    code: 1,
                    exited_at: None,
                }),
                _ => None,
            };
            if let Some(status) = exited {
                let this = self.clone();
                let client = client.clone();
                let id = member.id.clone();
                tokio::spawn(async move { this.handle_exit(&client, &id, status).await });
            }
        }
    }

    /// Handles an exit, and again for as long as the restarted task is found stopped once the
    /// restart is done (an exit reported while the restart was under way is otherwise lost).
    async fn handle_exit(&self, client: &Client, id: &str, status: ExitStatus) {
        let mut status = status;
        while self.handle_one_exit(client, id, status).await {
            match client.get_task(id).await {
                Ok(Some(task)) if task.state == TaskState::Stopped => {
                    status = ExitStatus {
                        code: task.exit_status,
                        exited_at: task.exited_at,
                    }
                }
                _ => return,
            }
        }
    }

    /// Returns true when it restarted the member.
    async fn handle_one_exit(&self, client: &Client, id: &str, status: ExitStatus) -> bool {
        let Some(member) = self.member(id).cloned() else {
            return false;
        };
        // A late or repeated report of an exit already handled: the member runs again.
        match client.get_task(id).await {
            Ok(Some(task)) if task.state == TaskState::Stopped => {}
            _ => return false,
        }
        let Some(delay) = self.take_exit(id).await else {
            return false;
        };
        let reason = exit_reason(client, id, status.code).await;
        let restart = self.wants_restart(&member, status.code);
        self.record_run_end(client, &member, status, reason, restart.then_some(delay))
            .await;
        if !restart {
            self.release(id).await;
            if !member.sidecar {
                self.end_sidecars_after_apps(client).await;
            }
            return false;
        }
        if !self.wait_out_backoff(delay).await {
            return false;
        }
        // A sidecar that crashed as the app containers ended (or an agent that came back to a
        // completed pod) is not started again: the pod's work is done.
        if member.sidecar && (self.ending_sidecars.load(Ordering::SeqCst) || self.apps_ended_for_good(client).await) {
            self.ending_sidecars.store(true, Ordering::SeqCst);
            self.release(id).await;
            return false;
        }
        self.restart_after_exit(client, &member).await
    }

    /// Marks the member's exit as being handled and returns the backoff before a restart; None if
    /// one is being handled already.
    async fn take_exit(&self, id: &str) -> Option<Duration> {
        let mut tracks = self.tracks.lock().await;
        let track = tracks.entry(id.to_string()).or_insert(MemberTrack {
            restarts: 0,
            backoff_exponent: 0,
            running_since: Instant::now(),
            busy: false,
        });
        if track.busy {
            return None;
        }
        track.busy = true;
        if track.running_since.elapsed() >= BACKOFF_RESET_AFTER {
            track.backoff_exponent = 0;
        }
        let delay = backoff(
            Duration::from_millis(self.config.backoff_base_ms),
            track.backoff_exponent,
        );
        track.backoff_exponent += 1;
        Some(delay)
    }

    /// The exit is handled: a later one is no longer ignored.
    async fn release(&self, id: &str) {
        self.tracks
            .lock()
            .await
            .entry(id.to_string())
            .and_modify(|t| t.busy = false);
    }

    /// A sidecar runs as long as the pod, whatever its restartPolicy.
    fn wants_restart(&self, member: &OciMemberRef, code: u32) -> bool {
        if member.sidecar {
            !self.ending_sidecars.load(Ordering::SeqCst)
        } else {
            should_restart(&self.config.restart_policy, code)
        }
    }

    /// The run's end on the member's record: its code, reason, termination message, and the
    /// restart to come.
    async fn record_run_end(
        &self,
        client: &Client,
        member: &OciMemberRef,
        status: ExitStatus,
        reason: &str,
        restart_in: Option<Duration>,
    ) {
        let end = RunEnd {
            sandbox_id: &self.config.sandbox_id,
            id: &member.id,
            name: &member.name,
            code: status.code,
            reason,
            finished: status.exited_at.unwrap_or_else(now_secs),
            restart_in,
            message: self.termination_message(member, status.code).await,
        };
        if let Err(e) = record_exit(client, &end).await {
            eprintln!("agent: recording the exit of {}: {e}", member.name);
        }
    }

    /// Sleeps out the backoff; false if the pod began stopping meanwhile.
    async fn wait_out_backoff(&self, delay: Duration) -> bool {
        let mut stopping = self.stopping.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopping.changed() => return false,
        }
        !*self.stopping.borrow()
    }

    /// Restarts the member; true if it runs again.
    async fn restart_after_exit(&self, client: &Client, member: &OciMemberRef) -> bool {
        let outcome = self.restart(client, member).await;
        let mut tracks = self.tracks.lock().await;
        if let Some(track) = tracks.get_mut(&member.id) {
            track.busy = false;
            if outcome.is_ok() {
                track.running_since = Instant::now();
            }
        }
        match outcome {
            Ok(()) => true,
            Err(e) => {
                eprintln!("agent: restarting {} failed: {e}", member.name);
                false
            }
        }
    }

    /// The member's termination message of the run that just ended.
    async fn termination_message(&self, member: &OciMemberRef, code: u32) -> Option<String> {
        let dir = self.config.state_dir.as_ref()?;
        let restarts = self.tracks.lock().await.get(&member.id).map_or(0, |t| t.restarts);
        let log = crate::logs::run_file(&member.log_dir, restarts);
        let fallback = (member.message_from_logs && code != 0).then_some(log.as_path());
        crate::logs::termination_message(&crate::logs::termination_file(dir, &member.name), fallback)
    }

    async fn restart(&self, client: &Client, member: &OciMemberRef) -> Result<(), crate::containerd::ContainerdError> {
        let restarts = {
            let tracks = self.tracks.lock().await;
            tracks.get(&member.id).map(|t| t.restarts).unwrap_or(0) + 1
        };
        client.delete_task(&member.id).await?;
        // Each run starts with an empty termination message, as each kubelet container does.
        if let Some(dir) = &self.config.state_dir {
            let _ = std::fs::write(crate::logs::termination_file(dir, &member.name), b"");
        }
        let log = next_run_log(&member.log_dir, restarts);
        super::create_run_task(
            client,
            (&member.id, &member.name),
            &log,
            self.config.log_rotation,
            member.stdio,
            self.config.state_dir.as_deref(),
        )
        .await?;
        client.start_task(&member.id).await?;
        self.tracks
            .lock()
            .await
            .entry(member.id.clone())
            .and_modify(|t| t.restarts = restarts);
        record_restart(
            client,
            &self.config.sandbox_id,
            &member.id,
            &member.name,
            restarts,
            &log,
        )
        .await
    }
}

/// How a run ended, as kubelet names it: OOMKilled (the supervisor saw containerd's `/tasks/oom`),
/// Completed, or Error.
async fn exit_reason(client: &Client, id: &str, code: u32) -> &'static str {
    let oom = client
        .get_container(id)
        .await
        .ok()
        .flatten()
        .is_some_and(|c| c.labels.get(LABEL_OOM_KILLED).is_some_and(|v| v == "true"));
    match (code, oom) {
        (_, true) => "OOMKilled",
        (0, _) => "Completed",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_backoff_follow_kubelet() {
        assert!(should_restart("Always", 0) && should_restart("Always", 1));
        assert!(!should_restart("OnFailure", 0) && should_restart("OnFailure", 2));
        assert!(!should_restart("Never", 1));
        let base = Duration::from_secs(10);
        assert_eq!(backoff(base, 0), Duration::from_secs(10));
        assert_eq!(backoff(base, 3), Duration::from_secs(80));
        assert_eq!(backoff(base, 5), Duration::from_secs(300), "capped at five minutes");
        assert_eq!(backoff(base, 40), Duration::from_secs(300));
    }
}
