//! podctl-runtime-wasmtime against podctl-plugin's conformance suite, with WAT modules.

use std::path::Path;

use podctl_plugin::conformance::{check, Samples};

/// Prints "ready", then spins until the host interrupts it (epoch interruption).
const RUNS: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ready\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop $spin (br $spin))))"#;

const EXITS: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))"#;

#[tokio::test]
async fn the_wasmtime_plugin_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let runs = write("runs.wat", RUNS);
    let exits = write("exits.wat", EXITS);
    let invalid = write("invalid.wasm", "not WebAssembly");
    // The plugin process inherits this: its AOT cache stays in the test's directory.
    std::env::set_var("PODCTL_WASM_CACHE_DIR", dir.path().join("cache"));
    let samples = Samples::new(&dir.path().join("run"), &runs, &exits, 3, &invalid);
    let passed = check(Path::new(env!("CARGO_BIN_EXE_podctl-runtime-wasmtime")), &samples)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(passed.len(), 10, "{passed:?}");
}
