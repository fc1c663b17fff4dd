//! podctl: Kubernetes-style pods directly on containerd.
//!
//! A pod is a pause sandbox task that owns the pod's namespaces (network pinned first, then IPC, UTS,
//! PID) plus member containers that join them. Everything is rebuilt from containerd's own records.

pub mod agent;
pub mod app;
pub mod cli;
pub mod image;
pub mod logs;
pub mod member;
pub mod pod;
pub mod record;
pub mod settings;
pub mod spec;

// The leaves are crates of their own (crates/), so the compiler enforces that they import nothing
// of podctl: the Pod model, containerd's gRPC client, the sandbox network and the written volumes.
// Named here as before, so `crate::manifest::` and the like stay the paths the rest uses.
pub use podctl_containerd as containerd;
pub use podctl_manifest as manifest;
pub use podctl_sandbox as sandbox;
pub use podctl_volume as volume;

/// podctl's own executable, for the processes it has started on its behalf (the pod agent and
/// its monitor, containerd's log driver). Named by its path even after the file was replaced (an
/// upgrade while pods run), when the kernel reports the old one as `PATH (deleted)`.
pub fn podctl_exe() -> std::io::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(path) => path.into(),
        None => exe,
    })
}
