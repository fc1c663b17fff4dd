//! What a member's container process can learn about itself, since the framework hands the engine
//! only argv, the environment and the program: the HTTP port kubelet never passes down (CRI
//! carries no containerPorts to a runtime, so `podctl kube generate` writes it into the env), the
//! volumes libcontainer mounted (from `/proc/self/mountinfo`) and the memory limit of its cgroup.

use std::path::{Path, PathBuf};

use podctl_wasmtime::Preopen;

/// The environment variable that names a wasi:http member's port (its one containerPort).
pub(crate) const HTTP_PORT_ENV: &str = "PODCTL_HTTP_PORT";

/// The guest's environment and the HTTP port, from the container's `K=V` list. The port variable
/// is podctl's, not the program's: the guest does not see it, as under podctl.
pub(crate) fn split_env(envs: &[String]) -> (Vec<(String, String)>, Option<String>) {
    let mut port = None;
    let mut env = Vec::with_capacity(envs.len());
    for entry in envs {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        if key == HTTP_PORT_ENV {
            port = Some(value.to_string());
        } else {
            env.push((key.to_string(), value.to_string()));
        }
    }
    (env, port)
}

/// Mount points that every container has and that are not the pod's volumes.
fn is_system_mount(point: &Path) -> bool {
    const FILES: [&str; 3] = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];
    point == Path::new("/")
        || ["/proc", "/sys", "/dev"].iter().any(|top| point.starts_with(top))
        || FILES.iter().any(|f| point == Path::new(f))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| std::str::from_utf8(d).ok());
        match (bytes[i], octal.and_then(|d| u8::from_str_radix(d, 8).ok())) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The pod's volumes as preopens at their mount points (read-only mounts stay read-only), so a
/// member sees what it sees under podctl: its volumes, not the image's files.
pub(crate) fn volume_preopens(mountinfo: &str) -> Vec<Preopen> {
    let mut preopens: Vec<Preopen> = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(point), Some(options)) = (fields.get(4), fields.get(5)) else {
            continue;
        };
        let point = PathBuf::from(unescape(point));
        if is_system_mount(&point) || !point.is_dir() {
            continue;
        }
        let read_only = options.split(',').any(|o| o == "ro");
        let guest = point.to_string_lossy().into_owned();
        // A later mount on the same point hides the earlier one.
        preopens.retain(|p| p.guest != guest);
        preopens.push(Preopen {
            host: point,
            guest,
            read_only,
        });
    }
    preopens
}

/// Any value at or above this is "no limit" (cgroup v1 reports 2^63 rounded down to a page).
const UNLIMITED: u64 = 1 << 60;

fn read_number(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse().ok().filter(|n| *n < UNLIMITED)
}

/// The cgroup directories this process may see its memory controller in: the container's own
/// cgroup mounted at the root (cgroup namespace, or v1 as runc and youki mount it), or the host's
/// hierarchy with the path from `/proc/self/cgroup`.
fn memory_cgroup_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup/memory"), PathBuf::from("/sys/fs/cgroup")];
    if let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") {
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let path = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "memory") {
                dirs.push(Path::new("/sys/fs/cgroup/memory").join(path));
            } else if controllers.is_empty() {
                dirs.push(Path::new("/sys/fs/cgroup").join(path));
            }
        }
    }
    dirs
}

/// How many more bytes the container's memory cgroup allows than it uses now: the guest's
/// memories are capped at that, so a guest that outgrows its `resources.limits.memory` traps with
/// "memory limit exceeded" (exit 137) instead of being killed by the kernel mid-write.
pub(crate) fn memory_headroom() -> Option<u64> {
    let mut best: Option<u64> = None;
    for dir in memory_cgroup_dirs() {
        let pairs = [
            ("memory.limit_in_bytes", "memory.usage_in_bytes"),
            ("memory.max", "memory.current"),
        ];
        for (limit, usage) in pairs {
            if let Some(limit) = read_number(&dir.join(limit)) {
                let used = read_number(&dir.join(usage)).unwrap_or(0);
                let headroom = limit.saturating_sub(used);
                best = Some(best.map_or(headroom, |b| b.min(headroom)));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_variable_is_taken_out_of_the_guests_environment() {
        let envs = ["PATH=/usr/bin", "PODCTL_HTTP_PORT=8080", "GREETING=a=b", "EMPTY"].map(String::from);
        let (env, port) = split_env(&envs);
        assert_eq!(port.as_deref(), Some("8080"));
        assert_eq!(
            env,
            [("PATH", "/usr/bin"), ("GREETING", "a=b"), ("EMPTY", "")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn volumes_are_the_mounts_that_are_not_the_containers_own() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("my data");
        let config = dir.path().join("config");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&config).unwrap();
        let escaped = data.to_string_lossy().replace(' ', "\\040");
        let mountinfo = format!(
            "1 0 0:1 / / rw,relatime - overlay overlay rw\n\
             2 1 0:2 / /proc rw,nosuid - proc proc rw\n\
             3 1 0:3 / /dev rw - tmpfs tmpfs rw\n\
             4 3 0:4 / /dev/termination-log rw - ext4 /dev/sda1 rw\n\
             5 1 0:5 / /etc/hosts rw - ext4 /dev/sda1 rw\n\
             6 1 0:6 / {escaped} rw,relatime - ext4 /dev/sda1 rw\n\
             7 1 0:7 / {} ro,relatime - tmpfs tmpfs rw\n\
             8 1 0:8 / /no/such/dir rw - tmpfs tmpfs rw\n",
            config.display()
        );
        let preopens = volume_preopens(&mountinfo);
        assert_eq!(
            preopens,
            vec![
                Preopen {
                    host: data.clone(),
                    guest: data.to_string_lossy().into_owned(),
                    read_only: false
                },
                Preopen {
                    host: config.clone(),
                    guest: config.to_string_lossy().into_owned(),
                    read_only: true
                },
            ]
        );
    }

    #[test]
    fn no_limit_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("max"), "9223372036854771712\n").unwrap();
        std::fs::write(dir.path().join("set"), "67108864\n").unwrap();
        assert_eq!(read_number(&dir.path().join("max")), None);
        assert_eq!(read_number(&dir.path().join("set")), Some(64 << 20));
    }
}
