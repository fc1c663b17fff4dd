//! The Pod fields users bring from Kubernetes, on a real containerd and checked from inside the
//! members: native sidecars (init order, kept running and restarted whatever the pod's policy,
//! READY, stopped after the app containers, the last first), `podctl wait`, and the status
//! conditions.

mod common;

use std::time::Duration;

use common::BUSYBOX_IMAGE;

/// A busybox sh loop that appends `NAME` to /order/log when it gets SIGTERM.
fn looping(name: &str) -> String {
    format!("trap \"echo {name} >> /order/log; exit 0\" TERM; while true; do sleep 0.1; done")
}

#[test]
fn sidecars_start_in_init_order_keep_running_and_stop_after_the_app() {
    let env = require_env!("sidecars");
    env.import_busybox();
    let order = env.dir.join("order");
    std::fs::create_dir_all(&order).unwrap();
    let order_dir = order.display().to_string();
    env.create(
        "sidecars.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: sidecars}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  volumes:
  - {{name: www, emptyDir: {{}}}}
  - {{name: order, hostPath: {{path: {order_dir}}}}}
  initContainers:
  - name: setup
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, 'echo hello-from-sidecar > /www/index.html']
    volumeMounts: [{{name: www, mountPath: /www}}]
  - name: web
    image: {BUSYBOX_IMAGE}
    restartPolicy: Always
    command: [sh, -c, 'trap "echo web >> /order/log; kill $!; exit 0" TERM; httpd -f -p 8081 -h /www & wait']
    volumeMounts: [{{name: www, mountPath: /www}}, {{name: order, mountPath: /order}}]
    startupProbe: {{tcpSocket: {{port: 8081}}, periodSeconds: 1}}
  - name: ticker
    image: {BUSYBOX_IMAGE}
    restartPolicy: Always
    command: [sh, -c, '{ticker}']
    volumeMounts: [{{name: order, mountPath: /order}}]
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, 'wget -qO- http://127.0.0.1:8081/ > /order/fetched; {main}']
    volumeMounts: [{{name: order, mountPath: /order}}]
"#,
            ticker = looping("ticker"),
            main = looping("main"),
        ),
    );
    let waited = env.podctl(&["wait", "--for=condition=Ready", "pod/sidecars", "--timeout=30s"]);
    assert!(
        waited.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&waited.stderr),
        env.ok(&["describe", "pod", "sidecars"]),
        env.ok(&["get", "pod", "sidecars", "-o", "yaml"])
    );
    let table = env.ok(&["get", "pods", "sidecars"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[1..3], ["3/3", "Running"], "{table}");
    // The web sidecar served before the app container started: its startup probe held it back.
    let fetched = std::fs::read_to_string(order.join("fetched")).unwrap();
    assert_eq!(fetched.trim(), "hello-from-sidecar");

    let json = env.pod_json("sidecars");
    let init = json["status"]["initContainerStatuses"].as_array().unwrap();
    let names: Vec<&str> = init.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["setup", "web", "ticker"]);
    assert_eq!(init[0]["state"]["terminated"]["reason"], "Completed", "{json:#}");
    assert!(init[1]["state"]["running"].is_object(), "{json:#}");
    assert_eq!(json["status"]["containerStatuses"].as_array().unwrap().len(), 1);
    let conditions: Vec<(String, String)> = json["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap().into(), c["status"].as_str().unwrap().into()))
        .collect();
    for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(conditions.contains(&(kind.into(), "True".into())), "{conditions:?}");
    }
    assert_eq!(json["status"]["qosClass"], "BestEffort");

    // A sidecar is restarted although the pod's restartPolicy is Never.
    let pids = env.pids("sidecars");
    let describe = env.ok(&["describe", "pod", "sidecars"]);
    let names: Vec<&str> = describe
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.strip_suffix(':'))
        .filter(|l| !l.starts_with(' '))
        .collect();
    let ticker = names.iter().position(|n| *n == "ticker").expect("ticker in describe");
    let pid = nix::unistd::Pid::from_raw(pids[1 + ticker] as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    env.wait_until(Duration::from_secs(20), "the ticker sidecar restarted", || {
        let json = env.pod_json("sidecars");
        json["status"]["initContainerStatuses"][2]["restartCount"] == 1
            && json["status"]["initContainerStatuses"][2]["state"]["running"].is_object()
    });

    // Delete: the app container first, then the sidecars, the last started first.
    env.delete_leaving_nothing("sidecars");
    let log = std::fs::read_to_string(order.join("log")).unwrap();
    assert_eq!(log.lines().collect::<Vec<_>>(), ["main", "ticker", "web"]);
    env.ok(&["wait", "--for=delete", "pod/sidecars", "--timeout=5s"]);
}

#[test]
fn a_pod_whose_app_containers_ended_stops_its_sidecars_and_completes() {
    let env = require_env!("sidecar-job");
    env.import_busybox();
    env.create(
        "job.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: job}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: helper
    image: {BUSYBOX_IMAGE}
    restartPolicy: Always
    command: [sh, -c, 'trap "exit 0" TERM; while true; do sleep 0.1; done']
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, 'sleep 1; echo done']
"#
        ),
    );
    env.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/job",
        "--timeout=30s",
    ]);
    let json = env.pod_json("job");
    assert_eq!(
        json["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 0,
        "{json:#}"
    );
    let table = env.ok(&["get", "pods", "job"]);
    assert!(table.contains("Completed"), "{table}");
    // Waiting for what does not come ends at the timeout, with an error that says so.
    let waited = env.fails(&["wait", "--for=condition=Ready", "pod/job", "--timeout=1s"]);
    assert!(waited.contains("timed out after 1s"), "{waited}");
    env.delete_leaving_nothing("job");
}
