//! The only place that speaks containerd's gRPC API.
//!
//! [`Client`] wraps one tonic channel plus the containerd namespace; the submodules hold one service
//! each (content, images, snapshots, containers, tasks and their exit events, leases). Every `tonic::Status` becomes a
//! [`ContainerdError`] that names the operation and the object.

mod containers;
mod content;
mod images;
mod leases;
mod runtime;
mod snapshots;
mod task_events;
mod tasks;

/// A content descriptor (media type, digest, size), as image records and layer applies take it.
pub use containerd_client::types::Descriptor;
/// A snapshot's rootfs mounts, as a task is created with them.
pub use containerd_client::types::Mount as RootfsMount;
pub use containers::{ContainerRecord, NewContainer, OCI_SPEC_TYPE_URL};
pub use content::{BlobInfo, BlobWriter};
pub use images::{descriptor, ImageRecord};
pub use leases::random_hex;
pub use runtime::{RuncOptions, TaskRuntime, DEFAULT_RUNTIME_TYPE};
pub use task_events::{TaskEvent, TaskEvents};
pub use tasks::{signal_number, ExecIo, ExitStatus, TaskInfo, TaskState, SIGKILL};

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};

/// The snapshotter podctl unpacks into and runs from (containerd's default).
pub const SNAPSHOTTER: &str = "overlayfs";
/// The containerd socket ctr and the CRI plugin use.
pub const DEFAULT_ADDRESS: &str = "/run/containerd/containerd.sock";

#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error(
        "cannot reach containerd at {address}: {cause}; start it (`containerd &` or \
         `systemctl start containerd`) or point podctl at its socket with --address / CONTAINERD_ADDRESS"
    )]
    Unreachable { address: String, cause: String },
    #[error("{object} not found in containerd namespace `{namespace}`")]
    NotFound { object: String, namespace: String },
    #[error("{object} already exists in containerd namespace `{namespace}`")]
    AlreadyExists { object: String, namespace: String },
    #[error("containerd {op} of {object} failed: {message} (gRPC {code:?})")]
    Rpc {
        op: &'static str,
        object: String,
        code: Code,
        message: String,
    },
    #[error("{object}: {message}")]
    Invalid { object: String, message: String },
    /// Another client writes the same content right now (containerd locks an ingest by its ref).
    #[error("{object} is being written by another client right now; try again once it is done")]
    Locked { object: String },
    #[error("{object}: timed out after {seconds}s waiting for {what}")]
    Timeout { object: String, what: String, seconds: u64 },
}

impl ContainerdError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ContainerdError::NotFound { .. })
    }
    pub fn is_already_exists(&self) -> bool {
        matches!(self, ContainerdError::AlreadyExists { .. })
    }
    pub fn is_locked(&self) -> bool {
        matches!(self, ContainerdError::Locked { .. })
    }
}

pub type Result<T> = std::result::Result<T, ContainerdError>;

/// A connection to containerd bound to one containerd namespace.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    namespace: String,
    address: PathBuf,
}

impl Client {
    /// Connects and checks that the daemon answers, so the first real call cannot be the one that
    /// discovers containerd is down.
    pub async fn connect(address: &Path, namespace: &str) -> Result<Client> {
        let unreachable = |cause: String| ContainerdError::Unreachable {
            address: address.display().to_string(),
            cause,
        };
        if !address.exists() {
            return Err(unreachable("the socket does not exist".into()));
        }
        let connecting = containerd_client::connect(address);
        let channel = tokio::time::timeout(Duration::from_secs(10), connecting)
            .await
            .map_err(|_| unreachable("timed out after 10s".into()))?
            .map_err(|e| unreachable(error_chain(&e)))?;
        let client = Client {
            channel,
            namespace: namespace.to_string(),
            address: address.to_path_buf(),
        };
        let mut version = containerd_client::services::v1::version_client::VersionClient::new(client.channel());
        version
            .version(Request::new(()))
            .await
            .map_err(|s| unreachable(s.message().to_string()))?;
        Ok(client)
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// containerd's own version and git revision (its Version API).
    pub async fn server_version(&self) -> Result<(String, String)> {
        let mut version = containerd_client::services::v1::version_client::VersionClient::new(self.channel());
        let reply = version
            .version(Request::new(()))
            .await
            .map_err(self.status_error("version", "containerd"))?
            .into_inner();
        Ok((reply.version, reply.revision))
    }

    /// The same connection, working in another namespace.
    pub fn in_namespace(&self, namespace: &str) -> Client {
        Client {
            namespace: namespace.to_string(),
            ..self.clone()
        }
    }

    /// The daemon's namespaces.
    pub async fn list_namespaces(&self) -> Result<Vec<String>> {
        use containerd_client::services::v1::namespaces_client::NamespacesClient;
        use containerd_client::services::v1::ListNamespacesRequest;
        let mut namespaces = NamespacesClient::new(self.channel());
        let reply = namespaces
            .list(Request::new(ListNamespacesRequest { filter: String::new() }))
            .await
            .map_err(self.status_error("list", "namespaces"))?;
        Ok(reply.into_inner().namespaces.into_iter().map(|n| n.name).collect())
    }

    pub fn address(&self) -> &Path {
        &self.address
    }

    fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A request carrying the namespace and, when given, the lease that protects what it creates
    /// from garbage collection until the lease is deleted.
    fn request<T>(&self, message: T, lease: Option<&str>) -> Request<T> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        if let Ok(value) = self.namespace.parse() {
            metadata.insert("containerd-namespace", value);
        }
        if let Some(value) = lease.filter(|l| !l.is_empty()).and_then(|l| l.parse().ok()) {
            metadata.insert("containerd-lease", value);
        }
        request
    }

    /// Maps a gRPC status to a typed error naming the operation and the object.
    fn status_error(&self, op: &'static str, object: impl Into<String>) -> impl FnOnce(Status) -> ContainerdError {
        let namespace = self.namespace.clone();
        let object = object.into();
        move |status| match status.code() {
            Code::NotFound => ContainerdError::NotFound { object, namespace },
            Code::AlreadyExists => ContainerdError::AlreadyExists { object, namespace },
            // containerd answers Unavailable both when it is going away and when an ingest ref is
            // held by another writer; only the message tells them apart.
            Code::Unavailable if status.message().contains("locked") => ContainerdError::Locked { object },
            Code::Unavailable => ContainerdError::Unreachable {
                address: String::new(),
                cause: status.message().to_string(),
            },
            code => ContainerdError::Rpc {
                op,
                object,
                code,
                message: status.message().to_string(),
            },
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// containerd timestamps -> Unix seconds (fractional), None when unset.
pub fn timestamp_secs(ts: &Option<prost_types::Timestamp>) -> Option<f64> {
    ts.as_ref()
        .filter(|t| t.seconds > 0)
        .map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}
