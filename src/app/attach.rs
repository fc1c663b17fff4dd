//! `podctl attach POD [-c NAME] [-i] [-t]`, as kubectl attach: the member's output from now on,
//! and with `-i` your input to its stdin, through the relay that holds its stdio (a member with
//! `stdin` or `tty`, see `logs::relay`). With `-t` on a `tty: true` member your terminal is its
//! terminal (raw mode, window size and resizes); Ctrl-P Ctrl-Q detaches, as in docker and podman,
//! and the member runs on. A member with neither only shows its output, as under kubectl.

use std::process::ExitCode;

use anyhow::{bail, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::exec::{window_size, RawTerminal};
use crate::cli::AttachArgs;
use crate::containerd::Client;
use crate::logs::relay::{self, Interactive};
use crate::member::Registry;
use crate::pod::{self, MemberView, PodView, Settings};
use crate::record::LABEL_STDIO;

const CTRL_P: u8 = 0x10;
const CTRL_Q: u8 = 0x11;

pub async fn attach(client: &Client, settings: &Settings, registry: &Registry, args: &AttachArgs) -> Result<ExitCode> {
    let view = super::find(client, settings, registry, &args.pod).await?;
    let member = view.member_or_default(args.container.as_deref())?.clone();
    if member.in_agent {
        bail!(
            "container {} of pod {} is a {} member: it takes no input through podctl; `podctl logs -f {} -c {}` shows its output",
            member.name,
            view.name,
            member.runtime,
            view.name,
            member.name
        );
    }
    let stdio = member
        .record
        .labels
        .get(LABEL_STDIO)
        .and_then(|l| Interactive::from_label(l));
    let Some(stdio) = stdio else {
        if (args.stdin || args.tty) && !args.quiet {
            eprintln!(
                "Unable to use stdin or a TTY - container {} did not allocate one (it needs `stdin: true` or `tty: true` in the manifest); showing its output",
                member.name
            );
        }
        return output_only(&view, &member).await;
    };
    if args.tty && !stdio.tty && !args.quiet {
        eprintln!("Unable to use a TTY - container {} did not allocate one", member.name);
    }
    if args.stdin && !stdio.stdin && !args.quiet {
        eprintln!("Unable to use stdin - container {} did not allocate one", member.name);
    }
    let tty = args.tty && stdio.tty;
    let send_input = args.stdin && stdio.stdin;
    let pod_dir = settings.pod_state_dir(client, &view.sandbox_id);
    let Some(socket) = relay::connect(&pod_dir, &member.name) else {
        bail!(
            "container {} of pod {} is not running (no relay holds its input); `podctl describe pod {}` says why",
            member.name,
            view.name,
            view.name
        );
    };
    if tty && !args.quiet {
        eprintln!("If you don't see a command prompt, try pressing enter. (Ctrl-P Ctrl-Q detaches.)");
    }
    let session = Session {
        client,
        member_id: &member.id,
        tty,
        send_input,
        // The shim keeps its own end of the stdin FIFO open, so closing ours is not the member's
        // end of input: containerd's CloseIO is, as the CRI plugin does for stdinOnce.
        close_stdin_after: send_input && stdio.stdin_once,
    };
    match session.run(socket).await? {
        Ended::Detached => {
            if !args.quiet {
                eprintln!("\r\nread escape sequence");
            }
            Ok(ExitCode::SUCCESS)
        }
        Ended::Interrupted => Ok(ExitCode::from(130)),
        Ended::RunOver => Ok(exit_code_of(client, settings, registry, &view.name, &member.name).await),
    }
}

/// How an attach ended.
enum Ended {
    /// Ctrl-P Ctrl-Q: the member runs on.
    Detached,
    /// Ctrl-C without a terminal.
    Interrupted,
    /// The member's run is over.
    RunOver,
}

/// One attach to a relay.
struct Session<'a> {
    client: &'a Client,
    member_id: &'a str,
    tty: bool,
    send_input: bool,
    close_stdin_after: bool,
}

impl Session<'_> {
    async fn run(&self, socket: std::os::unix::net::UnixStream) -> Result<Ended> {
        socket.set_nonblocking(true)?;
        let (from_relay, mut to_relay) = tokio::net::UnixStream::from_std(socket)?.into_split();
        if self.send_input {
            to_relay.write_all(&relay::frame(relay::FRAME_HELLO_STDIN, b"")).await?;
        }
        let raw = self.tty.then(RawTerminal::enter);
        self.resize().await;
        let (detach_tx, mut detached) = tokio::sync::oneshot::channel::<()>();
        if self.send_input {
            let (client, id, tty, close) = (
                self.client.clone(),
                self.member_id.to_string(),
                self.tty,
                self.close_stdin_after,
            );
            tokio::spawn(async move {
                let detach = forward_input(&mut to_relay, tty).await;
                if close {
                    client.close_exec_stdin(&id, "").await;
                }
                if detach {
                    let _ = detach_tx.send(());
                }
            });
        }
        let output = print_output(from_relay);
        tokio::pin!(output);
        let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
        // Until the input ends by itself (its sender then drops without a word).
        let mut input_open = self.send_input;
        let ended = loop {
            tokio::select! {
                () = &mut output => break Ended::RunOver,
                said = &mut detached, if input_open => {
                    if said.is_ok() {
                        break Ended::Detached;
                    }
                    input_open = false;
                }
                // Ctrl-C without a terminal ends the attach, not the member (with one, it is the member's).
                _ = tokio::signal::ctrl_c() => {
                    if self.close_stdin_after {
                        self.client.close_exec_stdin(self.member_id, "").await;
                    }
                    break Ended::Interrupted;
                }
                _ = winch.recv(), if self.tty => self.resize().await,
            }
        };
        drop(raw);
        Ok(ended)
    }

    /// The member's terminal takes the local one's size.
    async fn resize(&self) {
        if let Some((w, h)) = window_size().filter(|_| self.tty) {
            self.client.resize_exec(self.member_id, "", w, h).await;
        }
    }
}

/// Writes the relay's frames to stdout and stderr until it closes.
async fn print_output(mut from_relay: tokio::net::unix::OwnedReadHalf) {
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 32 * 1024];
    let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
    loop {
        let n = match from_relay.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..n]);
        while let Ok(Some((kind, data))) = relay::take_frame(&mut buffer) {
            let out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send) = match kind {
                relay::FRAME_STDERR => &mut stderr,
                _ => &mut stdout,
            };
            let _ = out.write_all(&data).await;
            let _ = out.flush().await;
        }
    }
}

/// The member's exit code once its run is over (attach's own, as kubectl's), as soon as its
/// record says so; 0 if it does not within two seconds.
async fn exit_code_of(client: &Client, settings: &Settings, registry: &Registry, pod: &str, name: &str) -> ExitCode {
    for _ in 0..40 {
        let now = pod::find_pod(client, settings, registry, pod).await.ok().flatten();
        let state = now
            .as_ref()
            .and_then(|v| v.member_or_default(Some(name)).ok())
            .map(|m| m.state());
        if let Some(pod::MemberState::Terminated { exit_code, .. }) = state {
            return ExitCode::from(u8::try_from(exit_code).unwrap_or(255));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    ExitCode::SUCCESS
}

/// Sends local input to the relay until it ends (a close frame then: `stdinOnce` closes the
/// member's stdin) or, on a terminal, until Ctrl-P Ctrl-Q: true for a detach.
async fn forward_input(to_relay: &mut tokio::net::unix::OwnedWriteHalf, tty: bool) -> bool {
    let mut stdin = tokio::io::stdin();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut held_ctrl_p = false;
    loop {
        let n = match stdin.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                let _ = to_relay.write_all(&relay::frame(relay::FRAME_STDIN_END, b"")).await;
                return false;
            }
            Ok(n) => n,
        };
        let (data, detach) = if tty {
            detach_keys(&chunk[..n], &mut held_ctrl_p)
        } else {
            (chunk[..n].to_vec(), false)
        };
        if !data.is_empty()
            && to_relay
                .write_all(&relay::frame(relay::FRAME_STDIN, &data))
                .await
                .is_err()
        {
            return false;
        }
        if detach {
            return true;
        }
    }
}

/// Takes Ctrl-P Ctrl-Q out of terminal input: what to send, and whether it asked to detach. A
/// Ctrl-P is held until the next byte says whether it began the sequence.
fn detach_keys(input: &[u8], held_ctrl_p: &mut bool) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len());
    for &byte in input {
        if *held_ctrl_p {
            *held_ctrl_p = false;
            if byte == CTRL_Q {
                return (out, true);
            }
            out.push(CTRL_P);
        }
        if byte == CTRL_P {
            *held_ctrl_p = true;
        } else {
            out.push(byte);
        }
    }
    (out, false)
}

/// A member with neither stdin nor tty: its current run's output from now on, as kubectl attach.
async fn output_only(view: &PodView, member: &MemberView) -> Result<ExitCode> {
    let Some(dir) = member.log_path.as_ref().and_then(|p| p.parent()) else {
        bail!("container {} of pod {} records no log", member.name, view.name);
    };
    let path = crate::logs::run_file(dir, member.restarts);
    let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    super::logs::follow(path, offset, crate::logs::Renderer::new(false)).await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_p_ctrl_q_detaches_and_a_lone_ctrl_p_goes_through() {
        let mut held = false;
        assert_eq!(detach_keys(b"ls\r", &mut held), (b"ls\r".to_vec(), false));
        assert_eq!(
            detach_keys(&[b'a', CTRL_P, CTRL_Q, b'b'], &mut held),
            (b"a".to_vec(), true)
        );
        let mut held = false;
        assert_eq!(detach_keys(&[CTRL_P], &mut held), (Vec::new(), false));
        assert!(held, "a Ctrl-P at the end of a read waits for the next");
        assert_eq!(detach_keys(b"x", &mut held), (vec![CTRL_P, b'x'], false));
        let mut held = false;
        assert_eq!(detach_keys(&[CTRL_P], &mut held), (Vec::new(), false));
        assert_eq!(detach_keys(&[CTRL_Q], &mut held), (Vec::new(), true));
    }
}
