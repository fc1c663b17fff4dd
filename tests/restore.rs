//! Pods after a host restart, on a real containerd: the harness takes what a reboot takes
//! ([`common::TestEnv::simulate_reboot`]); `podctl get` says so honestly, and
//! `podctl system restore` brings an `Always` pod back (its host port answers, RESTARTS counts
//! the restart) and leaves a `Never` pod terminated, as kubelet does after a node restart.

mod common;

use common::{http_eventually, BUSYBOX_IMAGE, ECHO_IMAGE};

const PORT: u16 = 19680;
const GREETER_PORT: u16 = 19681;

/// The WASM member: the agent brings it back through its plugin.
fn greeter() -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("wasm-examples/greeter.wasm");
    assert!(
        path.exists(),
        "{} is missing: run wasm-examples/build.sh (scripts/test.sh does)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

fn greeted() -> String {
    let start = std::time::Instant::now();
    loop {
        match common::http(GREETER_PORT, "GET", "/hello", "") {
            Ok(r) if r.contains("Hello from the WASM greeter") => return r,
            other if start.elapsed() > std::time::Duration::from_secs(20) => panic!("greeter: {other:?}"),
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

#[test]
fn pods_come_back_after_a_host_restart() {
    let mut env = require_env!("restore");
    env.import_busybox();
    // Its Secret volume is a tmpfs, which the reboot takes: restore writes it again.
    env.ok(&[
        "create",
        "secret",
        "generic",
        "side-token",
        "--from-literal=token=T0K3N",
    ]);
    env.create(
        "survivor.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: survivor\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: {ECHO_IMAGE}\n    ports:\n    - containerPort: 8080\n      hostPort: {PORT}\n  - name: side\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'echo side up; exec sleep 3600']\n    volumeMounts: [{{name: token, mountPath: /etc/token}}]\n  - name: greeter\n    image: {greeter}\n    ports: [{{containerPort: 8081, hostPort: {GREETER_PORT}}}]\n  volumes:\n  - name: token\n    secret: {{secretName: side-token}}\n",
            greeter = greeter()
        ),
    );
    env.create(
        "once.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: once\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    command: [sleep, '3600']\n"
        ),
    );
    // A pod in the host's network: no netns or CNI to make again, only its tasks.
    env.create(
        "hostpod.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hostpod\nspec:\n  hostNetwork: true\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    command: [sleep, '3600']\n"
        ),
    );
    // More pods for the restore figure: PODCTL_RESTORE_PODS=20 (default none).
    let extra: usize = std::env::var("PODCTL_RESTORE_PODS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    for i in 0..extra {
        env.create(
            &format!("extra{i}.yaml"),
            &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: extra{i}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: web\n    image: {ECHO_IMAGE}\n"),
        );
    }
    env.wait_running("survivor");
    env.wait_running("once");
    http_eventually(PORT, "before");
    greeted();
    let names: Vec<String> = ["survivor".to_string(), "once".to_string(), "hostpod".to_string()]
        .into_iter()
        .chain((0..extra).map(|i| format!("extra{i}")))
        .collect();
    let sandboxes: Vec<String> = names.iter().map(|n| env.sandbox_id(n)).collect();
    let ip_before = env.pod_json("survivor")["status"]["podIP"].clone();
    let pids: Vec<u64> = names.iter().flat_map(|p| env.pids(p)).collect();

    env.simulate_reboot(&sandboxes, &pids);

    let listed = env.command(&["get", "pods"]).output().unwrap();
    let (table, warnings) = (
        String::from_utf8_lossy(&listed.stdout).into_owned(),
        String::from_utf8_lossy(&listed.stderr).into_owned(),
    );
    assert!(
        table.lines().filter(|l| l.contains("Unknown")).count() == names.len(),
        "{table}"
    );
    assert!(
        warnings.contains("the host restarted") && warnings.contains("podctl system restore"),
        "{warnings}"
    );

    let began = std::time::Instant::now();
    let restored = env.ok(&["system", "restore"]);
    eprintln!("restore of {} pods took {:?}", names.len(), began.elapsed());
    assert!(restored.contains("pod/survivor (default): restored"), "{restored}");
    assert!(
        restored.contains("pod/once (default): restartPolicy Never"),
        "{restored}"
    );

    env.wait_running("survivor");
    assert!(restored.contains("pod/hostpod (default): restored"), "{restored}");
    env.wait_running("hostpod");
    let hostpod = env.pod_json("hostpod");
    assert_eq!(hostpod["status"]["podIP"], hostpod["status"]["hostIP"], "{hostpod:#}");
    let answer = http_eventually(PORT, "after the restart");
    assert_eq!(
        env.pod_json("survivor")["status"]["podIP"],
        ip_before,
        "the same address again"
    );
    assert!(answer.contains("after the restart"), "{answer}");
    greeted();
    for member in ["web", "side", "greeter"] {
        let status = env.container_status("survivor", member);
        assert_eq!(status["restartCount"], 1, "{status}");
    }
    assert!(env.wait_for_log("survivor", "side", "side up").contains("side up"));
    let token = env.ok(&[
        "exec",
        "survivor",
        "-c",
        "side",
        "--",
        "sh",
        "-c",
        "cat /etc/token/token; stat -f -c ' %T' /etc/token",
    ]);
    assert_eq!(token.trim(), "T0K3N tmpfs", "the Secret volume after the restart");
    let once = env.pod_json("once");
    assert_eq!(once["status"]["phase"], "Failed", "{once:#}");
    let main = env.container_status("once", "main");
    assert_eq!(main["state"]["terminated"]["reason"], "Unknown", "{main}");
    // Nothing more to do: a second restore finds nothing.
    assert!(env.ok(&["system", "restore"]).contains("no pod lost its sandbox"));

    // The unit that does it at boot.
    let root = env.dir.join("root");
    let installed = env.ok(&["system", "install", "--root", root.to_str().unwrap()]);
    assert!(installed.contains("installed"), "{installed}");
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/podctl-restore.service")).unwrap();
    for needle in [
        "After=containerd.service",
        "Type=oneshot",
        "system restore --all-namespaces",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.contains(needle), "{needle:?} not in\n{unit}");
    }

    let mut delete = vec!["delete"];
    delete.extend(names.iter().map(String::as_str));
    env.ok(&delete);
    for sandbox in &sandboxes {
        env.assert_nothing_left(sandbox);
    }
}
