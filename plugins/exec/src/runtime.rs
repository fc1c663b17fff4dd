//! A member runtime for host executables: the member's `program` is an absolute path to an
//! executable on the host, run with the member's args and env (nothing else inherited) in the
//! plugin's namespaces — the pod's network, IPC and UTS, since the agent starts the plugin there.
//! stdout and stderr become CRI records in the member's log; `stop` sends SIGTERM and SIGKILL
//! after the grace period; `limits.memory_bytes` caps the address space (RLIMIT_AS). It claims
//! the file extensions and layer media types listed in `PODCTL_EXEC_EXTENSIONS` and
//! `PODCTL_EXEC_MEDIA_TYPES` (comma-separated; none by default), local directories when
//! `PODCTL_EXEC_DIRECTORIES=1` (it runs the directory's executable `run`, in that directory), and
//! the URL schemes of `PODCTL_EXEC_SCHEMES` (`SCHEME:/abs/path` runs that executable). Members are
//! forked with `podctl_plugin::child::spawn`, so they die with the plugin.
//!
//! Written against `podctl-plugin` alone, as a third party would (see plugins/README.md).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use podctl_plugin::cri_log::{open_rotating_sink, LineSplitter, Rotation, Sink, Stream};
use podctl_plugin::{now_secs, Error, Member, MemberRuntime, MemberStatus, PluginInfo, Started, Validated};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

#[derive(Default)]
pub struct Exec {
    members: Mutex<HashMap<String, Running>>,
}

#[derive(Clone)]
struct Running {
    started_at: f64,
    /// Signals for the process, sent by its waiter (which alone knows whether it was reaped).
    signals: mpsc::UnboundedSender<libc::c_int>,
    /// Becomes the final status once the process has exited.
    exit: watch::Receiver<Option<MemberStatus>>,
}

impl Exec {
    fn running(&self, name: &str) -> Result<Running, Error> {
        let members = self.members.lock().expect("not poisoned");
        members.get(name).cloned().ok_or_else(|| Error::NotFound(name.into()))
    }

    fn signal(&self, name: &str, signal: libc::c_int) -> Result<Running, Error> {
        let running = self.running(name)?;
        // Refused once the waiter is gone: the member has exited.
        let _ = running.signals.send(signal);
        Ok(running)
    }
}

/// What `program` runs, and in which directory: an absolute path to an executable (in `/`), a
/// directory's `run` (in the directory), or the path of `SCHEME:/abs/path` (in `/`).
fn executable(program: &str) -> Result<(std::path::PathBuf, std::path::PathBuf), Error> {
    let path = match program.split_once(':') {
        Some((scheme, rest)) if !program.starts_with('/') && !scheme.contains('/') => rest,
        _ => program,
    };
    let path = Path::new(path);
    if !path.is_absolute() {
        return Err(Error::Invalid(format!("program {program:?} must be an absolute path")));
    }
    Ok(match path.is_dir() {
        true => (path.join("run"), path.to_path_buf()),
        false => (path.to_path_buf(), "/".into()),
    })
}

/// Copies one output stream into the log as records.
async fn pump(mut from: impl tokio::io::AsyncRead + Unpin, stream: Stream, sink: Sink) {
    let mut splitter = LineSplitter::default();
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buffer).await {
        if n == 0 || splitter.feed(&buffer[..n], stream, &sink).is_err() {
            break;
        }
    }
    let _ = splitter.finish(stream, &sink);
}

impl MemberRuntime for Exec {
    fn info(&self) -> PluginInfo {
        // It claims nothing by itself (any file could be an executable): a member runs here when
        // runtimeClassName or the annotation says so, or when its file extension or layer media
        // type is one the host owner lists in these variables (set by a wrapper script).
        let list = |var: &str| -> Vec<String> {
            std::env::var(var)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        PluginInfo {
            media_types: list("PODCTL_EXEC_MEDIA_TYPES"),
            file_extensions: list("PODCTL_EXEC_EXTENSIONS"),
            directories: std::env::var("PODCTL_EXEC_DIRECTORIES").is_ok_and(|v| v == "1"),
            url_schemes: list("PODCTL_EXEC_SCHEMES"),
            ..PluginInfo::new("exec", env!("CARGO_PKG_VERSION"))
        }
    }

    async fn validate(&self, member: &Member) -> Result<Validated, Error> {
        let (executable, _) = executable(&member.program)?;
        let meta = std::fs::metadata(&executable)
            .map_err(|e| Error::Invalid(format!("program {}: {e}", executable.display())))?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(Error::Invalid(format!(
                "program {} is not an executable file",
                executable.display()
            )));
        }
        let kind = match Path::new(&member.program).is_dir() {
            true => "directory with an executable run",
            false => "executable",
        };
        Ok(Validated {
            kind: kind.into(),
            ..Validated::default()
        })
    }

    async fn start(&self, member: Member) -> Result<Started, Error> {
        self.validate(&member).await?;
        if let Ok(running) = self.running(&member.name) {
            if running.exit.borrow().is_none() {
                return Err(Error::AlreadyExists(member.name));
            }
        }
        let sink = open_rotating_sink(Path::new(&member.log_path), Rotation::of(&member))
            .map_err(|e| Error::Failed(format!("cannot open its log {}: {e}", member.log_path)))?;
        let (executable, dir) = executable(&member.program)?;
        let mut command = tokio::process::Command::new(&executable);
        command
            .args(&member.args)
            .env_clear()
            .envs(member.env.iter().map(|e| (&e.name, &e.value)))
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let memory = member.limits.map(|l| l.memory_bytes).unwrap_or(0);
        if memory > 0 {
            // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: memory,
                        rlim_max: memory,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        // Forked so that it dies with this plugin, even when the plugin is SIGKILLed.
        let mut child = podctl_plugin::child::spawn(command)
            .await
            .map_err(|e| Error::Failed(format!("cannot run {}: {e}", member.program)))?;
        let pid = child.id().unwrap_or_default();
        let started_at = now_secs();
        let pumps = [
            tokio::spawn(pump(child.stdout.take().expect("piped"), Stream::Stdout, sink.clone())),
            tokio::spawn(pump(child.stderr.take().expect("piped"), Stream::Stderr, sink)),
        ];
        let (tx, exit) = watch::channel(None);
        let (signals, mut requests) = mpsc::unbounded_channel::<libc::c_int>();
        tokio::spawn(async move {
            let status = loop {
                tokio::select! {
                    status = child.wait() => break status,
                    Some(signal) = requests.recv() => {
                        // Not reaped yet (`id` is None once it is), so the PID is still our child's.
                        if let Some(pid) = child.id() {
                            // SAFETY: kill(2) on our own unreaped child.
                            unsafe {
                                libc::kill(pid as libc::pid_t, signal);
                            }
                        }
                    }
                }
            };
            for pump in pumps {
                let _ = pump.await;
            }
            let (code, message) = match status {
                Ok(s) => match (s.code(), s.signal()) {
                    (Some(code), _) => (code, String::new()),
                    (None, Some(signal)) => (128 + signal, format!("killed by signal {signal}")),
                    (None, None) => (1, String::new()),
                },
                Err(e) => (1, format!("waiting for it failed: {e}")),
            };
            let _ = tx.send(Some(MemberStatus::exited(started_at, now_secs(), code, None, &message)));
        });
        let running = Running {
            started_at,
            signals,
            exit,
        };
        self.members.lock().expect("not poisoned").insert(member.name, running);
        Ok(Started {
            pid,
            ..Started::default()
        })
    }

    async fn stop(&self, name: &str, grace: Duration) -> Result<(), Error> {
        let mut running = self.signal(name, libc::SIGTERM)?;
        tokio::spawn(async move {
            if tokio::time::timeout(grace, running.exit.wait_for(Option::is_some))
                .await
                .is_err()
            {
                let _ = running.signals.send(libc::SIGKILL);
            }
        });
        Ok(())
    }

    async fn kill(&self, name: &str) -> Result<(), Error> {
        self.signal(name, libc::SIGKILL).map(drop)
    }

    async fn status(&self, name: &str) -> Result<MemberStatus, Error> {
        let running = self.running(name)?;
        let exit = running.exit.borrow().clone();
        Ok(exit.unwrap_or_else(|| MemberStatus::running(running.started_at)))
    }

    async fn wait(&self, name: &str) -> Result<MemberStatus, Error> {
        let mut exit = self.running(name)?.exit;
        let status = exit
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::Failed(format!("member {name}: its waiter is gone")))?
            .clone();
        Ok(status.expect("waited for Some"))
    }
}
