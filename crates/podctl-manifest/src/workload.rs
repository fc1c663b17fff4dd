//! Workloads: `kind: Deployment`, `ReplicaSet` and `DaemonSet` (`apps/v1`), a pod template and how
//! many pods of it run on this host, checked as the API server checks them (selector against the
//! template's labels, replicas, strategy, the template's restartPolicy). The template is kept as
//! written; each pod is made from it by [`Workload::pod`], which validates it as any pod.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config_objects::ConfigMeta;
use super::path::{FieldPath, LineMap};
use super::{ManifestError, ParsedPod};

pub const APPS_V1: &str = "apps/v1";

/// The three kinds that keep a number of copies of one pod template running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    ReplicaSet,
    DaemonSet,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 3] = [
        WorkloadKind::Deployment,
        WorkloadKind::ReplicaSet,
        WorkloadKind::DaemonSet,
    ];

    pub fn from_kind(kind: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.kind() == kind)
    }

    /// As in `kind:`.
    pub fn kind(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }

    /// How kubectl names the resource in its output (`deployment.apps`).
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment.apps",
            WorkloadKind::ReplicaSet => "replicaset.apps",
            WorkloadKind::DaemonSet => "daemonset.apps",
        }
    }

    /// The words kubectl takes for the kind on its command line.
    pub fn from_resource(word: &str) -> Option<WorkloadKind> {
        let word = word.strip_suffix(".apps").unwrap_or(word);
        match word {
            "deployment" | "deployments" | "deploy" => Some(WorkloadKind::Deployment),
            "replicaset" | "replicasets" | "rs" => Some(WorkloadKind::ReplicaSet),
            "daemonset" | "daemonsets" | "ds" => Some(WorkloadKind::DaemonSet),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub api_version: String,
    pub kind: WorkloadKind,
    pub metadata: ConfigMeta,
    pub spec: WorkloadSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// None for a DaemonSet: one pod on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Required; missing reads as empty, which [`parse`] refuses with the API's message.
    #[serde(default)]
    pub selector: LabelSelector,
    pub template: PodTemplate,
    /// A Deployment's `strategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// A DaemonSet's `updateStrategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<Strategy>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_ready_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<u32>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether these labels are selected: every matchLabels pair and every expression holds.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let value = labels.get(&e.key);
                match e.operator.as_str() {
                    "In" => value.is_some_and(|v| e.values.contains(v)),
                    "NotIn" => !value.is_some_and(|v| e.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }

    /// As kubectl prints it in `-o wide` (`app=web,tier in (a,b)`).
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for e in &self.match_expressions {
            parts.push(match e.operator.as_str() {
                "Exists" => e.key.clone(),
                "DoesNotExist" => format!("!{}", e.key),
                op => format!("{} {} ({})", e.key, op.to_ascii_lowercase(), e.values.join(",")),
            });
        }
        parts.join(",")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    #[serde(default)]
    pub metadata: TemplateMeta,
    /// The pod spec as written; [`Workload::pod`] reads it.
    pub spec: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMeta {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    /// RollingUpdate or Recreate (Deployment); RollingUpdate or OnDelete (DaemonSet).
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrPercent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
}

/// `maxSurge: 1` or `maxSurge: 25%`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrPercent {
    Int(u32),
    Percent(String),
}

impl IntOrPercent {
    /// The number of pods it means out of `of`: a percentage rounds up (`round_up`, maxSurge) or
    /// down (maxUnavailable), as the Deployment controller rounds them.
    pub fn resolve(&self, of: u32, round_up: bool) -> u32 {
        match self {
            IntOrPercent::Int(n) => *n,
            IntOrPercent::Percent(text) => {
                let percent: u64 = text.trim_end_matches('%').parse().unwrap_or(0);
                let scaled = percent * u64::from(of);
                let n = if round_up { scaled.div_ceil(100) } else { scaled / 100 };
                u32::try_from(n).unwrap_or(u32::MAX)
            }
        }
    }
}

/// How an update replaces the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// Up to `surge` pods over the count, and up to `unavailable` under it, at any time.
    Rolling { surge: u32, unavailable: u32 },
    /// All old pods go before the new ones start.
    Recreate,
    /// A DaemonSet's OnDelete: a new pod only where the old one was deleted by hand.
    OnDelete,
}

impl Workload {
    /// The pods it keeps: spec.replicas (1 unless said), one for a DaemonSet.
    pub fn replicas(&self) -> u32 {
        match self.kind {
            WorkloadKind::DaemonSet => 1,
            _ => self.spec.replicas.unwrap_or(1),
        }
    }

    pub fn rollout(&self) -> Rollout {
        let replicas = self.replicas();
        let strategy = self.spec.strategy.as_ref().or(self.spec.update_strategy.as_ref());
        match strategy.map(|s| s.type_.as_str()) {
            Some("Recreate") => Rollout::Recreate,
            Some("OnDelete") => Rollout::OnDelete,
            _ => {
                let rolling = strategy.and_then(|s| s.rolling_update.clone()).unwrap_or_default();
                // The API's defaults: 25 % each for a Deployment; a DaemonSet 0 over, 1 under.
                let (surge, unavailable) = match self.kind {
                    WorkloadKind::DaemonSet => (IntOrPercent::Int(0), IntOrPercent::Int(1)),
                    _ => (IntOrPercent::Percent("25%".into()), IntOrPercent::Percent("25%".into())),
                };
                let surge = rolling.max_surge.unwrap_or(surge).resolve(replicas, true);
                let unavailable = rolling.max_unavailable.unwrap_or(unavailable).resolve(replicas, false);
                // Both zero (refused at parse) or rounding to zero: the controller takes one down.
                let unavailable = if surge == 0 && unavailable == 0 { 1 } else { unavailable };
                Rollout::Rolling { surge, unavailable }
            }
        }
    }

    /// Kubernetes' pod-template-hash: FNV-1a over the template, in its "safe" alphabet.
    pub fn template_hash(&self) -> String {
        let json = serde_json::to_vec(&self.spec.template).expect("templates serialize");
        let mut hash: u32 = 0x811c_9dc5;
        for byte in json {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        safe_encode(hash.to_string().as_bytes())
    }

    /// The prefix of its pods' names: `web-7d4b9c8f5-` (a Deployment names them after its
    /// ReplicaSet), `web-` for a ReplicaSet or DaemonSet; cut so that a 5-character suffix keeps
    /// the name within 63 characters, as the API server's generateName does.
    pub fn pod_name_prefix(&self, hash: &str) -> String {
        let mut base = match self.kind {
            WorkloadKind::Deployment => format!("{}-{hash}-", self.metadata.name),
            _ => format!("{}-", self.metadata.name),
        };
        base.truncate(58);
        base
    }

    /// The pod named `name` made from the template: its labels plus `pod-template-hash` (a
    /// Deployment's) or `controller-revision-hash` (a DaemonSet's), validated as a pod.
    pub fn pod(&self, name: &str, hash: &str) -> Result<ParsedPod, ManifestError> {
        self.pod_at(name, hash, &LineMap::default())
    }

    /// [`Workload::pod`] with the lines of the template in its file.
    fn pod_at(&self, name: &str, hash: &str, lines: &LineMap) -> Result<ParsedPod, ManifestError> {
        let mut labels = self.spec.template.metadata.labels.clone();
        match self.kind {
            WorkloadKind::Deployment => labels.insert(POD_TEMPLATE_HASH.into(), hash.into()),
            WorkloadKind::DaemonSet => labels.insert(CONTROLLER_REVISION_HASH.into(), hash.into()),
            WorkloadKind::ReplicaSet => None,
        };
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": self.spec.template.metadata.annotations,
            },
            "spec": self.spec.template.spec,
        });
        super::parse_pod_value(doc, lines)
    }
}

pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";

/// k8s.io/apimachinery's rand.SafeEncodeString (no vowels, no look-alike characters): of the
/// template hash's digits, and of random bytes for a pod name's suffix.
pub fn safe_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Reads a workload document whose kind was found to be `kind`; its warnings (fields podctl
/// ignores, the template's) come back beside it.
pub(crate) fn parse(doc: Value, lines: &LineMap, kind: WorkloadKind) -> Result<(Workload, Vec<String>), ManifestError> {
    let root = FieldPath::root();
    let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    if api != APPS_V1 {
        let removed = matches!(api, "extensions/v1beta1" | "apps/v1beta1" | "apps/v1beta2");
        return Err(ManifestError::at(
            lines,
            &root.key("apiVersion"),
            format!(
                "no {} in version {api:?}{}; write `apiVersion: {APPS_V1}`",
                kind.kind(),
                if removed { " (removed in Kubernetes 1.16)" } else { "" }
            ),
        ));
    }
    if kind == WorkloadKind::DaemonSet && doc.get("spec").and_then(|s| s.get("replicas")).is_some() {
        let path = root.key("spec").key("replicas");
        return Err(ManifestError::at(
            lines,
            &path,
            "a DaemonSet has no replicas: it runs one pod on each node, here one pod; remove the field",
        ));
    }
    if let Some(n) = doc.pointer("/spec/replicas").and_then(Value::as_i64).filter(|n| *n < 0) {
        return Err(ManifestError::at(
            lines,
            &root.key("spec").key("replicas"),
            format!("{n}: must be greater than or equal to 0"),
        ));
    }
    if doc.pointer("/spec/template/spec").is_none() {
        return Err(ManifestError::at(
            lines,
            &root.key("spec").key("template").key("spec"),
            "spec.template.spec is required; the template is the pod the workload runs copies of",
        ));
    }
    let mut ignored = Vec::new();
    let workload: Workload = super::deserialize(doc, lines, &mut ignored)?;
    let meta_path = root.key("metadata").key("name");
    super::validate::dns_subdomain(&workload.metadata.name).map_err(|problem| {
        ManifestError::at(
            lines,
            &meta_path,
            format!("{problem}; a {} name is a DNS subdomain such as \"web\"", kind.kind()),
        )
    })?;
    check_selector(&workload, lines)?;
    check_strategy(&workload, lines)?;
    // The template is a pod: checked as one, its errors placed under spec.template.
    let hash = workload.template_hash();
    let sample = format!("{}{}", workload.pod_name_prefix(&hash), "xxxxx");
    let template_path = root.key("spec").key("template");
    let parsed = workload
        .pod_at(&sample, &hash, &lines.under(&template_path))
        .map_err(|e| under_template(e, lines, &template_path))?;
    if parsed.pod.spec.restart_policy != crate::RestartPolicy::Always {
        let path = template_path.key("spec").key("restartPolicy");
        return Err(ManifestError::at(
            lines,
            &path,
            format!(
                "Unsupported value \"{:?}\": supported values: \"Always\"; a {} keeps its pods running (a Job runs \
                 them to completion)",
                parsed.pod.spec.restart_policy,
                kind.kind()
            ),
        ));
    }
    let mut warnings: Vec<String> = super::unsupported_warning(ignored, lines).into_iter().collect();
    warnings.extend(parsed.warnings.into_iter().map(|w| format!("spec.template: {w}")));
    Ok((workload, warnings))
}

/// A template pod's error, with its path under `spec.template` (its line is the file's already).
fn under_template(mut e: ManifestError, lines: &LineMap, template: &FieldPath) -> ManifestError {
    if e.path.starts_with("metadata.name") {
        e.path = "metadata.name".into();
        e.message = format!("its pods' names: {}", e.message);
        e.line = lines.line(&FieldPath::root().key("metadata").key("name"));
        return e;
    }
    e.path = match e.path.is_empty() {
        true => template.to_string(),
        false => format!("{template}.{}", e.path),
    };
    e
}

fn check_selector(workload: &Workload, lines: &LineMap) -> Result<(), ManifestError> {
    let path = FieldPath::root().key("spec").key("selector");
    let selector = &workload.spec.selector;
    if selector.match_labels.is_empty() && selector.match_expressions.is_empty() {
        return Err(ManifestError::at(
            lines,
            &path,
            format!(
                "Required value: empty selector is invalid for a {}; select the template's labels, e.g. `selector: {{matchLabels: \
                 {{app: {}}}}}`",
                workload.kind.kind(),
                workload.metadata.name
            ),
        ));
    }
    for (i, e) in selector.match_expressions.iter().enumerate() {
        let at = path.key("matchExpressions").idx(i);
        let with_values = matches!(e.operator.as_str(), "In" | "NotIn");
        if !matches!(e.operator.as_str(), "In" | "NotIn" | "Exists" | "DoesNotExist") {
            return Err(ManifestError::at(
                lines,
                &at.key("operator"),
                format!(
                    "{:?} is not a valid selector operator; use In, NotIn, Exists or DoesNotExist",
                    e.operator
                ),
            ));
        }
        if with_values == e.values.is_empty() {
            return Err(ManifestError::at(
                lines,
                &at.key("values"),
                match with_values {
                    true => "must be specified when `operator` is 'In' or 'NotIn'",
                    false => "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                },
            ));
        }
    }
    if !selector.matches(&workload.spec.template.metadata.labels) {
        let labels_path = FieldPath::root()
            .key("spec")
            .key("template")
            .key("metadata")
            .key("labels");
        return Err(ManifestError::at(
            lines,
            &labels_path,
            format!(
                "`selector` does not match template `labels`: the selector is {:?}; give the template the labels \
                 the selector asks for",
                selector.describe()
            ),
        ));
    }
    Ok(())
}

fn check_strategy(workload: &Workload, lines: &LineMap) -> Result<(), ManifestError> {
    let spec = FieldPath::root().key("spec");
    let (field, strategy, types): (&str, _, &[&str]) = match workload.kind {
        WorkloadKind::Deployment => ("strategy", &workload.spec.strategy, &["RollingUpdate", "Recreate"]),
        WorkloadKind::DaemonSet => (
            "updateStrategy",
            &workload.spec.update_strategy,
            &["RollingUpdate", "OnDelete"],
        ),
        WorkloadKind::ReplicaSet => return Ok(()),
    };
    let other = if field == "strategy" {
        "updateStrategy"
    } else {
        "strategy"
    };
    if workload.spec.strategy.is_some() && workload.spec.update_strategy.is_some()
        || (field == "strategy" && workload.spec.update_strategy.is_some())
        || (field == "updateStrategy" && workload.spec.strategy.is_some())
    {
        return Err(ManifestError::at(
            lines,
            &spec.key(other),
            format!("a {} has no {other}; write {field}", workload.kind.kind()),
        ));
    }
    let Some(strategy) = strategy else {
        return Ok(());
    };
    let path = spec.key(field);
    if !types.contains(&strategy.type_.as_str()) {
        return Err(ManifestError::at(
            lines,
            &path.key("type"),
            format!(
                "Unsupported value {:?}: supported values: {}",
                strategy.type_,
                types.join(", ")
            ),
        ));
    }
    let Some(rolling) = &strategy.rolling_update else {
        return Ok(());
    };
    if strategy.type_ != "RollingUpdate" {
        return Err(ManifestError::at(
            lines,
            &path.key("rollingUpdate"),
            format!("may not be specified when strategy `type` is '{}'", strategy.type_),
        ));
    }
    let rolling_path = path.key("rollingUpdate");
    for (name, value) in [
        ("maxSurge", &rolling.max_surge),
        ("maxUnavailable", &rolling.max_unavailable),
    ] {
        if let Some(IntOrPercent::Percent(text)) = value {
            let percent = text.strip_suffix('%').and_then(|n| n.parse::<u32>().ok());
            let bad = match percent {
                None => Some("must be a whole number or a percentage such as \"25%\""),
                Some(p) if p > 100 && name == "maxUnavailable" => Some("should not be more than 100%"),
                _ => None,
            };
            if let Some(problem) = bad {
                return Err(ManifestError::at(
                    lines,
                    &rolling_path.key(name),
                    format!("{text:?}: {problem}"),
                ));
            }
        }
    }
    let zero = |v: &Option<IntOrPercent>, default_zero: bool| match v {
        Some(v) => v.resolve(100, true) == 0,
        None => default_zero,
    };
    let daemon = workload.kind == WorkloadKind::DaemonSet;
    if zero(&rolling.max_surge, daemon) && zero(&rolling.max_unavailable, false) {
        return Err(ManifestError::at(
            lines,
            &rolling_path.key("maxUnavailable"),
            "may not be 0 when `maxSurge` is 0; let one pod be over (maxSurge) or under (maxUnavailable) the count",
        ));
    }
    Ok(())
}

/// Kinds that mean nothing on one host without an API server, and why: named in a warning, never
/// silently dropped (`--strict` makes them an error).
pub fn without_meaning_here(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Service" | "Endpoints" | "EndpointSlice" => {
            "there is no cluster network or kube-proxy here; reach pods at their IP or publish a hostPort"
        }
        "Ingress" | "IngressClass" | "Gateway" | "HTTPRoute" => {
            "there is no ingress controller here; publish a hostPort on the pod"
        }
        "ServiceAccount" | "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding" => {
            "there is no API server here to authorize calls to"
        }
        "NetworkPolicy" => "podctl's CNI network enforces no network policy",
        "HorizontalPodAutoscaler" | "VerticalPodAutoscaler" => {
            "no metrics pipeline scales workloads here; use `podctl scale`"
        }
        "PodDisruptionBudget" => "nothing evicts pods on one host",
        "Namespace" => "podctl's namespace is the containerd namespace (--namespace)",
        "ResourceQuota" | "LimitRange" | "PriorityClass" => "there is no admission control here",
        "StorageClass" | "PersistentVolume" => {
            "a PersistentVolumeClaim gets a local volume under podctl's state directory"
        }
        "CustomResourceDefinition"
        | "APIService"
        | "MutatingWebhookConfiguration"
        | "ValidatingWebhookConfiguration"
        | "Lease" => "there is no API server here",
        _ => return None,
    })
}
