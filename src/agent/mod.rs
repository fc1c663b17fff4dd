//! The per-pod agent: a daemon podctl starts for every pod. It enters the pod's network namespace
//! before it creates any thread (a netns is per thread; threads and children inherit it), supervises
//! and probes the members, starts the member-runtime plugins the pod needs (`podctl-runtime-NAME`,
//! none for a pod with only OCI members) and runs those members through them, and answers podctl
//! over a unix socket in the pod's root-only state directory.
//!
//! This module is the wire, what the rest of podctl uses to talk to an agent; [`daemon`] is the
//! agent itself (it uses the wire, never the other way round).
//! - [`protocol`]: the configuration file and the request/reply messages.
//! - [`client`]: spawn, query, stop and restart an agent; find and stop orphaned ones.
//! - [`action`]: a probe's or hook's action (exec, httpGet, tcpSocket, grpc), which the agent runs,
//!   and podctl too for a sidecar's preStop; [`netprobe`] the network ones.
//! - [`lock`]: the pod directory's lock, so one agent serves it.
//! - [`daemon`]: `podctl agent run` and its monitor.

pub mod action;
pub mod client;
pub mod daemon;
mod lock;
mod netprobe;
pub mod protocol;

pub(crate) use lock::PodDirLock;

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
/// The agent's monitor, which starts it again when it dies (see [`daemon::monitor`]).
pub const MONITOR_PID_FILE: &str = "agent-monitor.pid";
pub const LOG_FILE: &str = "agent.log";
pub const STATE_FILE: &str = "agent-state.json";

/// Held by the pod's agent and its monitor for as long as they run (`flock`), so two agents never
/// supervise one pod directory; released by the kernel when the last of them ends.
pub const LOCK_FILE: &str = "agent.lock";
