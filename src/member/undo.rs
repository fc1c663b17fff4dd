//! The rollback journal of `create`: each step made (by `create` or by a member runtime) is
//! recorded with how to unmake it, and a failure unmakes them in reverse order.

use std::path::PathBuf;

use crate::containerd::Client;
use crate::record::NetworkRecord;
use crate::sandbox::netns;

/// One made thing and how to unmake it.
pub enum Step {
    RemoveNetns(PathBuf),
    CniDel {
        record: NetworkRecord,
        sandbox_id: String,
    },
    RemoveDir(PathBuf),
    RemoveSnapshot(String),
    DeleteContainer(String),
    DeleteTask(String),
    /// The pod's agent (WASM members): stop it, then its files go with the state directory.
    StopAgent {
        pod: String,
        dir: PathBuf,
    },
}

/// The rollback journal of a create.
pub struct Undo {
    client: Client,
    steps: Vec<Step>,
    pub lease: Option<String>,
}

impl Undo {
    pub fn new(client: Client) -> Undo {
        Undo {
            client,
            steps: Vec::new(),
            lease: None,
        }
    }

    pub fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    pub fn extend(&mut self, steps: Vec<Step>) {
        self.steps.extend(steps);
    }

    /// Success: the records now own everything; only the lease goes.
    pub async fn forget(mut self) {
        if let Some(lease) = self.lease.take() {
            self.client.delete_lease(&lease).await.ok();
        }
    }

    /// Failure: unmake in reverse order. Errors here are reported but do not stop the rollback.
    pub async fn rollback(mut self) {
        while let Some(step) = self.steps.pop() {
            type Outcome = Result<(), Box<dyn std::error::Error + Send + Sync>>;
            let outcome: Outcome = match &step {
                Step::DeleteTask(id) => {
                    self.client.kill_task(id, 9, true).await.ok();
                    let wait = self.client.wait_task(id);
                    tokio::time::timeout(std::time::Duration::from_secs(10), wait)
                        .await
                        .ok();
                    self.client.delete_task(id).await.map(drop).map_err(Into::into)
                }
                Step::DeleteContainer(id) => self.client.delete_container(id).await.map_err(Into::into),
                Step::RemoveSnapshot(key) => self.client.remove_snapshot(key).await.map_err(Into::into),
                Step::RemoveDir(path) => {
                    crate::volume::remove_dir_with_mounts(path).map_err(|e| format!("{}: {e}", path.display()).into())
                }
                Step::CniDel { record, sandbox_id } => record.teardown(sandbox_id).await.map_err(Into::into),
                Step::RemoveNetns(path) => netns::remove_netns(path).map_err(Into::into),
                Step::StopAgent { pod, dir } => crate::agent::client::stop(pod, dir, std::time::Duration::ZERO)
                    .await
                    .map(drop)
                    .map_err(Into::into),
            };
            if let Err(e) = outcome {
                eprintln!("warning: rollback step failed: {e}");
            }
        }
        if let Some(lease) = self.lease.take() {
            self.client.delete_lease(&lease).await.ok();
        }
    }
}
