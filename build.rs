//! Compiles the programs that podctl ships inside its built-in images (`images/*.rs`: the pod
//! sandbox's `pause` and the `echoserver`) into static binaries in `$OUT_DIR`, which
//! `src/image/builtin.rs` embeds with `include_bytes!`.
//!
//! They are built by invoking `$RUSTC` directly rather than as cargo targets: they must be
//! static (they run as the only file of an otherwise empty rootfs), std-only, and independent of
//! however the outer crate is being built (profile, RUSTFLAGS, clippy, cross target).

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The images are `linux/amd64`; their programs are always built for this target.
const PAYLOAD_TARGET: &str = "x86_64-unknown-linux-gnu";

/// (source under the crate root, output name in `$OUT_DIR`)
const PROGRAMS: &[(&str, &str)] = &[("images/pause.rs", "pause"), ("images/echoserver.rs", "echoserver")];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for (source, _) in PROGRAMS {
        println!("cargo:rerun-if-changed={source}");
    }

    let target = env::var("TARGET").unwrap_or_default();
    if !(target.starts_with("x86_64-") && target.contains("-linux-")) {
        panic!(
            "podctl embeds static x86_64 Linux binaries (pause, echoserver) built for \
             {PAYLOAD_TARGET}; building podctl for target {target:?} is not supported"
        );
    }

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    // Cargo resolves the compiler into RUSTC for build scripts; wrappers (clippy-driver,
    // sccache) are deliberately not used for the payloads.
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());

    // Both compiles run concurrently; each takes a few seconds.
    let children: Vec<(&str, Child)> = PROGRAMS
        .iter()
        .map(|(source, name)| {
            let child = spawn_rustc(&rustc, &manifest_dir.join(source), &out_dir.join(name));
            (*source, child)
        })
        .collect();

    let mut failures = Vec::new();
    for (source, child) in children {
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for rustc compiling {source}: {e}"));
        if !output.status.success() {
            failures.push(format!(
                "rustc failed ({}) compiling {source} for {PAYLOAD_TARGET} \
                 (static, +crt-static):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
            ));
        }
    }
    if !failures.is_empty() {
        panic!(
            "building podctl's embedded image programs failed (needs the {PAYLOAD_TARGET} \
             standard library and a C toolchain with static glibc, e.g. libc6-dev):\n\n{}",
            failures.join("\n\n")
        );
    }
}

fn spawn_rustc(rustc: &std::ffi::OsStr, source: &Path, output: &Path) -> Child {
    let mut cmd = Command::new(rustc);
    cmd.args(["--edition", "2021", "--crate-type", "bin"])
        .args(["-C", "opt-level=s"])
        .args(["-C", "panic=abort"])
        .args(["-C", "strip=symbols"])
        .args(["-C", "codegen-units=1"])
        .args(["-C", "target-feature=+crt-static"])
        .args(["--target", PAYLOAD_TARGET])
        .arg("-o")
        .arg(output)
        .arg(source)
        // Keep rustc's temporaries next to the output, not in the crate directory.
        .current_dir(output.parent().unwrap_or(Path::new(".")))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The outer build's flags (RUSTFLAGS reach cargo, not rustc, but be explicit) must not
    // leak in: the payloads are built the same way whatever the outer profile or target.
    cmd.env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot run rustc ({rustc:?}) to compile {source:?}: {e}"))
}
