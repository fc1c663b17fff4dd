//! How workloads and claims are shown: `get deployments|replicasets|daemonsets` (kubectl's
//! columns, or the objects with their status), `describe deployment`, `rollout status`, and
//! `get pvc`.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::{is_ready, label, Controller, Owned};
use crate::app::format;
use crate::app::get::{object_age, print_config_objects, print_objects};
use crate::cli::{GetArgs, OutputFormat};
use crate::manifest::claim::PersistentVolumeClaim;
use crate::manifest::selector::Selector;
use crate::manifest::workload::{IntOrPercent, Rollout, Workload, WorkloadKind};
use crate::pod::workload_store::list_workloads;

/// A workload's pods counted as kubectl's columns and `.status` count them.
struct Counts {
    desired: u32,
    total: usize,
    updated: usize,
    ready: usize,
}

impl Counts {
    fn of(workload: &Workload, owned: &Owned) -> Counts {
        Counts {
            desired: workload.replicas(),
            total: owned.current.len() + owned.old.len(),
            updated: owned.current.len(),
            ready: owned.current.iter().chain(&owned.old).filter(|v| is_ready(v)).count(),
        }
    }

    fn status(&self) -> Value {
        json!({
            "replicas": self.total,
            "updatedReplicas": self.updated,
            "readyReplicas": self.ready,
            "availableReplicas": self.ready,
            "unavailableReplicas": (self.desired as usize).saturating_sub(self.ready),
        })
    }

    fn done(&self) -> bool {
        self.total == self.desired as usize && self.updated == self.total && self.ready == self.total
    }
}

/// `podctl get deployments|replicasets|daemonsets [NAME...]`.
pub async fn get(ctl: &Controller<'_>, kind: WorkloadKind, args: &GetArgs) -> Result<()> {
    let mut workloads = list_workloads(ctl.client, kind).await?;
    for name in &args.names {
        if !workloads.iter().any(|w| &w.metadata.name == name) {
            // Not stored: the lookup's NotFound says so and what lists them.
            ctl.find(kind, name).await?;
        }
    }
    if !args.names.is_empty() {
        workloads.retain(|w| args.names.contains(&w.metadata.name));
    }
    if let Some(text) = &args.selector {
        let selector = Selector::parse(text)?;
        workloads.retain(|w| selector.matches(&w.metadata.labels));
    }
    let mut rows = Vec::new();
    let mut objects = Vec::new();
    // One listing of the pods for all the workloads.
    let pods = crate::pod::list_pods(ctl.client, ctl.settings, ctl.registry).await?;
    for workload in &workloads {
        let counts = Counts::of(workload, &super::owned_among(&pods, workload));
        rows.push(row(workload, &counts, args.output == Some(OutputFormat::Wide)));
        let mut object = serde_json::to_value(workload).expect("workloads serialize");
        object["status"] = counts.status();
        objects.push(object);
    }
    let header: &[&str] = match kind {
        WorkloadKind::Deployment => &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        WorkloadKind::ReplicaSet => &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        WorkloadKind::DaemonSet => &[
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE",
        ],
    };
    let mut header: Vec<&str> = header.to_vec();
    if args.output == Some(OutputFormat::Wide) {
        header.extend(["CONTAINERS", "IMAGES", "SELECTOR"]);
    }
    match &args.output {
        None | Some(OutputFormat::Wide) => {
            if rows.is_empty() {
                eprintln!(
                    "No {}s found in containerd namespace {}.",
                    kind.kind().to_ascii_lowercase(),
                    ctl.client.namespace()
                );
                return Ok(());
            }
            let mut table = Vec::new();
            if !args.no_headers {
                table.push(header.iter().map(|h| h.to_string()).collect());
            }
            table.extend(rows);
            print!("{}", format::tabulate(table));
        }
        Some(OutputFormat::Name) => {
            for workload in &workloads {
                println!("{}", label(workload));
            }
        }
        Some(output) => print_objects(objects, args.names.len() == 1, output, args.no_headers)?,
    }
    Ok(())
}

fn row(workload: &Workload, counts: &Counts, wide: bool) -> Vec<String> {
    let name = workload.metadata.name.clone();
    let age = object_age(&workload.metadata);
    let (desired, total, updated, ready) = (
        counts.desired.to_string(),
        counts.total.to_string(),
        counts.updated.to_string(),
        counts.ready.to_string(),
    );
    let mut row = match workload.kind {
        WorkloadKind::Deployment => vec![name, format!("{ready}/{desired}"), updated, ready, age],
        WorkloadKind::ReplicaSet => vec![name, desired, total, ready, age],
        WorkloadKind::DaemonSet => vec![
            name,
            desired,
            total,
            ready.clone(),
            updated,
            ready,
            "<none>".into(),
            age,
        ],
    };
    if wide {
        let (names, images) = template_containers(workload);
        row.extend([names.join(","), images.join(","), workload.spec.selector.describe()]);
    }
    row
}

/// The template's container names and images.
fn template_containers(workload: &Workload) -> (Vec<String>, Vec<String>) {
    let containers = workload.spec.template.spec.get("containers").and_then(Value::as_array);
    let field = |key: &str| -> Vec<String> {
        containers
            .into_iter()
            .flatten()
            .filter_map(|c| c.get(key).and_then(Value::as_str).map(String::from))
            .collect()
    };
    (field("name"), field("image"))
}

/// `podctl describe deployment|replicaset|daemonset NAME`.
pub async fn describe(ctl: &Controller<'_>, kind: WorkloadKind, name: &str) -> Result<String> {
    let workload = ctl.find(kind, name).await?;
    let owned = ctl.owned(&workload).await?;
    let counts = Counts::of(&workload, &owned);
    let pairs = |map: &std::collections::BTreeMap<String, String>, sep: &str| match map.is_empty() {
        true => "<none>".to_string(),
        false => map
            .iter()
            .map(|(k, v)| format!("{k}{sep}{v}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut rows: Vec<(String, String)> = vec![
        ("Name:".into(), workload.metadata.name.clone()),
        ("Namespace:".into(), ctl.client.namespace().into()),
        (
            "CreationTimestamp:".into(),
            workload.metadata.creation_timestamp.clone().unwrap_or_default(),
        ),
        ("Labels:".into(), pairs(&workload.metadata.labels, "=")),
        ("Annotations:".into(), pairs(&workload.metadata.annotations, ": ")),
        ("Selector:".into(), workload.spec.selector.describe()),
        (
            "Replicas:".into(),
            format!(
                "{} desired | {} updated | {} total | {} available | {} unavailable",
                counts.desired,
                counts.updated,
                counts.total,
                counts.ready,
                (counts.desired as usize).saturating_sub(counts.ready)
            ),
        ),
    ];
    if kind != WorkloadKind::ReplicaSet {
        let strategy = workload
            .spec
            .strategy
            .as_ref()
            .or(workload.spec.update_strategy.as_ref());
        let type_ = strategy.map_or("RollingUpdate".to_string(), |s| s.type_.clone());
        rows.push(("StrategyType:".into(), type_));
        rows.push(("MinReadySeconds:".into(), workload.spec.min_ready_seconds.to_string()));
        if let Rollout::Rolling { .. } = workload.rollout() {
            let rolling = strategy.and_then(|s| s.rolling_update.clone()).unwrap_or_default();
            let show = |v: Option<IntOrPercent>, default: &str| match v {
                Some(IntOrPercent::Int(n)) => n.to_string(),
                Some(IntOrPercent::Percent(p)) => p,
                None => default.to_string(),
            };
            let (unavailable, surge) = match kind {
                WorkloadKind::DaemonSet => ("1", "0"),
                _ => ("25%", "25%"),
            };
            rows.push((
                "RollingUpdateStrategy:".into(),
                format!(
                    "{} max unavailable, {} max surge",
                    show(rolling.max_unavailable, unavailable),
                    show(rolling.max_surge, surge)
                ),
            ));
        }
    }
    let mut out = String::new();
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    for (key, value) in rows {
        out.push_str(&format!("{key:width$}{value}\n"));
    }
    out.push_str(&format!(
        "Pod Template:\n  Labels:  {}\n  Containers:\n",
        pairs(&workload.spec.template.metadata.labels, "=")
    ));
    let (names, images) = template_containers(&workload);
    for (name, image) in names.iter().zip(&images) {
        out.push_str(&format!("   {name}:\n    Image:  {image}\n"));
    }
    out.push_str("Pods:\n");
    if owned.current.is_empty() && owned.old.is_empty() {
        out.push_str("  <none>\n");
    }
    for (view, revision) in owned
        .current
        .iter()
        .map(|v| (v, "current"))
        .chain(owned.old.iter().map(|v| (v, "old template")))
    {
        out.push_str(&format!("  {}  {}  ({revision})\n", view.name, view.status()));
    }
    Ok(out)
}

/// `podctl rollout status deployment/NAME`: waits until every pod is of the current template
/// and ready, as kubectl's does, printing each change.
pub async fn rollout_status(
    ctl: &Controller<'_>,
    kind: WorkloadKind,
    name: &str,
    timeout: Option<Duration>,
) -> Result<()> {
    let begun = Instant::now();
    let mut said = String::new();
    loop {
        let workload = ctl.find(kind, name).await?;
        let owned = ctl.owned(&workload).await?;
        let counts = Counts::of(&workload, &owned);
        let quoted = format!("{} {name:?}", kind.kind().to_ascii_lowercase());
        if counts.done() {
            println!("{quoted} successfully rolled out");
            return Ok(());
        }
        let now = if counts.updated < counts.desired as usize {
            format!(
                "Waiting for {quoted} rollout to finish: {} out of {} new replicas have been updated...",
                counts.updated, counts.desired
            )
        } else if counts.total > counts.updated {
            format!(
                "Waiting for {quoted} rollout to finish: {} old replicas are pending termination...",
                counts.total - counts.updated
            )
        } else {
            format!(
                "Waiting for {quoted} rollout to finish: {} of {} updated replicas are available...",
                counts.ready, counts.desired
            )
        };
        if now != said {
            println!("{now}");
            said = now;
        }
        if timeout.is_some_and(|t| begun.elapsed() >= t) {
            bail!(
                "{}: timed out waiting for the rollout; pods of an earlier template or too few pods are made by \
                 `podctl apply -f` (there is no resident controller), readiness by the pods' probes",
                label(&workload)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `podctl get persistentvolumeclaims|pvc [NAME...]`.
pub async fn claims(ctl: &Controller<'_>, args: &GetArgs) -> Result<()> {
    let claims: Vec<PersistentVolumeClaim> = crate::app::get::named(ctl.client, args).await?;
    let rows = claims
        .iter()
        .map(|c| {
            vec![
                c.metadata.name.clone(),
                "Bound".into(),
                format!("pvc-{}", c.metadata.uid.clone().unwrap_or_default()),
                c.storage().unwrap_or("<unset>").to_string(),
                c.short_access_modes(),
                c.spec.storage_class_name.clone().unwrap_or_else(|| "<unset>".into()),
                object_age(&c.metadata),
            ]
        })
        .collect();
    let objects = claims
        .iter()
        .map(|c| {
            let mut object = serde_json::to_value(c).expect("claims serialize");
            object["status"] = json!({
                "phase": "Bound",
                "accessModes": c.spec.access_modes,
                "capacity": {"storage": c.storage()},
            });
            object
        })
        .collect();
    let header = [
        "NAME",
        "STATUS",
        "VOLUME",
        "CAPACITY",
        "ACCESS MODES",
        "STORAGECLASS",
        "AGE",
    ];
    print_config_objects::<PersistentVolumeClaim>(ctl.client, args, &header, rows, objects)
}
