//! Pod operations across the modules: create (with rollback), delete (graceful), and the view of
//! pods rebuilt from containerd's records alone (labels + extensions on the sandbox container).

pub mod config_refs;
pub mod config_store;
pub(crate) mod create;
pub(crate) mod delete;
mod etc;
mod gc;
pub(crate) mod intent;
pub(crate) mod lifecycle;
mod lookup;
pub(crate) mod restore;
mod runtime_class_store;
pub mod update;
pub mod volume_claims;
pub mod workload_store;

pub use crate::member::undo::Undo;
pub use crate::record::{
    host_ip, member_id, netns_name, new_uid, node_name, now_secs, sandbox_id, MemberState, MemberView, NetworkRecord,
    PodEvent, PodView, RecordError, EXT_EVENTS, EXT_NETWORK, EXT_POD, LABEL_CONTAINER_NAME, LABEL_HOST_RESTARTED,
    LABEL_INIT_STATUS, LABEL_KIND, LABEL_LAST_RESTART, LABEL_LAST_STATE, LABEL_LOG_PATH, LABEL_MANAGED_BY,
    LABEL_MEMBER_INDEX, LABEL_OOM_KILLED, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID, LABEL_RESTART_COUNT,
    LABEL_RUNTIME, LABEL_RUNTIME_HANDLER, LABEL_SANDBOX_ID, LABEL_STOPPED, LABEL_STOP_SIGNAL, LABEL_TERMINATING,
    LABEL_WAITING,
};
pub use crate::settings::Settings;
pub use create::create_pod;
pub use delete::{delete_pod, DeleteOptions};
pub use gc::{gc, Found};
pub use lifecycle::{start_pod, stop_pod};
pub use lookup::{find_pod, list_pods};
pub use restore::{restore, Restored};
pub use runtime_class_store::{create_runtime_class, delete_runtime_class, list_runtime_classes};

use std::path::PathBuf;

use crate::agent::AgentError;
use crate::containerd::{Client, ContainerdError};
use crate::image::archive::ArchiveError;
use crate::image::ImageError;
use crate::member::MemberError;
use crate::sandbox::SandboxError;
use crate::spec::SpecError;

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Member(Box<MemberError>),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    ImageStore(Box<ImageError>),
    #[error("container {container}: {error}")]
    Image { container: String, error: Box<ImageError> },
    #[error("container {container}: {message}")]
    Container { container: String, message: String },
    #[error("{kind} {name} already exists; delete it first with `podctl delete {kind} {name}` or pick another metadata.name")]
    ObjectExists { kind: String, name: String },
    #[error("{kind} {name} not found; `podctl get {}` lists them", plural(.kind))]
    ObjectNotFound { kind: String, name: String },
    #[error("{kind} {name} is immutable: its data cannot change; delete it and create it again (`podctl delete {kind} {name}`), or apply it under a new name")]
    ObjectImmutable { kind: String, name: String },
    #[error("pod {pod}: these fields differ from the running pod: {fields}; a pod's spec does not change in place (but for its containers' images): pass --force to delete it and create it again")]
    SpecChanged { pod: String, fields: String },
    #[error(
        "{kind} {name}: its record in containerd is damaged ({message}); remove it with `podctl delete {kind} {name}`"
    )]
    ObjectDamaged {
        kind: String,
        name: String,
        message: String,
    },
    #[error("pod {name} already exists in containerd namespace `{namespace}`; delete it first with `podctl delete {name}` or pick another metadata.name")]
    Exists { name: String, namespace: String },
    #[error("pod {name} not found in containerd namespace `{namespace}`; `podctl get pods` lists the pods there")]
    NotFound { name: String, namespace: String },
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
    #[error("{field}: hostPort {port}/{protocol} on {ip} is already in use ({cause}); pick another hostPort or stop what holds it")]
    PortTaken {
        field: String,
        port: u16,
        protocol: String,
        ip: String,
        cause: String,
    },
    #[error("hostPort {port}: an earlier nat rule of CNI network {network:?} (container {owner}) takes its traffic, so this pod would never see it; remove what left it (`podctl gc` for podctl's own network, the other tool's cleanup otherwise), then create the pod again")]
    HostPortShadowed { port: u16, network: String, owner: String },
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("pod {pod}: its record is damaged: {message}; remove it with `podctl delete {pod}`")]
    Damaged { pod: String, message: String },
    #[error("pod {pod}: a {op} of it is under way (podctl pid {pid}); wait for it, or stop that process")]
    Busy { pod: String, op: String, pid: u32 },
    #[error(
        "pod {pod}: {what}; it may have left {left}; `podctl delete {pod}` removes what it left, then create it again"
    )]
    Interrupted { pod: String, what: String, left: String },
    #[error("pod {pod}: timed out after {seconds}s waiting for {what}")]
    Timeout { pod: String, what: String, seconds: u64 },
    /// A ConfigMap or Secret reference that cannot be resolved; names the field, never a value.
    #[error("pod {pod}: {field}: {problem}; {fix}")]
    ConfigRef {
        pod: String,
        field: String,
        problem: String,
        fix: String,
    },
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
    #[error("persistentvolumeclaim {claim} is in use by pod {pods}; delete the pods first (the claim's data stays until the claim is deleted)")]
    ClaimInUse { claim: String, pods: String },
    #[error("pod {pod}: persistentvolumeclaim {claim} is ReadWriteOncePod and pod {holder} mounts it; delete pod {holder} first, or mount another claim")]
    ClaimBusy { pod: String, claim: String, holder: String },
    #[error("persistentvolumeclaim {claim}: its spec is immutable after creation except resources.requests; delete the claim (and its data) to change it, or apply it under a new name")]
    ClaimSpecChanged { claim: String },
}

impl From<MemberError> for PodError {
    fn from(error: MemberError) -> PodError {
        PodError::Member(Box::new(error))
    }
}

impl From<ImageError> for PodError {
    fn from(error: ImageError) -> PodError {
        PodError::ImageStore(Box::new(error))
    }
}

pub fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PodError {
    let path = path.into();
    move |cause| PodError::Io { path, cause }
}

/// `configmaps`, `runtimeclasses`: a resource kind's plural, as `kubectl get` takes it.
fn plural(kind: &str) -> String {
    if kind.ends_with('s') {
        format!("{kind}es")
    } else {
        format!("{kind}s")
    }
}

/// Before a stop step of sidecars: their preStop hooks, from the host (the agent has stopped),
/// within what is `left` of the grace period.
pub(crate) async fn sidecar_pre_stops(
    client: &Client,
    pod: &PodView,
    step: &crate::member::RuntimeGroups<'_>,
    left: std::time::Duration,
) {
    let ip = pod.ip().unwrap_or_else(|| "127.0.0.1".into());
    for member in step.iter().flat_map(|(_, members)| members).filter(|m| m.sidecar) {
        let hook = pod
            .pod
            .as_ref()
            .and_then(|p| p.container(&member.name))
            .and_then(|c| crate::member::hook_defs(c).pre_stop);
        if let Some(hook) = hook {
            crate::agent::action::pre_stop_from_host(
                client,
                &pod.sandbox_id,
                &member.id,
                &member.name,
                hook,
                &ip,
                left,
            )
            .await;
        }
    }
}
