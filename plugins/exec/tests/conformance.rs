//! The exec plugin against podctl-plugin's conformance suite.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use podctl_plugin::conformance::{check, Samples};

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn the_exec_plugin_passes_the_conformance_suite() {
    let dir = std::env::temp_dir().join(format!("podctl-runtime-exec-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The member's environment is only what it is given: no PATH, so programs by absolute path.
    let runs = script(&dir, "runs", "echo ready\nexec /bin/sleep 600");
    let exits = script(&dir, "exits", "echo bye >&2\nexit 3");
    let not_executable = dir.join("plain-file");
    std::fs::write(&not_executable, "not a program").unwrap();
    let samples = Samples::new(&dir, &runs, &exits, 3, not_executable.to_str().unwrap());
    let passed = check(Path::new(env!("CARGO_BIN_EXE_podctl-runtime-exec")), &samples)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(passed.len(), 10, "{passed:?}");
    let log = std::fs::read_to_string(dir.join("exits.log")).unwrap();
    assert!(log.contains(" stderr F bye"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}
