//! The relay of a member with `stdin` or `tty`: what conmon is to podman. containerd's binary log
//! driver has no stdin, so such a task gets FIFOs instead, and this process (one per run, started
//! before the task is created) holds them: it writes stdout and stderr to the CRI log as the driver
//! does, keeps stdin open (the member waits on its input, as under kubelet), and serves
//! `podctl attach` on a unix socket: output to every attached client, their input to the member.
//! `stdinOnce` closes stdin once the first attach that sent input ends. The relay ends, removing its
//! directory, when the member's output ends (its process exited).
//!
//! Frames on the socket, both ways: one kind byte, a big-endian u32 length, the data. This module
//! is podctl's side (starting a relay, connecting to it); [`event_loop`] is the relay itself.

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Rotation;
use crate::containerd::ExecIo;

/// Client to relay: input for the member's stdin.
pub const FRAME_STDIN: u8 = 0;
/// Relay to client: the member's stdout (its terminal, with `tty`).
pub const FRAME_STDOUT: u8 = 1;
/// Relay to client: the member's stderr.
pub const FRAME_STDERR: u8 = 2;
/// Client to relay: its input ended.
pub const FRAME_STDIN_END: u8 = 3;
/// Client to relay, first: this attach sends input (`-i`), so it counts for `stdinOnce`.
pub const FRAME_HELLO_STDIN: u8 = 4;

mod event_loop;

pub use event_loop::{parse_args, run, run_if_invoked, RelayArgs};

const SOCKET: &str = "attach.sock";
const PID_FILE: &str = "relay.pid";
const MAX_FRAME: usize = 1 << 20;

/// What a container asks of its input and terminal (`stdin`, `stdinOnce`, `tty`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interactive {
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
}

impl Interactive {
    /// None for a container that asks for neither (kubelet ignores stdinOnce without stdin).
    pub fn new(stdin: bool, stdin_once: bool, tty: bool) -> Option<Interactive> {
        (stdin || tty).then_some(Interactive {
            stdin,
            stdin_once: stdin && stdin_once,
            tty,
        })
    }

    /// The member record's label value: `stdin`, `stdin-once`, `tty`, joined by commas.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if self.stdin {
            parts.push(if self.stdin_once { "stdin-once" } else { "stdin" });
        }
        if self.tty {
            parts.push("tty");
        }
        parts.join(",")
    }

    pub fn from_label(label: &str) -> Option<Interactive> {
        let has = |part: &str| label.split(',').any(|p| p == part);
        let once = has("stdin-once");
        Interactive::new(has("stdin") || once, once, has("tty"))
    }
}

pub fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + data.len());
    out.push(kind);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// Takes one whole frame off the front of `buffer`, if it holds one; Err for a frame too long.
pub fn take_frame(buffer: &mut Vec<u8>) -> io::Result<Option<(u8, Vec<u8>)>> {
    if buffer.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "attach frame too long"));
    }
    if buffer.len() < 5 + len {
        return Ok(None);
    }
    let kind = buffer[0];
    let data = buffer[5..5 + len].to_vec();
    buffer.drain(..5 + len);
    Ok(Some((kind, data)))
}

/// Where a member's relays keep their FIFOs and socket: one directory per run, named by its start.
pub fn member_dir(pod_dir: &Path, member: &str) -> PathBuf {
    pod_dir.join("attach").join(member)
}

/// The attach socket of the member's current run, if a relay serves one.
pub fn connect(pod_dir: &Path, member: &str) -> Option<UnixStream> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(member_dir(pod_dir, member))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    runs.iter()
        .rev()
        .find_map(|run| UnixStream::connect(run.join(SOCKET)).ok())
}

/// A task's stdio and, for an interactive member, the relay holding it: killed (with its
/// directory) when dropped before [`TaskOutput::keep`], so a task that was never made leaves none.
pub struct TaskOutput {
    pub io: ExecIo,
    relay: Option<(PathBuf, u32)>,
}

impl TaskOutput {
    /// The task exists: its relay lives on until the member's output ends.
    pub fn keep(mut self) {
        self.relay = None;
    }
}

impl Drop for TaskOutput {
    fn drop(&mut self) {
        if let Some((dir, pid)) = self.relay.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The stdio of a member's next task, its output logged to `log`: the binary log driver, or for an
/// interactive member FIFOs held by a relay started now (ready when this returns).
pub fn task_output(
    log: &Path,
    rotation: Rotation,
    interactive: Option<Interactive>,
    pod_dir: &Path,
    member: &str,
) -> io::Result<TaskOutput> {
    let Some(interactive) = interactive else {
        return Ok(TaskOutput {
            io: ExecIo::logged_to(super::driver::output_uri(log, rotation)),
            relay: None,
        });
    };
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let dir = member_dir(pod_dir, member).join(format!("{started:024}"));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let fifo = |name: &str| -> io::Result<String> {
        let path = dir.join(name);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        Ok(path.to_string_lossy().into_owned())
    };
    let io = ExecIo {
        stdin: if interactive.stdin { Some(fifo("stdin")?) } else { None },
        stdout: fifo("stdout")?,
        // A terminal has one output stream.
        stderr: if interactive.tty {
            String::new()
        } else {
            fifo("stderr")?
        },
        terminal: interactive.tty,
    };
    let exe = crate::podctl_exe()?;
    let small = exe.with_file_name(super::driver::DRIVER_BINARY);
    let program = if small.is_file() { small } else { exe };
    let errors = File::create(dir.join("relay.log"))?;
    let mode = match (interactive.stdin, interactive.stdin_once) {
        (false, _) => "none",
        (true, false) => "open",
        (true, true) => "once",
    };
    let mut command = std::process::Command::new(program);
    command
        .arg("relay")
        .arg(&dir)
        .arg("log")
        .arg(log)
        .args(["max-size", &rotation.max_bytes.to_string()])
        .args(["max-files", &rotation.max_files.to_string()])
        .args(["stdin", mode]);
    // The first process exits once the relay (its child) holds the FIFOs and the socket.
    let status = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(errors)
        .status()?;
    let pid = std::fs::read_to_string(dir.join(PID_FILE))
        .ok()
        .and_then(|p| p.trim().parse().ok());
    let (true, Some(pid)) = (status.success(), pid) else {
        let said = std::fs::read_to_string(dir.join("relay.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        return Err(io::Error::other(format!(
            "the stdin relay of container {member} did not start ({status}): {}",
            said.trim()
        )));
    };
    Ok(TaskOutput {
        io,
        relay: Some((dir, pid)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interactive_round_trips_through_its_label() {
        for (stdin, once, tty) in [
            (true, false, false),
            (true, true, false),
            (false, false, true),
            (true, true, true),
        ] {
            let it = Interactive::new(stdin, once, tty).unwrap();
            assert_eq!(Interactive::from_label(&it.label()), Some(it));
        }
        assert_eq!(Interactive::new(false, true, false), None);
        assert_eq!(Interactive::from_label(""), None);
    }

    #[test]
    fn frames_come_apart_as_they_were_put_together() {
        let mut buffer = frame(FRAME_STDIN, b"hello");
        buffer.extend(frame(FRAME_STDIN_END, b""));
        buffer.extend(&frame(FRAME_STDOUT, b"partial")[..4]);
        assert_eq!(take_frame(&mut buffer).unwrap(), Some((FRAME_STDIN, b"hello".to_vec())));
        assert_eq!(take_frame(&mut buffer).unwrap(), Some((FRAME_STDIN_END, Vec::new())));
        assert_eq!(take_frame(&mut buffer).unwrap(), None);
        let mut huge = vec![FRAME_STDIN];
        huge.extend(u32::MAX.to_be_bytes());
        assert!(take_frame(&mut huge).is_err());
    }
}
