//! Pod events, kept on the sandbox container so `describe` can show what happened
//! without a daemon or a private database.

use serde::{Deserialize, Serialize};

use super::{now_secs, EXT_EVENTS};
use crate::containerd::ContainerRecord;

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
}

pub fn events_of(sandbox: &ContainerRecord) -> Vec<PodEvent> {
    sandbox
        .extensions
        .get(EXT_EVENTS)
        .and_then(|raw| serde_json::from_slice(raw).ok())
        .unwrap_or_default()
}
