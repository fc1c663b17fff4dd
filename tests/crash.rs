//! Crash safety on a real containerd: `podctl create` killed with SIGKILL at any moment leaves
//! nothing that the next `podctl delete` does not find and remove (containerd objects, netns,
//! IPAM reservations, hostPort rules, processes, files), and the host port works for the next pod;
//! `podctl start` killed at any moment is finished by the next stop and start.
//! Iterations: `PODCTL_CHAOS_ITERATIONS` creates (default 20; `scripts/chaos.sh` runs 50), half as
//! many starts.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{http_eventually, iptables_rules, walk, TestEnv, ECHO_IMAGE};

const PORT: u16 = 19480;

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: {ECHO_IMAGE}\n    ports:\n    - containerPort: 8080\n      hostPort: {PORT}\n  - name: side\n    image: {ECHO_IMAGE}\n    command: [/echoserver, --port, '8081']\n"
    )
}

/// Starts a podctl command whose output does not matter (it is about to be killed).
fn spawn_quiet(env: &TestEnv, args: &[&str]) -> std::process::Child {
    env.command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Everything that names a sandbox of pod `name` (its IDs start with `name-`) on this host.
fn traces(env: &TestEnv, name: &str) -> Vec<String> {
    let id = format!("{name}-");
    let mut left: Vec<String> = env.containerd_objects();
    left.extend(
        std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with(&format!("podctl-{id}")))
            .map(|f| format!("netns {f}")),
    );
    for file in walk(Path::new("/var/lib/cni/networks/podctl")) {
        if std::fs::read_to_string(&file).unwrap_or_default().contains(&id) {
            left.push(format!("IPAM reservation {}", file.display()));
        }
    }
    left.extend(
        iptables_rules()
            .lines()
            .filter(|l| l.contains(&id))
            .map(|l| format!("iptables {l}")),
    );
    left.extend(
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&id) && !c.contains("iptables"))
            .map(|c| format!("process {c}")),
    );
    for dir in [env.state_dir(), env.log_dir()] {
        left.extend(
            walk(&dir)
                .into_iter()
                .filter(|p| p.is_file() || p.to_string_lossy().contains(&id))
                .map(|p| format!("file {}", p.display())),
        );
    }
    left
}

fn wait_for_no_traces(env: &TestEnv, name: &str, context: &str) {
    // Shims and log drivers exit a moment after their last task is deleted.
    let start = Instant::now();
    loop {
        let left = traces(env, name);
        if left.is_empty() {
            return;
        }
        if start.elapsed() > Duration::from_secs(15) {
            panic!("{context}: left behind: {left:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_create_killed_at_any_moment_leaves_nothing_that_delete_does_not_remove() {
    let env = require_env!("crash-create");
    let iterations: u64 = std::env::var("PODCTL_CHAOS_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let manifest = env.manifest("chaos.yaml", &pod("chaos"));
    // The first create imports the built-in image: outside the measured kills.
    env.ok(&["create", "-f", &manifest]);
    env.ok(&["delete", "chaos"]);
    let (mut shown_unknown, mut finished) = (0, 0);
    for i in 0..iterations {
        // Spread over a create's run (~150-250 ms here), differently each time.
        let delay = Duration::from_millis((i * 7919 + 13) % 250);
        let mut create = spawn_quiet(&env, &["create", "-f", &manifest]);
        std::thread::sleep(delay);
        let _ = create.kill();
        let status = create.wait().unwrap();
        if status.success() {
            finished += 1;
        }
        let context = format!("iteration {i} (killed after {delay:?})");
        let listed = env.podctl(&["get", "pods"]);
        assert!(listed.status.code().is_some(), "{context}: get crashed");
        let table = String::from_utf8_lossy(&listed.stdout);
        if table.contains("Unknown") {
            shown_unknown += 1;
            let again = env.fails(&["create", "-f", &manifest]);
            assert!(
                again.contains("was interrupted") && again.contains("podctl delete chaos"),
                "{context}: {again}"
            );
        }
        let deleted = env.podctl(&["delete", "chaos"]);
        let stderr = String::from_utf8_lossy(&deleted.stderr);
        assert!(
            deleted.status.success() || stderr.contains("not found"),
            "{context}: delete failed: {stderr}"
        );
        wait_for_no_traces(&env, "chaos", &context);
    }
    eprintln!("{iterations} kills: {shown_unknown} showed Unknown, {finished} finished before the kill");
    // The host port is not dead: a new pod on it answers.
    env.ok(&["create", "-f", &manifest]);
    let answer = http_eventually(PORT, "after the kills");
    assert!(answer.contains("after the kills"), "{answer}");
    env.ok(&["delete", "chaos"]);
    wait_for_no_traces(&env, "chaos", "the last pod");
}

#[test]
fn a_killed_delete_is_finished_by_the_next_and_two_creates_of_one_name_make_one_pod() {
    let env = require_env!("crash-delete");
    let manifest = env.manifest("half.yaml", &pod("half").replace(&PORT.to_string(), "19481"));
    for delay in [30u64, 120, 250] {
        env.ok(&["create", "-f", &manifest]);
        let mut delete = spawn_quiet(&env, &["delete", "half"]);
        std::thread::sleep(Duration::from_millis(delay));
        let _ = delete.kill();
        let _ = delete.wait();
        let deleted = env.podctl(&["delete", "half"]);
        let stderr = String::from_utf8_lossy(&deleted.stderr);
        assert!(
            deleted.status.success() || stderr.contains("not found"),
            "after {delay} ms: {stderr}"
        );
        wait_for_no_traces(&env, "half", &format!("delete killed after {delay} ms"));
    }
    // Two creates of one name at once: one pod, and the loser says why and leaves nothing.
    let spawn = || {
        env.command(&["create", "-f", &manifest])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() != b.status.success(),
        "exactly one wins: {a:?} {b:?}"
    );
    let loser = if a.status.success() { &b } else { &a };
    let why = String::from_utf8_lossy(&loser.stderr);
    assert!(why.contains("already exists") || why.contains("under way"), "{why}");
    let table = env.ok(&["get", "pods"]);
    assert_eq!(table.matches("half").count(), 1, "{table}");
    env.ok(&["delete", "half"]);
    wait_for_no_traces(&env, "half", "the winner's pod");
}

#[test]
fn the_agent_answers_during_a_delete_and_past_a_silent_client() {
    let env = require_env!("crash-agent");
    env.import_busybox();
    // PID 1 of a container ignores SIGTERM: the delete waits out the grace period.
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: slow\nspec:\n  terminationGracePeriodSeconds: 4\n  containers:\n  - name: main\n    image: {}\n    command: [sleep, '3600']\n    readinessProbe: {{exec: {{command: ['true']}}, periodSeconds: 1}}\n",
        common::BUSYBOX_IMAGE
    );
    env.create("slow.yaml", &manifest);
    env.wait_running("slow");
    // A client that connects to the agent and says nothing.
    let sandbox = env.sandbox_id("slow");
    let socket = env.state_dir().join("default").join(&sandbox).join("agent.sock");
    let _silent = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let asked = Instant::now();
    env.ok(&["agent", "status", "slow"]);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "status took {:?}",
        asked.elapsed()
    );

    let mut delete = spawn_quiet(&env, &["delete", "slow"]);
    std::thread::sleep(Duration::from_millis(800));
    let asked = Instant::now();
    let table = env.ok(&["get", "pods"]);
    eprintln!("get pods during a delete's grace period took {:?}", asked.elapsed());
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "get took {:?}",
        asked.elapsed()
    );
    assert!(table.contains("Terminating"), "{table}");
    assert!(delete.wait().unwrap().success());
    env.assert_nothing_left(&sandbox);
}

#[test]
fn twenty_creates_at_once_get_distinct_addresses_and_one_host_port_goes_to_one_pod() {
    let env = require_env!("crash-many");
    let names: Vec<String> = (0..20).map(|i| format!("many{i}")).collect();
    for name in &names {
        env.manifest(
            &format!("{name}.yaml"),
            &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: web\n    image: {ECHO_IMAGE}\n"),
        );
    }
    let spawn = |args: Vec<String>| {
        env.command(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let began = Instant::now();
    let children: Vec<_> = names
        .iter()
        .map(|n| {
            spawn(vec![
                "create".into(),
                "-f".into(),
                env.dir.join(format!("{n}.yaml")).to_string_lossy().into_owned(),
            ])
        })
        .collect();
    for (name, child) in names.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    eprintln!("20 concurrent creates took {:?}", began.elapsed());
    let pods = env.pod_json_list();
    let mut ips: Vec<String> = pods
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap_or("").to_string())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "distinct addresses: {ips:?}");
    assert!(ips.iter().all(|ip| !ip.is_empty()));

    // Two pods claiming one host port at once: one gets it, the other is refused and leaves nothing.
    for name in ["porta", "portb"] {
        env.manifest(
            &format!("{name}.yaml"),
            &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: web\n    image: {ECHO_IMAGE}\n    ports: [{{containerPort: 8080, hostPort: 19482}}]\n"),
        );
    }
    let (a, b) = (
        spawn(vec![
            "create".into(),
            "-f".into(),
            env.dir.join("porta.yaml").to_string_lossy().into_owned(),
        ]),
        spawn(vec![
            "create".into(),
            "-f".into(),
            env.dir.join("portb.yaml").to_string_lossy().into_owned(),
        ]),
    );
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() != b.status.success(), "exactly one: {a:?} {b:?}");
    let loser = if a.status.success() { &b } else { &a };
    assert!(String::from_utf8_lossy(&loser.stderr).contains("19482"), "{loser:?}");
    let winner = if a.status.success() { "porta" } else { "portb" };
    assert!(http_eventually(19482, "one").contains("one"));
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.push(winner);
    let mut args = vec!["delete"];
    args.extend(all);
    env.ok(&args);
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
}

#[test]
fn records_edited_by_hand_in_containerd_never_crash_podctl() {
    let env = require_env!("crash-edited");
    env.create(
        "edited.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: edited\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: web\n    image: {ECHO_IMAGE}\n"),
    );
    env.wait_running("edited");
    let sandbox = env.sandbox_id("edited");
    let member = format!("{sandbox}-web");
    // Labels no podctl wrote: numbers that are not, a runtime podctl lacks, states that are junk.
    for (id, label) in [
        (&member, "podctl.io/restart-count=many"),
        (&member, "podctl.io/member-index=-1"),
        (&member, "podctl.io/last-restart=yesterday"),
        (&member, "podctl.io/runtime=nonesuch"),
        (&sandbox, "podctl.io/init-status=\u{1F4A5}"),
        (&sandbox, "podctl.io/host-restarted=soon"),
    ] {
        let status = std::process::Command::new("ctr")
            .arg("--address")
            .arg(&env.socket)
            .args(["containers", "label", id, label])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ctr label {label}");
    }
    for args in [
        vec!["get", "pods"],
        vec!["get", "pods", "-o", "json"],
        vec!["describe", "pod", "edited"],
        vec!["events", "edited"],
        vec!["gc", "--dry-run"],
    ] {
        let out = env.podctl(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.code().is_some(), "{args:?} was killed");
    }
    env.ok(&["delete", "edited"]);
    env.assert_nothing_left(&sandbox);
}

/// A docker-archive whose only layer tries to write outside the root filesystem: a `../` path
/// and a file through a symlink pointing out of it.
fn escaping_archive(escape: &Path, outside: &Path) -> Vec<u8> {
    use sha2::Digest;
    let mut layer = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_cksum();
    layer.append_data(&mut dir, "etc/", &[][..]).unwrap();
    // The tar crate refuses `..` in names: write the name bytes by hand.
    let mut raw = tar::Header::new_old();
    let name = format!("../../../../../..{}", escape.display());
    raw.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    raw.set_mode(0o644);
    raw.set_size(4);
    raw.set_entry_type(tar::EntryType::Regular);
    raw.set_cksum();
    layer.append(&raw, &b"evil"[..]).unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    link.set_mode(0o777);
    link.set_link_name(outside).unwrap();
    link.set_cksum();
    layer.append_data(&mut link, "etc/out", &[][..]).unwrap();
    let mut planted = tar::Header::new_gnu();
    planted.set_size(4);
    planted.set_mode(0o644);
    planted.set_cksum();
    layer
        .append_data(&mut planted, "etc/out/planted", &b"evil"[..])
        .unwrap();
    let layer = layer.into_inner().unwrap();
    let diff_id = format!("sha256:{:x}", sha2::Sha256::digest(&layer));
    docker_archive("podctl.test/escape:1", &layer, &diff_id)
}

/// A docker-archive of one image whose one layer is `layer` (a tar, gzipped or not) and whose
/// config says its uncompressed digest is `diff_id`.
fn docker_archive(tag: &str, layer: &[u8], diff_id: &str) -> Vec<u8> {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/x"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    })
    .to_string();
    let manifest = serde_json::json!([{
        "Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"]
    }])
    .to_string();
    let mut archive = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("manifest.json", manifest.as_bytes()),
        ("config.json", config.as_bytes()),
        ("layer.tar", layer),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive.append_data(&mut header, path, data).unwrap();
    }
    archive.into_inner().unwrap()
}

/// A layer holding one file of `size` zero bytes, and its diff_id (its sha256 as a tar).
fn zeros_layer(size: u64) -> (Vec<u8>, String) {
    zeros_layer_into(size, Vec::new())
}

/// The same layer gzipped (~1/1000 of `size`), made as a stream: this process never holds it
/// unpacked (its peak memory would count as its children's).
fn zeros_layer_gzipped(size: u64) -> (Vec<u8>, String) {
    let (encoder, diff_id) = zeros_layer_into(
        size,
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()),
    );
    (encoder.finish().unwrap(), diff_id)
}

fn zeros_layer_into<W: std::io::Write>(size: u64, out: W) -> (W, String) {
    use sha2::Digest;
    /// Hashes what passes through to `out`.
    struct Hashing<W> {
        out: W,
        hash: sha2::Sha256,
    }
    impl<W: std::io::Write> std::io::Write for Hashing<W> {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            let n = self.out.write(data)?;
            self.hash.update(&data[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.out.flush()
        }
    }
    let mut layer = tar::Builder::new(Hashing {
        out,
        hash: sha2::Sha256::new(),
    });
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    layer
        .append_data(&mut header, "zeros", std::io::repeat(0).take(size))
        .unwrap();
    let hashing = layer.into_inner().unwrap();
    (hashing.out, format!("sha256:{:x}", hashing.hash.finalize()))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// The largest resident set of any child this test process has waited for, in KiB.
fn children_max_rss_kib() -> i64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct it is given.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    usage.ru_maxrss
}

#[test]
fn broken_forged_and_bomb_layers_never_panic_and_leave_nothing() {
    let env = require_env!("crash-layers");
    let import = |name: &str, archive: Vec<u8>| {
        let path = env.dir.join(name);
        std::fs::write(&path, archive).unwrap();
        env.podctl(&["image", "import", path.to_str().unwrap()])
    };
    let (small, small_diff_id) = zeros_layer(4096);
    let truncated = gzip(&small);
    let cases = [
        (
            "truncated.tar",
            docker_archive(
                "podctl.test/truncated:1",
                &truncated[..truncated.len() / 2],
                &small_diff_id,
            ),
            "unexpected EOF",
        ),
        (
            // `.wh..` names the directory itself and `.wh...` its parent: no whiteout may
            // remove either (the parent of a first layer's root is the snapshot's own directory).
            "whiteout.tar",
            {
                use sha2::Digest;
                let mut layer = tar::Builder::new(Vec::new());
                for name in ["etc/", "etc/.wh..."] {
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(if name.ends_with('/') {
                        tar::EntryType::Directory
                    } else {
                        tar::EntryType::Regular
                    });
                    header.set_mode(0o755);
                    header.set_size(0);
                    header.set_cksum();
                    layer.append_data(&mut header, name, &[][..]).unwrap();
                }
                let layer = layer.into_inner().unwrap();
                let diff_id = format!("sha256:{:x}", sha2::Sha256::digest(&layer));
                docker_archive("podctl.test/whiteout:1", &layer, &diff_id)
            },
            "invalid whiteout name",
        ),
        (
            "forged.tar",
            docker_archive("podctl.test/forged:1", &small, &format!("sha256:{}", "0".repeat(64))),
            "diff_id says",
        ),
    ];
    for (file, archive, reason) in cases {
        let out = import(file, archive);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file} was imported");
        assert!(
            stderr.contains("could not be unpacked") && stderr.contains(reason) && !stderr.contains("panicked"),
            "{file}: {stderr}"
        );
        assert!(
            env.containerd_objects().is_empty(),
            "{file}: {:?}",
            env.containerd_objects()
        );
    }
    assert!(
        !env.ok(&["image", "ls"]).contains("podctl.test/"),
        "a refused image is listed"
    );
    // A gzip bomb (256 MiB from ~256 KiB): podctl's applier streams it into the snapshot; its
    // memory stays small whatever the layer expands to, and `image rm` takes it all.
    let (bomb, bomb_diff_id) = zeros_layer_gzipped(256 << 20);
    eprintln!("bomb layer: {} KiB gzipped, 256 MiB unpacked", bomb.len() >> 10);
    let out = import("bomb.tar", docker_archive("podctl.test/bomb:1", &bomb, &bomb_diff_id));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rss_mib = children_max_rss_kib() >> 10;
    eprintln!("largest podctl resident set so far: {rss_mib} MiB");
    assert!(rss_mib < 64, "podctl grew to {rss_mib} MiB importing a gzip bomb");
    env.ok(&["image", "rm", "podctl.test/bomb:1"]);
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
}

#[test]
fn an_archive_layer_never_writes_outside_its_root_filesystem() {
    let env = require_env!("crash-escape");
    let escape = std::env::temp_dir().join(format!("podctl-escape-{}", std::process::id()));
    let outside = std::env::temp_dir().join(format!("podctl-outside-{}", std::process::id()));
    std::fs::create_dir_all(&outside).unwrap();
    let archive = env.dir.join("escape.tar");
    std::fs::write(&archive, escaping_archive(&escape, &outside)).unwrap();
    let imported = env.podctl(&["image", "import", archive.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&imported.stderr).into_owned();
    eprintln!("import of the escaping archive: {} {stderr}", imported.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let planted = outside.join("planted");
    let (escaped, planted_there) = (escape.exists(), planted.exists());
    let _ = std::fs::remove_file(&escape);
    let _ = std::fs::remove_dir_all(&outside);
    assert!(!escaped, "a `..` path wrote {}", escape.display());
    assert!(!planted_there, "a symlink let the layer write {}", planted.display());
    if imported.status.success() {
        env.ok(&["image", "rm", "podctl.test/escape:1"]);
    } else {
        // Refused: with a message, and nothing kept.
        assert!(!stderr.trim().is_empty());
    }
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
}

#[test]
fn the_next_create_removes_what_an_interrupted_create_of_another_pod_left() {
    let env = require_env!("crash-next");
    let manifest = env.manifest("auto.yaml", &pod("auto").replace(&PORT.to_string(), "19484"));
    let intent = env.state_dir().join("default/intents/auto.json");
    // Killed once its intent is on disk (and, a moment later, part of the pod is made).
    let mut create = spawn_quiet(&env, &["create", "-f", &manifest]);
    env.wait_until(Duration::from_secs(10), "the intent of the create", || intent.exists());
    std::thread::sleep(Duration::from_millis(40));
    let _ = create.kill();
    let _ = create.wait();
    if !env.ok(&["get", "pods"]).contains("Unknown") {
        eprintln!("the create finished before the kill: nothing interrupted this time");
        env.ok(&["delete", "auto"]);
        return;
    }
    let other = env.manifest("other.yaml", &pod("other").replace(&PORT.to_string(), "19485"));
    let out = env.command(&["create", "-f", &other]).output().unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("pod auto: its create was interrupted") && said.contains("removing what it left"),
        "{said}"
    );
    assert!(!env.ok(&["get", "pods"]).contains("auto"));
    env.ok(&["delete", "other"]);
    wait_for_no_traces(&env, "auto", "after the next create");
    wait_for_no_traces(&env, "other", "after its delete");
}

#[test]
fn stops_and_starts_killed_at_any_moment_are_finished_by_the_next_stop_and_start() {
    let env = require_env!("crash-stop");
    env.import_busybox();
    env.create(
        "halted.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: halted\nspec:\n  terminationGracePeriodSeconds: 3\n  containers:\n  - name: main\n    image: {}\n    command: [sleep, '3600']\n  - name: web\n    image: {ECHO_IMAGE}\n",
            common::BUSYBOX_IMAGE
        ),
    );
    env.wait_running("halted");
    let sandbox = env.sandbox_id("halted");
    let mut stop = spawn_quiet(&env, &["stop", "halted"]);
    std::thread::sleep(Duration::from_millis(500));
    let _ = stop.kill();
    let _ = stop.wait();
    assert!(env.podctl(&["get", "pods"]).status.success(), "get after a killed stop");
    // Whatever the kill left, a stop and a start bring the pod back.
    let _ = env.podctl(&["stop", "halted", "--grace-period", "0"]);
    env.ok(&["start", "halted"]);
    env.wait_running("halted");
    // Starts killed at moments spread over a start's run (containerd's task create among them).
    let iterations: u64 = std::env::var("PODCTL_CHAOS_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .map_or(8, |n: u64| n / 2);
    for i in 0..iterations {
        let delay = Duration::from_millis((i * 7919 + 13) % 300);
        let context = format!("start {i} (killed after {delay:?})");
        env.ok(&["stop", "halted", "--grace-period", "0"]);
        let mut start = spawn_quiet(&env, &["start", "halted"]);
        std::thread::sleep(delay);
        let _ = start.kill();
        let _ = start.wait();
        assert!(env.podctl(&["get", "pods"]).status.success(), "{context}: get");
        let _ = env.podctl(&["stop", "halted", "--grace-period", "0"]);
        let started = env.podctl(&["start", "halted"]);
        assert!(
            started.status.success(),
            "{context}: the next start failed: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        env.wait_running("halted");
    }
    env.ok(&["delete", "halted", "--grace-period", "0"]);
    env.assert_nothing_left(&sandbox);
}
