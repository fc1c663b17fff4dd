//! The binary answers `-v` as containerd shims do (containerd runs `<shim> -v` when it reports
//! runtimes). Being an integration test also makes `cargo test --workspace` build the binary that
//! tests/node in the root package installs on its containerd's PATH.

#[test]
fn the_shim_reports_its_name_and_version() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_containerd-shim-podctl-v1"))
        .arg("-v")
        .output()
        .expect("the shim runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("containerd-shim-podctl-v1"), "{text}");
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}
