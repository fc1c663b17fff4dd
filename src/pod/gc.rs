//! `podctl gc`: removes what pods that no longer exist left behind. First the interrupted
//! creates and deletes of the namespace (their intents name everything; finishing them is a
//! delete) and the pods of workloads whose record is gone, then traces that nothing names any more — an IPAM reservation or nat rules of the
//! configured CNI network, a state directory, with the netns pin of the same sandbox; a create
//! lease; a log directory — of sandboxes that no record and no intent in any containerd
//! namespace knows; and agents whose pod directory is gone. Host objects are listed before the
//! records and intents are read: whatever a create makes exists only after its intent, so a
//! create running meanwhile is never taken for a leftover.

use std::collections::HashSet;
use std::path::PathBuf;

use super::intent;
use super::*;
use crate::member::Registry;
use crate::record::pod_view::managed_filter;
use crate::sandbox::cni::CniNetwork;
use crate::sandbox::leftovers::{self, NatRule};
use crate::sandbox::netns;

/// One thing found, and whether it was removed.
pub struct Found {
    pub what: String,
}

pub async fn gc(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    dry_run: bool,
) -> Result<Vec<Found>, PodError> {
    let mut found = finish_interrupted(client, settings, registry, dry_run).await?;
    found.extend(remove_orphan_workload_pods(client, settings, registry, dry_run).await?);

    // An agent whose pod directory is gone pins its namespace: the pod's IP and host ports.
    for what in super::delete::stop_orphan_agents(settings, !dry_run).await {
        found.push(Found { what });
    }

    // The host first, then what is known (see the module docs).
    let host = HostTraces::list(client, settings).await?;
    let known = Known::gather(client, settings).await?;
    for id in &host.orphan_sandboxes(&known) {
        found.push(remove_orphan_sandbox(client, settings, &host, id, dry_run).await?);
    }
    found.extend(remove_orphan_leases(client, &host.leases, &known, dry_run).await?);
    found.extend(remove_orphan_log_dirs(&host.log_dirs, &known, dry_run)?);
    Ok(found)
}

/// The interrupted creates and deletes of the namespace: their intents name everything, and
/// finishing them is a delete.
async fn finish_interrupted(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    dry_run: bool,
) -> Result<Vec<Found>, PodError> {
    let mut found = Vec::new();
    for stale in intent::read_all(settings, client)
        .into_iter()
        .filter(|i| i.op.leaves_a_teardown() && !i.owner.alive())
    {
        found.push(Found {
            what: format!("pod {}: {} ({})", stale.pod, stale.interruption(), stale.leftovers()),
        });
        if !dry_run {
            super::delete::finish_interrupted(client, settings, registry, &stale.pod).await?;
        }
    }
    Ok(found)
}

/// Pods a Deployment, ReplicaSet or DaemonSet made whose record is gone (a delete of it that was
/// interrupted after the record went). A workload's record is written before its pods, so a
/// create running meanwhile never looks like this.
async fn remove_orphan_workload_pods(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    dry_run: bool,
) -> Result<Vec<Found>, PodError> {
    use crate::manifest::workload::WorkloadKind;
    let mut found = Vec::new();
    for view in super::list_pods(client, settings, registry).await? {
        let Some(owner) = super::workload_store::controlled_by(&view) else {
            continue;
        };
        let Some((kind, name)) = owner.split_once('/') else {
            continue;
        };
        let Some(kind) = WorkloadKind::from_kind(kind) else {
            continue;
        };
        if super::workload_store::get_workload(client, kind, name).await?.is_some() {
            continue;
        }
        found.push(Found {
            what: format!("pod {}: its {owner} is gone", view.name),
        });
        if !dry_run {
            let options = DeleteOptions { grace_period: None };
            super::delete_pod(client, settings, registry, &view.name, &options).await?;
        }
    }
    Ok(found)
}

/// What pods leave on the host, listed before the records and intents are read. Only this
/// configuration's network is looked at, and a netns pin only for a sandbox that something else
/// of it names: another podctl setup on the host (its own network, state directory) is never
/// touched.
struct HostTraces {
    network: CniNetwork,
    netns_ids: Vec<String>,
    reservations: Vec<(String, PathBuf)>,
    rules: Vec<NatRule>,
    leases: Vec<String>,
    state_dirs: Vec<PathBuf>,
    log_dirs: Vec<PathBuf>,
}

impl HostTraces {
    async fn list(client: &Client, settings: &Settings) -> Result<HostTraces, PodError> {
        let network = CniNetwork::load(settings.cni_conf_dir.as_deref())?;
        let netns_ids = leftovers::netns_ids();
        let reservations = leftovers::ipam_reservations(&network.name);
        let rules = leftovers::nat_rules(&network.name).await?;
        let leases = client.list_leases().await?;
        let state_dirs = list_dirs(&settings.state_dir.join(client.namespace()));
        let log_dirs = list_dirs(&settings.log_dir);
        Ok(HostTraces {
            network,
            netns_ids,
            reservations,
            rules,
            leases,
            state_dirs,
            log_dirs,
        })
    }

    /// Sandbox IDs that a reservation, nat rules or a state directory names and nothing knows.
    fn orphan_sandboxes(&self, known: &Known) -> Vec<String> {
        let state_ids = self
            .state_dirs
            .iter()
            .filter_map(|d| d.file_name()?.to_str().map(String::from))
            .filter(|name| name != "intents" && name != crate::settings::CLAIMS_DIR);
        let mut orphans: Vec<String> = self
            .reservations
            .iter()
            .map(|(id, _)| id.clone())
            .chain(self.rules.iter().map(|r| r.container_id.clone()))
            .chain(state_ids)
            .filter(|id| !known.sandboxes.contains(id))
            .collect();
        orphans.sort();
        orphans.dedup();
        orphans
    }
}

/// What an orphan sandbox left (state directory, netns pin, IPAM reservations, nat rules),
/// removed unless `dry_run`.
async fn remove_orphan_sandbox(
    client: &Client,
    settings: &Settings,
    host: &HostTraces,
    id: &str,
    dry_run: bool,
) -> Result<Found, PodError> {
    let mut parts = Vec::new();
    let state = settings.state_dir.join(client.namespace()).join(id);
    if state.is_dir() {
        parts.push(format!("state directory {}", state.display()));
    }
    if host.netns_ids.iter().any(|n| n == id) {
        parts.push(format!("netns podctl-{id}"));
    }
    parts.extend(
        host.reservations
            .iter()
            .filter(|(owner, _)| owner == id)
            .map(|(_, file)| format!("IPAM reservation {}", file.display())),
    );
    let theirs: Vec<_> = host.rules.iter().filter(|r| r.container_id == id).cloned().collect();
    if !theirs.is_empty() {
        parts.push(format!("{} nat rules", theirs.len()));
    }
    let found = Found {
        what: format!("sandbox {id} (no pod): {}", parts.join(", ")),
    };
    if dry_run {
        return Ok(found);
    }
    // CNI DEL frees the reservation and portmap's rules; the bridge's masquerade rule needs
    // the pod's interface, which is gone, so what is left of the rules goes by hand.
    let netns_path = std::path::Path::new(netns::NETNS_RUN_DIR).join(netns_name(id));
    let record = NetworkRecord {
        netns: netns_path,
        network: host.network.raw.clone(),
        bin_dirs: settings.cni_bin_dirs.clone(),
        result: None,
        port_mappings: Vec::new(),
        host_network: false,
    };
    if let Err(e) = record.teardown(id).await {
        eprintln!("warning: sandbox {id}: {e}");
    }
    for (_, file) in host.reservations.iter().filter(|(owner, _)| owner == id) {
        let _ = std::fs::remove_file(file);
    }
    leftovers::remove_nat_rules(&theirs).await?;
    if state.is_dir() {
        // Its agent, if one still runs there, goes first.
        let _ = crate::agent::client::stop(id, &state, std::time::Duration::ZERO).await;
        crate::volume::remove_dir_with_mounts(&state).map_err(io_error(&state))?;
    }
    Ok(found)
}

/// Create leases (`podctl-create-<sandbox>`) of sandboxes nothing knows.
async fn remove_orphan_leases(
    client: &Client,
    leases: &[String],
    known: &Known,
    dry_run: bool,
) -> Result<Vec<Found>, PodError> {
    let mut found = Vec::new();
    for lease in leases {
        let Some(id) = lease.strip_prefix("podctl-create-") else {
            continue;
        };
        if known.sandboxes.contains(id) {
            continue;
        }
        found.push(Found {
            what: format!("lease {lease} (no pod)"),
        });
        if !dry_run {
            client.delete_lease(lease).await?;
        }
    }
    Ok(found)
}

/// Log directories (`<namespace>_<name>_<uid>`) of pod UIDs nothing knows.
fn remove_orphan_log_dirs(log_dirs: &[PathBuf], known: &Known, dry_run: bool) -> Result<Vec<Found>, PodError> {
    let mut found = Vec::new();
    for dir in log_dirs {
        let uid = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit('_').next())
            .unwrap_or_default()
            .to_string();
        if uid.is_empty() || known.uids.contains(&uid) {
            continue;
        }
        found.push(Found {
            what: format!("log directory {} (no pod)", dir.display()),
        });
        if !dry_run {
            std::fs::remove_dir_all(dir).map_err(io_error(dir))?;
        }
    }
    Ok(found)
}

/// Sandbox IDs and pod UIDs that some record or intent names, in every containerd namespace.
struct Known {
    sandboxes: HashSet<String>,
    uids: HashSet<String>,
}

impl Known {
    async fn gather(client: &Client, settings: &Settings) -> Result<Known, PodError> {
        let mut known = Known {
            sandboxes: HashSet::new(),
            uids: HashSet::new(),
        };
        for namespace in client.list_namespaces().await? {
            let client = client.in_namespace(&namespace);
            for record in client.list_containers(&[managed_filter()]).await? {
                known.sandboxes.extend(record.labels.get(LABEL_SANDBOX_ID).cloned());
                known.uids.extend(record.labels.get(LABEL_POD_UID).cloned());
            }
        }
        // The intents of every namespace podctl has a state directory for (one containerd does
        // not list yet included).
        for dir in list_dirs(&settings.state_dir) {
            let namespace = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            for intent in intent::read_all(settings, &client.in_namespace(&namespace)) {
                known.sandboxes.insert(intent.sandbox_id);
                known.uids.insert(intent.uid);
            }
        }
        Ok(known)
    }
}

fn list_dirs(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect()
}
