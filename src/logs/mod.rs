//! Member logs in the CRI format kubelet writes: one record per line,
//! `<RFC 3339 UTC, nanoseconds> <stdout|stderr> <F|P> <text>`, `P` marking a piece of a line that
//! goes on in the next record. The writer (`podctl_plugin::cri_log`, used by the shim's log driver
//! for OCI members and by member plugins) is re-exported here; this module owns the run files and
//! the reader behind `podctl logs` (`--timestamps`, `--tail`, `-f`), the init-failure message, and
//! members' termination messages (their file, or the end of their log).

pub mod driver;
pub mod relay;

use std::path::{Path, PathBuf};

// The writer is the plugin crate's, so plugins write the records podctl reads.
pub use podctl_plugin::cri_log::{
    open_rotating_sink, open_sink, rotated_files, write_record, LineSplitter, RecordWriter, Rotation, Sink, Stream,
    MAX_RECORD,
};

/// A member's runs each log to a file of their own in its log directory: `<run>.log`, the run
/// counting its restarts (`logs --previous` reads the one before).
pub fn run_file(dir: &Path, run: u32) -> PathBuf {
    dir.join(format!("{run}.log"))
}

/// The run a log file belongs to, from its name.
pub fn run_of(path: &Path) -> Option<u32> {
    path.file_name()?.to_str()?.strip_suffix(".log")?.parse().ok()
}

/// The file of the run `offset` runs after (or before) the one `path` belongs to.
pub fn other_run(path: &Path, offset: i64) -> Option<PathBuf> {
    let run = u32::try_from(i64::from(run_of(path)?) + offset).ok()?;
    Some(run_file(path.parent()?, run))
}

/// One parsed record.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub time: &'a str,
    pub stream: Stream,
    pub partial: bool,
    pub text: &'a [u8],
}

/// Parses one line of a log file (without its newline); `None` if it is not a CRI record.
pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?;
    humantime::parse_rfc3339(time).ok()?;
    let stream = match fields.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match fields.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    Some(Record {
        time,
        stream,
        partial,
        text: fields.next().unwrap_or_default(),
    })
}

/// Turns log lines back into what the program wrote, optionally prefixing each line with the time
/// it was logged (`kubectl logs --timestamps`). Lines that are not records (logs of an older
/// podctl) pass through as they are.
#[derive(Debug)]
pub struct Renderer {
    timestamps: bool,
    /// The last record was partial: the next one continues its line, without a new prefix.
    in_line: bool,
    /// `--since`, `--since-time`: records logged before this are left out.
    since: Option<std::time::SystemTime>,
    /// `--prefix`: `[pod/NAME/CONTAINER] ` before each line.
    prefix: Option<String>,
    /// The line under way is left out (it began before `since`).
    skipping: bool,
}

impl Renderer {
    pub fn new(timestamps: bool) -> Self {
        Renderer {
            timestamps,
            in_line: false,
            since: None,
            prefix: None,
            skipping: false,
        }
    }

    /// Leaves out what was logged before `since`.
    pub fn since(mut self, since: Option<std::time::SystemTime>) -> Self {
        self.since = since;
        self
    }

    /// Starts each line with `prefix`.
    pub fn prefix(mut self, prefix: Option<String>) -> Self {
        self.prefix = prefix;
        self
    }

    /// Renders one line of the file (without its newline) into `out`.
    pub fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        match parse_record(line) {
            Some(record) => {
                if !self.in_line {
                    let logged = humantime::parse_rfc3339(record.time).ok();
                    self.skipping = matches!((self.since, logged), (Some(since), Some(at)) if at < since);
                }
                if !self.skipping {
                    if !self.in_line {
                        if let Some(prefix) = &self.prefix {
                            out.extend_from_slice(prefix.as_bytes());
                        }
                        if self.timestamps {
                            out.extend_from_slice(record.time.as_bytes());
                            out.push(b' ');
                        }
                    }
                    out.extend_from_slice(record.text);
                    if !record.partial {
                        out.push(b'\n');
                    }
                }
                self.in_line = record.partial;
            }
            None => {
                if let Some(prefix) = &self.prefix {
                    out.extend_from_slice(prefix.as_bytes());
                }
                out.extend_from_slice(line);
                out.push(b'\n');
                self.in_line = false;
            }
        }
    }

    /// Renders every complete line of `data` and returns how many bytes it used (the rest is an
    /// unfinished last line, for a follower to keep until it is complete).
    pub fn lines(&mut self, data: &[u8], out: &mut Vec<u8>) -> usize {
        let mut used = 0;
        while let Some(end) = data[used..].iter().position(|b| *b == b'\n') {
            self.line(&data[used..used + end], out);
            used += end + 1;
        }
        used
    }
}

/// A whole log file as the program wrote it (with a trailing unfinished line, if any).
pub fn render(data: &[u8], timestamps: bool) -> Vec<u8> {
    let mut renderer = Renderer::new(timestamps);
    let mut out = Vec::with_capacity(data.len());
    let used = renderer.lines(data, &mut out);
    if used < data.len() {
        renderer.line(&data[used..], &mut out);
    }
    out
}

/// The last `n` lines of rendered output.
pub fn tail(rendered: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = rendered.strip_suffix(b"\n").unwrap_or(rendered);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &rendered[i + 1..];
            }
        }
    }
    rendered
}

/// The host side of a member's termination message file (bind-mounted at its
/// `terminationMessagePath`), in the pod's state directory.
pub fn termination_file(state_dir: &std::path::Path, container: &str) -> PathBuf {
    state_dir.join("termination").join(container)
}

/// kubelet reads at most this much of a termination message (and of the log it falls back to).
const TERMINATION_MESSAGE_MAX: usize = 4096;

/// A run's termination message: its file, or under `FallbackToLogsOnError` after a failure with an
/// empty file, the end of its log (at most 80 lines), as kubelet does.
pub fn termination_message(file: &std::path::Path, fallback_log: Option<&std::path::Path>) -> Option<String> {
    let mut text = Vec::new();
    if let Ok(f) = std::fs::File::open(file) {
        let _ = std::io::Read::read_to_end(&mut std::io::Read::take(f, TERMINATION_MESSAGE_MAX as u64), &mut text);
    }
    let mut message = String::from_utf8_lossy(&text).into_owned();
    if message.is_empty() {
        if let Some(log) = fallback_log {
            let raw = std::fs::read(log).unwrap_or_default();
            let rendered = String::from_utf8_lossy(&render(&raw, false)).into_owned();
            let lines: Vec<&str> = rendered.lines().rev().take(80).collect();
            message = lines.into_iter().rev().collect::<Vec<_>>().join("\n");
            if message.len() > TERMINATION_MESSAGE_MAX {
                let cut = message.len() - TERMINATION_MESSAGE_MAX;
                let start = (cut..message.len()).find(|i| message.is_char_boundary(*i)).unwrap_or(0);
                message = message[start..].to_string();
            }
        }
    }
    (!message.is_empty()).then_some(message)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn pumped(input: &[u8], stream: Stream) -> String {
        let dir = std::env::temp_dir().join(format!("podctl-logs-{}-{:?}", std::process::id(), stream));
        let _ = std::fs::remove_file(&dir);
        let sink = open_sink(&dir).unwrap();
        RecordWriter::new(stream, sink).write_all(input).unwrap();
        let text = std::fs::read_to_string(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        text
    }

    #[test]
    fn lines_become_full_records_and_an_unfinished_end_a_partial_one() {
        let text = pumped(b"one\ntwo\nthree", Stream::Stderr);
        let records: Vec<Record> = text.lines().map(|l| parse_record(l.as_bytes()).unwrap()).collect();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].text, b"one");
        assert!(!records[0].partial);
        assert_eq!(records[0].stream, Stream::Stderr);
        assert_eq!(records[2].text, b"three");
        assert!(records[2].partial);
        assert!(
            records[0].time.ends_with('Z') && records[0].time.len() == 30,
            "{}",
            records[0].time
        );
        assert_eq!(render(text.as_bytes(), false), b"one\ntwo\nthree");
    }

    #[test]
    fn long_lines_are_split_and_joined_again() {
        let long = vec![b'x'; MAX_RECORD * 2 + 10];
        let mut input = long.clone();
        input.extend_from_slice(b"\nnext\n");
        let text = pumped(&input, Stream::Stdout);
        let tags: Vec<bool> = text
            .lines()
            .map(|l| parse_record(l.as_bytes()).unwrap().partial)
            .collect();
        assert_eq!(tags, [true, true, false, false]);
        let mut expected = long;
        expected.extend_from_slice(b"\nnext\n");
        assert_eq!(render(text.as_bytes(), false), expected);
        // One timestamp per line, not per piece.
        let stamped = String::from_utf8(render(text.as_bytes(), true)).unwrap();
        assert_eq!(stamped.matches("Z ").count(), 2, "{}", &stamped[..80]);
    }

    #[test]
    fn timestamps_prefix_each_line_and_old_lines_pass_through() {
        let file = b"2026-12-01T04:21:22.123456789Z stdout F hello\nplain old line\n";
        assert_eq!(
            render(file, true),
            b"2026-12-01T04:21:22.123456789Z hello\nplain old line\n"
        );
        assert_eq!(render(file, false), b"hello\nplain old line\n");
        assert!(parse_record(b"2026-12-01T04:21:22Z stdin F x").is_none());
        assert!(parse_record(b"yesterday stdout F x").is_none());
    }

    #[test]
    fn record_writers_cut_writes_into_lines_of_their_stream() {
        let path = std::env::temp_dir().join(format!("podctl-logs-{}-writers", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sink = open_sink(&path).unwrap();
        let mut stdout = RecordWriter::new(Stream::Stdout, sink.clone());
        let mut stderr = RecordWriter::new(Stream::Stderr, sink);
        stdout.write_all(b"out one\nout ").unwrap();
        stderr.write_all(b"err\n").unwrap();
        stdout.write_all(b"two\nno newline").unwrap();
        drop((stdout, stderr));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let records: Vec<(Stream, bool, Vec<u8>)> = text
            .lines()
            .map(|l| parse_record(l.as_bytes()).unwrap())
            .map(|r| (r.stream, r.partial, r.text.to_vec()))
            .collect();
        assert_eq!(
            records,
            [
                (Stream::Stdout, false, b"out one".to_vec()),
                (Stream::Stderr, false, b"err".to_vec()),
                (Stream::Stdout, false, b"out two".to_vec()),
                (Stream::Stdout, true, b"no newline".to_vec()),
            ]
        );
    }

    #[test]
    fn runs_are_numbered_files() {
        let dir = Path::new("/var/log/podctl/x/main");
        assert_eq!(run_file(dir, 3), dir.join("3.log"));
        assert_eq!(run_of(&dir.join("3.log")), Some(3));
        assert_eq!(run_of(&dir.join("agent.log")), None);
        assert_eq!(other_run(&dir.join("3.log"), -1), Some(dir.join("2.log")));
        assert_eq!(other_run(&dir.join("0.log"), -1), None);
    }

    #[test]
    fn tail_takes_the_last_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 1), b"c");
        assert_eq!(tail(b"a\n", 5), b"a\n");
        assert_eq!(tail(b"a\nb\n", 0), b"");
    }

    #[test]
    fn a_follower_keeps_an_unfinished_line() {
        let mut renderer = Renderer::new(false);
        let mut out = Vec::new();
        let data = b"2026-12-01T04:21:22.1Z stdout F a\n2026-12-01T04:21:22.2Z std";
        let used = renderer.lines(data, &mut out);
        assert_eq!(out, b"a\n");
        assert_eq!(&data[used..], b"2026-12-01T04:21:22.2Z std");
    }
}
