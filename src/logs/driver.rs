//! containerd's binary log driver for podctl's members: the shim starts it for each task with the
//! container's stdout pipe on fd 3, stderr on fd 4 and fd 5 to close once ready; it writes CRI
//! records into PATH until both pipes end. Task delete waits for it, so a run's log is complete
//! once its task is deleted. It runs as `podctl-log-driver log-driver PATH`, a small binary
//! installed next to podctl (one runs per running member, so its size is per-member memory), or
//! as the hidden `podctl log-driver PATH` where that binary is missing.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::{open_rotating_sink, LineSplitter, Rotation, Stream};

const STDOUT_FD: i32 = 3;
const STDERR_FD: i32 = 4;
const READY_FD: i32 = 5;
/// How long a stream may hold an unfinished line before it is logged as a partial record.
const IDLE_FLUSH_MILLIS: i32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum LogDriverError {
    #[error("log-driver: fd {0} is not open; this command is started by containerd's shim for a `binary://` log URI, not by hand")]
    NotUnderShim(i32),
    #[error("log-driver: cannot open log file {path}: {source}; its directory must be writable by root")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("log-driver: writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The small driver binary, next to podctl's.
pub const DRIVER_BINARY: &str = "podctl-log-driver";

/// The task output URI that has the shim start this driver for `log_path` (the query becomes the
/// driver's arguments: `log-driver PATH`). Falls back to the shim's own file copy (no
/// timestamps) if podctl cannot name its own executable.
pub fn output_uri(log_path: &Path, rotation: Rotation) -> String {
    let Ok(podctl) = crate::podctl_exe() else {
        return format!("file://{}", log_path.display());
    };
    let small = podctl.with_file_name(DRIVER_BINARY);
    let driver = if small.is_file() { small } else { podctl };
    // containerd passes the query's pairs as arguments in no set order: `run_from_args` takes them so.
    format!(
        "binary://{}?log-driver={}&max-size={}&max-files={}",
        percent_encode(&driver.to_string_lossy()),
        percent_encode(&log_path.to_string_lossy()),
        rotation.max_bytes,
        rotation.max_files
    )
}

/// The driver's arguments, as containerd makes them of the URI's query: `KEY VALUE` pairs in any
/// order (`log-driver PATH`, `max-size N`, `max-files N`).
pub fn parse_args(args: &[std::ffi::OsString]) -> Option<(PathBuf, Rotation)> {
    let mut path = None;
    let mut rotation = Rotation::default();
    for pair in args.chunks(2) {
        let [key, value] = pair else { return None };
        match key.to_str()? {
            "log-driver" => path = Some(PathBuf::from(value)),
            "max-size" => rotation.max_bytes = value.to_str()?.parse().ok()?,
            "max-files" => rotation.max_files = value.to_str()?.parse().ok()?,
            _ => return None,
        }
    }
    Some((path?, rotation))
}

/// Encodes what a URL path or query value must not carry literally (`?`, `&`, `=`, `%`, `#`,
/// spaces, non-ASCII); containerd decodes it with Go's `net/url`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn inherited(fd: i32) -> Result<OwnedFd, LogDriverError> {
    // SAFETY: F_GETFD only asks whether the descriptor is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(LogDriverError::NotUnderShim(fd));
    }
    // SAFETY: the shim passed this descriptor to us and nothing else in this process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Runs the driver if this process was started as one (`log-driver PATH ...` pairs), with its exit
/// code; None otherwise.
pub fn run_if_invoked() -> Option<std::process::ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if !args.iter().step_by(2).any(|a| a == "log-driver") {
        return None;
    }
    let (path, rotation) = parse_args(&args)?;
    Some(match run(&path, rotation) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    })
}

/// Runs the driver until the container's output ends: one thread polling both pipes.
pub fn run(log_path: &Path, rotation: Rotation) -> Result<(), LogDriverError> {
    // The shim sends SIGTERM when the task is deleted, after closing its ends of the pipes: keep
    // draining to the end instead of dying with records still in the pipe.
    // SAFETY: setting a signal to be ignored has no handler to be unsafe about.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    let mut streams = [
        (
            File::from(inherited(STDOUT_FD)?),
            Stream::Stdout,
            LineSplitter::default(),
            true,
        ),
        (
            File::from(inherited(STDERR_FD)?),
            Stream::Stderr,
            LineSplitter::default(),
            true,
        ),
    ];
    let ready = inherited(READY_FD)?;
    if let Some(dir) = log_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let sink = open_rotating_sink(log_path, rotation).map_err(|source| LogDriverError::Open {
        path: log_path.to_path_buf(),
        source,
    })?;
    drop(ready);
    let write_error = |source| LogDriverError::Write {
        path: log_path.to_path_buf(),
        source,
    };
    let mut chunk = [0u8; 8192];
    while streams.iter().any(|s| s.3) {
        let mut polled: Vec<libc::pollfd> = streams
            .iter()
            .filter(|s| s.3)
            .map(|s| libc::pollfd {
                fd: s.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // The shim holds the pipes' write ends until the task is deleted, and an exited task is kept
        // (restartPolicy Never, or until the next run): EOF may never come while the member shows
        // as terminated. So text left without a newline is written as a `P` record once the stream
        // has been quiet for IDLE_FLUSH_MILLIS; what follows continues that line when the log is read.
        let pending = streams.iter().any(|s| s.2.has_pending());
        let timeout = if pending { IDLE_FLUSH_MILLIS } else { -1 };
        // SAFETY: `polled` is a valid array of pollfd for its length.
        match unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, timeout) } {
            0 => {
                for (_, stream, splitter, _) in streams.iter_mut() {
                    splitter.finish(*stream, &sink).map_err(write_error)?;
                }
                continue;
            }
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(write_error(e));
            }
            _ => {}
        }
        for p in polled.iter().filter(|p| p.revents != 0) {
            let Some((file, stream, splitter, open)) = streams.iter_mut().find(|s| s.0.as_raw_fd() == p.fd) else {
                continue;
            };
            match file.read(&mut chunk) {
                Ok(0) => {
                    *open = false;
                    splitter.finish(*stream, &sink).map_err(write_error)?;
                }
                Ok(n) => splitter.feed(&chunk[..n], *stream, &sink).map_err(write_error)?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(write_error(e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_names_this_executable_and_encodes_the_path() {
        let uri = output_uri(Path::new("/var/log/pods/a b/c&d=1/0.log"), Rotation::default());
        assert!(uri.starts_with("binary:///"), "{uri}");
        assert!(
            uri.ends_with("?log-driver=/var/log/pods/a%20b/c%26d%3D1/0.log&max-size=10485760&max-files=5"),
            "{uri}"
        );
    }

    #[test]
    fn the_drivers_arguments_come_in_any_order() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        let (path, rotation) =
            parse_args(&args(&["max-files", "3", "log-driver", "/x/0.log", "max-size", "100"])).unwrap();
        assert_eq!(path, PathBuf::from("/x/0.log"));
        assert_eq!(
            rotation,
            Rotation {
                max_bytes: 100,
                max_files: 3
            }
        );
        assert_eq!(
            parse_args(&args(&["log-driver", "/x/0.log"])).unwrap().1,
            Rotation::default()
        );
        assert!(parse_args(&args(&["log-driver"])).is_none());
    }
}
