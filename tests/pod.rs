//! Pods on a real containerd: the seed scenario, shared namespaces, isolation, graceful delete and
//! the promise that every delete and every failed create leaves nothing behind.

mod common;

// Debian's busybox-static segfaults on `wget -T`: tests rely on refused connections failing fast.
use std::time::{Duration, Instant};

use common::{http_eventually, ns_inode, BUSYBOX_IMAGE, ECHO_IMAGE};

fn echo_pod(name: &str, host_port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: hello-world}}\nspec:\n  containers:\n  \
         - name: echoserver\n    image: {ECHO_IMAGE}\n    ports:\n    - containerPort: 8080\n      hostPort: {host_port}\n"
    )
}

#[test]
fn seed_scenario_through_the_host_port() {
    let env = require_env!("seed");
    env.create("echo.yaml", &echo_pod("echo", 19080));
    let response = http_eventually(19080, "hello");
    assert!(response.contains("Hostname: echo"), "{response}");
    assert!(response.contains("method=POST"), "{response}");
    assert!(response.contains("Request Body:\nhello"), "{response}");

    let table = env.ok(&["get", "pods", "-o", "wide"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["echo", "1/1", "Running", "0"], "{table}");
    assert!(row[5].starts_with("10.89."), "pod IP in the podctl network: {table}");

    // The member's output goes through the small log driver podctl installs next to itself.
    let log = env.ok(&["describe", "pod", "echo"]);
    let log = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("Log:"))
        .unwrap()
        .trim()
        .to_string();
    let drivers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&log))
        .collect();
    assert!(
        // containerd passes the URI's query pairs in no set order.
        drivers.len() == 1
            && drivers[0].contains("podctl-log-driver ")
            && drivers[0].contains(&format!(" log-driver {log}")),
        "{drivers:?}"
    );

    let json = env.pod_json("echo");
    assert_eq!(json["kind"], "Pod");
    assert_eq!(json["metadata"]["labels"]["app"], "hello-world");
    assert_eq!(json["status"]["phase"], "Running");
    assert_eq!(json["status"]["containerStatuses"][0]["ready"], true);
    assert_eq!(json["status"]["podIP"].as_str(), Some(row[5]));
    let yaml = env.ok(&["get", "pod", "echo", "-o", "yaml"]);
    assert!(
        yaml.contains("phase: Running") && yaml.contains("containerPort: 8080"),
        "{yaml}"
    );

    let sandbox = env.sandbox_id("echo");
    let describe = env.ok(&["describe", "pod", "echo"]);
    for needle in [
        "Name:         echo",
        "app=hello-world",
        ECHO_IMAGE,
        &format!("/run/netns/podctl-{sandbox}"),
        "8080/TCP -> 0.0.0.0:19080",
        "Started container echoserver",
        row[5],
    ] {
        assert!(describe.contains(needle), "describe lacks {needle:?}:\n{describe}");
    }
    let logs = env.wait_for_log("echo", "echoserver", "POST /");
    assert!(logs.contains("listening on 0.0.0.0:8080"), "{logs}");

    // containerd shows the grouping by label, as in the seed article.
    let out = std::process::Command::new("ctr")
        .arg("--address")
        .arg(&env.socket)
        .args(["containers", "ls", "labels.\"io.kubernetes.pod.name\"==echo"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        3,
        "sandbox + member listed"
    );

    let before = Instant::now();
    assert!(env.ok(&["delete", "echo"]).contains("deleted"));
    assert!(
        before.elapsed() < Duration::from_secs(10),
        "the echo server stops on SIGTERM"
    );
    assert!(env.podctl(&["get", "pod", "echo"]).status.code() != Some(0));
    env.assert_nothing_left(&sandbox);
    assert!(
        common::http(19080, "GET", "/", "").is_err(),
        "the host port is closed after delete"
    );
}

#[test]
fn member_shares_the_sandbox_namespaces_and_hostname() {
    let env = require_env!("namespaces");
    env.import_busybox();
    env.create(
        "ns.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: nsdemo}}\nspec:\n  containers:\n  - name: shell\n    image: {BUSYBOX_IMAGE}\n    \
             command: [sh, -c, 'hostname; ps; sleep 3600']\n"
        ),
    );
    env.wait_running("nsdemo");
    let logs = env.wait_for_log("nsdemo", "shell", "PID");
    assert!(logs.starts_with("nsdemo\n"), "hostname is the pod's: {logs}");
    assert!(
        !logs.contains("/pause"),
        "pause is invisible without shareProcessNamespace: {logs}"
    );

    let pids = env.pids("nsdemo");
    let (pause, member) = (pids[0], pids[1]);
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(ns_inode(pause, kind), ns_inode(member, kind), "{kind} namespace shared");
    }
    assert_ne!(
        ns_inode(pause, "pid"),
        ns_inode(member, "pid"),
        "pid namespace private by default"
    );
    assert_ne!(
        ns_inode(pause, "mnt"),
        ns_inode(member, "mnt"),
        "each has its own rootfs"
    );
    assert_ne!(
        ns_inode(pause, "net"),
        ns_inode(std::process::id() as u64, "net"),
        "not the host netns"
    );
    let sandbox = env.sandbox_id("nsdemo");
    let pinned = std::fs::metadata(format!("/run/netns/podctl-{sandbox}")).unwrap();
    assert!(
        ns_inode(pause, "net").contains(&std::os::unix::fs::MetadataExt::ino(&pinned).to_string()),
        "the pause task runs in the pinned netns"
    );

    env.ok(&["delete", "nsdemo", "--grace-period", "1"]);
    env.assert_nothing_left(&sandbox);
}

/// PIDs of the pause task and the members, from `describe` (which prints what containerd reports).
#[test]
fn share_process_namespace_shows_pause_to_members() {
    let env = require_env!("sharepid");
    env.import_busybox();
    env.create(
        "pid.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: sharepid}}\nspec:\n  shareProcessNamespace: true\n  containers:\n  - name: shell\n    \
             image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'ps; sleep 3600']\n"
        ),
    );
    env.wait_running("sharepid");
    let logs = env.wait_for_log("sharepid", "shell", "PID");
    assert!(logs.contains("/pause"), "pause visible as a process: {logs}");
    let pids = env.pids("sharepid");
    assert_eq!(ns_inode(pids[0], "pid"), ns_inode(pids[1], "pid"));
    let sandbox = env.sandbox_id("sharepid");
    env.ok(&["delete", "sharepid", "--grace-period", "1"]);
    env.assert_nothing_left(&sandbox);
}

#[test]
fn members_of_one_pod_talk_over_localhost() {
    let env = require_env!("localhost");
    env.import_busybox();
    env.create(
        "duo.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: duo}}\nspec:\n  containers:\n  - name: echoserver\n    image: {ECHO_IMAGE}\n  \
             - name: client\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'until wget -q -O- http://localhost:8080/from-client; do sleep 0.2; done; sleep 3600']\n"
        ),
    );
    let logs = env.wait_for_log("duo", "client", "real path=/from-client");
    assert!(logs.contains("client_address=127.0.0.1"), "{logs}");
    let table = env.ok(&["get", "pods"]);
    assert!(table.contains("2/2"), "{table}");
    let sandbox = env.sandbox_id("duo");
    env.ok(&["delete", "duo", "--grace-period", "1"]);
    env.assert_nothing_left(&sandbox);
}

#[test]
fn the_members_of_a_pod_share_one_dev_shm_and_memory_empty_dirs_and_other_pods_do_not() {
    let env = require_env!("shm");
    env.import_busybox();
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: writer\n    image: {BUSYBOX_IMAGE}\n    command: [sleep, '3600']\n    volumeMounts: [{{name: scratch, mountPath: /scratch}}]\n  - name: reader\n    image: {BUSYBOX_IMAGE}\n    command: [sleep, '3600']\n    volumeMounts: [{{name: scratch, mountPath: /scratch}}]\n  volumes:\n  - name: scratch\n    emptyDir: {{medium: Memory, sizeLimit: 8Mi}}\n"
        )
    };
    env.create("shm-a.yaml", &pod("shm-a"));
    env.create("shm-b.yaml", &pod("shm-b"));
    env.wait_running("shm-a");
    env.wait_running("shm-b");
    let run = |pod: &str, member: &str, script: &str| env.ok(&["exec", pod, "-c", member, "--", "sh", "-c", script]);
    run("shm-a", "writer", "echo shared > /dev/shm/segment");
    assert_eq!(
        run("shm-a", "reader", "cat /dev/shm/segment; stat -f -c %T /dev/shm"),
        "shared\ntmpfs\n"
    );
    assert_eq!(run("shm-a", "reader", "stat -c %a /dev/shm").trim(), "1777");
    // An emptyDir with medium Memory is one tmpfs of the pod too, of its sizeLimit.
    run("shm-a", "writer", "echo in-memory > /scratch/note");
    assert_eq!(
        run("shm-a", "reader", "cat /scratch/note; stat -f -c '%T %b %S' /scratch"),
        "in-memory\ntmpfs 2048 4096\n"
    );
    assert!(
        !env.podctl(&["exec", "shm-b", "-c", "reader", "--", "cat", "/dev/shm/segment"])
            .status
            .success(),
        "another pod has its own /dev/shm"
    );
    let sandboxes = [env.sandbox_id("shm-a"), env.sandbox_id("shm-b")];
    env.ok(&["delete", "shm-a", "shm-b"]);
    for sandbox in &sandboxes {
        env.assert_nothing_left(sandbox);
    }
}

#[test]
fn two_pods_cannot_reach_each_others_localhost() {
    let env = require_env!("isolation");
    env.import_busybox();
    env.create("a.yaml", &format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: pod-a}}\nspec:\n  containers:\n  - name: echoserver\n    image: {ECHO_IMAGE}\n"
    ));
    env.wait_running("pod-a");
    let a_ip = env.pod_json("pod-a")["status"]["podIP"].as_str().unwrap().to_string();
    env.create("b.yaml", &format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: pod-b}}\nspec:\n  containers:\n  - name: probe\n    image: {BUSYBOX_IMAGE}\n    \
         command: [sh, -c, 'wget -q -O- http://127.0.0.1:8080/ || echo LOCALHOST-UNREACHABLE; wget -q -O- http://{a_ip}:8080/via-pod-ip; sleep 3600']\n"
    ));
    let logs = env.wait_for_log("pod-b", "probe", "real path=/via-pod-ip");
    assert!(
        logs.contains("LOCALHOST-UNREACHABLE"),
        "pod-a's localhost is not pod-b's: {logs}"
    );
    let (sa, sb) = (env.sandbox_id("pod-a"), env.sandbox_id("pod-b"));
    env.ok(&["delete", "pod-a", "pod-b", "--grace-period", "1"]);
    env.assert_nothing_left(&sa);
    env.assert_nothing_left(&sb);
}

#[test]
fn graceful_delete_waits_for_the_grace_period_then_kills() {
    let env = require_env!("graceful");
    env.import_busybox();
    env.create("stubborn.yaml", &format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: stubborn}}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: shell\n    \
         image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'trap \"echo got TERM\" TERM; echo ready; while true; do sleep 1; done']\n"
    ));
    env.wait_for_log("stubborn", "shell", "ready");
    let sandbox = env.sandbox_id("stubborn");
    let before = Instant::now();
    let deleting = env.command(&["delete", "stubborn"]).spawn().unwrap();
    env.wait_until(Duration::from_secs(5), "STATUS Terminating", || {
        env.ok(&["get", "pods"]).contains("Terminating")
    });
    let status = deleting.wait_with_output().unwrap().status;
    assert!(status.success());
    let took = before.elapsed();
    assert!(took >= Duration::from_secs(2), "waited the grace period: {took:?}");
    assert!(took < Duration::from_secs(10), "then SIGKILL: {took:?}");
    env.assert_nothing_left(&sandbox);
}

#[test]
fn failed_creates_leave_nothing() {
    let env = require_env!("failures");
    // A host port held by a process.
    let holder = std::net::TcpListener::bind(("0.0.0.0", 19180)).unwrap();
    let path = env.manifest("taken.yaml", &echo_pod("taken", 19180));
    let err = env.fails(&["create", "-f", &path]);
    assert!(
        err.contains("spec.containers[0].ports[0].hostPort") && err.contains("19180"),
        "{err}"
    );
    drop(holder);
    // A host port mapped by another pod.
    env.create("first.yaml", &echo_pod("first", 19181));
    let path = env.manifest("second.yaml", &echo_pod("second", 19181));
    let err = env.fails(&["create", "-f", &path]);
    assert!(err.contains("podctl pod first maps it"), "{err}");
    // A pod name that exists.
    let path = env.manifest("again.yaml", &echo_pod("first", 19182));
    let err = env.fails(&["create", "-f", &path]);
    assert!(err.contains("already exists"), "{err}");
    let first = env.sandbox_id("first");
    env.ok(&["delete", "first"]);
    env.assert_nothing_left(&first);

    // A missing image.
    let path = env.manifest(
        "missing.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: missing}\nspec:\n  containers:\n  - {name: c, image: example.invalid/nope:1}\n",
    );
    let err = env.fails(&["create", "-f", &path]);
    assert!(
        err.contains("example.invalid/nope:1") && err.contains("cannot reach registry"),
        "{err}"
    );
    assert!(env.containerd_objects().is_empty());

    // A failure after the sandbox is up (runc cannot exec the command): everything is rolled back.
    let path = env.manifest(
        "badcmd.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: badcmd}}\nspec:\n  containers:\n  - name: web\n    image: {ECHO_IMAGE}\n    ports: [{{containerPort: 8080, hostPort: 19183}}]\n  - name: broken\n    image: {ECHO_IMAGE}\n    command: [/does/not/exist]\n"),
    );
    let err = env.fails(&["create", "-f", &path]);
    assert!(err.contains("/does/not/exist"), "{err}");
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
    assert!(
        !common::iptables_rules().contains("19183"),
        "the portmap rule was rolled back"
    );
    // Other tests run in parallel: look for this pod's traces by its name, which starts its ID.
    for file in common::walk(std::path::Path::new("/var/lib/cni/networks/podctl")) {
        let owner = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(!owner.starts_with("badcmd-"), "IP reservation {} left", file.display());
    }
    let netns: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !netns.iter().any(|n| n.starts_with("podctl-badcmd-")),
        "netns left: {netns:?}"
    );
    assert!(
        common::walk(&env.state_dir()).iter().all(|p| p.is_dir()),
        "no files left in the state dir"
    );
}

#[test]
fn invalid_manifests_are_refused_with_path_and_line() {
    let env = require_env!("invalid");
    let cases: &[(&str, &str, &[&str])] = &[
        ("syntax.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x\n", &["line"]),
        ("kind.yaml", "apiVersion: v1\nkind: Widget\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i}]}\n", &["kind", "line 2"]),
        ("deployment.yaml", "apiVersion: v1\nkind: Deployment\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i}]}\n", &["apiVersion", "apps/v1", "line 1"]),
        ("name.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\nspec: {containers: [{name: c, image: i}]}\n", &["metadata.name", "line 4"]),
        (
            "dupname.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - {name: c, image: i}\n  - {name: c, image: i}\n",
            &["spec.containers[1].name", "line 7", "duplicate"],
        ),
        (
            "dupport.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: a\n    image: i\n    ports: [{containerPort: 80, hostPort: 9080}]\n  - name: b\n    image: i\n    ports:\n    - {containerPort: 81, hostPort: 9080}\n",
            &["spec.containers[1].ports[0].hostPort", "line 12"],
        ),
        ("noimage.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: c\n", &["spec.containers[0].image", "line"]),
    ];
    for (file, yaml, needles) in cases {
        let path = env.manifest(file, yaml);
        let err = env.fails(&["create", "-f", &path]);
        for needle in *needles {
            assert!(err.contains(needle), "{file}: error lacks {needle:?}: {err}");
        }
    }
    assert!(env.containerd_objects().is_empty(), "invalid input created nothing");
    // Unsupported fields are one warning, not an error and not silence.
    env.create(
        "warn.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: warned}}\nspec:\n  nodeSelector: {{a: b}}\n  containers:\n  - name: c\n    image: {ECHO_IMAGE}\n    securityContext: {{seLinuxOptions: {{}}}}\n"),
    );
    let out = env.command(&["get", "pods"]).output().unwrap();
    assert!(out.status.success());
    let path = env.manifest("warn2.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: warned}\nspec:\n  nodeSelector: {a: b}\n  containers:\n  - name: c\n    image: i\n    securityContext: {seLinuxOptions: {}}\n");
    let out = env.command(&["create", "-f", &path]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("warning").count(), 1, "{stderr}");
    assert!(
        stderr.contains("spec.nodeSelector") && stderr.contains("spec.containers[0].securityContext.seLinuxOptions"),
        "{stderr}"
    );
    env.delete_leaving_nothing("warned");
}

#[test]
fn image_import_and_list() {
    let env = require_env!("images");
    env.import_busybox();
    let tar = env.dir.join("echo.tar");
    env.ok(&["image", "export", ECHO_IMAGE, "-o", tar.to_str().unwrap()]);
    let out = env.ok(&["image", "import", tar.to_str().unwrap()]);
    assert!(out.contains(ECHO_IMAGE), "{out}");
    // Importing the same archive again is fine (the name is re-pointed, blobs are reused).
    env.ok(&["image", "import", tar.to_str().unwrap()]);
    let list = env.ok(&["image", "ls"]);
    assert!(list.contains(ECHO_IMAGE) && list.contains(BUSYBOX_IMAGE), "{list}");
    assert!(list.lines().next().unwrap().starts_with("REF"), "{list}");
    env.ok(&["image", "rm", BUSYBOX_IMAGE]);
    assert!(!env.ok(&["image", "ls"]).contains(BUSYBOX_IMAGE));
    let err = env.fails(&["image", "import", "/etc/hostname"]);
    assert!(err.contains("archive"), "{err}");
}

/// Processes of the runc shim that serve this test's containerd.
fn shim_count(env: &common::TestEnv) -> usize {
    let socket = env.socket.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("containerd-shim-runc-v2") && c.contains(&socket))
        .count()
}

#[test]
fn volumes_and_one_shim_per_pod() {
    let env = require_env!("volumes");
    env.import_busybox();
    let host_dir = env.dir.join("hostdata");
    env.create(
        "vol.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: vols}}\nspec:\n  volumes:\n  - name: scratch\n    emptyDir: {{}}\n  - name: host\n    \
             hostPath: {{path: {host}, type: DirectoryOrCreate}}\n  containers:\n  - name: writer\n    image: {BUSYBOX_IMAGE}\n    \
             command: [sh, -c, 'echo shared > /scratch/note; echo from-pod > /host/out; sleep 3600']\n    \
             volumeMounts: [{{name: scratch, mountPath: /scratch}}, {{name: host, mountPath: /host}}]\n  - name: reader\n    \
             image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'until cat /data/note; do sleep 0.2; done; touch /data/ro-test 2>&1 || echo READ-ONLY; sleep 3600']\n    \
             volumeMounts: [{{name: scratch, mountPath: /data, readOnly: true}}]\n",
            host = host_dir.display()
        ),
    );
    env.wait_for_log("vols", "reader", "READ-ONLY");
    assert!(env.logs("vols", "reader").contains("shared"));
    env.wait_until(Duration::from_secs(10), "the hostPath file", || {
        host_dir.join("out").exists()
    });
    assert_eq!(std::fs::read_to_string(host_dir.join("out")).unwrap(), "from-pod\n");
    assert_eq!(shim_count(&env), 1, "pause and both members share one shim process");
    let sandbox = env.sandbox_id("vols");
    env.ok(&["delete", "vols", "--grace-period", "1"]);
    env.assert_nothing_left(&sandbox);
    assert!(host_dir.join("out").exists(), "hostPath data outlives the pod");
    assert_eq!(shim_count(&env), 0, "the shim exits with the pod");
}
