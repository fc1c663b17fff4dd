//! `containerd-shim-podctl-v1`: podctl's runtime for a Kubernetes node (containerd
//! `runtime_type = "io.containerd.podctl.v1"`, CRI handler `podctl`).
//!
//! runwasi's `containerd-shim-wasm` does the shim: the task API containerd speaks, one shim per
//! pod, and youki's libcontainer for every container process (the pod's namespaces, the cgroup
//! kubelet asked for, the rootfs with its mounts, the CRI log pipes on fds 0–2). A container whose
//! entrypoint is an ELF file or a script runs as an ordinary Linux container (the pause container
//! and a pod's OCI members); any other is a WASM member and runs here, inside that same container
//! process, on `podctl-wasmtime` — the host `podctl-runtime-wasmtime` uses on a podctl host.
//!
//! This file holds the shim's identity and the AOT cache; `member.rs` runs a member and
//! `container.rs` reads what the container process can learn about itself.

mod container;
mod member;

use std::os::fd::{IntoRawFd, RawFd};
use std::path::PathBuf;
use std::sync::OnceLock;

use containerd_shim_wasm::shim::{Cli, Config, Shim, Version};

/// The layer media types of WASM images the shim reads from the content store (the wasm OCI
/// artifact forms; a `wasi/wasm` platform image is an ordinary tar layer and needs none).
const WASM_LAYER_TYPES: &[&str] = &[
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
];

/// Set in a container process whose member cannot run, to the reason; see [`refuse`].
static REFUSAL: OnceLock<&'static str> = OnceLock::new();

/// Makes the CRI error of a container that cannot run say why.
///
/// The framework reports a member its engine refuses only as "`<Shim::name()>` executor can't
/// handle spec" and logs the cause where a cluster user never looks. The check runs in the
/// container's own process (forked for this one container, gone right after), so the name that
/// process reports may carry the cause: CRI then says
/// `podctl (/greeter.wasm: … ; fix: …) executor can't handle spec`. The shim process itself never
/// sets it.
pub(crate) fn refuse(reason: String) {
    let _ = REFUSAL.set(Box::leak(format!("podctl ({reason})").into_boxed_str()));
}

/// The AOT cache directory, opened by the shim before any container exists so that every
/// container process inherits it: inside the container the host's path is out of reach, the open
/// descriptor is not (`/proc/self/fd/N/.`). Close-on-exec, so an ordinary Linux container's
/// program never holds it. `None` when it cannot be opened: members are then compiled each start.
static CACHE_FD: OnceLock<Option<RawFd>> = OnceLock::new();

pub(crate) fn cache_dir() -> Option<PathBuf> {
    CACHE_FD
        .get()
        .copied()
        .flatten()
        .map(|fd| PathBuf::from(format!("/proc/self/fd/{fd}/.")))
}

fn open_cache_dir() -> Option<RawFd> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = std::env::var_os("PODCTL_WASM_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/podctl/wasm"));
    // Private (0700) as podctl-wasmtime requires: its files are code loaded without validation.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ok()?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(&dir)
        .ok()?;
    Some(file.into_raw_fd())
}

struct PodctlShim;

impl Shim for PodctlShim {
    fn name() -> &'static str {
        REFUSAL.get().copied().unwrap_or("podctl")
    }

    fn version() -> Version {
        containerd_shim_wasm::shim::version!()
    }

    type Sandbox = member::WasmMember;

    fn supported_layers_types() -> &'static [&'static str] {
        WASM_LAYER_TYPES
    }
}

fn main() {
    // One malloc arena instead of one per thread, as in podctl-runtime-wasmtime: the shim's tokio
    // threads and a member's engine threads then share pages. Set while the process has one thread.
    // SAFETY: mallopt only tunes glibc's allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    // Before the framework forks its zygote: every container process inherits the descriptor.
    let _ = CACHE_FD.set(open_cache_dir());
    PodctlShim::run(Config::default());
}
