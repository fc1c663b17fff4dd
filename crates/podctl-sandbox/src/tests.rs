//! Tests against the real kernel and the real CNI plugin binaries (root only).
//!
//! They serialize on one lock because they share host state (the `podctl0` bridge, host-local's
//! IPAM dir, portmap's top-level iptables chains), and each one cleans up through a drop guard,
//! so a failed assertion leaves nothing behind either.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::cni::{self, Attachment, CniNetwork, CniResult, PortMapping, DEFAULT_BIN_DIRS};
use super::netns::{create_netns, remove_netns};
use super::SandboxError;

static HOST_STATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// `net.ipv4.ip_forward` before our first ADD; the bridge plugin (isGateway) turns it on.
static IP_FORWARD_BEFORE: OnceLock<String> = OnceLock::new();

const IPAM_DIR: &str = "/var/lib/cni/networks/podctl";
const PLUGINS: &[&str] = &["bridge", "host-local", "portmap", "loopback", "bandwidth"];

/// Whether the host can run these tests; with CI=true a missing precondition is a failure.
fn can_run(need_plugins: bool) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_string());
    }
    if need_plugins {
        for p in PLUGINS {
            if !DEFAULT_BIN_DIRS.iter().any(|d| Path::new(d).join(p).is_file()) {
                missing.push(format!("CNI plugin `{p}` in {}", DEFAULT_BIN_DIRS.join(":")));
            }
        }
        for tool in ["ip", "iptables"] {
            if Command::new(tool).arg("--version").output().is_err() {
                missing.push(format!("`{tool}`"));
            }
        }
    }
    if missing.is_empty() {
        return true;
    }
    let reason = format!("sandbox kernel test needs {}", missing.join(", "));
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason} (CI=true, so not skipping)");
    }
    eprintln!("SKIP: {reason}");
    false
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn nat_rules() -> String {
    run("iptables", &["-t", "nat", "-S"])
}

fn record_ip_forward() {
    IP_FORWARD_BEFORE.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap_or_default()
            .trim()
            .to_string()
    });
}

/// Tears down whatever a test set up, in the order a real pod teardown would, even when the
/// test panicked half-way.
struct Cleanup {
    netns: PathBuf,
    container_id: String,
    ports: Vec<PortMapping>,
    prev: Option<CniResult>,
    cni: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.cni {
            let (netns, id, ports, prev) = (
                self.netns.clone(),
                self.container_id.clone(),
                self.ports.clone(),
                self.prev.clone(),
            );
            // Drop can't await, and we may be inside the test's runtime: use a fresh thread
            // with its own runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let att = Attachment {
                    container_id: &id,
                    netns: &netns,
                    ifname: "eth0",
                    bin_dirs: &[],
                    port_mappings: &ports,
                    requested_ip: None,
                };
                let net = CniNetwork::default_network();
                let _ = rt.block_on(cni::del(&net, &att, prev.as_ref()));
            })
            .join();
        }
        let _ = remove_netns(&self.netns);
        if self.cni {
            delete_container_chains(&self.container_id);
            sweep_shared_state();
        }
    }
}

/// Removes what the default network leaves on the host for all pods (bridge, portmap's
/// top-level chains, IPAM bookkeeping, ip_forward) once no pod uses it any more, so the tests
/// leave the machine as they found it.
fn sweep_shared_state() {
    let in_use = std::fs::read_dir(IPAM_DIR).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name != "lock" && !name.starts_with("last_reserved_ip")
        })
    });
    if in_use {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(IPAM_DIR) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    // remove_dir only removes empty dirs, so other networks' state is safe.
    for dir in [IPAM_DIR, "/var/lib/cni/networks", "/var/lib/cni"] {
        let _ = std::fs::remove_dir(dir);
    }
    let _ = Command::new("ip").args(["link", "del", "podctl0"]).output();

    // portmap's per-pod rules live in CNI-HOSTPORT-DNAT; empty means no pod maps ports.
    let dnat = Command::new("iptables")
        .args(["-t", "nat", "-S", "CNI-HOSTPORT-DNAT"])
        .output();
    let unused = dnat.is_ok_and(|o| o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("-A "));
    if unused {
        for (chain, target) in [
            ("PREROUTING", "CNI-HOSTPORT-DNAT"),
            ("OUTPUT", "CNI-HOSTPORT-DNAT"),
            ("POSTROUTING", "CNI-HOSTPORT-MASQ"),
        ] {
            delete_jumps(chain, target);
        }
        for chain in ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"] {
            let _ = Command::new("iptables").args(["-t", "nat", "-F", chain]).output();
            let _ = Command::new("iptables").args(["-t", "nat", "-X", chain]).output();
        }
    }
    if IP_FORWARD_BEFORE.get().map(String::as_str) == Some("0") {
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "0");
    }
}

/// Deletes the nat rules and chains CNI plugins tagged with `id: "<container_id>"`. DEL removes
/// them itself while the pod's interface exists; bridge (1.1.x) can't find its ipMasq rule once
/// the netns is gone, so the test that unpins first relies on this.
fn delete_container_chains(container_id: &str) {
    let tag = format!("id: \\\"{container_id}\\\"");
    let Ok(out) = Command::new("iptables").args(["-t", "nat", "-S"]).output() else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut chains = Vec::new();
    for line in text.lines().filter(|l| l.contains(&tag)) {
        let mut words = line.split_whitespace();
        let (Some("-A"), Some(chain)) = (words.next(), words.next()) else {
            continue;
        };
        if let Some(target) = line.rsplit_once(" -j ").map(|(_, t)| t.trim()) {
            if target.starts_with("CNI-") && !chains.contains(&target.to_string()) {
                chains.push(target.to_string());
            }
        }
        if ["PREROUTING", "OUTPUT", "POSTROUTING"].contains(&chain) {
            let target = line.rsplit_once(" -j ").map_or("", |(_, t)| t.trim());
            delete_jumps(chain, target);
        }
    }
    for chain in chains {
        let _ = Command::new("iptables").args(["-t", "nat", "-F", &chain]).output();
        let _ = Command::new("iptables").args(["-t", "nat", "-X", &chain]).output();
    }
}

/// Deletes rules in nat/`chain` that jump to `target`, by rule number (highest first, so the
/// numbers of the remaining ones don't shift).
fn delete_jumps(chain: &str, target: &str) {
    let Ok(out) = Command::new("iptables").args(["-t", "nat", "-S", chain]).output() else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let numbers: Vec<usize> = text
        .lines()
        .filter(|l| l.starts_with("-A "))
        .enumerate()
        .filter(|(_, l)| l.ends_with(&format!("-j {target}")))
        .map(|(i, _)| i + 1)
        .collect();
    for n in numbers.into_iter().rev() {
        let _ = Command::new("iptables")
            .args(["-t", "nat", "-D", chain, &n.to_string()])
            .output();
    }
}

/// A TCP listener whose socket lives in the netns at `path` (sockets stay in the namespace they
/// were created in, so only the creating thread needs to enter it).
fn listen_in_netns(path: &Path, port: u16) -> TcpListener {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        TcpListener::bind(("0.0.0.0", port)).expect("bind in netns")
    })
    .join()
    .expect("netns thread")
}

#[tokio::test]
async fn netns_create_and_remove() {
    let _host = HOST_STATE.lock().await;
    if !can_run(false) {
        return;
    }
    let name = format!("podctl-sbxtest-ns-{}", std::process::id());
    let ns = create_netns(&name).expect("create_netns");
    let _cleanup = Cleanup {
        netns: ns.path.clone(),
        container_id: String::new(),
        ports: Vec::new(),
        prev: None,
        cni: false,
    };
    assert_eq!(ns.name, name);
    assert_eq!(ns.path, Path::new("/run/netns").join(&name));
    let pinned = std::fs::metadata(&ns.path).expect("netns file exists");
    let ours = std::fs::metadata("/proc/self/ns/net").unwrap();
    assert_ne!(pinned.ino(), ours.ino(), "pinned netns must be a new namespace");
    // The calling thread stayed in the host namespace.
    let thread_ns = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
    assert_eq!(thread_ns.ino(), ours.ino());
    // `ip` sees it, and it's empty apart from a down loopback.
    let links = run("ip", &["-n", &name, "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:"), "{links}");

    let err = create_netns(&name).unwrap_err();
    assert!(matches!(err, SandboxError::NetnsExists { .. }), "{err}");
    assert!(err.to_string().contains("ip netns delete"), "{err}");
    for bad in ["", "..", "a/b"] {
        assert!(matches!(create_netns(bad), Err(SandboxError::InvalidNetnsName { .. })));
    }

    remove_netns(&ns.path).expect("remove_netns");
    assert!(!ns.path.exists());
    remove_netns(&ns.path).expect("removing twice is Ok");
    // The name is free again.
    let again = create_netns(&name).expect("re-create");
    remove_netns(&again.path).unwrap();
}

#[tokio::test]
async fn cni_add_del_with_host_port() {
    let _host = HOST_STATE.lock().await;
    if !can_run(true) {
        return;
    }
    record_ip_forward();
    let pid = std::process::id();
    let name = format!("podctl-sbxtest-add-{pid}");
    let container_id = format!("podctl-sbxtest-add-{pid}");
    const HOST_PORT: u16 = 19081;
    let ports = vec![PortMapping {
        host_port: HOST_PORT,
        container_port: 8080,
        protocol: "tcp".into(),
        host_ip: String::new(),
    }];
    let ns = create_netns(&name).expect("create_netns");
    let mut cleanup = Cleanup {
        netns: ns.path.clone(),
        container_id: container_id.clone(),
        ports: ports.clone(),
        prev: None,
        cni: true,
    };
    let net = CniNetwork::default_network();
    let att = Attachment {
        container_id: &container_id,
        netns: &ns.path,
        ifname: "eth0",
        bin_dirs: &[],
        port_mappings: &ports,
        requested_ip: None,
    };

    cni::setup_loopback(&att).await.expect("loopback");
    let res = cni::add(&net, &att).await.expect("CNI ADD");
    cleanup.prev = Some(res.clone());

    let ip: Ipv4Addr = res.primary_ip().expect("an IP").parse().unwrap();
    assert_eq!(ip.octets()[..2], [10, 89], "{ip} not in 10.89.0.0/16");
    assert_eq!(res.ips, [format!("{ip}/16")]);

    let addrs = run("ip", &["-n", &name, "addr"]);
    assert!(addrs.contains("eth0@"), "{addrs}");
    assert!(addrs.contains(&format!("inet {ip}/16")), "{addrs}");
    assert!(addrs.contains("lo: <LOOPBACK,UP,LOWER_UP>"), "{addrs}");

    let rules = nat_rules();
    assert!(rules.contains(&HOST_PORT.to_string()), "{rules}");
    let ipam_file = Path::new(IPAM_DIR).join(ip.to_string());
    let owner = std::fs::read_to_string(&ipam_file).expect("IPAM reservation file");
    assert!(owner.contains(&container_id), "{owner}");

    // hostPort works from 127.0.0.1 (portmap's snat + route_localnet on the bridge).
    let listener = listen_in_netns(&ns.path, 8080);
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    conn.write_all(b"hello from the pod").unwrap();
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], HOST_PORT));
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to hostPort");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "hello from the pod");
    server.join().unwrap();
    let localnet = std::fs::read_to_string("/proc/sys/net/ipv4/conf/podctl0/route_localnet");
    assert_eq!(localnet.unwrap().trim(), "1");

    cni::del(&net, &att, Some(&res)).await.expect("CNI DEL");
    let rules = nat_rules();
    assert!(!rules.contains(&HOST_PORT.to_string()), "{rules}");
    assert!(!ipam_file.exists(), "IPAM reservation left behind");
    let links = run("ip", &["-n", &name, "-o", "link"]);
    assert!(!links.contains("eth0"), "{links}");

    cni::del(&net, &att, Some(&res)).await.expect("second DEL is Ok");
    cni::del(&net, &att, None).await.expect("DEL without prevResult is Ok");
}

#[tokio::test]
async fn cni_del_after_netns_is_gone() {
    let _host = HOST_STATE.lock().await;
    if !can_run(true) {
        return;
    }
    record_ip_forward();
    let pid = std::process::id();
    let name = format!("podctl-sbxtest-gone-{pid}");
    let container_id = format!("podctl-sbxtest-gone-{pid}");
    let ns = create_netns(&name).expect("create_netns");
    let mut cleanup = Cleanup {
        netns: ns.path.clone(),
        container_id: container_id.clone(),
        ports: Vec::new(),
        prev: None,
        cni: true,
    };
    let net = CniNetwork::default_network();
    let att = Attachment {
        container_id: &container_id,
        netns: &ns.path,
        ifname: "eth0",
        bin_dirs: &[],
        port_mappings: &[],
        requested_ip: None,
    };
    let res = cni::add(&net, &att).await.expect("CNI ADD");
    cleanup.prev = Some(res.clone());
    let ip = res.primary_ip().expect("an IP");
    let ipam_file = Path::new(IPAM_DIR).join(&ip);
    assert!(ipam_file.exists());

    // The netns vanishes first (e.g. a crash between the two teardown steps).
    remove_netns(&ns.path).unwrap();
    cni::del(&net, &att, Some(&res)).await.expect("DEL without netns");
    assert!(!ipam_file.exists(), "IPAM reservation left behind");
    // ADD refuses to run on a missing netns.
    let err = cni::add(&net, &att).await.unwrap_err();
    assert!(matches!(err, SandboxError::NetnsMissing { .. }), "{err}");
}

#[tokio::test]
async fn failed_add_rolls_back() {
    let _host = HOST_STATE.lock().await;
    if !can_run(true) {
        return;
    }
    record_ip_forward();
    let pid = std::process::id();
    let name = format!("podctl-sbxtest-fail-{pid}");
    let container_id = format!("podctl-sbxtest-fail-{pid}");
    let ns = create_netns(&name).expect("create_netns");
    let _cleanup = Cleanup {
        netns: ns.path.clone(),
        container_id: container_id.clone(),
        ports: Vec::new(),
        prev: None,
        cni: true,
    };
    // bridge succeeds, then the second plugin fails on a config error: bridge must be undone.
    let mut raw = CniNetwork::default_network().raw;
    raw["plugins"][1] = serde_json::json!({"type": "bandwidth", "ingressRate": "not-a-number"});
    let net = CniNetwork {
        raw,
        ..CniNetwork::default_network()
    };
    let att = Attachment {
        container_id: &container_id,
        netns: &ns.path,
        ifname: "eth0",
        bin_dirs: &[],
        port_mappings: &[],
        requested_ip: None,
    };
    let err = cni::add(&net, &att).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, SandboxError::PluginFailed { .. }),
        "unexpected error: {text}"
    );
    assert!(text.contains("`bandwidth` ADD"), "{text}");
    let owned_ips = std::fs::read_dir(IPAM_DIR)
        .map(|d| {
            d.flatten()
                .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|s| s.contains(&container_id)))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(owned_ips, 0, "bridge's IP not released after a failed ADD");
    let links = run("ip", &["-n", &name, "-o", "link"]);
    assert!(!links.contains("eth0"), "{links}");
}
