//! `podctl get pods`: the table (kubectl's columns), or the pod objects as YAML/JSON.

use anyhow::Result;

use super::format;
use crate::cli::{EventsArgs, GetArgs, OutputFormat};
use crate::containerd::Client;
use crate::manifest::config_objects::{ConfigMap, ConfigMeta, Secret};
use crate::manifest::selector::Selector;
use crate::manifest::to_yaml;
use crate::member::Registry;
use crate::pod::config_store::ConfigObject;
use crate::pod::{self, PodError, Settings};

pub async fn get(client: &Client, settings: &Settings, registry: &Registry, args: &GetArgs) -> Result<()> {
    if args.watch {
        return watch(client, settings, registry, args).await;
    }
    let mut pods = pod::list_pods(client, settings, registry).await?;
    if !args.names.is_empty() {
        for name in &args.names {
            if !pods.iter().any(|p| &p.name == name) {
                return Err(PodError::NotFound {
                    name: name.clone(),
                    namespace: client.namespace().to_string(),
                }
                .into());
            }
        }
        pods.retain(|p| args.names.contains(&p.name));
    }
    if let Some(selector) = selector(args)? {
        pods.retain(|p| selector.matches(&pod_labels(p)));
    }
    if let Some(path) = &args.sort_by {
        sort_by(&mut pods, path, format::pod_object)?;
    }
    match &args.output {
        None | Some(OutputFormat::Wide) => {
            if pods.is_empty() {
                eprintln!("No pods found in containerd namespace {}.", client.namespace());
                return Ok(());
            }
            let mut rows = format::pod_rows(&pods, args.output == Some(OutputFormat::Wide));
            add_label_columns(&mut rows, args, pods.iter().map(pod_labels));
            print_table(rows, args.no_headers);
            for pod in &pods {
                if let Some(why) = &pod.interrupted {
                    eprintln!(
                        "warning: pod {0}: {why}; `podctl delete {0}` removes what it left",
                        pod.name
                    );
                    continue;
                }
                if pod.lost_to_restart {
                    eprintln!("warning: pod {}: {}", pod.name, format::LOST_TO_RESTART);
                    continue;
                }
                let status = pod.status();
                if ["Stopped", "Terminating", "Pending", "ContainerCreating"].contains(&status.as_str()) {
                    continue;
                }
                let dir = settings.pod_state_dir(client, &pod.sandbox_id);
                if !crate::agent::client::is_alive(&dir) {
                    let wasm_down = pod.members.iter().any(
                        |m| matches!(&m.state, pod::MemberState::Waiting { reason } if reason == "AgentNotRunning"),
                    );
                    let what = if wasm_down {
                        "its WASM members are down and nothing restarts its members or runs their probes"
                    } else {
                        "nothing restarts its members or runs their probes"
                    };
                    eprintln!(
                        "warning: the agent of pod {0} is not running, so {what}; `podctl agent restart {0}` starts it again",
                        pod.name
                    );
                }
            }
        }
        Some(OutputFormat::Name) => {
            for p in &pods {
                println!("pod/{}", p.name);
            }
        }
        Some(kind) => {
            print_objects(
                pods.iter().map(format::pod_object).collect(),
                args.names.len() == 1,
                kind,
                args.no_headers,
            )?;
        }
    }
    Ok(())
}

/// `--sort-by PATH`: the objects in the order of the value the path finds (numbers as numbers,
/// objects without one last; a stable sort).
fn sort_by<T>(items: &mut Vec<T>, path: &str, object: impl Fn(&T) -> serde_json::Value) -> Result<()> {
    use std::cmp::Ordering;
    let expression = super::jsonpath::path_expression(path)?;
    let mut keyed: Vec<(Option<serde_json::Value>, T)> = items
        .drain(..)
        .map(|item| (expression.values(&object(&item)).first().map(|v| (*v).clone()), item))
        .collect();
    // A total order: numbers (by value) before text (by its characters), objects without a value last.
    keyed.sort_by(|(a, _), (b, _)| match (a, b) {
        (Some(a), Some(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => super::jsonpath::show(a).cmp(&super::jsonpath::show(b)),
        },
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (None, None) => Ordering::Equal,
    });
    items.extend(keyed.into_iter().map(|(_, item)| item));
    Ok(())
}

/// `--show-labels` and `-L KEY` as kubectl: a LABELS column, and a column per key.
fn add_label_columns(
    rows: &mut [Vec<String>],
    args: &GetArgs,
    labels: impl Iterator<Item = std::collections::BTreeMap<String, String>>,
) {
    let labels: Vec<_> = labels.collect();
    let Some((header, body)) = rows.split_first_mut() else {
        return;
    };
    for key in &args.label_columns {
        header.push(key.rsplit('/').next().unwrap_or(key).to_uppercase());
        for (row, labels) in body.iter_mut().zip(&labels) {
            row.push(labels.get(key).cloned().unwrap_or_default());
        }
    }
    if args.show_labels {
        header.push("LABELS".into());
        for (row, labels) in body.iter_mut().zip(&labels) {
            let text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            row.push(if text.is_empty() {
                "<none>".into()
            } else {
                text.join(",")
            });
        }
    }
}

fn print_table(rows: Vec<Vec<String>>, no_headers: bool) {
    let text = format::tabulate(rows);
    let skip = usize::from(no_headers);
    for line in text.lines().skip(skip) {
        println!("{line}");
    }
}

/// `get pods -w`: the table once, then a row whenever a pod's READY, STATUS or RESTARTS change,
/// and when it appears or goes away (as kubectl does). Runs until interrupted.
async fn watch(client: &Client, settings: &Settings, registry: &Registry, args: &GetArgs) -> Result<()> {
    use std::collections::BTreeMap;
    use std::io::Write;
    let wide = args.output == Some(OutputFormat::Wide);
    let mut last: BTreeMap<String, (usize, String, u32)> = BTreeMap::new();
    let mut first = true;
    loop {
        let mut pods = pod::list_pods(client, settings, registry).await?;
        if !args.names.is_empty() {
            pods.retain(|p| args.names.contains(&p.name));
        }
        if let Some(selector) = selector(args)? {
            pods.retain(|p| selector.matches(&pod_labels(p)));
        }
        let mut changed = Vec::new();
        let mut seen = BTreeMap::new();
        for p in pods {
            let key = (p.ready_count(), p.status(), p.restarts());
            if last.get(&p.name) != Some(&key) {
                changed.push(p.clone());
            }
            seen.insert(p.name.clone(), key);
        }
        let table = format::pod_table(&changed, wide);
        let mut out = std::io::stdout().lock();
        // The header once; later rows only.
        for line in table.lines().skip(if first { 0 } else { 1 }) {
            if first || !changed.is_empty() {
                writeln!(out, "{line}")?;
            }
        }
        for gone in last.keys().filter(|name| !seen.contains_key(*name)) {
            writeln!(out, "{gone}   deleted")?;
        }
        out.flush()?;
        first = false;
        last = seen;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// One named object prints as the object itself, several as a v1 List, like kubectl; JSONPath
/// templates see the same, custom columns a row per object.
pub(super) fn print_objects(
    objects: Vec<serde_json::Value>,
    one_named: bool,
    kind: &OutputFormat,
    no_headers: bool,
) -> Result<()> {
    if let OutputFormat::CustomColumns(spec) = kind {
        let mut columns = Vec::new();
        for column in spec.split(',').filter(|c| !c.trim().is_empty()) {
            let Some((name, path)) = column.split_once(':') else {
                anyhow::bail!("custom-columns {column:?}: write NAME:JSONPATH, e.g. custom-columns=NAME:.metadata.name,IP:.status.podIP");
            };
            columns.push((name.trim().to_string(), super::jsonpath::path_expression(path)?));
        }
        let mut rows = vec![columns.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>()];
        for object in &objects {
            rows.push(
                columns
                    .iter()
                    .map(|(_, path)| {
                        let found: Vec<String> = path.values(object).into_iter().map(super::jsonpath::show).collect();
                        if found.is_empty() {
                            "<none>".to_string()
                        } else {
                            found.join(",")
                        }
                    })
                    .collect(),
            );
        }
        print_table(rows, no_headers);
        return Ok(());
    }
    let value = if one_named {
        objects.into_iter().next().unwrap_or_default()
    } else {
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects})
    };
    match kind {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        // As kubectl: exactly what the template says, no newline added.
        OutputFormat::JsonPath(template) => {
            use std::io::Write;
            let text = super::jsonpath::Template::parse(template)?.render(&value);
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
        _ => print!("{}", to_yaml(&value)),
    }
    Ok(())
}

fn selector(args: &GetArgs) -> Result<Option<Selector>> {
    Ok(match &args.selector {
        Some(text) => Some(Selector::parse(text)?),
        None => None,
    })
}

/// A pod's own labels (`metadata.labels`), which selectors look at.
pub fn pod_labels(pod: &pod::PodView) -> std::collections::BTreeMap<String, String> {
    pod.pod.as_ref().map(|p| p.metadata.labels.clone()).unwrap_or_default()
}

/// The named objects (all when no names) whose labels match `-l`, or ObjectNotFound for the
/// first missing name.
pub(super) async fn named<T: ConfigObject>(client: &Client, args: &GetArgs) -> Result<Vec<T>> {
    let mut found = named_objects::<T>(client, &args.names).await?;
    if let Some(selector) = selector(args)? {
        found.retain(|o| selector.matches(&o.meta().labels));
    }
    Ok(found)
}

async fn named_objects<T: ConfigObject>(client: &Client, names: &[String]) -> Result<Vec<T>> {
    let mut found = pod::config_store::list_objects::<T>(client).await?;
    for name in names {
        if !found.iter().any(|o| &o.meta().name == name) {
            return Err(PodError::ObjectNotFound {
                kind: T::RESOURCE.into(),
                name: name.clone(),
            }
            .into());
        }
    }
    if !names.is_empty() {
        found.retain(|o| names.contains(&o.meta().name));
    }
    Ok(found)
}

pub(super) fn object_age(meta: &ConfigMeta) -> String {
    meta.creation_timestamp
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|t| format::human_duration(pod::now_secs() - t.as_secs_f64()))
        .unwrap_or_else(|| "<unknown>".into())
}

/// `podctl get configmaps [NAME...]`: NAME, DATA (keys) and AGE, or the objects.
pub async fn config_maps(client: &Client, args: &GetArgs) -> Result<()> {
    let maps: Vec<ConfigMap> = named(client, args).await?;
    let rows = maps
        .iter()
        .map(|m| {
            vec![
                m.metadata.name.clone(),
                (m.data.len() + m.binary_data.len()).to_string(),
                object_age(&m.metadata),
            ]
        })
        .collect();
    let objects = maps
        .iter()
        .map(|m| serde_json::to_value(m).expect("objects serialize"))
        .collect();
    print_config_objects::<ConfigMap>(client, args, &["NAME", "DATA", "AGE"], rows, objects)
}

/// `podctl get secrets [NAME...]`: NAME, TYPE, DATA and AGE, or the objects with every value
/// replaced by its size (values are never printed).
pub async fn secrets(client: &Client, args: &GetArgs) -> Result<()> {
    let secrets: Vec<Secret> = named(client, args).await?;
    let rows = secrets
        .iter()
        .map(|s| {
            vec![
                s.metadata.name.clone(),
                s.type_.clone(),
                s.data.len().to_string(),
                object_age(&s.metadata),
            ]
        })
        .collect();
    let objects = secrets
        .iter()
        .map(|s| serde_json::to_value(s.redacted()).expect("objects serialize"))
        .collect();
    print_config_objects::<Secret>(client, args, &["NAME", "TYPE", "DATA", "AGE"], rows, objects)
}

pub(super) fn print_config_objects<T: ConfigObject>(
    client: &Client,
    args: &GetArgs,
    header: &[&str],
    rows: Vec<Vec<String>>,
    objects: Vec<serde_json::Value>,
) -> Result<()> {
    match &args.output {
        None | Some(OutputFormat::Wide) => {
            if rows.is_empty() {
                eprintln!(
                    "No {}s found in containerd namespace {}.",
                    T::RESOURCE,
                    client.namespace()
                );
                return Ok(());
            }
            let mut table = vec![header.iter().map(|h| h.to_string()).collect()];
            table.extend(rows);
            print!("{}", format::tabulate(table));
        }
        Some(OutputFormat::Name) => {
            for row in &rows {
                println!("{}/{}", T::RESOURCE, row[0]);
            }
        }
        Some(kind) => {
            print_objects(objects, args.names.len() == 1, kind, args.no_headers)?;
        }
    }
    Ok(())
}

/// `podctl get runtimeclasses [NAME...]`: NAME and HANDLER, or the objects.
pub async fn runtime_classes(client: &Client, args: &GetArgs) -> Result<()> {
    let mut classes = pod::list_runtime_classes(client).await?;
    for name in &args.names {
        if !classes.iter().any(|c| &c.metadata.name == name) {
            return Err(PodError::ObjectNotFound {
                kind: "runtimeclass".into(),
                name: name.clone(),
            }
            .into());
        }
    }
    if !args.names.is_empty() {
        classes.retain(|c| args.names.contains(&c.metadata.name));
    }
    match &args.output {
        None | Some(OutputFormat::Wide) => {
            if classes.is_empty() {
                eprintln!(
                    "No runtimeclasses found in containerd namespace {}.",
                    client.namespace()
                );
                return Ok(());
            }
            let mut rows = vec![vec!["NAME".to_string(), "HANDLER".to_string()]];
            rows.extend(classes.iter().map(|c| vec![c.metadata.name.clone(), c.handler.clone()]));
            print!("{}", format::tabulate(rows));
        }
        Some(OutputFormat::Name) => {
            for c in &classes {
                println!("runtimeclass.node.k8s.io/{}", c.metadata.name);
            }
        }
        Some(kind) => {
            let objects = classes
                .iter()
                .map(|c| serde_json::to_value(c).expect("runtime classes serialize"))
                .collect();
            print_objects(objects, args.names.len() == 1, kind, args.no_headers)?;
        }
    }
    Ok(())
}

/// `podctl events [POD] [-f]`: the pods' events oldest first, like `kubectl get events`.
/// A pod event as the API server's `v1 Event` (what `kubectl get events -o json` prints).
fn event_object(namespace: &str, pod: &str, event: &pod::PodEvent) -> serde_json::Value {
    let at = format::rfc3339(Some(event.time));
    let mut involved = serde_json::json!({"kind": "Pod", "name": pod, "namespace": namespace});
    if !event.object.is_empty() {
        involved["fieldPath"] = serde_json::json!(format!("spec.containers{{{}}}", event.object));
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{pod}.{:x}", (event.time * 1e6) as u64), "namespace": namespace},
        "involvedObject": involved,
        "type": event.kind,
        "reason": event.reason,
        "message": event.message,
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
        "source": {"component": "podctl"},
    })
}

pub async fn events(client: &Client, settings: &Settings, registry: &Registry, args: &EventsArgs) -> Result<()> {
    if args.output.as_ref().is_some_and(|o| *o != OutputFormat::Wide) || args.sort_by.is_some() {
        return print_event_objects(client, settings, registry, args).await;
    }
    print_event_table(client, settings, registry, args).await
}

/// `-o` or `--sort-by`: the pods' events as Event objects, oldest first, once.
async fn print_event_objects(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    args: &EventsArgs,
) -> Result<()> {
    let mut pods = pod::list_pods(client, settings, registry).await?;
    if let Some(name) = &args.pod {
        pods.retain(|p| &p.name == name);
        if pods.is_empty() {
            return Err(PodError::NotFound {
                name: name.clone(),
                namespace: client.namespace().to_string(),
            }
            .into());
        }
    }
    let mut events: Vec<(f64, serde_json::Value)> = pods
        .iter()
        .flat_map(|p| {
            p.events
                .iter()
                .map(move |e| (e.time, event_object(&p.namespace, &p.name, e)))
        })
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut objects: Vec<serde_json::Value> = events.into_iter().map(|(_, o)| o).collect();
    if let Some(path) = &args.sort_by {
        sort_by(&mut objects, path, |o| o.clone())?;
    }
    match &args.output {
        Some(OutputFormat::Name) => {
            for object in &objects {
                println!("event/{}", object["metadata"]["name"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        Some(kind) if *kind != OutputFormat::Wide => print_objects(objects, false, kind, args.no_headers),
        _ => {
            print_table(event_object_rows(&objects), args.no_headers);
            Ok(())
        }
    }
}

/// kubectl's events table (with its header) of Event objects.
fn event_object_rows(objects: &[serde_json::Value]) -> Vec<Vec<String>> {
    let mut rows = vec![["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        .map(String::from)
        .to_vec()];
    for o in objects {
        let field = o["involvedObject"]["fieldPath"].as_str().unwrap_or_default();
        let container = field.strip_prefix("spec.containers{").and_then(|f| f.strip_suffix('}'));
        let name = o["involvedObject"]["name"].as_str().unwrap_or_default();
        let at = o["lastTimestamp"]
            .as_str()
            .and_then(|t| humantime::parse_rfc3339(t).ok());
        let ago = at
            .and_then(|t| t.elapsed().ok())
            .map_or_else(String::new, |d| format::human_duration(d.as_secs_f64()));
        rows.push(vec![
            ago,
            o["type"].as_str().unwrap_or_default().to_string(),
            o["reason"].as_str().unwrap_or_default().to_string(),
            match container {
                Some(c) => format!("pod/{name}/{c}"),
                None => format!("pod/{name}"),
            },
            o["message"].as_str().unwrap_or_default().to_string(),
        ]);
    }
    rows
}

/// kubectl's events table; with `--watch`, every second the events newer than those printed.
async fn print_event_table(client: &Client, settings: &Settings, registry: &Registry, args: &EventsArgs) -> Result<()> {
    use std::io::Write;
    let mut printed_until = f64::MIN;
    let mut first = true;
    loop {
        let mut pods = pod::list_pods(client, settings, registry).await?;
        if let Some(name) = &args.pod {
            if first && !pods.iter().any(|p| &p.name == name) {
                return Err(PodError::NotFound {
                    name: name.clone(),
                    namespace: client.namespace().to_string(),
                }
                .into());
            }
            pods.retain(|p| &p.name == name);
        }
        let rows = event_rows_after(&pods, printed_until);
        if let Some(last) = rows.last() {
            printed_until = last.0;
        }
        let mut table = Vec::new();
        if first && !args.no_headers {
            table.push(
                ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
                    .map(String::from)
                    .to_vec(),
            );
        }
        table.extend(rows.into_iter().map(|(_, row)| row));
        let mut out = std::io::stdout().lock();
        write!(out, "{}", format::tabulate(table))?;
        out.flush()?;
        first = false;
        if !args.follow {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// The table rows of the pods' events after `after` (Unix seconds), oldest first, with their times.
fn event_rows_after(pods: &[pod::PodView], after: f64) -> Vec<(f64, Vec<String>)> {
    let mut rows: Vec<(f64, Vec<String>)> = pods
        .iter()
        .flat_map(|p| {
            p.events.iter().filter(|e| e.time > after).map(move |e| {
                let object = if e.object.is_empty() {
                    format!("pod/{}", p.name)
                } else {
                    format!("pod/{}/{}", p.name, e.object)
                };
                (
                    e.time,
                    vec![
                        format::human_duration(pod::now_secs() - e.time),
                        e.kind.clone(),
                        e.reason.clone(),
                        object,
                        e.message.clone(),
                    ],
                )
            })
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    rows
}
