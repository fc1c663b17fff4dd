//! CRI log records, the format kubelet writes and `podctl logs` reads: one record per line,
//! `<RFC 3339 UTC, nanoseconds> <stdout|stderr> <F|P> <text>`, `P` marking a piece of a line that
//! goes on in the next record. A plugin writes its members' output into the `log_path` it is given
//! with [`open_sink`] and a [`RecordWriter`] per stream.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
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

/// When a run's log file is rotated, as kubelet's `containerLogMaxSize` and
/// `containerLogMaxFiles` say: past `max_bytes` the file becomes `PATH.1` (`.1` becomes `.2`,
/// and so on), keeping `max_files` files in all. `max_bytes` 0: never.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rotation {
    pub max_bytes: u64,
    pub max_files: u32,
}

impl Default for Rotation {
    /// kubelet's defaults: 10 MiB, 5 files.
    fn default() -> Self {
        Rotation {
            max_bytes: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

impl Rotation {
    /// What a member's protocol fields ask for (none given: the defaults).
    pub fn of(member: &crate::Member) -> Rotation {
        match member.log_max_bytes {
            0 => Rotation::default(),
            max_bytes => Rotation {
                max_bytes,
                max_files: member.log_max_files.max(1),
            },
        }
    }
}

/// A run's log file, rotated as its [`Rotation`] says.
pub struct LogFile {
    file: File,
    path: PathBuf,
    written: u64,
    rotation: Rotation,
}

impl LogFile {
    fn rotate(&mut self) -> io::Result<()> {
        let rotated = |k: u32| PathBuf::from(format!("{}.{k}", self.path.display()));
        let keep = self.rotation.max_files.saturating_sub(1);
        if keep == 0 {
            self.file.set_len(0)?;
            self.written = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(rotated(keep));
        for k in (1..keep).rev() {
            let _ = std::fs::rename(rotated(k), rotated(k + 1));
        }
        std::fs::rename(&self.path, rotated(1))?;
        self.file = open_append(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

/// The log file of one run, shared by the pumps of its two streams (records are written whole).
pub type Sink = Arc<Mutex<LogFile>>;

fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// Opens (creating) a run's log file for appending records, rotated with kubelet's defaults.
pub fn open_sink(path: &Path) -> io::Result<Sink> {
    open_rotating_sink(path, Rotation::default())
}

/// Opens (creating) a run's log file, rotated as `rotation` says (a member's: [`Rotation::of`]).
pub fn open_rotating_sink(path: &Path, rotation: Rotation) -> io::Result<Sink> {
    let file = open_append(path)?;
    let written = file.metadata()?.len();
    Ok(Arc::new(Mutex::new(LogFile {
        file,
        path: path.to_path_buf(),
        written,
        rotation,
    })))
}

/// Writes one record stamped now.
pub fn write_record(sink: &Sink, stream: Stream, partial: bool, text: &[u8]) -> io::Result<()> {
    let time = humantime::format_rfc3339_nanos(SystemTime::now());
    let tag = if partial { 'P' } else { 'F' };
    let mut record = Vec::with_capacity(text.len() + 48);
    write!(record, "{time} {} {tag} ", stream.as_str())?;
    record.extend_from_slice(text);
    record.push(b'\n');
    let mut log = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let limit = log.rotation.max_bytes;
    if limit > 0 && log.written > 0 && log.written + record.len() as u64 > limit {
        log.rotate()?;
    }
    // One write per record on an O_APPEND file: records of the two streams never interleave.
    log.file.write_all(&record)?;
    log.written += record.len() as u64;
    Ok(())
}

/// The files of a run's log in the order they were written: `PATH.N` ... `PATH.1`, then `PATH`.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut k = 1;
    loop {
        let rotated = PathBuf::from(format!("{}.{k}", path.display()));
        if !rotated.exists() {
            break;
        }
        files.push(rotated);
        k += 1;
    }
    files.reverse();
    files.push(path.to_path_buf());
    files
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

    /// Bytes of an unfinished line are waiting for their newline.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes what is left without a newline as a `P` record (at the stream's end, or when it has
    /// been quiet: the next record continues the line).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_past_its_size_is_rotated_keeping_max_files() {
        let dir = std::env::temp_dir().join(format!("cri-log-rotation-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("0.log");
        let sink = open_rotating_sink(
            &path,
            Rotation {
                max_bytes: 1000,
                max_files: 3,
            },
        )
        .unwrap();
        for i in 0..100 {
            write_record(&sink, Stream::Stdout, false, format!("line {i:03}").as_bytes()).unwrap();
        }
        let files = rotated_files(&path);
        assert_eq!(files.len(), 3, "{files:?}");
        assert_eq!(files[0], dir.join("0.log.2"));
        let sizes: Vec<u64> = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).collect();
        assert!(sizes.iter().all(|s| *s <= 1000), "{sizes:?}");
        let all: String = files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
        assert!(
            all.ends_with("line 099\n") && !all.contains("line 000"),
            "oldest records dropped"
        );
        let numbers: Vec<u32> = all.lines().map(|l| l[l.len() - 3..].parse().unwrap()).collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "in order across files");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
