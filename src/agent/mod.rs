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
