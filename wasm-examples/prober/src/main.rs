//! `prober` — a wasm32-wasip2 command (a component exporting `wasi:cli/run`) that probes an HTTP
//! server over plain TCP with `std::net::TcpStream` (backed by `wasi:sockets` on wasip2).
//!
//! Every `$INTERVAL_MS` ms (default 1000) it connects to `$TARGET` (default `localhost:8080`),
//! sends `GET /from-prober HTTP/1.1`, and prints the status line and the first `$LINES`
//! (default 12) non-blank lines of the body to stdout. A failed probe prints `prober: <error>`
//! and the loop goes on. With `$COUNT` set it stops after that many probes and exits 0 if at
//! least one of them succeeded, 1 otherwise.
//!
//! Host names are resolved with `wasi:sockets/ip-name-lookup`. If the host grants no name lookup
//! and the target host is `localhost`, the prober says so once and falls back to 127.0.0.1.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

const PATH: &str = "/from-prober";
const MAX_RESPONSE: u64 = 1 << 20;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "localhost:8080".to_string());
    let interval = env_number("INTERVAL_MS").unwrap_or(1000);
    let count = env_number("COUNT");
    let lines = env_number("LINES").unwrap_or(12) as usize;

    say(&format!("prober: probing http://{target}{PATH} every {interval} ms"));
    let mut fallback_noted = false;
    let mut successes = 0u64;
    let mut n = 0u64;
    loop {
        n += 1;
        match probe(&target, lines, &mut fallback_noted) {
            Ok(report) => {
                successes += 1;
                say(&format!("probe {n}: {report}"));
            }
            Err(e) => say(&format!("prober: {e}")),
        }
        if count.is_some_and(|c| n >= c) {
            std::process::exit(if successes > 0 { 0 } else { 1 });
        }
        std::thread::sleep(Duration::from_millis(interval));
    }
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => {
            eprintln!("prober: ignoring {name}={value:?} (not a number)");
            None
        }
    }
}

fn say(text: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Resolves `target` (`host:port`), falling back to 127.0.0.1 for `localhost`.
fn resolve(target: &str, fallback_noted: &mut bool) -> io::Result<Vec<SocketAddr>> {
    match target.to_socket_addrs() {
        Ok(addrs) => Ok(addrs.collect()),
        Err(e) => {
            let port = target.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
            match port {
                Some(("localhost", Ok(port))) => {
                    if !*fallback_noted {
                        say(&format!("prober: cannot resolve localhost ({e}); using 127.0.0.1"));
                        *fallback_noted = true;
                    }
                    Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
                }
                _ => Err(io::Error::new(e.kind(), format!("cannot resolve {target}: {e}"))),
            }
        }
    }
}

fn probe(target: &str, max_lines: usize, fallback_noted: &mut bool) -> io::Result<String> {
    let addrs = resolve(target, fallback_noted)?;
    let stream =
        TcpStream::connect(&addrs[..]).map_err(|e| io::Error::new(e.kind(), format!("connect {target}: {e}")))?;
    // Best effort: a WASI host may not implement socket timeouts.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));

    let request = format!(
        "GET {PATH} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: podctl-prober/0.1\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    (&stream).write_all(request.as_bytes())?;

    let mut reader = BufReader::new((&stream).take(MAX_RESPONSE));
    let mut status = String::new();
    if reader.read_line(&mut status)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status = status.trim_end().to_string();

    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            break;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().ends_with("chunked");
            }
        }
    }

    let body = if chunked {
        read_chunked(&mut reader)?
    } else if let Some(len) = content_length {
        let mut body = Vec::new();
        (&mut reader).take(len).read_to_end(&mut body)?;
        body
    } else {
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        body
    };

    let body = String::from_utf8_lossy(&body);
    let mut report = status;
    for line in body.lines().filter(|l| !l.trim().is_empty()).take(max_lines) {
        report.push_str("\n    ");
        report.push_str(line.trim_end());
    }
    Ok(report)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        if reader.read_line(&mut size_line)? == 0 {
            return Ok(body);
        }
        let size_hex = size_line.trim().split(';').next().unwrap_or("");
        let size = u64::from_str_radix(size_hex, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            return Ok(body);
        }
        reader.take(size).read_to_end(&mut body)?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}
