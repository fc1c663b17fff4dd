//! `hello` — the smallest podctl WASM member (wasm32-wasip1 core module).
//!
//! Prints `hello from WASM`, its arguments and `$GREETING` to stdout, one line to stderr, and
//! exits with the code given by `--exit N` (default 0). It needs no WASI capability beyond
//! stdio, args, env and exit.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();

    let mut exit: u8 = 0;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let value = if arg == "--exit" {
            match rest.next() {
                Some(v) => v.as_str(),
                None => {
                    eprintln!("hello: --exit needs a value");
                    return ExitCode::from(2);
                }
            }
        } else if let Some(v) = arg.strip_prefix("--exit=") {
            v
        } else {
            continue;
        };
        match value.parse::<u8>() {
            Ok(code) => exit = code,
            Err(_) => {
                eprintln!("hello: --exit needs a number 0-255, got {value:?}");
                return ExitCode::from(2);
            }
        }
    }

    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "hello from WASM");
    let _ = writeln!(out, "args: {args:?}");
    match std::env::var("GREETING") {
        Ok(greeting) => {
            let _ = writeln!(out, "GREETING={greeting}");
        }
        Err(_) => {
            let _ = writeln!(out, "GREETING is not set");
        }
    }
    let _ = out.flush();
    drop(out);

    eprintln!("hello: this line goes to stderr; exiting with {exit}");
    ExitCode::from(exit)
}
