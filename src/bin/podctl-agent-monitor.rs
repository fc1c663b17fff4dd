//! `podctl-agent-monitor --podctl PODCTL --pod-dir DIR`: the pod agent's monitor (see
//! `podctl::agent::daemon::monitor`). A binary of its own because one runs per pod: it links only the
//! monitor's loop, not the rest of podctl, so an OCI-only pod costs less memory.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let (podctl, pod_dir) = match args.as_slice() {
        [a, podctl, b, dir] if a == "--podctl" && b == "--pod-dir" => (PathBuf::from(podctl), PathBuf::from(dir)),
        _ => {
            eprintln!("usage: podctl-agent-monitor --podctl PODCTL --pod-dir DIR (podctl starts it for each pod)");
            return ExitCode::from(2);
        }
    };
    match podctl::agent::daemon::monitor::run(&pod_dir, &podctl) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
