//! Semantic checks on a deserialized Pod: Kubernetes' own rules for the fields podctl supports,
//! plus the limits podctl adds (a pod name is also a hostname and part of container ids).
//!
//! Every check runs and the error nearest the top of the file is reported, so the user fixes
//! problems in reading order whatever order the checks run in.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde_json::Value;

use crate::model::{Container, Pod, Protocol, VolumeSource};
use crate::path::{FieldPath, LineMap};
use crate::quantity::{parse_quantity_bytes, parse_quantity_millicpu};
use crate::yaml::lookup;
use crate::ManifestError;

mod container;
mod names;
mod pod;
mod volumes;

use container::*;
use names::*;
pub(crate) use names::{dns_label, dns_subdomain};
use pod::*;
use volumes::*;

pub(crate) struct Checker<'a> {
    lines: &'a LineMap,
    errors: Vec<ManifestError>,
    /// Fields that parse but podctl does not act on; they join the unknown-field warning.
    pub(crate) unsupported: Vec<FieldPath>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(lines: &'a LineMap) -> Self {
        Checker {
            lines,
            errors: Vec::new(),
            unsupported: Vec::new(),
        }
    }

    fn fail(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.errors.push(ManifestError {
            path: path.to_string(),
            line: self.lines.line(path),
            message: message.into(),
        });
    }

    /// The error earliest in the file (errors without a line last, in check order).
    pub(crate) fn first_error(&mut self) -> Option<ManifestError> {
        let i = (0..self.errors.len()).min_by_key(|&i| (self.errors[i].line.is_none(), self.errors[i].line))?;
        Some(self.errors.swap_remove(i))
    }
}

/// Checks on the raw document that must run before deserialization: the kind decides whether
/// the rest can be read as a Pod at all, and volume types podctl lacks have no place in the model.
/// The volume sources podctl runs, as the manifest names them.
const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "configMap",
    "secret",
    "projected",
    "downwardAPI",
    "persistentVolumeClaim",
];

pub(crate) fn check_document(doc: &Value, lines: &LineMap) -> Result<(), ManifestError> {
    let mut c = Checker::new(lines);
    let root = FieldPath::root();
    if !doc.is_object() {
        return Err(ManifestError {
            path: String::new(),
            line: lines.line(&root),
            message: "the manifest must be a mapping; start it with `apiVersion: v1` and \
                      `kind: Pod`"
                .into(),
        });
    }

    let kind = root.key("kind");
    match doc.get("kind") {
        None => c.fail(&kind, "kind is required; add `kind: Pod`"),
        Some(Value::String(k)) if k == "Pod" => {}
        Some(Value::String(k)) if k.eq_ignore_ascii_case("pod") => {
            c.fail(&kind, format!("kind is case-sensitive, got {k:?}; write `kind: Pod`"))
        }
        Some(other) => c.fail(
            &kind,
            format!(
                "podctl runs Pods, Deployments, ReplicaSets and DaemonSets (and keeps ConfigMaps, Secrets, \
                 PersistentVolumeClaims and RuntimeClasses), got {}; write one of those kinds",
                show(other)
            ),
        ),
    }
    if let Some(e) = c.first_error() {
        return Err(e);
    }

    let api = root.key("apiVersion");
    match doc.get("apiVersion") {
        None => c.fail(&api, "apiVersion is required; add `apiVersion: v1`"),
        Some(Value::String(v)) if v == "v1" => {}
        Some(other) => c.fail(
            &api,
            format!("a Pod's apiVersion is v1, got {}; write `apiVersion: v1`", show(other)),
        ),
    }

    let volumes = root.key("spec").key("volumes");
    if let Some(Value::Array(items)) = lookup(doc, &volumes) {
        for (i, item) in items.iter().enumerate() {
            let vp = volumes.idx(i);
            let Value::Object(fields) = item else {
                continue;
            };
            let mut sources = Vec::new();
            for key in fields.keys() {
                match key.as_str() {
                    "name" => {}
                    source if VOLUME_SOURCES.contains(&source) => sources.push(source),
                    other if OTHER_VOLUME_TYPES.contains(&other) => c.fail(
                        &vp.key(other),
                        format!(
                            "{other} volumes are not supported: podctl supports hostPath, emptyDir, \
                             configMap, secret, downwardAPI, projected and persistentVolumeClaim volumes; put the \
                             files in a host directory and mount it with hostPath, or use a claim"
                        ),
                    ),
                    other => c.fail(
                        &vp.key(other),
                        format!(
                            "unknown volume field {other:?}: podctl supports hostPath, emptyDir, \
                             configMap, secret, projected and persistentVolumeClaim volumes; a volume is `name` plus \
                             `hostPath: {{path: /dir}}` or `emptyDir: {{}}` (or one of the others)"
                        ),
                    ),
                }
            }
            match sources.len() {
                0 if fields.keys().all(|k| k == "name") => c.fail(
                    &vp,
                    "the volume has no source (a bare `emptyDir:` counts as none): podctl \
                     supports hostPath and emptyDir volumes; add `emptyDir: {}` or \
                     `hostPath: {path: /dir}`",
                ),
                n if n >= 2 => c.fail(
                    &vp.key(sources[1]),
                    format!(
                        "a volume has exactly one source; keep either {} or {} and declare the \
                         other as its own volume",
                        sources[0], sources[1]
                    ),
                ),
                _ => {}
            }
        }
    }
    match c.first_error() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn validate(pod: &Pod, c: &mut Checker<'_>) {
    check_metadata(c, pod);
    let spec = FieldPath::root().key("spec");
    check_pod_level(c, &spec, pod);
    let container_names: Vec<&str> = pod.all_containers().map(|c| c.name.as_str()).collect();
    for (i, secret) in pod.spec.image_pull_secrets.iter().enumerate() {
        check_object_name(c, &spec.key("imagePullSecrets").idx(i).key("name"), &secret.name);
    }
    let volume_names = check_volumes(c, &spec, pod, &container_names);
    if pod.spec.containers.is_empty() {
        c.fail(
            &spec.key("containers"),
            "a pod needs at least one container; add `containers:` with a `name` and an `image`",
        );
    }

    check_containers(c, &spec, pod, &volume_names, &container_names);
}

/// The pod's metadata (name, namespace, labels, annotations), hostname and runtime class.
fn check_metadata(c: &mut Checker<'_>, pod: &Pod) {
    let meta = FieldPath::root().key("metadata");
    check_pod_name(c, &meta.key("name"), &pod.metadata.name);
    if let Err(problem) = dns_label(&pod.metadata.namespace) {
        c.fail(
            &meta.key("namespace"),
            format!("{problem}; a namespace is a DNS label, e.g. \"default\""),
        );
    }
    for (key, value) in &pod.metadata.labels {
        let p = meta.key("labels").key(key);
        if let Err(problem) = qualified_name(key) {
            c.fail(&p, format!("label key {key:?} {problem}"));
        } else if let Err(problem) = label_value(value) {
            c.fail(&p, format!("label value {value:?} {problem}"));
        }
    }
    for key in pod.metadata.annotations.keys() {
        if let Err(problem) = qualified_name(key) {
            c.fail(
                &meta.key("annotations").key(key),
                format!("annotation key {key:?} {problem}"),
            );
        }
    }

    let spec = FieldPath::root().key("spec");
    if let Some(hostname) = &pod.spec.hostname {
        if let Err(problem) = dns_label(hostname) {
            c.fail(
                &spec.key("hostname"),
                format!("{problem}; a hostname is a DNS label, e.g. {:?}", suggest(hostname)),
            );
        }
    }

    if let Some(class) = &pod.spec.runtime_class_name {
        if let Err(problem) = dns_label(class) {
            c.fail(
                &spec.key("runtimeClassName"),
                format!(
                    "{problem}; a runtime class names a handler of the host's runtime config, e.g. {:?}",
                    suggest(class)
                ),
            );
        }
    }
}

/// Every container: its own checks, its restart policy, the downward API of its env, its name
/// unique in the pod, and its ports against the others' ([`Ports`]).
fn check_containers(
    c: &mut Checker<'_>,
    spec: &FieldPath,
    pod: &Pod,
    volume_names: &HashMap<&str, FieldPath>,
    container_names: &[&str],
) {
    let lists = [
        ("initContainers", &pod.spec.init_containers),
        ("containers", &pod.spec.containers),
    ];
    let mut names: HashMap<&str, FieldPath> = HashMap::new();
    let mut ports = Ports::default();
    for (list, containers) in lists {
        for (i, container) in containers.iter().enumerate() {
            let cp = spec.key(list).idx(i);
            check_container(c, &cp, container, volume_names);
            check_restart_policy(c, &cp, list, container);
            for (j, var) in container.env.iter().enumerate() {
                let Some(from) = &var.value_from else { continue };
                if from.field_ref.is_some() || from.resource_field_ref.is_some() {
                    check_downward_source(
                        c,
                        &cp.key("env").idx(j).key("valueFrom"),
                        from.field_ref.as_ref(),
                        from.resource_field_ref.as_ref(),
                        false,
                        container_names,
                    );
                }
            }
            if let Some(first) = names.get(container.name.as_str()) {
                if !container.name.is_empty() {
                    c.fail(
                        &cp.key("name"),
                        format!(
                            "duplicate container name {:?} (also used at {first}); names must be \
                             unique across containers and initContainers",
                            container.name
                        ),
                    );
                }
            } else {
                names.insert(&container.name, cp.key("name"));
            }
            ports.check(c, &cp, list, container);
        }
    }
}

/// The ports declared so far: containers of a pod share one network namespace, and host ports are
/// published for the pod as a whole, so both clash across containers.
#[derive(Default)]
struct Ports {
    host_ports: Vec<(u16, Protocol, Option<IpAddr>, FieldPath)>,
    container_ports: HashMap<(u16, Protocol), FieldPath>,
}

impl Ports {
    fn check(&mut self, c: &mut Checker<'_>, cp: &FieldPath, list: &str, container: &Container) {
        let (host_ports, container_ports) = (&mut self.host_ports, &mut self.container_ports);
        for (j, port) in container.ports.iter().enumerate() {
            let pp = cp.key("ports").idx(j);
            // Init containers have exited before app containers start, so only app
            // containers and sidecars can collide inside the shared network namespace.
            if (list == "containers" || container.is_sidecar()) && port.container_port != 0 {
                let key = (port.container_port, port.protocol);
                if let Some(first) = container_ports.get(&key) {
                    c.fail(
                        &pp.key("containerPort"),
                        format!(
                            "containerPort {}/{} is already declared at {first}; containers \
                             of a pod share one network namespace, so use another port",
                            port.container_port, port.protocol
                        ),
                    );
                } else {
                    container_ports.insert(key, pp.key("containerPort"));
                }
            }
            if let Some(hp) = port.host_port.filter(|&p| p != 0) {
                let ip = port.host_ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok());
                let clash = host_ports
                    .iter()
                    .find(|(p, proto, other_ip, _)| *p == hp && *proto == port.protocol && ips_overlap(*other_ip, ip));
                if let Some((_, _, _, first)) = clash {
                    c.fail(
                        &pp.key("hostPort"),
                        format!(
                            "hostPort {hp}/{} is already published at {first}; pick another \
                             hostPort or a different hostIP",
                            port.protocol
                        ),
                    );
                } else {
                    host_ports.push((hp, port.protocol, ip, pp.key("hostPort")));
                }
            }
        }
    }
}
