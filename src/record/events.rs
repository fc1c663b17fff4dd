//! Pod events, kept on the sandbox container so `describe` can show what happened
//! without a daemon or a private database.

use serde::{Deserialize, Serialize};

use super::{now_secs, EXT_EVENTS};
use crate::containerd::{Client, ContainerRecord, Result};

/// How many events a pod keeps.
const KEEP: usize = 100;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PodEvent {
    pub time: f64,
    /// `Normal` or `Warning`, as Kubernetes events.
    pub kind: String,
    pub reason: String,
    /// The member the event is about, or "" for the pod.
    pub object: String,
    pub message: String,
}

impl PodEvent {
    pub fn normal(reason: &str, object: &str, message: impl Into<String>) -> PodEvent {
        PodEvent {
            time: now_secs(),
            kind: "Normal".into(),
            reason: reason.into(),
            object: object.into(),
            message: message.into(),
        }
    }

    pub fn warning(reason: &str, object: &str, message: impl Into<String>) -> PodEvent {
        PodEvent {
            kind: "Warning".into(),
            ..PodEvent::normal(reason, object, message)
        }
    }
}

pub fn events_of(sandbox: &ContainerRecord) -> Vec<PodEvent> {
    sandbox
        .extensions
        .get(EXT_EVENTS)
        .and_then(|raw| serde_json::from_slice(raw).ok())
        .unwrap_or_default()
}

/// Serialises this process's read-modify-writes of the events (the agent records from many tasks).
static RECORDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Appends an event to the pod's sandbox record, keeping the newest [`KEEP`]. The agent is the
/// only writer once the pod exists (`create` writes its events before it starts the agent).
pub async fn record(client: &Client, sandbox_id: &str, event: PodEvent) -> Result<()> {
    let _only_writer = RECORDING.lock().await;
    let Some(sandbox) = client.get_container(sandbox_id).await? else {
        return Ok(());
    };
    let mut events = events_of(&sandbox);
    events.push(event);
    let skip = events.len().saturating_sub(KEEP);
    let json = serde_json::to_vec(&events[skip..]).expect("events serialize");
    client.set_extensions(sandbox_id, &[(EXT_EVENTS, json)]).await
}
