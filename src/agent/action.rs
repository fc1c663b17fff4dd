//! A probe's or lifecycle hook's action as the agent runs it, and podctl too for a sidecar's preStop
//! (it comes after the agent stopped supervising): exec through containerd in an OCI member, or
//! httpGet, tcpSocket and grpc from inside the pod's network namespace ([`super::netprobe`]); a
//! hook may also sleep.

use std::time::Duration;

use super::netprobe;
use super::protocol::{HookDef, ProbeAction};
use crate::containerd::{Client, TaskState};
use crate::record::{events::record as record_event, PodEvent};

/// Runs `action` once against `pod_host` (unless it names a host); an exec runs in the OCI
/// container `exec_in` (create refuses exec actions for members that have none).
pub async fn run_action(
    client: &Client,
    action: &ProbeAction,
    exec_in: Option<&str>,
    pod_host: &str,
    timeout_secs: u32,
) -> Result<(), String> {
    let timeout = Duration::from_secs(timeout_secs.max(1).into());
    match action {
        ProbeAction::Tcp { host, port } => netprobe::tcp(host.as_deref().unwrap_or(pod_host), *port, timeout).await,
        ProbeAction::Http {
            host,
            port,
            path,
            https,
            headers,
        } => {
            let get = netprobe::HttpGet {
                host: host.as_deref().unwrap_or(pod_host),
                port: *port,
                path,
                https: *https,
                headers,
            };
            get.run(timeout).await
        }
        ProbeAction::Grpc { port, service } => netprobe::grpc(pod_host, *port, service, timeout).await,
        ProbeAction::Exec { command } => {
            // `create` refuses exec probes on WASM members: there is no process to exec into.
            let Some(id) = exec_in else {
                return Err("exec probes need an OCI member".into());
            };
            match client.exec_and_wait(id, command, timeout).await {
                Ok(Some(0)) => Ok(()),
                Ok(Some(code)) => Err(format!("{command:?} exited with {code}")),
                Ok(None) => Err(format!("{command:?} timed out after {timeout:?}")),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

/// Runs one hook for at most `timeout` (see [`run_action`] for `exec_in`).
pub async fn run_hook(
    client: &Client,
    hook: &HookDef,
    exec_in: Option<&str>,
    host: &str,
    timeout: Duration,
) -> Result<(), String> {
    match hook {
        HookDef::Sleep { seconds } => {
            tokio::time::sleep(Duration::from_secs(*seconds).min(timeout)).await;
            Ok(())
        }
        HookDef::Action(action) => {
            let secs = timeout.as_secs().clamp(1, u32::MAX.into()) as u32;
            tokio::time::timeout(timeout, run_action(client, action, exec_in, host, secs))
                .await
                .unwrap_or_else(|_| Err(format!("it did not finish within {timeout:?}")))
        }
    }
}

/// One member's preStop hook about to run: a failure is a `FailedPreStopHook` event on the pod.
pub struct PreStopRun<'a> {
    pub sandbox_id: &'a str,
    pub name: &'a str,
    pub exec_in: Option<&'a str>,
    pub host: &'a str,
}

impl PreStopRun<'_> {
    pub async fn run(&self, client: &Client, hook: &HookDef, left: Duration) {
        if left.is_zero() {
            return;
        }
        if let Err(why) = run_hook(client, hook, self.exec_in, self.host, left).await {
            let message = format!("PreStopHook failed: {why}");
            let event = PodEvent::warning("FailedPreStopHook", self.name, message);
            let _ = record_event(client, self.sandbox_id, event).await;
        }
    }
}

/// A sidecar's preStop hook, as its stop comes (podctl's stop or delete, the agent has stopped by
/// then; or the supervisor, once the app containers ended): while its task runs, for at most `left`.
pub async fn pre_stop_from_host(
    client: &Client,
    sandbox_id: &str,
    member_id: &str,
    name: &str,
    hook: HookDef,
    pod_ip: &str,
    left: Duration,
) {
    let running = matches!(client.get_task(member_id).await, Ok(Some(t)) if t.state == TaskState::Running);
    if !running {
        return;
    }
    let run = PreStopRun {
        sandbox_id,
        name,
        exec_in: Some(member_id),
        host: pod_ip,
    };
    run.run(client, &hook, left).await;
}
