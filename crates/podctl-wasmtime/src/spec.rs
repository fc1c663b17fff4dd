//! What a caller asks for: [`MemberSpec`] (argv, the complete environment, preopened
//! directories, where output goes, memory and CPU limits, the HTTP port of a proxy) and
//! [`Preopen`]. Both front ends (the podctl plugin and the Kubernetes node shim) fill it in from
//! their own protocol; nothing here knows either.

use std::path::PathBuf;

use crate::output::Output;

/// A host directory made visible to the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    /// The path the guest opens it by (e.g. `/data`).
    pub guest: String,
    pub read_only: bool,
}

/// How to run one member.
#[derive(Clone, Debug, Default)]
pub struct MemberSpec {
    /// The member (container) name; used in messages and the log.
    pub name: String,
    /// argv, argv[0] included (empty: `[name]`).
    pub args: Vec<String>,
    /// The complete environment; nothing is inherited from the agent.
    pub env: Vec<(String, String)>,
    /// The only host paths the program can touch.
    pub preopens: Vec<Preopen>,
    /// Where stdout and stderr go.
    pub output: Output,
    /// Bytes: caps each linear memory (and tables at `limit / 8` elements); growth beyond it traps
    /// and the member ends with [`ExitReason::MemoryLimitExceeded`].
    pub memory_limit: Option<u64>,
    /// Millicores. Below 1000, a guest that keeps running through an epoch slice (10 ms) sleeps
    /// `10 ms × (1000 − m) / m` before its next slice, so a spinning guest uses about `m`/1000 of
    /// a core. Guests blocked in WASI calls use no CPU and are not throttled.
    pub cpu_limit_millis: Option<u64>,
    /// HttpProxy: serve on `0.0.0.0:port` (in the caller's network namespace). Ignored for other
    /// kinds (a command may listen on its own port through wasi:sockets).
    pub http_port: Option<u16>,
}
