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

/// The exec plugin (`plugins/exec`, built next to podctl) as a third party's: `podctl-runtime-exec`
/// runs host executables inside the pod's namespaces.
fn exec_plugin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_podctl"))
        .parent()
        .unwrap()
        .join("podctl-runtime-exec")
}

fn hosted(name: &str, class: Option<&str>, annotation: Option<&str>, containers: &str) -> String {
    let class = class.map(|c| format!("  runtimeClassName: {c}\n")).unwrap_or_default();
    let annotation = annotation
        .map(|a| format!("  annotations: {{podctl.io/runtime.main: {a}}}\n"))
        .unwrap_or_default();
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{annotation}spec:\n{class}  terminationGracePeriodSeconds: 2\n  containers:\n{containers}")
}

#[test]
fn a_third_party_plugin_runs_members_picked_by_class_annotation_or_its_claims() {
    let env = require_env!("rt-plugin");
    assert!(
        exec_plugin().is_file(),
        "{} is built with podctl",
        exec_plugin().display()
    );
    let config = env.dir.join("runtimes.toml");
    std::fs::write(&config, "[runtimes.host]\nplugin = \"exec\"\n").unwrap();
    let config = config.to_str().unwrap();
    let listed = env.ok(&["--runtime-config", config, "runtime", "ls"]);
    for needle in ["exec", "plugin exec", "(podctl-runtime-exec)", "runtimeClassName"] {
        assert!(listed.contains(needle), "{needle:?} not in\n{listed}");
    }

    // runtimeClassName: every container runs in the plugin, in the pod's network and UTS.
    let containers = "  - name: web\n    image: /bin/busybox\n    command: [httpd, -f, -p, '8080', -h, /etc]\n    ports: [{containerPort: 8080, hostPort: 19380}]\n    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}\n  - name: greet\n    image: /bin/busybox\n    command: [sh, -c, 'echo hello from $(hostname); exec sleep 3600']\n";
    let manifest = env.manifest("hosted.yaml", &hosted("hosted", Some("host"), None, containers));
    env.ok(&["--runtime-config", config, "create", "-f", &manifest]);
    env.wait_running("hosted");
    let table = env.ok(&["get", "pods", "hosted"]);
    assert!(table.contains("2/2") && table.contains("Running"), "{table}");
    assert!(env
        .wait_for_log("hosted", "greet", "hello from hosted")
        .contains("hello from hosted"));
    let served = common::http(19380, "GET", "/hostname", "").unwrap();
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap();
    assert!(served.starts_with("HTTP/1.") && served.ends_with(&hostname), "{served}");
    let pids = env.pids("hosted");
    for member in &pids[1..] {
        for kind in ["net", "uts", "ipc"] {
            assert_eq!(
                ns_inode(pids[0], kind),
                ns_inode(*member, kind),
                "{kind} of pid {member}"
            );
        }
    }
    let described = env.ok(&["describe", "pod", "hosted"]);
    assert!(
        described.contains("plugin exec accepts it as executable"),
        "{described}"
    );
    env.delete_leaving_nothing("hosted");
    assert!(
        !pids[1..].iter().any(|pid| Path::new(&format!("/proc/{pid}")).exists()),
        "the members' processes are gone"
    );

    // The per-container annotation names the plugin (no runtime config needed).
    let sleeper = "  - name: main\n    image: /bin/busybox\n    command: [sleep, '3600']\n";
    let manifest = env.manifest("annotated.yaml", &hosted("annotated", None, Some("exec"), sleeper));
    env.ok(&["create", "-f", &manifest]);
    env.wait_running("annotated");
    env.delete_leaving_nothing("annotated");

    // A plugin in --plugin-dir claims by its handshake: this one (exec under another name) the
    // local *.sh files, with no class or annotation in the pod.
    let plugins = env.dir.join("more-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let wrapper = plugins.join("podctl-runtime-scripts");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nPODCTL_EXEC_EXTENSIONS=sh exec {} \"$@\"\n",
            exec_plugin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = env.dir.join("job.sh");
    std::fs::write(&script, "#!/bin/sh\necho job ran with $1\nexec sleep 3600\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = plugins.to_str().unwrap();
    let listed = env.ok(&["--plugin-dir", dir, "runtime", "ls"]);
    assert!(
        listed.contains("scripts") && listed.contains("local .sh files"),
        "{listed}"
    );
    let job = format!("  - name: job\n    image: {}\n    args: [fast]\n", script.display());
    let manifest = env.manifest("job.yaml", &hosted("job", None, None, &job));
    env.ok(&["--plugin-dir", dir, "create", "-f", &manifest]);
    env.wait_running("job");
    assert!(env.wait_for_log("job", "job", "job ran with fast").contains("job ran"));
    let events = env.ok(&["events", "job"]);
    assert!(events.contains("Started member job in plugin scripts"), "{events}");
    // get and delete find the plugin's members by their records alone, without --plugin-dir.
    let table = env.ok(&["get", "pods", "job"]);
    assert!(table.contains("1/1") && table.contains("Running"), "{table}");
    env.delete_leaving_nothing("job");

    // What the plugin refuses at validation creates nothing; an uninstalled plugin is named.
    let data = env.dir.join("data.txt");
    std::fs::write(&data, "not a program\n").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bad = format!("  - name: main\n    image: {}\n", data.display());
    let manifest = env.manifest("bad.yaml", &hosted("bad", Some("host"), None, &bad));
    env.fails_leaving_nothing(
        &["--runtime-config", config, "create", "-f", &manifest],
        &["container main", "not an executable file"],
    );
    let missing = env.dir.join("missing.toml");
    std::fs::write(&missing, "[runtimes.vm]\nplugin = \"firecracker\"\n").unwrap();
    env.fails_leaving_nothing(
        &["--runtime-config", missing.to_str().unwrap(), "create", "-f", &manifest],
        &[
            "runtimes.vm.plugin",
            "\"firecracker\"",
            "not installed",
            "podctl-runtime-firecracker",
        ],
    );
}

#[test]
fn a_plugin_that_claims_directories_and_url_schemes_gets_them_as_written() {
    let env = require_env!("rt-plugin-dirs");
    // exec under another name, claiming directories (it runs their `run`) and `host:` URLs.
    let plugins = env.dir.join("dir-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let wrapper = plugins.join("podctl-runtime-bundles");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nPODCTL_EXEC_DIRECTORIES=1 PODCTL_EXEC_SCHEMES=host exec {} \"$@\"\n",
            exec_plugin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = plugins.to_str().unwrap();
    let listed = env.ok(&["--plugin-dir", dir, "runtime", "ls"]);
    assert!(
        listed.contains("bundles") && listed.contains("local directories; host: URLs"),
        "{listed}"
    );

    let bundle = env.dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("data"), "bundled data\n").unwrap();
    std::fs::write(
        bundle.join("run"),
        "#!/bin/sh\nread line < data\necho \"bundle in $PWD: $line\"\nexec /bin/sleep 3600\n",
    )
    .unwrap();
    std::fs::set_permissions(bundle.join("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A directory (written as a file:// URL), and a URL of the plugin's scheme: neither is pulled,
    // and the plugin gets them unchanged (the directory as its absolute path).
    let containers = format!(
        "  - name: site\n    image: file://{}\n  - name: fetched\n    image: host:/bin/busybox\n    command: [sh, -c, 'echo fetched by scheme; exec sleep 3600']\n",
        bundle.display()
    );
    let manifest = env.manifest("bundles.yaml", &hosted("bundles", None, None, &containers));
    env.ok(&["--plugin-dir", dir, "create", "-f", &manifest]);
    env.wait_running("bundles");
    let canonical = std::fs::canonicalize(&bundle).unwrap();
    let expected = format!("bundle in {}: bundled data", canonical.display());
    assert!(env.wait_for_log("bundles", "site", &expected).contains(&expected));
    assert!(env
        .wait_for_log("bundles", "fetched", "fetched by scheme")
        .contains("fetched by scheme"));
    let described = env.ok(&["describe", "pod", "bundles"]);
    assert!(
        described.contains("plugin bundles accepts it as directory with an executable run")
            && described.contains("plugin bundles accepts it as executable"),
        "{described}"
    );
    env.delete_leaving_nothing("bundles");

    // A scheme no plugin claims is not pulled either: the error says who declined it.
    let unclaimed = "  - name: main\n    image: nobody:/srv/x\n";
    let manifest = env.manifest("unclaimed.yaml", &hosted("unclaimed", None, None, unclaimed));
    env.fails_leaving_nothing(
        &["--plugin-dir", dir, "create", "-f", &manifest],
        &["nobody:/srv/x", "bundles: it runs", "not nobody: URLs"],
    );
    // Without the plugin, a directory is refused by name, not as a missing file.
    let manifest = env.manifest(
        "dir.yaml",
        &hosted(
            "dir",
            None,
            None,
            &format!("  - name: main\n    image: {}\n", bundle.display()),
        ),
    );
    env.fails_leaving_nothing(
        &["create", "-f", &manifest],
        &["is a local directory, not an OCI image"],
    );
}

#[test]
fn runtime_class_objects_name_handlers_and_outlive_containerd_restarts() {
    let mut env = require_env!("rt-objects");
    env.import_busybox();
    let (config, log) = wrapped_runtime(&env);
    let config = config.to_str().unwrap().to_string();
    let class = env.manifest(
        "class.yaml",
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: sandboxed\nhandler: wrapped\n",
    );
    let created = env.ok(&["--runtime-config", &config, "create", "-f", &class]);
    assert!(
        created.contains("runtimeclass.node.k8s.io/sandboxed created"),
        "{created}"
    );
    let again = env.fails(&["create", "-f", &class]);
    assert!(again.contains("runtimeclass sandboxed already exists"), "{again}");
    let table = env.ok(&["get", "runtimeclasses"]);
    assert!(
        table.contains("NAME") && table.contains("sandboxed") && table.contains("wrapped"),
        "{table}"
    );
    let yaml = env.ok(&["get", "runtimeclass", "sandboxed", "-o", "yaml"]);
    assert!(
        yaml.contains("apiVersion: node.k8s.io/v1") && yaml.contains("handler: wrapped"),
        "{yaml}"
    );

    // Kept in containerd: a restart (and the GC that a deleted pod triggers) keeps it.
    env.restart_containerd();
    let manifest = env.manifest("classed.yaml", &sleeper("classed", Some("sandboxed"), None));
    env.ok(&["--runtime-config", &config, "create", "-f", &manifest]);
    env.wait_running("classed");
    let sandbox = env.sandbox_id("classed");
    assert!(
        created_through_wrapper(&log, &sandbox),
        "the class's handler ran the sandbox"
    );
    let described = env.ok(&["describe", "pod", "classed"]);
    assert!(described.contains("handler wrapped"), "{described}");
    env.delete_leaving_nothing("classed");
    assert!(env.ok(&["get", "runtimeclasses"]).contains("sandboxed"));

    // A class whose handler the config lacks is a create error naming both.
    let stray = env.manifest(
        "stray.yaml",
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: stray}\nhandler: kata\n",
    );
    let warned = env
        .command(&["--runtime-config", &config, "create", "-f", &stray])
        .output()
        .unwrap();
    assert!(warned.status.success());
    assert!(String::from_utf8_lossy(&warned.stderr).contains("handler \"kata\" is not in"));
    let manifest = env.manifest("strayed.yaml", &sleeper("strayed", Some("stray"), None));
    env.fails_leaving_nothing(
        &["--runtime-config", &config, "create", "-f", &manifest],
        &[
            "spec.runtimeClassName",
            "\"stray\" (a RuntimeClass with handler \"kata\")",
            "[runtimes.kata]",
        ],
    );
    let deleted = env.ok(&["delete", "runtimeclass", "stray", "sandboxed"]);
    assert!(
        deleted.contains("runtimeclass.node.k8s.io \"sandboxed\" deleted"),
        "{deleted}"
    );
    let none = env.command(&["get", "runtimeclasses"]).output().unwrap();
    assert!(String::from_utf8_lossy(&none.stderr).contains("No runtimeclasses found"));
    let bad = env.manifest(
        "bad-class.yaml",
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: x}\n",
    );
    let err = env.fails(&["create", "-f", &bad]);
    assert!(err.contains("handler is required"), "{err}");
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
}
