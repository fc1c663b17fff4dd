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
    // A server: it listens on a port until stopped (perl-base is part of every Debian).
    let port = 20000 + (std::process::id() % 20000) as u16;
    let runs = script(
        &dir,
        "runs",
        &format!("echo ready\nexec /usr/bin/perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => \"127.0.0.1\", LocalPort => {port}, Listen => 5, ReuseAddr => 1) or die \"$!\"; while (accept(my $c, $s)) {{ close $c }}'"),
    );
    // It exits once told to (a file appears), as a server ends on a request.
    let go = dir.join("go");
    let _ = std::fs::remove_file(&go);
    let exits = script(
        &dir,
        "exits",
        &format!(
            "echo bye >&2\nwhile [ ! -e {} ]; do /bin/sleep 0.05; done\nexit 3",
            go.display()
        ),
    );
    let sees = script(
        &dir,
        "sees",
        "echo \"$PODCTL_CONFORMANCE_TOKEN\"\necho \"$PODCTL_CONFORMANCE_TOKEN\" > \"$PODCTL_CONFORMANCE_DIR/token\"",
    );
    let not_executable = dir.join("plain-file");
    std::fs::write(&not_executable, "not a program").unwrap();
    // exec does not remap paths: the volume's guest path is its host path.
    let samples = Samples::new(&dir, &runs, &exits, 3, not_executable.to_str().unwrap())
        .with_port(port)
        .with_env_and_volume(&sees, None)
        .with_exit_trigger(move || std::fs::write(&go, "").unwrap());
    let passed = check(Path::new(env!("CARGO_BIN_EXE_podctl-runtime-exec")), &samples)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(passed.len(), 12, "{passed:?}");
    assert!(
        passed.contains(&"port") && passed.contains(&"env and volumes"),
        "{passed:?}"
    );
    let log = std::fs::read_to_string(dir.join("exits.log")).unwrap();
    assert!(log.contains(" stderr F bye"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}
