//! The node runtime's speed and memory through CRI, in one run on one private containerd (see
//! tests/node/cri.rs): a mixed pod (pause + echoserver + the greeter component) under the
//! `podctl` handler against the same pod with the greeter replaced by an OCI container (a second
//! echoserver) under runc. Iterations alternate the two pods.
//!
//! `sudo cargo bench --bench node_cri [-- --runs N]` (needs what tests/node needs; builds the shim
//! with `cargo build --release -p containerd-shim-podctl` first if it is missing).
//!
//! Prints medians (min–max) and the ratios against the targets: the WASM container's
//! CreateContainer+StartContainer ≤ 0.5× the runc container's; the podctl shim's PSS per pod
//! ≤ 10 MB (runwasi's wasmtime shim is reported at ~19–20 MB).

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
#[path = "../tests/node/cri.rs"]
mod cri;

use std::time::{Duration, Instant};

use cri::{container, with_env, Node};

const WASM_TARGET: f64 = 0.5;
const SHIM_PSS_TARGET_KB: f64 = 10.0 * 1024.0;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn summary(values: &[f64]) -> String {
    let mut sorted = values.to_vec();
    let m = median(&mut sorted);
    format!("{m:8.1} ({:.1}-{:.1})", sorted[0], sorted[sorted.len() - 1])
}

/// A field of a process's smaps_rollup in kB (`Pss:`, `Pss_Anon:`), 0 when it is gone.
fn smaps_kb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

fn pss_kb(pid: u32) -> f64 {
    smaps_kb(pid, "Pss:")
}

fn container_pid(node: &Node, id: &str) -> Option<u32> {
    let mut runtime = node.runtime.clone();
    let reply = node
        .rt
        .block_on(runtime.container_status(k8s_cri::v1::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        }))
        .ok()?
        .into_inner();
    let info: serde_json::Value = serde_json::from_str(reply.info.get("info")?).ok()?;
    info["pid"].as_u64().map(|p| p as u32)
}

fn answers(ip: &str, port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect((ip, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(stream, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200")
}

fn wait_answer(ip: &str, port: u16) -> Duration {
    let start = Instant::now();
    while !answers(ip, port) {
        assert!(start.elapsed() < Duration::from_secs(30), "{ip}:{port} does not answer");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

struct Sample {
    create_start_ms: f64,
    first_answer_ms: f64,
    /// The pod's shim processes (the shim and its zygote; a WASM container's process is left out).
    shim_pss_kb: f64,
    /// Of that, anonymous memory (heap, stacks), the rest being the binary's and libraries' pages.
    shim_pss_anon_kb: f64,
    /// The member's own process (the WASM container, or the second echoserver).
    member_pss_kb: f64,
}

fn shim_pids(node: &Node, binary: &str) -> Vec<u32> {
    node.shims()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(binary))
        })
        .collect()
}

/// One pod: pause + echoserver, then the measured member; returns its figures and removes it.
fn run_pod(node: &Node, name: &str, handler: &str, images: &Images) -> Sample {
    let pod = node.sandbox_config(name);
    let sandbox = node.run_sandbox(&pod, handler).expect("RunPodSandbox");
    let ip = node.pod_ip(&sandbox);
    node.start_container(
        &sandbox,
        &pod,
        with_env(container("echoserver", &images.echo), &[("PORT", "8080")]),
    )
    .expect("the echoserver starts");
    let (member, port, shim) = match handler {
        "podctl" => (
            with_env(container("greeter", &images.greeter), &[("PODCTL_HTTP_PORT", "8081")]),
            8081,
            "containerd-shim-podctl-v1",
        ),
        _ => (
            with_env(container("echo2", &images.echo), &[("PORT", "8081")]),
            8081,
            "containerd-shim-runc-v2",
        ),
    };
    let start = Instant::now();
    let id = node.start_container(&sandbox, &pod, member).expect("the member starts");
    let create_start = start.elapsed();
    let first_answer = create_start + wait_answer(&ip, port);
    std::thread::sleep(Duration::from_millis(300));
    let member_pid = container_pid(node, &id);
    let member_pss = member_pid.map(pss_kb).unwrap_or(0.0);
    let shims: Vec<u32> = shim_pids(node, shim)
        .into_iter()
        .filter(|pid| Some(*pid) != member_pid)
        .collect();
    let shim_pss: f64 = shims.iter().map(|p| pss_kb(*p)).sum();
    let shim_pss_anon: f64 = shims.iter().map(|p| smaps_kb(*p, "Pss_Anon:")).sum();
    node.remove_sandbox(&sandbox);
    Sample {
        create_start_ms: create_start.as_secs_f64() * 1000.0,
        first_answer_ms: first_answer.as_secs_f64() * 1000.0,
        shim_pss_kb: shim_pss,
        shim_pss_anon_kb: shim_pss_anon,
        member_pss_kb: member_pss,
    }
}

struct Images {
    echo: String,
    greeter: String,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(7);
    if let Some(reason) = common::skip_reason() {
        eprintln!("node_cri: cannot run here: {reason}");
        std::process::exit(2);
    }
    // containerd (and so the shims) at info, as on a production node: debug logging costs time.
    let node = Node::start_with("bench", "info");
    node.import_pause();
    let greeter = format!("{}/podctl-bench/greeter:1", node.registry());
    node.push_wasm(&greeter, "greeter.wasm", &common_example("greeter"));
    let images = Images {
        echo: node.push_builtin(podctl::image::builtin::ECHO_IMAGE, "podctl-bench/echoserver:0.1"),
        greeter,
    };
    for image in [&images.echo, &images.greeter] {
        node.pull(image).unwrap();
    }
    let (mut wasm, mut oci) = (Vec::new(), Vec::new());
    // One warm-up of each (the greeter's first start compiles it into the AOT cache).
    for i in 0..=runs {
        let order: [&str; 2] = if i % 2 == 0 {
            ["podctl", "runc"]
        } else {
            ["runc", "podctl"]
        };
        for handler in order {
            let sample = run_pod(&node, &format!("{handler}-{i}"), handler, &images);
            if i > 0 {
                match handler {
                    "podctl" => wasm.push(sample),
                    _ => oci.push(sample),
                }
            }
        }
    }
    let column = |samples: &[Sample], f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
    println!("node runtime through CRI, {runs} runs each, alternating; median (min-max)");
    println!("                                   WASM greeter (podctl)    OCI echoserver (runc)");
    for (label, f) in [
        (
            "create+start, ms",
            (|s: &Sample| s.create_start_ms) as fn(&Sample) -> f64,
        ),
        ("create to first answer, ms", |s: &Sample| s.first_answer_ms),
        ("shim PSS per pod, kB", |s: &Sample| s.shim_pss_kb),
        ("  of it anonymous, kB", |s: &Sample| s.shim_pss_anon_kb),
        ("member process PSS, kB", |s: &Sample| s.member_pss_kb),
    ] {
        println!(
            "  {label:30} {}    {}",
            summary(&column(&wasm, f)),
            summary(&column(&oci, f))
        );
    }
    let ratio = median(&mut column(&wasm, |s| s.create_start_ms)) / median(&mut column(&oci, |s| s.create_start_ms));
    let answer = median(&mut column(&wasm, |s| s.first_answer_ms)) / median(&mut column(&oci, |s| s.first_answer_ms));
    let shim = median(&mut column(&wasm, |s| s.shim_pss_kb));
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!("ratios (medians)                            measured   target   verdict");
    println!(
        "  WASM/runc create+start                      {ratio:6.2}   <={WASM_TARGET:.2}   {}",
        verdict(ratio <= WASM_TARGET)
    );
    println!("  WASM/runc create to first answer            {answer:6.2}        -   (no target)");
    println!(
        "  podctl shim PSS per pod, MB                 {:6.2}   <={:.2}   {}",
        shim / 1024.0,
        SHIM_PSS_TARGET_KB / 1024.0,
        verdict(shim <= SHIM_PSS_TARGET_KB)
    );
}

fn common_example(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("wasm-examples/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run wasm-examples/build.sh", path.display()))
}
