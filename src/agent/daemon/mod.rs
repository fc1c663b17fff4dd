//! The agent itself (`podctl agent run`): [`server`] answers podctl and starts everything, over the
//! shared state in [`state`] (the plugin members' slots, restart counts); [`supervisor`] restarts OCI
//! members, [`keeper`] plugin members, [`init`] runs init containers, with [`restart`]'s policy and
//! backoff; [`probes`] and [`hooks`] run probes and lifecycle hooks through the wire's actions;
//! [`monitor`] is the agent's parent, which starts it again when it dies. The modules import down
//! this list, never back up: `server` uses them all, `state` none.

mod hooks;
mod init;
mod keeper;
pub mod monitor;
mod probes;
mod restart;
mod server;
mod state;
mod supervisor;

pub use server::run;

use std::path::PathBuf;

use crate::agent::protocol;

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
