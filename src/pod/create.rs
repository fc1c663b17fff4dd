//! `podctl create`: everything a pod needs, in order, with each step's undo recorded so a failure
//! at any point removes what was made. Checks that need nothing created (name, runtimes, images,
//! host ports) run first.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use oci_spec::runtime::Mount;

use super::intent::{self, Intent, IntentFile, Op};
use super::view::list_sandboxes;
use super::*;
use crate::agent::client as agent;
use crate::agent::protocol::{AgentConfig, OciMemberRef, PluginState, SupervisorConfig};
use crate::containerd::{NewContainer, OCI_SPEC_TYPE_URL};
use crate::image::{reference::normalize, Obtained, ResolvedImage};
use crate::manifest::{Pod, Protocol, PullPolicy};
use crate::member::undo::{Step, Undo};
use crate::member::{self, Payload, PodContext, PreparedMember, Registry, RuntimeClass, Selected};
use crate::record::{NetworkRecord, PodEvent};
use crate::sandbox::cni::{self, Attachment, CniNetwork, CniResult, PortMapping};
use crate::sandbox::{leftovers, netns};
use crate::spec;

/// Creates the pod and returns its sandbox ID. On error nothing it made is left.
pub async fn create_pod(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pod: Pod,
) -> Result<String, PodError> {
    let began = crate::record::now_secs();
    let name = &pod.metadata.name;
    // What an interrupted create or delete of this name left is named, not just "exists".
    intent::check_free(settings, client, name)?;
    super::delete::finish_others_interrupted(client, settings, registry, name).await;
    let sandboxes = list_sandboxes(client).await?;
    if sandboxes.iter().any(|s| s.labels.get(LABEL_POD_NAME) == Some(name)) {
        return Err(PodError::Exists {
            name: name.clone(),
            namespace: client.namespace().to_string(),
        });
    }
    let handler = match &pod.spec.runtime_class_name {
        Some(class) => Some(super::runtime_class::handler_of(client, class).await?),
        None => None,
    };
    let runtime_class = registry.runtime_class(&pod, handler.as_deref())?;
    let mut events = Vec::new();
    let uid = new_uid();
    // Every ConfigMap and Secret it names, before anything is made: a missing one fails here.
    let facts = super::config_refs::pod_facts(&uid);
    let config = super::config_refs::resolve(client, &pod, &facts).await?;
    for warning in &config.warnings {
        eprintln!("warning: pod {name}: {warning}");
        events.push(PodEvent::warning(
            "InvalidEnvironmentVariableNames",
            "",
            warning.clone(),
        ));
    }
    // Images first (pulled per imagePullPolicy): a runtime is chosen by what the image holds.
    obtain_images(client, settings, &pod, &mut events).await?;
    let pause = resolve_present(client, &settings.sandbox_image).await?;
    let mut prepared = Vec::new();
    for container in &pod.spec.containers {
        let probe = member::probe(client, &pod, container).await?;
        let selected = registry.select(settings, container, &probe, &runtime_class).await?;
        let payload = registry
            .get(selected.runtime)
            .prepare(client, settings, container, &probe, &mut events)
            .await?;
        prepared.push((selected, payload));
    }
    // Init containers run as OCI containers, in order, before the members start.
    let mut init_images = Vec::new();
    for container in &pod.spec.init_containers {
        let probe = member::probe(client, &pod, container).await?;
        let selected = registry.select(settings, container, &probe, &runtime_class).await?;
        if !registry.get(selected.runtime).runs_tasks() {
            return Err(PodError::Container {
                container: container.name.clone(),
                message: "init containers run as OCI containers; give it an OCI image".into(),
            });
        }
        init_images.push(resolve_present(client, &container.image).await?);
    }
    let network = CniNetwork::load(settings.cni_conf_dir.as_deref())?;

    let sandbox_id = sandbox_id(name, &uid);
    let mut undo = Undo::new(client.clone());
    let intent = Intent::new(
        Op::Create,
        name,
        &pod.metadata.namespace,
        &uid,
        &sandbox_id,
        Some(format!("podctl-create-{sandbox_id}")),
        NetworkRecord {
            netns: match pod.spec.host_network {
                true => std::path::PathBuf::new(),
                false => Path::new(netns::NETNS_RUN_DIR).join(netns_name(&sandbox_id)),
            },
            network: network.raw.clone(),
            bin_dirs: settings.cni_bin_dirs.clone(),
            result: None,
            port_mappings: port_mappings(&pod),
            host_network: pod.spec.host_network,
        },
        settings.pod_state_dir(client, &sandbox_id),
        settings.pod_log_dir(&pod, &uid),
    );
    let claimed = claim_name_and_ports(client, settings, registry, &pod, &intent).await?;
    let plan = CreatePlan {
        client,
        settings,
        pod: &pod,
        config: &config,
        uid: &uid,
        sandbox_id: &sandbox_id,
        network,
        pause,
        init_images,
        registry,
        runtime_class,
        facts,
        began,
    };
    let result = plan
        .run(
            &mut undo,
            intent.lease.as_deref().unwrap_or_default(),
            prepared,
            &mut events,
        )
        .await;
    match result {
        Ok(()) => {
            undo.forget().await;
            claimed.done();
            Ok(sandbox_id)
        }
        Err(error) => {
            undo.rollback().await;
            claimed.done();
            Err(error)
        }
    }
}

/// Under the host-wide port lock: the name is still free, no other pod (made or being made) maps
/// the pod's host ports, and the intent is on disk. The leftovers of interrupted operations that
/// map one of those ports are removed first (their stale DNAT rules would shadow ours).
async fn claim_name_and_ports(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pod: &Pod,
    intent: &Intent,
) -> Result<IntentFile, PodError> {
    let wanted = port_mappings(pod);
    let _lock = intent::lock_ports()?;
    let clashes = |other: &Intent| {
        other.pod != pod.metadata.name
            && other
                .network
                .port_mappings
                .iter()
                .any(|theirs| wanted.iter().any(|ours| ports_clash(ours, theirs)))
    };
    for stale in intent::read_all(settings, client)
        .into_iter()
        .filter(|i| !i.owner.alive() && clashes(i))
    {
        eprintln!(
            "pod {}: {}; removing what it left, since it maps a host port of pod {}",
            stale.pod,
            stale.interruption(),
            pod.metadata.name
        );
        super::delete::finish_interrupted(client, settings, registry, &stale.pod).await?;
    }
    let sandboxes = list_sandboxes(client).await?;
    if sandboxes
        .iter()
        .any(|s| s.labels.get(LABEL_POD_NAME) == Some(&pod.metadata.name))
    {
        return Err(PodError::Exists {
            name: pod.metadata.name.clone(),
            namespace: client.namespace().to_string(),
        });
    }
    let mut taken: Vec<(String, PortMapping)> = sandboxes
        .iter()
        .filter_map(|s| Some((s.labels.get(LABEL_POD_NAME)?.clone(), NetworkRecord::of(s)?)))
        .flat_map(|(name, n)| n.port_mappings.into_iter().map(move |m| (name.clone(), m)))
        .collect();
    for other in intent::read_all(settings, client)
        .into_iter()
        .filter(|i| i.pod != pod.metadata.name)
    {
        taken.extend(other.network.port_mappings.into_iter().map(|m| (other.pod.clone(), m)));
    }
    check_host_ports(pod, &taken)?;
    intent::claim(settings, client, intent)
}

fn ports_clash(a: &PortMapping, b: &PortMapping) -> bool {
    a.host_port == b.host_port
        && a.protocol == b.protocol
        && (a.host_ip.is_empty() || b.host_ip.is_empty() || a.host_ip == b.host_ip)
}

/// The containers that run while the pod is up, with their field paths: sidecars, then the app
/// containers. Their ports are the pod's.
fn long_running_with_paths(pod: &Pod) -> impl Iterator<Item = (String, &crate::manifest::Container)> {
    let sidecars = pod
        .spec
        .init_containers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_sidecar())
        .map(|(i, c)| (format!("spec.initContainers[{i}]"), c));
    let apps = pod
        .spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.containers[{i}]"), c));
    sidecars.chain(apps)
}

/// The pod's hostPort mappings, as CNI's portmap takes them. Under `hostNetwork` every
/// containerPort is a port of the host (recorded so other pods see it taken; nothing maps it).
fn port_mappings(pod: &Pod) -> Vec<PortMapping> {
    let host_network = pod.spec.host_network;
    pod.long_running()
        .flat_map(|c| &c.ports)
        .filter_map(|p| {
            Some(PortMapping {
                host_port: if host_network { p.container_port } else { p.host_port? },
                container_port: p.container_port,
                protocol: p.protocol.as_str().to_lowercase(),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// Pulls or imports what the pod's sandbox, init containers and members need, once per image, and
/// records kubelet's events for it. Nothing of the pod exists yet, so a failed pull leaves nothing.
async fn obtain_images(
    client: &Client,
    settings: &Settings,
    pod: &Pod,
    events: &mut Vec<PodEvent>,
) -> Result<(), PodError> {
    let mut wanted: Vec<(String, &str, Option<PullPolicy>)> = vec![(
        normalize(&settings.sandbox_image),
        "POD",
        Some(PullPolicy::IfNotPresent),
    )];
    for container in pod.spec.init_containers.iter().chain(&pod.spec.containers) {
        // A local file or directory, or a URL a plugin fetches itself: nothing to pull.
        if crate::image::reference::local_path(&container.image).is_some()
            || crate::image::reference::url_scheme(&container.image).is_some()
        {
            continue;
        }
        let name = normalize(&container.image);
        match wanted.iter_mut().find(|(n, _, _)| *n == name) {
            // The same image twice: the stricter policy (Always) wins, and it is pulled once.
            Some(entry) => {
                if container.image_pull_policy == Some(PullPolicy::Always) {
                    entry.2 = Some(PullPolicy::Always);
                }
            }
            None => wanted.push((name, &container.name, container.image_pull_policy)),
        }
    }
    let pull_secrets = super::config_refs::pull_secrets(client, pod, events).await?;
    for (name, container, policy) in wanted {
        let policy = crate::image::effective_policy(&name, policy);
        if policy != PullPolicy::Never && crate::image::builtin::find(&name).is_none() {
            events.push(PodEvent::normal(
                "Pulling",
                container,
                format!("Pulling image \"{name}\""),
            ));
        }
        let obtained = crate::image::ensure_image(client, &name, policy, &settings.pull, &pull_secrets)
            .await
            .map_err(|error| PodError::Image {
                container: container.to_string(),
                error: Box::new(error),
            })?;
        events.push(match obtained {
            Obtained::Present => PodEvent::normal(
                "Pulled",
                container,
                format!("Container image \"{name}\" already present on machine"),
            ),
            Obtained::Builtin => PodEvent::normal("Pulled", container, format!("Imported built-in image \"{name}\"")),
            Obtained::Pulled { fetched, elapsed } => PodEvent::normal(
                "Pulled",
                container,
                format!(
                    "Successfully pulled image \"{name}\" in {:.3}s. Bytes fetched: {fetched}",
                    elapsed.as_secs_f64()
                ),
            ),
            Obtained::PresentAfterFailedPull { cause } => {
                eprintln!("warning: {cause}; using the image already present");
                PodEvent::warning(
                    "Failed",
                    container,
                    format!("Failed to pull image \"{name}\": {cause}; using the image already present"),
                )
            }
        });
    }
    Ok(())
}

/// An image `obtain_images` made sure of, resolved to its config and top snapshot.
pub(crate) async fn resolve_present(client: &Client, image: &str) -> Result<ResolvedImage, PodError> {
    Ok(crate::image::resolve_image(client, &normalize(image)).await?)
}

/// portmap does not bind host ports, so a port held by a process or by another pod (`taken`, by
/// pod name) would be silently shadowed: refuse both before anything is made.
fn check_host_ports(pod: &Pod, taken: &[(String, PortMapping)]) -> Result<(), PodError> {
    for (path, container) in long_running_with_paths(pod) {
        for (pi, port) in container.ports.iter().enumerate() {
            // Under hostNetwork the container's own port is the host's.
            let (host_port, field) = match (pod.spec.host_network, port.host_port) {
                (true, _) => (port.container_port, format!("{path}.ports[{pi}].containerPort")),
                (false, Some(host_port)) => (host_port, format!("{path}.ports[{pi}].hostPort")),
                (false, None) => continue,
            };
            let protocol = port.protocol.as_str().to_lowercase();
            let ip_text = port.host_ip.clone().unwrap_or_default();
            let ours = PortMapping {
                host_port,
                container_port: port.container_port,
                protocol: protocol.clone(),
                host_ip: ip_text.clone(),
            };
            let taken_by = taken.iter().find(|(_, theirs)| ports_clash(&ours, theirs));
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
            if let Some((other, _)) = taken_by {
                return Err(refuse(format!("podctl pod {other} maps it")));
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
    /// As written: what podctl records.
    pod: &'a Pod,
    /// What its ConfigMaps and Secrets give it: how the members run.
    config: &'a super::config_refs::Resolved,
    uid: &'a str,
    sandbox_id: &'a str,
    network: CniNetwork,
    pause: ResolvedImage,
    init_images: Vec<ResolvedImage>,
    registry: &'a Registry,
    runtime_class: RuntimeClass,
    facts: crate::manifest::downward::PodFacts,
    /// When create began (Unix seconds): activeDeadlineSeconds counts from here.
    began: f64,
}

impl CreatePlan<'_> {
    fn hostname(&self) -> String {
        super::etc::hostname(self.pod)
    }

    async fn run(
        &self,
        undo: &mut Undo,
        lease: &str,
        prepared: Vec<(Selected, Payload)>,
        events: &mut Vec<PodEvent>,
    ) -> Result<(), PodError> {
        let client = self.client;
        // Named by the intent, so an interrupted create's lease is found and removed.
        client.ensure_lease(lease, 24 * 3600).await?;
        let lease = lease.to_string();
        undo.lease = Some(lease.clone());

        // The network namespace first, pinned, so CNI teardown never depends on a live task
        // (`hostNetwork`: none, the pod lives in the host's).
        let host_network = self.pod.spec.host_network;
        let netns_path = if host_network {
            std::path::PathBuf::new()
        } else {
            let netns = netns::create_netns(&netns_name(self.sandbox_id))?;
            undo.push(Step::RemoveNetns(netns.path.clone()));
            netns.path
        };
        let state_dir = self.settings.pod_state_dir(client, self.sandbox_id);
        std::fs::create_dir_all(&state_dir).map_err(io_error(&state_dir))?;
        // Root only: the agent's control socket lives here.
        std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700)).map_err(io_error(&state_dir))?;
        undo.push(Step::RemoveDir(state_dir.clone()));
        super::config_refs::write_volumes(&state_dir, &self.config.volumes)?;
        let log_dir = self.settings.pod_log_dir(self.pod, self.uid);
        std::fs::create_dir_all(&log_dir).map_err(io_error(&log_dir))?;
        undo.push(Step::RemoveDir(log_dir.clone()));

        // The pause task needs only the netns path, and a member's task can be created (not
        // started) before the network exists: CNI (~30 iptables processes) runs meanwhile, and
        // members start once it is done, as kubelet starts them in a ready sandbox.
        let etc_mounts = self.write_etc_files(&state_dir, None)?;
        let port_mappings = port_mappings(self.pod);
        let attachment = Attachment {
            container_id: self.sandbox_id,
            netns: &netns_path,
            ifname: "eth0",
            bin_dirs: &self.settings.cni_bin_dirs,
            port_mappings: &port_mappings,
            requested_ip: None,
        };
        let (ready_tx, ready_rx) = tokio::sync::watch::channel(None);
        let (ips_tx, ips_rx) = tokio::sync::watch::channel(None);
        let (sandbox_tx, sandbox_rx) = tokio::sync::watch::channel(None);
        let network = async {
            let added = async {
                if host_network {
                    return Ok(CniResult::host(&crate::record::host_ip()));
                }
                cni::setup_loopback(&attachment).await?;
                let result = cni::add(&self.network, &attachment).await?;
                Ok::<_, PodError>(result)
            }
            .await;
            let added = match added {
                Ok(result) => self.write_etc_files(&state_dir, Some(&result)).map(|_| result),
                Err(e) => Err(e),
            };
            // A member that reads the pod's IP (downward API) is created once it is known.
            let _ = ips_tx.send(Some(added.as_ref().map(CniResult::all_ips).unwrap_or_default()));
            let _ = ready_tx.send(Some(added.is_ok()));
            added
        };
        let members = async {
            let pause_pid = self.create_sandbox(&lease, undo, &netns_path, &state_dir).await?;
            let ctx = PodContext {
                client,
                settings: self.settings,
                pod: &self.config.pod,
                uid: self.uid,
                sandbox_id: self.sandbox_id,
                hostname: self.hostname(),
                lease: lease.clone(),
                namespaces: spec::SandboxNamespaces {
                    netns: netns_path.clone(),
                    pause_pid,
                    share_pid: self.pod.spec.share_process_namespace,
                    host_pid: self.pod.spec.host_pid,
                    host_ipc: self.pod.spec.host_ipc,
                    host_network: self.pod.spec.host_network,
                },
                etc_mounts,
                state_dir: state_dir.clone(),
                log_dir,
                hosted: Default::default(),
                network_ready: ready_rx,
                sandbox_started: sandbox_rx,
                pod_ips: ips_rx,
                facts: self.facts.clone(),
                init_handover: Default::default(),
                runtime_class: self.runtime_class.clone(),
            };
            // Each runtime starts its members of the pod, in the manifest's order within a runtime.
            let mut by_runtime: Vec<Vec<PreparedMember>> = Vec::new();
            let mut oci_members: Vec<OciMemberRef> = self
                .config
                .pod
                .spec
                .init_containers
                .iter()
                .zip(&self.init_images)
                .enumerate()
                .filter(|(_, (c, _))| c.is_sidecar())
                .map(|(index, (container, image))| OciMemberRef {
                    sidecar: true,
                    stop_signal: Some(crate::member::oci::image_stop_signal(image)),
                    ..oci_member_ref(&ctx, crate::member::oci::sidecar_id(&ctx, container, index), container)
                })
                .collect();
            for (index, (selected, payload)) in prepared.into_iter().enumerate() {
                let container = &self.config.pod.spec.containers[index];
                let runtime = selected.runtime;
                if self.registry.get(runtime).runs_tasks() {
                    let id = member_id(self.sandbox_id, &container.name, index);
                    oci_members.push(oci_member_ref(&ctx, id, container));
                }
                if by_runtime.len() <= runtime {
                    by_runtime.resize_with(runtime + 1, Vec::new);
                }
                by_runtime[runtime].push(PreparedMember {
                    index,
                    container,
                    payload,
                    handler: selected.handler,
                });
            }
            // The pause process starts while the members are created; they start after it.
            let start_pause = async {
                let started = client.start_task(self.sandbox_id).await;
                let _ = sandbox_tx.send(Some(started.is_ok()));
                started.map(drop).map_err(PodError::from)
            };
            let start_members = async {
                for (index, (container, image)) in self
                    .config
                    .pod
                    .spec
                    .init_containers
                    .iter()
                    .zip(&self.init_images)
                    .enumerate()
                {
                    if container.is_sidecar() {
                        crate::member::oci::start_sidecar(&ctx, index, container, image, undo, events).await?;
                    } else {
                        crate::member::oci::run_init(&ctx, index, container, image, undo, events).await?;
                    }
                }
                if !self.config.pod.spec.init_containers.is_empty() && !ctx.start_deferred() {
                    let _ = client
                        .set_labels(self.sandbox_id, &[(crate::record::LABEL_INIT_STATUS, String::new())])
                        .await;
                }
                for (runtime, members) in by_runtime.into_iter().enumerate().rev() {
                    if !members.is_empty() {
                        self.registry.get(runtime).start(&ctx, members, undo, events).await?;
                    }
                }
                Ok::<_, PodError>(())
            };
            let (pause, started) = tokio::join!(start_pause, start_members);
            pause?;
            started?;
            Ok::<_, PodError>((ctx, oci_members, pause_pid))
        };
        let (network, members) = tokio::join!(network, members);
        let record = network.as_ref().ok().map(|result| NetworkRecord {
            netns: netns_path.clone(),
            network: self.network.raw.clone(),
            bin_dirs: self.settings.cni_bin_dirs.clone(),
            result: Some(result.clone()),
            port_mappings: port_mappings.clone(),
            host_network,
        });
        if let Some(record) = record.as_ref().filter(|r| !r.host_network) {
            undo.push(Step::CniDel {
                record: record.clone(),
                sandbox_id: self.sandbox_id.to_string(),
            });
        }
        let (result, (ctx, oci_members, pause_pid)) = (network?, members?);
        // portmap appends its rules: one that another network left for the same port would win.
        let shadowed = match host_network {
            true => None,
            false => leftovers::shadowed_host_port(&port_mappings, self.sandbox_id).await?,
        };
        if let Some((network, owner)) = shadowed {
            return Err(PodError::HostPortShadowed {
                port: network.0,
                network: network.1,
                owner,
            });
        }
        let network_json =
            serde_json::to_vec(&record.expect("the network is up once `network?` passed")).expect("records serialize");
        events.insert(
            0,
            PodEvent::normal(
                "SandboxReady",
                "",
                format!(
                    "Started pod sandbox {} (pid {pause_pid}) with IP {}",
                    self.sandbox_id,
                    result.primary_ip().unwrap_or_default()
                ),
            ),
        );
        // Written before the agent starts: from then on it is the only writer of the events. One
        // update for both records: create's tail is on the pod's start time.
        let events_json = serde_json::to_vec(&*events).expect("events serialize");
        client
            .set_extensions(
                self.sandbox_id,
                &[(EXT_NETWORK, network_json), (EXT_EVENTS, events_json)],
            )
            .await?;
        self.start_agent(&ctx, &oci_members, result.primary_ip(), undo).await
    }

    /// Every pod gets an agent: it supervises the OCI members (restart policy) and hosts the WASM
    /// ones. Only WASM members make `create` wait for it; supervision catches up by itself.
    async fn start_agent(
        &self,
        ctx: &PodContext<'_>,
        oci_members: &[OciMemberRef],
        pod_ip: Option<String>,
        undo: &mut Undo,
    ) -> Result<(), PodError> {
        let pod = self.pod.metadata.name.clone();
        let hosted = std::mem::take(&mut *ctx.hosted.lock().expect("not poisoned"));
        let hosts_members = !hosted.members.is_empty();
        let config = AgentConfig {
            pod: pod.clone(),
            sandbox_id: self.sandbox_id.to_string(),
            netns: ctx.namespaces.netns.clone(),
            pause_pid: Some(ctx.namespaces.pause_pid),
            plugins: hosted.plugins,
            legacy_plugin: None,
            legacy_cache_dir: None,
            members: hosted.members,
            supervisor: Some(SupervisorConfig {
                sandbox_id: self.sandbox_id.to_string(),
                address: self.client.address().to_path_buf(),
                namespace: self.client.namespace().to_string(),
                restart_policy: format!("{:?}", self.pod.spec.restart_policy),
                backoff_base_ms: (self.settings.backoff_base.as_secs_f64() * 1000.0) as u64,
                members: oci_members.to_vec(),
                pod_ip,
                log_rotation: self.settings.log_rotation,
                grace_seconds: Some(self.pod.spec.termination_grace_period_seconds),
                state_dir: Some(ctx.state_dir.clone()),
                // Counted from when create began, as kubelet counts from the pod's start.
                deadline: self
                    .pod
                    .spec
                    .active_deadline_seconds
                    .map(|seconds| self.began + seconds as f64),
            }),
            init: std::mem::take(&mut *ctx.init_handover.lock().expect("not poisoned")),
        };
        agent::write_config(&ctx.state_dir, &config)?;
        agent::spawn(&pod, &ctx.state_dir)?;
        undo.push(Step::StopAgent {
            pod: pod.clone(),
            dir: ctx.state_dir.clone(),
        });
        if !hosts_members {
            return Ok(());
        }
        let status = agent::wait_ready(&pod, &ctx.state_dir, std::time::Duration::from_secs(30)).await?;
        for member in &status.members {
            if member.state == PluginState::Failed {
                return Err(PodError::Container {
                    container: member.name.clone(),
                    message: member.message.clone().unwrap_or_else(|| "it failed to start".into()),
                });
            }
        }
        Ok(())
    }

    /// /etc/hosts, /etc/hostname and /etc/resolv.conf shared by the pod's members, as kubelet does.
    /// Written before CNI with no pod line in /etc/hosts, and again, in place (the members bind
    /// mount these very files), once the pod has its IP.
    fn write_etc_files(&self, state_dir: &Path, result: Option<&CniResult>) -> Result<Vec<Mount>, PodError> {
        super::etc::write_etc_files(state_dir, self.pod, result)
    }

    async fn create_sandbox(
        &self,
        lease: &str,
        undo: &mut Undo,
        netns: &Path,
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
            host_pid: self.pod.spec.host_pid,
            host_ipc: self.pod.spec.host_ipc,
            host_network: self.pod.spec.host_network,
            sysctls: self
                .pod
                .spec
                .security_context
                .iter()
                .flat_map(|s| &s.sysctls)
                .map(|s| (crate::manifest::sysctl_dotted(&s.name), s.value.clone()))
                .collect(),
        })?;
        let mut labels = self.pod.metadata.labels.clone().into_iter().collect::<HashMap<_, _>>();
        labels.extend(sandbox_labels(self.pod, self.uid, id));
        if let Some(class) = &self.runtime_class.containerd {
            labels.insert(LABEL_RUNTIME_HANDLER.into(), class.handler.clone());
        }
        // The network record follows once CNI is done (see `run`).
        let extensions = HashMap::from([(
            EXT_POD.to_string(),
            serde_json::to_vec(self.pod).expect("pods serialize"),
        )]);
        let rootfs = client.prepare_snapshot(lease, id, &self.pause.top_chain_id).await?;
        undo.push(Step::RemoveSnapshot(id.to_string()));
        client
            .create_container(
                lease,
                NewContainer {
                    id: id.to_string(),
                    image: self.pause.name.clone(),
                    labels,
                    spec_type_url: OCI_SPEC_TYPE_URL,
                    spec_json: spec::to_json(&spec)?,
                    snapshot_key: id.to_string(),
                    extensions,
                    runtime: self.runtime_class.task_runtime(),
                },
            )
            .await?;
        undo.push(Step::DeleteContainer(id.to_string()));
        let log = state_dir.join("sandbox.log");
        let pid = client
            .create_task(
                id,
                rootfs,
                &crate::containerd::ExecIo::logged_to(format!("file://{}", log.display())),
            )
            .await?;
        undo.push(Step::DeleteTask(id.to_string()));
        // Its PID is known now; members join its namespaces while it starts (see `run`).
        Ok(pid)
    }
}

/// An OCI member as the agent supervises it (an app container; sidecars set their two fields).
fn oci_member_ref(ctx: &PodContext<'_>, id: String, container: &crate::manifest::Container) -> OciMemberRef {
    OciMemberRef {
        name: container.name.clone(),
        id,
        log_dir: ctx.log_dir.join(&container.name),
        probes: member::probe_defs(container),
        sidecar: false,
        stop_signal: None,
        hooks: member::hook_defs(container),
        message_from_logs: container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"),
        stdio: crate::member::oci::interactive_of(container),
    }
}

fn sandbox_labels(pod: &Pod, uid: &str, sandbox_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_POD_NAME.into(), pod.metadata.name.clone()),
        (LABEL_POD_NAMESPACE.into(), pod.metadata.namespace.clone()),
        (LABEL_POD_UID.into(), uid.to_string()),
        (LABEL_CONTAINER_NAME.into(), "POD".into()),
        (LABEL_KIND.into(), "sandbox".into()),
        (LABEL_MANAGED_BY.into(), "podctl".into()),
        (LABEL_SANDBOX_ID.into(), sandbox_id.to_string()),
    ])
}
