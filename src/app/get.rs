//! `podctl get pods`: the table (kubectl's columns), or the pod objects as YAML/JSON.

use anyhow::Result;

use super::format;
use crate::cli::{GetArgs, OutputFormat};
use crate::containerd::Client;
use crate::manifest::to_yaml;
use crate::pod::{self, PodError, Settings};

pub async fn get(client: &Client, settings: &Settings, args: &GetArgs) -> Result<()> {
    let mut pods = pod::list_pods(client, settings).await?;
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
    match args.output {
        None | Some(OutputFormat::Wide) => {
            if pods.is_empty() {
                eprintln!("No pods found in containerd namespace {}.", client.namespace());
                return Ok(());
            }
            print!("{}", format::pod_table(&pods, args.output == Some(OutputFormat::Wide)));
            for pod in &pods {
                if pod.status() != "Stopped"
                    && pod.members.iter().any(
                        |m| matches!(&m.state, pod::MemberState::Waiting { reason } if reason == "AgentNotRunning"),
                    )
                {
                    eprintln!("warning: the agent of pod {0} is not running, so its WASM members are down; `podctl agent restart {0}` restarts them", pod.name);
                }
            }
        }
        Some(OutputFormat::Name) => {
            for p in &pods {
                println!("pod/{}", p.name);
            }
        }
        Some(kind @ (OutputFormat::Yaml | OutputFormat::Json)) => {
            let objects: Vec<serde_json::Value> = pods.iter().map(format::pod_object).collect();
            // One named pod prints as the object itself, several as a v1 List, like kubectl.
            let value = if args.names.len() == 1 {
                objects.into_iter().next().unwrap_or_default()
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects})
            };
            if kind == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", to_yaml(&value));
            }
        }
    }
    Ok(())
}
