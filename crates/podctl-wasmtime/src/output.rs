//! Where a member's output goes ([`Output`]: a log file, or a writer per stream such as a CRI
//! log formatter) and the WASI side of it ([`GuestOutput`]: stdout/stderr streams that write
//! straight to the shared writer).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::error::WasmError;

/// A writer that all of a member's stores share (a proxy has one per request). Each guest write
/// is one `write_all` under the lock.
pub type SharedWriter = Arc<Mutex<dyn Write + Send>>;

/// Where a member's output goes.
#[derive(Clone)]
pub enum Output {
    /// stdout and stderr both appended to this file (created if missing).
    File(PathBuf),
    /// Each stream to its own writer, e.g. a log formatter; the host's messages about the member
    /// go to `stderr`.
    Writers { stdout: SharedWriter, stderr: SharedWriter },
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::File(path) => f.debug_tuple("File").field(path).finish(),
            Output::Writers { .. } => f.write_str("Writers"),
        }
    }
}

impl Output {
    /// stdout and stderr to this process's own: for a front end that runs one member per process
    /// and whose stdio its parent set up (the node shim's container, a member run by hand).
    ///
    /// Unbuffered (each guest write is one `write(2)` on fd 1 or 2): nothing is left in a buffer
    /// when the process exits with the member's code, and a pipe reader sees lines as they come.
    pub fn stdio() -> Output {
        Output::Writers {
            stdout: Arc::new(Mutex::new(Fd(1))),
            stderr: Arc::new(Mutex::new(Fd(2))),
        }
    }
}

/// One of this process's standard descriptors, written without a buffer and never closed.
struct Fd(std::os::fd::RawFd);

impl Write for Fd {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: `self.0` is 1 or 2, open for the life of the process; `buf` is valid for reads.
        let n = unsafe { libc::write(self.0, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Default for Output {
    fn default() -> Self {
        Output::File(PathBuf::new())
    }
}

/// A member's stdout or stderr as WASI sees it: writes go straight to the shared writer (like
/// wasmtime's `OutputFile`, without a buffer or task of its own per store).
#[derive(Clone)]
pub(crate) struct GuestOutput(pub(crate) SharedWriter);

impl GuestOutput {
    pub(crate) fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut writer = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        writer.write_all(bytes)
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        GuestOutput::write(self, &bytes).map_err(|e| StreamError::LastOperationFailed(wasmtime::format_err!(e)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // As much as a guest may hand over in one write.
        Ok(64 * 1024)
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(GuestOutput::write(&self, buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

pub(crate) fn open_log(name: &str, path: &std::path::Path) -> Result<File, WasmError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| WasmError::LogFile {
            name: name.into(),
            path: path.into(),
            source,
        })
}
