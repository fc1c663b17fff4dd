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
    lifecycle:
      preStop: {{exec: {{command: [sh, -c, 'echo ticker-prestop >> /order/log']}}}}
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

    // Delete: the app container first, then the sidecars, the last started first, each after its
    // preStop hook.
    env.delete_leaving_nothing("sidecars");
    let log = std::fs::read_to_string(order.join("log")).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["main", "ticker-prestop", "ticker", "web"]
    );
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

#[test]
fn the_downward_api_gives_the_pod_its_own_fields_as_env_and_files() {
    let env = require_env!("downward");
    env.import_busybox();
    env.create(
        "downward.yaml",
        &format!(
            r#"{{"apiVersion": "v1", "kind": "Pod",
 "metadata": {{"name": "downward", "labels": {{"app": "web", "tier": "front"}}, "annotations": {{"note": "say \"hi\""}}}},
 "spec": {{
  "terminationGracePeriodSeconds": 0,
  "serviceAccountName": "builder",
  "volumes": [
   {{"name": "info", "downwardAPI": {{"items": [
     {{"path": "labels", "fieldRef": {{"fieldPath": "metadata.labels"}}}},
     {{"path": "annotations", "fieldRef": {{"fieldPath": "metadata.annotations"}}}},
     {{"path": "mem", "resourceFieldRef": {{"containerName": "main", "resource": "limits.memory", "divisor": "1Mi"}}}}]}}}},
   {{"name": "both", "projected": {{"sources": [
     {{"downwardAPI": {{"items": [{{"path": "name", "fieldRef": {{"fieldPath": "metadata.name"}}}}]}}}}]}}}}],
  "containers": [{{
   "name": "main", "image": "{BUSYBOX_IMAGE}", "command": ["sleep", "3600"],
   "resources": {{"limits": {{"memory": "64Mi", "cpu": "500m"}}}},
   "volumeMounts": [{{"name": "info", "mountPath": "/etc/info"}}, {{"name": "both", "mountPath": "/etc/both"}}],
   "env": [
    {{"name": "POD_NAME", "valueFrom": {{"fieldRef": {{"fieldPath": "metadata.name"}}}}}},
    {{"name": "POD_NAMESPACE", "valueFrom": {{"fieldRef": {{"fieldPath": "metadata.namespace"}}}}}},
    {{"name": "POD_UID", "valueFrom": {{"fieldRef": {{"fieldPath": "metadata.uid"}}}}}},
    {{"name": "APP", "valueFrom": {{"fieldRef": {{"fieldPath": "metadata.labels['app']"}}}}}},
    {{"name": "NOTE", "valueFrom": {{"fieldRef": {{"fieldPath": "metadata.annotations['note']"}}}}}},
    {{"name": "NODE", "valueFrom": {{"fieldRef": {{"fieldPath": "spec.nodeName"}}}}}},
    {{"name": "SA", "valueFrom": {{"fieldRef": {{"fieldPath": "spec.serviceAccountName"}}}}}},
    {{"name": "POD_IP", "valueFrom": {{"fieldRef": {{"fieldPath": "status.podIP"}}}}}},
    {{"name": "POD_IPS", "valueFrom": {{"fieldRef": {{"fieldPath": "status.podIPs"}}}}}},
    {{"name": "HOST_IP", "valueFrom": {{"fieldRef": {{"fieldPath": "status.hostIP"}}}}}},
    {{"name": "CPU_M", "valueFrom": {{"resourceFieldRef": {{"resource": "limits.cpu", "divisor": "1m"}}}}}},
    {{"name": "MEM_REQ", "valueFrom": {{"resourceFieldRef": {{"resource": "requests.memory"}}}}}}]}}]}}}}
"#
        ),
    );
    env.wait_running("downward");
    let json = env.pod_json("downward");
    let printenv = env.ok(&["exec", "downward", "--", "sh", "-c", "env"]);
    let var = |name: &str| {
        printenv
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {printenv}"))
            .to_string()
    };
    assert_eq!(var("POD_NAME"), "downward");
    assert_eq!(var("POD_NAMESPACE"), "default");
    assert_eq!(var("POD_UID"), json["metadata"]["uid"].as_str().unwrap());
    assert_eq!(var("APP"), "web");
    assert_eq!(var("NOTE"), "say \"hi\"");
    assert_eq!(var("NODE"), json["spec"]["nodeName"].as_str().unwrap());
    assert_eq!(var("SA"), "builder");
    assert_eq!(var("POD_IP"), json["status"]["podIP"].as_str().unwrap());
    assert_eq!(var("POD_IPS"), var("POD_IP"));
    assert_eq!(var("HOST_IP"), json["status"]["hostIP"].as_str().unwrap());
    assert_eq!(var("CPU_M"), "500");
    assert_eq!(
        var("MEM_REQ"),
        (64u64 << 20).to_string(),
        "a request unset reads as the limit"
    );

    let cat = |path: &str| env.ok(&["exec", "downward", "--", "sh", "-c", &format!("cat {path}")]);
    assert_eq!(cat("/etc/info/labels"), "app=\"web\"\ntier=\"front\"\n");
    assert_eq!(cat("/etc/info/annotations"), "note=\"say \\\"hi\\\"\"\n");
    assert_eq!(cat("/etc/info/mem"), "64");
    assert_eq!(cat("/etc/both/name"), "downward");
    env.delete_leaving_nothing("downward");

    // A field the downward API does not have, and a resource on a container that does not
    // exist: refused with the field path, nothing made.
    let bad = env.manifest(
        "badfield.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: badfield}}\nspec:\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    env:\n    - name: X\n      valueFrom: {{fieldRef: {{fieldPath: status.phase}}}}\n"
        ),
    );
    env.fails_leaving_nothing(
        &["create", "-f", &bad],
        &[
            "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
            "status.phase",
            "status.podIP",
        ],
    );
    let bad = env.manifest(
        "badres.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: badres}}\nspec:\n  volumes:\n  - name: v\n    downwardAPI:\n      items:\n      - path: mem\n        resourceFieldRef: {{resource: limits.memory}}\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n"
        ),
    );
    env.fails_leaving_nothing(
        &["create", "-f", &bad],
        &[
            "spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName",
            "required",
        ],
    );
}

#[test]
fn lifecycle_hooks_run_after_start_and_before_the_stop_signal() {
    let env = require_env!("hooks");
    env.import_busybox();
    let out = env.dir.join("hooks");
    std::fs::create_dir_all(&out).unwrap();
    env.create(
        "hooks.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: hooks}}
spec:
  terminationGracePeriodSeconds: 10
  volumes: [{{name: out, hostPath: {{path: {out}}}}}]
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, 'trap "echo term >> /out/log; exit 0" TERM; while true; do sleep 0.1; done']
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, 'echo post-start >> /out/log']}}}}
      preStop: {{exec: {{command: [sh, -c, 'echo pre-stop >> /out/log; sleep 1']}}}}
  - name: web
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, 'trap "kill $!; exit 0" TERM; httpd -f -p 8082 -h / & wait']
    lifecycle:
      preStop: {{sleep: {{seconds: 1}}}}
"#,
            out = out.display()
        ),
    );
    env.wait_running("hooks");
    let log = || std::fs::read_to_string(out.join("log")).unwrap_or_default();
    env.wait_until(Duration::from_secs(10), "the postStart hook ran", || {
        log() == "post-start\n"
    });
    let started = std::time::Instant::now();
    env.delete_leaving_nothing("hooks");
    // preStop ran before the stop signal, and its second counted against the grace period.
    assert_eq!(log(), "post-start\npre-stop\nterm\n");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(8),
        "{took:?}"
    );

    // A failing postStart kills the run: the container restarts per the policy, with an event.
    env.create(
        "failing.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: failing}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: [sleep, '3600']
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, 'exit 3']}}}}
"#
        ),
    );
    env.wait_until(Duration::from_secs(20), "a FailedPostStartHook event", || {
        env.ok(&["events", "failing"]).contains("FailedPostStartHook")
    });
    env.wait_until(Duration::from_secs(30), "the container restarted", || {
        env.container_status("failing", "main")["restartCount"].as_u64() >= Some(1)
    });
    env.delete_leaving_nothing("failing");
}

#[test]
fn termination_messages_show_in_status_and_describe() {
    let env = require_env!("termination");
    env.import_busybox();
    env.create(
        "ended.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: ended}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 1000}}
  containers:
  - name: file
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, 'echo -n "disk full" > /dev/termination-log; exit 2']
  - name: logs
    image: {BUSYBOX_IMAGE}
    terminationMessagePath: /tmp/why
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, 'echo first; echo last words; exit 1']
"#
        ),
    );
    env.wait_until(Duration::from_secs(20), "both containers ended", || {
        env.pod_json("ended")["status"]["phase"] == "Failed"
    });
    let file = env.container_status("ended", "file");
    assert_eq!(file["state"]["terminated"]["message"], "disk full", "{file:#}");
    let logs = env.container_status("ended", "logs");
    assert_eq!(logs["state"]["terminated"]["message"], "first\nlast words", "{logs:#}");
    let describe = env.ok(&["describe", "pod", "ended"]);
    assert!(describe.contains("Message:      disk full"), "{describe}");
    env.delete_leaving_nothing("ended");

    // A run's message stays with it: the next run's status shows it as the last state's.
    let path = env.manifest(
        "again.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: again}}\nspec:\n  restartPolicy: OnFailure\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'echo -n \"run ended\" > /dev/termination-log; sleep 1; exit 1']\n"
        ),
    );
    env.ok(&["--backoff-base", "0.2", "create", "-f", &path]);
    env.wait_until(Duration::from_secs(20), "a restart", || {
        env.container_status("again", "main")["restartCount"].as_u64() >= Some(1)
    });
    let status = env.container_status("again", "main");
    assert_eq!(status["lastState"]["terminated"]["message"], "run ended", "{status:#}");
    env.delete_leaving_nothing("again");
}

#[test]
fn pod_level_fields_shape_hosts_dns_namespaces_and_the_deadline() {
    let env = require_env!("podfields");
    env.import_busybox();
    env.create(
        "fields.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: fields}}
spec:
  hostname: box
  subdomain: team
  hostPID: true
  hostIPC: true
  dnsPolicy: None
  dnsConfig:
    nameservers: [192.0.2.53]
    searches: [svc.example]
    options: [{{name: ndots, value: "5"}}]
  hostAliases: [{{ip: 10.1.2.3, hostnames: [db, db.local]}}]
  activeDeadlineSeconds: 6
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, 'trap "exit 0" TERM; while true; do sleep 0.1; done']
"#
        ),
    );
    env.wait_running("fields");
    let run = |script: &str| env.ok(&["exec", "fields", "--", "sh", "-c", script]);
    let hosts = run("cat /etc/hosts");
    let ip = env.pod_json("fields")["status"]["podIP"].as_str().unwrap().to_string();
    assert!(
        hosts.contains(&format!("{ip}\tbox.team.default.svc.cluster.local\tbox\n")),
        "{hosts}"
    );
    assert!(hosts.contains("10.1.2.3\tdb\tdb.local\n"), "{hosts}");
    assert_eq!(
        run("cat /etc/resolv.conf"),
        "nameserver 192.0.2.53\nsearch svc.example\noptions ndots:5\n"
    );
    for kind in ["pid", "ipc"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        assert_eq!(
            run(&format!("readlink /proc/self/ns/{kind}")).trim(),
            host.to_str().unwrap(),
            "host{kind}"
        );
    }
    // The deadline stops the members for good: the pod fails with DeadlineExceeded.
    env.wait_until(Duration::from_secs(20), "the deadline to end the pod", || {
        let json = env.pod_json("fields");
        json["status"]["phase"] == "Failed" && json["status"]["reason"] == "DeadlineExceeded"
    });
    let table = env.ok(&["get", "pods", "fields"]);
    assert!(table.contains("DeadlineExceeded"), "{table}");
    assert!(env.ok(&["events", "fields"]).contains("DeadlineExceeded"));
    std::thread::sleep(Duration::from_secs(1));
    let status = env.container_status("fields", "main");
    assert_eq!(status["restartCount"], 0, "not restarted: {status:#}");
    env.delete_leaving_nothing("fields");
}

#[test]
fn a_host_network_pod_lives_in_the_host_network() {
    let env = require_env!("hostnet");
    env.import_busybox();
    let port = 19477;
    let pod = |name: &str| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, 'mkdir -p /tmp/www; echo hostnet > /tmp/www/index.html; exec httpd -f -p 127.0.0.1:{port} -h /tmp/www']
    ports: [{{containerPort: {port}}}]
"#
        )
    };
    env.create("hostnet.yaml", &pod("hostnet"));
    env.wait_running("hostnet");
    env.wait_until(Duration::from_secs(10), "the member to answer on the host", || {
        common::http(port, "GET", "/", "").is_ok_and(|r| r.contains("hostnet"))
    });
    let run = |script: &str| env.ok(&["exec", "hostnet", "--", "sh", "-c", script]);
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(run("readlink /proc/self/ns/net").trim(), host_net.to_str().unwrap());
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(run("hostname").trim(), host_name.trim());
    let json = env.pod_json("hostnet");
    assert_eq!(json["status"]["podIP"], json["status"]["hostIP"], "{json:#}");
    // It has no netns or CNI state, and gc takes nothing of it for a leftover.
    let sandbox = env.sandbox_id("hostnet");
    let gc = env.ok(&["gc", "--dry-run"]);
    assert!(!gc.contains(&sandbox), "{gc}");
    // Its port is the host's: a second pod that wants it is refused, and nothing is made.
    let second = env.manifest("second.yaml", &pod("second"));
    // (ctr lists tasks in no fixed order: compared as sets.)
    let objects = || {
        let mut all = env.containerd_objects();
        all.sort();
        all
    };
    let before = objects();
    let refused = env.fails(&["create", "-f", &second]);
    assert!(
        refused.contains("containerPort") && refused.contains(&port.to_string()),
        "{refused}"
    );
    assert_eq!(objects(), before, "the refused create made nothing");
    env.delete_leaving_nothing("hostnet");

    let bad = env.manifest(
        "mismatch.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: mismatch}}\nspec:\n  hostNetwork: true\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    ports: [{{containerPort: 80, hostPort: 8080}}]\n"),
    );
    env.fails_leaving_nothing(
        &["create", "-f", &bad],
        &["spec.containers[0].ports[0].hostPort", "must match containerPort 80"],
    );
}

#[test]
fn create_never_waits_without_bound_for_an_init_container() {
    let env = require_env!("initwait");
    env.import_busybox();
    let pod = |name: &str, code: u8| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n  initContainers:\n  - {{name: slow, image: {BUSYBOX_IMAGE}, command: [sh, -c, 'sleep 3; exit {code}']}}\n  containers:\n  - {{name: main, image: {BUSYBOX_IMAGE}, command: [sleep, '3600']}}\n"
        )
    };
    let path = env.manifest("slow.yaml", &pod("slow", 0));
    let began = std::time::Instant::now();
    env.ok(&["--init-wait", "1", "create", "-f", &path]);
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "create returned after {:?}",
        began.elapsed()
    );
    let table = env.ok(&["get", "pods", "slow"]);
    assert!(table.contains("Init:0/1"), "{table}");
    // The agent waits it out and starts the member.
    env.wait_running("slow");
    env.delete_leaving_nothing("slow");
    // One that fails under Never: Init:Error, and the member never starts.
    let path = env.manifest("failing.yaml", &pod("failing", 1));
    env.ok(&["--init-wait", "1", "create", "-f", &path]);
    env.wait_until(Duration::from_secs(20), "Init:Error", || {
        env.ok(&["get", "pods", "failing"]).contains("Init:Error")
    });
    env.delete_leaving_nothing("failing");
}
