//! `podctl-wasmtime`: WASI modules and components as pod members.
//!
//! One [`WasmHost`] per agent process (one wasmtime `Engine`, one epoch ticker thread) loads
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
//! agent must enter the pod's namespace before it creates the tokio runtime and the host.
//!
//! Files: `host.rs` (engine, ticker, linkers), `load.rs` (recognition, classification, AOT
//! cache), `member.rs` (specs, stores, limits, status, core/command runners), `http.rs` (proxy
//! server and guests' outgoing HTTP), `error.rs` (`WasmError`).

mod error;
mod host;
mod http;
mod load;
mod member;

pub use error::WasmError;
pub use host::{HostConfig, WasmHost, EPOCH_TICK};
pub use load::{is_wasm, Program, ProgramKind};
pub use member::{ExitInfo, ExitReason, MemberSpec, MemberStatus, Output, Preopen, RunningMember, SharedWriter, Usage};

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
