//! Runs one WASM member by hand, the way the pod agent does (for trying guests without a pod):
//!
//! ```text
//! cargo run -p podctl-wasmtime --example run_member -- FILE [--port N] [--memory BYTES] [--cpu MILLIS]
//!     [--env K=V]... [--dir HOST:GUEST[:ro]]... [--log PATH] [--cache DIR] [-- ARGV...]
//! ```
//!
//! The log (default `./<file stem>.log`; `--log -`: this terminal) gets the guest's stdout and stderr. Ctrl-C stops the
//! member with a 5 s grace; the exit info is printed as it ends.

use std::path::PathBuf;
use std::time::Duration;

use podctl_wasmtime::{HostConfig, MemberSpec, Output, Preopen, WasmHost};

fn usage() -> ! {
    eprintln!(
        "usage: run_member FILE [--port N] [--memory BYTES] [--cpu MILLIS] [--env K=V]... \
         [--dir HOST:GUEST[:ro]]... [--log PATH] [--cache DIR] [-- ARGV...]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let file = PathBuf::from(args.next().unwrap_or_else(|| usage()));
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("member")
        .to_string();
    let mut spec = MemberSpec {
        name: name.clone(),
        output: Output::File(PathBuf::from(format!("{name}.log"))),
        ..Default::default()
    };
    let mut cache_dir = None;
    let mut argv = vec![name.clone()];
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--port" => spec.http_port = Some(value().parse().unwrap_or_else(|_| usage())),
            "--memory" => spec.memory_limit = Some(value().parse().unwrap_or_else(|_| usage())),
            "--cpu" => spec.cpu_limit_millis = Some(value().parse().unwrap_or_else(|_| usage())),
            "--log" => {
                spec.output = match value().as_str() {
                    "-" => Output::stdio(),
                    path => Output::File(path.into()),
                }
            }
            "--cache" => cache_dir = Some(PathBuf::from(value())),
            "--env" => {
                let kv = value();
                let (k, v) = kv.split_once('=').unwrap_or_else(|| usage());
                spec.env.push((k.into(), v.into()));
            }
            "--dir" => {
                let d = value();
                let mut parts = d.splitn(3, ':');
                let host = parts.next().unwrap_or_else(|| usage());
                let guest = parts.next().unwrap_or(host);
                let read_only = parts.next() == Some("ro");
                spec.preopens.push(Preopen {
                    host: host.into(),
                    guest: guest.into(),
                    read_only,
                });
            }
            "--" => {
                argv.extend(args.by_ref());
                break;
            }
            _ => usage(),
        }
    }
    spec.args = argv;

    let bytes = std::fs::read(&file).unwrap_or_else(|e| {
        eprintln!("{}: {e}", file.display());
        std::process::exit(1)
    });
    let host = WasmHost::new(HostConfig { cache_dir }).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let program = host.load_named(&name, &bytes).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    eprintln!(
        "{name}: {:?} {} loaded in {:?} (cache hit: {})",
        program.kind, program.digest, program.load_time, program.cache_hit
    );
    let log = match &spec.output {
        Output::File(path) => path.clone(),
        Output::Writers { .. } => PathBuf::from("<stdout and stderr>"),
    };
    let member = host.start(&program, spec).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    eprintln!("{name}: {:?}, log {}", member.status(), log.display());
    let info = tokio::select! {
        info = member.wait() => info,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("{name}: stopping (5 s grace)");
            member.stop(Duration::from_secs(5));
            member.wait().await
        }
    };
    eprintln!("{name}: exited: {info:?}");
    std::process::exit(if info.code == 0 { 0 } else { 1 });
}
