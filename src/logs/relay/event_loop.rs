//! The relay process (`podctl-log-driver relay DIR ...`): one thread polling the member's output
//! FIFOs, its stdin FIFO, the attach socket and the attached clients.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::super::{open_rotating_sink, LineSplitter, Rotation, Sink, Stream};
use super::{
    frame, take_frame, FRAME_HELLO_STDIN, FRAME_STDERR, FRAME_STDIN, FRAME_STDIN_END, FRAME_STDOUT, PID_FILE, SOCKET,
};

/// How long an unfinished line waits before it is logged as a partial record (as the driver).
const IDLE_FLUSH_MILLIS: i32 = 100;
/// An attached client this far behind is dropped rather than holding up the member's log.
const CLIENT_BACKLOG: usize = 4 << 20;

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
