//! Loading: recognising WebAssembly (`is_wasm`), WAT → binary, classifying a program as a
//! preview1 core module, a WASI 0.2 command or a wasi:http proxy, compiling it, linking it against
//! the host's WASI linkers (so import errors surface at load, not at start) and the on-disk AOT
//! cache keyed by sha256(bytes) + the engine's precompile compatibility hash.
//!
//! Cache files are immutable once renamed into place: hits are `deserialize_file`d, i.e. mmapped,
//! so a file must never be truncated or rewritten in place while an agent may have it loaded
//! (that is a SIGBUS); replacing is always write-to-temporary + rename, and removal is unlink.

use std::borrow::Cow;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::Digest as _;
use wasmtime::component::Component;
use wasmtime::{ExternType, InstancePre, Module};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::engine::WasmHost;
use crate::error::WasmError;
use crate::store::{ComponentData, CoreData};

/// What kind of WASI program a [`Program`] is; decides how it is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramKind {
    /// A core module using WASI preview1, run from `_start`.
    CoreModule,
    /// A component exporting `wasi:cli/run` (WASI 0.2 command).
    Command,
    /// A component exporting `wasi:http/incoming-handler` (served like `wasmtime serve`).
    HttpProxy,
}

/// A compiled, linked program, ready to be started any number of times.
#[derive(Clone)]
pub struct Program {
    pub kind: ProgramKind,
    /// `sha256:<hex>` of the bytes given to `load` (WAT text is hashed as text).
    pub digest: String,
    /// The compiled code came from the AOT cache.
    pub cache_hit: bool,
    /// Wall time of `load` (hashing, cache lookup or compilation, linking).
    pub load_time: Duration,
    /// A non-fatal cache problem (unreadable/unwritable cache file); the program still loaded.
    pub cache_warning: Option<String>,
    pub(crate) name: String,
    pub(crate) compiled: Compiled,
}

#[derive(Clone)]
pub(crate) enum Compiled {
    Core(InstancePre<CoreData>),
    Command(CommandPre<ComponentData>),
    Proxy(ProxyPre<ComponentData>),
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("digest", &self.digest)
            .field("cache_hit", &self.cache_hit)
            .field("load_time", &self.load_time)
            .finish()
    }
}

/// True if `bytes` look like WebAssembly: the binary `\0asm` header, or WAT text starting (after
/// whitespace and comments) with `(module` or `(component`.
pub fn is_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm") || wat_kind(bytes).is_some()
}

/// For WAT text: `Some(true)` for `(component`, `Some(false)` for `(module`; `None` otherwise.
fn wat_kind(bytes: &[u8]) -> Option<bool> {
    let mut s = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    loop {
        let trimmed = s.trim_ascii_start();
        if let Some(rest) = trimmed.strip_prefix(b";;") {
            s = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => &rest[i..],
                None => &[],
            };
        } else if let Some(rest) = trimmed.strip_prefix(b"(;") {
            s = &rest[rest.windows(2).position(|w| w == b";)")? + 2..];
        } else {
            s = trimmed;
            break;
        }
    }
    let word = |w: &[u8]| {
        s.strip_prefix(w).is_some_and(|rest| {
            rest.first()
                .is_none_or(|b| b.is_ascii_whitespace() || matches!(b, b'$' | b')' | b'(' | b';'))
        })
    };
    if word(b"(module") {
        Some(false)
    } else if word(b"(component") {
        Some(true)
    } else {
        None
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl WasmHost {
    /// [`load_named`](Self::load_named) with a generic name in error messages.
    pub fn load(&self, bytes: &[u8]) -> Result<Program, WasmError> {
        self.load_named("wasm program", bytes)
    }

    /// Loads WAT text, a core module or a component: classifies it, compiles it (or loads the
    /// compiled code from the AOT cache) and links it. `name` (the member or file) is used in
    /// error messages. CPU-heavy on a cache miss: call it from `spawn_blocking` in async code.
    pub fn load_named(&self, name: &str, bytes: &[u8]) -> Result<Program, WasmError> {
        let started = Instant::now();
        let hex_digest = hex::encode(sha2::Sha256::digest(bytes));
        // Classify from the header (or the WAT keyword) first: a cache hit needs no parsing.
        let wat = !bytes.starts_with(b"\0asm");
        let is_component = if wat {
            wat_kind(bytes).ok_or_else(|| WasmError::NotWasm { name: name.into() })?
        } else {
            match bytes.get(4..8) {
                Some([1, 0, 0, 0]) => false,
                Some([_, _, 1, 0]) => true,
                other => {
                    return Err(WasmError::Compile {
                        name: name.into(),
                        message: format!("unknown WebAssembly binary version/layer {other:02x?}"),
                    })
                }
            }
        };
        let binary = || -> Result<Cow<'_, [u8]>, WasmError> {
            if wat {
                wat::parse_bytes(bytes)
                    .map(|b| Cow::Owned(b.into_owned()))
                    .map_err(|e| WasmError::InvalidWat {
                        name: name.into(),
                        message: e.to_string(),
                    })
            } else {
                Ok(Cow::Borrowed(bytes))
            }
        };

        let engine = &self.inner.engine;
        let cache_file = self.inner.cache_dir.as_ref().map(|dir| {
            let ext = if is_component { "ccwasm" } else { "cwasm" };
            dir.join(format!("{hex_digest}-{}.{ext}", self.inner.compat))
        });
        let mut cache_warning = None;
        let compile_err = |e: wasmtime::Error| WasmError::Compile {
            name: name.into(),
            message: format!("{e:#}"),
        };

        let (compiled, cache_hit) = if is_component {
            let cached = cache_file.as_deref().and_then(|p| {
                // SAFETY: the cache directory is private to podctl (0700) and files are written
                // atomically by this code from `Component::serialize`; an incompatible or corrupt
                // file is rejected by wasmtime's header checks and recompiled below.
                read_cache(p, &mut cache_warning, |p| unsafe {
                    Component::deserialize_file(engine, p)
                })
            });
            let (c, hit) = match cached {
                Some(c) => (c, true),
                None => {
                    let c = Component::new(engine, &binary()?).map_err(compile_err)?;
                    if let Some(p) = &cache_file {
                        write_cache(p, c.serialize(), &mut cache_warning);
                    }
                    (c, false)
                }
            };
            (self.link_component(name, &c)?, hit)
        } else {
            let cached = cache_file.as_deref().and_then(|p| {
                // SAFETY: as above, for core modules.
                read_cache(p, &mut cache_warning, |p| unsafe {
                    Module::deserialize_file(engine, p)
                })
            });
            let (m, hit) = match cached {
                Some(m) => (m, true),
                None => {
                    let m = Module::new(engine, &binary()?).map_err(compile_err)?;
                    if let Some(p) = &cache_file {
                        write_cache(p, m.serialize(), &mut cache_warning);
                    }
                    (m, false)
                }
            };
            (self.link_core(name, &m)?, hit)
        };

        let kind = match &compiled {
            Compiled::Core(_) => ProgramKind::CoreModule,
            Compiled::Command(_) => ProgramKind::Command,
            Compiled::Proxy(_) => ProgramKind::HttpProxy,
        };
        Ok(Program {
            kind,
            digest: format!("sha256:{hex_digest}"),
            cache_hit,
            load_time: started.elapsed(),
            cache_warning,
            name: name.into(),
            compiled,
        })
    }

    fn link_core(&self, name: &str, module: &Module) -> Result<Compiled, WasmError> {
        match module.get_export("_start") {
            Some(ExternType::Func(ft)) if ft.params().len() == 0 && ft.results().len() == 0 => {}
            Some(other) => {
                return Err(WasmError::NoStart {
                    name: name.into(),
                    detail: format!("`_start` is {other:?}"),
                })
            }
            None => {
                let exports: Vec<_> = module.exports().map(|e| e.name().to_string()).collect();
                return Err(WasmError::NoStart {
                    name: name.into(),
                    detail: format!("exports: {}", list(&exports)),
                });
            }
        }
        let pre = self
            .inner
            .core_linker
            .instantiate_pre(module)
            .map_err(|e| WasmError::Link {
                name: name.into(),
                message: format!("{e:#}"),
            })?;
        Ok(Compiled::Core(pre))
    }

    fn link_component(&self, name: &str, component: &Component) -> Result<Compiled, WasmError> {
        let engine = &self.inner.engine;
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let has = |prefix: &str| exports.iter().any(|e| e.starts_with(prefix));
        let link_err = |e: wasmtime::Error| WasmError::Link {
            name: name.into(),
            message: format!("{e:#}"),
        };
        if has("wasi:http/incoming-handler@0.2") {
            let pre = self
                .inner
                .component_linker
                .instantiate_pre(component)
                .map_err(link_err)?;
            Ok(Compiled::Proxy(ProxyPre::new(pre).map_err(link_err)?))
        } else if has("wasi:cli/run@0.2") {
            let pre = self
                .inner
                .component_linker
                .instantiate_pre(component)
                .map_err(link_err)?;
            Ok(Compiled::Command(CommandPre::new(pre).map_err(link_err)?))
        } else {
            Err(WasmError::UnsupportedComponent {
                name: name.into(),
                exports: list(&exports),
            })
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items.join(", ")
    }
}

fn read_cache<T>(
    path: &Path,
    warning: &mut Option<String>,
    deserialize: impl FnOnce(&Path) -> wasmtime::Result<T>,
) -> Option<T> {
    if !path.is_file() {
        return None;
    }
    match deserialize(path) {
        Ok(v) => Some(v),
        Err(e) => {
            *warning = Some(format!(
                "AOT cache file {} is unusable ({e:#}); recompiled and replaced it",
                path.display()
            ));
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

/// Writes `bytes` to `path` atomically: a private temporary file in the same directory, then rename.
fn write_cache(path: &Path, bytes: wasmtime::Result<Vec<u8>>, warning: &mut Option<String>) {
    let result = (|| -> Result<(), String> {
        let bytes = bytes.map_err(|e| format!("{e:#}"))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp: PathBuf = dir.join(format!(
            ".{}.{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("cache"),
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            e.to_string()
        })
    })();
    if let Err(e) = result {
        *warning = Some(format!(
            "could not write AOT cache file {}: {e}; the next load compiles again",
            path.display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_wasm_and_wat() {
        assert!(is_wasm(b"\0asm\x01\0\0\0"));
        assert!(is_wasm(b"(module)"));
        assert!(is_wasm(b"  ;; comment\n (; block ;) (module $m (func))"));
        assert!(is_wasm(b"\xEF\xBB\xBF(component)"));
        assert!(!is_wasm(b"#!/bin/sh\necho hi\n"));
        assert!(!is_wasm(b"(modules)"));
        assert!(!is_wasm(b""));
        assert!(!is_wasm(b"\x7fELF"));
    }
}
