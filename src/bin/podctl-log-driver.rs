//! `podctl-log-driver log-driver PATH`: containerd's binary log driver for podctl's members (see
//! `podctl::logs::driver`). A binary of its own because one runs per running member: it links only
//! the log writer, not the rest of podctl.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let path = match args.as_slice() {
        [flag, path] if flag == "log-driver" => std::path::PathBuf::from(path),
        _ => {
            eprintln!(
                "usage: podctl-log-driver log-driver PATH (containerd's shim starts it for a `binary://` log URI)"
            );
            return ExitCode::from(2);
        }
    };
    match podctl::logs::driver::run(&path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
