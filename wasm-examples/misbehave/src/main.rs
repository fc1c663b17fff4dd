//! `misbehave` — a wasm32-wasip1 core module for podctl's resource-limit and sandbox tests.
//!
//! Mode from argv[1]:
//! - `bomb`: allocates (and touches) 1 MiB chunks forever, printing progress every 16 MiB. If an
//!   allocation fails (memory.grow refused), prints `bomb: allocation failed after N MiB` and
//!   exits 12.
//! - `spin`: prints `spinning`, then busy-loops forever (for fuel/epoch/CPU-time limits).
//! - `read PATH`: `read ok: N bytes` and exit 0, or `read denied: <error>` and exit 13.
//! - `write PATH`: `write ok: N bytes` and exit 0, or `write denied: <error>` and exit 14.
//!
//! Anything else prints a usage line and exits 2.

use std::hint::black_box;
use std::io::Write;
use std::process::exit;

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("bomb"), _) => bomb(),
        (Some("spin"), _) => spin(),
        (Some("read"), Some(path)) => read(path),
        (Some("write"), Some(path)) => write(path),
        _ => {
            eprintln!("usage: misbehave bomb | spin | read PATH | write PATH");
            exit(2);
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn bomb() -> ! {
    say("bomb: allocating 1 MiB chunks until something stops me");
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk: Vec<u8> = Vec::new();
        if chunk.try_reserve_exact(MIB).is_err() || hoard.try_reserve(1).is_err() {
            say(&format!("bomb: allocation failed after {} MiB", hoard.len()));
            exit(12);
        }
        // Touch every page so the memory is really committed on the host.
        chunk.resize(MIB, 0);
        for i in (0..MIB).step_by(PAGE) {
            chunk[i] = (hoard.len() as u8) | 1;
        }
        hoard.push(black_box(chunk));
        if hoard.len().is_multiple_of(16) {
            say(&format!("bomb: {} MiB allocated", hoard.len()));
        }
    }
}

fn spin() -> ! {
    say("spinning");
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn read(path: &str) -> ! {
    match std::fs::read(path) {
        Ok(data) => {
            say(&format!("read ok: {} bytes", data.len()));
            exit(0);
        }
        Err(e) => {
            say(&format!("read denied: {e}"));
            exit(13);
        }
    }
}

fn write(path: &str) -> ! {
    let data = b"misbehave was here\n";
    match std::fs::write(path, data) {
        Ok(()) => {
            say(&format!("write ok: {} bytes", data.len()));
            exit(0);
        }
        Err(e) => {
            say(&format!("write denied: {e}"));
            exit(14);
        }
    }
}
