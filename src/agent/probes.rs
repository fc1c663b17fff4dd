//! Probes of the OCI members, run by the agent: HTTP and TCP probes from inside the pod's network
//! namespace (no curl needed in the image), exec probes through containerd. Startup gates the
//! others; liveness failures kill the member (the supervisor then restarts it per the restart
//! policy); readiness drives READY.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::protocol::{OciMemberRef, ProbeAction, ProbeDef, ProbeKind, ProbeStatus, SupervisorConfig};
use crate::containerd::{Client, TaskState};

pub type ProbeBoard = Arc<Mutex<HashMap<String, ProbeStatus>>>;

enum Verdict {
    /// successThreshold consecutive successes.
    Passed,
    /// failureThreshold consecutive failures.
    Failed(String),
    /// The run it was probing ended.
    Gone,
}

pub fn spawn_all(config: &SupervisorConfig, board: ProbeBoard, stopping: watch::Receiver<bool>) {
    for member in config.members.iter().filter(|m| !m.probes.is_empty()) {
        let (config, member, board, stopping) = (config.clone(), member.clone(), board.clone(), stopping.clone());
        tokio::spawn(async move { watch_member(config, member, board, stopping).await });
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

async fn running_pid(client: &Client, id: &str) -> Option<u32> {
    match client.get_task(id).await {
        Ok(Some(t)) if t.state == TaskState::Running => Some(t.pid),
        _ => None,
    }
}

async fn watch_member(
    config: SupervisorConfig,
    member: OciMemberRef,
    board: ProbeBoard,
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
            match Client::connect(&config.address, &config.namespace).await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        loop {
            // One iteration per run of the member: a restart starts the probes afresh.
            let pid = loop {
                if let Some(pid) = running_pid(&client, &member.id).await {
                    break pid;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            set(&board, &member.name, |s| {
                s.started = startup.is_none();
                s.ready = false;
            });
            if let Some(probe) = &startup {
                match run_until(&client, &member, probe, &host, pid, &board).await {
                    Verdict::Passed => set(&board, &member.name, |s| s.started = true),
                    Verdict::Failed(why) => {
                        kill(
                            &client,
                            &config.sandbox_id,
                            &member,
                            &format!("startup probe failed: {why}"),
                            &board,
                        )
                        .await;
                        continue;
                    }
                    Verdict::Gone => continue,
                }
            }
            let live = async {
                match &liveness {
                    Some(probe) => run_until(&client, &member, probe, &host, pid, &board).await,
                    None => std::future::pending().await,
                }
            };
            let ready = async {
                if let Some(probe) = &readiness {
                    run_until(&client, &member, probe, &host, pid, &board).await;
                }
                // The run ended (or there is no readiness probe): wait for it to end.
                while running_pid(&client, &member.id).await == Some(pid) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Verdict::Gone
            };
            let verdict = tokio::select! { v = live => v, v = ready => v };
            if let Verdict::Failed(why) = verdict {
                kill(
                    &client,
                    &config.sandbox_id,
                    &member,
                    &format!("liveness probe failed: {why}"),
                    &board,
                )
                .await;
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = stopping.changed() => {}
    }
}

async fn kill(client: &Client, sandbox_id: &str, member: &OciMemberRef, why: &str, board: &ProbeBoard) {
    eprintln!("agent: {}: {why}; killing it", member.name);
    let event = crate::pod::PodEvent::warning(
        "Unhealthy",
        &member.name,
        format!("{why}; the container will be restarted"),
    );
    let _ = crate::pod::events::record(client, sandbox_id, event).await;
    set(board, &member.name, |s| {
        s.ready = false;
        s.last = why.to_string();
    });
    let _ = client.kill_task(&member.id, 9, true).await;
    // Let the supervisor see the exit before the next run is probed.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Probes the run until a verdict: startup passes on successThreshold successes in a row, startup
/// and liveness fail on failureThreshold failures in a row; readiness never ends by itself, it flips
/// READY both ways for the whole run.
async fn run_until(
    client: &Client,
    member: &OciMemberRef,
    probe: &ProbeDef,
    host: &str,
    pid: u32,
    board: &ProbeBoard,
) -> Verdict {
    tokio::time::sleep(Duration::from_secs(probe.initial_delay_seconds.into())).await;
    let (mut successes, mut failures) = (0, 0);
    loop {
        if running_pid(client, &member.id).await != Some(pid) {
            return Verdict::Gone;
        }
        match probe_once(client, &member.id, &probe.action, host, probe.timeout_seconds).await {
            Ok(()) => {
                successes += 1;
                failures = 0;
                if successes >= probe.success_threshold {
                    match probe.kind {
                        ProbeKind::Startup => return Verdict::Passed,
                        ProbeKind::Readiness => set(board, &member.name, |s| s.ready = true),
                        ProbeKind::Liveness => {}
                    }
                }
            }
            Err(why) => {
                failures += 1;
                successes = 0;
                set(board, &member.name, |s| {
                    s.last = format!("{:?} probe failed: {why}", probe.kind).to_lowercase()
                });
                if failures >= probe.failure_threshold {
                    match probe.kind {
                        ProbeKind::Readiness => set(board, &member.name, |s| s.ready = false),
                        _ => return Verdict::Failed(why),
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(probe.period_seconds.into())).await;
    }
}

async fn probe_once(
    client: &Client,
    id: &str,
    action: &ProbeAction,
    pod_host: &str,
    timeout_secs: u32,
) -> Result<(), String> {
    let timeout = Duration::from_secs(timeout_secs.max(1).into());
    match action {
        ProbeAction::Tcp { host, port } => {
            let host = host.as_deref().unwrap_or(pod_host);
            tokio::time::timeout(timeout, TcpStream::connect((host, *port)))
                .await
                .map_err(|_| format!("no connection to {host}:{port} within {timeout:?}"))?
                .map(drop)
                .map_err(|e| format!("{host}:{port}: {e}"))
        }
        ProbeAction::Http { host, port, path } => {
            let host = host.as_deref().unwrap_or(pod_host);
            let exchange = async {
                let mut stream = TcpStream::connect((host, *port))
                    .await
                    .map_err(|e| format!("{host}:{port}: {e}"))?;
                let request = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: podctl-probe\r\nConnection: close\r\n\r\n");
                stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
                let mut head = [0u8; 64];
                let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
                let line = String::from_utf8_lossy(&head[..n]).to_string();
                let code: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                if (200..400).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("HTTP GET {path} on port {port} answered {code}"))
                }
            };
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| format!("HTTP GET {path} on port {port} timed out after {timeout:?}"))?
        }
        ProbeAction::Exec { command } => match client.exec_and_wait(id, command, timeout).await {
            Ok(Some(0)) => Ok(()),
            Ok(Some(code)) => Err(format!("{command:?} exited with {code}")),
            Ok(None) => Err(format!("{command:?} timed out after {timeout:?}")),
            Err(e) => Err(e.to_string()),
        },
    }
}
