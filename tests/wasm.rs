//! WASM members beside OCI members, on a real containerd and real wasmtime: one pod, one network
//! namespace, both directions over localhost, limits, sandboxing, agent loss and recovery.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{http, ns_inode, TestEnv, BUSYBOX_IMAGE, ECHO_IMAGE};

/// The example guests, built by wasm-examples/build.sh (scripts/test.sh runs it first).
fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("wasm-examples")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run wasm-examples/build.sh (scripts/test.sh does)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

fn http_get_eventually(port: u16, path: &str, needle: &str) -> String {
    let start = std::time::Instant::now();
    loop {
        match http(port, "GET", path, "") {
            Ok(r) if r.contains(needle) => return r,
            other if start.elapsed() > Duration::from_secs(20) => {
                panic!("127.0.0.1:{port}{path} never answered with {needle:?}: {other:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// PID printed after `label` in `describe` (the pause task's, a member's, or the agent's).
fn describe_pid(env: &TestEnv, pod: &str, label: &str) -> u64 {
    let describe = env.ok(&["describe", "pod", pod]);
    describe
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(label)
                .map(|rest| rest.trim().trim_end_matches(')').parse().unwrap())
        })
        .unwrap_or_else(|| {
            let pod_dir = env.state_dir().join("default").join(env.sandbox_id(pod));
            let log = std::fs::read_to_string(pod_dir.join("agent.log")).unwrap_or_default();
            panic!("no {label:?} in describe:\n{describe}\nthe agent's log:\n{log}")
        })
}

fn mixed_pod(name: &str, echo_port: u16, greeter_port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  \
         - name: echoserver\n    image: {ECHO_IMAGE}\n    ports: [{{containerPort: 8080, hostPort: {echo_port}}}]\n  \
         - name: greeter\n    image: {greeter}\n    ports: [{{containerPort: 8081, hostPort: {greeter_port}}}]\n    \
         resources: {{limits: {{memory: 64Mi, cpu: 500m}}}}\n  \
         - name: prober\n    image: {prober}\n    env: [{{name: TARGET, value: 'localhost:8080'}}, {{name: INTERVAL_MS, value: '300'}}]\n  \
         - name: client\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'until wget -q -O- http://localhost:8081/from-busybox; do sleep 0.2; done; sleep 3600']\n",
        greeter = example("greeter"),
        prober = example("prober"),
    )
}

#[test]
fn mixed_pod_end_to_end() {
    let env = require_env!("mixed");
    env.import_busybox();
    env.create("mixed.yaml", &mixed_pod("mixed", 19280, 19281));

    // Host ports reach the WASM member and the echo container.
    let greeting = http_get_eventually(19281, "/hello", "Hello from the WASM greeter");
    assert!(greeting.contains("path=/hello"), "{greeting}");
    let echo = http_get_eventually(19280, "/", "Request Information");
    assert!(echo.contains("Hostname: mixed"), "{echo}");
    // WASM -> OCI over localhost, by wasi:http (greeter) and by wasi:sockets (prober).
    let via_greeter = http_get_eventually(19281, "/echo", "real path=/from-greeter");
    assert!(via_greeter.contains("Hello from the WASM greeter"), "{via_greeter}");
    env.wait_for_log("mixed", "prober", "real path=/from-prober");
    // OCI -> WASM over localhost.
    env.wait_for_log("mixed", "client", "Hello from the WASM greeter");
    let table = env.ok(&["get", "pods"]);
    assert!(table.contains("4/4") && table.contains("Running"), "{table}");

    // The agent runs in the pod's network namespace.
    let agent = describe_pid(&env, "mixed", "Agent PID:");
    let sandbox = env.sandbox_id("mixed");
    let pinned = std::fs::metadata(format!("/run/netns/podctl-{sandbox}")).unwrap();
    let pinned_inode = std::os::unix::fs::MetadataExt::ino(&pinned).to_string();
    assert!(
        ns_inode(agent, "net").contains(&pinned_inode),
        "agent netns = the pod's"
    );
    let describe = env.ok(&["describe", "pod", "mixed"]);
    assert!(describe.contains("Runtime:        wasmtime"), "{describe}");

    env.ok(&["delete", "mixed", "--grace-period", "2"]);
    assert!(
        !std::path::Path::new(&format!("/proc/{agent}")).exists(),
        "the agent exited"
    );
    env.assert_nothing_left(&sandbox);
}

#[test]
fn wasm_members_of_two_pods_do_not_share_localhost() {
    let env = require_env!("wasm-isolation");
    env.create(
        "a.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: wa}}\nspec:\n  containers:\n  - name: greeter\n    image: {}\n    ports: [{{containerPort: 8081}}]\n",
            example("greeter")
        ),
    );
    env.create(
        "b.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: wb}}\nspec:\n  containers:\n  - name: prober\n    image: {}\n    env: [{{name: TARGET, value: '127.0.0.1:8081'}}, {{name: INTERVAL_MS, value: '200'}}]\n",
            example("prober")
        ),
    );
    let logs = env.wait_for_log("wb", "prober", "prober:");
    assert!(
        !logs.contains("Hello from the WASM greeter"),
        "pod wb reached pod wa's localhost: {logs}"
    );
    let (a, b) = (env.sandbox_id("wa"), env.sandbox_id("wb"));
    env.ok(&["delete", "wa", "wb", "--grace-period", "1"]);
    env.assert_nothing_left(&a);
    env.assert_nothing_left(&b);
}

#[test]
fn limits_stop_misbehaving_modules_while_siblings_serve() {
    let env = require_env!("limits");
    let data = env.dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("allowed.txt"), "ok").unwrap();
    let misbehave = example("misbehave");
    env.create(
        "limits.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: limits}}\nspec:\n  restartPolicy: Never\n  volumes: [{{name: data, hostPath: {{path: {data}}}}}]\n  containers:\n  \
             - name: greeter\n    image: {greeter}\n    ports: [{{containerPort: 8081, hostPort: 19282}}]\n  \
             - name: bomb\n    image: {misbehave}\n    args: [bomb]\n    resources: {{limits: {{memory: 16Mi}}}}\n  \
             - name: spin\n    image: {misbehave}\n    args: [spin]\n  \
             - name: snoop\n    image: {misbehave}\n    args: [read, /etc/hostname]\n  \
             - name: reader\n    image: {misbehave}\n    args: [read, /data/allowed.txt]\n    volumeMounts: [{{name: data, mountPath: /data, readOnly: true}}]\n",
            data = data.display(),
            greeter = example("greeter"),
        ),
    );
    let status = |name: &str| env.container_status("limits", name);
    env.wait_until(Duration::from_secs(30), "the memory bomb to be stopped", || {
        status("bomb")["state"]["terminated"]["reason"] == "OOMKilled"
    });
    env.wait_until(Duration::from_secs(10), "the snoop to exit", || {
        status("snoop")["state"]["terminated"].is_object()
    });
    assert_eq!(
        status("snoop")["state"]["terminated"]["exitCode"],
        13,
        "{}",
        status("snoop")
    );
    assert!(env.logs("limits", "snoop").contains("read denied"));
    env.wait_until(Duration::from_secs(10), "the reader to exit", || {
        status("reader")["state"]["terminated"].is_object()
    });
    assert_eq!(
        status("reader")["state"]["terminated"]["exitCode"],
        0,
        "{}",
        status("reader")
    );
    // The spinner runs on, and the greeter keeps answering next to it.
    assert!(status("spin")["state"]["running"].is_object(), "{}", status("spin"));
    for _ in 0..5 {
        http_get_eventually(19282, "/still-here", "Hello from the WASM greeter");
    }
    let describe = env.ok(&["describe", "pod", "limits"]);
    assert!(describe.contains("OOMKilled"), "{describe}");
    let sandbox = env.sandbox_id("limits");
    let before = std::time::Instant::now();
    env.ok(&["delete", "limits", "--grace-period", "1"]);
    assert!(
        before.elapsed() < Duration::from_secs(10),
        "a spinning module does not block the stop"
    );
    env.assert_nothing_left(&sandbox);
}

#[test]
fn agent_killed_is_reported_and_restarted() {
    let env = require_env!("agent-kill");
    env.create(
        "ak.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: ak}}\nspec:\n  containers:\n  - name: echoserver\n    image: {ECHO_IMAGE}\n    ports: [{{containerPort: 8080, hostPort: 19283}}]\n  \
             - name: greeter\n    image: {}\n    ports: [{{containerPort: 8081, hostPort: 19284}}]\n",
            example("greeter")
        ),
    );
    http_get_eventually(19284, "/", "Hello from the WASM greeter");
    let kill = |pid: u64| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        env.wait_until(Duration::from_secs(5), "the process to die", || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
        });
    };
    let row = || -> Vec<String> {
        let table = env.ok(&["get", "pods", "ak"]);
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect()
    };

    // The agent SIGKILLed: its monitor starts it again, with the WASM member counting a restart.
    let agent = describe_pid(&env, "ak", "Agent PID:");
    kill(agent);
    http_get_eventually(19284, "/back", "Hello from the WASM greeter");
    assert_ne!(describe_pid(&env, "ak", "Agent PID:"), agent);
    assert_eq!(row()[1..4], ["2/2", "Running", "1"], "one restart counted");

    // The monitor gone too: podctl says what happened and how to fix it; the OCI member is untouched.
    let sandbox = env.sandbox_id("ak");
    let pod_dir = env.state_dir().join("default").join(&sandbox);
    let recorded = |file: &str| -> u64 {
        std::fs::read_to_string(pod_dir.join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    kill(recorded("agent-monitor.pid"));
    kill(recorded("agent.pid"));
    http_get_eventually(19283, "/", "Request Information");
    let out = env.command(&["get", "pods"]).output().unwrap();
    let (table, warning) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(table.contains("1/2"), "{table}");
    assert!(warning.contains("podctl agent restart ak"), "{warning}");

    env.ok(&["agent", "restart", "ak"]);
    http_get_eventually(19284, "/again", "Hello from the WASM greeter");
    assert_eq!(row()[1..4], ["2/2", "Running", "2"], "two restarts counted");
    env.delete_leaving_nothing("ak");
}

#[test]
fn preview1_hello_and_the_aot_cache() {
    let env = require_env!("hello");
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: hello\n    image: {}\n    args: [--exit, '3']\n    env: [{{name: GREETING, value: bonjour}}]\n",
            example("hello")
        )
    };
    env.create("h1.yaml", &pod("hello-one"));
    let logs = env.wait_for_log("hello-one", "hello", "bonjour");
    assert!(logs.contains("hello from WASM") && logs.contains("--exit"), "{logs}");
    env.wait_until(Duration::from_secs(10), "hello to exit", || {
        env.pod_json("hello-one")["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    });
    let table = env.ok(&["get", "pods"]);
    assert!(table.contains("Error") && table.contains("0/1"), "{table}");
    // The second pod with the same module loads it from the AOT cache.
    env.create("h2.yaml", &pod("hello-two"));
    // create's events and the agent's (written as the member starts and exits) are all kept.
    env.wait_until(Duration::from_secs(10), "the agent's exit event", || {
        env.ok(&["events", "hello-two"])
            .contains("Container exited with code 3")
    });
    let describe = env.ok(&["describe", "pod", "hello-two"]);
    assert!(
        describe.contains("loaded from the AOT cache") && describe.contains("Started member hello in plugin wasmtime"),
        "{describe}"
    );
    let (a, b) = (env.sandbox_id("hello-one"), env.sandbox_id("hello-two"));
    env.ok(&["delete", "hello-one", "hello-two"]);
    env.assert_nothing_left(&a);
    env.assert_nothing_left(&b);
}

#[test]
fn wasm_members_follow_the_restart_policy() {
    let env = require_env!("wasm-restarts");
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: wr}}\nspec:\n  restartPolicy: OnFailure\n  containers:\n  \
         - name: failing\n    image: {hello}\n    args: [--exit, '3']\n  - name: done\n    image: {hello}\n",
        hello = example("hello")
    );
    let path = env.manifest("wr.yaml", &manifest);
    env.ok(&["--backoff-base", "0.3", "create", "-f", &path]);
    let status = |index: usize| env.pod_json("wr")["status"]["containerStatuses"][index].clone();
    let mut saw_crash_loop = false;
    env.wait_until(Duration::from_secs(30), "two restarts of the failing member", || {
        let table = env.ok(&["get", "pods", "wr"]);
        saw_crash_loop |= table.contains("CrashLoopBackOff");
        status(0)["restartCount"].as_u64().unwrap_or(0) >= 2
    });
    assert!(saw_crash_loop, "STATUS showed CrashLoopBackOff while the member waited");
    assert_eq!(status(0)["lastState"]["terminated"]["exitCode"], 3, "{}", status(0));
    // OnFailure: the member that exited 0 stays Completed.
    assert_eq!(status(1)["restartCount"], 0, "{}", status(1));
    assert_eq!(status(1)["state"]["terminated"]["reason"], "Completed", "{}", status(1));
    let previous = env.ok(&["logs", "wr", "-c", "failing", "--previous"]);
    assert!(previous.contains("hello from WASM"), "{previous}");
    let stamped = env.ok(&["logs", "wr", "-c", "failing", "--previous", "--timestamps"]);
    let first = stamped.lines().next().unwrap_or_default();
    let time = first.split(' ').next().unwrap();
    assert!(humantime::parse_rfc3339(time).is_ok(), "{stamped}");
    let events = env.ok(&["events", "wr"]);
    assert!(events.contains("Restarted container failing"), "{events}");
    env.delete_leaving_nothing("wr");
}

#[test]
fn wasm_members_are_probed() {
    let env = require_env!("wasm-probes");
    let greeter = example("greeter");
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: wp}}\nspec:\n  containers:\n  \
         - name: served\n    image: {greeter}\n    ports: [{{containerPort: 8081}}]\n    \
         readinessProbe: {{httpGet: {{path: /healthz, port: 8081}}, periodSeconds: 1}}\n  \
         - name: unready\n    image: {greeter}\n    ports: [{{containerPort: 8082}}]\n    \
         readinessProbe: {{tcpSocket: {{port: 9999}}, periodSeconds: 1, failureThreshold: 1}}\n  \
         - name: unhealthy\n    image: {greeter}\n    ports: [{{containerPort: 8083}}]\n    \
         livenessProbe: {{tcpSocket: {{port: 9998}}, periodSeconds: 1, failureThreshold: 2}}\n"
    );
    let path = env.manifest("wp.yaml", &manifest);
    env.ok(&["--backoff-base", "0.3", "create", "-f", &path]);
    let status = |name: &str| env.container_status("wp", name);
    env.wait_until(Duration::from_secs(20), "the served member to be ready", || {
        status("served")["ready"] == true
    });
    env.wait_until(Duration::from_secs(20), "the unhealthy member to be restarted", || {
        status("unhealthy")["restartCount"].as_u64().unwrap_or(0) >= 1
    });
    assert_eq!(status("unready")["ready"], false, "{}", status("unready"));
    assert!(
        status("unready")["state"]["running"].is_object(),
        "{}",
        status("unready")
    );
    let events = env.ok(&["events", "wp"]);
    assert!(
        events.contains("liveness probe failed") && events.contains("Readiness probe failed"),
        "{events}"
    );
    let describe = env.ok(&["describe", "pod", "wp"]);
    assert!(
        describe.contains("Readiness:      tcp-socket :9999 delay=0s timeout=1s period=1s")
            && describe.contains("Last Probe:     readiness probe failed"),
        "{describe}"
    );
    env.delete_leaving_nothing("wp");

    // An exec probe has nothing to run in: refused, nothing created.
    let path = env.manifest(
        "wx.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: wx}}\nspec:\n  containers:\n  \
             - name: g\n    image: {greeter}\n    ports: [{{containerPort: 8081}}]\n    \
             livenessProbe: {{exec: {{command: [cat, /x]}}}}\n"
        ),
    );
    let err = env.fails(&["create", "-f", &path]);
    assert!(
        err.contains("livenessProbe.exec") && err.contains("httpGet or tcpSocket"),
        "{err}"
    );
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
}

#[test]
fn a_file_that_is_not_wasm_creates_nothing() {
    let env = require_env!("notwasm");
    let bogus = env.dir.join("bogus.wasm");
    std::fs::write(&bogus, "this is not a module").unwrap();
    let path = env.manifest(
        "bogus.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: bogus}}\nspec:\n  containers:\n  - name: web\n    image: {ECHO_IMAGE}\n  - name: bad\n    image: {}\n",
            bogus.display()
        ),
    );
    let err = env.fails(&["create", "-f", &path]);
    assert!(err.contains("bad") && err.contains("WebAssembly"), "{err}");
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
    assert!(common::walk(&env.state_dir()).iter().all(|p| p.is_dir()));

    // A wasi:http component is served on exactly one containerPort.
    let path = env.manifest(
        "ports.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: ports}}\nspec:\n  containers:\n  - name: greeter\n    image: {}\n    ports: [{{containerPort: 8081}}, {{containerPort: 8082}}]\n",
            example("greeter")
        ),
    );
    let err = env.fails(&["create", "-f", &path]);
    assert!(err.contains("exactly one containerPort"), "{err}");
    // The per-container runtime override names a runtime podctl has.
    let path = env.manifest(
        "override.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: override\n  annotations: {{podctl.io/runtime.web: crun}}\nspec:\n  containers:\n  - name: web\n    image: {ECHO_IMAGE}\n"
        ),
    );
    let err = env.fails(&["create", "-f", &path]);
    assert!(
        err.contains("podctl.io/runtime.web") && err.contains("wasmtime, exec, oci"),
        "{err}"
    );
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
}

/// An OCI image-layout archive whose single layer is a WASM component (a wasm OCI artifact).
fn wasm_artifact(reference: &str, module: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let digest = |data: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(data)));
    let config = br#"{"architecture":"wasm","os":"wasip2"}"#.to_vec();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.wasm.content.layer.v1+wasm", "digest": digest(module), "size": module.len()}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest), "size": manifest.len(),
            "annotations": {"io.containerd.image.name": reference},
        }],
    }))
    .unwrap();
    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |path: String, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive.append_data(&mut header, path, data).unwrap();
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json".into(), &index);
    for blob in [&config, &manifest, &module.to_vec()] {
        add(
            format!("blobs/sha256/{}", digest(blob).trim_start_matches("sha256:")),
            blob,
        );
    }
    archive.into_inner().unwrap()
}

#[test]
fn oci_wasm_artifact_runs_as_a_wasm_member() {
    let env = require_env!("artifact");
    let module = std::fs::read(example("greeter")).unwrap();
    let tar = env.dir.join("greeter-artifact.tar");
    std::fs::write(&tar, wasm_artifact("podctl.test/greeter-wasm:1", &module)).unwrap();
    env.ok(&["image", "import", tar.to_str().unwrap()]);
    assert!(env.ok(&["image", "ls"]).contains("podctl.test/greeter-wasm:1"));
    env.create(
        "artifact.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: artifact}\nspec:\n  containers:\n  - name: greeter\n    image: podctl.test/greeter-wasm:1\n    ports: [{containerPort: 8081, hostPort: 19285}]\n",
    );
    http_get_eventually(19285, "/from-artifact", "Hello from the WASM greeter");
    let describe = env.ok(&["describe", "pod", "artifact"]);
    assert!(describe.contains("Runtime:        wasmtime"), "{describe}");
    env.delete_leaving_nothing("artifact");
}

#[test]
fn a_wasi_wasm_platform_image_runs_as_a_wasm_member() {
    // The form `docker buildx build --platform wasi/wasm` makes (and `kube generate --registry`
    // pushes): an ordinary tar layer holding the module, its config's platform wasi/wasm.
    let env = require_env!("wasiplatform");
    let spec = podctl::image::layout::ImageSpec {
        reference: "podctl.test/greeter-platform:1".into(),
        entrypoint: vec!["/app/greeter.wasm".into()],
        architecture: Some("wasm".into()),
        os: Some("wasi".into()),
        ..Default::default()
    };
    let layer = [podctl::image::layout::Entry::file(
        "app/greeter.wasm",
        0o755,
        std::fs::read(example("greeter")).unwrap(),
    )];
    let tar = env.dir.join("greeter-platform.tar");
    podctl::image::layout::build_image(&spec, &podctl::image::layout::with_parent_dirs(layer))
        .unwrap()
        .write_archive(std::fs::File::create(&tar).unwrap())
        .unwrap();
    env.ok(&["image", "import", tar.to_str().unwrap()]);
    env.create(
        "platform.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: platform}\nspec:\n  containers:\n  - name: greeter\n    image: podctl.test/greeter-platform:1\n    ports: [{containerPort: 8081, hostPort: 19286}]\n",
    );
    http_get_eventually(19286, "/from-platform-image", "Hello from the WASM greeter");
    let describe = env.ok(&["describe", "pod", "platform"]);
    assert!(describe.contains("Runtime:        wasmtime"), "{describe}");
    env.delete_leaving_nothing("platform");
}

/// A spinning preview1 module that prints a line first.
const SPINNER: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "spinning\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 9))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop $spin (br $spin))))"#;

/// podctl-plugin's misbehaving plugin (an example target, built by `cargo test --workspace`).
fn fake_plugin() -> PathBuf {
    let debug = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let fake = debug.join("examples").join("fake-plugin");
    assert!(
        fake.exists(),
        "{} is missing: `cargo test --workspace` builds it",
        fake.display()
    );
    fake
}

#[test]
fn broken_plugins_are_member_errors_with_nothing_left() {
    let env = require_env!("broken-plugin");
    let spinner = env.dir.join("spinner.wat");
    std::fs::write(&spinner, SPINNER).unwrap();
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: {ECHO_IMAGE}\n  - name: spin\n    image: {}\n",
            spinner.display()
        )
    };

    // A plugin that exits mid-run: its member fails with PluginFailed and why; the OCI member runs on.
    env.create("exits.yaml", &pod("exits"));
    let started = env.wait_for_log("exits", "spin", "spinning");
    assert!(started.contains("spinning"), "{started}");
    // The pod's plugin process: the one serving the socket in this pod's state directory.
    let socket = env
        .state_dir()
        .join("default")
        .join(env.sandbox_id("exits"))
        .join("wasmtime.sock");
    let pid: i32 = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*socket.to_string_lossy()))
        })
        .unwrap_or_else(|| panic!("no process serves {}", socket.display()));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    env.wait_until(Duration::from_secs(20), "the member to fail with PluginFailed", || {
        env.ok(&["events", "exits"]).contains("PluginFailed")
    });
    let events = env.ok(&["events", "exits"]);
    assert!(events.contains("plugin wasmtime is gone"), "{events}");
    let web = env.container_status("exits", "web");
    assert!(web["state"]["running"].is_object(), "{web}");
    env.delete_leaving_nothing("exits");

    // A plugin that never answers, and one of another protocol version: create fails, clearly.
    for (mode, needle) in [
        ("hang", "did not answer"),
        ("newer", "speaks protocol version 2, podctl speaks 1"),
    ] {
        let dir = env.dir.join(format!("plugins-{mode}"));
        std::fs::create_dir_all(&dir).unwrap();
        let wrapper = dir.join("podctl-runtime-wasmtime");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nFAKE_PLUGIN={mode} exec {} \"$@\"\n",
                fake_plugin().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let manifest = env.manifest(&format!("{mode}.yaml"), &pod(mode));
        let err = env.fails(&["--plugin-dir", dir.to_str().unwrap(), "create", "-f", &manifest]);
        assert!(err.contains("container spin") && err.contains(needle), "{mode}: {err}");
        assert!(
            env.containerd_objects().is_empty(),
            "{mode}: {:?}",
            env.containerd_objects()
        );
        assert!(
            common::walk(&env.state_dir()).iter().all(|p| p.is_dir()),
            "{mode}: files left in the state dir"
        );
    }
}
