//! Deployments, ReplicaSets and DaemonSets as podctl keeps them: in containerd
//! ([`crate::record::objects`]), each with its template and revision, so `get deployments`
//! rebuilds from containerd alone. Their pods carry [`ANNOTATION_CONTROLLED_BY`] and the template
//! hash label; the controller that makes them is [`crate::app`]'s.

use super::{PodError, PodView};
use crate::containerd::Client;
use crate::manifest::workload::{Workload, WorkloadKind};
use crate::record::objects;

/// On a workload's pods: `Deployment/web`, the workload that made it (Kubernetes' ownerReference).
pub const ANNOTATION_CONTROLLED_BY: &str = "podctl.io/controlled-by";
/// On a workload: its revision, counted up with each new template (as Kubernetes' Deployment).
pub const ANNOTATION_REVISION: &str = "deployment.kubernetes.io/revision";

fn damaged(kind: WorkloadKind, name: &str, message: String) -> PodError {
    PodError::ObjectDamaged {
        kind: kind.resource().split('.').next().unwrap_or_default().into(),
        name: name.to_string(),
        message,
    }
}

pub async fn get_workload(client: &Client, kind: WorkloadKind, name: &str) -> Result<Option<Workload>, PodError> {
    match objects::get(client, kind.kind(), name).await? {
        Some(json) => Ok(Some(
            serde_json::from_slice(&json).map_err(|e| damaged(kind, name, e.to_string()))?,
        )),
        None => Ok(None),
    }
}

pub async fn list_workloads(client: &Client, kind: WorkloadKind) -> Result<Vec<Workload>, PodError> {
    let mut found = Vec::new();
    for (name, json) in objects::list(client, kind.kind()).await? {
        found.push(serde_json::from_slice(&json).map_err(|e| damaged(kind, &name, e.to_string()))?);
    }
    Ok(found)
}

/// Stores this version, replacing the one there.
pub async fn put_workload(client: &Client, workload: &Workload) -> Result<(), PodError> {
    let json = serde_json::to_vec(workload).expect("workloads serialize");
    objects::put(client, workload.kind.kind(), &workload.metadata.name, &json).await?;
    Ok(())
}

/// Removes the record (its pods are the caller's); false if there was none.
pub async fn delete_workload_record(client: &Client, kind: WorkloadKind, name: &str) -> Result<bool, PodError> {
    Ok(objects::delete(client, kind.kind(), name).await?)
}

/// `Deployment/web`, as the pods' annotation names their workload.
pub fn owner_of(kind: WorkloadKind, name: &str) -> String {
    format!("{}/{name}", kind.kind())
}

/// The workload a pod was made by, if any.
pub fn controlled_by(view: &PodView) -> Option<&str> {
    view.pod
        .as_ref()?
        .metadata
        .annotations
        .get(ANNOTATION_CONTROLLED_BY)
        .map(String::as_str)
}
