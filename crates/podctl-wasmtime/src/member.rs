//! Starting members: [`WasmHost::start`] turns a [`Program`] and a [`MemberSpec`] into a
//! [`RunningMember`] whose task runs on the caller's tokio runtime, and the runners of preview1
//! core modules (`_start`) and WASI 0.2 commands (`wasi:cli/run`). The HTTP proxy runner is
//! `serve.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::watch;
use wasmtime::{InstancePre, Store};
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::control::{requested, Control, RunningMember, Shared};
use crate::engine::{WasmHost, EPOCH_TICK};
use crate::error::WasmError;
use crate::exit::{exit_info, ExitInfo, ExitReason};
use crate::output::{open_log, GuestOutput, Output, SharedWriter};
use crate::program::{Compiled, Program};
use crate::spec::MemberSpec;
use crate::store::{ComponentData, CoreData, Outcome, StoreFactory};
use crate::usage::{timed, Usage};

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
        self.ensure_ticker()?;
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
                let listener = crate::serve::bind(&name, port)?;
                Box::pin(crate::serve::serve(shared.clone(), factory, pre.clone(), listener))
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
