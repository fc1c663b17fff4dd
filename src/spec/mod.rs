//! OCI runtime specs for the pod's tasks: the pause sandbox (owner of the pod's namespaces) and the
//! members (joining them by path). Built field by field: oci-spec's `Spec::default()` carries a
//! hostname and a namespace list that are wrong for both.

mod process;

pub use process::{apply_pod_env, expand, plan_process, ProcessPlan};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};

use crate::manifest::Container;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("container {container}: image {image} has no ENTRYPOINT or CMD; set `command` in the Pod")]
    NoCommand { container: String, image: String },
    #[error("container {container}: image user `{user}` is a name podctl cannot resolve yet; use an image whose USER is numeric (UID or UID:GID)")]
    User { container: String, user: String },
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
    hostname: Option<String>,
    namespaces: Vec<(LinuxNamespaceType, Option<PathBuf>)>,
    extra_mounts: Vec<Mount>,
    memory_limit: Option<u64>,
    cpu_millis: Option<u64>,
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

fn build(task: TaskSpec<'_>) -> Result<Spec, SpecError> {
    let caps: oci_spec::runtime::Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
    let capabilities = oci_spec::runtime::LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()?;
    let user = UserBuilder::default().uid(task.plan.uid).gid(task.plan.gid).build()?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(task.plan.args)
        .env(task.plan.env)
        .cwd(task.plan.cwd)
        .capabilities(capabilities)
        // No rlimits: members inherit containerd's, as under the CRI plugin (a fixed NOFILE above
        // the host's nr_open makes runc fail).
        .no_new_privileges(false)
        .build()?;

    let mut namespaces = Vec::new();
    for (typ, path) in task.namespaces {
        let mut ns = LinuxNamespaceBuilder::default().typ(typ);
        if let Some(path) = path {
            ns = ns.path(path);
        }
        namespaces.push(ns.build()?);
    }
    let mut memory = LinuxMemoryBuilder::default();
    if let Some(limit) = task.memory_limit {
        memory = memory.limit(limit as i64);
    }
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(millis) = task.cpu_millis {
        cpu = cpu.quota((millis * CPU_PERIOD / 1000) as i64).period(CPU_PERIOD);
    }
    let resources = LinuxResourcesBuilder::default()
        // Deny all devices; runc adds the standard ones (null, zero, tty, ...) itself.
        .devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()?])
        .memory(memory.build()?)
        .cpu(cpu.build()?)
        .build()?;
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources)
        .cgroups_path(PathBuf::from(format!("/podctl/{}", task.id)))
        .masked_paths(oci_spec::runtime::get_default_maskedpaths())
        .readonly_paths(oci_spec::runtime::get_default_readonly_paths())
        .build()?;

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
    mounts.extend(task.extra_mounts);

    let mut spec = SpecBuilder::default()
        .version("1.0.2-dev")
        .root(RootBuilder::default().path("rootfs").readonly(false).build()?)
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

pub struct SandboxSpecInput<'a> {
    pub sandbox_id: &'a str,
    pub hostname: &'a str,
    pub netns: &'a Path,
    pub args: Vec<String>,
    pub etc_mounts: Vec<Mount>,
}

/// The pause task: joins the pinned netns, owns fresh IPC, UTS (hostname = pod) and PID namespaces.
pub fn sandbox_spec(input: SandboxSpecInput<'_>) -> Result<Spec, SpecError> {
    build(TaskSpec {
        id: input.sandbox_id,
        sandbox_id: input.sandbox_id,
        container_type: "sandbox",
        plan: ProcessPlan {
            args: input.args,
            env: vec![process::DEFAULT_PATH_ENV.to_string()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
        },
        hostname: Some(input.hostname.to_string()),
        namespaces: vec![
            (LinuxNamespaceType::Network, Some(input.netns.to_path_buf())),
            (LinuxNamespaceType::Ipc, None),
            (LinuxNamespaceType::Uts, None),
            (LinuxNamespaceType::Pid, None),
            (LinuxNamespaceType::Mount, None),
        ],
        extra_mounts: input.etc_mounts,
        memory_limit: None,
        cpu_millis: None,
    })
}

pub struct MemberSpecInput<'a> {
    pub id: &'a str,
    pub sandbox_id: &'a str,
    pub container: &'a Container,
    pub plan: ProcessPlan,
    pub namespaces: &'a SandboxNamespaces,
    pub mounts: Vec<Mount>,
}

/// A member: joins the sandbox's network, IPC and UTS namespaces (and PID when shared); no
/// hostname of its own, since the UTS namespace it joins already has the pod's.
pub fn member_spec(input: MemberSpecInput<'_>) -> Result<Spec, SpecError> {
    let proc_ns = |kind: &str| Some(PathBuf::from(format!("/proc/{}/ns/{kind}", input.namespaces.pause_pid)));
    let mut namespaces = vec![
        (LinuxNamespaceType::Network, Some(input.namespaces.netns.clone())),
        (LinuxNamespaceType::Ipc, proc_ns("ipc")),
        (LinuxNamespaceType::Uts, proc_ns("uts")),
        (LinuxNamespaceType::Mount, None),
    ];
    namespaces.push(if input.namespaces.share_pid {
        (LinuxNamespaceType::Pid, proc_ns("pid"))
    } else {
        (LinuxNamespaceType::Pid, None)
    });
    build(TaskSpec {
        id: input.id,
        sandbox_id: input.sandbox_id,
        container_type: "container",
        plan: input.plan,
        hostname: None,
        namespaces,
        extra_mounts: input.mounts,
        memory_limit: input.container.resources.memory_limit_bytes(),
        cpu_millis: input.container.resources.cpu_limit_millis(),
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
    fn member_joins_by_path_without_hostname() {
        let container: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "image": "i", "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}
        }))
        .unwrap();
        let namespaces = SandboxNamespaces {
            netns: "/run/netns/x".into(),
            pause_pid: 42,
            share_pid: true,
        };
        let plan = ProcessPlan {
            args: vec!["/a".into()],
            env: vec![],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
        };
        let spec = member_spec(MemberSpecInput {
            id: "m",
            sandbox_id: "sb",
            container: &container,
            plan,
            namespaces: &namespaces,
            mounts: vec![],
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
