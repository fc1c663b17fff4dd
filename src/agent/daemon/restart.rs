//! The restart policy as kubelet applies it, for OCI and plugin members and init containers alike:
//! whether an exit restarts, the crash-loop backoff, each run's log file, and how an exit and a
//! restart are recorded on the member's record and as events.

use std::path::Path;
use std::time::Duration;

use crate::containerd::Client;
use crate::logs::run_file;
use crate::record::events::record as record_event;
use crate::record::{
    now_secs, PodEvent, LABEL_LAST_RESTART, LABEL_LAST_STATE, LABEL_LOG_PATH, LABEL_OOM_KILLED, LABEL_RESTART_COUNT,
    LABEL_WAITING,
};

const BACKOFF_CAP: Duration = Duration::from_secs(300);
pub(super) const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);

pub fn should_restart(policy: &str, exit_code: u32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// kubelet's crash-loop delay for the `exponent`-th consecutive quick restart.
pub fn backoff(base: Duration, exponent: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(exponent.min(16)))
        .min(BACKOFF_CAP)
}

/// The log file of a member's `restart`-th run, with the run two before it removed: this run's
/// log and the previous one (`logs --previous`) are kept, as kubelet does.
pub(super) fn next_run_log(dir: &Path, restart: u32) -> std::path::PathBuf {
    if restart >= 2 {
        for file in crate::logs::rotated_files(&run_file(dir, restart - 2)) {
            let _ = std::fs::remove_file(file);
        }
    }
    run_file(dir, restart)
}

/// How a member's run ended, as its record and the events keep it.
pub(super) struct RunEnd<'a> {
    pub sandbox_id: &'a str,
    pub id: &'a str,
    pub name: &'a str,
    pub code: u32,
    pub reason: &'a str,
    pub finished: f64,
    /// The member is restarted after this delay.
    pub restart_in: Option<Duration>,
    /// What it said about its end (its termination message).
    pub message: Option<String>,
}

/// Records an exit on the member's container record (last state; `CrashLoopBackOff` while it
/// waits to be restarted) and as an event. OCI and WASM members alike.
pub(super) async fn record_exit(client: &Client, end: &RunEnd<'_>) -> crate::containerd::Result<()> {
    let mut last_state = serde_json::json!({
        "exitCode": end.code,
        "reason": end.reason,
        "finishedAt": end.finished,
    });
    if let Some(message) = &end.message {
        last_state["message"] = serde_json::json!(message);
    }
    let event = match end.restart_in {
        Some(delay) => PodEvent::warning(
            "BackOff",
            end.name,
            format!(
                "Container exited with code {}; restarting in {:.1}s",
                end.code,
                delay.as_secs_f64()
            ),
        ),
        None => PodEvent::normal("Exited", end.name, format!("Container exited with code {}", end.code)),
    };
    let _ = record_event(client, end.sandbox_id, event).await;
    let mut labels = vec![(LABEL_LAST_STATE, last_state.to_string())];
    if end.restart_in.is_some() {
        labels.push((LABEL_WAITING, "CrashLoopBackOff".to_string()));
    }
    client.set_labels(end.id, &labels).await
}

/// Records a member's new run on its container record (restart count and time, its log; no
/// longer waiting or OOM-killed) and as an event. OCI and WASM members alike.
pub(super) async fn record_restart(
    client: &Client,
    sandbox_id: &str,
    id: &str,
    name: &str,
    restarts: u32,
    log: &Path,
) -> crate::containerd::Result<()> {
    client
        .set_labels(
            id,
            &[
                (LABEL_RESTART_COUNT, restarts.to_string()),
                (LABEL_LAST_RESTART, format!("{:.3}", now_secs())),
                (LABEL_WAITING, String::new()),
                (LABEL_OOM_KILLED, String::new()),
                (LABEL_LOG_PATH, log.to_string_lossy().into_owned()),
            ],
        )
        .await?;
    let message = format!("Restarted container {name}");
    let _ = record_event(client, sandbox_id, PodEvent::normal("Restarted", name, message)).await;
    Ok(())
}
