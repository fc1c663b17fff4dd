//! `podctl exec POD [-c NAME] [-i] [-t] -- CMD...`: a process in a running OCI member, with its
//! stdio wired through FIFOs (containerd's client-side IO), a real TTY on `-t` (raw mode, window
//! size, resizes) and its exit code passed through.

use std::os::fd::AsFd;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use crate::cli::ExecArgs;
use crate::containerd::{Client, ExecIo};
use crate::member::Registry;
use crate::pod::{self, Settings};

/// Puts the local terminal in raw mode and restores it when dropped.
pub(super) struct RawTerminal(Option<nix::sys::termios::Termios>);

impl RawTerminal {
    pub(super) fn enter() -> RawTerminal {
        let stdin = std::io::stdin();
        let Ok(saved) = nix::sys::termios::tcgetattr(stdin.as_fd()) else {
            return RawTerminal(None);
        };
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        let _ = nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw);
        RawTerminal(Some(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin().as_fd(), nix::sys::termios::SetArg::TCSANOW, saved);
        }
    }
}

pub(super) fn window_size() -> Option<(u32, u32)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we own.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some((ws.ws_col.into(), ws.ws_row.into()))
}

fn fifo(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .with_context(|| format!("creating FIFO {}", path.display()))?;
    Ok(path.to_string_lossy().into_owned())
}

/// Copies a FIFO to a local stream until `done`, then drains what is left.
async fn pump(path: String, mut out: impl tokio::io::AsyncWrite + Unpin, mut done: tokio::sync::watch::Receiver<bool>) {
    // Opened read-write so the open neither blocks nor sees EOF before the shim's end is open.
    let Ok(mut fifo) = pipe::OpenOptions::new().read_write(true).open_receiver(&path) else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = fifo.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => { let _ = out.write_all(&buf[..n]).await; let _ = out.flush().await; }
            },
            _ = done.changed() => break,
        }
    }
    // The process ended: take what is still buffered, then stop.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(50), fifo.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        let _ = out.write_all(&buf[..n]).await;
    }
    let _ = out.flush().await;
}

pub async fn exec(client: &Client, settings: &Settings, registry: &Registry, args: &ExecArgs) -> Result<ExitCode> {
    let view = super::find(client, settings, registry, &args.pod).await?;
    let member = view.member_or_default(args.container.as_deref())?;
    if member.in_agent {
        bail!(
            "container {} of pod {} is a {} member hosted by the pod's agent, with no process of its own; exec runs only in OCI containers",
            member.name,
            view.name,
            member.runtime
        );
    }
    if !member.ready && !matches!(member.state, pod::MemberState::Running { .. }) {
        bail!(
            "container {} of pod {} is not running; `podctl describe pod {}` says why",
            member.name,
            view.name,
            view.name
        );
    }
    let exec_id = format!("exec-{}", std::process::id());
    let dir = settings.state_dir.join(format!("exec-{exec_id}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cleanup_dir = scopeguard(dir.clone());
    let io = ExecIo {
        stdin: if args.stdin { Some(fifo(&dir, "stdin")?) } else { None },
        stdout: fifo(&dir, "stdout")?,
        // A terminal merges both streams into the pty.
        stderr: if args.tty { String::new() } else { fifo(&dir, "stderr")? },
        terminal: args.tty,
    };
    // Open our ends before the shim opens its own.
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let stdout_pump = tokio::spawn(pump(io.stdout.clone(), tokio::io::stdout(), done_rx.clone()));
    let stderr_pump =
        (!io.stderr.is_empty()).then(|| tokio::spawn(pump(io.stderr.clone(), tokio::io::stderr(), done_rx.clone())));
    let stdin_writer = match &io.stdin {
        Some(path) => Some(pipe::OpenOptions::new().read_write(true).open_sender(path)?),
        None => None,
    };
    let _raw = args.tty.then(RawTerminal::enter);
    client.exec_start(&member.id, &exec_id, &args.command, &io).await?;
    if args.tty {
        if let Some((w, h)) = window_size() {
            client.resize_exec(&member.id, &exec_id, w, h).await;
        }
    }
    if let Some(mut writer) = stdin_writer {
        let (client, id, exec_id) = (client.clone(), member.id.clone(), exec_id.clone());
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = stdin.read(&mut buf).await {
                if n == 0 || writer.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            drop(writer);
            client.close_exec_stdin(&id, &exec_id).await;
        });
    }
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let status = loop {
        tokio::select! {
            status = client.wait_exec(&member.id, &exec_id) => break status?,
            _ = winch.recv(), if args.tty => {
                if let Some((w, h)) = window_size() {
                    client.resize_exec(&member.id, &exec_id, w, h).await;
                }
            }
        }
    };
    let _ = done_tx.send(true);
    let _ = stdout_pump.await;
    if let Some(pump) = stderr_pump {
        let _ = pump.await;
    }
    client.delete_exec(&member.id, &exec_id).await;
    drop(cleanup_dir);
    Ok(ExitCode::from(u8::try_from(status.code).unwrap_or(255)))
}

/// Removes the FIFO directory however exec ends.
fn scopeguard(dir: std::path::PathBuf) -> impl Drop {
    struct Guard(std::path::PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    Guard(dir)
}
