//! `WasmHost`: the one wasmtime `Engine` of a process, its epoch ticker thread, the two WASI
//! linkers (preview1 for core modules; WASI 0.2 + wasi:http for components) that every member
//! shares, and the AOT cache directory. Loading lives in `program.rs`, starting in `member.rs`.
//!
//! The host starts no thread until its first member starts (then the epoch ticker): a process may
//! build it and then fork, and each child runs members on the engine and linkers it inherited
//! (the node shim builds it before its zygote). Start members after entering the pod's network
//! namespace: the ticker and tokio's threads inherit the namespace of the thread that creates them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, Engine};

use crate::error::WasmError;
use crate::store::{ComponentData, CoreData};

/// How often the epoch ticker advances the engine's epoch. Every store yields to tokio (and checks
/// for stop/kill) once per tick, so this is both the scheduling slice of a spinning guest and the
/// latency of `kill`.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Host-wide settings.
#[derive(Clone, Debug, Default)]
pub struct HostConfig {
    /// Where compiled programs are cached (created 0700). `None`: compile on every load.
    pub cache_dir: Option<PathBuf>,
}

/// The WASM member runtime of one agent process: one `Engine`, one epoch ticker, shared linkers.
/// Cheap to clone; members keep it (and so the ticker) alive while they run.
#[derive(Clone)]
pub struct WasmHost {
    pub(crate) inner: Arc<HostInner>,
}

pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    pub(crate) cache_dir: Option<PathBuf>,
    /// Hex prefix of `Engine::precompile_compatibility_hash()`: part of every cache file name.
    pub(crate) compat: String,
    pub(crate) core_linker: wasmtime::Linker<CoreData>,
    pub(crate) component_linker: wasmtime::component::Linker<ComponentData>,
    ticker_stop: Arc<AtomicBool>,
    /// Set once the epoch ticker runs (by the first `start`, in the process that runs members).
    ticker: std::sync::OnceLock<()>,
}

impl Drop for HostInner {
    fn drop(&mut self) {
        // The ticker notices within one tick; it holds only an Engine clone.
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for WasmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmHost")
            .field("cache_dir", &self.inner.cache_dir)
            .field("compat", &self.inner.compat)
            .finish()
    }
}

fn engine_err(e: impl std::fmt::Display) -> WasmError {
    WasmError::Engine {
        message: format!("{e:#}"),
    }
}

impl WasmHost {
    /// Builds the engine (async, epoch interruption, component model), the linkers and the cache
    /// directory. The epoch ticker thread starts with the first member.
    pub fn new(config: HostConfig) -> Result<WasmHost, WasmError> {
        let mut cfg = Config::new();
        cfg.epoch_interruption(true);
        cfg.wasm_component_model(true);
        let engine = Engine::new(&cfg).map_err(engine_err)?;

        if let Some(dir) = &config.cache_dir {
            create_private_dir(dir).map_err(|source| WasmError::CacheDir {
                path: dir.clone(),
                source,
            })?;
            check_private_dir(dir)?;
        }

        let mut core_linker = wasmtime::Linker::<CoreData>::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut core_linker, |d: &mut CoreData| &mut d.wasi).map_err(engine_err)?;
        let mut component_linker = wasmtime::component::Linker::<ComponentData>::new(&engine);
        // The whole WASI 0.2 command world plus wasi:http, for commands and proxies alike (like
        // `wasmtime serve -Scli`): Rust std guests import wasi:cli/environment, exit, filesystem...
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker).map_err(engine_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component_linker).map_err(engine_err)?;

        let compat = compat_hash(&engine);
        let ticker_stop = Arc::new(AtomicBool::new(false));

        Ok(WasmHost {
            inner: Arc::new(HostInner {
                engine,
                cache_dir: config.cache_dir,
                compat,
                core_linker,
                component_linker,
                ticker_stop,
                ticker: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Starts the epoch ticker if it does not run yet (in this process).
    pub(crate) fn ensure_ticker(&self) -> Result<(), WasmError> {
        if self.inner.ticker.get().is_some() {
            return Ok(());
        }
        let mut failed = None;
        self.inner.ticker.get_or_init(|| {
            if let Err(e) = spawn_ticker(self.inner.engine.clone(), self.inner.ticker_stop.clone()) {
                failed = Some(engine_err(e));
            }
        });
        failed.map_or(Ok(()), Err)
    }

    /// The shared engine (for callers that want to inspect it).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }
}

fn spawn_ticker(engine: Engine, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new().name("wasm-epoch".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
        }
    })?;
    Ok(())
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The cache is deserialized without validation (`Module::deserialize` is `unsafe` for that
/// reason): refuse a directory another user could have written code into.
fn check_private_dir(dir: &std::path::Path) -> Result<(), WasmError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let meta = std::fs::symlink_metadata(dir).map_err(|source| WasmError::CacheDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let problem = if !meta.is_dir() {
        Some("it is not a directory (a symlink?)".to_string())
    } else if meta.uid() != uid {
        Some(format!("it is owned by uid {}", meta.uid()))
    } else if meta.mode() & 0o077 != 0 {
        Some(format!("its mode is {:o}, not 700", meta.mode() & 0o777))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(WasmError::CacheDirUnsafe {
            path: dir.to_path_buf(),
            problem,
            uid,
        }),
        None => Ok(()),
    }
}

/// A stable (sha256-based) digest of the engine's compatibility hash, so that cache files written
/// by an incompatible wasmtime build or configuration are simply never looked up.
fn compat_hash(engine: &Engine) -> String {
    use sha2::Digest as _;
    use std::hash::{Hash, Hasher};
    struct ShaHasher(sha2::Sha256);
    impl Hasher for ShaHasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut h = ShaHasher(sha2::Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(&h.0.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_cache_others_can_write_to_is_refused() {
        let dir = std::env::temp_dir().join(format!("podctl-cache-check-{}", std::process::id()));
        super::create_private_dir(&dir).unwrap();
        assert!(super::check_private_dir(&dir).is_ok());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = super::check_private_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("mode is 777") && err.contains("chmod 700"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
