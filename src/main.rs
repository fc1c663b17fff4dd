use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = podctl::cli::Cli::parse();
    match podctl::app::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
