//! `podctl gc` on a real containerd: the leftovers of an interrupted create, and the host-side
//! traces of a pod whose records were removed behind podctl's back (netns pin, IPAM reservation,
//! nat rules, state and log directories), are listed by `--dry-run` and removed by `gc`. The pods
//! use a CNI network of this test's own, so gc never sees another test's (or the host's) pods.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{iptables_rules, walk, TestEnv, ECHO_IMAGE};

const NETWORK: &str = "podctl-gctest";

fn network_dir(env: &TestEnv) -> String {
    let dir = env.dir.join("cni");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("10-gctest.conflist"),
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "{NETWORK}", "plugins": [
  {{"type": "bridge", "bridge": "podctlgc0", "isGateway": true, "ipMasq": true,
    "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "10.77.0.0/24"}}]], "routes": [{{"dst": "0.0.0.0/0"}}]}}}},
  {{"type": "portmap", "capabilities": {{"portMappings": true}}, "snat": true}}]}}"#
        ),
    )
    .unwrap();
    dir.to_string_lossy().into_owned()
}

fn pod(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: {ECHO_IMAGE}\n    ports:\n    - containerPort: 8080\n      hostPort: {port}\n"
    )
}

/// What of sandbox `id` is on the host.
fn host_traces(id: &str) -> Vec<String> {
    let mut left = Vec::new();
    if Path::new("/run/netns").join(format!("podctl-{id}")).exists() {
        left.push("netns".to_string());
    }
    for file in walk(&Path::new("/var/lib/cni/networks").join(NETWORK)) {
        if std::fs::read_to_string(&file).unwrap_or_default().contains(id) {
            left.push(format!("IPAM {}", file.display()));
        }
    }
    left.extend(iptables_rules().lines().filter(|l| l.contains(id)).map(String::from));
    left
}

fn ctr(env: &TestEnv, args: &[&str]) {
    let status = Command::new("ctr")
        .arg("--address")
        .arg(&env.socket)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "ctr {args:?}");
}

#[test]
fn gc_lists_and_removes_what_pods_that_no_longer_exist_left() {
    let env = require_env!("gc");
    let cni = network_dir(&env);
    let with_net = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--cni-conf-dir".to_string(), cni.clone()];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    };
    let run_ok = |args: &[&str]| {
        let args = with_net(args);
        env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert!(run_ok(&["gc"]).contains("nothing to clean up"));

    // A pod whose records vanish behind podctl's back (removed with ctr).
    run_ok(&["create", "-f", &env.manifest("lost.yaml", &pod("lost", 19580))]);
    env.wait_running("lost");
    let sandbox = env.sandbox_id("lost");
    for id in [format!("{sandbox}-web"), sandbox.clone()] {
        ctr(&env, &["tasks", "kill", "-s", "SIGKILL", &id]);
        std::thread::sleep(Duration::from_millis(300));
        ctr(&env, &["tasks", "rm", "-f", &id]);
        ctr(&env, &["containers", "rm", &id]);
    }
    assert!(!host_traces(&sandbox).is_empty(), "the pod left host traces");

    // An interrupted create.
    let manifest = env.manifest("cut.yaml", &pod("cut", 19581));
    let mut create = env
        .command(
            &with_net(&["create", "-f", &manifest])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(60));
    let _ = create.kill();
    let _ = create.wait();

    let listed = run_ok(&["gc", "--dry-run"]);
    for needle in [
        format!("would remove: sandbox {sandbox} (no pod)"),
        format!("netns podctl-{sandbox}"),
        "IPAM reservation".into(),
        "nat rules".into(),
        "state directory".into(),
        "would remove: log directory".into(),
    ] {
        assert!(listed.contains(&needle), "{needle:?} not in\n{listed}");
    }
    if env.ok(&["get", "pods"]).contains("cut") {
        assert!(listed.contains("pod cut: its create was interrupted"), "{listed}");
    }
    assert!(!host_traces(&sandbox).is_empty(), "--dry-run removed nothing");

    let removed = run_ok(&["gc"]);
    assert!(removed.contains(&format!("removed: sandbox {sandbox}")), "{removed}");
    assert_eq!(host_traces(&sandbox), Vec::<String>::new());
    assert_eq!(host_traces("cut-"), Vec::<String>::new());
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
    let files: Vec<_> = walk(&env.state_dir())
        .into_iter()
        .chain(walk(&env.log_dir()))
        .filter(|p| p.is_file())
        .collect();
    assert!(files.is_empty(), "{files:?}");
    assert!(run_ok(&["gc"]).contains("nothing to clean up"));
    // The ports work for new pods.
    run_ok(&["create", "-f", &env.manifest("again.yaml", &pod("again", 19580))]);
    common::http_eventually(19580, "after gc");
    let again = env.sandbox_id("again");
    run_ok(&["delete", "again"]);
    assert_eq!(host_traces(&again), Vec::<String>::new());
    // The bridge is this test's alone.
    let _ = Command::new("ip").args(["link", "del", "podctlgc0"]).status();
}

/// A nat rule this test inserts, removed again whatever happens.
struct ForeignRule(Vec<&'static str>);

impl Drop for ForeignRule {
    fn drop(&mut self) {
        let mut args = vec!["-t", "nat", "-D"];
        args.extend(&self.0[3..]);
        let _ = Command::new("iptables").args(&args).status();
    }
}

#[test]
fn a_host_port_another_rule_shadows_is_a_create_error_not_a_dead_pod() {
    let env = require_env!("shadowed");
    // portmap's chain exists once some pod has a host port.
    env.create("first.yaml", &pod("first", 19582));
    let spec: Vec<&'static str> = vec![
        "-t",
        "nat",
        "-I",
        "CNI-HOSTPORT-DNAT",
        "-p",
        "tcp",
        "-m",
        "comment",
        "--comment",
        "dnat name: \"othertool\" id: \"ghost\"",
        "-m",
        "multiport",
        "--dports",
        "19583",
        "-j",
        "RETURN",
    ];
    assert!(Command::new("iptables").args(&spec).status().unwrap().success());
    let rule = ForeignRule(spec);
    let manifest = env.manifest("second.yaml", &pod("second", 19583));
    let err = env.fails(&["create", "-f", &manifest]);
    assert!(
        err.contains("hostPort 19583") && err.contains("\"othertool\"") && err.contains("ghost"),
        "{err}"
    );
    assert_eq!(env.ok(&["get", "pods"]).matches("second").count(), 0);
    drop(rule);
    env.ok(&["create", "-f", &manifest]);
    common::http_eventually(19583, "reached");
    env.ok(&["delete", "first", "second"]);
}

/// An agent whose pod directory vanished still pins its pod's namespace (IP, host ports): `gc`
/// finds it by its command line and stops it, `--dry-run` only lists it; and while an agent runs,
/// a second one for the same directory refuses to start.
#[test]
fn gc_stops_an_agent_whose_pod_directory_is_gone() {
    let env = require_env!("gc-agent");
    env.create("kept.yaml", &pod("kept", 19582));
    env.wait_running("kept");
    let sandbox = env.sandbox_id("kept");
    let pod_dir = walk(&env.state_dir())
        .into_iter()
        .find(|p| p.ends_with(format!("{sandbox}/agent.pid")))
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .expect("the pod's directory");
    let pid = |file: &str| -> u32 {
        std::fs::read_to_string(pod_dir.join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (agent, monitor) = (pid("agent.pid"), pid("agent-monitor.pid"));
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
    };

    let second = env.podctl(&["agent", "run", "--pod-dir", pod_dir.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second agent started: {said}");
    assert!(said.contains("another agent of this pod runs"), "{said}");
    assert!(
        alive(agent) && alive(monitor),
        "the refused agent touched the running one"
    );
    assert!(env.ok(&["get", "pods", "kept"]).contains("Running"));

    // The directory goes away behind podctl's back (moved out of the state directory, mounts and
    // all, so it can be put back for the delete).
    let aside = env.dir.join("aside");
    std::fs::rename(&pod_dir, &aside).unwrap();
    let listed = env.ok(&["gc", "--dry-run"]);
    assert!(
        listed.contains(&format!(
            "agent (pid {agent}) of a pod whose state directory {} is gone",
            pod_dir.display()
        )),
        "{listed}"
    );
    assert!(listed.contains(&format!("agent monitor (pid {monitor})")), "{listed}");
    assert!(alive(agent) && alive(monitor), "--dry-run stopped it");
    let removed = env.ok(&["gc"]);
    assert!(removed.contains(&format!("removed: agent (pid {agent})")), "{removed}");
    env.wait_until(Duration::from_secs(10), "the orphaned agent to end", || {
        !alive(agent) && !alive(monitor)
    });

    std::fs::rename(&aside, &pod_dir).unwrap();
    env.delete_leaving_nothing("kept");
}
