//! `podctl-log-driver log-driver PATH`: containerd's binary log driver for podctl's members (see
//! `podctl::logs::driver`), and `podctl-log-driver relay DIR ...`, the relay of a member with stdin
//! or tty (`podctl::logs::relay`). A binary of its own because one runs per running member: it links only
//! the log writer, not the rest of podctl.

use std::process::ExitCode;

fn main() -> ExitCode {
    // `relay DIR ...`: the stdio relay of a member with stdin or tty (`podctl::logs::relay`).
    if let Some(code) = podctl::logs::relay::run_if_invoked() {
        return code;
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Some((path, rotation)) = podctl::logs::driver::parse_args(&args) else {
        eprintln!(
            "usage: podctl-log-driver log-driver PATH [max-size BYTES] [max-files N] (containerd's shim starts it for a `binary://` log URI)"
        );
        return ExitCode::from(2);
    };
    match podctl::logs::driver::run(&path, rotation) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
