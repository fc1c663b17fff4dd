//! Pod member runtimes: one small trait, [`MemberRuntime`], and a [`Registry`] that picks the runtime
//! for each container. The OCI runtime (containerd shims, [`oci`]) and the plugins ([`plugin`]:
//! `podctl-runtime-NAME` processes in the per-pod agent, of which [`wasm`] is one) are its
//! implementations; create, get and delete never branch on image kinds themselves. The registry
//! also holds the host's runtime handlers ([`config`], runtimes.toml): a pod's
//! `spec.runtimeClassName` or a container's annotation names one, and a containerd handler's shim
//! and options go on the member's record ([`NamedRuntime`]).
//!
//! # Adding a runtime
//! Most runtimes are plugins: a `podctl-runtime-NAME` binary in the plugin directory becomes a
//! [`plugin::PluginRuntime`] by itself (plugins/README.md). Inside podctl, implement
//! [`MemberRuntime`] (claim what it runs, prepare before anything is created, start a pod's
//! members of its kind recording undo steps, observe their state, stop them gracefully), then hand
//! it to [`Registry::new`] ahead of the OCI runtime, which claims every image nobody else does. Its
//! members are containerd container records like the others (labels name the pod, member and
//! `podctl.io/runtime`), so every command finds them without a private database.

pub mod config;
pub mod oci;
pub mod plugin;
pub mod undo;
pub mod wasm;

#[cfg(test)]
mod probe_defs_tests;

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use oci_spec::runtime::Mount;

use crate::agent::protocol::{
    HookDef, Hooks, InitRef, PluginLaunch, PluginMemberDef, ProbeAction, ProbeDef, ProbeKind,
};
use crate::agent::AgentError;
use crate::containerd::{Client, ContainerdError, TaskInfo, TaskRuntime};
use crate::image::ImageError;
use crate::manifest::{Container, Pod, VolumeSource};
use crate::record::*;
use crate::settings::Settings;
use crate::spec::{SandboxNamespaces, SpecError};
use config::{Handler, RuntimeConfig};
use undo::Undo;

/// Per-container override: `podctl.io/runtime.<container-name>: oci|wasmtime|HANDLER`.
pub const RUNTIME_ANNOTATION_PREFIX: &str = "podctl.io/runtime.";

impl From<ImageError> for MemberError {
    fn from(error: ImageError) -> MemberError {
        MemberError::ImageStore(Box::new(error))
    }
}

pub fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> MemberError {
    let path = path.into();
    move |cause| MemberError::Io { path, cause }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    ImageStore(Box<ImageError>),
    /// What the member's runtime reports about it (a module that does not load, a failed start).
    #[error("container {container}: {message}")]
    Runtime { container: String, message: String },
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("pod {pod}: its record is damaged: {message}; remove it with `podctl delete {pod}`")]
    Damaged { pod: String, message: String },
    #[error("pod {pod}: init container {container} exited with code {code} and restartPolicy Never does not retry it, so the pod was not created (with Always or OnFailure the pod's agent retries it); its last output:\n{output}")]
    InitFailed {
        pod: String,
        container: String,
        code: u32,
        output: String,
    },
    #[error("container {container}: no member runtime can run image {image}: {reasons}")]
    NoRuntime {
        container: String,
        image: String,
        reasons: String,
    },
    #[error("container {container}: annotation {key} names runtime `{runtime}`, but this podctl has: {known} (handlers come from {config})")]
    UnknownRuntime {
        container: String,
        key: String,
        runtime: String,
        known: String,
        config: String,
    },
    #[error("spec.runtimeClassName: runtime class {class} has no handler in {config} (handlers there: {known}); add [runtimes.{handler}] with runtime_type or plugin, or point --runtime-config at the file that has it")]
    UnknownRuntimeClass {
        class: String,
        handler: String,
        config: String,
        known: String,
    },
    #[error(
        "runtime config {config}: {field}: plugin {plugin:?} is not installed (plugins here: {known}); put podctl-runtime-{plugin} in the plugin directory (--plugin-dir, default /usr/libexec/podctl/runtimes) or next to podctl"
    )]
    UnknownPlugin {
        config: String,
        field: String,
        plugin: String,
        known: String,
    },
    #[error("container {container}: handler {handler} runs tasks with {runtime}, but the pod's sandbox runs with {sandbox}; members share the sandbox's shim, so set spec.runtimeClassName: {handler} to run the whole pod with it")]
    ShimMismatch {
        container: String,
        handler: String,
        runtime: String,
        sandbox: String,
    },
}

/// What is known about a container's image before anything is created.
pub struct ImageProbe {
    pub reference: String,
    /// A local file the image names (`./x.wasm`, `/abs/x.wat`, `file:///x.wasm`), if it exists.
    pub local_file: Option<PathBuf>,
    /// A local directory the image names, likewise (only a plugin that claims directories runs it).
    pub local_dir: Option<PathBuf>,
    /// The scheme of an image that is a URL a plugin fetches itself (`SCHEME:REST`, see
    /// [`crate::image::reference::url_scheme`]); the URL is `reference`.
    pub url_scheme: Option<String>,
    /// (media type, digest) of the layers of the OCI image of that name in containerd, if there is one.
    pub layers: Option<Vec<(String, String)>>,
    /// The `podctl.io/runtime.<name>` annotation, if set.
    pub forced: Option<String>,
}

pub enum Claim {
    Accept,
    /// Not this runtime's: why, for the error when no runtime accepts.
    Decline(String),
}

/// A runtime's own result of `prepare`, handed back to it in `start`.
pub type Payload = Box<dyn Any + Send + Sync>;

pub struct PreparedMember<'a> {
    pub index: usize,
    pub container: &'a Container,
    pub payload: Payload,
    /// The containerd handler that runs its tasks, when not runc (see [`Registry::select`]).
    pub handler: Option<NamedRuntime>,
}

/// A containerd runtime handler of the host's runtime config, by its name there.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedRuntime {
    pub handler: String,
    pub runtime: TaskRuntime,
}

/// What a pod's `spec.runtimeClassName` means on this host.
#[derive(Clone, Debug, Default)]
pub struct RuntimeClass {
    /// A containerd handler: the sandbox, the init containers and the OCI members run with it.
    pub containerd: Option<NamedRuntime>,
    /// A plugin handler: the member runtime that must run every container.
    pub runtime: Option<usize>,
}

impl RuntimeClass {
    pub fn task_runtime(&self) -> TaskRuntime {
        self.containerd.as_ref().map(|n| n.runtime.clone()).unwrap_or_default()
    }
}

/// The runtime chosen for a container, and the containerd handler of its tasks (if not runc).
pub struct Selected {
    pub runtime: usize,
    pub handler: Option<NamedRuntime>,
}

fn volume_error(dir: &std::path::Path) -> impl FnOnce(crate::volume::VolumeError) -> MemberError + '_ {
    move |e| MemberError::Io {
        cause: std::io::Error::other(e.to_string()),
        path: dir.to_path_buf(),
    }
}

/// Everything about the pod being created that a runtime needs to add members to it.
pub struct PodContext<'a> {
    pub client: &'a Client,
    pub settings: &'a Settings,
    pub pod: &'a Pod,
    pub uid: &'a str,
    pub sandbox_id: &'a str,
    pub hostname: String,
    pub lease: String,
    pub namespaces: SandboxNamespaces,
    /// /etc/hosts, /etc/hostname, /etc/resolv.conf shared by the members.
    pub etc_mounts: Vec<Mount>,
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    /// What the pod's agent is to host (plugins and their members); `create` starts the agent
    /// once every runtime has run.
    pub hosted: std::sync::Mutex<Hosted>,
    /// Becomes `Some(true)` once CNI has wired the pod's network (`Some(false)`: it failed).
    pub network_ready: tokio::sync::watch::Receiver<Option<bool>>,
    /// Becomes `Some(true)` once the pause process runs (`Some(false)`: it failed to start).
    pub sandbox_started: tokio::sync::watch::Receiver<Option<bool>>,
    /// The pod's addresses, once CNI gave them (sent before `network_ready`).
    pub pod_ips: tokio::sync::watch::Receiver<Option<Vec<String>>>,
    /// What the downward API reads beyond the manifest (without the pod's IPs).
    pub facts: crate::manifest::downward::PodFacts,
    /// Init containers handed over to the pod's agent (see [`oci::run_init`]).
    pub init_handover: std::sync::Mutex<Vec<InitRef>>,
    /// The pod's runtime class (its containerd handler runs the init containers).
    pub runtime_class: RuntimeClass,
}

/// The plugins of a pod and the members they run, for the pod's agent.
#[derive(Default)]
pub struct Hosted {
    pub plugins: Vec<PluginLaunch>,
    pub members: Vec<PluginMemberDef>,
}

/// A volume as a member sees it.
pub struct VolumeBinding {
    /// Host directory or file; None for a memory-backed emptyDir.
    pub source: Option<PathBuf>,
    pub target: String,
    pub read_only: bool,
}

impl PodContext<'_> {
    /// An init container was handed over to the agent: the members are created, not started.
    pub fn start_deferred(&self) -> bool {
        !self.init_handover.lock().expect("not poisoned").is_empty()
    }

    /// Hands members to the pod's agent, which runs them through `plugin`.
    pub fn host_in_agent(&self, plugin: PluginLaunch, members: Vec<PluginMemberDef>) {
        let mut hosted = self.hosted.lock().expect("not poisoned");
        if !hosted.plugins.iter().any(|p| p.name == plugin.name) {
            hosted.plugins.push(plugin);
        }
        hosted.members.extend(members);
    }

    pub fn hand_over_init(&self, init: InitRef) {
        self.init_handover.lock().expect("not poisoned").push(init);
    }

    /// The container with every downward-API variable filled in: one that reads the pod's IP
    /// waits for CNI to give it (members are otherwise created while CNI runs).
    pub async fn with_pod_ips(&self, container: &Container) -> Result<Container, MemberError> {
        if !crate::manifest::downward::needs_pod_ip(container) {
            return Ok(container.clone());
        }
        let mut ips = self.pod_ips.clone();
        let known = ips.wait_for(Option::is_some).await.ok().and_then(|ips| ips.clone());
        let Some(pod_ips) = known.filter(|ips| !ips.is_empty()) else {
            return Err(MemberError::Damaged {
                pod: self.pod.metadata.name.clone(),
                message: "its network could not be set up".into(),
            });
        };
        let facts = crate::manifest::downward::PodFacts {
            pod_ips: Some(pod_ips),
            ..self.facts.clone()
        };
        let mut filled = container.clone();
        crate::manifest::downward::fill_env(self.pod, &mut filled, &facts);
        Ok(filled)
    }

    /// Waits until the pod's sandbox is ready (pause running, network wired): a member's process
    /// starts only then, as kubelet starts containers in a ready sandbox.
    pub async fn wait_sandbox_ready(&self) -> Result<(), MemberError> {
        for (signal, what) in [
            (&self.sandbox_started, "its pause process did not start"),
            (&self.network_ready, "its network could not be set up"),
        ] {
            let mut signal = signal.clone();
            if !matches!(signal.wait_for(Option::is_some).await.map(|r| *r), Ok(Some(true))) {
                return Err(MemberError::Damaged {
                    pod: self.pod.metadata.name.clone(),
                    message: what.into(),
                });
            }
        }
        Ok(())
    }

    pub fn base_labels(&self, container_name: &str, kind: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_POD_NAME.into(), self.pod.metadata.name.clone()),
            (LABEL_POD_NAMESPACE.into(), self.pod.metadata.namespace.clone()),
            (LABEL_POD_UID.into(), self.uid.to_string()),
            (LABEL_CONTAINER_NAME.into(), container_name.to_string()),
            (LABEL_KIND.into(), kind.to_string()),
            (LABEL_MANAGED_BY.into(), "podctl".into()),
            (LABEL_SANDBOX_ID.into(), self.sandbox_id.to_string()),
        ])
    }

    /// The member's log file (created with its directory), laid out like kubelet's.
    pub fn log_path(&self, container: &Container) -> Result<PathBuf, MemberError> {
        let dir = self.log_dir.join(&container.name);
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        Ok(crate::logs::run_file(&dir, 0))
    }

    /// The pod's fsGroup takes the new, still empty emptyDir at `dir` (a no-op without one): no
    /// member has written into it yet, so the walk meets nothing a member could have swapped.
    fn give_to_fs_group(&self, dir: &std::path::Path) -> Result<(), MemberError> {
        match self.pod.spec.security_context.as_ref().and_then(|s| s.fs_group) {
            Some(gid) => crate::volume::give_to_group(dir, gid, true).map_err(volume_error(dir)),
            None => Ok(()),
        }
    }

    /// Host sides of the container's volumeMounts, creating what the volume type says to create.
    pub fn volumes(&self, container: &Container) -> Result<Vec<VolumeBinding>, MemberError> {
        let mut bindings = Vec::new();
        for mount in &container.volume_mounts {
            // Manifest validation guarantees the volume exists.
            let Some(volume) = self.pod.spec.volumes.iter().find(|v| v.name == mount.name) else {
                continue;
            };
            let mut source = match &volume.source {
                VolumeSource::HostPath { path, type_ } => host_path(path, type_.as_deref(), &volume.name)?,
                // One tmpfs for the pod, shared by the members that mount it. sizeLimit is its size
                // (a write past it fails, where kubelet would evict the pod); without one, 1 GiB.
                // tmpfs takes memory only as written.
                source @ VolumeSource::EmptyDir { .. } if source.memory_size().is_some() => {
                    let dir = self.state_dir.join("volumes").join(&volume.name);
                    let fresh = !crate::volume::is_mount_point(&dir);
                    let size = source.memory_size().unwrap_or_default();
                    crate::volume::prepare_memory_dir(&dir, size, crate::volume::MemoryUse::EmptyDir)
                        .map_err(volume_error(&dir))?;
                    if fresh {
                        self.give_to_fs_group(&dir)?;
                    }
                    dir
                }
                VolumeSource::EmptyDir { .. } => {
                    let dir = self.state_dir.join("volumes").join(&volume.name);
                    // Only a new one is set up: once a member runs, it is theirs to change.
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
                        // Writable by any user, as kubelet makes an emptyDir.
                        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                            .map_err(io_error(&dir))?;
                        self.give_to_fs_group(&dir)?;
                    }
                    dir
                }
                // Written by create before the members (see `pod::config`); read-only, as kubelet
                // mounts them, and a subPath names one of the files (which then never updates).
                VolumeSource::Objects { .. } => {
                    let dir = self.state_dir.join("volumes").join(&volume.name);
                    let source = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                        Some(sub) => dir.join(sub),
                        None => dir,
                    };
                    if std::fs::symlink_metadata(&source).is_err() {
                        return Err(MemberError::Io {
                            cause: std::io::Error::new(
                                std::io::ErrorKind::NotFound,
                                format!(
                                    "volume {} has no file {:?} for this subPath; name a key it holds",
                                    volume.name,
                                    mount.sub_path.as_deref().unwrap_or_default()
                                ),
                            ),
                            path: source,
                        });
                    }
                    bindings.push(VolumeBinding {
                        source: Some(source),
                        target: mount.mount_path.clone(),
                        read_only: true,
                    });
                    continue;
                }
            };
            if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                source = source.join(sub);
                std::fs::create_dir_all(&source).map_err(io_error(&source))?;
            }
            bindings.push(VolumeBinding {
                source: Some(source),
                target: mount.mount_path.clone(),
                read_only: mount.read_only,
            });
        }
        Ok(bindings)
    }
}

fn host_path(path: &str, kind: Option<&str>, volume: &str) -> Result<PathBuf, MemberError> {
    let path = PathBuf::from(path);
    match kind {
        Some("DirectoryOrCreate") => std::fs::create_dir_all(&path).map_err(io_error(&path))?,
        Some("FileOrCreate") if !path.exists() => std::fs::write(&path, b"").map_err(io_error(&path))?,
        _ if !path.exists() => {
            return Err(MemberError::Io {
                cause: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("hostPath volume {volume} does not exist; create it or set `type: DirectoryOrCreate`"),
                ),
                path,
            })
        }
        _ => {}
    }
    Ok(path)
}

/// How a runtime sees one of its members now.
#[derive(Clone, Debug)]
pub struct Observation {
    pub state: MemberState,
    pub ready: bool,
    pub restarts: u32,
    pub pid: Option<u32>,
    /// `pid` is the member's own process, not the agent's that hosts it.
    pub own_process: bool,
    /// The last probe result worth showing (`readiness probe failed: ...`), from the agent.
    pub probe: Option<String>,
    /// Why its run ended, as it said (its termination message), while it is terminated.
    pub message: Option<String>,
}

/// What observing needs: containerd, and the namespace's tasks listed once for all pods.
pub struct ObserveContext<'a> {
    pub client: &'a Client,
    pub settings: &'a Settings,
    pub tasks: &'a HashMap<String, TaskInfo>,
}

/// What `podctl runtime ls` shows of a runtime.
pub struct RuntimeInfo {
    /// What it runs (image kinds, media types).
    pub claims: String,
    pub version: String,
}

pub trait MemberRuntime: Send + Sync {
    /// The name in `podctl.io/runtime` labels and annotations.
    fn name(&self) -> &str;
    /// Whether its members are OCI containers whose tasks a containerd shim runs (so a
    /// RuntimeClass's containerd handler applies to them).
    fn runs_tasks(&self) -> bool {
        false
    }
    /// What it runs and its version (a plugin is asked).
    fn info<'a>(&'a self, settings: &'a Settings) -> BoxFuture<'a, RuntimeInfo>;
    /// Whether this runtime runs the container's image; nothing may be created here.
    fn claim<'a>(
        &'a self,
        settings: &'a Settings,
        container: &'a Container,
        probe: &'a ImageProbe,
    ) -> BoxFuture<'a, Claim>;
    /// Resolves what the member needs (image, module) before anything of the pod exists, so a bad
    /// image fails the create with nothing to roll back.
    fn prepare<'a>(
        &'a self,
        client: &'a Client,
        settings: &'a Settings,
        container: &'a Container,
        probe: &'a ImageProbe,
        events: &'a mut Vec<PodEvent>,
    ) -> BoxFuture<'a, Result<Payload, MemberError>>;
    /// Creates and starts this runtime's members of the pod, recording an undo step for each thing made.
    fn start<'a>(
        &'a self,
        ctx: &'a PodContext<'a>,
        members: Vec<PreparedMember<'a>>,
        undo: &'a mut Undo,
        events: &'a mut Vec<PodEvent>,
    ) -> BoxFuture<'a, Result<(), MemberError>>;
    /// The state of this runtime's members of one pod, by member container ID.
    fn observe<'a>(
        &'a self,
        ctx: &'a ObserveContext<'a>,
        pod: &'a PodView,
    ) -> BoxFuture<'a, HashMap<String, Observation>>;
    /// Whether its members run inside the pod's agent (no process of their own: no `exec`; the
    /// agent starts them, so `podctl start` waits for it).
    fn in_agent(&self) -> bool {
        false
    }
    /// `podctl stop`: stops the members gracefully but keeps their records. Members the agent
    /// hosts were stopped with it already.
    fn halt<'a>(
        &'a self,
        _client: &'a Client,
        _members: Vec<&'a MemberView>,
        _grace: Duration,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async { Ok(()) })
    }
    /// `podctl start`: runs halted members again; `now` is false while init containers are still
    /// the agent's to finish (it starts the members then).
    fn resume<'a>(
        &'a self,
        _client: &'a Client,
        _settings: &'a Settings,
        _pod: &'a PodView,
        _members: Vec<&'a MemberView>,
        _now: bool,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async { Ok(()) })
    }
    /// Waits until the members' processes have exited (`delete` then tears the network down).
    fn wait_exited<'a>(&'a self, _client: &'a Client, _members: Vec<&'a MemberView>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    /// Stops the members gracefully (stop signal, `grace`, then kill) and removes their records.
    fn stop<'a>(
        &'a self,
        client: &'a Client,
        settings: &'a Settings,
        pod: &'a PodView,
        members: Vec<&'a MemberView>,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), MemberError>>;
}

/// A pod's members grouped by the runtime that runs them, in the registry's order.
pub type RuntimeGroups<'p> = Vec<(Arc<dyn MemberRuntime>, Vec<&'p MemberView>)>;

/// The runtimes podctl knows, in claim order, and the host's runtime handlers.
pub struct Registry {
    runtimes: Vec<Arc<dyn MemberRuntime>>,
    config: RuntimeConfig,
}

impl Registry {
    /// `runtimes` in claim order (the last should claim what nobody else does); `config`'s plugin
    /// handlers must name one of them.
    pub fn new(runtimes: Vec<Arc<dyn MemberRuntime>>, config: RuntimeConfig) -> Result<Registry, MemberError> {
        let registry = Registry { runtimes, config };
        for (name, handler) in &registry.config.handlers {
            if let Handler::Plugin(plugin) = handler {
                if registry.by_name(plugin).is_none_or(|r| !r.in_agent()) {
                    return Err(MemberError::UnknownPlugin {
                        config: registry.config.describe_path(),
                        field: format!("runtimes.{name}.plugin"),
                        plugin: plugin.clone(),
                        known: registry
                            .runtimes
                            .iter()
                            .filter(|r| r.in_agent())
                            .map(|r| r.name())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        Ok(registry)
    }

    /// podctl's runtimes on this host, in claim order: WASM, the plugins installed in the plugin
    /// directories (by name), then OCI; with the handlers of `config`, whose plugins must be
    /// among them.
    pub fn discover(config: RuntimeConfig, settings: &Settings) -> Result<Registry, MemberError> {
        let mut runtimes: Vec<Arc<dyn MemberRuntime>> = vec![Arc::new(wasm::runtime())];
        for name in settings
            .installed_plugins()
            .iter()
            .filter(|p| *p != wasm::PLUGIN && *p != oci::NAME)
        {
            runtimes.push(Arc::new(plugin::PluginRuntime::installed(name)));
        }
        runtimes.push(Arc::new(oci::OciRuntime));
        Registry::new(runtimes, config)
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    pub fn runtimes(&self) -> impl Iterator<Item = (usize, &dyn MemberRuntime)> {
        self.runtimes.iter().map(|r| r.as_ref()).enumerate()
    }

    /// The runtime of a member's `podctl.io/runtime` label. A plugin this host no longer has or
    /// config no longer names still gets one: its members live in the pod's agent, which is asked
    /// about them and stops them like any plugin's.
    pub fn for_label(&self, name: &str) -> Arc<dyn MemberRuntime> {
        match self.runtimes.iter().find(|r| r.name() == name) {
            Some(runtime) => runtime.clone(),
            None => Arc::new(plugin::PluginRuntime::installed(name)),
        }
    }

    pub fn get(&self, index: usize) -> &dyn MemberRuntime {
        self.runtimes[index].as_ref()
    }

    pub fn by_name(&self, name: &str) -> Option<&dyn MemberRuntime> {
        self.runtimes.iter().find(|r| r.name() == name).map(|r| r.as_ref())
    }

    /// The pod's members grouped by the runtime that runs them, in claim order.
    pub fn members_by_runtime<'p>(&self, pod: &'p PodView) -> RuntimeGroups<'p> {
        self.group_by_runtime(pod.members.iter().collect())
    }

    /// The order a pod's members stop in, each step grouped by runtime: the app containers
    /// together, then the sidecars one by one, the last started first (as kubelet stops them).
    pub fn stop_order<'p>(&self, pod: &'p PodView) -> Vec<RuntimeGroups<'p>> {
        let apps = pod.app_members().collect();
        let sidecars = pod.members.iter().filter(|m| m.sidecar).rev().map(|m| vec![m]);
        std::iter::once(apps)
            .chain(sidecars)
            .map(|members| self.group_by_runtime(members))
            .filter(|groups| !groups.is_empty())
            .collect()
    }

    fn group_by_runtime<'p>(&self, members: Vec<&'p MemberView>) -> RuntimeGroups<'p> {
        let mut labels: Vec<&str> = members.iter().map(|m| m.runtime.as_str()).collect();
        labels.sort_by_key(|label| (self.index_of(label).unwrap_or(usize::MAX), *label));
        labels.dedup();
        labels
            .into_iter()
            .map(|label| {
                let of_label = members.iter().copied().filter(|m| m.runtime == label).collect();
                (self.for_label(label), of_label)
            })
            .collect()
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.runtimes.iter().position(|r| r.name() == name)
    }

    fn names(&self) -> Vec<&str> {
        self.runtimes.iter().map(|r| r.name()).collect()
    }

    /// The runtime whose members are OCI containers run by a containerd shim.
    fn oci_index(&self) -> Option<usize> {
        self.runtimes.iter().position(|r| r.runs_tasks())
    }

    /// What the pod's `spec.runtimeClassName` means here, given the handler it names (its
    /// RuntimeClass object's, or the class name itself); an unknown handler fails before anything
    /// is created.
    pub fn runtime_class(&self, pod: &Pod, handler: Option<&str>) -> Result<RuntimeClass, MemberError> {
        let Some(class) = &pod.spec.runtime_class_name else {
            return Ok(RuntimeClass::default());
        };
        let handler = handler.unwrap_or(class);
        match self.config.handlers.get(handler) {
            Some(Handler::Containerd(runtime)) => Ok(RuntimeClass {
                containerd: Some(NamedRuntime {
                    handler: handler.to_string(),
                    runtime: runtime.clone(),
                }),
                runtime: None,
            }),
            Some(Handler::Plugin(plugin)) => Ok(RuntimeClass {
                containerd: None,
                runtime: self.index_of(plugin),
            }),
            None => Err(MemberError::UnknownRuntimeClass {
                class: match handler == class {
                    true => format!("{class:?}"),
                    false => format!("{class:?} (a RuntimeClass with handler {handler:?})"),
                },
                handler: handler.to_string(),
                config: self.config.describe_path(),
                known: match self.config.handlers.keys().map(String::as_str).collect::<Vec<_>>() {
                    names if names.is_empty() => "none".into(),
                    names => names.join(", "),
                },
            }),
        }
    }

    /// The runtime for a container: the annotation override (a runtime or a handler), else the
    /// pod's plugin handler, else the first runtime that accepts. OCI members run with the pod's
    /// containerd handler unless the annotation names another.
    pub async fn select(
        &self,
        settings: &Settings,
        container: &Container,
        probe: &ImageProbe,
        class: &RuntimeClass,
    ) -> Result<Selected, MemberError> {
        let pod_handler = |runtime: usize| Selected {
            runtime,
            handler: if self.runtimes[runtime].runs_tasks() {
                class.containerd.clone()
            } else {
                None
            },
        };
        if let Some(forced) = &probe.forced {
            if let Some(index) = self.index_of(forced) {
                return Ok(pod_handler(index));
            }
            return match self.config.handlers.get(forced) {
                Some(Handler::Plugin(plugin)) => Ok(pod_handler(self.index_of(plugin).expect("checked in new"))),
                Some(Handler::Containerd(runtime)) => {
                    let sandbox = class.task_runtime();
                    if runtime.name() != sandbox.name() {
                        return Err(MemberError::ShimMismatch {
                            container: container.name.clone(),
                            handler: forced.clone(),
                            runtime: runtime.name().to_string(),
                            sandbox: sandbox.name().to_string(),
                        });
                    }
                    let oci = self.oci_index().ok_or_else(|| self.unknown(container, forced))?;
                    Ok(Selected {
                        runtime: oci,
                        handler: Some(NamedRuntime {
                            handler: forced.clone(),
                            runtime: runtime.clone(),
                        }),
                    })
                }
                None => Err(self.unknown(container, forced)),
            };
        }
        // The pod's plugin handler runs every member, as a RuntimeClass does on a node; its
        // validation, not its claims, decides what it can run.
        if let Some(index) = class.runtime {
            return Ok(pod_handler(index));
        }
        let mut reasons = Vec::new();
        for index in 0..self.runtimes.len() {
            let runtime = self.get(index);
            match runtime.claim(settings, container, probe).await {
                Claim::Accept => return Ok(pod_handler(index)),
                Claim::Decline(why) => reasons.push(format!("{}: {why}", runtime.name())),
            }
        }
        Err(MemberError::NoRuntime {
            container: container.name.clone(),
            image: container.image.clone(),
            reasons: reasons.join("; "),
        })
    }

    fn unknown(&self, container: &Container, forced: &str) -> MemberError {
        let mut known: Vec<String> = self.names().into_iter().map(String::from).collect();
        known.extend(self.config.handlers.keys().cloned());
        MemberError::UnknownRuntime {
            container: container.name.clone(),
            key: format!("{RUNTIME_ANNOTATION_PREFIX}{}", container.name),
            runtime: forced.to_string(),
            known: known.join(", "),
            config: self.config.describe_path(),
        }
    }
}

/// Looks at a container's image without creating anything: a local file, or an image in containerd.
pub async fn probe(client: &Client, pod: &Pod, container: &Container) -> Result<ImageProbe, MemberError> {
    let forced = pod
        .metadata
        .annotations
        .get(&format!("{RUNTIME_ANNOTATION_PREFIX}{}", container.name))
        .cloned();
    let image = container.image.as_str();
    let (mut local_file, mut local_dir) = (None, None);
    if let Some(path) = crate::image::reference::local_path(image) {
        let path = PathBuf::from(path);
        if !path.is_file() && !path.is_dir() {
            return Err(MemberError::Io {
                cause: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "container {}: image names a local file or directory that does not exist",
                        container.name
                    ),
                ),
                path,
            });
        }
        let canonical = std::fs::canonicalize(&path).map_err(io_error(&path))?;
        match canonical.is_dir() {
            true => local_dir = Some(canonical),
            false => local_file = Some(canonical),
        }
    }
    let url_scheme = crate::image::reference::url_scheme(image);
    let layers = match (&local_file, &local_dir, &url_scheme) {
        (None, None, None) => crate::image::image_layers(client, &crate::image::reference::normalize(image)).await?,
        _ => None,
    };
    Ok(ImageProbe {
        reference: image.to_string(),
        local_file,
        local_dir,
        url_scheme,
        layers,
        forced,
    })
}

/// A probe's or hook's action as the agent runs it (ports resolved; validation made sure they resolve).
fn action_of(
    container: &Container,
    http: Option<&crate::manifest::HttpGetAction>,
    tcp: Option<&crate::manifest::TcpSocketAction>,
    exec: Option<&crate::manifest::ExecAction>,
) -> Option<ProbeAction> {
    if let Some(http) = http {
        Some(ProbeAction::Http {
            host: http.host.clone(),
            port: http.port.resolve(container).unwrap_or_default(),
            path: if http.path.is_empty() {
                "/".into()
            } else {
                http.path.clone()
            },
            https: http.scheme.as_deref() == Some("HTTPS"),
            headers: http
                .http_headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        })
    } else if let Some(tcp) = tcp {
        Some(ProbeAction::Tcp {
            host: tcp.host.clone(),
            port: tcp.port.resolve(container).unwrap_or_default(),
        })
    } else {
        exec.map(|exec| ProbeAction::Exec {
            command: exec.command.clone(),
        })
    }
}

/// The container's `lifecycle` hooks as the agent runs them.
pub(crate) fn hook_defs(container: &Container) -> Hooks {
    let def = |handler: &Option<crate::manifest::LifecycleHandler>| {
        let handler = handler.as_ref()?;
        if let Some(sleep) = &handler.sleep {
            return Some(HookDef::Sleep {
                seconds: sleep.seconds.max(0) as u64,
            });
        }
        action_of(
            container,
            handler.http_get.as_ref(),
            handler.tcp_socket.as_ref(),
            handler.exec.as_ref(),
        )
        .map(HookDef::Action)
    };
    let lifecycle = container.lifecycle.clone().unwrap_or_default();
    Hooks {
        post_start: def(&lifecycle.post_start),
        pre_stop: def(&lifecycle.pre_stop),
    }
}

/// The container's probes as the agent runs them (ports resolved; validation made sure they resolve).
pub(crate) fn probe_defs(container: &Container) -> Vec<ProbeDef> {
    let mut defs = Vec::new();
    for (kind, probe) in [
        (ProbeKind::Startup, &container.startup_probe),
        (ProbeKind::Liveness, &container.liveness_probe),
        (ProbeKind::Readiness, &container.readiness_probe),
    ] {
        let Some(probe) = probe else { continue };
        let grpc = probe.grpc.as_ref().map(|grpc| ProbeAction::Grpc {
            port: u16::try_from(grpc.port).unwrap_or_default(),
            service: grpc.service.clone().unwrap_or_default(),
        });
        let Some(action) = grpc.or_else(|| {
            action_of(
                container,
                probe.http_get.as_ref(),
                probe.tcp_socket.as_ref(),
                probe.exec.as_ref(),
            )
        }) else {
            continue;
        };
        defs.push(ProbeDef {
            kind,
            action,
            initial_delay_seconds: probe.initial_delay_seconds,
            period_seconds: probe.period_seconds,
            timeout_seconds: probe.timeout_seconds,
            failure_threshold: probe.failure_threshold,
            success_threshold: probe.success_threshold,
        });
    }
    defs
}

/// The agent's last noteworthy probe result for a member, if any.
pub(crate) fn last_probe(probes: &[crate::agent::protocol::ProbeStatus], name: &str) -> Option<String> {
    probes
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.last.clone())
        .filter(|last| !last.is_empty())
}
