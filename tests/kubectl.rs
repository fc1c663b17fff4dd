//! The kubectl habits on a real containerd: completion scripts that load in bash and complete pod
//! names, man pages, `version` naming containerd's real version, and output for scripts
//! (`-o jsonpath`, `-o custom-columns`, `--sort-by`, `--show-labels`, `-L`, `--no-headers`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{BUSYBOX_IMAGE, ECHO_IMAGE};

fn sleeper(name: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}, tier: t-{name}}}}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    command: [sleep, '3600']\n  - name: side\n    image: {BUSYBOX_IMAGE}\n    command: [sleep, '3600']\n"
    )
}

#[test]
fn completion_version_man_and_script_output_follow_kubectl() {
    let env = require_env!("kubectl");
    env.import_busybox();
    env.create("beta.yaml", &sleeper("beta", "web"));
    env.create("alpha.yaml", &sleeper("alpha", "db"));
    env.wait_running("beta");
    env.wait_running("alpha");

    // bash loads the script, and its name completion lists the pods from containerd.
    let script = env.dir.join("podctl.bash");
    std::fs::write(&script, env.ok(&["completion", "bash"])).unwrap();
    let podctl = env.command(&[]).get_program().to_owned();
    let bin_dir = std::path::Path::new(&podctl).parent().unwrap().to_owned();
    let probe = format!(
        "export PATH={bin}:$PATH CONTAINERD_ADDRESS={sock}; source {script}; complete -p podctl; \
         COMP_WORDS=(podctl logs a); COMP_CWORD=2; _podctl_names; echo \"pods: ${{COMPREPLY[*]}}\"; \
         COMP_WORDS=(podctl logs alpha -c s); COMP_CWORD=4; _podctl_names; echo \"members: ${{COMPREPLY[*]}}\"",
        bin = bin_dir.display(),
        sock = env.socket.display(),
        script = script.display()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&probe)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("complete -o bashdefault -o default -F _podctl_names podctl"),
        "{text}"
    );
    assert!(text.contains("pods: alpha\n"), "{text}");
    assert!(text.contains("members: side\n"), "{text}");
    for shell in ["zsh", "fish"] {
        assert!(env.ok(&["completion", shell]).contains("__complete pods"), "{shell}");
    }

    // Man pages: podctl(1) and one per command.
    assert!(env.ok(&["man"]).contains(".TH podctl 1"));
    let man = env.dir.join("man1");
    env.ok(&["man", "--dir", man.to_str().unwrap()]);
    assert!(man.join("podctl-create.1").is_file() && man.join("podctl-logs.1").is_file());

    // version names the containerd that answers, as `containerd --version` does.
    let containerd = String::from_utf8_lossy(
        &std::process::Command::new("containerd")
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    let version: serde_json::Value = serde_json::from_str(&env.ok(&["version", "-o", "json"])).unwrap();
    let server = version["serverVersion"]["containerd"]["version"].as_str().unwrap();
    assert!(
        !server.is_empty() && containerd.contains(server),
        "{server} vs {containerd}"
    );
    assert!(
        version["runc"].as_str().unwrap().contains("runc version"),
        "{version:#}"
    );
    assert!(
        version["cniPlugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "bridge"),
        "{version:#}"
    );
    assert!(env.ok(&["version"]).contains("Server Version: containerd"));

    // Output for scripts.
    let ip = env.pod_json("alpha")["status"]["podIP"].as_str().unwrap().to_string();
    assert_eq!(env.ok(&["get", "pod", "alpha", "-o", "jsonpath={.status.podIP}"]), ip);
    assert_eq!(
        env.ok(&[
            "get",
            "pods",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}"#
        ]),
        "alpha\nbeta\n"
    );
    assert_eq!(
        env.ok(&[
            "get",
            "pods",
            "--sort-by",
            ".metadata.labels.app",
            "--no-headers",
            "-o",
            "custom-columns=NAME:.metadata.name,APP:.metadata.labels.app,CONTAINERS:.spec.containers[*].name"
        ]),
        "alpha   db    main,side\nbeta    web   main,side\n"
    );
    let labelled = env.ok(&["get", "pods", "--show-labels", "-L", "tier"]);
    let lines: Vec<&str> = labelled.lines().collect();
    assert!(lines[0].contains("TIER") && lines[0].ends_with("LABELS"), "{labelled}");
    assert!(
        lines[1].contains("t-alpha") && lines[1].ends_with("app=db,tier=t-alpha"),
        "{labelled}"
    );
    let bad = env.fails(&["get", "pods", "-o", "jsonpath={.items[0"]);
    assert!(bad.contains("not closed"), "{bad}");

    let sandboxes = [env.sandbox_id("alpha"), env.sandbox_id("beta")];
    env.ok(&["delete", "alpha", "beta"]);
    for sandbox in &sandboxes {
        env.assert_nothing_left(sandbox);
    }
}

#[test]
fn logs_filters_select_pods_containers_and_time() {
    let env = require_env!("logfilters");
    env.import_busybox();
    env.create(
        "talker.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: talker, labels: {{app: talk}}}}
spec:
  terminationGracePeriodSeconds: 0
  initContainers:
  - {{name: prep, image: {BUSYBOX_IMAGE}, command: [sh, -c, 'echo prep-done']}}
  containers:
  - {{name: a, image: {BUSYBOX_IMAGE}, command: [sh, -c, 'echo a-one; sleep 2; echo a-two; exec sleep 3600']}}
  - {{name: b, image: {BUSYBOX_IMAGE}, command: [sh, -c, 'echo b-one; exec sleep 3600']}}
"#
        ),
    );
    env.wait_for_log("talker", "a", "a-two");
    env.wait_for_log("talker", "b", "b-one");
    let all = env.ok(&["logs", "talker", "--all-containers", "--prefix"]);
    assert_eq!(
        all,
        "[pod/talker/prep] prep-done\n[pod/talker/a] a-one\n[pod/talker/a] a-two\n[pod/talker/b] b-one\n"
    );
    // --since-time: from the second line's time on; --since: a window back from now.
    let stamped = env.ok(&["logs", "talker", "-c", "a", "--timestamps"]);
    let second = stamped
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        env.ok(&["logs", "talker", "-c", "a", &format!("--since-time={second}")]),
        "a-two\n"
    );
    assert_eq!(env.ok(&["logs", "talker", "-c", "a", "--since=1h"]), "a-one\na-two\n");
    assert_eq!(env.ok(&["logs", "talker", "-c", "a", "--limit-bytes=3"]), "a-o");
    assert_eq!(env.ok(&["logs", "-l", "app=talk", "-c", "b"]), "b-one\n");
    assert!(env.fails(&["logs", "-l", "app=nobody"]).contains("no pods match"));
    env.delete_leaving_nothing("talker");
}

#[test]
fn kube_generate_gives_a_pod_that_creates_the_same_pod_again() {
    let env = require_env!("kubegen");
    env.import_busybox();
    let hello = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("wasm-examples/hello.wasm");
    assert!(hello.exists(), "run wasm-examples/build.sh (scripts/test.sh does)");
    env.create(
        "gen.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: gen, labels: {{app: gen}}, annotations: {{note: kept}}}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: [sleep, '3600']
    env: [{{name: MODE, value: gen}}]
    ports: [{{containerPort: 8080}}]
  - name: hello
    image: file://{hello}
"#,
            hello = hello.display()
        ),
    );
    let before = env.pod_json("gen");
    let out = env.dir.join("generated.yaml");
    env.ok(&["kube", "generate", "gen", "-f", out.to_str().unwrap()]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("# Generated by podctl"), "{text}");
    assert!(
        !text.contains("status:") && !text.contains("uid:"),
        "no status or server fields: {text}"
    );
    assert!(text.contains("podctl.io/runtime.hello: wasmtime"), "{text}");
    assert!(text.contains("podctl.io/cluster-runtime-class: podctl"), "{text}");
    env.delete_leaving_nothing("gen");
    env.ok(&["create", "-f", out.to_str().unwrap()]);
    let after = env.pod_json("gen");
    assert_eq!(after["spec"], before["spec"], "the same pod again");
    assert_eq!(after["metadata"]["labels"], before["metadata"]["labels"]);
    assert_eq!(after["metadata"]["annotations"]["note"], "kept");
    assert_eq!(
        env.pod_json("gen")["status"]["containerStatuses"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    env.delete_leaving_nothing("gen");
}

#[test]
fn top_shows_a_busy_member_and_memory_as_the_cgroup_counts_it() {
    let env = require_env!("top");
    env.import_busybox();
    env.create(
        "busy.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: busy}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {{name: spin, image: {BUSYBOX_IMAGE}, command: [sh, -c, 'while :; do :; done']}}
  - {{name: idle, image: {BUSYBOX_IMAGE}, command: [sleep, '3600']}}
"#
        ),
    );
    env.wait_running("busy");
    let table = env.ok(&[
        "top",
        "pod",
        "busy",
        "--containers",
        "--window",
        "1s",
        "--sort-by",
        "cpu",
    ]);
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"], "{table}");
    assert_eq!(rows[1][1], "spin", "the busy one first: {table}");
    let millicores = |row: &[&str]| row[2].trim_end_matches('m').parse::<u64>().unwrap();
    assert!(
        millicores(&rows[1]) > 300,
        "a spinning shell uses a core's worth: {table}"
    );
    assert!(millicores(&rows[2]) < 50, "{table}");
    // Memory as the member's cgroup counts it (working set), within 10 %.
    let pid = env.pids("busy")[2];
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let memory = cgroup
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()));
    // cgroup v1 (this host) or v2: the directory, the usage file and the inactive-file key.
    let (dir, usage_file, inactive_key) = match memory {
        Some(path) => (
            std::path::Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/')),
            "memory.usage_in_bytes",
            "total_inactive_file ",
        ),
        None => {
            let path = cgroup.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            (
                std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')),
                "memory.current",
                "inactive_file ",
            )
        }
    };
    let usage: u64 = std::fs::read_to_string(dir.join(usage_file))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap();
    let inactive: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix(inactive_key))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let expected_mi = (usage - inactive).div_ceil(1 << 20) as f64;
    let idle = rows.iter().find(|r| r[1] == "idle").unwrap();
    let shown: f64 = idle[3].trim_end_matches("Mi").parse().unwrap();
    assert!(
        (shown - expected_mi).abs() <= (expected_mi * 0.1).max(1.0),
        "{shown} vs {expected_mi}: {table}"
    );
    let pods = env.ok(&["top", "pod", "--no-headers"]);
    assert!(pods.starts_with("busy"), "{pods}");
    env.delete_leaving_nothing("busy");

    // WASM members: what the plugin counts (linear memory, CPU time of the member's own work).
    let misbehave = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("wasm-examples/misbehave.wasm");
    env.create(
        "wasm-top.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: wasm-top}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - {{name: spin, image: 'file://{}', args: [spin]}}\n",
            misbehave.display()
        ),
    );
    env.wait_for_log("wasm-top", "spin", "spinning");
    let table = env.ok(&["top", "pod", "wasm-top", "--containers", "--window", "1s"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    let millicores = row[2].trim_end_matches('m').parse::<u64>().unwrap_or(0);
    assert!(millicores > 300, "a spinning module uses a core's worth: {table}");
    let mib: u64 = row[3].trim_end_matches("Mi").parse().unwrap_or(0);
    assert!((1..64).contains(&mib), "its linear memory, a few MiB: {table}");
    env.delete_leaving_nothing("wasm-top");
}

#[test]
fn cp_copies_files_and_directories_both_ways() {
    let env = require_env!("cp");
    env.import_busybox();
    let hello = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("wasm-examples/hello.wasm");
    env.create(
        "files.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: files}}
spec:
  terminationGracePeriodSeconds: 0
  volumes: [{{name: data, emptyDir: {{}}}}]
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, 'ln -s / /tmp/rootlink; ln -s ../../../../../../etc /tmp/uplink; ln -s /etc/hostname /tmp/hostlink; exec sleep 3600']
    securityContext: {{runAsUser: 1000, runAsGroup: 1000}}
    volumeMounts: [{{name: data, mountPath: /data}}]
  - name: static
    image: {ECHO_IMAGE}
  - name: wasm
    image: file://{hello}
    volumeMounts: [{{name: data, mountPath: /data}}]
"#,
            hello = hello.display()
        ),
    );
    env.wait_until(std::time::Duration::from_secs(20), "main to run", || {
        env.container_status("files", "main")["state"]["running"].is_object()
    });
    // A file of every byte value, and a directory with a nested file.
    let local = env.dir.join("local");
    std::fs::create_dir_all(local.join("tree/sub")).unwrap();
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(local.join("blob.bin"), &bytes).unwrap();
    std::fs::write(local.join("tree/sub/note.txt"), "nested\n").unwrap();
    let path = |p: &str| local.join(p).to_str().unwrap().to_string();
    env.ok(&["cp", &path("blob.bin"), "files:/tmp/blob.bin"]);
    env.ok(&["cp", "files:/tmp/blob.bin", &path("back.bin")]);
    assert_eq!(
        std::fs::read(local.join("back.bin")).unwrap(),
        bytes,
        "the same bytes back"
    );
    env.ok(&["cp", &path("tree"), "files:/tmp/tree"]);
    let listed = env.ok(&["exec", "files", "--", "sh", "-c", "cat /tmp/tree/sub/note.txt"]);
    assert_eq!(listed, "nested\n");
    env.ok(&["cp", "files:/tmp/tree", &path("tree-back")]);
    assert_eq!(
        std::fs::read_to_string(local.join("tree-back/sub/note.txt")).unwrap(),
        "nested\n"
    );
    // Into an existing directory: the copy goes inside it, under its own name.
    std::fs::create_dir_all(local.join("into")).unwrap();
    env.ok(&["cp", "files:/tmp/blob.bin", &path("into")]);
    assert_eq!(std::fs::read(local.join("into/blob.bin")).unwrap(), bytes);
    // A WASM member: through its volumes only.
    env.ok(&[
        "cp",
        "-c",
        "wasm",
        &path("tree/sub/note.txt"),
        "files:/data/from-host.txt",
    ]);
    assert_eq!(
        env.ok(&["exec", "files", "--", "sh", "-c", "cat /data/from-host.txt"]),
        "nested\n"
    );
    let refused = env.fails(&["cp", "-c", "wasm", "files:/etc/passwd", &path("passwd")]);
    assert!(refused.contains("only paths inside its volumeMounts"), "{refused}");
    let missing = env.fails(&["cp", "files:/nope", &path("nope")]);
    assert!(missing.contains("No such file or directory"), "{missing}");
    assert!(!local.join("nope").exists());

    // What is copied in belongs to the member's user and keeps its mode, both ways.
    // `sh -c`: the harness appends its own flags to every podctl command line.
    let sh = |script: &str| env.ok(&["exec", "files", "--", "sh", "-c", script]);
    let stat = |file: &str| sh(&format!("stat -c '%u:%g %a' {file}"));
    assert_eq!(stat("/tmp/blob.bin"), "1000:1000 644\n");
    std::fs::set_permissions(local.join("blob.bin"), std::fs::Permissions::from_mode(0o751)).unwrap();
    env.ok(&["cp", &path("blob.bin"), "files:/tmp/script"]);
    assert_eq!(stat("/tmp/script"), "1000:1000 751\n");
    env.ok(&["cp", "files:/tmp/script", &path("script")]);
    let back = std::fs::metadata(local.join("script")).unwrap();
    assert_eq!(back.permissions().mode() & 0o7777, 0o751);

    // A static image without tar or a shell: both ways still work.
    env.ok(&["cp", "-c", "static", &path("blob.bin"), "files:/copied.bin"]);
    env.ok(&["cp", "-c", "static", "files:/copied.bin", &path("from-static.bin")]);
    assert_eq!(std::fs::read(local.join("from-static.bin")).unwrap(), bytes);

    // Hostile symlinks in the container resolve inside its root, never the host's.
    let host_hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert_ne!(host_hostname, "files\n", "the test needs a host not named like the pod");
    env.ok(&["cp", "files:/tmp/uplink/hostname", &path("through-up")]);
    assert_eq!(std::fs::read_to_string(local.join("through-up")).unwrap(), "files\n");
    env.ok(&["cp", "files:/tmp/rootlink/etc/hostname", &path("through-root")]);
    assert_eq!(std::fs::read_to_string(local.join("through-root")).unwrap(), "files\n");
    let escape = "podctl-cp-escape-probe";
    env.ok(&[
        "cp",
        &path("tree/sub/note.txt"),
        &format!("files:/tmp/rootlink/tmp/{escape}"),
    ]);
    env.ok(&[
        "cp",
        &path("tree/sub/note.txt"),
        &format!("files:/tmp/uplink/../tmp/{escape}-up"),
    ]);
    assert!(
        !Path::new("/tmp").join(escape).exists(),
        "a copy reached the host's /tmp"
    );
    assert!(
        !Path::new("/tmp").join(format!("{escape}-up")).exists(),
        "a copy reached the host's /tmp"
    );
    assert_eq!(sh(&format!("cat /tmp/{escape}")), "nested\n");
    // A symlink where a file goes is replaced, not written through.
    env.ok(&["cp", &path("tree/sub/note.txt"), "files:/tmp/hostlink"]);
    assert_eq!(sh("cat /etc/hostname"), "files\n");
    assert_eq!(
        std::fs::read_to_string("/etc/hostname").unwrap_or_default(),
        host_hostname
    );
    assert_eq!(sh("cat /tmp/hostlink"), "nested\n");
    env.delete_leaving_nothing("files");
}

#[test]
fn events_print_as_v1_event_objects_for_scripts() {
    let env = require_env!("events-out");
    env.import_busybox();
    env.create("ev.yaml", &sleeper("ev", "web"));
    env.wait_running("ev");
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["events", "ev", "-o", "json"])).unwrap();
    let items = json["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .all(|e| e["kind"] == "Event" && e["involvedObject"]["name"] == "ev"),
        "{json:#}"
    );
    assert!(items
        .iter()
        .any(|e| e["reason"] == "Started" && e["involvedObject"]["fieldPath"] == "spec.containers{main}"));
    let reasons = env.ok(&[
        "events",
        "ev",
        "-o",
        r#"jsonpath={range .items[*]}{.reason}{"\n"}{end}"#,
    ]);
    assert!(reasons.lines().any(|r| r == "SandboxReady"), "{reasons}");
    let columns = env.ok(&[
        "events",
        "ev",
        "--no-headers",
        "--sort-by",
        ".reason",
        "-o",
        "custom-columns=REASON:.reason",
    ]);
    let sorted: Vec<&str> = columns.lines().map(str::trim).collect();
    let mut expected = sorted.clone();
    expected.sort();
    assert_eq!(sorted, expected, "sorted by reason");
    env.delete_leaving_nothing("ev");
}
