//! `podctl create`: everything a pod needs, in order, with each step's undo recorded so a failure
//! at any point removes what was made. This module owns the order: the preflight (checks that need
//! nothing created: name, runtimes, images, ConfigMaps and Secrets), the claim of the name and host
//! ports, then the plan, and the rollback or keep of what the plan made.

mod agent;
mod images;
mod plan;
mod ports;
mod preflight;
mod sandbox;

use std::path::Path;

use crate::containerd::Client;
use crate::image::ResolvedImage;
use crate::manifest::Pod;
use crate::member::undo::Undo;
use crate::member::{Registry, RuntimeClass};
use crate::pod::intent::{Intent, Op};
use crate::pod::{netns_name, sandbox_id, NetworkRecord, PodError, Settings};
use crate::sandbox::cni::CniNetwork;
use crate::sandbox::netns;

pub(crate) use images::resolve_present;

/// Creates the pod and returns its sandbox ID. On error nothing it made is left.
pub async fn create_pod(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pod: Pod,
) -> Result<String, PodError> {
    let began = crate::record::now_secs();
    let preflight::Preflight {
        uid,
        runtime_class,
        facts,
        config,
        prepared,
        pause,
        init_images,
        network,
        mut events,
    } = preflight::check(client, settings, registry, &pod).await?;
    let sandbox_id = sandbox_id(&pod.metadata.name, &uid);
    let mut undo = Undo::new(client.clone());
    let intent = intent_of(settings, client, &pod, &uid, &sandbox_id, &network);
    let claimed = ports::claim_name_and_ports(client, settings, registry, &pod, &intent).await?;
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

/// The create's intent: what an interrupted create leaves (its lease, netns, network, state and
/// log directories), so another podctl can remove it.
fn intent_of(
    settings: &Settings,
    client: &Client,
    pod: &Pod,
    uid: &str,
    sandbox_id: &str,
    network: &CniNetwork,
) -> Intent {
    Intent::new(
        Op::Create,
        &pod.metadata.name,
        &pod.metadata.namespace,
        uid,
        sandbox_id,
        Some(format!("podctl-create-{sandbox_id}")),
        NetworkRecord {
            netns: match pod.spec.host_network {
                true => std::path::PathBuf::new(),
                false => Path::new(netns::NETNS_RUN_DIR).join(netns_name(sandbox_id)),
            },
            network: network.raw.clone(),
            bin_dirs: settings.cni_bin_dirs.clone(),
            result: None,
            port_mappings: ports::port_mappings(pod),
            host_network: pod.spec.host_network,
        },
        settings.pod_state_dir(client, sandbox_id),
        settings.pod_log_dir(pod, uid),
    )
}

/// What the plan's steps share: the pod, what the preflight found, and where it goes.
struct CreatePlan<'a> {
    client: &'a Client,
    settings: &'a Settings,
    /// As written: what podctl records.
    pod: &'a Pod,
    /// What its ConfigMaps and Secrets give it: how the members run.
    config: &'a crate::pod::config_refs::Resolved,
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
