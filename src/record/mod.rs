//! What podctl keeps in containerd, shared by every layer above it: the labels and extensions on
//! its container records, the IDs it derives, the pod events it appends, and the views of pods and
//! members rebuilt from those records.

pub mod events;
pub mod objects;
pub mod pod_view;

pub use events::PodEvent;
pub use pod_view::{MemberState, MemberView, NetworkRecord, PodView};

pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// `sandbox` or `container`, as the CRI plugin labels its containers.
pub const LABEL_KIND: &str = "io.cri-containerd.kind";
pub const LABEL_MANAGED_BY: &str = "podctl.io/managed-by";
pub const LABEL_SANDBOX_ID: &str = "podctl.io/sandbox-id";
pub const LABEL_MEMBER_INDEX: &str = "podctl.io/member-index";
/// On a member that is an init container with `restartPolicy: Always` (its member index is its
/// place among the init containers): it starts before the app containers and stops after them.
pub const LABEL_SIDECAR: &str = "podctl.io/sidecar";
pub const LABEL_RUNTIME: &str = "podctl.io/runtime";
/// The runtime handler (runtimes.toml) an OCI member's tasks run with, when not runc.
pub const LABEL_RUNTIME_HANDLER: &str = "podctl.io/runtime-handler";
pub const LABEL_STOP_SIGNAL: &str = "podctl.io/stop-signal";
pub const LABEL_LOG_PATH: &str = "podctl.io/log-path";
/// A member with `stdin` or `tty`: `stdin`, `stdin-once`, `tty`, joined by commas (see
/// `logs::relay::Interactive`); its tasks get FIFOs held by a relay instead of the log driver.
pub const LABEL_STDIO: &str = "podctl.io/stdio";
/// Written by the pod's supervisor (the agent): how often the member was restarted, when last,
/// how its last run ended (JSON), and why it waits now (CrashLoopBackOff).
pub const LABEL_RESTART_COUNT: &str = "podctl.io/restart-count";
pub const LABEL_LAST_RESTART: &str = "podctl.io/last-restart";
pub const LABEL_LAST_STATE: &str = "podctl.io/last-state";
pub const LABEL_WAITING: &str = "podctl.io/waiting";
/// Set by the supervisor from containerd's `/tasks/oom` event, until the member runs again.
pub const LABEL_OOM_KILLED: &str = "podctl.io/oom-killed";
/// On the sandbox record while `create` runs init containers: kubectl's `Init:N/M`,
/// `Init:CrashLoopBackOff`; emptied once they all completed.
pub const LABEL_INIT_STATUS: &str = "podctl.io/init-status";
/// On the sandbox record while `delete` runs.
pub const LABEL_TERMINATING: &str = "podctl.io/terminating";
/// On the sandbox record once the pod ran past its activeDeadlineSeconds: the agent stopped its
/// members, and the pod is Failed with reason DeadlineExceeded.
pub const LABEL_DEADLINE_EXCEEDED: &str = "podctl.io/deadline-exceeded";

/// The Pod manifest (JSON) on the sandbox container.
pub const EXT_POD: &str = "podctl.io/pod";
/// The pod's network: netns path, CNI config and result, port mappings.
pub const EXT_NETWORK: &str = "podctl.io/network";
/// Recent events about the pod (bounded).
pub const EXT_EVENTS: &str = "podctl.io/events";
/// On the sandbox record while the pod is stopped on purpose.
pub const LABEL_STOPPED: &str = "podctl.io/stopped";
/// Set by `podctl system restore` on a pod (and its members) that does not run again after a host
/// restart (restartPolicy Never): they show as terminated with reason Unknown.
pub const LABEL_HOST_RESTARTED: &str = "podctl.io/host-restarted";

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("pod {pod}: container {container} not found; its containers are: {known}")]
    NoSuchContainer {
        pod: String,
        container: String,
        known: String,
    },
}

/// A fresh random UUID v4 for metadata.uid.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the kernel's random source is available");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// containerd IDs are at most 76 characters of `[A-Za-z0-9._-]`: keep them readable
/// (`echo-1a2b3c4d` and `echo-1a2b3c4d-echoserver`) within that bound.
pub fn sandbox_id(pod_name: &str, uid: &str) -> String {
    let short: String = uid.chars().filter(|c| *c != '-').take(8).collect();
    let name: String = pod_name.chars().take(40).collect();
    format!("{}-{short}", name.trim_end_matches(['.', '-']))
}

pub fn member_id(sandbox_id: &str, container_name: &str, index: usize) -> String {
    let id = format!("{sandbox_id}-{container_name}");
    if id.len() <= 76 {
        id
    } else {
        format!("{sandbox_id}-m{index}")
    }
}

pub fn netns_name(sandbox_id: &str) -> String {
    format!("podctl-{sandbox_id}")
}

/// Finds a free-standing name for the node column: the host's name.
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The node's own address, as Kubernetes' `status.hostIP`: the IPv4 address of the interface the
/// default route leaves by (127.0.0.1 on a host without one). Looked up once per process: every
/// pod's status carries it, and `wait` renders statuses five times a second.
pub fn host_ip() -> String {
    static HOST_IP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST_IP.get_or_init(find_host_ip).clone()
}

fn find_host_ip() -> String {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let default_interface = routes.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&"00000000")).then(|| fields[0].to_string())
    });
    let Some(interface) = default_interface else {
        return "127.0.0.1".into();
    };
    nix::ifaddrs::getifaddrs()
        .ok()
        .into_iter()
        .flatten()
        .filter(|a| a.interface_name == interface)
        .find_map(|a| a.address?.as_sockaddr_in().map(|sin| sin.ip().to_string()))
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// The node's allocatable CPU (millicores) and memory (bytes), as kubelet reports a node without
/// reservations.
pub fn node_capacity() -> (u64, u64) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    (cpus * 1000, memory_kib * 1024)
}

pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_and_bounded() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        let sb = sandbox_id("echo", &uid);
        assert!(sb.starts_with("echo-") && sb.len() == 13, "{sb}");
        let long = "a".repeat(63);
        let sb = sandbox_id(&long, &uid);
        assert!(sb.len() <= 49);
        assert_eq!(member_id(&sb, "web", 0), format!("{sb}-web"));
        assert_eq!(member_id(&sb, &"b".repeat(63), 3), format!("{sb}-m3"));
    }
}
