use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Started by containerd's shim as the log driver where podctl-log-driver is missing: its
    // arguments are the log URI's query pairs, in no set order, so they bypass the CLI.
    if let Some(code) = podctl::logs::driver::run_if_invoked() {
        return code;
    }
    if let Some(code) = podctl::logs::relay::run_if_invoked() {
        return code;
    }
    let cli = podctl::cli::Cli::parse();
    match podctl::app::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
