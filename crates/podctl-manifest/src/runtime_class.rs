//! `kind: RuntimeClass` (`node.k8s.io/v1`): a name pods use in `spec.runtimeClassName` for a
//! handler of the host's runtime config, as on a Kubernetes node.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::path::{FieldPath, LineMap};
use super::validate::{dns_label, dns_subdomain};
use super::ManifestError;

pub const API_VERSION: &str = "node.k8s.io/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeClass {
    pub api_version: String,
    pub kind: String,
    pub metadata: RuntimeClassMeta,
    pub handler: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeClassMeta {
    pub name: String,
}

fn error(lines: &LineMap, path: &FieldPath, message: impl Into<String>) -> ManifestError {
    ManifestError {
        path: path.to_string(),
        line: lines.line(path),
        message: message.into(),
    }
}

fn required_string<'a>(
    value: Option<&'a Value>,
    lines: &LineMap,
    path: &FieldPath,
    fix: &str,
) -> Result<&'a str, ManifestError> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None => Err(error(lines, path, format!("{path} is required; {fix}"))),
        Some(other) => Err(error(
            lines,
            path,
            format!("{path} must be a string, got {other}; {fix}"),
        )),
    }
}

/// Reads a RuntimeClass document whose `kind` was already found to be RuntimeClass.
pub(crate) fn parse(doc: &Value, lines: &LineMap) -> Result<RuntimeClass, ManifestError> {
    let root = FieldPath::root();
    let api = required_string(
        doc.get("apiVersion"),
        lines,
        &root.key("apiVersion"),
        "write `apiVersion: node.k8s.io/v1`",
    )?;
    if api != API_VERSION && api != "node.k8s.io/v1beta1" {
        return Err(error(
            lines,
            &root.key("apiVersion"),
            format!("a RuntimeClass's apiVersion is {API_VERSION}, got {api:?}; write `apiVersion: {API_VERSION}`"),
        ));
    }
    let name_path = root.key("metadata").key("name");
    let name = required_string(
        doc.get("metadata").and_then(|m| m.get("name")),
        lines,
        &name_path,
        "name it, e.g. `metadata: {name: gvisor}`",
    )?;
    dns_subdomain(name).map_err(|problem| {
        error(
            lines,
            &name_path,
            format!("{problem}; a RuntimeClass name is a DNS subdomain such as \"gvisor\""),
        )
    })?;
    let handler_path = root.key("handler");
    let handler = required_string(
        doc.get("handler"),
        lines,
        &handler_path,
        "add `handler: NAME` naming a [runtimes.NAME] of the runtime config",
    )?;
    dns_label(handler).map_err(|problem| {
        error(
            lines,
            &handler_path,
            format!("{problem}; a handler is a DNS label naming a [runtimes.NAME] of the runtime config"),
        )
    })?;
    for key in doc.as_object().into_iter().flat_map(|fields| fields.keys()) {
        if !matches!(
            key.as_str(),
            "apiVersion" | "kind" | "metadata" | "handler" | "overhead" | "scheduling"
        ) {
            return Err(error(
                lines,
                &root.key(key),
                format!(
                    "unknown RuntimeClass field {key:?}; a RuntimeClass has apiVersion, kind, metadata and handler"
                ),
            ));
        }
    }
    Ok(RuntimeClass {
        api_version: API_VERSION.into(),
        kind: "RuntimeClass".into(),
        metadata: RuntimeClassMeta { name: name.into() },
        handler: handler.into(),
    })
}
