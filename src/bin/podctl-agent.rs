//! `podctl-agent agent run --pod-dir DIR`: the per-pod agent (see `podctl::agent::daemon`), with
//! the same arguments as `podctl agent run`. A binary of its own because one runs per pod: it
//! links only the agent, so its relocated data and heap stay small (issue 13's lean agent).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let pod_dir = match args.as_slice() {
        [agent, run, flag, dir] if agent == "agent" && run == "run" && flag == "--pod-dir" => PathBuf::from(dir),
        _ => {
            eprintln!("usage: podctl-agent agent run --pod-dir DIR (the agent's monitor starts it for each pod)");
            return ExitCode::from(2);
        }
    };
    match podctl::agent::daemon::run(&pod_dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
