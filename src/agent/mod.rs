//! The per-pod agent: a daemon podctl starts for every pod. It enters the pod's network namespace
//! before it creates any thread (a netns is per thread; threads and children inherit it), supervises
//! and probes the members, starts the member-runtime plugins the pod needs (`podctl-runtime-NAME`,
//! none for a pod with only OCI members) and runs those members through them, and answers podctl over a unix socket in the pod's
//! root-only state directory.
//!
//! - [`protocol`]: the configuration file and the request/reply messages.
//! - [`server`]: the agent process itself (`podctl agent --pod-dir DIR`).
//! - [`monitor`]: the agent's parent, which starts it again when it dies.
//! - [`client`]: what podctl uses to spawn, query, stop and restart an agent.

pub mod client;
pub mod hooks;
mod init;
mod keeper;
pub mod monitor;
mod netprobe;
pub mod probes;
pub mod protocol;
pub mod server;
pub mod supervisor;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent of pod {pod}: {path}: {cause}")]
    Io {
        pod: String,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("agent of pod {pod} is not running (no answer on {socket}: {cause}); `podctl agent restart {pod}` restarts it and its WASM members")]
    Unreachable {
        pod: String,
        socket: PathBuf,
        cause: String,
    },
    #[error("agent of pod {pod} sent a reply podctl cannot read: {cause}")]
    Protocol { pod: String, cause: String },
    #[error("agent of pod {pod}: cannot enter network namespace {netns}: {cause}; the pod's sandbox may be gone (`podctl delete {pod}`)")]
    Netns { pod: String, netns: PathBuf, cause: String },
    #[error("agent of pod {pod}: {message}")]
    Failed { pod: String, message: String },
}

/// Writes a small file of the agent's so that a reader never sees it half written (another file
/// renamed over it): PID files are read by podctl and tests while agents come and go.
pub(crate) fn write_file(path: &std::path::Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, path)
}

/// The monitor's and the agent's own small binaries, looked for next to podctl.
pub const MONITOR_BINARY: &str = "podctl-agent-monitor";
pub const AGENT_BINARY: &str = "podctl-agent";

/// Files of the agent inside the pod's state directory.
pub const CONFIG_FILE: &str = "agent.json";
pub const SOCKET_FILE: &str = "agent.sock";
pub const PID_FILE: &str = "agent.pid";
/// The agent's monitor, which starts it again when it dies (see [`monitor`]).
pub const MONITOR_PID_FILE: &str = "agent-monitor.pid";
pub const LOG_FILE: &str = "agent.log";
pub const STATE_FILE: &str = "agent-state.json";

/// Held by the pod's agent and its monitor for as long as they run (`flock`), so two agents never
/// supervise one pod directory; released by the kernel when the last of them ends.
pub const LOCK_FILE: &str = "agent.lock";
/// Names the lock's descriptor in a child that inherits it (the monitor from podctl, the agent
/// from its monitor).
const LOCK_FD_ENV: &str = "PODCTL_AGENT_LOCK_FD";

/// The pod directory's agent lock (see [`LOCK_FILE`]).
pub(crate) struct PodDirLock(std::os::fd::OwnedFd);

impl PodDirLock {
    /// Takes the lock, the one the parent passed down if it did, waiting up to `wait` for a holder
    /// that is being stopped to end.
    pub(crate) fn acquire(pod_dir: &std::path::Path, wait: std::time::Duration) -> Result<Self, AgentError> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let path = pod_dir.join(LOCK_FILE);
        let io = |cause| AgentError::Io {
            pod: pod_dir.display().to_string(),
            path: path.clone(),
            cause,
        };
        let inherited = std::env::var(LOCK_FD_ENV).ok().and_then(|fd| fd.parse::<i32>().ok());
        // Children of this process (plugins, hooks) must not see it: they would hold the lock on.
        std::env::remove_var(LOCK_FD_ENV);
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        let fd = match inherited.filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } >= 0) {
            // SAFETY: the parent opened it for this process and nothing else here owns it.
            Some(fd) => unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
            None => std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(io)?
                .into(),
        };
        let deadline = std::time::Instant::now() + wait;
        loop {
            // SAFETY: plain syscalls on a descriptor this function owns.
            if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
                return Ok(PodDirLock(fd));
            }
            let cause = std::io::Error::last_os_error();
            if cause.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(cause));
            }
            if std::time::Instant::now() >= deadline {
                let holder = [MONITOR_PID_FILE, PID_FILE]
                    .iter()
                    .find_map(|file| std::fs::read_to_string(pod_dir.join(file)).ok())
                    .map(|pid| format!(" (pid {})", pid.trim()))
                    .unwrap_or_default();
                return Err(AgentError::Failed {
                    pod: pod_dir.display().to_string(),
                    message: format!(
                        "another agent of this pod runs{holder} and holds {}; two would supervise the same \
                         members, so this one does not start (`podctl agent status POD` shows the running one)",
                        path.display()
                    ),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Lets `command`'s process inherit the lock: the descriptor stays open across its exec and the
    /// environment names it.
    pub(crate) fn pass_to(&self, command: &mut std::process::Command) {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = self.0.as_raw_fd();
        command.env(LOCK_FD_ENV, fd.to_string());
        // SAFETY: fcntl is async-signal-safe and touches only the child's descriptor table.
        unsafe {
            command.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// Creates the next task of a member (or init container) whose runs log to `log`; with stdin or
/// tty, its FIFOs are held by a relay started first (see `logs::relay`), under `pod_dir`.
pub(crate) async fn create_run_task(
    client: &crate::containerd::Client,
    (id, name): (&str, &str),
    log: &std::path::Path,
    rotation: crate::logs::Rotation,
    stdio: Option<crate::logs::relay::Interactive>,
    pod_dir: Option<&std::path::Path>,
) -> Result<u32, crate::containerd::ContainerdError> {
    let rootfs = client.snapshot_mounts(id).await?;
    let pod_dir = pod_dir.unwrap_or(std::path::Path::new("/run/podctl"));
    let output = crate::logs::relay::task_output(log, rotation, stdio, pod_dir, name).map_err(|e| {
        crate::containerd::ContainerdError::Invalid {
            object: format!("task {id}"),
            message: e.to_string(),
        }
    })?;
    let pid = client.create_task(id, rootfs, &output.io).await?;
    output.keep();
    Ok(pid)
}

/// The agent's one containerd connection for its keepers, probes and init runner (the supervisor
/// keeps its own, for its event subscription): made when first needed, again after `reset`. One
/// connection, not one per member: each costs the agent tens of kB.
#[derive(Clone)]
pub(crate) struct SharedClient {
    address: PathBuf,
    namespace: String,
    client: std::sync::Arc<tokio::sync::Mutex<Option<crate::containerd::Client>>>,
}

impl SharedClient {
    pub(crate) fn new(config: &protocol::SupervisorConfig) -> Self {
        SharedClient {
            address: config.address.clone(),
            namespace: config.namespace.clone(),
            client: Default::default(),
        }
    }

    /// The connection, or `None` while containerd cannot be reached.
    pub(crate) async fn get(&self) -> Option<crate::containerd::Client> {
        let mut client = self.client.lock().await;
        if client.is_none() {
            *client = crate::containerd::Client::connect(&self.address, &self.namespace)
                .await
                .ok();
        }
        client.clone()
    }

    /// Drops the connection after a call on it failed; the next `get` connects again.
    pub(crate) async fn reset(&self) {
        *self.client.lock().await = None;
    }
}
