//! CRI log records, the format kubelet writes and `podctl logs` reads: one record per line,
//! `<RFC 3339 UTC, nanoseconds> <stdout|stderr> <F|P> <text>`, `P` marking a piece of a line that
//! goes on in the next record. A plugin writes its members' output into the `log_path` it is given
//! with [`open_sink`] and a [`RecordWriter`] per stream.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Longest text in one record; longer lines are split into `P` records, as kubelet does.
pub const MAX_RECORD: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The log file of one run, shared by the pumps of its two streams (records are written whole).
pub type Sink = Arc<Mutex<File>>;

/// Opens (creating) a run's log file for appending records.
pub fn open_sink(path: &Path) -> io::Result<Sink> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)?;
    Ok(Arc::new(Mutex::new(file)))
}

/// Writes one record stamped now.
pub fn write_record(sink: &Sink, stream: Stream, partial: bool, text: &[u8]) -> io::Result<()> {
    let time = humantime::format_rfc3339_nanos(SystemTime::now());
    let tag = if partial { 'P' } else { 'F' };
    let mut record = Vec::with_capacity(text.len() + 48);
    write!(record, "{time} {} {tag} ", stream.as_str())?;
    record.extend_from_slice(text);
    record.push(b'\n');
    // One write per record on an O_APPEND file: records of the two streams never interleave.
    let file = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    (&*file).write_all(&record)
}

/// Cuts one stream's bytes into records: one `F` record per line, `P` records for pieces of lines
/// longer than 16 KiB and for text left without a newline at the end.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn feed(&mut self, data: &[u8], stream: Stream, sink: &Sink) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &self.pending[start..];
            match rest.iter().position(|b| *b == b'\n') {
                Some(end) if end <= MAX_RECORD => {
                    write_record(sink, stream, false, &rest[..end])?;
                    start += end + 1;
                }
                _ if rest.len() >= MAX_RECORD => {
                    write_record(sink, stream, true, &rest[..MAX_RECORD])?;
                    start += MAX_RECORD;
                }
                _ => break,
            }
        }
        self.pending.drain(..start);
        Ok(())
    }

    pub fn finish(&mut self, stream: Stream, sink: &Sink) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rest = std::mem::take(&mut self.pending);
        write_record(sink, stream, true, &rest)
    }
}

/// One stream of a program run in this process (a WASM member) written as records: each write is
/// cut into lines as it comes, with no pipe, thread or task in between. What is left without a
/// newline is written as a `P` record when the writer is dropped.
pub struct RecordWriter {
    splitter: LineSplitter,
    stream: Stream,
    sink: Sink,
}

impl RecordWriter {
    pub fn new(stream: Stream, sink: Sink) -> Self {
        RecordWriter {
            splitter: LineSplitter::default(),
            stream,
            sink,
        }
    }
}

impl Write for RecordWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.splitter.feed(buf, self.stream, &self.sink)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        let _ = self.splitter.finish(self.stream, &self.sink);
    }
}
