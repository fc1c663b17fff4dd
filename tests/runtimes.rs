//! RuntimeClass handlers on a real containerd: a runtimes.toml handler whose BinaryName is a
//! wrapper this test writes (it records its arguments and execs runc) runs the pod's tasks, in
//! the sandbox's namespaces; an unknown runtimeClassName or a bad config creates nothing.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{ns_inode, TestEnv, BUSYBOX_IMAGE};

/// A runc wrapper that appends its arguments to `<dir>/wrapper.log`, and a runtimes.toml whose
/// handler `wrapped` runs tasks through it.
fn wrapped_runtime(env: &TestEnv) -> (PathBuf, PathBuf) {
    let log = env.dir.join("wrapper.log");
    let wrapper = env.dir.join("runc-wrapper");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\necho \"$*\" >> {}\nexec runc \"$@\"\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = env.dir.join("runtimes.toml");
    std::fs::write(
        &config,
        format!(
            "[runtimes.wrapped]\nruntime_type = \"io.containerd.runc.v2\"\n[runtimes.wrapped.options]\nBinaryName = \"{}\"\n\n[runtimes.wasm]\nplugin = \"wasmtime\"\n",
            wrapper.display()
        ),
    )
    .unwrap();
    (config, log)
}

fn sleeper(name: &str, class: Option<&str>, annotation: Option<&str>) -> String {
    let class = class.map(|c| format!("  runtimeClassName: {c}\n")).unwrap_or_default();
    let annotation = annotation
        .map(|a| format!("  annotations: {{podctl.io/runtime.main: {a}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{annotation}spec:\n{class}  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    command: [sleep, '3600']\n"
    )
}

/// Lines of the wrapper's log for `runc create` of container `id` (the last argument).
fn created_through_wrapper(log: &Path, id: &str) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .any(|line| line.contains(" create ") && line.contains("--bundle") && line.ends_with(&format!(" {id}")))
}

#[test]
fn a_runtime_class_handler_runs_the_pods_tasks_through_its_binary() {
    let env = require_env!("rt-handler");
    env.import_busybox();
    let (config, log) = wrapped_runtime(&env);
    let config = config.to_str().unwrap();

    let listed = env.ok(&["--runtime-config", config, "runtime", "ls"]);
    for needle in [
        "oci",
        "wasmtime",
        "wrapped",
        "containerd",
        "runc-wrapper",
        "plugin wasmtime",
        "runc version",
    ] {
        assert!(listed.contains(needle), "{needle:?} not in\n{listed}");
    }

    let manifest = env.manifest("wrapped.yaml", &sleeper("wrapped", Some("wrapped"), None));
    env.ok(&["--runtime-config", config, "create", "-f", &manifest]);
    env.wait_running("wrapped");
    let sandbox = env.sandbox_id("wrapped");
    let member = format!("{sandbox}-main");
    // Both the pause task and the member were created by the handler's binary.
    assert!(
        created_through_wrapper(&log, &sandbox),
        "sandbox {sandbox}:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        created_through_wrapper(&log, &member),
        "member {member}:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let pids = env.pids("wrapped");
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(
            ns_inode(pids[0], kind),
            ns_inode(pids[1], kind),
            "{kind} namespace shared with the sandbox"
        );
    }
    let described = env.ok(&["describe", "pod", "wrapped"]);
    assert!(described.contains("Running"), "{described}");
    // A restart by the agent keeps the handler: containerd keeps it on the record.
    let before = std::fs::read_to_string(&log).unwrap().lines().count();
    // SIGKILL from the host: the member's PID 1 ignores signals sent from inside its namespace.
    let killed = std::process::Command::new("kill")
        .args(["-9", &pids[1].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    env.wait_until(
        std::time::Duration::from_secs(30),
        "the member to be restarted through the wrapper",
        || {
            std::fs::read_to_string(&log)
                .unwrap()
                .lines()
                .skip(before)
                .any(|l| l.contains(" create ") && l.ends_with(&format!(" {member}")))
        },
    );
    env.delete_leaving_nothing("wrapped");

    // The per-container annotation may name a handler too: the member runs through it, the sandbox not.
    std::fs::write(&log, "").unwrap();
    let manifest = env.manifest("annotated.yaml", &sleeper("annotated", None, Some("wrapped")));
    env.ok(&["--runtime-config", config, "create", "-f", &manifest]);
    env.wait_running("annotated");
    let sandbox = env.sandbox_id("annotated");
    assert!(created_through_wrapper(&log, &format!("{sandbox}-main")));
    assert!(!created_through_wrapper(&log, &sandbox));
    env.delete_leaving_nothing("annotated");
}

#[test]
fn unknown_classes_and_bad_configs_are_clear_errors_that_create_nothing() {
    let env = require_env!("rt-errors");
    env.import_busybox();
    let (config, _) = wrapped_runtime(&env);
    let config = config.to_str().unwrap();
    let unknown = env.manifest("unknown.yaml", &sleeper("unknown", Some("gvisor"), None));
    env.fails_leaving_nothing(
        &["--runtime-config", config, "create", "-f", &unknown],
        &[
            "spec.runtimeClassName",
            "\"gvisor\"",
            "no handler",
            "runtimes.toml",
            "wasm, wrapped",
        ],
    );
    // Without a config (the default file is absent here) there are no handlers at all.
    env.fails_leaving_nothing(
        &["create", "-f", &unknown],
        &["spec.runtimeClassName", "handlers there: none"],
    );
    let bad_annotation = env.manifest("bad.yaml", &sleeper("bad", None, Some("crun")));
    env.fails_leaving_nothing(
        &["--runtime-config", config, "create", "-f", &bad_annotation],
        &["podctl.io/runtime.main", "`crun`", "oci", "wrapped"],
    );
    let broken = env.dir.join("broken.toml");
    std::fs::write(
        &broken,
        "[runtimes.fast]\nruntime_type = \"io.containerd.runc.v2\"\n[runtimes.fast.options]\nBinary = \"crun\"\n",
    )
    .unwrap();
    let fine = env.manifest("fine.yaml", &sleeper("fine", None, None));
    env.fails_leaving_nothing(
        &["--runtime-config", broken.to_str().unwrap(), "create", "-f", &fine],
        &["runtimes.fast.options.Binary", "not a runc shim option"],
    );
    let plugin = env.dir.join("plugin.toml");
    std::fs::write(&plugin, "[runtimes.wasi]\nplugin = \"wasmer\"\n").unwrap();
    env.fails_leaving_nothing(
        &["--runtime-config", plugin.to_str().unwrap(), "create", "-f", &fine],
        &["runtimes.wasi.plugin", "\"wasmer\"", "wasmtime"],
    );
    env.fails_leaving_nothing(
        &["--runtime-config", "/nonexistent/runtimes.toml", "create", "-f", &fine],
        &["/nonexistent/runtimes.toml"],
    );
}
