//! What a runtime adds a pod's members to while `create` runs ([`PodContext`]): the pod, its
//! sandbox and namespaces, the signals that the sandbox is ready, what the pod's agent is to host,
//! and the members' labels, log files and volumes (emptyDirs, hostPaths, ConfigMap and Secret
//! files) as their host sides.

use std::collections::HashMap;
use std::path::PathBuf;

use oci_spec::runtime::Mount;

use super::runtime_handlers::RuntimeClass;
use super::{io_error, MemberError};
use crate::agent::protocol::{InitRef, PluginLaunch, PluginMemberDef};
use crate::containerd::Client;
use crate::manifest::{Container, Pod, VolumeSource};
use crate::record::{
    LABEL_CONTAINER_NAME, LABEL_KIND, LABEL_MANAGED_BY, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
    LABEL_SANDBOX_ID,
};
use crate::settings::Settings;
use crate::spec::SandboxNamespaces;

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
                // Checked to exist before create made anything (`pod::claims`).
                VolumeSource::Claim { claim_name, .. } => self.settings.claims_dir(self.client).join(claim_name),
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
                // Written by create before the members (see `pod::config_refs`); read-only, as kubelet
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
            let claim_read_only = matches!(volume.source, VolumeSource::Claim { read_only: true, .. });
            bindings.push(VolumeBinding {
                source: Some(source),
                target: mount.mount_path.clone(),
                read_only: mount.read_only || claim_read_only,
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
