//! Members: `MemberSpec` → a tokio task running a [`Program`], its status, `wait`, `stop` and
//! `kill`. Owns store construction (WASI context from args/env/preopens, stdout and stderr to the
//! member's [`Output`], no inherited env/stdin/dirs), the per-store limits (memory via a `StoreLimits`
//! wrapper that remembers refusals, epoch slices that yield to tokio and trap on stop), and the
//! runners for preview1 core modules and WASI 0.2 commands. The HTTP proxy runner is in `http.rs`.

use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::io::AsyncWrite;
use tokio::sync::watch;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, InstancePre, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::error::WasmError;
use crate::host::{WasmHost, EPOCH_TICK};
use crate::http::PlainHttpHooks;
use crate::load::{Compiled, Program, ProgramKind};

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

/// A writer that all of a member's stores share (a proxy has one per request). Each guest write
/// is one `write_all` under the lock.
pub type SharedWriter = Arc<Mutex<dyn Write + Send>>;

/// Where a member's output goes.
#[derive(Clone)]
pub enum Output {
    /// stdout and stderr both appended to this file (created if missing).
    File(PathBuf),
    /// Each stream to its own writer, e.g. a log formatter; the host's messages about the member
    /// go to `stderr`.
    Writers { stdout: SharedWriter, stderr: SharedWriter },
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::File(path) => f.debug_tuple("File").field(path).finish(),
            Output::Writers { .. } => f.write_str("Writers"),
        }
    }
}

impl Default for Output {
    fn default() -> Self {
        Output::File(PathBuf::new())
    }
}

/// Current state of a member.
#[derive(Clone, Debug, PartialEq)]
pub enum MemberStatus {
    /// `ready`: HttpProxy — the listener is bound and accepting; other kinds — always true.
    Running {
        since: SystemTime,
        ready: bool,
    },
    Exited(ExitInfo),
}

/// How a member ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ExitInfo {
    /// The exit code. 0: completed; the guest's code for `proc_exit`/`wasi:cli/exit`; 1: a command
    /// whose `run` returned an error or a host-side failure; 134: trap; 137: memory limit exceeded,
    /// or interrupted by stop/kill; 0 with `Stopped`: an HTTP proxy that drained within the grace.
    pub code: i32,
    pub reason: ExitReason,
    pub message: String,
    pub at: SystemTime,
}

/// Why a member ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// Exit code 0.
    Completed,
    /// Non-zero exit code (or a host-side failure such as a failed instantiation).
    Error,
    /// A WebAssembly trap (unreachable, out-of-bounds access, stack overflow, ...).
    Trap,
    /// A memory or table growth was refused by `memory_limit` (kubectl shows OOMKilled).
    MemoryLimitExceeded,
    /// Ended by `stop` or `kill`.
    Stopped,
}

impl ExitReason {
    /// The Kubernetes `reason` string of a terminated container in this state.
    pub fn k8s_reason(&self) -> &'static str {
        match self {
            ExitReason::Completed => "Completed",
            ExitReason::Error | ExitReason::Trap | ExitReason::Stopped => "Error",
            ExitReason::MemoryLimitExceeded => "OOMKilled",
        }
    }
}

/// A started member. Cheap to clone; all clones see the same member.
#[derive(Clone)]
pub struct RunningMember {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RunningMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningMember")
            .field("name", &self.shared.name)
            .field("kind", &self.shared.kind)
            .field("status", &self.status())
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Control {
    Run,
    Stop(Duration),
    Kill,
}

/// Waits until the member's control value satisfies `pred` and returns it (Kill if the sender is
/// gone). Returns a copy so that no watch guard is held across awaits.
pub(crate) async fn requested(rx: &mut watch::Receiver<Control>, pred: impl FnMut(&Control) -> bool) -> Control {
    match rx.wait_for(pred).await {
        Ok(c) => *c,
        Err(_) => Control::Kill,
    }
}

/// What a member uses, counted as it runs: the bytes of its live linear memories and the CPU
/// time its futures took (thread CPU time per poll, so waiting costs nothing).
#[derive(Debug, Default)]
pub struct Usage {
    pub memory_bytes: std::sync::atomic::AtomicU64,
    pub cpu_nanos: std::sync::atomic::AtomicU64,
}

/// The calling thread's CPU time so far.
fn thread_cpu_nanos() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// A future whose polls count their CPU time into `usage`.
pub(crate) struct Timed<F> {
    inner: Pin<Box<F>>,
    usage: Arc<Usage>,
}

pub(crate) fn timed<F: Future>(usage: Arc<Usage>, future: F) -> Timed<F> {
    Timed {
        inner: Box::pin(future),
        usage,
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let began = thread_cpu_nanos();
        let polled = self.inner.as_mut().poll(cx);
        let spent = thread_cpu_nanos().saturating_sub(began);
        self.usage.cpu_nanos.fetch_add(spent, Ordering::Relaxed);
        polled
    }
}

pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) usage: Arc<Usage>,
    pub(crate) kind: ProgramKind,
    since: SystemTime,
    pub(crate) ready: AtomicBool,
    /// Read by every epoch callback of this member's stores: set → the next tick traps.
    pub(crate) interrupt: Arc<AtomicBool>,
    pub(crate) control: watch::Sender<Control>,
    exit: watch::Sender<Option<ExitInfo>>,
}

impl RunningMember {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn kind(&self) -> ProgramKind {
        self.shared.kind
    }

    /// When it started (also once it has exited).
    pub fn started_at(&self) -> SystemTime {
        self.shared.since
    }

    /// What it uses now: memory bytes and CPU nanoseconds.
    pub fn usage(&self) -> (u64, u64) {
        (
            self.shared.usage.memory_bytes.load(Ordering::Relaxed),
            self.shared.usage.cpu_nanos.load(Ordering::Relaxed),
        )
    }

    pub fn status(&self) -> MemberStatus {
        if let Some(info) = self.shared.exit.borrow().clone() {
            return MemberStatus::Exited(info);
        }
        MemberStatus::Running {
            since: self.shared.since,
            ready: self.shared.ready.load(Ordering::SeqCst),
        }
    }

    /// Resolves when the member has ended (immediately if it already has).
    pub async fn wait(&self) -> ExitInfo {
        let mut rx = self.shared.exit.subscribe();
        let info = match rx.wait_for(Option::is_some).await {
            Ok(info) => info.clone(),
            // Unreachable: `self` keeps the sender alive.
            Err(_) => None,
        };
        info.unwrap_or_else(|| exit_info(1, ExitReason::Error, "member state lost".into()))
    }

    /// Graceful stop. HttpProxy: stop accepting, let in-flight requests finish for up to `grace`,
    /// then interrupt what is left. CoreModule/Command: WASI has no signals, so there is nothing
    /// to deliver: the guest is interrupted immediately (at its next epoch tick, ≤ 10 ms, or at
    /// once if it is blocked in a WASI call) and `grace` is not used.
    pub fn stop(&self, grace: Duration) {
        if self.shared.kind != ProgramKind::HttpProxy {
            self.shared.interrupt.store(true, Ordering::SeqCst);
        }
        self.shared.control.send_if_modified(|c| match c {
            Control::Run => {
                *c = Control::Stop(grace);
                true
            }
            _ => false,
        });
    }

    /// Interrupt now: running wasm traps at the next epoch tick; guests blocked in WASI calls are
    /// dropped.
    pub fn kill(&self) {
        self.shared.interrupt.store(true, Ordering::SeqCst);
        self.shared.control.send_replace(Control::Kill);
    }
}

pub(crate) fn exit_info(code: i32, reason: ExitReason, message: String) -> ExitInfo {
    ExitInfo {
        code,
        reason,
        message,
        at: SystemTime::now(),
    }
}

// ---------------------------------------------------------------------------------------------
// Store data and limits

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
    limiter: Limiter,
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
    limiter: Limiter,
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
    engine: Engine,
    pub(crate) name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    preopens: Vec<Preopen>,
    stdout: GuestOutput,
    /// Also where the host's messages about the member go.
    stderr: GuestOutput,
    memory_limit: Option<u64>,
    throttle: Option<Duration>,
    interrupt: Arc<AtomicBool>,
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
enum Outcome {
    Returned,
    ReturnedError,
    Failed(wasmtime::Error),
    Interrupted,
}

impl StoreFactory {
    fn outcome_info(&self, outcome: Outcome, limit_refused: bool) -> ExitInfo {
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

// ---------------------------------------------------------------------------------------------
// Guest output

/// A member's stdout or stderr as WASI sees it: writes go straight to the shared writer (like
/// wasmtime's `OutputFile`, without a buffer or task of its own per store).
#[derive(Clone)]
struct GuestOutput(SharedWriter);

impl GuestOutput {
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut writer = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        writer.write_all(bytes)
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        GuestOutput::write(self, &bytes).map_err(|e| StreamError::LastOperationFailed(wasmtime::format_err!(e)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // As much as a guest may hand over in one write.
        Ok(64 * 1024)
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(GuestOutput::write(&self, buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

// ---------------------------------------------------------------------------------------------
// Starting and running

fn open_log(name: &str, path: &std::path::Path) -> Result<File, WasmError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| WasmError::LogFile {
            name: name.into(),
            path: path.into(),
            source,
        })
}

impl WasmHost {
    /// Starts `program` as the member described by `spec`, as a task on the current tokio
    /// runtime. Errors (log file, preopens, listener) are reported here; once it runs, its end is
    /// an [`ExitInfo`].
    pub fn start(&self, program: &Program, spec: MemberSpec) -> Result<RunningMember, WasmError> {
        let name = if spec.name.is_empty() {
            program.name.clone()
        } else {
            spec.name.clone()
        };
        let handle = tokio::runtime::Handle::try_current().map_err(|_| WasmError::NoRuntime { name: name.clone() })?;
        let (stdout, stderr) = match &spec.output {
            Output::File(path) => {
                let log: SharedWriter = Arc::new(Mutex::new(open_log(&name, path)?));
                (log.clone(), log)
            }
            Output::Writers { stdout, stderr } => (stdout.clone(), stderr.clone()),
        };
        for p in &spec.preopens {
            if !p.host.is_dir() {
                return Err(WasmError::Preopen {
                    name,
                    host: p.host.clone(),
                    guest: p.guest.clone(),
                    message: "not a directory (or does not exist)".into(),
                });
            }
        }
        let interrupt = Arc::new(AtomicBool::new(false));
        let usage = Arc::new(Usage::default());
        let throttle = spec.cpu_limit_millis.filter(|m| *m < 1000).map(|m| {
            let m = m.max(10) as u32;
            EPOCH_TICK * (1000 - m) / m
        });
        let factory = Arc::new(StoreFactory {
            engine: self.inner.engine.clone(),
            name: name.clone(),
            args: spec.args,
            env: spec.env,
            preopens: spec.preopens,
            stdout: GuestOutput(stdout),
            stderr: GuestOutput(stderr),
            memory_limit: spec.memory_limit,
            throttle,
            interrupt: interrupt.clone(),
            usage: usage.clone(),
        });
        let shared = Arc::new(Shared {
            name: name.clone(),
            usage: usage.clone(),
            kind: program.kind,
            since: SystemTime::now(),
            ready: AtomicBool::new(false),
            interrupt,
            control: watch::channel(Control::Run).0,
            exit: watch::channel(None).0,
        });

        let run: Pin<Box<dyn Future<Output = ExitInfo> + Send>> = match &program.compiled {
            Compiled::Core(pre) => {
                let store = factory.core_store()?;
                Box::pin(run_core(shared.clone(), factory, pre.clone(), store))
            }
            Compiled::Command(pre) => {
                let store = factory.component_store()?;
                Box::pin(run_command(shared.clone(), factory, pre.clone(), store))
            }
            Compiled::Proxy(pre) => {
                let port = spec
                    .http_port
                    .ok_or_else(|| WasmError::NoHttpPort { name: name.clone() })?;
                // Surface preopen problems now rather than on the first request.
                drop(factory.component_store()?);
                let listener = crate::http::bind(&name, port)?;
                Box::pin(crate::http::serve(shared.clone(), factory, pre.clone(), listener))
            }
        };
        shared.ready.store(true, Ordering::SeqCst);

        let task = handle.spawn(timed(usage, run));
        let host = self.clone();
        let done = shared.clone();
        handle.spawn(async move {
            // Keeps the engine's epoch ticker alive while the member runs.
            let _host = host;
            let info = match task.await {
                Ok(info) => info,
                Err(e) => exit_info(1, ExitReason::Error, format!("member task failed: {e}")),
            };
            done.ready.store(false, Ordering::SeqCst);
            done.exit.send_replace(Some(info));
        });
        Ok(RunningMember { shared })
    }
}

async fn run_core(
    shared: Arc<Shared>,
    factory: Arc<StoreFactory>,
    pre: InstancePre<CoreData>,
    mut store: Store<CoreData>,
) -> ExitInfo {
    let mut control = shared.control.subscribe();
    let outcome = {
        let run = async {
            let instance = pre.instantiate_async(&mut store).await?;
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call_async(&mut store, ()).await
        };
        tokio::select! {
            r = run => match r {
                Ok(()) => Outcome::Returned,
                Err(e) => Outcome::Failed(e),
            },
            _ = requested(&mut control, |c| *c != Control::Run) => Outcome::Interrupted,
        }
    };
    factory.outcome_info(outcome, store.data().limiter.refused)
}

async fn run_command(
    shared: Arc<Shared>,
    factory: Arc<StoreFactory>,
    pre: CommandPre<ComponentData>,
    mut store: Store<ComponentData>,
) -> ExitInfo {
    let mut control = shared.control.subscribe();
    let outcome = {
        let run = async {
            let command = pre.instantiate_async(&mut store).await?;
            command.wasi_cli_run().call_run(&mut store).await
        };
        tokio::select! {
            r = run => match r {
                Ok(Ok(())) => Outcome::Returned,
                Ok(Err(())) => Outcome::ReturnedError,
                Err(e) => Outcome::Failed(e),
            },
            _ = requested(&mut control, |c| *c != Control::Run) => Outcome::Interrupted,
        }
    };
    factory.outcome_info(outcome, store.data().limiter.refused)
}
