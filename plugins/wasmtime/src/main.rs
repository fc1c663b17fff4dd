//! `podctl-runtime-wasmtime`: the wasmtime member runtime as a podctl plugin. One process per pod
//! hosts all of the pod's WASM members on one engine (with the AOT cache in
//! `PODCTL_WASM_CACHE_DIR`, default /var/cache/podctl/wasm).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podctl_plugin::cri_log::{open_rotating_sink, RecordWriter, Rotation, Stream};
use podctl_plugin::{Error, Member, MemberRuntime, MemberStatus, PluginInfo, Started, Validated};
use podctl_wasmtime::{
    ExitInfo, ExitReason, HostConfig, MemberSpec, Output, Preopen, Program, ProgramKind, RunningMember, WasmHost,
};

struct Wasmtime {
    host: WasmHost,
    members: Mutex<HashMap<String, RunningMember>>,
}

fn secs(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn reason(reason: &ExitReason) -> &'static str {
    match reason {
        ExitReason::Completed => "Completed",
        ExitReason::Error => "Error",
        ExitReason::Trap => "Trap",
        ExitReason::MemoryLimitExceeded => "OOMKilled",
        ExitReason::Stopped => "Stopped",
    }
}

fn exited(member: &RunningMember, exit: &ExitInfo) -> MemberStatus {
    MemberStatus::exited(
        secs(member.started_at()),
        secs(exit.at),
        exit.code,
        Some(reason(&exit.reason)),
        &exit.message,
    )
}

impl Wasmtime {
    fn member(&self, name: &str) -> Result<RunningMember, Error> {
        let members = self.members.lock().expect("not poisoned");
        members.get(name).cloned().ok_or_else(|| Error::NotFound(name.into()))
    }

    fn read(member: &Member) -> Result<Vec<u8>, Error> {
        std::fs::read(&member.program).map_err(|e| Error::Invalid(format!("cannot read {}: {e}", member.program)))
    }

    /// Loads (compiling, or from the AOT cache) and checks the member's program.
    fn load(&self, member: &Member) -> Result<Program, Error> {
        let program = self
            .host
            .load(&Self::read(member)?)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if program.kind == ProgramKind::HttpProxy && member.ports.len() != 1 {
            return Err(Error::Invalid(format!(
                "a wasi:http component is served on exactly one containerPort, and this member lists {}; give it one `ports: [{{containerPort: N}}]`",
                member.ports.len()
            )));
        }
        Ok(program)
    }

    fn spec(member: Member, kind: ProgramKind) -> Result<MemberSpec, Error> {
        let sink = open_rotating_sink(std::path::Path::new(&member.log_path), Rotation::of(&member))
            .map_err(|e| Error::Failed(format!("cannot open its log {}: {e}", member.log_path)))?;
        let limits = member.limits.unwrap_or_default();
        Ok(MemberSpec {
            name: member.name,
            args: member.args,
            env: member.env.into_iter().map(|e| (e.name, e.value)).collect(),
            preopens: member
                .volumes
                .into_iter()
                .map(|v| Preopen {
                    host: PathBuf::from(v.host_path),
                    guest: v.guest_path,
                    read_only: v.read_only,
                })
                .collect(),
            output: Output::Writers {
                stdout: Arc::new(Mutex::new(RecordWriter::new(Stream::Stdout, sink.clone()))),
                stderr: Arc::new(Mutex::new(RecordWriter::new(Stream::Stderr, sink))),
            },
            memory_limit: Some(limits.memory_bytes).filter(|m| *m > 0),
            cpu_limit_millis: Some(u64::from(limits.cpu_millis)).filter(|m| *m > 0),
            http_port: match kind {
                ProgramKind::HttpProxy => member.ports.first().and_then(|p| u16::try_from(*p).ok()),
                _ => None,
            },
        })
    }
}

impl MemberRuntime for Wasmtime {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            media_types: [
                "application/wasm",
                "application/vnd.wasm.content.layer.v1+wasm",
                "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
            ]
            .map(String::from)
            .to_vec(),
            file_extensions: vec!["wasm".into(), "wat".into()],
            ..PluginInfo::new("wasmtime", podctl_wasmtime::WASMTIME_VERSION)
        }
    }

    async fn validate(&self, member: &Member) -> Result<Validated, Error> {
        let program = self.load(member)?;
        Ok(Validated {
            kind: format!("{:?}", program.kind),
            digest: program.digest.clone(),
            cache_hit: program.cache_hit,
            load_millis: program.load_time.as_secs_f64() * 1000.0,
        })
    }

    async fn start(&self, member: Member) -> Result<Started, Error> {
        let name = member.name.clone();
        if let Ok(running) = self.member(&name) {
            if !matches!(running.status(), podctl_wasmtime::MemberStatus::Exited(_)) {
                return Err(Error::AlreadyExists(name));
            }
        }
        let program = self.load(&member)?;
        let running = self
            .host
            .start(&program, Self::spec(member, program.kind)?)
            .map_err(|e| Error::Failed(e.to_string()))?;
        self.members.lock().expect("not poisoned").insert(name, running);
        Ok(Started {
            pid: 0,
            load_millis: program.load_time.as_secs_f64() * 1000.0,
            cache_hit: program.cache_hit,
        })
    }

    async fn stop(&self, name: &str, grace: Duration) -> Result<(), Error> {
        let member = self.member(name)?;
        member.stop(grace);
        tokio::spawn(async move {
            if tokio::time::timeout(grace, member.wait()).await.is_err() {
                member.kill();
            }
        });
        Ok(())
    }

    async fn kill(&self, name: &str) -> Result<(), Error> {
        self.member(name)?.kill();
        Ok(())
    }

    async fn status(&self, name: &str) -> Result<MemberStatus, Error> {
        let member = self.member(name)?;
        let (memory_bytes, cpu_nanos) = member.usage();
        Ok(match member.status() {
            podctl_wasmtime::MemberStatus::Running { since, ready } => MemberStatus {
                ready,
                memory_bytes,
                cpu_nanos,
                ..MemberStatus::running(secs(since))
            },
            podctl_wasmtime::MemberStatus::Exited(exit) => exited(&member, &exit),
        })
    }

    async fn wait(&self, name: &str) -> Result<MemberStatus, Error> {
        let member = self.member(name)?;
        let exit = member.wait().await;
        Ok(exited(&member, &exit))
    }
}

fn main() -> std::process::ExitCode {
    // One malloc arena instead of one per thread: each member's allocations then share pages, and
    // an extra member costs ~136 instead of ~158 kB PSS (bench/wasm-members.py); requests/s stay
    // within noise. Set before any thread exists.
    // SAFETY: mallopt only tunes glibc's allocator; called while the process has one thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let cache_dir = std::env::var_os("PODCTL_WASM_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/podctl/wasm"));
    let host = match WasmHost::new(HostConfig {
        cache_dir: Some(cache_dir),
    }) {
        Ok(host) => host,
        Err(e) => {
            eprintln!("podctl-runtime-wasmtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    podctl_plugin::run(Wasmtime {
        host,
        members: Mutex::default(),
    })
}
