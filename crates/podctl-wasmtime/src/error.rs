//! `WasmError`: everything that can go wrong before a member runs (engine, cache, loading,
//! linking, starting). Once a member runs, its end is an [`ExitInfo`](crate::ExitInfo), not an
//! error. Every message names the object, the cause and the fix.

use std::io;
use std::path::PathBuf;

/// Why a WASM program could not be loaded or a member could not be started.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The wasmtime engine (or its WASI linkers) could not be built.
    #[error("wasm engine: {message}; this host cannot run WebAssembly members with this podctl build")]
    Engine { message: String },

    /// The AOT cache directory could not be created or used.
    #[error("wasm AOT cache {path}: {source}; make the directory creatable and writable by podctl, or run without a cache directory")]
    CacheDir { path: PathBuf, source: io::Error },

    /// Compiled code is loaded from the cache without re-checking it, so only its owner may
    /// write there.
    #[error("wasm AOT cache {path}: {problem}; cached code runs unchecked, so the directory must be owned by the user podctl runs as (uid {uid}) with mode 700: `chown {uid} {path} && chmod 700 {path}`, or remove it")]
    CacheDirUnsafe { path: PathBuf, problem: String, uid: u32 },

    /// Neither a binary module/component nor WAT text.
    #[error(
        "{name}: file is not WebAssembly (no \\0asm header, not WAT); give a .wasm module/component or a .wat file"
    )]
    NotWasm { name: String },

    /// WAT text that does not parse.
    #[error("{name}: invalid WAT text: {message}; fix the .wat source or give a compiled .wasm file")]
    InvalidWat { name: String, message: String },

    /// A binary that wasmtime rejects (bad encoding, unsupported proposal, unknown version).
    #[error(
        "{name}: cannot compile: {message}; rebuild it for wasm32-wasip1 (core module) or wasm32-wasip2 (component)"
    )]
    Compile { name: String, message: String },

    /// A component that is neither a `wasi:cli/run` command nor a `wasi:http` proxy.
    #[error("{name}: component exports neither wasi:cli/run@0.2 nor wasi:http/incoming-handler@0.2 (it exports: {exports}); build a WASI 0.2 command (a `main`) or an HTTP proxy component (WASI 0.3 components are not supported yet)")]
    UnsupportedComponent { name: String, exports: String },

    /// A core module without a `_start` command entry point.
    #[error("{name}: core module has no `_start` function taking and returning nothing ({detail}); podctl runs WASI preview1 commands: build a binary crate (with `main`), not a library or reactor")]
    NoStart { name: String, detail: String },

    /// Imports the host cannot satisfy.
    #[error("{name}: cannot be linked: {message}; preview1 modules may import only wasi_snapshot_preview1, components only WASI 0.2 (cli, clocks, filesystem, io, random, sockets, http)")]
    Link { name: String, message: String },

    /// A wasi:http proxy member without a port to serve it on.
    #[error("{name}: is a wasi:http proxy component but has no HTTP port; declare exactly one containerPort on this container so podctl can serve it")]
    NoHttpPort { name: String },

    /// A preopened directory that cannot be opened.
    #[error("{name}: preopen {host} (guest path {guest:?}): {message}; the host directory must exist and be readable by podctl")]
    Preopen {
        name: String,
        host: PathBuf,
        guest: String,
        message: String,
    },

    /// The member's log file cannot be opened for appending.
    #[error("{name}: log file {path}: {source}; its directory must exist and be writable by podctl")]
    LogFile {
        name: String,
        path: PathBuf,
        source: io::Error,
    },

    /// The proxy's listener could not be bound.
    #[error("{name}: cannot listen on 0.0.0.0:{port}: {source}; another process or pod member already uses this port: pick another containerPort")]
    Listen { name: String, port: u16, source: io::Error },

    /// `start` was called outside a tokio runtime.
    #[error("{name}: WasmHost::start was called outside a tokio runtime; call it from async code running on the agent's runtime")]
    NoRuntime { name: String },
}
