//! The plan `create` runs once the preflight passed and the name and ports are claimed, as named
//! steps: the groundwork (lease, netns, state and log directories), then the network coming up
//! alongside the sandbox and members, then the records and the agent. Each step records its undo
//! as it makes something, so `create` can roll back whatever a failure left.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;
use tokio::sync::watch;

use super::agent::oci_member_ref;
use super::ports::port_mappings;
use super::CreatePlan;
use crate::agent::protocol::OciMemberRef;
use crate::member::undo::{Step, Undo};
use crate::member::{Payload, PodContext, PreparedMember, Selected};
use crate::pod::{io_error, member_id, netns_name, NetworkRecord, PodError, EXT_EVENTS, EXT_NETWORK};
use crate::record::PodEvent;
use crate::sandbox::cni::{self, Attachment, CniResult, PortMapping};
use crate::sandbox::{leftovers, netns};
use crate::spec;

/// What the pod has on the host before its sandbox.
struct Groundwork {
    /// Named by the intent, so an interrupted create's lease is found and removed.
    lease: String,
    /// Pinned, so CNI teardown never depends on a live task; empty under `hostNetwork`.
    netns: PathBuf,
    /// Root only: the agent's control socket lives here.
    state_dir: PathBuf,
    log_dir: PathBuf,
}

/// What the members get from the steps before and beside them: the /etc files to mount, and
/// watches on the network (its IPs, then whether it is up) and on the pause process.
struct MemberInputs {
    etc_mounts: Vec<Mount>,
    network_ready: watch::Receiver<Option<bool>>,
    pod_ips: watch::Receiver<Option<Vec<String>>>,
    sandbox_started: watch::Receiver<Option<bool>>,
}

/// The sandbox and members, started: what the records and the agent are made from.
struct Started<'a> {
    ctx: PodContext<'a>,
    oci_members: Vec<OciMemberRef>,
    pause_pid: u32,
}

/// Each runtime's members of the pod, by runtime index, in the manifest's order within a runtime.
type ByRuntime<'a> = Vec<Vec<PreparedMember<'a>>>;

impl CreatePlan<'_> {
    pub(super) async fn run(
        &self,
        undo: &mut Undo,
        lease: &str,
        prepared: Vec<(Selected, Payload)>,
        events: &mut Vec<PodEvent>,
    ) -> Result<(), PodError> {
        let ground = self.lay_groundwork(lease, undo).await?;
        // The pause task needs only the netns path, and a member's task can be created (not
        // started) before the network exists: CNI (~30 iptables processes) runs meanwhile, and
        // members start once it is done, as kubelet starts them in a ready sandbox.
        let etc_mounts = self.write_etc_files(&ground.state_dir, None)?;
        let port_mappings = port_mappings(self.pod);
        let (network_ready, network_ready_rx) = watch::channel(None);
        let (pod_ips, pod_ips_rx) = watch::channel(None);
        let (sandbox_started, sandbox_started_rx) = watch::channel(None);
        let inputs = MemberInputs {
            etc_mounts,
            network_ready: network_ready_rx,
            pod_ips: pod_ips_rx,
            sandbox_started: sandbox_started_rx,
        };
        let (network, started) = tokio::join!(
            self.bring_network_up(&ground, &port_mappings, &network_ready, &pod_ips),
            self.start_sandbox_and_members(&ground, inputs, prepared, &sandbox_started, undo, events),
        );
        let record = self.network_record(&ground, &port_mappings, network.as_ref().ok(), undo);
        let (result, started) = (network?, started?);
        self.check_host_ports_not_shadowed(&port_mappings).await?;
        let record = record.expect("the network is up once `network?` passed");
        self.write_records(&record, &result, started.pause_pid, events).await?;
        self.start_agent(&started.ctx, &started.oci_members, result.primary_ip(), undo)
            .await
    }

    /// The lease, then the network namespace (`hostNetwork`: none, the pod lives in the host's),
    /// the state directory with the pod's volumes, and the log directory.
    async fn lay_groundwork(&self, lease: &str, undo: &mut Undo) -> Result<Groundwork, PodError> {
        self.client.ensure_lease(lease, 24 * 3600).await?;
        undo.lease = Some(lease.to_string());
        let netns = if self.pod.spec.host_network {
            PathBuf::new()
        } else {
            let netns = netns::create_netns(&netns_name(self.sandbox_id))?;
            undo.push(Step::RemoveNetns(netns.path.clone()));
            netns.path
        };
        let state_dir = self.settings.pod_state_dir(self.client, self.sandbox_id);
        std::fs::create_dir_all(&state_dir).map_err(io_error(&state_dir))?;
        std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700)).map_err(io_error(&state_dir))?;
        undo.push(Step::RemoveDir(state_dir.clone()));
        crate::pod::config_refs::write_volumes(&state_dir, &self.config.volumes)?;
        let log_dir = self.settings.pod_log_dir(self.pod, self.uid);
        std::fs::create_dir_all(&log_dir).map_err(io_error(&log_dir))?;
        undo.push(Step::RemoveDir(log_dir.clone()));
        Ok(Groundwork {
            lease: lease.to_string(),
            netns,
            state_dir,
            log_dir,
        })
    }

    /// The pod's network (CNI, or the host's), then /etc/hosts again with the pod's IP. The
    /// members waiting for it learn how it went either way.
    async fn bring_network_up(
        &self,
        ground: &Groundwork,
        port_mappings: &[PortMapping],
        network_ready: &watch::Sender<Option<bool>>,
        pod_ips: &watch::Sender<Option<Vec<String>>>,
    ) -> Result<CniResult, PodError> {
        let added = match self.attach_network(&ground.netns, port_mappings).await {
            Ok(result) => self.write_etc_files(&ground.state_dir, Some(&result)).map(|_| result),
            Err(e) => Err(e),
        };
        // A member that reads the pod's IP (downward API) is created once it is known.
        let _ = pod_ips.send(Some(added.as_ref().map(CniResult::all_ips).unwrap_or_default()));
        let _ = network_ready.send(Some(added.is_ok()));
        added
    }

    /// CNI's loopback and ADD in the pod's netns; under `hostNetwork`, the host's address.
    async fn attach_network(&self, netns: &Path, port_mappings: &[PortMapping]) -> Result<CniResult, PodError> {
        if self.pod.spec.host_network {
            return Ok(CniResult::host(&crate::record::host_ip()));
        }
        let attachment = Attachment {
            container_id: self.sandbox_id,
            netns,
            ifname: "eth0",
            bin_dirs: &self.settings.cni_bin_dirs,
            port_mappings,
            requested_ip: None,
        };
        cni::setup_loopback(&attachment).await?;
        let result = cni::add(&self.network, &attachment).await?;
        Ok(result)
    }

    /// The sandbox's container and task, then the members: the pause process starts while they
    /// are created, and they start after it (and after the network: see `PodContext`).
    async fn start_sandbox_and_members<'a>(
        &'a self,
        ground: &Groundwork,
        inputs: MemberInputs,
        prepared: Vec<(Selected, Payload)>,
        sandbox_started: &watch::Sender<Option<bool>>,
        undo: &mut Undo,
        events: &mut Vec<PodEvent>,
    ) -> Result<Started<'a>, PodError> {
        let pause_pid = self
            .create_sandbox(&ground.lease, undo, &ground.netns, &ground.state_dir)
            .await?;
        let ctx = self.pod_context(ground, inputs, pause_pid);
        let (by_runtime, oci_members) = self.group_members(&ctx, prepared);
        let (pause, started) = tokio::join!(
            self.start_pause(sandbox_started),
            self.start_members(&ctx, by_runtime, undo, events),
        );
        pause?;
        started?;
        Ok(Started {
            ctx,
            oci_members,
            pause_pid,
        })
    }

    /// What the member runtimes are told about the pod.
    fn pod_context(&self, ground: &Groundwork, inputs: MemberInputs, pause_pid: u32) -> PodContext<'_> {
        PodContext {
            client: self.client,
            settings: self.settings,
            pod: &self.config.pod,
            uid: self.uid,
            sandbox_id: self.sandbox_id,
            hostname: self.hostname(),
            lease: ground.lease.clone(),
            namespaces: spec::SandboxNamespaces {
                netns: ground.netns.clone(),
                pause_pid,
                share_pid: self.pod.spec.share_process_namespace,
                host_pid: self.pod.spec.host_pid,
                host_ipc: self.pod.spec.host_ipc,
                host_network: self.pod.spec.host_network,
            },
            etc_mounts: inputs.etc_mounts,
            state_dir: ground.state_dir.clone(),
            log_dir: ground.log_dir.clone(),
            hosted: Default::default(),
            network_ready: inputs.network_ready,
            sandbox_started: inputs.sandbox_started,
            pod_ips: inputs.pod_ips,
            facts: self.facts.clone(),
            init_handover: Default::default(),
            runtime_class: self.runtime_class.clone(),
        }
    }

    /// The app containers by the runtime that starts them, and the OCI members the agent
    /// supervises: the sidecars, then the app containers whose runtime runs tasks.
    fn group_members<'a>(
        &'a self,
        ctx: &PodContext<'_>,
        prepared: Vec<(Selected, Payload)>,
    ) -> (ByRuntime<'a>, Vec<OciMemberRef>) {
        let mut by_runtime: ByRuntime<'a> = Vec::new();
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
                ..oci_member_ref(ctx, crate::member::oci::sidecar_id(ctx, container, index), container)
            })
            .collect();
        for (index, (selected, payload)) in prepared.into_iter().enumerate() {
            let container = &self.config.pod.spec.containers[index];
            let runtime = selected.runtime;
            if self.registry.get(runtime).runs_tasks() {
                let id = member_id(self.sandbox_id, &container.name, index);
                oci_members.push(oci_member_ref(ctx, id, container));
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
        (by_runtime, oci_members)
    }

    /// The pause process; the members waiting for it learn how it went either way.
    async fn start_pause(&self, sandbox_started: &watch::Sender<Option<bool>>) -> Result<(), PodError> {
        let started = self.client.start_task(self.sandbox_id).await;
        let _ = sandbox_started.send(Some(started.is_ok()));
        started.map(drop).map_err(PodError::from)
    }

    /// The init containers in order (sidecars stay running), then each runtime's members.
    async fn start_members(
        &self,
        ctx: &PodContext<'_>,
        by_runtime: ByRuntime<'_>,
        undo: &mut Undo,
        events: &mut Vec<PodEvent>,
    ) -> Result<(), PodError> {
        self.run_init_containers(ctx, undo, events).await?;
        for (runtime, members) in by_runtime.into_iter().enumerate().rev() {
            if !members.is_empty() {
                self.registry.get(runtime).start(ctx, members, undo, events).await?;
            }
        }
        Ok(())
    }

    /// Init containers run as OCI containers, in order, before the members start; sidecars are
    /// started and stay. Once they all completed (none handed to the agent), the init status
    /// label is cleared.
    async fn run_init_containers(
        &self,
        ctx: &PodContext<'_>,
        undo: &mut Undo,
        events: &mut Vec<PodEvent>,
    ) -> Result<(), PodError> {
        let init_containers = &self.config.pod.spec.init_containers;
        for (index, (container, image)) in init_containers.iter().zip(&self.init_images).enumerate() {
            if container.is_sidecar() {
                crate::member::oci::start_sidecar(ctx, index, container, image, undo, events).await?;
            } else {
                crate::member::oci::run_init(ctx, index, container, image, undo, events).await?;
            }
        }
        if !init_containers.is_empty() && !ctx.start_deferred() {
            let _ = self
                .client
                .set_labels(self.sandbox_id, &[(crate::record::LABEL_INIT_STATUS, String::new())])
                .await;
        }
        Ok(())
    }

    /// The network as recorded, once CNI added the pod (even if a member failed meanwhile): from
    /// here a rollback runs CNI DEL.
    fn network_record(
        &self,
        ground: &Groundwork,
        port_mappings: &[PortMapping],
        added: Option<&CniResult>,
        undo: &mut Undo,
    ) -> Option<NetworkRecord> {
        let record = added.map(|result| NetworkRecord {
            netns: ground.netns.clone(),
            network: self.network.raw.clone(),
            bin_dirs: self.settings.cni_bin_dirs.clone(),
            result: Some(result.clone()),
            port_mappings: port_mappings.to_vec(),
            host_network: self.pod.spec.host_network,
        });
        if let Some(record) = record.as_ref().filter(|r| !r.host_network) {
            undo.push(Step::CniDel {
                record: record.clone(),
                sandbox_id: self.sandbox_id.to_string(),
            });
        }
        record
    }

    /// portmap appends its rules: one that another network left for the same port would win.
    async fn check_host_ports_not_shadowed(&self, port_mappings: &[PortMapping]) -> Result<(), PodError> {
        let shadowed = match self.pod.spec.host_network {
            true => None,
            false => leftovers::shadowed_host_port(port_mappings, self.sandbox_id).await?,
        };
        match shadowed {
            Some((network, owner)) => Err(PodError::HostPortShadowed {
                port: network.0,
                network: network.1,
                owner,
            }),
            None => Ok(()),
        }
    }

    /// The network record and the events (SandboxReady first) on the sandbox, in one update:
    /// create's tail is on the pod's start time. Written before the agent starts: from then on
    /// it is the only writer of the events.
    async fn write_records(
        &self,
        record: &NetworkRecord,
        result: &CniResult,
        pause_pid: u32,
        events: &mut Vec<PodEvent>,
    ) -> Result<(), PodError> {
        let network_json = serde_json::to_vec(record).expect("records serialize");
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
        let events_json = serde_json::to_vec(&*events).expect("events serialize");
        self.client
            .set_extensions(
                self.sandbox_id,
                &[(EXT_NETWORK, network_json), (EXT_EVENTS, events_json)],
            )
            .await?;
        Ok(())
    }

    /// /etc/hosts, /etc/hostname and /etc/resolv.conf shared by the pod's members, as kubelet does.
    /// Written before CNI with no pod line in /etc/hosts, and again, in place (the members bind
    /// mount these very files), once the pod has its IP.
    fn write_etc_files(&self, state_dir: &Path, result: Option<&CniResult>) -> Result<Vec<Mount>, PodError> {
        crate::pod::etc::write_etc_files(state_dir, self.pod, result)
    }
}
