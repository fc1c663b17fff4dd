//! OCI runtime specs for the pod's tasks: the pause sandbox (owner of the pod's namespaces) and the
//! members (joining them by path). Built field by field: oci-spec's `Spec::default()` carries a
//! hostname and a namespace list that are wrong for both.

mod process;
pub mod seccomp;

pub use process::{apply_pod_env, expand, plan_process, ImageAccounts, ProcessPlan};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::manifest::{SeccompProfile, SecurityContext, ALL_CAPABILITIES};
use oci_spec::runtime::{
    Capability, Linux, LinuxBuilder, LinuxCapabilities, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder,
    LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResources, LinuxResourcesBuilder, LinuxSeccomp,
    Mount, MountBuilder, Process, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::manifest::Container;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("container {container}: image {image} has no ENTRYPOINT or CMD; set `command` in the Pod")]
    NoCommand { container: String, image: String },
    #[error("container {container}: image user `{user}`: {missing}; use a USER the image defines, a numeric UID:GID, or set securityContext.runAsUser")]
    User {
        container: String,
        user: String,
        missing: String,
    },
    /// kubelet's CreateContainerConfigError for runAsNonRoot.
    #[error("container {container}: container has runAsNonRoot and image will run as root; set securityContext.runAsUser to a non-zero UID, or use an image whose USER is not root")]
    RunsAsRoot { container: String },
    #[error("container {container}: unknown capability {name:?} in securityContext.capabilities; use names such as NET_ADMIN or CAP_NET_ADMIN, or ALL")]
    Capability { container: String, name: String },
    #[error("seccomp profile {profile}: {cause}; use seccompProfile type RuntimeDefault or Unconfined, or a Localhost profile file under {}", seccomp::LOCALHOST_DIR)]
    Seccomp { profile: String, cause: String },
    #[error("building the OCI spec failed: {0}")]
    Build(#[from] oci_spec::OciSpecError),
    #[error("serializing the OCI spec failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// Where a member finds the namespaces it joins.
pub struct SandboxNamespaces {
    /// The pinned network namespace (/run/netns/...), valid even without the pause task.
    pub netns: PathBuf,
    /// The pause task's PID: its /proc/<pid>/ns/{ipc,uts,pid} are the pod's.
    pub pause_pid: u32,
    pub share_pid: bool,
    /// `hostPID`, `hostIPC` and `hostNetwork`: the host's namespace instead of the pod's (the
    /// host's network comes with its UTS namespace, as in Kubernetes).
    pub host_pid: bool,
    pub host_ipc: bool,
    pub host_network: bool,
}

/// Annotations the runc shim groups by, so all tasks of one pod share one shim process.
pub fn grouping_annotations(sandbox_id: &str, container_type: &str) -> HashMap<String, String> {
    HashMap::from([
        ("io.kubernetes.cri.sandbox-id".to_string(), sandbox_id.to_string()),
        (
            "io.kubernetes.cri.container-type".to_string(),
            container_type.to_string(),
        ),
    ])
}

/// A bind mount from the host (volumes and the pod's /etc files).
pub fn bind_mount(source: &Path, destination: &str, read_only: bool) -> Result<Mount, SpecError> {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    options.push(if read_only { "ro" } else { "rw" }.to_string());
    Ok(MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source)
        .options(options)
        .build()?)
}

/// The common shape of every podctl task: default mounts, capabilities, limits, masked paths.
struct TaskSpec<'a> {
    id: &'a str,
    sandbox_id: &'a str,
    container_type: &'a str,
    plan: ProcessPlan,
    /// The container's securityContext (None for the sandbox).
    security: Option<&'a SecurityContext>,
    hostname: Option<String>,
    namespaces: Vec<(LinuxNamespaceType, Option<PathBuf>)>,
    extra_mounts: Vec<Mount>,
    memory_limit: Option<u64>,
    cpu_millis: Option<u64>,
    /// The seccomp profile asked for (the container's, else the pod's).
    seccomp: Option<&'a SeccompProfile>,
    /// Namespaced kernel parameters (the sandbox's: its members share its namespaces).
    sysctls: Vec<(String, String)>,
    /// `tty: true`: the process gets a terminal (the task is created with one).
    terminal: bool,
}

/// Docker's and containerd's default capability set.
const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// 100ms CFS period, as kubelet uses.
const CPU_PERIOD: u64 = 100_000;

/// A capability as Kubernetes names it (`NET_ADMIN`, `CAP_NET_ADMIN`, any case).
fn capability(name: &str, container: &str) -> Result<Capability, SpecError> {
    let upper = name.to_ascii_uppercase();
    let full = match upper.starts_with("CAP_") {
        true => upper,
        false => format!("CAP_{upper}"),
    };
    // (serde knows the `CAP_` names; the enum's FromStr the bare ones.)
    serde_json::from_value::<Capability>(serde_json::Value::String(full)).map_err(|_| SpecError::Capability {
        container: container.to_string(),
        name: name.to_string(),
    })
}

/// containerd CRI's default set, then `drop` (`ALL` for every one), then `add` (`ALL` too);
/// `privileged` has every capability.
fn capability_set(
    security: Option<&SecurityContext>,
    container: &str,
) -> Result<oci_spec::runtime::Capabilities, SpecError> {
    // Those podctl itself may hand out (its bounding set; runc refuses others), as containerd's
    // "all current capabilities": the list is in kernel order, bit i for capability i.
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status
                .lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .unwrap_or(u64::MAX);
    let all = || -> oci_spec::runtime::Capabilities {
        ALL_CAPABILITIES
            .iter()
            .enumerate()
            .filter(|(bit, _)| bounding & (1 << bit) != 0)
            .map(|(_, name)| name)
            .filter_map(|name| serde_json::from_value::<Capability>(format!("CAP_{name}").into()).ok())
            .collect()
    };
    let Some(security) = security else {
        return Ok(DEFAULT_CAPABILITIES.into_iter().collect());
    };
    if security.privileged == Some(true) {
        return Ok(all());
    }
    let mut caps: oci_spec::runtime::Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
    if let Some(changes) = &security.capabilities {
        for name in &changes.drop {
            match name.eq_ignore_ascii_case("ALL") {
                true => caps.clear(),
                false => {
                    caps.remove(&capability(name, container)?);
                }
            }
        }
        for name in &changes.add {
            match name.eq_ignore_ascii_case("ALL") {
                true => caps = all(),
                false => {
                    caps.insert(capability(name, container)?);
                }
            }
        }
    }
    Ok(caps)
}

fn build(task: TaskSpec<'_>) -> Result<Spec, SpecError> {
    let caps = capability_set(task.security, task.id)?;
    let capabilities = capabilities_of(&caps)?;
    let privileged = task.security.and_then(|s| s.privileged) == Some(true);
    // containerd installs no seccomp filter for a privileged container.
    let seccomp = match privileged {
        true => None,
        false => seccomp::filter(task.seccomp, &caps, Path::new(seccomp::LOCALHOST_DIR))?,
    };
    let read_only_root = task.security.and_then(|s| s.read_only_root_filesystem) == Some(true);
    let process = process_of(task.plan, task.security, task.terminal, capabilities)?;
    let namespaces = namespaces_of(task.namespaces)?;
    let resources = resources_of(task.memory_limit, task.cpu_millis)?;
    let linux = linux_of(task.id, namespaces, resources, seccomp, task.sysctls, privileged)?;
    let mounts = mounts_with(task.extra_mounts)?;
    let mut spec = SpecBuilder::default()
        .version("1.0.2-dev")
        .root(RootBuilder::default().path("rootfs").readonly(read_only_root).build()?)
        .mounts(mounts)
        .process(process)
        .linux(linux)
        .annotations(grouping_annotations(task.sandbox_id, task.container_type));
    if let Some(hostname) = task.hostname.clone() {
        spec = spec.hostname(hostname);
    }
    let mut spec = spec.build()?;
    // The builder starts from Spec::default(), whose hostname ("youki") a member must not set:
    // it joins the sandbox's UTS namespace, which already has the pod's name.
    spec.set_hostname(task.hostname);
    Ok(spec)
}

/// Bounding, effective and permitted are `caps`. Inheritable and ambient stay empty, as
/// containerd sets them since CVE-2022-24769 (the builder's defaults would keep capabilities a
/// `drop` removed, and runc refuses those sets).
fn capabilities_of(caps: &oci_spec::runtime::Capabilities) -> Result<LinuxCapabilities, SpecError> {
    Ok(oci_spec::runtime::LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        .inheritable(oci_spec::runtime::Capabilities::new())
        .ambient(oci_spec::runtime::Capabilities::new())
        .build()?)
}

/// The process: its command, user and groups, environment, terminal and capabilities.
fn process_of(
    plan: ProcessPlan,
    security: Option<&SecurityContext>,
    terminal: bool,
    capabilities: LinuxCapabilities,
) -> Result<Process, SpecError> {
    // runc's no_new_privs is what allowPrivilegeEscalation: false asks for.
    let no_new_privileges = security.and_then(|s| s.allow_privilege_escalation) == Some(false);
    let user = UserBuilder::default()
        .uid(plan.uid)
        .gid(plan.gid)
        .additional_gids(plan.additional_gids.clone())
        .build()?;
    Ok(ProcessBuilder::default()
        .terminal(terminal)
        .user(user)
        .args(plan.args)
        .env(plan.env)
        .cwd(plan.cwd)
        .capabilities(capabilities)
        // No rlimits: members inherit containerd's, as under the CRI plugin (a fixed NOFILE above
        // the host's nr_open makes runc fail).
        .no_new_privileges(no_new_privileges)
        .build()?)
}

/// The namespaces it joins (by path) or gets new.
fn namespaces_of(namespaces: Vec<(LinuxNamespaceType, Option<PathBuf>)>) -> Result<Vec<LinuxNamespace>, SpecError> {
    let mut built = Vec::new();
    for (typ, path) in namespaces {
        let mut ns = LinuxNamespaceBuilder::default().typ(typ);
        if let Some(path) = path {
            ns = ns.path(path);
        }
        built.push(ns.build()?);
    }
    Ok(built)
}

/// Its cgroup's limits: memory, CPU quota, and no devices but runc's standard ones.
fn resources_of(memory_limit: Option<u64>, cpu_millis: Option<u64>) -> Result<LinuxResources, SpecError> {
    let mut memory = LinuxMemoryBuilder::default();
    if let Some(limit) = memory_limit {
        memory = memory.limit(limit as i64);
    }
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(millis) = cpu_millis {
        cpu = cpu.quota((millis * CPU_PERIOD / 1000) as i64).period(CPU_PERIOD);
    }
    Ok(LinuxResourcesBuilder::default()
        // Deny all devices; runc adds the standard ones (null, zero, tty, ...) itself.
        .devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()?])
        .memory(memory.build()?)
        .cpu(cpu.build()?)
        .build()?)
}

/// The spec's `linux` part: namespaces, resources, seccomp, sysctls, cgroup and masked paths.
fn linux_of(
    id: &str,
    namespaces: Vec<LinuxNamespace>,
    resources: LinuxResources,
    seccomp: Option<LinuxSeccomp>,
    sysctls: Vec<(String, String)>,
    privileged: bool,
) -> Result<Linux, SpecError> {
    let mut linux = LinuxBuilder::default();
    if let Some(filter) = seccomp {
        linux = linux.seccomp(filter);
    }
    if !sysctls.is_empty() {
        linux = linux.sysctl(sysctls.into_iter().collect::<HashMap<_, _>>());
    }
    Ok(linux
        .namespaces(namespaces)
        .resources(resources)
        .cgroups_path(PathBuf::from(format!("/podctl/{id}")))
        // A privileged container sees /proc and /sys whole, as under CRI.
        .masked_paths(match privileged {
            true => Vec::new(),
            false => oci_spec::runtime::get_default_maskedpaths(),
        })
        .readonly_paths(match privileged {
            true => Vec::new(),
            false => oci_spec::runtime::get_default_readonly_paths(),
        })
        .build()?)
}

/// The default mounts and a tmpfs /run, with `extra` (the pod's and the member's) replacing
/// what they cover.
fn mounts_with(extra: Vec<Mount>) -> Result<Vec<Mount>, SpecError> {
    let mut mounts = oci_spec::runtime::get_default_mounts();
    mounts.push(
        MountBuilder::default()
            .destination("/run")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec![
                "nosuid".into(),
                "strictatime".into(),
                "mode=755".into(),
                "size=65536k".into(),
            ])
            .build()?,
    );
    // A mount of the pod's (its shared /dev/shm) replaces the default one at the same place.
    mounts.retain(|m| !extra.iter().any(|e| e.destination() == m.destination()));
    mounts.extend(extra);
    Ok(mounts)
}

pub struct SandboxSpecInput<'a> {
    pub sandbox_id: &'a str,
    pub hostname: &'a str,
    pub netns: &'a Path,
    pub args: Vec<String>,
    pub etc_mounts: Vec<Mount>,
    pub host_pid: bool,
    pub host_ipc: bool,
    pub host_network: bool,
    /// The pod's sysctls: set in the namespaces the pause task owns, which its members join.
    pub sysctls: Vec<(String, String)>,
}

/// The pause task: joins the pinned netns, owns fresh IPC, UTS (hostname = pod) and PID namespaces
/// (IPC and PID stay the host's under `hostIPC` and `hostPID`).
pub fn sandbox_spec(input: SandboxSpecInput<'_>) -> Result<Spec, SpecError> {
    let mut namespaces = vec![(LinuxNamespaceType::Mount, None)];
    if !input.host_network {
        namespaces.push((LinuxNamespaceType::Network, Some(input.netns.to_path_buf())));
        namespaces.push((LinuxNamespaceType::Uts, None));
    }
    if !input.host_ipc {
        namespaces.push((LinuxNamespaceType::Ipc, None));
    }
    if !input.host_pid {
        namespaces.push((LinuxNamespaceType::Pid, None));
    }
    build(TaskSpec {
        id: input.sandbox_id,
        sandbox_id: input.sandbox_id,
        container_type: "sandbox",
        security: None,
        plan: ProcessPlan {
            args: input.args,
            env: vec![process::DEFAULT_PATH_ENV.to_string()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
        },
        // The host's UTS namespace keeps the host's name.
        hostname: (!input.host_network).then(|| input.hostname.to_string()),
        namespaces,
        extra_mounts: input.etc_mounts,
        memory_limit: None,
        cpu_millis: None,
        seccomp: None,
        sysctls: input.sysctls,
        terminal: false,
    })
}

pub struct MemberSpecInput<'a> {
    pub id: &'a str,
    pub sandbox_id: &'a str,
    pub container: &'a Container,
    pub plan: ProcessPlan,
    pub namespaces: &'a SandboxNamespaces,
    pub mounts: Vec<Mount>,
    /// The pod's seccompProfile, for a container that names none.
    pub pod_seccomp: Option<&'a SeccompProfile>,
}

/// A member: joins the sandbox's network, IPC and UTS namespaces (and PID when shared); no
/// hostname of its own, since the UTS namespace it joins already has the pod's.
pub fn member_spec(input: MemberSpecInput<'_>) -> Result<Spec, SpecError> {
    let proc_ns = |kind: &str| Some(PathBuf::from(format!("/proc/{}/ns/{kind}", input.namespaces.pause_pid)));
    let ns = input.namespaces;
    let mut namespaces = vec![(LinuxNamespaceType::Mount, None)];
    if !ns.host_network {
        namespaces.push((LinuxNamespaceType::Network, Some(ns.netns.clone())));
        namespaces.push((LinuxNamespaceType::Uts, proc_ns("uts")));
    }
    // No entry: the host's namespace, as hostIPC and hostPID ask.
    if !ns.host_ipc {
        namespaces.push((LinuxNamespaceType::Ipc, proc_ns("ipc")));
    }
    if !ns.host_pid {
        namespaces.push(if ns.share_pid {
            (LinuxNamespaceType::Pid, proc_ns("pid"))
        } else {
            (LinuxNamespaceType::Pid, None)
        });
    }
    let mut plan = input.plan;
    // As the CRI plugin: a terminal program needs to know what it talks to.
    if input.container.tty && !plan.env.iter().any(|e| e.starts_with("TERM=")) {
        plan.env.push("TERM=xterm".into());
    }
    build(TaskSpec {
        id: input.id,
        sandbox_id: input.sandbox_id,
        container_type: "container",
        security: input.container.security_context.as_ref(),
        plan,
        hostname: None,
        namespaces,
        extra_mounts: input.mounts,
        memory_limit: input.container.resources.memory_limit_bytes(),
        cpu_millis: input.container.resources.cpu_limit_millis(),
        seccomp: input
            .container
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref())
            .or(input.pod_seccomp),
        sysctls: Vec::new(),
        terminal: input.container.tty,
    })
}

pub fn to_json(spec: &Spec) -> Result<Vec<u8>, SpecError> {
    Ok(serde_json::to_vec(spec)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespaces_of(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        spec.linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| (n.typ(), n.path().clone()))
            .collect()
    }

    #[test]
    fn sandbox_owns_namespaces_and_hostname() {
        let spec = sandbox_spec(SandboxSpecInput {
            sandbox_id: "sb",
            hostname: "echo",
            netns: Path::new("/run/netns/podctl-echo"),
            args: vec!["/pause".into()],
            etc_mounts: vec![],
            host_pid: false,
            host_ipc: false,
            host_network: false,
            sysctls: vec![],
        })
        .unwrap();
        assert_eq!(spec.hostname().as_deref(), Some("echo"));
        let ns = namespaces_of(&spec);
        assert!(ns.contains(&(LinuxNamespaceType::Network, Some("/run/netns/podctl-echo".into()))));
        assert!(ns.contains(&(LinuxNamespaceType::Pid, None)));
        assert!(ns.contains(&(LinuxNamespaceType::Uts, None)));
        assert_eq!(
            spec.annotations().as_ref().unwrap()["io.kubernetes.cri.sandbox-id"],
            "sb"
        );
    }

    #[test]
    fn capabilities_drop_then_add_and_privileged_has_all() {
        let security = |json: serde_json::Value| serde_json::from_value::<SecurityContext>(json).unwrap();
        let default = capability_set(None, "c").unwrap();
        assert_eq!(default.len(), DEFAULT_CAPABILITIES.len());
        let narrow = capability_set(
            Some(&security(
                serde_json::json!({"capabilities": {"drop": ["ALL"], "add": ["net_admin", "CAP_KILL"]}}),
            )),
            "c",
        )
        .unwrap();
        assert_eq!(narrow.len(), 2);
        assert!(narrow.contains(&Capability::NetAdmin) && narrow.contains(&Capability::Kill));
        let minus = capability_set(
            Some(&security(serde_json::json!({"capabilities": {"drop": ["NET_RAW"]}}))),
            "c",
        )
        .unwrap();
        assert!(!minus.contains(&Capability::NetRaw) && minus.len() == DEFAULT_CAPABILITIES.len() - 1);
        let all = capability_set(Some(&security(serde_json::json!({"privileged": true}))), "c").unwrap();
        assert!(all.len() > DEFAULT_CAPABILITIES.len());
        assert!(capability_set(
            Some(&security(serde_json::json!({"capabilities": {"add": ["FLY"]}}))),
            "c"
        )
        .is_err());
    }

    #[test]
    fn member_joins_by_path_without_hostname() {
        let container: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "image": "i", "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}
        }))
        .unwrap();
        let namespaces = SandboxNamespaces {
            netns: "/run/netns/x".into(),
            pause_pid: 42,
            share_pid: true,
            host_pid: false,
            host_ipc: false,
            host_network: false,
        };
        let plan = ProcessPlan {
            args: vec!["/a".into()],
            env: vec![],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
        };
        let spec = member_spec(MemberSpecInput {
            id: "m",
            sandbox_id: "sb",
            container: &container,
            plan,
            namespaces: &namespaces,
            mounts: vec![],
            pod_seccomp: None,
        })
        .unwrap();
        assert_eq!(spec.hostname(), &None);
        let ns = namespaces_of(&spec);
        assert!(ns.contains(&(LinuxNamespaceType::Ipc, Some("/proc/42/ns/ipc".into()))));
        assert!(ns.contains(&(LinuxNamespaceType::Uts, Some("/proc/42/ns/uts".into()))));
        assert!(ns.contains(&(LinuxNamespaceType::Pid, Some("/proc/42/ns/pid".into()))));
        let resources = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert_eq!(resources.memory().as_ref().unwrap().limit(), Some(64 * 1024 * 1024));
        assert_eq!(resources.cpu().as_ref().unwrap().quota(), Some(50_000));
    }
}
