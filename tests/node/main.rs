//! podctl's node runtime (`containerd-shim-podctl-v1`) driven through CRI the way kubelet drives
//! it: a mixed pod whose WASM members run on podctl's wasmtime host and whose OCI members run as
//! ordinary Linux containers under the same handler, in one network namespace; exit codes and
//! memory limits in ContainerStatus; clear CRI errors for what cannot run; nothing left after
//! RemovePodSandbox.

#[path = "../common/mod.rs"]
mod common;
mod cri;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cri::{container, with_env, with_memory_limit, Node};
use podctl::image::layout::{build_image, ImageSpec};
use podctl::manifest::Pod;

fn example(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("wasm-examples/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run wasm-examples/build.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The test's own images for what the mixed pod does not hold: p1 modules and busybox.
fn push_images(node: &Node) -> Images {
    let registry = node.registry();
    let images = Images {
        hello: format!("{registry}/podctl-test/hello:1"),
        misbehave: format!("{registry}/podctl-test/misbehave:1"),
        busybox: format!("{registry}/podctl-test/busybox:1"),
    };
    for (reference, name) in [(&images.hello, "hello"), (&images.misbehave, "misbehave")] {
        let module = std::fs::read(example(name)).unwrap();
        node.push_wasm(reference, &format!("{name}.wasm"), &module);
    }
    let busybox = ImageSpec {
        reference: images.busybox.clone(),
        cmd: vec!["sh".into()],
        env: vec!["PATH=/bin".into()],
        ..Default::default()
    };
    node.push_built(
        &images.busybox,
        build_image(&busybox, &common::busybox_layer()).unwrap(),
    );
    for image in [&images.hello, &images.misbehave, &images.busybox] {
        node.pull(image)
            .unwrap_or_else(|e| panic!("CRI PullImage {image}: {e}"));
    }
    images
}

struct Images {
    hello: String,
    misbehave: String,
    busybox: String,
}

/// examples/mixed-pod.yaml made with podctl on this host (its programs by absolute path, without
/// the host ports, which a cluster's pod would not need), then `kube generate --registry`.
fn generate_mixed_pod(node: &Node) -> Pod {
    let here = env!("CARGO_MANIFEST_DIR");
    example("greeter");
    example("prober");
    let yaml = std::fs::read_to_string(Path::new(here).join("examples/mixed-pod.yaml"))
        .unwrap()
        .replace("./wasm-examples/", &format!("{here}/wasm-examples/"))
        .replace(", hostPort: 9080", "")
        .replace(", hostPort: 9081", "");
    let file = node.dir.join("mixed-pod.yaml");
    std::fs::write(&file, yaml).unwrap();
    node.podctl_ok(&["create", "-f", file.to_str().unwrap()]);
    let out = node.dir.join("mixed-cluster.yaml");
    let registry = format!("{}/podctl-test", node.registry());
    node.podctl_ok(&[
        "kube",
        "generate",
        "mixed",
        "--registry",
        &registry,
        "-f",
        out.to_str().unwrap(),
    ]);
    node.podctl_ok(&["delete", "mixed"]);
    // What the API server of Kubernetes 1.31 takes, strictly (no unknown fields).
    match std::process::Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.31.0"])
        .arg(&out)
        .output()
    {
        Ok(check) => assert!(
            check.status.success(),
            "kubernetes-validate: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        ),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("kubernetes-validate cannot run in CI ({e}): scripts/setup.sh installs it")
        }
        Err(e) => eprintln!("SKIPPED the kubernetes-validate check: {e} (scripts/setup.sh installs it)"),
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let pod = podctl::manifest::parse_pod(&text)
        .unwrap_or_else(|e| panic!("{e}:\n{text}"))
        .pod;
    assert_eq!(pod.spec.runtime_class_name.as_deref(), Some("podctl"), "{text}");
    for container in &pod.spec.containers {
        assert!(container.image.starts_with(&registry), "pushed: {text}");
    }
    let greeter = pod.spec.containers.iter().find(|c| c.name == "greeter").unwrap();
    assert!(
        greeter
            .env
            .iter()
            .any(|e| e.name == "PODCTL_HTTP_PORT" && e.value == "8081"),
        "{text}"
    );
    pod
}

/// What kubelet makes of a Pod's container for CRI (the fields these pods use).
fn kubelet_container(container: &podctl::manifest::Container) -> k8s_cri::v1::ContainerConfig {
    let mut config = with_env(
        cri::container(&container.name, &container.image),
        &container
            .env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str()))
            .collect::<Vec<_>>(),
    );
    config.command = container.command.clone();
    config.args = container.args.clone();
    if let Some(bytes) = container.resources.memory_limit_bytes() {
        config = with_memory_limit(config, bytes as i64);
    }
    if let Some(millis) = container.resources.cpu_limit_millis() {
        let resources = config.linux.get_or_insert_default().resources.get_or_insert_default();
        resources.cpu_period = 100_000;
        resources.cpu_quota = millis as i64 * 100;
    }
    config
}

fn http_get(ip: &str, port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&format!("{ip}:{port}").parse().unwrap(), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

fn http_eventually(ip: &str, port: u16, path: &str) -> String {
    let start = std::time::Instant::now();
    loop {
        match http_get(ip, port, path) {
            Ok(r) if r.starts_with("HTTP/1.1 200") => return r,
            other if start.elapsed() > Duration::from_secs(20) => panic!("no answer on {ip}:{port}{path}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn log_of(node: &Node, pod: &str, container: &str) -> String {
    std::fs::read_to_string(node.dir.join("pod-logs").join(pod).join(container).join("0.log")).unwrap_or_default()
}

#[test]
fn a_mixed_pod_runs_through_cri_with_the_podctl_handler() {
    if let Some(reason) = common::skip_reason() {
        eprintln!("SKIPPED node: {reason}");
        return;
    }
    let node = Node::start("mixed");
    node.import_pause();
    let generated = generate_mixed_pod(&node);
    let images = push_images(&node);
    for container in &generated.spec.containers {
        node.pull(&container.image)
            .unwrap_or_else(|e| panic!("CRI PullImage {}: {e}", container.image));
    }

    let pod = node.sandbox_config("mixed");
    let handler = generated.spec.runtime_class_name.clone().unwrap();
    let sandbox = node
        .run_sandbox(&pod, &handler)
        .expect("RunPodSandbox with handler podctl");
    let ip = node.pod_ip(&sandbox);
    // The OCI member runs as an ordinary Linux container under the podctl handler; the WASM ones
    // on podctl's wasmtime host, all in the pod's network namespace.
    for container in &generated.spec.containers {
        node.start_container(&sandbox, &pod, kubelet_container(container))
            .unwrap_or_else(|e| panic!("{} starts: {e}", container.name));
    }
    // The greeter: a wasi:http component served on its containerPort, at the pod's IP.
    let greeting = http_eventually(&ip, 8081, "/");
    assert!(greeting.contains("Hello"), "{greeting}");
    // WASM → OCI on localhost: the greeter's /echo asks the echoserver on localhost:8080, and the
    // prober (wasi:sockets) probes it too.
    let echoed = http_eventually(&ip, 8081, "/echo");
    assert!(echoed.to_lowercase().contains("echo"), "{echoed}");
    let start = std::time::Instant::now();
    while !log_of(&node, "mixed", "prober").contains("HTTP/1.1 200") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the prober reached no echoserver: {}",
            log_of(&node, "mixed", "prober")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // OCI → WASM on localhost.
    let mut wget = container("wget", &images.busybox);
    wget.command = ["wget", "-q", "-O-", "http://localhost:8081/"]
        .map(String::from)
        .to_vec();
    let wget = node.start_container(&sandbox, &pod, wget).unwrap();
    let status = node.wait_exited(&wget, Duration::from_secs(20));
    assert_eq!(status.exit_code, 0, "{status:?}: {}", log_of(&node, "mixed", "wget"));
    assert!(
        log_of(&node, "mixed", "wget").contains("Hello"),
        "{}",
        log_of(&node, "mixed", "wget")
    );

    // A p1 module's exit code, and its output in the CRI log kubelet named.
    let mut hello = with_env(container("hello", &images.hello), &[("GREETING", "from the node")]);
    hello.args = ["--exit", "3"].map(String::from).to_vec();
    let hello = node.start_container(&sandbox, &pod, hello).unwrap();
    let status = node.wait_exited(&hello, Duration::from_secs(20));
    assert_eq!(status.exit_code, 3, "{status:?}");
    let log = log_of(&node, "mixed", "hello");
    assert!(
        log.contains("stdout F hello from WASM") && log.contains("from the node"),
        "{log}"
    );

    // The memory limit kubelet set holds the guest: it ends with 137 and says why.
    let mut bomb = with_memory_limit(container("bomb", &images.misbehave), 32 << 20);
    bomb.args = vec!["bomb".into()];
    let bomb = node.start_container(&sandbox, &pod, bomb).unwrap();
    let status = node.wait_exited(&bomb, Duration::from_secs(30));
    assert_eq!(status.exit_code, 137, "{status:?}: {}", log_of(&node, "mixed", "bomb"));
    assert!(
        log_of(&node, "mixed", "bomb").contains("memory"),
        "{}",
        log_of(&node, "mixed", "bomb")
    );

    // Volumes are preopened at their mount paths (read-only stays read-only); the image's own
    // files are not visible, as under podctl.
    let data = node.dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("allowed.txt"), "a volume's file\n").unwrap();
    let volume = k8s_cri::v1::Mount {
        container_path: "/data".into(),
        host_path: data.to_string_lossy().into_owned(),
        readonly: true,
        ..Default::default()
    };
    for (name, args, code) in [
        ("reader", ["read", "/data/allowed.txt"], 0),
        ("writer", ["write", "/data/new.txt"], 14),
        ("snoop", ["read", "/misbehave.wasm"], 13),
    ] {
        let mut member = container(name, &images.misbehave);
        member.args = args.map(String::from).to_vec();
        member.mounts = vec![volume.clone()];
        let id = node.start_container(&sandbox, &pod, member).unwrap();
        let status = node.wait_exited(&id, Duration::from_secs(20));
        assert_eq!(
            status.exit_code,
            code,
            "{name}: {status:?}: {}",
            log_of(&node, "mixed", name)
        );
    }
    assert!(log_of(&node, "mixed", "reader").contains("read ok: 16 bytes"));
    assert!(!data.join("new.txt").exists());

    node.remove_sandbox(&sandbox);
    node.assert_nothing_left(&sandbox);
}

#[test]
fn what_cannot_run_fails_with_a_cri_error_that_says_why() {
    if let Some(reason) = common::skip_reason() {
        eprintln!("SKIPPED node: {reason}");
        return;
    }
    let node = Node::start("refused");
    node.import_pause();
    let registry = node.registry();
    let text = format!("{registry}/podctl-test/text:1");
    let unlinkable = format!("{registry}/podctl-test/unlinkable:1");
    let greeter = format!("{registry}/podctl-test/greeter:1");
    let component = format!("{registry}/podctl-test/exportless:1");
    // A component the engine cannot run: it exports neither wasi:cli/run nor wasi:http.
    node.push_wasm(&component, "exportless.wat", b"(component)");
    node.push_wasm(&text, "app.txt", b"just some text\n");
    let module = b"(module (import \"podctl\" \"nope\" (func)) (func (export \"_start\")))";
    node.push_wasm(&unlinkable, "unlinkable.wat", module);
    node.push_wasm(&greeter, "greeter.wasm", &std::fs::read(example("greeter")).unwrap());
    for image in [&text, &unlinkable, &greeter, &component] {
        node.pull(image).unwrap();
    }
    let pod = node.sandbox_config("refused");
    let sandbox = node.run_sandbox(&pod, "podctl").unwrap();
    let cases = [
        ("text", &text, "neither WebAssembly"),
        ("unlinkable", &unlinkable, "cannot be linked"),
        ("portless", &greeter, "PODCTL_HTTP_PORT"),
        ("exportless", &component, "exports neither wasi:cli/run"),
    ];
    for (name, image, cause) in cases {
        let err = node
            .start_container(&sandbox, &pod, container(name, image))
            .expect_err("the container must not start");
        let message = err.message();
        assert!(message.contains(cause), "{name}: {message}");
        // Named: the program in the image (the CRI error already belongs to the container).
        assert!(
            message.contains(".wasm") || message.contains(".wat") || message.contains(".txt"),
            "{message}"
        );
        // Nothing of it runs: the sandbox's task is the only one.
        assert_eq!(node.tasks(), std::slice::from_ref(&sandbox), "{name} left a task");
    }
    node.remove_sandbox(&sandbox);
    node.assert_nothing_left(&sandbox);
}
