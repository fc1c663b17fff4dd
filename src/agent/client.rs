//! podctl's side of the agent: spawn it as a daemon, ask it for status, stop it, restart it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{AgentConfig, Request, StatusReply};
use super::*;

fn io_err(pod: &str, path: &Path) -> impl FnOnce(std::io::Error) -> AgentError {
    let (pod, path) = (pod.to_string(), path.to_path_buf());
    move |cause| AgentError::Io { pod, path, cause }
}

/// Writes the agent's configuration into the pod's state directory.
pub fn write_config(pod_dir: &Path, config: &AgentConfig) -> Result<(), AgentError> {
    let path = pod_dir.join(CONFIG_FILE);
    let json = serde_json::to_vec_pretty(config).expect("configs serialize");
    super::write_file(&path, json).map_err(io_err(&config.pod, &path))
}

/// Reads the agent's configuration back (`podctl system restore` updates it after a reboot).
pub fn read_config(pod_dir: &Path) -> Result<AgentConfig, AgentError> {
    let path = pod_dir.join(CONFIG_FILE);
    let pod = pod_dir.display().to_string();
    let raw = std::fs::read(&path).map_err(io_err(&pod, &path))?;
    serde_json::from_slice(&raw).map_err(|e| AgentError::Protocol {
        pod,
        cause: format!("{}: {e}", path.display()),
    })
}

/// Starts the agent's monitor (`podctl-agent-monitor`, see [`super::monitor`], which runs the agent and
/// starts it again if it dies) in its own session so it outlives this command; their output goes
/// to `agent.log` in the pod directory. Returns the monitor's PID.
pub fn spawn(pod: &str, pod_dir: &Path) -> Result<u32, AgentError> {
    let exe = crate::podctl_exe().map_err(io_err(pod, Path::new("/proc/self/exe")))?;
    let log_path = pod_dir.join(LOG_FILE);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err(pod, &log_path))?;
    let err_log = log.try_clone().map_err(io_err(pod, &log_path))?;
    // The small monitor binary next to podctl when it is there (one runs per pod).
    let monitor = exe.with_file_name(MONITOR_BINARY);
    let mut command = if monitor.is_file() {
        let mut command = Command::new(&monitor);
        command.arg("--podctl").arg(&exe).arg("--pod-dir");
        command
    } else {
        let mut command = Command::new(&exe);
        command.args(["agent", "monitor", "--pod-dir"]);
        command
    };
    command.arg(pod_dir).stdin(Stdio::null()).stdout(log).stderr(err_log);
    // Taken here and handed down, so a second spawn fails before it records a PID; a stopped
    // agent that is still ending gets a moment to let go.
    let lock = PodDirLock::acquire(pod_dir, Duration::from_secs(3))?;
    lock.pass_to(&mut command);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child = command.spawn().map_err(io_err(pod, pod_dir))?;
    // Recorded now, not by the monitor once it is up, so a stop right after create finds it.
    let pid_path = pod_dir.join(MONITOR_PID_FILE);
    super::write_file(&pid_path, child.id().to_string()).map_err(io_err(pod, &pid_path))?;
    Ok(child.id())
}

async fn call(pod: &str, pod_dir: &Path, request: &Request, timeout: Duration) -> Result<StatusReply, AgentError> {
    let socket = pod_dir.join(SOCKET_FILE);
    let unreachable = |cause: String| AgentError::Unreachable {
        pod: pod.to_string(),
        socket: socket.clone(),
        cause,
    };
    let exchange = async {
        let mut stream = UnixStream::connect(&socket)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut line = serde_json::to_vec(request).expect("requests serialize");
        line.push(b'\n');
        stream.write_all(&line).await.map_err(|e| unreachable(e.to_string()))?;
        let mut reply = String::new();
        BufReader::new(stream)
            .read_line(&mut reply)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        serde_json::from_str(reply.trim()).map_err(|e| AgentError::Protocol {
            pod: pod.to_string(),
            cause: format!("{e}: {reply:?}"),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| unreachable(format!("no reply within {timeout:?}")))?
}

pub async fn status(pod: &str, pod_dir: &Path) -> Result<StatusReply, AgentError> {
    call(pod, pod_dir, &Request::Status, Duration::from_secs(3)).await
}

/// Waits until the agent answers and every member has left the loading phase.
pub async fn wait_ready(pod: &str, pod_dir: &Path, timeout: Duration) -> Result<StatusReply, AgentError> {
    let start = Instant::now();
    loop {
        match status(pod, pod_dir).await {
            Ok(reply) => return Ok(reply),
            Err(e) if start.elapsed() > timeout => {
                let log = std::fs::read_to_string(pod_dir.join(LOG_FILE)).unwrap_or_default();
                return Err(AgentError::Failed {
                    pod: pod.to_string(),
                    message: format!("did not come up within {timeout:?} ({e}); its log says: {}", log.trim()),
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Asks the agent to stop its members (HTTP members drain up to `grace`) and exit, which ends its
/// monitor too; an agent that does not answer is stopped through its monitor (SIGTERM, passed
/// on), and whatever still runs after that is killed by the PIDs they recorded.
pub async fn stop(pod: &str, pod_dir: &Path, grace: Duration) -> Result<Option<StatusReply>, AgentError> {
    let request = Request::Stop {
        grace_secs: grace.as_secs(),
    };
    let reply = call(pod, pod_dir, &request, grace + Duration::from_secs(5)).await.ok();
    if reply.is_none() {
        // Not answering (still starting, or wedged): SIGTERM stops its members gracefully.
        if let Some(pid) = live_pid(pod_dir, MONITOR_PID_FILE).or_else(|| live_pid(pod_dir, PID_FILE)) {
            signal(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while is_alive(pod_dir) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill_both(pod_dir);
    Ok(reply)
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
}

/// SIGKILLs the monitor first, so it cannot start the agent again, then the agent.
fn kill_both(pod_dir: &Path) {
    for file in [MONITOR_PID_FILE, PID_FILE] {
        if let Some(pid) = live_pid(pod_dir, file) {
            signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// The pod's agent or its monitor (which starts the agent again) is running.
pub fn is_alive(pod_dir: &Path) -> bool {
    [MONITOR_PID_FILE, PID_FILE]
        .iter()
        .any(|file| live_pid(pod_dir, file).is_some())
}

/// The PID the agent (`PID_FILE`) or its monitor (`MONITOR_PID_FILE`) recorded, while that
/// process still runs.
fn live_pid(pod_dir: &Path, file: &str) -> Option<u32> {
    let pid = std::fs::read_to_string(pod_dir.join(file)).ok()?.trim().parse().ok()?;
    is_our_agent(pid, pod_dir).then_some(pid)
}

/// The PID still belongs to this pod's agent (not a recycled PID of something else).
fn is_our_agent(pid: u32, pod_dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let cmdline = String::from_utf8_lossy(&cmdline);
    let dir: PathBuf = pod_dir.to_path_buf();
    cmdline.contains("agent") && cmdline.contains(&*dir.to_string_lossy())
}

/// An agent (or its monitor) whose pod directory is gone: no podctl command can reach it any more,
/// yet it pins its pod's network namespace, and with it the pod's IP and host ports.
#[derive(Debug, Clone, PartialEq)]
pub struct OrphanAgent {
    pub pid: u32,
    pub pod_dir: PathBuf,
    pub monitor: bool,
}

/// The agents and monitors running for a pod directory under `state_root` that no longer exists
/// (another podctl setup's agents, under another state directory, are not looked at).
pub fn orphan_agents(state_root: &Path) -> Vec<OrphanAgent> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<OrphanAgent> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let (pod_dir, monitor) = agent_pod_dir(&cmdline)?;
            (pod_dir.starts_with(state_root) && !pod_dir.exists()).then_some(OrphanAgent { pid, pod_dir, monitor })
        })
        .collect();
    // Monitors first: stopped before their agent, they cannot start it again.
    found.sort_by_key(|agent| (!agent.monitor, agent.pid));
    found
}

/// The pod directory of an agent's or monitor's command line (`... agent run --pod-dir DIR`,
/// `podctl-agent-monitor --podctl EXE --pod-dir DIR`), and whether it is the monitor.
fn agent_pod_dir(cmdline: &[u8]) -> Option<(PathBuf, bool)> {
    use std::os::unix::ffi::OsStrExt;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let program = Path::new(std::ffi::OsStr::from_bytes(args.first()?));
    let name = program.file_name()?.as_bytes();
    let monitor = if name == MONITOR_BINARY.as_bytes() {
        true
    } else if args.get(1) == Some(&&b"agent"[..]) {
        match args.get(2).copied() {
            Some(b"monitor") => true,
            Some(b"run") => false,
            _ => return None,
        }
    } else {
        return None;
    };
    let at = args.iter().position(|a| *a == b"--pod-dir")?;
    let dir = PathBuf::from(std::ffi::OsStr::from_bytes(args.get(at + 1)?));
    Some((dir, monitor))
}

/// Stops orphans found by [`orphan_agents`]: the monitor is killed (it has nothing to start again),
/// the agent gets SIGTERM, which stops its members within their grace, and SIGKILL after `grace`.
pub async fn stop_orphans(orphans: &[OrphanAgent], grace: Duration) {
    use nix::sys::signal::Signal;
    // Only while the PID still runs that command line: it may have ended and been reused.
    let still = |agent: &OrphanAgent| {
        std::fs::read(format!("/proc/{}/cmdline", agent.pid))
            .ok()
            .and_then(|c| agent_pod_dir(&c))
            .is_some_and(|(dir, _)| dir == agent.pod_dir)
    };
    for agent in orphans.iter().filter(|a| a.monitor && still(a)) {
        signal(agent.pid, Signal::SIGKILL);
    }
    let agents: Vec<&OrphanAgent> = orphans.iter().filter(|a| !a.monitor && still(a)).collect();
    for agent in &agents {
        signal(agent.pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while agents.iter().any(|a| still(a)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for agent in agents.iter().filter(|a| still(a)) {
        signal(agent.pid, Signal::SIGKILL);
    }
}

/// Starts the agent (and its monitor) again after they died or the monitor gave up; its members
/// count a restart. Refuses while the agent runs and answers.
pub async fn restart(pod: &str, pod_dir: &Path) -> Result<StatusReply, AgentError> {
    if let Some(pid) = live_pid(pod_dir, PID_FILE) {
        if status(pod, pod_dir).await.is_ok() {
            return Err(AgentError::Failed {
                pod: pod.to_string(),
                message: format!("it is running (pid {pid}); nothing to restart"),
            });
        }
    }
    kill_both(pod_dir);
    let _ = std::fs::remove_file(pod_dir.join(SOCKET_FILE));
    spawn(pod, pod_dir)?;
    wait_ready(pod, pod_dir, Duration::from_secs(30)).await
}

#[cfg(test)]
mod tests {
    use super::agent_pod_dir;
    use std::path::PathBuf;

    #[test]
    fn agent_command_lines_name_their_pod_directory() {
        let dir = PathBuf::from("/var/lib/podctl/default/abc");
        assert_eq!(
            agent_pod_dir(b"/usr/bin/podctl-agent\0agent\0run\0--pod-dir\0/var/lib/podctl/default/abc\0"),
            Some((dir.clone(), false))
        );
        assert_eq!(
            agent_pod_dir(
                b"/usr/bin/podctl-agent-monitor\0--podctl\0/usr/bin/podctl\0--pod-dir\0/var/lib/podctl/default/abc\0"
            ),
            Some((dir.clone(), true))
        );
        assert_eq!(
            agent_pod_dir(b"podctl\0agent\0monitor\0--pod-dir\0/var/lib/podctl/default/abc\0"),
            Some((dir, true))
        );
        // Neither an agent nor its monitor, whatever its arguments say.
        assert_eq!(agent_pod_dir(b"vim\0--pod-dir\0/var/lib/podctl/default/abc\0"), None);
        assert_eq!(agent_pod_dir(b"podctl\0agent\0status\0--pod-dir\0/x\0"), None);
    }
}
