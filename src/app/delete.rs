//! `podctl delete`: pods by name, by `-l` or `--all`; workloads (with their pods), claims,
//! ConfigMaps, Secrets and RuntimeClasses by kind word or `TYPE/NAME`; or everything a manifest
//! names (`-f`).

use std::process::ExitCode;

use anyhow::{bail, Result};

use super::*;
use crate::cli::DeleteArgs;

pub(super) async fn delete(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    args: &DeleteArgs,
) -> Result<ExitCode> {
    let mut names: Vec<String> = args.names.clone();
    let mut plan = manifests::ToDelete::default();
    let by_query = args.selector.is_some() || args.all;
    take_typed_names(&mut names, &mut plan)?;
    let kind = resource_word(&mut names, by_query);
    if by_query {
        if !names.is_empty() {
            bail!("name objects or select them with -l/--all, not both");
        }
        names = select(client, settings, registry, args, kind.as_deref(), &mut plan).await?;
        if names.is_empty() && plan.config_maps.is_empty() && plan.secrets.is_empty() {
            eprintln!("No resources found in containerd namespace {}.", client.namespace());
            return Ok(ExitCode::SUCCESS);
        }
    } else {
        match kind.as_deref() {
            Some(k) if is_runtime_class_resource(k) => plan.runtime_classes = std::mem::take(&mut names),
            Some(k) if is_config_map_resource(k) => plan.config_maps = std::mem::take(&mut names),
            Some(k) if is_secret_resource(k) => plan.secrets = std::mem::take(&mut names),
            Some(k) if is_claim_resource(k) => plan.claims = std::mem::take(&mut names),
            Some(k) => {
                if let Some(kind) = WorkloadKind::from_resource(k) {
                    plan.workloads = names.drain(..).map(|n| (kind, n)).collect();
                }
            }
            None => {}
        }
    }
    if !args.filename.is_empty() {
        plan = manifests::to_delete(manifests::load(&args.filename, args.recursive, false)?, args.volumes);
    }
    names.append(&mut plan.pods);
    if names.is_empty() && plan.is_empty() {
        bail!("name the pod(s) to delete: `podctl delete NAME`, `podctl delete -f pod.yaml`, `-l app=web` or `--all`");
    }
    // Workloads and pods first (they read the objects), claims once their pods are gone.
    let mut failed = !delete_workloads(client, settings, registry, args, &plan.workloads).await;
    failed |= !delete_pods(client, settings, registry, args, &names).await;
    failed |= !delete_objects(client, args, &plan).await;
    failed |= !delete_claims(client, settings, registry, args, &plan.claims).await;
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `deployment/web`, `pvc/data`, `pod/x` among the names: each goes to its kind's list.
fn take_typed_names(names: &mut Vec<String>, plan: &mut manifests::ToDelete) -> Result<()> {
    let mut rest = Vec::new();
    for name in names.drain(..) {
        let Some((kind, object)) = name.split_once('/') else {
            rest.push(name);
            continue;
        };
        let object = object.to_string();
        match kind {
            k if is_pod_resource(k) => rest.push(object),
            k if is_claim_resource(k) => plan.claims.push(object),
            k if is_config_map_resource(k) => plan.config_maps.push(object),
            k if is_secret_resource(k) => plan.secrets.push(object),
            k if is_runtime_class_resource(k) => plan.runtime_classes.push(object),
            k => match WorkloadKind::from_resource(k) {
                Some(kind) => plan.workloads.push((kind, object)),
                None => bail!("{name:?}: podctl deletes pods, deployments, replicasets, daemonsets, persistentvolumeclaims, configmaps, secrets and runtimeclasses"),
            },
        }
    }
    *names = rest;
    Ok(())
}

/// Each workload with its pods (gracefully). False if one failed.
async fn delete_workloads(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    args: &DeleteArgs,
    workloads: &[(WorkloadKind, String)],
) -> bool {
    let ctl = super::workload::Controller {
        client,
        settings,
        registry,
    };
    let mut ok = true;
    for (kind, name) in workloads {
        match ctl.delete(*kind, name, args.grace_period).await {
            Ok(()) => println!("{} \"{name}\" deleted", kind.resource()),
            Err(super::workload::WorkloadError::NotFound { .. }) if args.ignore_not_found => {}
            Err(e) => {
                eprintln!("error: {e}");
                ok = false;
            }
        }
    }
    ok
}

/// Claims and their data, refused while a pod mounts one. False if one failed.
async fn delete_claims(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    args: &DeleteArgs,
    claims: &[String],
) -> bool {
    if claims.is_empty() {
        return true;
    }
    let pods = match pod::list_pods(client, settings, registry).await {
        Ok(pods) => pods,
        Err(e) => {
            eprintln!("error: {e}");
            return false;
        }
    };
    let mut ok = true;
    for name in claims {
        match pod::volume_claims::delete_claim(client, settings, &pods, name).await {
            Ok(()) => println!("persistentvolumeclaim \"{name}\" deleted"),
            Err(pod::PodError::ObjectNotFound { .. }) if args.ignore_not_found => {}
            Err(e) => {
                eprintln!("error: {e}");
                ok = false;
            }
        }
    }
    ok
}

/// A leading resource word names the kind (`delete configmap a b`, `delete pods -l app=web`): it
/// is taken off the names.
fn resource_word(names: &mut Vec<String>, by_query: bool) -> Option<String> {
    match names.first() {
        Some(word)
            if (names.len() > 1 || by_query)
                && (is_runtime_class_resource(word)
                    || is_config_map_resource(word)
                    || is_secret_resource(word)
                    || is_claim_resource(word)
                    || WorkloadKind::from_resource(word).is_some()
                    || is_pod_resource(word)) =>
        {
            Some(names.remove(0))
        }
        _ => None,
    }
}

/// `-l` or `--all`: the ConfigMaps or Secrets selected go into `plan`; the pods selected are
/// returned.
async fn select(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    args: &DeleteArgs,
    kind: Option<&str>,
    plan: &mut manifests::ToDelete,
) -> Result<Vec<String>> {
    use crate::manifest::config_objects::{ConfigMap, Secret};
    let selector = match &args.selector {
        Some(text) => crate::manifest::selector::Selector::parse(text)?,
        None => Default::default(),
    };
    Ok(match kind {
        Some(k) if is_config_map_resource(k) => {
            plan.config_maps = selected::<ConfigMap>(client, &selector).await?;
            Vec::new()
        }
        Some(k) if is_secret_resource(k) => {
            plan.secrets = selected::<Secret>(client, &selector).await?;
            Vec::new()
        }
        Some(k) if is_runtime_class_resource(k) => {
            bail!("runtimeclasses have no labels here; name them: `podctl delete runtimeclass NAME`")
        }
        Some(k) if is_claim_resource(k) || WorkloadKind::from_resource(k).is_some() => {
            bail!("select {k} by name here: `podctl delete {k} NAME`")
        }
        _ => pod::list_pods(client, settings, registry)
            .await?
            .iter()
            .filter(|p| selector.matches(&get::pod_labels(p)))
            .map(|p| p.name.clone())
            .collect(),
    })
}

/// All at once: N pods take one grace period, not N. False if one failed.
async fn delete_pods(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    args: &DeleteArgs,
    names: &[String],
) -> bool {
    let options = DeleteOptions {
        grace_period: args.grace_period,
    };
    let mut failed = false;
    let options = &options;
    let deletes = names
        .iter()
        .map(|name| async move { (name, pod::delete_pod(client, settings, registry, name, options).await) });
    for (name, result) in futures_util::future::join_all(deletes).await {
        match result {
            Ok(()) => println!("pod \"{name}\" deleted"),
            Err(pod::PodError::NotFound { .. }) if args.ignore_not_found => {}
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    !failed
}

/// The ConfigMaps, Secrets and RuntimeClasses of `plan`. False if one failed.
async fn delete_objects(client: &Client, args: &DeleteArgs, plan: &manifests::ToDelete) -> bool {
    use crate::manifest::config_objects::{ConfigMap, Secret};
    let mut failed = !manifests::delete_objects::<ConfigMap>(client, &plan.config_maps, args.ignore_not_found).await;
    failed |= !manifests::delete_objects::<Secret>(client, &plan.secrets, args.ignore_not_found).await;
    for name in &plan.runtime_classes {
        match pod::delete_runtime_class(client, name).await {
            Ok(()) => println!("runtimeclass.node.k8s.io \"{name}\" deleted"),
            Err(pod::PodError::ObjectNotFound { .. }) if args.ignore_not_found => {}
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    !failed
}
