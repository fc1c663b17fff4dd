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
