//! `podctl wait`: polls the pods' status, as `-o json` shows it, until each meets the condition
//! (`condition=Ready`, `delete`, `jsonpath={.status.phase}=Running`) or the timeout passes.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::Value;

use super::format;
use crate::cli::WaitArgs;
use crate::containerd::Client;
use crate::manifest::selector::Selector;
use crate::member::Registry;
use crate::pod::{self, PodView, Settings};

/// What `--for` asks of a pod.
#[derive(Debug, PartialEq)]
enum Wanted {
    /// `status.conditions[type=NAME].status` is this (True unless said).
    Condition {
        kind: String,
        status: String,
    },
    Deleted,
    /// The value at a JSONPath (`{.status.containerStatuses[0].ready}`), as text.
    JsonPath {
        path: String,
        value: String,
    },
}

fn parse_for(text: &str) -> Result<Wanted> {
    if text == "delete" {
        return Ok(Wanted::Deleted);
    }
    if let Some(rest) = text.strip_prefix("condition=") {
        let (kind, status) = rest.split_once('=').unwrap_or((rest, "True"));
        if kind.is_empty() {
            bail!("--for={text}: name a condition, e.g. --for=condition=Ready");
        }
        // kubectl compares condition names and values without regard to case.
        let status = match status.to_ascii_lowercase().as_str() {
            "true" => "True",
            "false" => "False",
            "unknown" => "Unknown",
            _ => bail!("--for={text}: a condition is True, False or Unknown"),
        };
        return Ok(Wanted::Condition {
            kind: kind.to_string(),
            status: status.to_string(),
        });
    }
    if let Some(rest) = text.strip_prefix("jsonpath=") {
        let Some((template, value)) = rest.split_once("}=") else {
            bail!("--for={text}: write jsonpath='{{.status.phase}}=Running'");
        };
        let path = format!("{template}}}");
        super::jsonpath::path_expression(&path)?;
        return Ok(Wanted::JsonPath {
            path,
            value: value.to_string(),
        });
    }
    bail!("--for={text}: podctl waits for condition=NAME[=True|False], delete, or jsonpath='{{.path}}=VALUE'")
}

fn met(wanted: &Wanted, pod: &PodView) -> bool {
    let object = format::pod_object(pod);
    match wanted {
        Wanted::Deleted => false,
        Wanted::Condition { kind, status } => object["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(kind)) && c["status"] == **status),
        Wanted::JsonPath { path, value } => {
            let Ok(expression) = super::jsonpath::path_expression(path) else {
                return false;
            };
            expression.values(&object).iter().any(|found| match found {
                Value::String(s) => s == value,
                other => **other == serde_json::from_str::<Value>(value).unwrap_or(Value::Null),
            })
        }
    }
}

fn pod_name(arg: &str) -> Result<&str> {
    match arg.split_once('/') {
        Some(("pod" | "pods" | "po", name)) => Ok(name),
        Some((kind, _)) => bail!("podctl waits for pods, not {kind}; write pod/NAME"),
        None => Ok(arg),
    }
}

pub async fn wait(client: &Client, settings: &Settings, registry: &Registry, args: &WaitArgs) -> Result<()> {
    let wanted = parse_for(&args.condition)?;
    let selector = args.selector.as_deref().map(Selector::parse).transpose()?;
    let mut names: Vec<String> = args
        .names
        .iter()
        .map(|n| pod_name(n).map(str::to_string))
        .collect::<Result<_>>()?;
    let deadline = Instant::now() + args.timeout;
    let pods = pod::list_pods(client, settings, registry).await?;
    if args.all || selector.is_some() {
        names.extend(
            pods.iter()
                .filter(|p| selector.as_ref().is_none_or(|s| s.matches(&super::get::pod_labels(p))))
                .map(|p| p.name.clone()),
        );
        if names.is_empty() {
            bail!("no matching pods found in containerd namespace {}", client.namespace());
        }
    } else if wanted != Wanted::Deleted {
        // As kubectl: a pod that does not exist is an error at once, unless waiting for its delete.
        if let Some(missing) = names.iter().find(|n| !pods.iter().any(|p| &p.name == *n)) {
            return Err(pod::PodError::NotFound {
                name: missing.clone(),
                namespace: client.namespace().to_string(),
            }
            .into());
        }
    }
    let mut pending = names;
    loop {
        let pods = pod::list_pods(client, settings, registry).await?;
        let mut still = Vec::new();
        for name in pending {
            match (pods.iter().find(|p| p.name == name), &wanted) {
                (None, Wanted::Deleted) => println!("pod/{name} deleted"),
                (Some(pod), _) if met(&wanted, pod) => println!("pod/{name} condition met"),
                _ => still.push(name),
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {} waiting for the condition on pods/{}; `podctl describe pod {}` shows where it stands",
                humantime::format_duration(args.timeout),
                still.join(", pods/"),
                still[0]
            );
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(200).min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_takes_kubectl_conditions() {
        assert_eq!(
            parse_for("condition=Ready").unwrap(),
            Wanted::Condition {
                kind: "Ready".into(),
                status: "True".into()
            }
        );
        assert_eq!(
            parse_for("condition=Initialized=false").unwrap(),
            Wanted::Condition {
                kind: "Initialized".into(),
                status: "False".into()
            }
        );
        assert_eq!(parse_for("delete").unwrap(), Wanted::Deleted);
        assert_eq!(
            parse_for("jsonpath={.status.phase}=Running").unwrap(),
            Wanted::JsonPath {
                path: "{.status.phase}".into(),
                value: "Running".into()
            }
        );
        assert!(parse_for("ready").is_err());
        assert!(parse_for("condition=Ready=maybe").is_err());
        assert_eq!(pod_name("pod/web").unwrap(), "web");
        assert!(pod_name("deployment/web").is_err());
    }
}
