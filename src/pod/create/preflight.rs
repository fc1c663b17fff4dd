//! What `create` checks and gathers before it makes anything: the name is free, the runtime class
//! and every ConfigMap, Secret and PersistentVolumeClaim the pod names resolve, the images are present (pulled per
//! imagePullPolicy), each member has a runtime and its payload, init containers have OCI images,
//! and the CNI config loads. A failure here leaves nothing behind.

use super::images::{obtain_images, resolve_present};
use crate::containerd::Client;
use crate::image::ResolvedImage;
use crate::manifest::Pod;
use crate::member::{self, Payload, Registry, RuntimeClass, Selected};
use crate::pod::{new_uid, PodError, Settings, LABEL_POD_NAME};
use crate::record::PodEvent;
use crate::sandbox::cni::CniNetwork;

/// All `create` needs to make the pod, found before anything is made.
pub(super) struct Preflight {
    pub uid: String,
    pub runtime_class: RuntimeClass,
    pub facts: crate::manifest::downward::PodFacts,
    pub config: crate::pod::config_refs::Resolved,
    /// The members' runtimes and payloads, in the manifest's order.
    pub prepared: Vec<(Selected, Payload)>,
    pub pause: ResolvedImage,
    pub init_images: Vec<ResolvedImage>,
    pub network: CniNetwork,
    /// Kubelet's events so far (warnings, pulls), recorded with the pod.
    pub events: Vec<PodEvent>,
}

/// Runs every check that needs nothing created, in the order `create` always ran them.
pub(super) async fn check(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pod: &Pod,
) -> Result<Preflight, PodError> {
    check_name_free(client, settings, registry, &pod.metadata.name).await?;
    let runtime_class = runtime_class_of(client, registry, pod).await?;
    let mut events = Vec::new();
    let uid = new_uid();
    // Every ConfigMap and Secret it names, before anything is made: a missing one fails here.
    let facts = crate::pod::config_refs::pod_facts(&uid);
    let config = resolve_config(client, pod, &facts, &mut events).await?;
    crate::pod::volume_claims::check_claims(client, settings, registry, pod).await?;
    // Images first (pulled per imagePullPolicy): a runtime is chosen by what the image holds.
    obtain_images(client, settings, pod, &mut events).await?;
    let pause = resolve_present(client, &settings.sandbox_image).await?;
    let prepared = prepare_members(client, settings, registry, pod, &runtime_class, &mut events).await?;
    let init_images = init_images(client, settings, registry, pod, &runtime_class).await?;
    let network = CniNetwork::load(settings.cni_conf_dir.as_deref())?;
    Ok(Preflight {
        uid,
        runtime_class,
        facts,
        config,
        prepared,
        pause,
        init_images,
        network,
        events,
    })
}

/// No pod of that name exists; what an interrupted create or delete of this name left is named,
/// not just "exists", and those of other names that block it are finished first.
async fn check_name_free(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    name: &str,
) -> Result<(), PodError> {
    crate::pod::intent::check_free(settings, client, name)?;
    crate::pod::delete::finish_others_interrupted(client, settings, registry, name).await;
    let sandboxes = crate::pod::lookup::list_sandboxes(client).await?;
    if sandboxes
        .iter()
        .any(|s| s.labels.get(LABEL_POD_NAME).map(String::as_str) == Some(name))
    {
        return Err(PodError::Exists {
            name: name.to_string(),
            namespace: client.namespace().to_string(),
        });
    }
    Ok(())
}

/// The pod's runtime class: its `runtimeClassName`'s handler, as the registry runs it.
async fn runtime_class_of(client: &Client, registry: &Registry, pod: &Pod) -> Result<RuntimeClass, PodError> {
    let handler = match &pod.spec.runtime_class_name {
        Some(class) => Some(crate::pod::runtime_class_store::handler_of(client, class).await?),
        None => None,
    };
    Ok(registry.runtime_class(pod, handler.as_deref())?)
}

/// The pod with what its ConfigMaps and Secrets give it; their warnings become events.
async fn resolve_config(
    client: &Client,
    pod: &Pod,
    facts: &crate::manifest::downward::PodFacts,
    events: &mut Vec<PodEvent>,
) -> Result<crate::pod::config_refs::Resolved, PodError> {
    let config = crate::pod::config_refs::resolve(client, pod, facts).await?;
    let name = &pod.metadata.name;
    for warning in &config.warnings {
        eprintln!("warning: pod {name}: {warning}");
        events.push(PodEvent::warning(
            "InvalidEnvironmentVariableNames",
            "",
            warning.clone(),
        ));
    }
    Ok(config)
}

/// Each app container's runtime, chosen by what its image holds, and its prepared payload.
async fn prepare_members(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pod: &Pod,
    runtime_class: &RuntimeClass,
    events: &mut Vec<PodEvent>,
) -> Result<Vec<(Selected, Payload)>, PodError> {
    let mut prepared = Vec::new();
    for container in &pod.spec.containers {
        let probe = member::probe(client, pod, container).await?;
        let selected = registry.select(settings, container, &probe, runtime_class).await?;
        let payload = registry
            .get(selected.runtime)
            .prepare(client, settings, container, &probe, events)
            .await?;
        prepared.push((selected, payload));
    }
    Ok(prepared)
}

/// Init containers run as OCI containers, in order, before the members start: each needs an OCI
/// image, present by now.
async fn init_images(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pod: &Pod,
    runtime_class: &RuntimeClass,
) -> Result<Vec<ResolvedImage>, PodError> {
    let mut init_images = Vec::new();
    for container in &pod.spec.init_containers {
        let probe = member::probe(client, pod, container).await?;
        let selected = registry.select(settings, container, &probe, runtime_class).await?;
        if !registry.get(selected.runtime).runs_tasks() {
            return Err(PodError::Container {
                container: container.name.clone(),
                message: "init containers run as OCI containers; give it an OCI image".into(),
            });
        }
        init_images.push(resolve_present(client, &container.image).await?);
    }
    Ok(init_images)
}
