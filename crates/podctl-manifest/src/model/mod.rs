//! The subset of the Kubernetes core/v1 Pod that podctl runs.
//!
//! Field names and defaults follow Kubernetes, so the same JSON serves as the user's manifest
//! and as the record podctl stores on containerd; everything empty is skipped when serializing
//! to keep that record compact. One file per part of the Pod reference a Kubernetes user knows;
//! every type is named here, as `model::X`.

mod container_spec;
mod env;
mod pod_spec;
mod probes;
mod security_context;
mod serde_fields;
mod volume_sources;

pub use container_spec::*;
pub use env::*;
pub use pod_spec::*;
pub use probes::*;
pub use security_context::*;
pub use volume_sources::*;
