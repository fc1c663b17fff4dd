//! Stores: the data of a core module's and of a component's store, the per-store limits
//! (memory and tables through a `StoreLimits` wrapper that remembers refusals, epoch slices that
//! yield to tokio, throttle a CPU limit and trap on stop), and [`StoreFactory`], which makes a fresh
//! store with the member's WASI view of the world (one for a command, one per proxy request) and
//! turns a guest's failure into an [`ExitInfo`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::error::WasmError;
use crate::exit::{exit_info, ExitInfo, ExitReason};
use crate::outgoing::PlainHttpHooks;
use crate::output::GuestOutput;
use crate::spec::Preopen;
use crate::usage::Usage;

/// `StoreLimits` plus a record of whether *our* limit refused a growth (a growth beyond the
/// module's own declared maximum is not a limit hit).
pub(crate) struct Limiter {
    inner: StoreLimits,
    memory: Option<usize>,
    tables: Option<usize>,
    pub(crate) refused: bool,
    /// The member's count of live memory, and what this store added to it (taken back on drop).
    usage: Arc<Usage>,
    counted: u64,
}

impl Drop for Limiter {
    fn drop(&mut self) {
        self.usage.memory_bytes.fetch_sub(self.counted, Ordering::Relaxed);
    }
}

impl Limiter {
    fn new(memory_limit: Option<u64>, usage: Arc<Usage>) -> Limiter {
        let memory = memory_limit.map(|m| usize::try_from(m).unwrap_or(usize::MAX));
        let tables = memory.map(|m| (m / 8).max(1));
        let mut b = StoreLimitsBuilder::new();
        if let (Some(m), Some(t)) = (memory, tables) {
            b = b.memory_size(m).table_elements(t).trap_on_grow_failure(true);
        }
        Limiter {
            inner: b.build(),
            memory,
            tables,
            refused: false,
            usage,
            counted: 0,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if self.memory.is_some_and(|m| desired > m) {
            self.refused = true;
        }
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            let grown = desired.saturating_sub(current) as u64;
            self.counted += grown;
            self.usage.memory_bytes.fetch_add(grown, Ordering::Relaxed);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if self.tables.is_some_and(|t| desired > t) {
            self.refused = true;
        }
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

pub(crate) trait HasLimiter: Send + 'static {
    fn limiter(&mut self) -> &mut Limiter;
}

/// Store data of a preview1 core module.
pub(crate) struct CoreData {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: Limiter,
}

impl HasLimiter for CoreData {
    fn limiter(&mut self) -> &mut Limiter {
        &mut self.limiter
    }
}

/// Store data of a component (command or one proxy request).
pub(crate) struct ComponentData {
    ctx: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: PlainHttpHooks,
    pub(crate) limiter: Limiter,
}

impl ComponentData {
    pub(crate) fn limit_refused(&self) -> bool {
        self.limiter.refused
    }
}

impl HasLimiter for ComponentData {
    fn limiter(&mut self) -> &mut Limiter {
        &mut self.limiter
    }
}

impl WasiView for ComponentData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Everything needed to make a fresh store for a member (one for a command, one per request for
/// a proxy), all with the same WASI view of the world and the same limits.
pub(crate) struct StoreFactory {
    pub(crate) engine: Engine,
    pub(crate) name: String,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) preopens: Vec<Preopen>,
    pub(crate) stdout: GuestOutput,
    /// Also where the host's messages about the member go.
    pub(crate) stderr: GuestOutput,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) throttle: Option<Duration>,
    pub(crate) interrupt: Arc<AtomicBool>,
    pub(crate) usage: Arc<Usage>,
}

impl StoreFactory {
    fn builder(&self, sockets: bool) -> Result<WasiCtxBuilder, WasmError> {
        let mut b = WasiCtxBuilder::new();
        if self.args.is_empty() {
            b.arg(&self.name);
        } else {
            b.args(&self.args);
        }
        b.envs(&self.env);
        // stdin stays closed (the builder's default); env and args are only what the spec says.
        b.stdout(self.stdout.clone());
        b.stderr(self.stderr.clone());
        for p in &self.preopens {
            let perms = if p.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            b.preopened_dir(&p.host, &p.guest, perms)
                .map_err(|e| WasmError::Preopen {
                    name: self.name.clone(),
                    host: p.host.clone(),
                    guest: p.guest.clone(),
                    message: format!("{e:#}"),
                })?;
        }
        if sockets {
            b.inherit_network()
                .allow_tcp(true)
                .allow_udp(true)
                .allow_ip_name_lookup(true);
        }
        Ok(b)
    }

    fn configure<T: HasLimiter>(&self, store: &mut Store<T>) {
        store.limiter(|d: &mut T| -> &mut dyn ResourceLimiter { d.limiter() });
        store.set_epoch_deadline(1);
        let interrupt = self.interrupt.clone();
        let throttle = self.throttle;
        store.epoch_deadline_callback(move |_| {
            if interrupt.load(Ordering::SeqCst) {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(match throttle {
                Some(pause) => UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(pause))),
                None => UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())),
            })
        });
    }

    pub(crate) fn core_store(&self) -> Result<Store<CoreData>, WasmError> {
        let wasi = self.builder(false)?.build_p1();
        let mut store = Store::new(
            &self.engine,
            CoreData {
                wasi,
                limiter: Limiter::new(self.memory_limit, self.usage.clone()),
            },
        );
        self.configure(&mut store);
        Ok(store)
    }

    pub(crate) fn component_store(&self) -> Result<Store<ComponentData>, WasmError> {
        let ctx = self.builder(true)?.build();
        let data = ComponentData {
            ctx,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks: PlainHttpHooks,
            limiter: Limiter::new(self.memory_limit, self.usage.clone()),
        };
        let mut store = Store::new(&self.engine, data);
        self.configure(&mut store);
        Ok(store)
    }

    /// Appends a host message to the member's log (where the guest's stderr goes).
    pub(crate) fn log_line(&self, message: &str) {
        let line = format!("podctl-wasmtime: {}: {}\n", self.name, message.trim_end());
        let _ = self.stderr.write(line.as_bytes());
    }

    /// Classifies a guest failure (a wasmtime error from instantiation or a call).
    pub(crate) fn failure(&self, e: &wasmtime::Error, limit_refused: bool) -> ExitInfo {
        if let Some(exit) = e.downcast_ref::<I32Exit>() {
            let code = exit.0;
            let reason = if code == 0 {
                ExitReason::Completed
            } else {
                ExitReason::Error
            };
            return exit_info(code, reason, format!("exited with code {code}"));
        }
        let info = if limit_refused {
            exit_info(
                137,
                ExitReason::MemoryLimitExceeded,
                format!(
                    "memory limit of {} bytes exceeded: {}",
                    self.memory_limit.unwrap_or_default(),
                    e.root_cause()
                ),
            )
        } else if self.interrupt.load(Ordering::SeqCst) {
            exit_info(137, ExitReason::Stopped, "stopped by podctl: interrupted".into())
        } else if e.is::<Trap>() {
            exit_info(134, ExitReason::Trap, e.root_cause().to_string())
        } else {
            exit_info(1, ExitReason::Error, format!("{e:#}"))
        };
        info
    }

    /// `info.message` plus the wasm backtrace, if any: what goes into the log when a guest dies
    /// without being able to say why (not `{e:?}`: that adds the host's Rust backtrace when
    /// RUST_BACKTRACE is set).
    pub(crate) fn log_detail(info: &ExitInfo, e: &wasmtime::Error) -> String {
        let mut line = info.message.clone();
        if let Some(bt) = e.downcast_ref::<wasmtime::WasmBacktrace>() {
            line.push_str(&format!("\n{bt}"));
        }
        line
    }
}

/// What a command-style run ended with.
pub(crate) enum Outcome {
    Returned,
    ReturnedError,
    Failed(wasmtime::Error),
    Interrupted,
}

impl StoreFactory {
    pub(crate) fn outcome_info(&self, outcome: Outcome, limit_refused: bool) -> ExitInfo {
        match outcome {
            Outcome::Returned => exit_info(0, ExitReason::Completed, "exited with code 0".into()),
            Outcome::ReturnedError => exit_info(1, ExitReason::Error, "wasi:cli/run returned an error".into()),
            Outcome::Failed(e) => {
                let info = self.failure(&e, limit_refused);
                // An exit code is the guest's own word; anything else it could not explain.
                if info.reason != ExitReason::Stopped && e.downcast_ref::<I32Exit>().is_none() {
                    self.log_line(&Self::log_detail(&info, &e));
                }
                info
            }
            Outcome::Interrupted => exit_info(
                137,
                ExitReason::Stopped,
                "stopped by podctl: interrupted (WASI has no signals)".into(),
            ),
        }
    }
}
