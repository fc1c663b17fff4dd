//! `podctl-wasmtime`: WASI modules and components as pod members.
//!
//! One [`WasmHost`] per process (one wasmtime `Engine`, one epoch ticker thread) loads
//! programs ([`WasmHost::load`] → [`Program`], with an on-disk AOT cache) and starts them as
//! members ([`WasmHost::start`] → [`RunningMember`]) on the caller's tokio runtime:
//!
//! - [`ProgramKind::CoreModule`]: WASI preview1 (`_start`), exit code from `proc_exit`;
//! - [`ProgramKind::Command`]: a WASI 0.2 component exporting `wasi:cli/run`, with `wasi:sockets`
//!   (TCP, UDP, name lookup) in the caller's network namespace;
//! - [`ProgramKind::HttpProxy`]: a component exporting `wasi:http/incoming-handler`, served on
//!   `0.0.0.0:http_port` with a fresh instance per request (like `wasmtime serve`).
//!
//! The network namespace is the one of the threads that run the members and of the ticker: the
//! caller must enter the pod's namespace before it creates the tokio runtime and starts the first
//! member (the host starts its ticker thread then, so it may be built earlier, even before a fork).
//!
//! Two front ends use it: `podctl-runtime-wasmtime` (a podctl plugin: one process per pod, every
//! WASM member of the pod in it) and the Kubernetes node shim (one container per process). Neither
//! protocol shows here: a caller fills in a [`MemberSpec`] and reads [`MemberStatus`]/[`ExitInfo`].
//!
//! Modules, each using only the ones listed before it: `error`, `exit` (status and exit info),
//! `usage` (memory and CPU counting), `output` (log file or writers; the guest's streams),
//! `spec` (what to run), `outgoing` (guests' outgoing HTTP), `store` (store data, limits, the
//! store factory), `engine` (engine, ticker, linkers, cache directory), `program` (recognition,
//! classification, AOT cache), `control` (a running member's handle), `serve` (the HTTP proxy
//! runner), `member` (start and the core/command runners).

mod control;
mod engine;
mod error;
mod exit;
mod member;
mod outgoing;
mod output;
mod program;
mod serve;
mod spec;
mod store;
mod usage;

pub use control::RunningMember;
pub use engine::{HostConfig, WasmHost, EPOCH_TICK};
pub use error::WasmError;
pub use exit::{ExitInfo, ExitReason, MemberStatus};
pub use output::{Output, SharedWriter};
pub use program::{is_wasm, Program, ProgramKind};
pub use spec::{MemberSpec, Preopen};
pub use usage::Usage;

/// The wasmtime release this crate is built against (pinned in its Cargo.toml).
pub const WASMTIME_VERSION: &str = "48.0.8";

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_is_the_pinned_one() {
        let manifest = include_str!("../Cargo.toml");
        assert!(
            manifest.contains(&format!("wasmtime = {{ version = \"={}\"", super::WASMTIME_VERSION)),
            "update WASMTIME_VERSION to the wasmtime pin in Cargo.toml"
        );
    }
}
