//! `podctl create`: everything a pod needs, in order, with each step's undo recorded so a failure
//! at any point removes what was made. Checks that need nothing created (name, runtimes, images,
//! host ports) run first.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, MountBuilder};

use super::events::PodEvent;
use super::view::{list_sandboxes, NetworkRecord};
use super::*;
use crate::containerd::{NewContainer, ResolvedImage};
use crate::image::{builtin, reference::normalize};
use crate::manifest::{Container, Pod, Protocol, PullPolicy, VolumeSource};
use crate::member::{select_runtime, RuntimeKind};
use crate::sandbox::cni::{self, Attachment, CniNetwork, CniResult, PortMapping};
use crate::sandbox::netns;
use crate::spec;

/// Creates the pod and returns its sandbox ID. On error nothing it made is left.
pub async fn create_pod(client: &Client, settings: &Settings, pod: Pod) -> Result<String, PodError> {
    let sandboxes = list_sandboxes(client).await?;
    let name = &pod.metadata.name;
    if sandboxes.iter().any(|s| s.labels.get(LABEL_POD_NAME) == Some(name)) {
        return Err(PodError::Exists {
            name: name.clone(),
            namespace: client.namespace().to_string(),
        });
    }
    let mut runtimes = Vec::new();
    for container in &pod.spec.containers {
        runtimes.push(select_runtime(&pod, container)?);
    }
    let mut events = Vec::new();
    let pause = ensure_image(client, &settings.sandbox_image, "POD", None, &mut events).await?;
    let mut images = Vec::new();
    for container in &pod.spec.containers {
        images.push(
            ensure_image(
                client,
                &container.image,
                &container.name,
                container.image_pull_policy,
                &mut events,
            )
            .await?,
        );
    }
    check_host_ports(&pod, &sandboxes)?;
    let network = CniNetwork::load(settings.cni_conf_dir.as_deref())?;

    let uid = new_uid();
    let sandbox_id = sandbox_id(name, &uid);
    let mut undo = Undo::new(client.clone());
    let plan = CreatePlan {
        client,
        settings,
        pod: &pod,
        uid: &uid,
        sandbox_id: &sandbox_id,
        network,
        pause,
        images,
        runtimes,
    };
    let result = plan.run(&mut undo, &mut events).await;
    match result {
        Ok(()) => {
            undo.forget().await;
            Ok(sandbox_id)
        }
        Err(error) => {
            undo.rollback().await;
            Err(error)
        }
    }
}

/// Looks the image up, importing podctl's built-in images on first use.
async fn ensure_image(
    client: &Client,
    image: &str,
    container: &str,
    policy: Option<PullPolicy>,
    events: &mut Vec<PodEvent>,
) -> Result<ResolvedImage, PodError> {
    let name = normalize(image);
    if client.get_image(&name).await?.is_some() {
        events.push(PodEvent::normal(
            "Pulled",
            container,
            format!("Container image \"{name}\" already present on machine"),
        ));
        return Ok(client.resolve_image(&name).await?);
    }
    match builtin::find(&name) {
        Some(builtin) if policy != Some(PullPolicy::Never) => {
            let mut archive = Vec::new();
            builtin.write_archive(&mut archive).map_err(|e| PodError::Damaged {
                pod: container.to_string(),
                message: format!("built-in image {name} cannot be written: {e}"),
            })?;
            for image in crate::image::archive::read_archive(&archive[..], None)? {
                client.import_image(&image).await?;
            }
            events.push(PodEvent::normal(
                "Pulled",
                container,
                format!("Imported built-in image \"{name}\""),
            ));
            Ok(client.resolve_image(&name).await?)
        }
        _ => Err(PodError::ImageMissing {
            image: name,
            container: container.to_string(),
            namespace: client.namespace().to_string(),
        }),
    }
}

/// portmap does not bind host ports, so a port held by a process or by another pod would be
/// silently shadowed: refuse both before anything is made.
fn check_host_ports(pod: &Pod, sandboxes: &[crate::containerd::ContainerRecord]) -> Result<(), PodError> {
    let taken: Vec<PortMapping> = sandboxes
        .iter()
        .filter_map(NetworkRecord::of)
        .flat_map(|n| n.port_mappings)
        .collect();
    for (ci, container) in pod.spec.containers.iter().enumerate() {
        for (pi, port) in container.ports.iter().enumerate() {
            let Some(host_port) = port.host_port else { continue };
            let field = format!("spec.containers[{ci}].ports[{pi}].hostPort");
            let protocol = port.protocol.as_str().to_lowercase();
            let ip_text = port.host_ip.clone().unwrap_or_default();
            let taken_by_pod = taken.iter().any(|t| {
                t.host_port == host_port
                    && t.protocol == protocol
                    && (t.host_ip.is_empty() || ip_text.is_empty() || t.host_ip == ip_text)
            });
            let refuse = |cause: String| PodError::PortTaken {
                field: field.clone(),
                port: host_port,
                protocol: protocol.clone(),
                ip: if ip_text.is_empty() {
                    "0.0.0.0".into()
                } else {
                    ip_text.clone()
                },
                cause,
            };
            if taken_by_pod {
                return Err(refuse("another podctl pod maps it".into()));
            }
            let ip: IpAddr = ip_text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let bound = match port.protocol {
                Protocol::Udp => UdpSocket::bind((ip, host_port)).map(drop),
                _ => TcpListener::bind((ip, host_port)).map(drop),
            };
            bound.map_err(|e| refuse(format!("a host process holds it: {e}")))?;
        }
    }
    Ok(())
}

struct CreatePlan<'a> {
    client: &'a Client,
    settings: &'a Settings,
    pod: &'a Pod,
    uid: &'a str,
    sandbox_id: &'a str,
    network: CniNetwork,
    pause: ResolvedImage,
    images: Vec<ResolvedImage>,
    runtimes: Vec<RuntimeKind>,
}

impl CreatePlan<'_> {
    fn hostname(&self) -> String {
        self.pod
            .spec
            .hostname
            .clone()
            .unwrap_or_else(|| self.pod.metadata.name.clone())
    }

    fn base_labels(&self, container_name: &str, kind: &str) -> HashMap<String, String> {
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

    fn log_dir(&self) -> PathBuf {
        let m = &self.pod.metadata;
        self.settings
            .log_dir
            .join(format!("{}_{}_{}", m.namespace, m.name, self.uid))
    }

    async fn run(&self, undo: &mut Undo, events: &mut Vec<PodEvent>) -> Result<(), PodError> {
        let client = self.client;
        let lease = client.create_lease("create").await?;
        undo.lease = Some(lease.clone());

        // The network namespace first, pinned, so CNI teardown never depends on a live task.
        let netns = netns::create_netns(&netns_name(self.sandbox_id))?;
        undo.push(Step::RemoveNetns(netns.path.clone()));
        let port_mappings = self.port_mappings();
        let attachment = Attachment {
            container_id: self.sandbox_id,
            netns: &netns.path,
            ifname: "eth0",
            bin_dirs: &self.settings.cni_bin_dirs,
            port_mappings: &port_mappings,
        };
        cni::setup_loopback(&attachment).await?;
        let result = cni::add(&self.network, &attachment).await?;
        undo.push(Step::CniDel {
            record: NetworkRecord {
                netns: netns.path.clone(),
                network: self.network.raw.clone(),
                bin_dirs: self.settings.cni_bin_dirs.clone(),
                result: Some(result.clone()),
                port_mappings: port_mappings.clone(),
            },
            sandbox_id: self.sandbox_id.to_string(),
        });

        let state_dir = self.settings.pod_state_dir(client, self.sandbox_id);
        std::fs::create_dir_all(&state_dir).map_err(io_error(&state_dir))?;
        undo.push(Step::RemoveDir(state_dir.clone()));
        let etc_mounts = self.write_etc_files(&state_dir, &result)?;
        let log_dir = self.log_dir();
        std::fs::create_dir_all(&log_dir).map_err(io_error(&log_dir))?;
        undo.push(Step::RemoveDir(log_dir.clone()));

        let pause_pid = self
            .create_sandbox(&lease, undo, &netns.path, &result, port_mappings, &state_dir)
            .await?;
        events.push(PodEvent::normal(
            "SandboxReady",
            "",
            format!(
                "Started pod sandbox {} (pid {pause_pid}) with IP {}",
                self.sandbox_id,
                result.primary_ip().unwrap_or_default()
            ),
        ));

        let namespaces = spec::SandboxNamespaces {
            netns: netns.path.clone(),
            pause_pid,
            share_pid: self.pod.spec.share_process_namespace,
        };
        for (index, container) in self.pod.spec.containers.iter().enumerate() {
            match self.runtimes[index] {
                RuntimeKind::Oci => {
                    self.create_oci_member(
                        &lease,
                        undo,
                        index,
                        container,
                        &namespaces,
                        &etc_mounts,
                        &state_dir,
                        &log_dir,
                        events,
                    )
                    .await?
                }
            }
        }
        let json = serde_json::to_vec(&*events).expect("events serialize");
        client.set_extension(self.sandbox_id, EXT_EVENTS, json).await?;
        Ok(())
    }

    fn port_mappings(&self) -> Vec<PortMapping> {
        self.pod
            .spec
            .containers
            .iter()
            .flat_map(|c| &c.ports)
            .filter_map(|p| {
                Some(PortMapping {
                    host_port: p.host_port?,
                    container_port: p.container_port,
                    protocol: p.protocol.as_str().to_lowercase(),
                    host_ip: p.host_ip.clone().unwrap_or_default(),
                })
            })
            .collect()
    }

    /// /etc/hosts, /etc/hostname and /etc/resolv.conf shared by the pod's members, as kubelet does.
    fn write_etc_files(&self, state_dir: &Path, result: &CniResult) -> Result<Vec<Mount>, PodError> {
        let hostname = self.hostname();
        let ip = result.primary_ip().unwrap_or_default();
        let hosts = format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{hostname}\n");
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut mounts = Vec::new();
        for (file, content) in [
            ("hosts", hosts),
            ("hostname", format!("{hostname}\n")),
            ("resolv.conf", resolv),
        ] {
            let path = state_dir.join(file);
            std::fs::write(&path, content).map_err(io_error(&path))?;
            mounts.push(spec::bind_mount(&path, &format!("/etc/{file}"), false)?);
        }
        Ok(mounts)
    }

    async fn create_sandbox(
        &self,
        lease: &str,
        undo: &mut Undo,
        netns: &Path,
        result: &CniResult,
        port_mappings: Vec<PortMapping>,
        state_dir: &Path,
    ) -> Result<u32, PodError> {
        let client = self.client;
        let id = self.sandbox_id;
        let config = self.pause.config.config().clone().unwrap_or_default();
        let args = [
            config.entrypoint().clone().unwrap_or_default(),
            config.cmd().clone().unwrap_or_default(),
        ]
        .concat();
        let spec = spec::sandbox_spec(spec::SandboxSpecInput {
            sandbox_id: id,
            hostname: &self.hostname(),
            netns,
            args,
            etc_mounts: vec![],
        })?;
        let mut labels = self.pod.metadata.labels.clone().into_iter().collect::<HashMap<_, _>>();
        labels.extend(self.base_labels("POD", "sandbox"));
        let network = NetworkRecord {
            netns: netns.to_path_buf(),
            network: self.network.raw.clone(),
            bin_dirs: self.settings.cni_bin_dirs.clone(),
            result: Some(result.clone()),
            port_mappings,
        };
        let extensions = HashMap::from([
            (
                EXT_POD.to_string(),
                serde_json::to_vec(self.pod).expect("pods serialize"),
            ),
            (
                EXT_NETWORK.to_string(),
                serde_json::to_vec(&network).expect("records serialize"),
            ),
        ]);
        let rootfs = client.prepare_snapshot(lease, id, &self.pause.top_chain_id).await?;
        undo.push(Step::RemoveSnapshot(id.to_string()));
        client
            .create_container(
                lease,
                NewContainer {
                    id: id.to_string(),
                    image: self.pause.name.clone(),
                    labels,
                    spec_json: spec::to_json(&spec)?,
                    snapshot_key: id.to_string(),
                    extensions,
                },
            )
            .await?;
        undo.push(Step::DeleteContainer(id.to_string()));
        let log = state_dir.join("sandbox.log");
        client.create_task(id, rootfs, &log.to_string_lossy()).await?;
        undo.push(Step::DeleteTask(id.to_string()));
        Ok(client.start_task(id).await?)
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_oci_member(
        &self,
        lease: &str,
        undo: &mut Undo,
        index: usize,
        container: &Container,
        namespaces: &spec::SandboxNamespaces,
        etc_mounts: &[Mount],
        state_dir: &Path,
        log_dir: &Path,
        events: &mut Vec<PodEvent>,
    ) -> Result<(), PodError> {
        let client = self.client;
        let image = &self.images[index];
        let id = member_id(self.sandbox_id, &container.name, index);
        let plan = spec::plan_process(container, &image.config, &self.hostname())?;
        let mut mounts = etc_mounts.to_vec();
        mounts.extend(self.volume_mounts(container, state_dir)?);
        let spec = spec::member_spec(spec::MemberSpecInput {
            id: &id,
            sandbox_id: self.sandbox_id,
            container,
            plan,
            namespaces,
            mounts,
        })?;
        let container_log_dir = log_dir.join(&container.name);
        std::fs::create_dir_all(&container_log_dir).map_err(io_error(&container_log_dir))?;
        let log_path = container_log_dir.join("0.log");
        let stop_signal = image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.stop_signal().clone())
            .unwrap_or_else(|| "SIGTERM".into());
        let mut labels = self.base_labels(&container.name, "container");
        labels.insert(LABEL_MEMBER_INDEX.into(), index.to_string());
        labels.insert(LABEL_RUNTIME.into(), RuntimeKind::Oci.name().into());
        labels.insert(LABEL_STOP_SIGNAL.into(), stop_signal);
        labels.insert(LABEL_LOG_PATH.into(), log_path.to_string_lossy().into_owned());

        let rootfs = client.prepare_snapshot(lease, &id, &image.top_chain_id).await?;
        undo.push(Step::RemoveSnapshot(id.clone()));
        client
            .create_container(
                lease,
                NewContainer {
                    id: id.clone(),
                    image: image.name.clone(),
                    labels,
                    spec_json: spec::to_json(&spec)?,
                    snapshot_key: id.clone(),
                    extensions: HashMap::new(),
                },
            )
            .await?;
        undo.push(Step::DeleteContainer(id.clone()));
        events.push(PodEvent::normal(
            "Created",
            &container.name,
            format!("Created container {}", container.name),
        ));
        client.create_task(&id, rootfs, &log_path.to_string_lossy()).await?;
        undo.push(Step::DeleteTask(id.clone()));
        client.start_task(&id).await?;
        events.push(PodEvent::normal(
            "Started",
            &container.name,
            format!("Started container {}", container.name),
        ));
        Ok(())
    }

    fn volume_mounts(&self, container: &Container, state_dir: &Path) -> Result<Vec<Mount>, PodError> {
        let mut mounts = Vec::new();
        for mount in &container.volume_mounts {
            let Some(volume) = self.pod.spec.volumes.iter().find(|v| v.name == mount.name) else {
                continue; // the manifest validation guarantees it exists
            };
            let mut source = match &volume.source {
                VolumeSource::HostPath { path, type_ } => {
                    let path = PathBuf::from(path);
                    match type_.as_deref() {
                        Some("DirectoryOrCreate") => std::fs::create_dir_all(&path).map_err(io_error(&path))?,
                        Some("FileOrCreate") if !path.exists() => {
                            std::fs::write(&path, b"").map_err(io_error(&path))?
                        }
                        _ if !path.exists() => {
                            return Err(PodError::Io {
                                path,
                                cause: std::io::Error::new(
                                    std::io::ErrorKind::NotFound,
                                    format!(
                                        "hostPath volume {} does not exist; create it or set type: DirectoryOrCreate",
                                        volume.name
                                    ),
                                ),
                            })
                        }
                        _ => {}
                    }
                    path
                }
                VolumeSource::EmptyDir { medium, .. } => {
                    let dir = state_dir.join("volumes").join(&volume.name);
                    std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
                    if medium.as_deref() == Some("Memory") {
                        mounts.push(
                            MountBuilder::default()
                                .destination(&mount.mount_path)
                                .typ("tmpfs")
                                .source("tmpfs")
                                .options(vec!["nosuid".into(), "nodev".into(), "mode=1777".into()])
                                .build()
                                .map_err(spec::SpecError::from)?,
                        );
                        continue;
                    }
                    dir
                }
            };
            if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                source = source.join(sub);
                std::fs::create_dir_all(&source).map_err(io_error(&source))?;
            }
            mounts.push(spec::bind_mount(&source, &mount.mount_path, mount.read_only)?);
        }
        Ok(mounts)
    }
}

/// One made thing and how to unmake it.
enum Step {
    RemoveNetns(PathBuf),
    CniDel { record: NetworkRecord, sandbox_id: String },
    RemoveDir(PathBuf),
    RemoveSnapshot(String),
    DeleteContainer(String),
    DeleteTask(String),
}

/// The rollback journal of a create.
struct Undo {
    client: Client,
    steps: Vec<Step>,
    lease: Option<String>,
}

impl Undo {
    fn new(client: Client) -> Undo {
        Undo {
            client,
            steps: Vec::new(),
            lease: None,
        }
    }

    fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// Success: the records now own everything; only the lease goes.
    async fn forget(mut self) {
        if let Some(lease) = self.lease.take() {
            self.client.delete_lease(&lease).await.ok();
        }
    }

    /// Failure: unmake in reverse order. Errors here are reported but do not stop the rollback.
    async fn rollback(mut self) {
        while let Some(step) = self.steps.pop() {
            let outcome = match &step {
                Step::DeleteTask(id) => {
                    self.client.kill_task(id, 9, true).await.ok();
                    let wait = self.client.wait_task(id);
                    tokio::time::timeout(std::time::Duration::from_secs(10), wait)
                        .await
                        .ok();
                    self.client.delete_task(id).await.map(drop).map_err(PodError::from)
                }
                Step::DeleteContainer(id) => self.client.delete_container(id).await.map_err(PodError::from),
                Step::RemoveSnapshot(key) => self.client.remove_snapshot(key).await.map_err(PodError::from),
                Step::RemoveDir(path) => match std::fs::remove_dir_all(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(path)(e)),
                    _ => Ok(()),
                },
                Step::CniDel { record, sandbox_id } => record.teardown(sandbox_id).await,
                Step::RemoveNetns(path) => netns::remove_netns(path).map_err(PodError::from),
            };
            if let Err(e) = outcome {
                eprintln!("warning: rollback step failed: {e}");
            }
        }
        if let Some(lease) = self.lease.take() {
            self.client.delete_lease(&lease).await.ok();
        }
    }
}
