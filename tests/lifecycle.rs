//! Supervision like kubelet's, by the pod's agent on a real containerd: restart policies, the
//! crash-loop backoff, RESTARTS and STATUS over time, `logs --previous`.

mod common;

use std::time::{Duration, Instant};

use common::{TestEnv, BUSYBOX_IMAGE};

fn pod(name: &str, policy: &str, script: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: {policy}\n  terminationGracePeriodSeconds: 1\n  containers:\n  \
         - name: main\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, '{script}']\n"
    )
}

/// (READY, STATUS, RESTARTS) columns of the pod's row.
fn row(env: &TestEnv, name: &str) -> (String, String, String) {
    let table = env.ok(&["get", "pods", name]);
    let line = table.lines().nth(1).unwrap_or_default().to_string();
    let cols: Vec<&str> = line.split_whitespace().collect();
    // RESTARTS may read `3 (2s ago)`: everything between STATUS and AGE.
    let restarts = cols[3..cols.len() - 1].join(" ");
    (cols[1].to_string(), cols[2].to_string(), restarts)
}

fn restarts(env: &TestEnv, name: &str) -> u32 {
    env.pod_json(name)["status"]["containerStatuses"][0]["restartCount"]
        .as_u64()
        .unwrap() as u32
}

#[test]
fn always_restarts_with_a_growing_backoff() {
    let env = require_env!("always");
    env.import_busybox();
    let path = env.manifest(
        "always.yaml",
        &pod("crasher", "Always", "echo run-$(date +%s%N); echo oops >&2; exit 1"),
    );
    env.ok(&["--backoff-base", "0.4", "create", "-f", &path]);
    // Record when each restart happened.
    let start = Instant::now();
    let mut seen = vec![(0u32, Duration::ZERO)];
    let mut saw_crash_loop = false;
    while seen.last().unwrap().0 < 4 {
        assert!(start.elapsed() < Duration::from_secs(40), "only {seen:?} restarts");
        let n = restarts(&env, "crasher");
        if n > seen.last().unwrap().0 {
            seen.push((n, start.elapsed()));
        }
        saw_crash_loop |= row(&env, "crasher").1 == "CrashLoopBackOff";
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(saw_crash_loop, "STATUS showed CrashLoopBackOff while waiting");
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(gaps[3] > gaps[1], "the delay grows: {gaps:?}");
    let (_, _, restarts_col) = row(&env, "crasher");
    assert!(restarts_col.contains("ago)"), "RESTARTS like kubectl: {restarts_col}");
    let json = env.pod_json("crasher");
    assert_eq!(
        json["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
    let previous = env.ok(&["logs", "crasher", "--previous"]);
    assert!(previous.contains("run-") && previous.contains("oops\n"), "{previous}");
    // Each line as logged, kept in the CRI format with its stream, and its time on request.
    let stamped = env.ok(&["logs", "crasher", "--previous", "--timestamps"]);
    for line in stamped.lines() {
        let (time, text) = line.split_once(' ').unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{line}");
        assert!(text.starts_with("run-") || text == "oops", "{line}");
    }
    assert_eq!(
        env.ok(&["logs", "crasher", "--previous", "--tail", "1"])
            .lines()
            .count(),
        1
    );
    let describe = env.ok(&["describe", "pod", "crasher"]);
    let log = describe
        .lines()
        .find_map(|l| l.trim().strip_prefix("Log:"))
        .unwrap()
        .trim();
    let log = std::path::Path::new(log);
    let run: u32 = log.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let raw = std::fs::read_to_string(log.with_file_name(format!("{}.log", run - 1))).unwrap();
    assert!(raw.contains(" stderr F oops\n"), "{raw}");
    let describe = env.ok(&["describe", "pod", "crasher"]);
    assert!(
        describe.contains("Last State:     Terminated") && describe.contains("Exit Code:    1"),
        "{describe}"
    );
    env.delete_leaving_nothing("crasher");
}

#[test]
fn on_failure_and_never_follow_the_exit_code() {
    let env = require_env!("policies");
    env.import_busybox();
    let cases = [
        ("onfail-ok", "OnFailure", "exit 0", "Completed", false),
        ("onfail-bad", "OnFailure", "exit 1", "", true),
        ("never-ok", "Never", "exit 0", "Completed", false),
        ("never-bad", "Never", "exit 3", "Error", false),
        ("always-ok", "Always", "exit 0", "", true),
    ];
    for (name, policy, script, _, _) in cases {
        let path = env.manifest(&format!("{name}.yaml"), &pod(name, policy, script));
        env.ok(&["--backoff-base", "0.3", "create", "-f", &path]);
    }
    for (name, _, _, status, restarts_expected) in cases {
        if restarts_expected {
            env.wait_until(Duration::from_secs(20), &format!("{name} to restart"), || {
                restarts(&env, name) >= 1
            });
        } else {
            env.wait_until(Duration::from_secs(20), &format!("{name} to end {status}"), || {
                row(&env, name).1 == status
            });
            std::thread::sleep(Duration::from_millis(800));
            assert_eq!(restarts(&env, name), 0, "{name} is not restarted");
            assert_eq!(row(&env, name).0, "0/1");
        }
    }
    assert_eq!(
        env.pod_json("never-bad")["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        3
    );
    let sandboxes: Vec<String> = cases.iter().map(|(name, ..)| env.sandbox_id(name)).collect();
    let names: Vec<&str> = cases.iter().map(|(name, ..)| *name).collect();
    env.ok(&[&["delete"][..], &names].concat());
    for sandbox in sandboxes {
        env.assert_nothing_left(&sandbox);
    }
}

#[test]
fn stop_start_and_restart_keep_the_sandbox() {
    let env = require_env!("stopstart");
    env.import_busybox();
    let path = env.manifest(
        "ss.yaml",
        &pod(
            "ss",
            "Always",
            "echo started-$(date +%s%N); trap \"exit 0\" TERM; while true; do sleep 0.1; done",
        ),
    );
    env.ok(&["create", "-f", &path]);
    env.wait_for_log("ss", "main", "started-");
    let ip = env.pod_json("ss")["status"]["podIP"].clone();
    env.ok(&["stop", "ss"]);
    let (ready, status, _) = row(&env, "ss");
    assert_eq!((ready.as_str(), status.as_str()), ("0/1", "Stopped"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        row(&env, "ss").1,
        "Stopped",
        "the supervisor does not restart a stopped pod"
    );
    let err = env.fails(&["start", "nope"]);
    assert!(err.contains("nope"), "{err}");
    env.ok(&["start", "ss"]);
    env.wait_until(Duration::from_secs(10), "ss to run again", || {
        row(&env, "ss").1 == "Running"
    });
    assert_eq!(env.pod_json("ss")["status"]["podIP"], ip, "same sandbox, same IP");
    let before = env.logs("ss", "main").matches("started-").count();
    env.ok(&["restart", "ss"]);
    env.wait_until(Duration::from_secs(10), "ss to log a new start", || {
        env.logs("ss", "main").matches("started-").count() > before
    });
    assert_eq!(row(&env, "ss").1, "Running");
    env.delete_leaving_nothing("ss");
}

#[test]
fn probes_drive_ready_and_restart_the_unhealthy() {
    let env = require_env!("probes");
    env.import_busybox();
    let path = env.manifest(
        "probes.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: probed}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  \
             - name: web\n    image: {echo}\n    readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}\n  \
             - name: flag\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'sleep 2; touch /tmp/ready; sleep 4; rm /tmp/ready; sleep 3600']\n    \
             readinessProbe: {{exec: {{command: [test, -f, /tmp/ready]}}, periodSeconds: 1, failureThreshold: 1}}\n  \
             - name: sick\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'sleep 3600']\n    \
             livenessProbe: {{tcpSocket: {{port: 9999}}, periodSeconds: 1, failureThreshold: 2}}\n",
            echo = common::ECHO_IMAGE
        ),
    );
    env.ok(&["--backoff-base", "0.2", "create", "-f", &path]);
    let ready = |name: &str| -> bool {
        let json = env.pod_json("probed");
        json["status"]["containerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == name && s["ready"] == true)
    };
    // The HTTP probe runs from the pod's netns: no curl in the echo image.
    env.wait_until(Duration::from_secs(15), "web to be ready", || ready("web"));
    assert!(!ready("flag"), "flag is not ready before its file exists");
    env.wait_until(Duration::from_secs(15), "flag to become ready", || ready("flag"));
    env.wait_until(Duration::from_secs(15), "flag to become unready again", || {
        !ready("flag")
    });
    // The liveness probe never succeeds: the member is killed and restarted.
    env.wait_until(Duration::from_secs(30), "sick to be restarted", || {
        let json = env.pod_json("probed");
        json["status"]["containerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "sick" && s["restartCount"].as_u64() >= Some(1))
    });
    env.delete_leaving_nothing("probed");
}

/// httpGet probes send what the manifest asks: its headers in order, its Host header instead of the
/// default, and the path with its query; the member records each request it gets.
#[test]
fn http_probes_send_the_manifests_headers() {
    let env = require_env!("probe-headers");
    env.import_busybox();
    let answer = r"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    env.create(
        "headers.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: headers}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  \
             - name: recorder\n    image: {BUSYBOX_IMAGE}\n    \
             command: [sh, -c, 'while true; do printf \"{answer}\" | nc -l -p 8080; done']\n    \
             readinessProbe:\n      periodSeconds: 1\n      httpGet:\n        path: /healthz?from=probe\n        port: 8080\n        \
             httpHeaders:\n        - {{name: X-Probe-Second, value: two}}\n        - {{name: Host, value: probe.example}}\n        \
             - {{name: X-Probe-First, value: 'one, with spaces'}}\n"
        ),
    );
    let log = env.wait_for_log("headers", "recorder", "X-Probe-First");
    let request: Vec<&str> = log
        .lines()
        .take_while(|l| !l.trim_end_matches('\r').is_empty())
        .collect();
    let request: Vec<&str> = request.iter().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(
        request,
        [
            "GET /healthz?from=probe HTTP/1.1",
            "User-Agent: kube-probe/podctl",
            "Accept: */*",
            "X-Probe-Second: two",
            "Host: probe.example",
            "X-Probe-First: one, with spaces",
            "Connection: close",
        ],
        "the request as the member received it:\n{log}"
    );
    env.wait_until(Duration::from_secs(15), "the recorder to be ready", || {
        env.container_status("headers", "recorder")["ready"] == true
    });
    // A header that would split the request is refused before anything is made.
    let bad = env.manifest(
        "bad-header.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: badheader}}\nspec:\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    \
             readinessProbe: {{httpGet: {{port: 80, scheme: HTTPS, httpHeaders: [{{name: 'X Bad', value: v}}]}}}}\n"
        ),
    );
    let err = env.fails(&["create", "-f", &bad]);
    assert!(
        err.contains("spec.containers[0].readinessProbe.httpGet.httpHeaders[0].name"),
        "{err}"
    );
    env.delete_leaving_nothing("headers");
}

#[test]
fn exec_passes_stdio_and_the_exit_code_through() {
    use std::io::Write;
    use std::process::Stdio;
    let env = require_env!("exec");
    env.import_busybox();
    let path = env.manifest("ex.yaml", &pod("ex", "Always", "sleep 3600"));
    env.ok(&["create", "-f", &path]);
    env.wait_running("ex");
    let out = env.podctl(&["exec", "ex", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    // -i: standard input reaches the command, and its end closes the command's stdin.
    let mut child = env
        .command(&["exec", "-i", "ex", "-c", "main", "--", "sh", "-c", "tr a-z A-Z; exit 3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"piped in\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PIPED IN\n");
    // -t: a real terminal inside.
    let out = env.podctl(&["exec", "-t", "ex", "--", "sh", "-c", "test -t 0 && tty"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("/dev/pts/"));
    let err = env.fails(&["exec", "ex", "--", "/does/not/exist"]);
    assert!(err.contains("/does/not/exist"), "{err}");
    env.delete_leaving_nothing("ex");
    assert!(!env.state_dir().join("exec-").exists());
}

/// Reads a child's stdout until `done` holds for what was read, then kills the child (by PID).
fn read_until(mut child: std::process::Child, what: &str, done: impl Fn(&str) -> bool) -> String {
    use std::io::Read;
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let start = Instant::now();
    while !done(&seen) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} never came; got:\n{seen}"
        );
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}

#[test]
fn logs_follow_and_get_watch_see_restarts() {
    use std::process::Stdio;
    let env = require_env!("follow");
    env.import_busybox();
    let path = env.manifest(
        "tick.yaml",
        &pod(
            "tick",
            "Always",
            "for i in 1 2 3; do echo tick-$i; sleep 0.3; done; exit 1",
        ),
    );
    env.ok(&["--backoff-base", "0.3", "create", "-f", &path]);
    let follow = env
        .command(&["logs", "-f", "tick"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = read_until(follow, "logs across a restart", |s| s.matches("tick-3").count() >= 2);
    assert!(logs.starts_with("tick-1\n"), "{logs}");
    let watch = env
        .command(&["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rows = read_until(watch, "a crash-loop row", |s| {
        s.contains("CrashLoopBackOff") && s.contains("Running")
    });
    assert!(rows.starts_with("NAME"), "{rows}");
    assert_eq!(rows.matches("NAME").count(), 1, "the header once: {rows}");
    env.delete_leaving_nothing("tick");
}

#[test]
fn supervision_survives_a_containerd_restart_and_an_agent_kill() {
    let mut env = require_env!("reliable");
    env.import_busybox();
    let path = env.manifest("rel.yaml", &pod("rel", "Always", "sleep 0.5; exit 1"));
    env.ok(&["--backoff-base", "0.2", "create", "-f", &path]);
    env.wait_until(Duration::from_secs(20), "a first restart", || {
        restarts(&env, "rel") >= 1
    });

    // containerd restarted mid-life: the member keeps being restarted afterwards.
    env.restart_containerd();
    let after_restart = restarts(&env, "rel");
    env.wait_until(Duration::from_secs(30), "restarts after containerd came back", || {
        restarts(&env, "rel") >= after_restart + 2
    });

    // The agent SIGKILLed: its monitor starts it again, and the new agent re-adopts the pod.
    let sandbox = env.sandbox_id("rel");
    let pid_file = env.state_dir().join("default").join(&sandbox).join("agent.pid");
    let agent_pid = || -> i32 { std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap() };
    let killed = agent_pid();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(killed), nix::sys::signal::Signal::SIGKILL).unwrap();
    let at_kill = restarts(&env, "rel");
    env.wait_until(Duration::from_secs(10), "a new agent", || {
        agent_pid() != killed && env.ok(&["agent", "status", "rel"]).contains("\"pid\"")
    });
    env.wait_until(Duration::from_secs(30), "restarts after the agent came back", || {
        restarts(&env, "rel") >= at_kill + 2
    });
    // Its monitor killed too: `get` warns that nothing supervises the pod, and delete still works.
    let monitor_file = pid_file.with_file_name("agent-monitor.pid");
    let monitor: i32 = std::fs::read_to_string(&monitor_file).unwrap().trim().parse().unwrap();
    for pid in [monitor, agent_pid()] {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    }
    env.wait_until(Duration::from_secs(5), "a warning about the agent", || {
        let out = env.command(&["get", "pods"]).output().unwrap();
        String::from_utf8_lossy(&out.stderr).contains("`podctl agent restart rel`")
    });
    env.ok(&["delete", "rel"]);
    env.assert_nothing_left(&sandbox);
}

#[test]
fn init_containers_run_in_order_before_the_members() {
    let env = require_env!("init");
    env.import_busybox();
    let pod = |name: &str, policy: &str, second: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: {policy}\n  terminationGracePeriodSeconds: 1\n  volumes: [{{name: work, emptyDir: {{}}}}]\n  \
             initContainers:\n  - name: first\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'echo one >> /work/order; sleep 1.5']\n    volumeMounts: [{{name: work, mountPath: /work}}]\n  \
             - name: second\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, '{second}']\n    volumeMounts: [{{name: work, mountPath: /work}}]\n  \
             containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'cat /work/order; sleep 3600']\n    volumeMounts: [{{name: work, mountPath: /work}}]\n"
        )
    };
    // `create` waits for the init containers; meanwhile `get` shows their progress.
    let path = env.manifest("ok.yaml", &pod("inits", "Always", "echo two >> /work/order"));
    let mut create = env.command(&["create", "-f", &path]).spawn().unwrap();
    let mut statuses = Vec::new();
    while create.try_wait().unwrap().is_none() {
        // Not found until the sandbox is on record.
        let out = env.command(&["get", "pods", "inits"]).output().unwrap();
        let table = String::from_utf8_lossy(&out.stdout).into_owned();
        let Some(status) = table.lines().nth(1).and_then(|l| l.split_whitespace().nth(2)) else {
            continue;
        };
        let status = status.to_string();
        if statuses.last() != Some(&status) {
            statuses.push(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(create.wait().unwrap().success());
    assert!(statuses.contains(&"Init:0/2".to_string()), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| ["Pending", "ContainerCreating", "Running"].contains(&s.as_str()) || s.starts_with("Init:")),
        "{statuses:?}"
    );
    assert_eq!(row(&env, "inits").1, "Running");
    let logs = env.wait_for_log("inits", "main", "two");
    assert_eq!(
        logs, "one\ntwo\n",
        "init containers ran once each, in order, before main"
    );
    assert!(
        env.ok(&["get", "pods"]).contains("1/1"),
        "init containers are not members"
    );
    let events = env.ok(&["events", "inits"]);
    assert!(events.contains("Init container second completed"), "{events}");
    env.delete_leaving_nothing("inits");

    // Under Always, a failing init container is retried by the pod's agent, with the backoff, until
    // it succeeds; `create` returns at its first failure, and the member starts afterwards.
    let flaky = "n=$(cat /work/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /work/n; echo attempt-$n; [ $n -ge 3 ]";
    let path = env.manifest("retry.yaml", &pod("retry", "Always", flaky));
    env.ok(&["--backoff-base", "0.3", "create", "-f", &path]);
    let mut statuses: Vec<String> = Vec::new();
    env.wait_until(
        Duration::from_secs(30),
        "the member to run after the retried init container",
        || {
            let status = row(&env, "retry").1;
            if statuses.last() != Some(&status) {
                statuses.push(status.clone());
            }
            status == "Running"
        },
    );
    assert!(statuses.contains(&"Init:CrashLoopBackOff".to_string()), "{statuses:?}");
    assert_eq!(env.wait_for_log("retry", "main", "one"), "one\n");
    // An init container's logs, as `kubectl logs POD -c INIT`: its last run, and the one before.
    assert_eq!(env.ok(&["logs", "retry", "-c", "second"]), "attempt-3\n");
    assert_eq!(env.ok(&["logs", "retry", "-c", "second", "--previous"]), "attempt-2\n");
    let events = env.ok(&["events", "retry"]);
    assert!(
        events.contains("Back-off restarting failed init container second")
            && events.contains("Init container second completed")
            && events.contains("Started container main"),
        "{events}"
    );
    env.delete_leaving_nothing("retry");

    // One that never succeeds keeps the pod in Init:CrashLoopBackOff; delete still cleans up.
    let path = env.manifest("stuck.yaml", &pod("stuck", "OnFailure", "exit 1"));
    env.ok(&["--backoff-base", "0.3", "create", "-f", &path]);
    let member_waits_for_init = || {
        // After a stop and start the agent's backoff goes on where it was (up to ~5 s here),
        // and a loaded CI machine adds to it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while row(&env, "stuck").1 != "Init:CrashLoopBackOff" {
            if Instant::now() > deadline {
                let pod_dir = env.state_dir().join("default").join(env.sandbox_id("stuck"));
                panic!(
                    "no Init:CrashLoopBackOff after 20s: {:?}\n{}\nthe agent's log:\n{}",
                    row(&env, "stuck"),
                    env.ok(&["describe", "pod", "stuck"]),
                    std::fs::read_to_string(pod_dir.join("agent.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let describe = env.ok(&["describe", "pod", "stuck"]);
        assert!(
            describe.contains("PodInitializing"),
            "the member waits for them:\n{describe}"
        );
    };
    member_waits_for_init();
    // Stopped and started again, the pod goes back to its init containers, not to its members.
    env.ok(&["stop", "stuck"]);
    env.ok(&["start", "stuck"]);
    member_waits_for_init();
    env.delete_leaving_nothing("stuck");

    // A failing init container with restartPolicy Never fails the create, which leaves nothing.
    let path = env.manifest("bad.yaml", &pod("badinit", "Never", "echo broken-init; exit 4"));
    let err = env.fails(&["create", "-f", &path]);
    assert!(
        err.contains("init container second exited with code 4") && err.contains("broken-init"),
        "{err}"
    );
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
}

#[test]
fn an_oom_kill_is_reported_as_such() {
    let env = require_env!("oom");
    env.import_busybox();
    let path = env.manifest(
        "oom.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: hog}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    \
             command: [sh, -c, 'a=$(head -c 200000000 /dev/zero | tr \"\\\\0\" x); echo survived']\n    resources: {{limits: {{memory: 16Mi}}}}\n"
        ),
    );
    env.ok(&["create", "-f", &path]);
    env.wait_until(Duration::from_secs(30), "the OOM kill", || {
        row(&env, "hog").1 == "OOMKilled"
    });
    assert!(!env.logs("hog", "main").contains("survived"));
    let json = env.pod_json("hog");
    assert_eq!(
        json["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
        "OOMKilled"
    );
    env.delete_leaving_nothing("hog");
}
