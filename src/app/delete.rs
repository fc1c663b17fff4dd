//! `podctl delete`: pods by name, by `-l` or `--all`, and ConfigMaps, Secrets and RuntimeClasses by
//! kind word, or everything a manifest names (`-f`).

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
    let mut plan = manifests::to_delete(Vec::new());
    let by_query = args.selector.is_some() || args.all;
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
            _ => {}
        }
    }
    if !args.filename.is_empty() {
        plan = manifests::to_delete(manifests::load(&args.filename, args.recursive)?);
    }
    names.append(&mut plan.pods);
    let objects_only = names.is_empty()
        && (!plan.runtime_classes.is_empty() || !plan.config_maps.is_empty() || !plan.secrets.is_empty());
    if names.is_empty() && !objects_only {
        bail!("name the pod(s) to delete: `podctl delete NAME`, `podctl delete -f pod.yaml`, `-l app=web` or `--all`");
    }
    // Pods first (they read the objects).
    let mut failed = !delete_pods(client, settings, registry, args, &names).await;
    failed |= !delete_objects(client, args, &plan).await;
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
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
