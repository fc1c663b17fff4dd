//! Pod manifests: YAML text in, a validated [`Pod`] out, and the Pod model itself.
//!
//! This crate owns everything between the user's file and the typed pod the rest of podctl
//! runs: YAML parsing (with a line number for every field), the serde model (also the JSON
//! podctl stores on containerd), Kubernetes validation rules for the supported subset,
//! quantity parsing for resources, and YAML output for `podctl get pod -o yaml`.
//!
//! Every error names the field path and, when known, the source line, because a manifest error
//! without a location sends users hunting. Fields podctl does not implement yet are not errors:
//! they are listed in a single warning, so Kubernetes manifests run unchanged where possible.

pub mod claim;
pub mod config_objects;
pub mod downward;
mod model;
mod path;
mod quantity;
pub mod runtime_class;
pub mod selector;
mod validate;
pub mod workload;
mod yaml;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use model::{
    Capabilities, Container, ContainerPort, DownwardFile, EnvFromSource, EnvVar, EnvVarSource, ExecAction, HostAlias,
    HttpGetAction, KeySelector, KeyToPath, Lifecycle, LifecycleHandler, ObjectFieldSelector, ObjectFiles, ObjectKind,
    ObjectMeta, ObjectRef, ObjectsForm, Pod, PodDnsConfig, PodDnsConfigOption, PodSecurityContext, PodSpec, PortRef,
    Probe, Protocol, PullPolicy, ResourceFieldSelector, Resources, RestartPolicy, SeccompProfile, SecurityContext,
    Sysctl, TcpSocketAction, Volume, VolumeMount, VolumeSource, ALL_CAPABILITIES, DEFAULT_OBJECT_FILE_MODE,
};
pub use quantity::{parse_quantity_bytes, parse_quantity_millicpu};
pub use yaml::to_yaml;

use path::{FieldPath, LineMap, Seg};

/// A manifest problem: where it is and what to do about it. `message` reads
/// "<problem>; <fix>".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.line, .path, .message))]
pub struct ManifestError {
    /// Field path such as `spec.containers[1].ports[0].hostPort`; empty for whole-file problems.
    pub path: String,
    /// 1-based source line, when the problem can be tied to one.
    pub line: Option<usize>,
    pub message: String,
}

impl ManifestError {
    /// The problem at `path`, with its line when the file has it.
    pub(crate) fn at(lines: &LineMap, path: &FieldPath, message: impl Into<String>) -> ManifestError {
        ManifestError {
            path: path.to_string(),
            line: lines.line(path),
            message: message.into(),
        }
    }
}

fn render(line: &Option<usize>, path: &str, message: &str) -> String {
    let mut out = String::new();
    if let Some(line) = line {
        out.push_str(&format!("line {line}: "));
    }
    if !path.is_empty() {
        out.push_str(path);
        out.push_str(": ");
    }
    out.push_str(message);
    out
}

/// A pod that passed validation, plus anything the user should know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedPod {
    pub pod: Pod,
    /// At most one entry today: the list of fields podctl ignored.
    pub warnings: Vec<String>,
}

/// A manifest of one of the kinds podctl keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    Pod(Box<ParsedPod>),
    RuntimeClass(runtime_class::RuntimeClass),
    ConfigMap(config_objects::ConfigMap),
    Secret(config_objects::Secret),
    Workload {
        workload: Box<workload::Workload>,
        warnings: Vec<String>,
    },
    Claim {
        claim: claim::PersistentVolumeClaim,
        warnings: Vec<String>,
    },
    /// A kind that means nothing on one host (a Service…): kept to be named in a warning.
    WithoutMeaning {
        kind: String,
        name: String,
        reason: &'static str,
    },
}

impl Document {
    /// `pod/web`, `configmap/app-config`: how kubectl names objects in its output.
    pub fn label(&self) -> String {
        match self {
            Document::Pod(p) => format!("pod/{}", p.pod.metadata.name),
            Document::RuntimeClass(c) => format!("runtimeclass.node.k8s.io/{}", c.metadata.name),
            Document::ConfigMap(c) => format!("configmap/{}", c.metadata.name),
            Document::Secret(s) => format!("secret/{}", s.metadata.name),
            Document::Workload { workload, .. } => {
                format!("{}/{}", workload.kind.resource(), workload.metadata.name)
            }
            Document::Claim { claim, .. } => format!("persistentvolumeclaim/{}", claim.metadata.name),
            Document::WithoutMeaning { kind, name, .. } => format!("{}/{name}", kind.to_ascii_lowercase()),
        }
    }

    /// What the user should know about it: fields podctl ignores, and the like.
    pub fn warnings(&self) -> Vec<String> {
        match self {
            Document::Pod(p) => p.warnings.clone(),
            Document::Workload { warnings, .. } | Document::Claim { warnings, .. } => warnings.clone(),
            Document::WithoutMeaning { kind, reason, .. } => {
                vec![format!("a {kind} means nothing on one host and is left out: {reason}")]
            }
            _ => Vec::new(),
        }
    }
}

/// A problem in one document of a file of several: which one (1-based, and what it is when that
/// could be read), and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{error}", self.prefix())]
pub struct DocumentError {
    /// None when the file holds one document only.
    pub index: Option<usize>,
    /// `pod/web`, when kind and name could be read.
    pub label: Option<String>,
    pub error: ManifestError,
}

impl DocumentError {
    fn prefix(&self) -> String {
        match (self.index, &self.label) {
            (Some(i), Some(label)) => format!("document {i} ({label}): "),
            (Some(i), None) => format!("document {i}: "),
            (None, _) => String::new(),
        }
    }
}

/// Parses and validates one manifest: a Pod, or a RuntimeClass.
pub fn parse_document(text: &str) -> Result<Document, ManifestError> {
    let (doc, lines) = yaml::load(text)?;
    parse_value(doc, &lines)
}

/// Parses and validates every document of a file: `---`-separated documents, and the items of a
/// `kind: List` (what `kubectl get -o yaml` prints for several objects), in file order.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, DocumentError> {
    let whole = |error| DocumentError {
        index: None,
        label: None,
        error,
    };
    let mut values = Vec::new();
    for (doc, lines, _) in yaml::load_all(text).map_err(whole)? {
        if doc.get("kind").and_then(Value::as_str) == Some("List") {
            let items = match doc.get("items") {
                Some(Value::Array(items)) => items.clone(),
                _ => {
                    return Err(whole(ManifestError {
                        path: "items".into(),
                        line: lines.line(&FieldPath::root().key("items")),
                        message: "a List holds its objects under `items:`, a list".into(),
                    }))
                }
            };
            for (i, item) in items.into_iter().enumerate() {
                values.push((item, lines.under(&FieldPath::root().key("items").idx(i))));
            }
        } else {
            values.push((doc, lines));
        }
    }
    let several = values.len() > 1;
    values
        .into_iter()
        .enumerate()
        .map(|(i, (doc, lines))| {
            let label = match (
                doc.get("kind").and_then(Value::as_str),
                doc.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str),
            ) {
                (Some(kind), Some(name)) => Some(format!("{}/{name}", kind.to_ascii_lowercase())),
                _ => None,
            };
            parse_value(doc, &lines).map_err(|error| DocumentError {
                index: several.then_some(i + 1),
                label,
                error,
            })
        })
        .collect()
}

/// Validates an object made by podctl itself (`create configmap`), as if it had been read.
pub fn document_from_json(doc: Value) -> Result<Document, ManifestError> {
    parse_value(doc, &LineMap::default())
}

fn parse_value(mut doc: Value, lines: &LineMap) -> Result<Document, ManifestError> {
    // Kubernetes decodes `field: null` as "not set"; dropping nulls gives `value:` (empty env
    // value) and `labels:` the same meaning here.
    strip_nulls(&mut doc);
    match doc.get("kind").and_then(Value::as_str) {
        Some("RuntimeClass") => runtime_class::parse(&doc, lines).map(Document::RuntimeClass),
        Some("ConfigMap") => config_objects::parse_config_map(&doc, lines).map(Document::ConfigMap),
        Some("Secret") => config_objects::parse_secret(&doc, lines).map(Document::Secret),
        Some("PersistentVolumeClaim") => {
            claim::parse(doc, lines).map(|(claim, warnings)| Document::Claim { claim, warnings })
        }
        Some(kind) if workload::WorkloadKind::from_kind(kind).is_some() => {
            let kind = workload::WorkloadKind::from_kind(kind).expect("matched above");
            workload::parse(doc, lines, kind).map(|(workload, warnings)| Document::Workload {
                workload: Box::new(workload),
                warnings,
            })
        }
        Some(kind @ ("Job" | "CronJob" | "StatefulSet")) => Err(ManifestError {
            path: "kind".into(),
            line: lines.line(&FieldPath::root().key("kind")),
            message: format!(
                "podctl does not run kind: {kind} yet; it runs Pods, Deployments, ReplicaSets and DaemonSets — take \
                 the pod template out into a `kind: Pod` manifest"
            ),
        }),
        Some(kind) if workload::without_meaning_here(kind).is_some() => Ok(Document::WithoutMeaning {
            kind: kind.to_string(),
            name: doc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            reason: workload::without_meaning_here(kind).expect("matched above"),
        }),
        _ => parse_pod_value(doc, lines).map(|parsed| Document::Pod(Box::new(parsed))),
    }
}

/// Where `seccompProfile: {type: Localhost}` profiles are found: kubelet's default seccomp
/// directory, so profiles installed for a kubelet work here unchanged.
pub const SECCOMP_LOCALHOST_DIR: &str = "/var/lib/kubelet/seccomp";

/// A sysctl name in the dotted form runc takes: one written with `/` separators (where dots may
/// be part of a segment, as in `net/ipv4/conf/eth0.100/rp_filter`) has the two swapped.
pub fn sysctl_dotted(name: &str) -> String {
    if !name.contains('/') {
        return name.to_string();
    }
    name.chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            other => other,
        })
        .collect()
}

/// Parses and validates one `kind: Pod` manifest.
pub fn parse_pod(text: &str) -> Result<ParsedPod, ManifestError> {
    let (mut doc, lines) = yaml::load(text)?;
    strip_nulls(&mut doc);
    parse_pod_value(doc, &lines)
}

fn parse_pod_value(doc: Value, lines: &LineMap) -> Result<ParsedPod, ManifestError> {
    validate::check_document(&doc, lines)?;

    let mut ignored: Vec<FieldPath> = Vec::new();
    let pod = deserialize(doc, lines, &mut ignored)?;

    let mut checker = validate::Checker::new(lines);
    validate::validate(&pod, &mut checker);
    if let Some(err) = checker.first_error() {
        return Err(err);
    }

    // `status` is what `kubectl get -o yaml` adds; it describes a pod, it is not a wish.
    ignored.retain(|p| !matches!(p.0.first(), Some(Seg::Key(k)) if k == "status"));
    ignored.append(&mut checker.unsupported);
    let mut warnings: Vec<String> = unsupported_warning(ignored, lines).into_iter().collect();
    if pod.spec.service_account_name.is_some() || pod.spec.automount_service_account_token == Some(true) {
        warnings.push(
            "spec.serviceAccountName is accepted, but podctl mounts no service account token: there is no \
             API server to give one; the downward API still reads the name"
                .into(),
        );
    }
    Ok(ParsedPod { pod, warnings })
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn deserialize<T: serde::de::DeserializeOwned>(
    doc: Value,
    lines: &LineMap,
    ignored: &mut Vec<FieldPath>,
) -> Result<T, ManifestError> {
    let original = doc.clone();
    let mut on_ignored = |path: serde_ignored::Path<'_>| ignored.push(FieldPath::from_ignored(&path));
    let de = serde_ignored::Deserializer::new(doc, &mut on_ignored);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = FieldPath::from_path_to_error(err.path());
        let found = yaml::lookup(&original, &path);
        ManifestError {
            path: path.to_string(),
            line: lines.line(&path),
            message: type_error_message(&err.inner().to_string(), &path, found, lines),
        }
    })
}

/// Rewrites serde's wording into "<problem>; <fix>", with the fixes users actually need.
fn type_error_message(inner: &str, path: &FieldPath, found: Option<&Value>, lines: &LineMap) -> String {
    let field = match path.0.last() {
        Some(Seg::Key(k)) => k.as_str(),
        _ => "",
    };
    if inner.starts_with("invalid type:") && inner.ends_with("expected a string") {
        if let Some(v @ (Value::Number(_) | Value::Bool(_))) = found {
            let raw = lines.raw(path).map(str::to_string).unwrap_or_else(|| v.to_string());
            return format!(
                "{raw} is read as a {} but this field is text; quote it: \"{raw}\"",
                if v.is_boolean() { "boolean" } else { "number" }
            );
        }
    }
    let numeric = inner.ends_with("expected u16") || inner.ends_with("expected u64");
    if numeric && inner.starts_with("invalid type: string") {
        return format!("{} must be a number; remove the quotes", show_found(found));
    }
    if inner.starts_with("invalid value:") && inner.ends_with("expected u16") {
        return format!("{} is not a port number; use 1-65535", show_found(found));
    }
    if inner.starts_with("invalid value:") && inner.ends_with("expected u64") {
        return format!("{} must not be negative; use 0 or more", show_found(found));
    }
    if inner.starts_with("invalid type:") && numeric {
        return format!("{} must be a whole number; write e.g. `{field}: 30`", show_found(found));
    }
    if let Some(rest) = inner.strip_prefix("unknown variant ") {
        return format!(
            "unknown value {}; values are case-sensitive",
            rest.replace("expected one of", "use one of")
        );
    }
    if inner.contains("; ") {
        // Our own messages (volume sources) already carry their fix.
        return inner.to_string();
    }
    if let Some((found_part, expected)) = inner
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        return format!(
            "must be {}, found {}; check the indentation and the type of `{field}` in the \
             Kubernetes Pod reference",
            describe_expected(expected),
            describe_found(found_part),
        );
    }
    format!("{inner}; check the type of `{field}` in the Kubernetes Pod reference")
}

fn describe_expected(expected: &str) -> String {
    match expected {
        "a sequence" => "a list (`- item` lines or `[a, b]`)".into(),
        "a map" => "a mapping (`key: value` lines)".into(),
        "a string" => "text".into(),
        "a boolean" => "true or false".into(),
        e if e.starts_with("struct ") => "a mapping (`key: value` lines)".into(),
        e => e.to_string(),
    }
}

fn describe_found(found: &str) -> String {
    match found {
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        f => f.replace('`', ""),
    }
}

fn show_found(found: Option<&Value>) -> String {
    match found {
        Some(Value::String(s)) => format!("{s:?}"),
        Some(v) => v.to_string(),
        None => "the value".to_string(),
    }
}

/// One warning listing every ignored field with its line, in file order.
fn unsupported_warning(mut paths: Vec<FieldPath>, lines: &LineMap) -> Option<String> {
    if paths.is_empty() {
        return None;
    }
    paths.sort_by_key(|p| (lines.line(p).is_none(), lines.line(p)));
    paths.dedup();
    let entries: Vec<String> = paths
        .iter()
        .map(|p| match lines.line(p) {
            Some(line) => format!("{p} (line {line})"),
            None => p.to_string(),
        })
        .collect();
    Some(format!(
        "ignoring fields podctl does not support yet: {}",
        entries.join(", ")
    ))
}
