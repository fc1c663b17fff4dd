//! The agent's monitor: `podctl-agent-monitor --podctl PODCTL --pod-dir DIR` (a small binary of its
//! own, as one runs per pod; `podctl agent monitor --pod-dir DIR` where it is missing), which podctl
//! starts in its own session. It runs the agent as its child and starts it again when it dies without being
//! asked to stop (a crash, a kill), after a short backoff; the new agent re-adopts the pod from
//! containerd's records. It ends when the agent exits cleanly (a stop request), when it is told
//! to stop itself (SIGTERM, passed on to the agent), or when the pod's state is gone.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::agent::*;

static STOPPING: AtomicBool = AtomicBool::new(false);
static CHILD: AtomicI32 = AtomicI32::new(0);

const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// An agent that ran this long is healthy again: the next restart comes quickly.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// Agents that die this soon after starting, this many times in a row, cannot start (their pod's
/// network namespace is gone, say): the monitor gives up, as systemd's start limit does.
const QUICK_DEATH: Duration = Duration::from_secs(5);
const QUICK_DEATHS_ALLOWED: u32 = 5;

extern "C" fn on_terminate(_signal: libc::c_int) {
    STOPPING.store(true, Ordering::SeqCst);
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(child, libc::SIGTERM) };
    }
}

fn io_err(pod_dir: &Path, path: &Path) -> impl FnOnce(std::io::Error) -> AgentError {
    let (pod, path) = (pod_dir.display().to_string(), path.to_path_buf());
    move |cause| AgentError::Io { pod, path, cause }
}

/// Runs the monitor until the agent is stopped for good; `podctl` runs the agent (`agent run`).
pub fn run(pod_dir: &Path, podctl: &Path) -> Result<(), AgentError> {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only touches atomics and calls kill, both async-signal-safe.
        unsafe { libc::signal(signal, on_terminate as *const () as libc::sighandler_t) };
    }
    // The agent's own small binary next to podctl when it is there (one runs per pod); it takes
    // podctl's `agent run` arguments.
    let agent = podctl.with_file_name(AGENT_BINARY);
    let exe = if agent.is_file() { agent } else { podctl.to_path_buf() };
    let lock = PodDirLock::acquire(pod_dir, Duration::ZERO)?;
    let monitor_pid = pod_dir.join(MONITOR_PID_FILE);
    crate::agent::write_file(&monitor_pid, std::process::id().to_string()).map_err(io_err(pod_dir, &monitor_pid))?;
    let mut delay = FIRST_DELAY;
    let mut quick_deaths = 0;
    loop {
        let started = Instant::now();
        // stdout and stderr are the monitor's own: the pod's agent.log.
        let mut command = Command::new(&exe);
        command
            .args(["agent", "run", "--pod-dir"])
            .arg(pod_dir)
            .stdin(Stdio::null());
        lock.pass_to(&mut command);
        let mut child = command.spawn().map_err(io_err(pod_dir, &exe))?;
        CHILD.store(child.id() as i32, Ordering::SeqCst);
        let pid_path = pod_dir.join(PID_FILE);
        let _ = crate::agent::write_file(&pid_path, child.id().to_string());
        if STOPPING.load(Ordering::SeqCst) {
            // Told to stop while it was being started.
            // SAFETY: plain kill of our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let status = child.wait().map_err(io_err(pod_dir, &pid_path))?;
        CHILD.store(0, Ordering::SeqCst);
        if STOPPING.load(Ordering::SeqCst) || status.success() || !pod_dir.join(CONFIG_FILE).exists() {
            break;
        }
        let ran = started.elapsed();
        if ran >= HEALTHY_AFTER {
            delay = FIRST_DELAY;
        }
        quick_deaths = if ran < QUICK_DEATH { quick_deaths + 1 } else { 0 };
        if quick_deaths >= QUICK_DEATHS_ALLOWED {
            eprintln!(
                "agent monitor: the agent died {quick_deaths} times within {QUICK_DEATH:?} of starting; giving up (`podctl agent restart` tries again)"
            );
            break;
        }
        eprintln!(
            "agent monitor: the agent (pid {}) ended ({status}); starting it again in {delay:?}",
            child.id()
        );
        let until = Instant::now() + delay;
        while Instant::now() < until && !STOPPING.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if STOPPING.load(Ordering::SeqCst) {
            break;
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
    let _ = std::fs::remove_file(&monitor_pid);
    Ok(())
}
