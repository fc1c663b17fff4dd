//! Snapshots: the layer chain (keyed by chain ID) and each container's writable layer.

use std::collections::HashMap;

use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, ListSnapshotsRequest, MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
    StatSnapshotRequest, UsageRequest,
};
use containerd_client::types::Mount;
use tokio_stream::StreamExt;

use super::{Client, Result, SNAPSHOTTER};

impl Client {
    pub async fn snapshot_exists(&self, key: &str) -> Result<bool> {
        let mut snapshots = SnapshotsClient::new(self.channel());
        let request = StatSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.into(),
        };
        match snapshots
            .stat(self.request(request, None))
            .await
            .map_err(self.status_error("stat", format!("snapshot {key}")))
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn prepare_snapshot(&self, lease: &str, key: &str, parent: &str) -> Result<Vec<Mount>> {
        let mut snapshots = SnapshotsClient::new(self.channel());
        let request = PrepareSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.into(),
            parent: parent.into(),
            labels: HashMap::new(),
        };
        let response = snapshots
            .prepare(self.request(request, Some(lease)))
            .await
            .map_err(self.status_error("prepare", format!("snapshot {key}")))?;
        Ok(response.into_inner().mounts)
    }

    /// How many inodes containerd counts in a snapshot (for an active one, its writable layer).
    pub async fn snapshot_inodes(&self, key: &str) -> Result<i64> {
        let mut snapshots = SnapshotsClient::new(self.channel());
        let request = UsageRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.into(),
        };
        let response = snapshots
            .usage(self.request(request, None))
            .await
            .map_err(self.status_error("usage", format!("snapshot {key}")))?;
        Ok(response.into_inner().inodes)
    }

    pub async fn snapshot_mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let mut snapshots = SnapshotsClient::new(self.channel());
        let request = MountsRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.into(),
        };
        let response = snapshots
            .mounts(self.request(request, None))
            .await
            .map_err(self.status_error("mounts", format!("snapshot {key}")))?;
        Ok(response.into_inner().mounts)
    }

    pub async fn commit_snapshot(&self, lease: &str, name: &str, key: &str) -> Result<()> {
        let mut snapshots = SnapshotsClient::new(self.channel());
        let request = CommitSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            name: name.into(),
            key: key.into(),
            labels: HashMap::new(),
        };
        snapshots
            .commit(self.request(request, Some(lease)))
            .await
            .map_err(self.status_error("commit", format!("snapshot {name}")))?;
        Ok(())
    }

    /// Removes a snapshot; one that is already gone is fine.
    pub async fn remove_snapshot(&self, key: &str) -> Result<()> {
        let mut snapshots = SnapshotsClient::new(self.channel());
        let request = RemoveSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.into(),
        };
        match snapshots
            .remove(self.request(request, None))
            .await
            .map_err(self.status_error("remove", format!("snapshot {key}")))
        {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Names of all snapshots (committed and active) in this namespace.
    pub async fn list_snapshots(&self) -> Result<Vec<String>> {
        let mut snapshots = SnapshotsClient::new(self.channel());
        let request = ListSnapshotsRequest {
            snapshotter: SNAPSHOTTER.into(),
            filters: vec![],
        };
        let mut stream = snapshots
            .list(self.request(request, None))
            .await
            .map_err(self.status_error("list", "snapshots"))?
            .into_inner();
        let mut names = Vec::new();
        while let Some(page) = stream.next().await {
            let page = page.map_err(self.status_error("list", "snapshots"))?;
            names.extend(page.info.into_iter().map(|i| i.name));
        }
        Ok(names)
    }
}
