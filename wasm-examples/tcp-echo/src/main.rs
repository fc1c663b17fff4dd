//! `tcp-echo` — a wasm32-wasip2 command (a component exporting `wasi:cli/run`) that serves TCP
//! through `std::net::TcpListener`, which on wasip2 is backed by `wasi:sockets`.
//!
//! Listens on `0.0.0.0:$PORT` (default 8082). Per connection it reads one line and answers
//! `echo: <line>`, then closes the connection. Connections are served one at a time (wasip2 has
//! no threads); a client that sends nothing for 10 s is dropped so it cannot block the others.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const DEFAULT_PORT: u16 = 8082;
const MAX_LINE: u64 = 64 * 1024;
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let port = match std::env::var("PORT") {
        Ok(p) => match p.trim().parse::<u16>() {
            Ok(p) => p,
            Err(_) => {
                eprintln!("tcp-echo: PORT must be a port number, got {p:?}");
                std::process::exit(2);
            }
        },
        Err(_) => DEFAULT_PORT,
    };
    let addr = format!("0.0.0.0:{port}");
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tcp-echo: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    say(&format!("tcp-echo listening on {local}"));

    for conn in listener.incoming() {
        match conn {
            Ok(stream) => match serve(stream) {
                Ok(()) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    eprintln!("tcp-echo: client sent no line within {IDLE_TIMEOUT:?}; dropped it")
                }
                Err(e) => eprintln!("tcp-echo: connection error: {e}"),
            },
            Err(e) => eprintln!("tcp-echo: accept failed: {e}"),
        }
    }
}

fn serve(stream: TcpStream) -> std::io::Result<()> {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
    // Best effort: not every WASI host implements socket timeouts.
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let mut line = Vec::new();
    BufReader::new((&stream).take(MAX_LINE)).read_until(b'\n', &mut line)?;
    let line = String::from_utf8_lossy(&line);
    let text = line.trim_end_matches(['\r', '\n']);
    say(&format!("tcp-echo: {peer}: {text:?}"));
    let mut writer = &stream;
    writer.write_all(format!("echo: {text}\n").as_bytes())?;
    writer.flush()?;
    Ok(())
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
