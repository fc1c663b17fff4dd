//! One WASM member in its container process. `can_handle` runs when containerd creates the task
//! (CRI StartContainer): it loads the program — compiled, or from the AOT cache — and checks what
//! it needs, so a member that cannot run fails there with the reason. `run_wasi` runs it on the
//! wasmtime host and returns its exit code, which containerd reports as the container's.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, Result};
use containerd_shim_wasm::sandbox::context::{RuntimeContext, Source};
use containerd_shim_wasm::sandbox::Sandbox;
use podctl_wasmtime::{ExitReason, HostConfig, MemberSpec, Output, Program, ProgramKind, WasmHost};

use crate::container::{memory_headroom, split_env, volume_preopens, HTTP_PORT_ENV};

/// How long a wasi:http member drains in-flight requests after SIGTERM. kubelet sends SIGKILL
/// when the pod's terminationGracePeriodSeconds are up, which ends it sooner.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// A member whose program is loaded and checked.
struct Loaded {
    host: WasmHost,
    program: Program,
    name: String,
    env: Vec<(String, String)>,
    http_port: Option<u16>,
}

#[derive(Default)]
pub(crate) struct WasmMember {
    loaded: OnceLock<Loaded>,
}

/// The program's name in messages: its path in the image (`/greeter.wasm`), or the first layer's
/// digest for an image whose layers are the program.
fn program_name(ctx: &impl RuntimeContext) -> String {
    let entry = ctx.entrypoint();
    match (&entry.source, entry.arg0) {
        (Source::Oci([layer, ..]), _) => format!("the image's wasm layer {}", layer.config.digest()),
        (_, Some(arg0)) => arg0.display().to_string(),
        _ => "the container's program".into(),
    }
}

fn host() -> Result<WasmHost, String> {
    let cached = crate::cache_dir().map(|dir| WasmHost::new(HostConfig { cache_dir: Some(dir) }));
    match cached {
        Some(Ok(host)) => Ok(host),
        // A cache this container's user may not use (a non-root runAsUser): compile instead.
        _ => WasmHost::new(HostConfig::default()).map_err(|e| e.to_string()),
    }
}

fn load(ctx: &impl RuntimeContext) -> Result<Loaded, String> {
    let name = program_name(ctx);
    let bytes = ctx.entrypoint().source.as_bytes().map_err(|e| {
        format!("{name}: cannot read it: {e:#}; the image must hold the module at the path its entrypoint or the container's command names")
    })?;
    if !podctl_wasmtime::is_wasm(&bytes) {
        return Err(format!(
            "{name}: neither WebAssembly (no \\0asm header, not WAT) nor a Linux executable (ELF or #!); give the container a wasm module or component, or an image whose entrypoint is a program for this node"
        ));
    }
    let host = host()?;
    // On a node whose containerd logs at debug the framework logs at debug too, and cranelift
    // would log every pass of every function it compiles: the member's own process needs no more
    // than info.
    if log::max_level() > log::LevelFilter::Info {
        log::set_max_level(log::LevelFilter::Info);
    }
    let program = host.load_named(&name, &bytes).map_err(|e| e.to_string())?;
    let (env, port) = split_env(ctx.envs());
    let http_port = match (program.kind, port) {
        (ProgramKind::HttpProxy, None) => {
            return Err(format!(
                "{name}: is a wasi:http proxy component and has no port to serve on (CRI does not hand containerPorts to a runtime); give the container one `ports: [{{containerPort: N}}]` and let `podctl kube generate` write the env, or set env {HTTP_PORT_ENV}=N"
            ))
        }
        (ProgramKind::HttpProxy, Some(port)) => Some(port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            format!("{name}: env {HTTP_PORT_ENV}={port:?} is not a port; give the container's containerPort, 1-65535")
        })?),
        _ => None,
    };
    Ok(Loaded {
        host,
        program,
        name,
        env,
        http_port,
    })
}

impl WasmMember {
    fn loaded(&self, ctx: &impl RuntimeContext) -> Result<&Loaded> {
        if let Some(loaded) = self.loaded.get() {
            return Ok(loaded);
        }
        let loaded = load(ctx).map_err(|reason| {
            // Also in the container's log, where `kubectl logs --previous` finds it.
            eprintln!("{reason}");
            crate::refuse(reason.clone());
            anyhow!(reason)
        })?;
        Ok(self.loaded.get_or_init(|| loaded))
    }
}

impl Sandbox for WasmMember {
    async fn can_handle(&self, ctx: &impl RuntimeContext) -> Result<()> {
        self.loaded(ctx).map(|_| ())
    }

    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        let loaded = self.loaded(ctx)?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let spec = MemberSpec {
            name: loaded.name.clone(),
            args: ctx.args().to_vec(),
            env: loaded.env.clone(),
            preopens: volume_preopens(&mountinfo),
            output: Output::stdio(),
            memory_limit: memory_headroom(),
            // The container's cgroup already holds it to its CPU limit.
            cpu_limit_millis: None,
            http_port: loaded.http_port,
        };
        let running = loaded.host.start(&loaded.program, spec).map_err(|e| {
            eprintln!("{e}");
            anyhow!(e)
        })?;
        // containerd stops a container with SIGTERM: a proxy drains, a command is interrupted.
        let stopping = running.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                term.recv().await;
                stopping.stop(STOP_GRACE);
            }
        });
        let exit = running.wait().await;
        if !matches!(exit.reason, ExitReason::Completed | ExitReason::Stopped) && !exit.message.is_empty() {
            eprintln!("{}: {}", loaded.name, exit.message);
        }
        Ok(exit.code)
    }
}
