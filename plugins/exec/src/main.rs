//! `podctl-runtime-exec`: runs host executables as pod members (see `runtime.rs`).

mod runtime;

fn main() -> std::process::ExitCode {
    podctl_plugin::run(runtime::Exec::default())
}
