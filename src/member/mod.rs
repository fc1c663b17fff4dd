//! Pod member runtimes: one small trait, [`RuntimeDriver`], and a [`Registry`] that picks the runtime
//! for each container. The OCI runtime (containerd shims, [`oci`]) and the plugins ([`plugin`]:
//! `podctl-runtime-NAME` processes in the per-pod agent, of which [`plugin::wasmtime`] is one) are
//! its implementations; create, get and delete never branch on image kinds themselves. The registry
//! also holds the host's runtime handlers ([`runtime_handlers`], runtimes.toml): a pod's
//! `spec.runtimeClassName` or a container's annotation names one, and a containerd handler's shim
//! and options go on the member's record ([`NamedRuntime`]).
//!
//! The modules: [`runtime_driver`] is the trait and what crosses it; [`runtime_registry`] picks a
//! runtime per container and groups a pod's members by runtime; [`image_probe`] looks at an image
//! before anything is created; [`pod_context`] is what a runtime adds members to (labels, logs,
//! volumes); [`agent_defs`] turns a container's probes and hooks into what the pod's agent runs;
//! [`undo`] is create's rollback journal. This file holds only the module's error type.
//!
//! # Adding a runtime
//! Most runtimes are plugins: a `podctl-runtime-NAME` binary in the plugin directory becomes a
//! [`plugin::PluginRuntime`] by itself (plugins/README.md). Inside podctl, implement
//! [`RuntimeDriver`] (claim what it runs, prepare before anything is created, start a pod's
//! members of its kind recording undo steps, observe their state, stop them gracefully), then hand
//! it to [`Registry::new`] ahead of the OCI runtime, which claims every image nobody else does. Its
//! members are containerd container records like the others (labels name the pod, member and
//! `podctl.io/runtime`), so every command finds them without a private database.

pub mod agent_defs;
pub mod image_probe;
pub mod oci;
pub mod plugin;
pub mod pod_context;
pub mod runtime_driver;
pub mod runtime_handlers;
pub mod runtime_registry;
pub mod undo;

#[cfg(test)]
mod probe_defs_tests;

use std::path::PathBuf;

pub(crate) use agent_defs::{hook_defs, last_probe, probe_defs};
pub use image_probe::{probe, ImageProbe, RUNTIME_ANNOTATION_PREFIX};
pub use pod_context::{Hosted, PodContext, VolumeBinding};
pub use runtime_driver::{
    BoxFuture, Claim, Observation, ObserveContext, Payload, PreparedMember, RuntimeDriver, RuntimeInfo,
};
pub use runtime_handlers::{NamedRuntime, RuntimeClass};
pub use runtime_registry::{Registry, RuntimeGroups, Selected};

use crate::agent::AgentError;
use crate::containerd::ContainerdError;
use crate::image::ImageError;
use crate::spec::SpecError;

impl From<ImageError> for MemberError {
    fn from(error: ImageError) -> MemberError {
        MemberError::ImageStore(Box::new(error))
    }
}

pub fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> MemberError {
    let path = path.into();
    move |cause| MemberError::Io { path, cause }
}

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    ImageStore(Box<ImageError>),
    /// What the member's runtime reports about it (a module that does not load, a failed start).
    #[error("container {container}: {message}")]
    Runtime { container: String, message: String },
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("pod {pod}: its record is damaged: {message}; remove it with `podctl delete {pod}`")]
    Damaged { pod: String, message: String },
    #[error("pod {pod}: init container {container} exited with code {code} and restartPolicy Never does not retry it, so the pod was not created (with Always or OnFailure the pod's agent retries it); its last output:\n{output}")]
    InitFailed {
        pod: String,
        container: String,
        code: u32,
        output: String,
    },
    #[error("container {container}: no member runtime can run image {image}: {reasons}")]
    NoRuntime {
        container: String,
        image: String,
        reasons: String,
    },
    #[error("container {container}: annotation {key} names runtime `{runtime}`, but this podctl has: {known} (handlers come from {config})")]
    UnknownRuntime {
        container: String,
        key: String,
        runtime: String,
        known: String,
        config: String,
    },
    #[error("spec.runtimeClassName: runtime class {class} has no handler in {config} (handlers there: {known}); add [runtimes.{handler}] with runtime_type or plugin, or point --runtime-config at the file that has it")]
    UnknownRuntimeClass {
        class: String,
        handler: String,
        config: String,
        known: String,
    },
    #[error(
        "runtime config {config}: {field}: plugin {plugin:?} is not installed (plugins here: {known}); put podctl-runtime-{plugin} in the plugin directory (--plugin-dir, default /usr/libexec/podctl/runtimes) or next to podctl"
    )]
    UnknownPlugin {
        config: String,
        field: String,
        plugin: String,
        known: String,
    },
    #[error("container {container}: handler {handler} runs tasks with {runtime}, but the pod's sandbox runs with {sandbox}; members share the sandbox's shim, so set spec.runtimeClassName: {handler} to run the whole pod with it")]
    ShimMismatch {
        container: String,
        handler: String,
        runtime: String,
        sandbox: String,
    },
}
