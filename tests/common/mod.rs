//! The integration-test harness: a private containerd per test (temporary root, state and socket,
//! stopped by PID at the end), podctl's own images imported into it, and checks that a pod left
//! nothing behind.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use podctl::image::layout::{build_image, Entry, ImageSpec};

pub const BUSYBOX_IMAGE: &str = "podctl.test/busybox:1";
pub const ECHO_IMAGE: &str = "podctl.local/echoserver:0.1";
const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "cat", "echo", "hostname", "ls", "ps", "sleep", "wget", "nc", "true", "false", "grep", "id", "ip", "printf",
    "readlink", "stat", "test", "touch", "trap", "kill", "tar", "ln",
];

/// Says why a test cannot run here; panics in CI, where every test must run.
pub fn skip_reason() -> Option<String> {
    let mut reasons = Vec::new();
    if !nix_is_root() {
        reasons.push("needs root");
    }
    for tool in ["containerd", "runc", "containerd-shim-runc-v2"] {
        if which(tool).is_none() {
            reasons.push("needs containerd, runc and containerd-shim-runc-v2 on PATH");
            break;
        }
    }
    if !Path::new("/usr/lib/cni/bridge").exists() && !Path::new("/opt/cni/bin/bridge").exists() {
        reasons.push("needs the CNI plugins (containernetworking-plugins)");
    }
    if reasons.is_empty() {
        return None;
    }
    let reason = reasons.join("; ");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("integration test cannot run in CI: {reason}; .ci/run must install what it needs");
    }
    Some(reason)
}

/// `let Some(env) = TestEnv::start("name") else { return };`
#[macro_export]
macro_rules! require_env {
    ($name:expr) => {
        match common::skip_reason() {
            Some(reason) => {
                eprintln!("SKIPPED {}: {reason}", $name);
                return;
            }
            None => common::TestEnv::start($name),
        }
    };
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
}

/// busybox (Debian's busybox-static) with its applets as symlinks, plus /tmp.
pub fn busybox_layer() -> Vec<Entry> {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static is installed (scripts/setup.sh)");
    let mut layer = vec![
        Entry::dir("bin", 0o755),
        Entry::dir("tmp", 0o1777),
        Entry::file("bin/busybox", 0o755, busybox),
    ];
    for applet in BUSYBOX_APPLETS {
        layer.push(Entry::symlink(format!("bin/{applet}"), "busybox"));
    }
    layer
}

/// A private containerd plus podctl's directories, all under one temporary directory.
pub struct TestEnv {
    pub name: String,
    pub dir: PathBuf,
    pub socket: PathBuf,
    containerd: Child,
}

impl TestEnv {
    pub fn start(name: &str) -> TestEnv {
        let dir = std::env::temp_dir().join(format!("podctl-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = socket.display(),
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let containerd = spawn_containerd(&dir);
        let env = TestEnv {
            name: name.to_string(),
            dir,
            socket,
            containerd,
        };
        env.wait_until(Duration::from_secs(20), "containerd to answer", || {
            env.socket.exists() && env.podctl(&["image", "ls"]).status.success()
        });
        env
    }

    /// Stops this test's containerd (SIGTERM, by PID) and starts it again on the same root; tasks
    /// live on in their shims meanwhile, as on a host whose containerd is restarted.
    pub fn restart_containerd(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.containerd.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.containerd.wait();
        self.containerd = spawn_containerd(&self.dir);
        self.wait_until(Duration::from_secs(20), "containerd to answer again", || {
            self.podctl(&["image", "ls"]).status.success()
        });
    }

    /// What a host restart does to this test's pods (their sandbox IDs): containerd, the shims,
    /// agents, monitors and every pod process die (SIGKILL); task rootfs mounts, tmpfs mounts
    /// (Secret volumes) and containerd's state directory go; the runc state of the pods'
    /// containers and their pinned netns go; their iptables rules and the host's neighbour entries
    /// of their addresses are flushed; then containerd starts again on the same root. What
    /// survives is what a reboot keeps: containerd's root, podctl's state and log directories,
    /// CNI's IPAM reservations. Only this test's processes and objects are touched.
    pub fn simulate_reboot(&mut self, sandboxes: &[String], pod_pids: &[u64]) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let _ = kill(Pid::from_raw(self.containerd.id() as i32), Signal::SIGKILL);
        let _ = self.containerd.wait();
        let dir = self.dir.to_string_lossy().into_owned();
        let ours: Vec<i32> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let pid: i32 = e.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                (cmdline.contains(&dir) && pid != std::process::id() as i32).then_some(pid)
            })
            .chain(pod_pids.iter().map(|p| *p as i32))
            .collect();
        for pid in ours {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(300));
        let state = self.dir.join("state");
        // Task rootfs mounts (containerd's state) and podctl's tmpfs of Secret volumes.
        let podctl_state = self.state_dir();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&*state.to_string_lossy()) || p.starts_with(&*podctl_state.to_string_lossy()))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&state);
        for sandbox in sandboxes {
            for entry in std::fs::read_dir("/run/containerd/runc/default")
                .into_iter()
                .flatten()
                .flatten()
            {
                if entry.file_name().to_string_lossy().starts_with(sandbox.as_str()) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
            let netns = Path::new("/run/netns").join(format!("podctl-{sandbox}"));
            let _ = nix::mount::umount2(&netns, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(&netns);
        }
        // The host's neighbour (ARP) entries of the pods' addresses go with a reboot too: a pod
        // restored on its old address has a new MAC, and a stale entry black-holes its traffic for
        // up to a minute.
        for file in walk(Path::new("/var/lib/cni/networks/podctl")) {
            let owner = std::fs::read_to_string(&file).unwrap_or_default();
            if sandboxes.iter().any(|s| owner.contains(s.as_str())) {
                if let Some(ip) = file.file_name().and_then(|n| n.to_str()) {
                    let _ = Command::new("ip").args(["neigh", "flush", "to", ip]).status();
                }
            }
        }
        let saved = iptables_rules();
        let kept: String = saved
            .lines()
            .filter(|l| !sandboxes.iter().any(|s| l.contains(s.as_str())))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut restore = Command::new("iptables-restore").stdin(Stdio::piped()).spawn().unwrap();
        std::io::Write::write_all(restore.stdin.as_mut().unwrap(), kept.as_bytes()).unwrap();
        assert!(restore.wait().unwrap().success(), "iptables-restore");
        self.containerd = spawn_containerd(&self.dir);
        self.wait_until(
            Duration::from_secs(20),
            "containerd to answer after the restart",
            || self.podctl(&["image", "ls"]).status.success(),
        );
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_podctl"));
        command
            .arg("--address")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--log-dir")
            .arg(self.log_dir())
            .args(args)
            .arg("--wasm-cache-dir")
            .arg(std::env::temp_dir().join("podctl-test-wasm-cache"))
            .env_remove("CONTAINERD_NAMESPACE")
            // Registry configuration and credentials of this test only, never the host's.
            .env("PODCTL_HOSTS_DIR", self.dir.join("certs.d"))
            .env("DOCKER_CONFIG", self.dir.join("docker"))
            // The plugins built with these tests (next to podctl), never ones installed on the host.
            .env("PODCTL_PLUGIN_DIR", self.dir.join("plugins"))
            .stdin(Stdio::null());
        command
    }

    pub fn podctl(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("podctl runs")
    }

    /// Runs podctl and insists on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.podctl(args);
        assert!(
            out.status.success(),
            "podctl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs podctl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.podctl(args);
        assert!(
            !out.status.success(),
            "podctl {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Writes a manifest into the test dir and returns its path.
    /// Runs podctl expecting a failure whose message holds every needle and after which the test's
    /// containerd holds nothing; returns the message.
    pub fn fails_leaving_nothing(&self, args: &[&str], needles: &[&str]) -> String {
        let err = self.fails(args);
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
        }
        assert!(
            self.containerd_objects().is_empty(),
            "{args:?} left {:?}",
            self.containerd_objects()
        );
        err
    }

    pub fn manifest(&self, file: &str, yaml: &str) -> String {
        let path = self.dir.join(file);
        std::fs::write(&path, yaml).unwrap();
        path.to_string_lossy().into_owned()
    }

    pub fn create(&self, file: &str, yaml: &str) {
        let path = self.manifest(file, yaml);
        self.ok(&["create", "-f", &path]);
    }

    /// Imports a busybox image built from Debian's busybox-static (applets as symlinks).
    pub fn import_busybox(&self) {
        let layer = busybox_layer();
        let spec = ImageSpec {
            reference: BUSYBOX_IMAGE.into(),
            cmd: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            ..Default::default()
        };
        let image = build_image(&spec, &layer).unwrap();
        let path = self.dir.join("busybox.tar");
        image.write_archive(std::fs::File::create(&path).unwrap()).unwrap();
        self.ok(&["image", "import", path.to_str().unwrap()]);
    }

    pub fn wait_until(&self, timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < timeout,
                "[{}] timed out after {timeout:?} waiting for {what}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn logs(&self, pod: &str, container: &str) -> String {
        self.ok(&["logs", pod, "-c", container])
    }

    pub fn wait_for_log(&self, pod: &str, container: &str, needle: &str) -> String {
        let mut last = String::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            last = self.logs(pod, container);
            if last.contains(needle) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "[{}] log of {pod}/{container} never showed {needle:?}; it holds:\n{last}",
            self.name
        );
    }

    pub fn pod_json(&self, pod: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["get", "pod", pod, "-o", "json"])).unwrap()
    }

    /// Every pod, as `get pods -o json` lists them.
    pub fn pod_json_list(&self) -> Vec<serde_json::Value> {
        let list: serde_json::Value = serde_json::from_str(&self.ok(&["get", "pods", "-o", "json"])).unwrap();
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// One member's entry of `status.containerStatuses`.
    pub fn container_status(&self, pod: &str, name: &str) -> serde_json::Value {
        let json = self.pod_json(pod);
        json["status"]["containerStatuses"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no container {name} in pod {pod}: {json}"))
    }

    pub fn wait_running(&self, pod: &str) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            last = self.pod_json(pod);
            let statuses = last["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !statuses.is_empty() && statuses.iter().all(|s| s["ready"] == true) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("[{}] pod {pod} never became ready: {last:#}", self.name);
    }

    /// The pause PID, then each member's, from `describe`.
    pub fn pids(&self, pod: &str) -> Vec<u64> {
        let describe = self.ok(&["describe", "pod", pod]);
        let mut pids = Vec::new();
        for line in describe.lines() {
            if let Some(rest) = line.split("(pause pid ").nth(1) {
                pids.push(rest.trim_end_matches(')').parse().unwrap());
            }
            if let Some(rest) = line.trim().strip_prefix("PID:") {
                pids.push(rest.trim().parse().unwrap());
            }
        }
        assert!(pids.len() >= 2, "pids in describe:\n{describe}");
        pids
    }

    /// The sandbox ID (`podctl.io/sandbox-id`) is the pod's containerd ID prefix and netns suffix.
    pub fn sandbox_id(&self, pod: &str) -> String {
        let json = self.pod_json(pod);
        let id = json["status"]["containerStatuses"][0]["containerID"]
            .as_str()
            .unwrap()
            .to_string();
        let member = json["status"]["containerStatuses"][0]["name"]
            .as_str()
            .unwrap()
            .to_string();
        id.trim_start_matches("containerd://")
            .trim_end_matches(&format!("-{member}"))
            .to_string()
    }

    /// What containerd holds in the test's namespace: containers, tasks, active snapshots, leases.
    pub fn containerd_objects(&self) -> Vec<String> {
        let ctr = |args: &[&str]| -> Vec<String> {
            let out = Command::new("ctr")
                .arg("--address")
                .arg(&self.socket)
                .args(args)
                .output()
                .expect("ctr runs");
            assert!(
                out.status.success(),
                "ctr {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .skip(1)
                .map(str::to_string)
                .collect()
        };
        let mut objects = Vec::new();
        objects.extend(
            ctr(&["containers", "ls", "-q"])
                .into_iter()
                .map(|c| format!("container {c}")),
        );
        objects.extend(ctr(&["tasks", "ls"]).into_iter().map(|t| format!("task {t}")));
        // Committed snapshots are image layers; anything active belongs to a container.
        objects.extend(
            ctr(&["snapshots", "ls"])
                .into_iter()
                .filter(|s| s.contains("Active"))
                .map(|s| format!("snapshot {s}")),
        );
        objects.extend(ctr(&["leases", "ls"]).into_iter().map(|l| format!("lease {l}")));
        objects
    }

    /// The pod left nothing: no containerd objects, netns, IPAM reservation, iptables rule or files.
    /// `podctl delete NAME`, then [`Self::assert_nothing_left`] for its sandbox.
    pub fn delete_leaving_nothing(&self, name: &str) {
        let sandbox = self.sandbox_id(name);
        self.ok(&["delete", name]);
        self.assert_nothing_left(&sandbox);
    }

    pub fn assert_nothing_left(&self, sandbox_id: &str) {
        // `containers ls -q` prints no header; list it separately so its first row is not skipped.
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["containers", "ls", "-q"])
            .output()
            .unwrap();
        let containers = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(containers.trim().is_empty(), "containers left: {containers}");
        let objects = self.containerd_objects();
        assert!(
            objects.is_empty(),
            "[{}] containerd objects left: {objects:?}",
            self.name
        );
        assert_no_host_traces(sandbox_id);
        // The pod's agent, its monitor and its members' log drivers all name the pod's directories.
        let processes: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(sandbox_id))
            .collect();
        assert!(processes.is_empty(), "processes left: {processes:?}");
        let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(sandbox_id))
            .map(String::from)
            .collect();
        assert!(mounts.is_empty(), "mounts left (Secret volumes?): {mounts:?}");
        for dir in [self.state_dir(), self.log_dir()] {
            let left: Vec<_> = walk(&dir)
                .into_iter()
                .filter(|p| p.to_string_lossy().contains(sandbox_id) || p.is_file())
                .collect();
            assert!(left.is_empty(), "files left under {}: {left:?}", dir.display());
        }
    }
}

fn spawn_containerd(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("containerd.log"))
        .unwrap();
    Command::new("containerd")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("containerd starts")
}

/// Host-global traces of a sandbox: the pinned netns, host-local IPAM files, iptables rules.
pub fn assert_no_host_traces(sandbox_id: &str) {
    let netns = Path::new("/run/netns").join(format!("podctl-{sandbox_id}"));
    assert!(!netns.exists(), "netns {} left", netns.display());
    let ipam = Path::new("/var/lib/cni/networks/podctl");
    for file in walk(ipam) {
        let content = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            !content.contains(sandbox_id),
            "IPAM reservation {} left for {sandbox_id}",
            file.display()
        );
    }
    let rules = iptables_rules();
    let left: Vec<&str> = rules.lines().filter(|l| l.contains(sandbox_id)).collect();
    assert!(left.is_empty(), "iptables rules left for {sandbox_id}: {left:?}");
    let agents: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("agent run") && c.contains(sandbox_id))
        .collect();
    assert!(agents.is_empty(), "the pod's agent still runs: {agents:?}");
}

pub fn iptables_rules() -> String {
    let out = Command::new("iptables-save").output().expect("iptables-save runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

/// One HTTP request to 127.0.0.1:port; returns the whole response.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// Retries until the pod answers on the host port (the server may still be starting).
pub fn http_eventually(port: u16, body: &str) -> String {
    let start = Instant::now();
    loop {
        match http(port, "POST", "/", body) {
            Ok(r) if r.starts_with("HTTP/1.1 200") => return r,
            other if start.elapsed() > Duration::from_secs(20) => panic!("no answer on 127.0.0.1:{port}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

pub fn ns_inode(pid: u64, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/ns/{kind}: {e}"))
        .to_string_lossy()
        .into_owned()
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Pods a failed test left: delete them so no netns, IPAM entry or iptables rule outlives it.
        if let Ok(out) = self.command(&["get", "pods", "-o", "name"]).output() {
            for pod in String::from_utf8_lossy(&out.stdout).lines() {
                let name = pod.trim_start_matches("pod/");
                let _ = self.command(&["delete", name, "--grace-period", "0"]).output();
            }
        }
        let pid = nix::unistd::Pid::from_raw(self.containerd.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.containerd.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.containerd.kill();
        let _ = self.containerd.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
