//! The relay of a member with `stdin` or `tty`: what conmon is to podman. containerd's binary log
//! driver has no stdin, so such a task gets FIFOs instead, and this process (one per run, started
//! before the task is created) holds them: it writes stdout and stderr to the CRI log as the driver
//! does, keeps stdin open (the member waits on its input, as under kubelet), and serves
//! `podctl attach` on a unix socket: output to every attached client, their input to the member.
//! `stdinOnce` closes stdin once the first attach that sent input ends. The relay ends, removing its
//! directory, when the member's output ends (its process exited).
//!
//! Frames on the socket, both ways: one kind byte, a big-endian u32 length, the data.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{open_rotating_sink, LineSplitter, Rotation, Sink, Stream};
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

const SOCKET: &str = "attach.sock";
const PID_FILE: &str = "relay.pid";
/// How long an unfinished line waits before it is logged as a partial record (as the driver).
const IDLE_FLUSH_MILLIS: i32 = 100;
/// An attached client this far behind is dropped rather than holding up the member's log.
const CLIENT_BACKLOG: usize = 4 << 20;
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

/// The relay's arguments: `relay DIR log PATH max-size N max-files N stdin none|open|once`.
pub struct RelayArgs {
    dir: PathBuf,
    log: PathBuf,
    rotation: Rotation,
    stdin_once: bool,
}

pub fn parse_args(args: &[OsString]) -> Option<RelayArgs> {
    let mut parsed = RelayArgs {
        dir: PathBuf::new(),
        log: PathBuf::new(),
        rotation: Rotation::default(),
        stdin_once: false,
    };
    for pair in args.chunks(2) {
        let [key, value] = pair else { return None };
        match key.to_str()? {
            "relay" => parsed.dir = PathBuf::from(value),
            "log" => parsed.log = PathBuf::from(value),
            "max-size" => parsed.rotation.max_bytes = value.to_str()?.parse().ok()?,
            "max-files" => parsed.rotation.max_files = value.to_str()?.parse().ok()?,
            "stdin" => parsed.stdin_once = value == "once",
            _ => return None,
        }
    }
    (!parsed.dir.as_os_str().is_empty() && !parsed.log.as_os_str().is_empty()).then_some(parsed)
}

fn open_fifo(path: &Path, flags: nix::fcntl::OFlag) -> io::Result<Option<File>> {
    use nix::fcntl::OFlag;
    if !path.exists() {
        return Ok(None);
    }
    let fd = nix::fcntl::open(
        path,
        flags | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    Ok(Some(File::from(fd)))
}

/// Opens the FIFOs and the socket, then forks: the parent records the child's PID and exits (the
/// spawner's sign that the relay is ready), the child relays until the member's output ends.
pub fn run(args: &RelayArgs) -> io::Result<()> {
    use nix::fcntl::OFlag;
    let dir = &args.dir;
    let stdout = open_fifo(&dir.join("stdout"), OFlag::O_RDONLY)?
        .ok_or_else(|| io::Error::other(format!("{} has no stdout FIFO", dir.display())))?;
    let stderr = open_fifo(&dir.join("stderr"), OFlag::O_RDONLY)?;
    // Read-write: the FIFO never reaches end of input while the relay holds it, whoever attaches.
    let stdin = open_fifo(&dir.join("stdin"), OFlag::O_RDWR)?;
    let listener = UnixListener::bind(dir.join(SOCKET))?;
    std::fs::set_permissions(dir.join(SOCKET), std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    if let Some(parent) = args.log.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let sink = open_rotating_sink(&args.log, args.rotation)?;
    // SAFETY: this process has one thread, so the child may go on running Rust code.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => {
            std::fs::write(dir.join(PID_FILE), child.to_string())?;
            // SAFETY: exiting without running destructors: the child owns the descriptors now.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Child => {}
    }
    let _ = nix::unistd::setsid();
    // Deleting the task must not kill the relay before it drained the member's last output.
    // SAFETY: setting a signal to be ignored has no handler to be unsafe about.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    let mut relay = Relay {
        outputs: vec![Output::new(stdout, Stream::Stdout)],
        stdin: stdin.map(|file| Input {
            file,
            pending: Vec::new(),
            closing: false,
        }),
        stdin_once: args.stdin_once,
        clients: Vec::new(),
        sink,
    };
    if let Some(stderr) = stderr {
        relay.outputs.push(Output::new(stderr, Stream::Stderr));
    }
    let result = relay.serve(&listener);
    let _ = std::fs::remove_dir_all(dir);
    result
}

struct Output {
    file: File,
    stream: Stream,
    splitter: LineSplitter,
    open: bool,
}

impl Output {
    fn new(file: File, stream: Stream) -> Output {
        Output {
            file,
            stream,
            splitter: LineSplitter::default(),
            open: true,
        }
    }
}

struct Input {
    file: File,
    pending: Vec<u8>,
    /// Close once what is pending has been written (`stdinOnce`).
    closing: bool,
}

struct Client {
    stream: UnixStream,
    inbox: Vec<u8>,
    outbox: Vec<u8>,
    sends_input: bool,
    /// The client still sends: an attach whose input ended still gets the output.
    reading: bool,
}

struct Relay {
    outputs: Vec<Output>,
    stdin: Option<Input>,
    stdin_once: bool,
    clients: Vec<Client>,
    sink: Sink,
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd { fd, events, revents: 0 }
}

impl Relay {
    fn serve(&mut self, listener: &UnixListener) -> io::Result<()> {
        let mut chunk = vec![0u8; 32 * 1024];
        while self.outputs.iter().any(|o| o.open) {
            let mut fds: Vec<libc::pollfd> = Vec::new();
            fds.extend(
                self.outputs
                    .iter()
                    .filter(|o| o.open)
                    .map(|o| pollfd(o.file.as_raw_fd(), libc::POLLIN)),
            );
            fds.push(pollfd(listener.as_raw_fd(), libc::POLLIN));
            if let Some(input) = self.stdin.as_ref().filter(|i| !i.pending.is_empty()) {
                fds.push(pollfd(input.file.as_raw_fd(), libc::POLLOUT));
            }
            for client in &self.clients {
                let mut events = if client.reading { libc::POLLIN } else { 0 };
                if !client.outbox.is_empty() {
                    events |= libc::POLLOUT;
                }
                // With no events, poll still reports a client that hung up (POLLHUP).
                fds.push(pollfd(client.stream.as_raw_fd(), events));
            }
            let pending = self.outputs.iter().any(|o| o.splitter.has_pending());
            let timeout = if pending { IDLE_FLUSH_MILLIS } else { -1 };
            // SAFETY: `fds` is a valid array of pollfd for its length.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if ready < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if ready == 0 {
                for output in &mut self.outputs {
                    output.splitter.finish(output.stream, &self.sink)?;
                }
                continue;
            }
            let woke = |fd: RawFd| fds.iter().find(|p| p.fd == fd).map(|p| p.revents).unwrap_or(0);
            for index in 0..self.outputs.len() {
                let fd = self.outputs[index].file.as_raw_fd();
                if self.outputs[index].open && woke(fd) != 0 {
                    self.drain_output(index, &mut chunk)?;
                }
            }
            if woke(listener.as_raw_fd()) != 0 {
                while let Ok((stream, _)) = listener.accept() {
                    if stream.set_nonblocking(true).is_ok() {
                        self.clients.push(Client {
                            stream,
                            inbox: Vec::new(),
                            outbox: Vec::new(),
                            sends_input: false,
                            reading: true,
                        });
                    }
                }
            }
            let woken: Vec<libc::c_short> = self.clients.iter().map(|c| woke(c.stream.as_raw_fd())).collect();
            let mut index = 0;
            for revents in woken {
                if revents == 0 || self.serve_client(index, revents, &mut chunk) {
                    index += 1;
                } else {
                    let gone = self.clients.remove(index);
                    if gone.sends_input && gone.reading && self.stdin_once {
                        self.close_stdin();
                    }
                }
            }
            self.flush_stdin();
        }
        for output in &mut self.outputs {
            output.splitter.finish(output.stream, &self.sink)?;
        }
        // The clients see the end of the member's output and detach.
        for client in &mut self.clients {
            let _ = client.stream.set_nonblocking(false);
            let _ = client.stream.write_all(&client.outbox);
        }
        Ok(())
    }

    fn drain_output(&mut self, index: usize, chunk: &mut [u8]) -> io::Result<()> {
        loop {
            let output = &mut self.outputs[index];
            match output.file.read(chunk) {
                Ok(0) => {
                    // No writer left: the shim closed its end, the member's process has ended.
                    output.open = false;
                    return output.splitter.finish(output.stream, &self.sink);
                }
                Ok(n) => {
                    output.splitter.feed(&chunk[..n], output.stream, &self.sink)?;
                    let kind = if output.stream == Stream::Stdout {
                        FRAME_STDOUT
                    } else {
                        FRAME_STDERR
                    };
                    let framed = frame(kind, &chunk[..n]);
                    for client in &mut self.clients {
                        client.outbox.extend_from_slice(&framed);
                    }
                    self.clients.retain(|c| c.outbox.len() < CLIENT_BACKLOG);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads and writes what the client's socket is ready for; false once it is gone.
    fn serve_client(&mut self, index: usize, revents: libc::c_short, chunk: &mut [u8]) -> bool {
        let client = &mut self.clients[index];
        if !client.reading && revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return false;
        }
        if !client.outbox.is_empty() {
            match client.stream.write(&client.outbox) {
                Ok(n) => {
                    client.outbox.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
        }
        let mut input_ended = false;
        while client.reading {
            match client.stream.read(chunk) {
                Ok(0) => {
                    // Its input ended; it still gets the output.
                    client.reading = false;
                    input_ended = true;
                }
                Ok(n) => client.inbox.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        loop {
            let client = &mut self.clients[index];
            match take_frame(&mut client.inbox) {
                Ok(None) => break,
                Err(_) => return false,
                Ok(Some((FRAME_HELLO_STDIN, _))) => client.sends_input = true,
                Ok(Some((FRAME_STDIN, data))) => {
                    client.sends_input = true;
                    if let Some(input) = self.stdin.as_mut().filter(|i| !i.closing) {
                        input.pending.extend_from_slice(&data);
                    }
                }
                Ok(Some((FRAME_STDIN_END, _))) => input_ended = true,
                Ok(Some(_)) => {}
            }
        }
        // For stdinOnce, the first attach that sent input has ended: no one writes any more.
        if input_ended && self.clients[index].sends_input && self.stdin_once {
            self.close_stdin();
        }
        true
    }

    fn close_stdin(&mut self) {
        if let Some(input) = &mut self.stdin {
            input.closing = true;
        }
        self.flush_stdin();
    }

    /// Writes what input is pending as far as the FIFO takes it; closes stdin once asked and done.
    fn flush_stdin(&mut self) {
        let Some(input) = &mut self.stdin else { return };
        while !input.pending.is_empty() {
            match input.file.write(&input.pending) {
                Ok(n) => {
                    input.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if input.closing && input.pending.is_empty() {
            // The last writer goes: the shim sees end of input and closes the member's stdin.
            self.stdin = None;
        }
    }
}

/// Runs the relay if this process was started as one; its exit code, None otherwise.
pub fn run_if_invoked() -> Option<std::process::ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_none_or(|a| a != "relay") {
        return None;
    }
    let Some(parsed) = parse_args(&args) else {
        eprintln!("usage: podctl-log-driver relay DIR log PATH [max-size N] [max-files N] [stdin none|open|once]");
        return Some(std::process::ExitCode::from(2));
    };
    Some(match run(&parsed) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay {}: {e}", parsed.dir.display());
            std::process::ExitCode::FAILURE
        }
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
