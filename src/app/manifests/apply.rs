//! `podctl apply -f`: each document created when missing, updated when changed, left when the
//! same; a failure rolls back what the command made or changed.

use std::process::ExitCode;

use anyhow::{anyhow, Result};

use super::*;

/// `podctl apply -f ...`: what is missing is created, what changed is updated (a ConfigMap's or
/// Secret's new data reaches the volumes of running pods at once), the rest is left; objects
/// first, and a failure rolls back what this command made or changed.
pub async fn apply(global: &GlobalArgs, documents: Vec<Sourced>, force: bool) -> Result<ExitCode> {
    let mut documents = documents;
    documents.sort_by_key(|s| rank(&s.document));
    let registry = crate::app::registry(global)?;
    let client = crate::app::connect(global).await?;
    let settings = settings(global);
    let mut made = Vec::new();
    if let Err(e) = make_implicit_claims(&client, &settings, &documents, &mut made).await {
        roll_back(&client, &settings, Some(&registry), made).await;
        return Err(e.into());
    }
    for sourced in documents {
        let label = sourced.document.label();
        match apply_one(&client, &settings, &registry, sourced.document, force).await {
            Ok((verb, thing)) => {
                println!("{label} {verb}");
                made.extend(thing);
            }
            Err(e) => {
                roll_back(&client, &settings, Some(&registry), made).await;
                return Err(anyhow!("{}: {e}", sourced.origin));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Applies one document: kubectl's verb for it and what to undo.
async fn apply_one(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    document: Document,
    force: bool,
) -> Result<(&'static str, Option<Made>), WorkloadError> {
    match document {
        Document::Claim { claim, .. } => {
            let name = claim.metadata.name.clone();
            Ok(match pod::volume_claims::apply_claim(client, settings, &claim).await? {
                Applied::Created => ("created", Some(Made::Claim(name))),
                Applied::Unchanged => ("unchanged", None),
                Applied::Configured(before) => ("configured", Some(Made::ClaimBefore(before))),
            })
        }
        Document::Workload { workload, .. } => {
            let ctl = Controller {
                client,
                settings,
                registry,
            };
            let made = Made::Workload(workload.kind, workload.metadata.name.clone());
            match ctl.apply(&workload).await {
                Ok(("created", _)) => Ok(("created", Some(made))),
                Ok((verb, before)) => Ok((verb, before.map(|b| Made::WorkloadBefore(Box::new(b))))),
                Err(e) => Err(e),
            }
        }
        Document::WithoutMeaning { .. } => unreachable!("load leaves these out"),
        Document::ConfigMap(map) => apply_config(
            client,
            settings,
            registry,
            map,
            ObjectKind::ConfigMap,
            Made::ConfigMap,
            Made::ConfigMapBefore,
        )
        .await
        .map_err(WorkloadError::from),
        Document::Secret(secret) => apply_config(
            client,
            settings,
            registry,
            secret,
            ObjectKind::Secret,
            Made::Secret,
            Made::SecretBefore,
        )
        .await
        .map_err(WorkloadError::from),
        Document::RuntimeClass(class) => {
            let existing = pod::list_runtime_classes(client).await?;
            match existing.iter().find(|c| c.metadata.name == class.metadata.name) {
                Some(same) if *same == class => Ok(("unchanged", None)),
                Some(_) => {
                    pod::delete_runtime_class(client, &class.metadata.name).await?;
                    pod::create_runtime_class(client, &class).await?;
                    Ok(("configured", None))
                }
                None => {
                    let name = class.metadata.name.clone();
                    create_one(client, settings, Some(registry), Document::RuntimeClass(class)).await?;
                    Ok(("created", Some(Made::RuntimeClass(name))))
                }
            }
        }
        Document::Pod(parsed) => apply_pod(client, settings, registry, *parsed, force).await,
    }
}

/// Applies a pod: created when missing; of one that exists only new images change in place (the
/// API server's one allowed change), anything else with `force` deletes and creates it again.
async fn apply_pod(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    parsed: crate::manifest::ParsedPod,
    force: bool,
) -> Result<(&'static str, Option<Made>), WorkloadError> {
    let name = parsed.pod.metadata.name.clone();
    let Some(view) = pod::find_pod(client, settings, registry, &name).await? else {
        pod::create_pod(client, settings, registry, parsed.pod).await?;
        return Ok(("created", Some(Made::Pod(name))));
    };
    let stored = view.pod.clone().unwrap_or_default();
    let differ = differences(
        &serde_json::to_value(&stored).expect("pods serialize"),
        &serde_json::to_value(&parsed.pod).expect("pods serialize"),
    );
    if differ.is_empty() {
        return Ok(("unchanged", None));
    }
    // The one change the API server allows on a pod: its containers' images.
    let images_only = differ.iter().all(|field| {
        field
            .strip_prefix("spec.containers[")
            .and_then(|rest| rest.split_once("].image"))
            .is_some_and(|(index, tail)| tail.is_empty() && index.parse::<usize>().is_ok())
    });
    if images_only && !force {
        for member in pod::update::set_images(client, settings, registry, &view, &parsed.pod).await? {
            eprintln!("pod/{name}: container {member} restarted on its new image");
        }
        return Ok(("configured", None));
    }
    if !force {
        return Err(PodError::SpecChanged {
            pod: name,
            fields: differ.join(", "),
        }
        .into());
    }
    pod::delete_pod(client, settings, registry, &name, &DeleteOptions { grace_period: None }).await?;
    pod::create_pod(client, settings, registry, parsed.pod).await?;
    Ok(("replaced", None))
}

/// Applies a ConfigMap or Secret; a changed one reaches the volumes of the pods reading it.
async fn apply_config<T: ConfigObject>(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    object: T,
    kind: ObjectKind,
    created: fn(String) -> Made,
    replaced: fn(T) -> Made,
) -> Result<(&'static str, Option<Made>), PodError> {
    let name = object.meta().name.clone();
    Ok(match apply_object(client, &object).await? {
        Applied::Created => ("created", Some(created(name))),
        Applied::Unchanged => ("unchanged", None),
        Applied::Configured(before) => {
            report_propagated(propagate(client, settings, registry, kind, &name).await?);
            ("configured", Some(replaced(before)))
        }
    })
}

fn report_propagated(pods: Vec<String>) {
    for pod in pods {
        eprintln!("pod/{pod}: volume files updated");
    }
}

/// The field paths where two JSON values differ (`spec.containers[0].image`), in order.
fn differences(before: &serde_json::Value, after: &serde_json::Value) -> Vec<String> {
    fn walk(a: &serde_json::Value, b: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        use serde_json::Value;
        let join = |key: &str| match path.is_empty() {
            true => key.to_string(),
            false => format!("{path}.{key}"),
        };
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for key in keys {
                    let null = Value::Null;
                    walk(
                        x.get(key).unwrap_or(&null),
                        y.get(key).unwrap_or(&null),
                        &join(key),
                        out,
                    );
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    walk(p, q, &format!("{path}[{i}]"), out);
                }
            }
            _ if a == b => {}
            _ => out.push(path.to_string()),
        }
    }
    let mut out = Vec::new();
    walk(before, after, "", &mut out);
    out
}
