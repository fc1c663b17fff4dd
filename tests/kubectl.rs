//! The kubectl habits on a real containerd: completion scripts that load in bash and complete pod
//! names, man pages, `version` naming containerd's real version, and output for scripts
//! (`-o jsonpath`, `-o custom-columns`, `--sort-by`, `--show-labels`, `-L`, `--no-headers`).

mod common;

use common::BUSYBOX_IMAGE;

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
    assert!(text.contains("podctl.io/cluster-runtime-class: wasmtime"), "{text}");
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
