//! `kind: ConfigMap` and `kind: Secret` (`v1`): named key/value data that pods read as environment
//! variables and as files. Validated as the API server does (key names, base64, 1 MiB), and kept
//! in a normal form: a ConfigMap's `data` and `binaryData`, a Secret's `data` in base64 with its
//! `stringData` merged in. No message here ever shows a Secret's value.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::path::{FieldPath, LineMap};
use super::validate::dns_subdomain;
use super::ManifestError;

/// What the API server allows for one object's data.
const MAX_DATA_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set when podctl stores it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    pub api_version: String,
    pub kind: String,
    pub metadata: ConfigMeta,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Values in base64, as in the API.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binary_data: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub api_version: String,
    pub kind: String,
    pub metadata: ConfigMeta,
    #[serde(rename = "type")]
    pub type_: String,
    /// Values in base64, as in the API (`stringData` is merged in).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

fn decode(value: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(value).ok()
}

impl ConfigMap {
    /// Every key with its bytes (`data` as UTF-8, `binaryData` decoded).
    pub fn entries(&self) -> BTreeMap<String, Vec<u8>> {
        let mut entries: BTreeMap<String, Vec<u8>> = self
            .data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        for (key, value) in &self.binary_data {
            entries.insert(key.clone(), decode(value).unwrap_or_default());
        }
        entries
    }
}

impl Secret {
    /// Every key with its decoded bytes.
    pub fn entries(&self) -> BTreeMap<String, Vec<u8>> {
        self.data
            .iter()
            .map(|(k, v)| (k.clone(), decode(v).unwrap_or_default()))
            .collect()
    }

    /// The same Secret with every value replaced by its size, for printing.
    pub fn redacted(&self) -> Secret {
        let data = self
            .entries()
            .into_iter()
            .map(|(key, value)| (key, format!("<redacted: {} bytes>", value.len())))
            .collect();
        Secret { data, ..self.clone() }
    }
}

fn error(lines: &LineMap, path: &FieldPath, message: impl Into<String>) -> ManifestError {
    ManifestError {
        path: path.to_string(),
        line: lines.line(path),
        message: message.into(),
    }
}

/// A key of `data`: what the API server accepts (it becomes a file name and an env name source).
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 253 {
        return Err("a key must be 1 to 253 characters".into());
    }
    if key == "." || key == ".." || key.starts_with("..") {
        return Err(format!(
            "{key:?} is not a valid key (it may not be `.`, `..` or start with `..`)"
        ));
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "{key:?} is not a valid key: use letters, digits, `-`, `_` and `.` only"
        ));
    }
    Ok(())
}

/// A mapping of string values at `path`, checked key by key; `secret` keeps values out of errors.
fn string_map(
    doc: &Value,
    field: &str,
    lines: &LineMap,
    root: &FieldPath,
    secret: bool,
) -> Result<BTreeMap<String, String>, ManifestError> {
    let path = root.key(field);
    let Some(value) = doc.get(field) else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(map) = value else {
        return Err(error(
            lines,
            &path,
            format!("{field} must be a mapping of keys to values (`key: value` lines)"),
        ));
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let key_path = path.key(key);
        check_key(key).map_err(|problem| error(lines, &key_path, problem))?;
        match value {
            Value::String(s) => {
                out.insert(key.clone(), s.clone());
            }
            Value::Number(_) | Value::Bool(_) if secret => {
                return Err(error(
                    lines,
                    &key_path,
                    "this value is read as a number or boolean but must be text; quote it",
                ))
            }
            Value::Number(_) | Value::Bool(_) => {
                let raw = lines
                    .raw(&key_path)
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string());
                return Err(error(
                    lines,
                    &key_path,
                    format!("{raw} is read as a number or boolean but must be text; quote it: \"{raw}\""),
                ));
            }
            _ => {
                return Err(error(
                    lines,
                    &key_path,
                    "must be text (a string); write multi-line values with `|`",
                ))
            }
        }
    }
    Ok(out)
}

fn base64_values(
    map: &BTreeMap<String, String>,
    field: &str,
    lines: &LineMap,
    root: &FieldPath,
) -> Result<usize, ManifestError> {
    let mut size = 0;
    for (key, value) in map {
        // YAML folds long base64 over lines; the API server ignores that whitespace too.
        let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        match decode(&compact) {
            Some(bytes) => size += bytes.len(),
            None => {
                return Err(error(
                    lines,
                    &root.key(field).key(key),
                    format!(
                        "is not valid base64; encode the value (`base64 -w0 FILE`), or put plain text under \
                         {} instead",
                        if field == "binaryData" { "data" } else { "stringData" }
                    ),
                ))
            }
        }
    }
    Ok(size)
}

fn required_name(doc: &Value, lines: &LineMap, kind: &str) -> Result<String, ManifestError> {
    let path = FieldPath::root().key("metadata").key("name");
    let name = match doc.get("metadata").and_then(|m| m.get("name")) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(error(
                lines,
                &path,
                format!("metadata.name is required; name the {kind}, e.g. `metadata: {{name: app-config}}`"),
            ))
        }
    };
    dns_subdomain(&name).map_err(|problem| {
        error(
            lines,
            &path,
            format!("{problem}; a {kind} name is a DNS subdomain such as \"app-config\""),
        )
    })?;
    Ok(name)
}

fn metadata(doc: &Value, lines: &LineMap, kind: &str) -> Result<ConfigMeta, ManifestError> {
    let name = required_name(doc, lines, kind)?;
    let meta_path = FieldPath::root().key("metadata");
    let empty = Value::Object(Default::default());
    let meta = doc.get("metadata").unwrap_or(&empty);
    let labels = label_map(meta, "labels", lines, &meta_path)?;
    let annotations = label_map(meta, "annotations", lines, &meta_path)?;
    Ok(ConfigMeta {
        name,
        labels,
        annotations,
        creation_timestamp: None,
        uid: None,
    })
}

fn label_map(
    meta: &Value,
    field: &str,
    lines: &LineMap,
    meta_path: &FieldPath,
) -> Result<BTreeMap<String, String>, ManifestError> {
    let Some(Value::Object(map)) = meta.get(field) else {
        return Ok(BTreeMap::new());
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(error(
                lines,
                &meta_path.key(field).key(k),
                "must be text; quote the value",
            )),
        })
        .collect()
}

fn check_fields(doc: &Value, lines: &LineMap, kind: &str, known: &[&str]) -> Result<(), ManifestError> {
    for key in doc.as_object().into_iter().flat_map(|fields| fields.keys()) {
        if !known.contains(&key.as_str()) {
            return Err(error(
                lines,
                &FieldPath::root().key(key),
                format!("unknown {kind} field {key:?}; a {kind} has {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

fn check_api_version(doc: &Value, lines: &LineMap, kind: &str) -> Result<(), ManifestError> {
    match doc.get("apiVersion").and_then(Value::as_str) {
        Some("v1") => Ok(()),
        _ => Err(error(
            lines,
            &FieldPath::root().key("apiVersion"),
            format!("a {kind}'s apiVersion is v1; write `apiVersion: v1`"),
        )),
    }
}

fn immutable(doc: &Value, lines: &LineMap) -> Result<Option<bool>, ManifestError> {
    match doc.get("immutable") {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(error(
            lines,
            &FieldPath::root().key("immutable"),
            "immutable must be true or false",
        )),
    }
}

fn too_large(lines: &LineMap, kind: &str, size: usize) -> ManifestError {
    error(
        lines,
        &FieldPath::root(),
        format!(
            "the {kind}'s data is {size} bytes, over the 1 MiB (1048576 bytes) a {kind} may hold; \
             split it or mount the data from a hostPath volume"
        ),
    )
}

/// Reads a ConfigMap document whose `kind` was already found to be ConfigMap.
pub(crate) fn parse_config_map(doc: &Value, lines: &LineMap) -> Result<ConfigMap, ManifestError> {
    let root = FieldPath::root();
    check_api_version(doc, lines, "ConfigMap")?;
    check_fields(
        doc,
        lines,
        "ConfigMap",
        &["apiVersion", "kind", "metadata", "data", "binaryData", "immutable"],
    )?;
    let metadata = metadata(doc, lines, "ConfigMap")?;
    let data = string_map(doc, "data", lines, &root, false)?;
    let binary_data = string_map(doc, "binaryData", lines, &root, true)?;
    if let Some(key) = data.keys().find(|k| binary_data.contains_key(*k)) {
        return Err(error(
            lines,
            &root.key("binaryData").key(key),
            format!("key {key:?} is in both data and binaryData; keep it in one of them"),
        ));
    }
    let binary_data: BTreeMap<String, String> = binary_data
        .into_iter()
        .map(|(k, v)| (k, v.chars().filter(|c| !c.is_whitespace()).collect()))
        .collect();
    let size = data.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        + base64_values(&binary_data, "binaryData", lines, &root)?;
    if size > MAX_DATA_BYTES {
        return Err(too_large(lines, "ConfigMap", size));
    }
    Ok(ConfigMap {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        metadata,
        data,
        binary_data,
        immutable: immutable(doc, lines)?,
    })
}

/// The keys a Secret of a built-in type must hold (as the API server checks).
fn required_keys(type_: &str) -> &'static [&'static str] {
    match type_ {
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    }
}

/// Reads a Secret document whose `kind` was already found to be Secret.
pub(crate) fn parse_secret(doc: &Value, lines: &LineMap) -> Result<Secret, ManifestError> {
    let root = FieldPath::root();
    check_api_version(doc, lines, "Secret")?;
    check_fields(
        doc,
        lines,
        "Secret",
        &[
            "apiVersion",
            "kind",
            "metadata",
            "type",
            "data",
            "stringData",
            "immutable",
        ],
    )?;
    let metadata = metadata(doc, lines, "Secret")?;
    let type_ = match doc.get("type") {
        None => "Opaque".to_string(),
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        Some(_) => {
            return Err(error(
                lines,
                &root.key("type"),
                "type must be text such as Opaque or kubernetes.io/dockerconfigjson",
            ))
        }
    };
    let data: BTreeMap<String, String> = string_map(doc, "data", lines, &root, true)?
        .into_iter()
        .map(|(k, v)| (k, v.chars().filter(|c| !c.is_whitespace()).collect()))
        .collect();
    base64_values(&data, "data", lines, &root)?;
    let mut merged = data;
    // stringData is a write-only convenience: it lands in data, winning over the same key there.
    for (key, value) in string_map(doc, "stringData", lines, &root, true)? {
        merged.insert(key, base64::engine::general_purpose::STANDARD.encode(value));
    }
    let secret = Secret {
        api_version: "v1".into(),
        kind: "Secret".into(),
        metadata,
        type_,
        data: merged,
        immutable: immutable(doc, lines)?,
    };
    let entries = secret.entries();
    let size: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_DATA_BYTES {
        return Err(too_large(lines, "Secret", size));
    }
    for key in required_keys(&secret.type_) {
        if !entries.contains_key(*key) {
            return Err(error(
                lines,
                &root.key("data"),
                format!(
                    "a Secret of type {} must have the key {key:?}; add it under data (base64) or stringData",
                    secret.type_
                ),
            ));
        }
    }
    if secret.type_ == "kubernetes.io/dockerconfigjson" {
        let config = &entries[".dockerconfigjson"];
        if serde_json::from_slice::<Value>(config).map_or(true, |v| !v.get("auths").is_some_and(Value::is_object)) {
            return Err(error(
                lines,
                &root.key("data").key(".dockerconfigjson"),
                "is not a docker config.json with an `auths` mapping; make it with `podctl create secret \
                 docker-registry` or from ~/.docker/config.json",
            ));
        }
    }
    Ok(secret)
}
