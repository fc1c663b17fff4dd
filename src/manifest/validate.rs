//! Semantic checks on a deserialized Pod: Kubernetes' own rules for the fields podctl supports,
//! plus the limits podctl adds (a pod name is also a hostname and part of container ids).
//!
//! Every check runs and the error nearest the top of the file is reported, so the user fixes
//! problems in reading order whatever order the checks run in.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde_json::Value;

use super::model::{Container, Pod, Protocol, VolumeSource};
use super::path::{FieldPath, LineMap};
use super::quantity::{parse_quantity_bytes, parse_quantity_millicpu};
use super::yaml::lookup;
use super::ManifestError;

/// Kubernetes volume types podctl cannot run, named so the error can say which one was seen.
const OTHER_VOLUME_TYPES: &[&str] = &[
    "persistentVolumeClaim",
    "nfs",
    "csi",
    "ephemeral",
    "image",
    "gitRepo",
    "iscsi",
    "rbd",
    "cephfs",
    "glusterfs",
    "awsElasticBlockStore",
    "gcePersistentDisk",
    "azureDisk",
    "azureFile",
    "fc",
    "flexVolume",
    "flocker",
    "cinder",
    "vsphereVolume",
    "quobyte",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

const HOST_PATH_TYPES: &[&str] = &[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

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
                "podctl runs kind: Pod (and keeps kind: RuntimeClass), got {}; take the pod template of a {} \
                 out into a `kind: Pod` manifest",
                show(other),
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
                    "hostPath" | "emptyDir" | "configMap" | "secret" | "projected" | "downwardAPI" => {
                        sources.push(key.as_str())
                    }
                    other if OTHER_VOLUME_TYPES.contains(&other) => c.fail(
                        &vp.key(other),
                        format!(
                            "{other} volumes are not supported: podctl supports hostPath, emptyDir, \
                             configMap, secret, downwardAPI and projected volumes; put the files in a host \
                             directory and mount it with hostPath"
                        ),
                    ),
                    other => c.fail(
                        &vp.key(other),
                        format!(
                            "unknown volume field {other:?}: podctl supports hostPath, emptyDir, \
                             configMap, secret and projected volumes; a volume is `name` plus \
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

    check_pod_level(c, &spec, pod);
    let container_names: Vec<&str> = pod.all_containers().map(|c| c.name.as_str()).collect();
    let mut volume_names: HashMap<&str, FieldPath> = HashMap::new();
    for (i, secret) in pod.spec.image_pull_secrets.iter().enumerate() {
        check_object_name(c, &spec.key("imagePullSecrets").idx(i).key("name"), &secret.name);
    }
    for (i, volume) in pod.spec.volumes.iter().enumerate() {
        let vp = spec.key("volumes").idx(i);
        if let Err(problem) = dns_label(&volume.name) {
            c.fail(
                &vp.key("name"),
                format!(
                    "{problem}; a volume name is a DNS label, e.g. {:?}",
                    suggest(&volume.name)
                ),
            );
        }
        if let Some(first) = volume_names.get(volume.name.as_str()) {
            c.fail(
                &vp.key("name"),
                format!(
                    "duplicate volume name {:?} (also used at {first}); give each volume its own name",
                    volume.name
                ),
            );
        } else {
            volume_names.insert(&volume.name, vp.key("name"));
        }
        match &volume.source {
            VolumeSource::HostPath { path, type_ } => {
                let hp = vp.key("hostPath");
                if !path.starts_with('/') {
                    c.fail(
                        &hp.key("path"),
                        format!("hostPath.path {path:?} is not absolute; use a full path such as \"/srv/data\""),
                    );
                }
                if let Some(t) = type_ {
                    if !HOST_PATH_TYPES.contains(&t.as_str()) {
                        c.fail(
                            &hp.key("type"),
                            format!(
                                "unknown hostPath type {t:?}; use one of {} (or leave it out)",
                                HOST_PATH_TYPES[1..].join(", ")
                            ),
                        );
                    }
                }
            }
            VolumeSource::EmptyDir { medium, size_limit } => {
                let ep = vp.key("emptyDir");
                if let Some(m) = medium {
                    if !(m.is_empty() || m == "Memory") {
                        c.fail(
                            &ep.key("medium"),
                            format!(
                                "unsupported emptyDir medium {m:?}; use \"Memory\" for tmpfs or leave it out for disk"
                            ),
                        );
                    }
                }
                if let Some(q) = size_limit {
                    if parse_quantity_bytes(q).is_none() {
                        c.fail(
                            &ep.key("sizeLimit"),
                            format!("{q:?} is not a size; write a quantity such as \"64Mi\" or \"1Gi\""),
                        );
                    }
                }
            }
            VolumeSource::Objects {
                sources,
                downward,
                default_mode,
                form,
            } => check_object_volume(c, &vp, sources, downward, *default_mode, *form, &container_names),
        }
    }

    if pod.spec.containers.is_empty() {
        c.fail(
            &spec.key("containers"),
            "a pod needs at least one container; add `containers:` with a `name` and an `image`",
        );
    }

    let lists = [
        ("initContainers", &pod.spec.init_containers),
        ("containers", &pod.spec.containers),
    ];
    let mut names: HashMap<&str, FieldPath> = HashMap::new();
    // Host ports are published for the pod as a whole, so they clash across every container.
    let mut host_ports: Vec<(u16, Protocol, Option<IpAddr>, FieldPath)> = Vec::new();
    let mut container_ports: HashMap<(u16, Protocol), FieldPath> = HashMap::new();
    for (list, containers) in lists {
        for (i, container) in containers.iter().enumerate() {
            let cp = spec.key(list).idx(i);
            check_container(c, &cp, container, &volume_names);
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
                        &container_names,
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
                    let clash = host_ports.iter().find(|(p, proto, other_ip, _)| {
                        *p == hp && *proto == port.protocol && ips_overlap(*other_ip, ip)
                    });
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
}

/// The pod-level fields: host namespaces, DNS, /etc/hosts entries, the active deadline.
fn check_pod_level(c: &mut Checker<'_>, spec: &FieldPath, pod: &Pod) {
    if pod.spec.host_network {
        // As the API server: in the host's network, a container's port is the host's.
        for (list, containers) in [
            ("initContainers", &pod.spec.init_containers),
            ("containers", &pod.spec.containers),
        ] {
            for (i, container) in containers.iter().enumerate() {
                for (j, port) in container.ports.iter().enumerate() {
                    if port.host_port.is_some_and(|hp| hp != port.container_port) {
                        c.fail(
                            &spec.key(list).idx(i).key("ports").idx(j).key("hostPort"),
                            format!(
                                "hostPort must match containerPort {} when hostNetwork is true; remove hostPort",
                                port.container_port
                            ),
                        );
                    }
                }
            }
        }
    }
    if let Some(policy) = &pod.spec.dns_policy {
        if !matches!(
            policy.as_str(),
            "ClusterFirst" | "ClusterFirstWithHostNet" | "Default" | "None"
        ) {
            c.fail(
                &spec.key("dnsPolicy"),
                format!("{policy:?} is not a DNS policy; write ClusterFirst, ClusterFirstWithHostNet, Default or None"),
            );
        }
        let nameservers = pod.spec.dns_config.as_ref().map_or(0, |d| d.nameservers.len());
        if policy == "None" && nameservers == 0 {
            c.fail(
                &spec.key("dnsConfig").key("nameservers"),
                "dnsPolicy None needs at least one nameserver; add `dnsConfig: {nameservers: [192.0.2.53]}`",
            );
        }
    }
    if let Some(config) = &pod.spec.dns_config {
        let dp = spec.key("dnsConfig");
        if config.nameservers.len() > 3 {
            c.fail(
                &dp.key("nameservers"),
                format!(
                    "{} nameservers given; resolv.conf takes at most 3",
                    config.nameservers.len()
                ),
            );
        }
        for (i, server) in config.nameservers.iter().enumerate() {
            if server.parse::<IpAddr>().is_err() {
                c.fail(
                    &dp.key("nameservers").idx(i),
                    format!("{server:?} is not an IP address; name a nameserver by its address, e.g. 192.0.2.53"),
                );
            }
        }
        if config.searches.len() > 32 {
            c.fail(
                &dp.key("searches"),
                format!("{} search domains given; at most 32 are allowed", config.searches.len()),
            );
        }
        for (i, option) in config.options.iter().enumerate() {
            if option.name.is_empty() {
                c.fail(
                    &dp.key("options").idx(i).key("name"),
                    "an option needs a name, e.g. `{name: ndots, value: \"2\"}`",
                );
            }
        }
    }
    for (i, alias) in pod.spec.host_aliases.iter().enumerate() {
        let ap = spec.key("hostAliases").idx(i);
        if alias.ip.parse::<IpAddr>().is_err() {
            c.fail(
                &ap.key("ip"),
                format!("{:?} is not an IP address; write e.g. 10.0.0.5", alias.ip),
            );
        }
        if alias.hostnames.is_empty() {
            c.fail(
                &ap.key("hostnames"),
                "hostnames is empty; list the names that resolve to this ip",
            );
        }
        for (j, name) in alias.hostnames.iter().enumerate() {
            if let Err(problem) = dns_subdomain(name) {
                c.fail(
                    &ap.key("hostnames").idx(j),
                    format!("{problem}; a hostname is a DNS name such as db.local"),
                );
            }
        }
    }
    if let Some(subdomain) = &pod.spec.subdomain {
        if let Err(problem) = dns_label(subdomain) {
            c.fail(
                &spec.key("subdomain"),
                format!("{problem}; a subdomain is a DNS label, e.g. {:?}", suggest(subdomain)),
            );
        }
    }
    if let Some(security) = &pod.spec.security_context {
        let sp = spec.key("securityContext");
        for (i, sysctl) in security.sysctls.iter().enumerate() {
            let name = super::sysctl_dotted(&sysctl.name);
            let ipc = name.starts_with("kernel.shm")
                || name.starts_with("kernel.msg")
                || name == "kernel.sem"
                || name.starts_with("fs.mqueue.");
            let net = name.starts_with("net.");
            let well_formed = !name.is_empty()
                && name.split('.').all(|part| {
                    !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || "_-/".contains(c))
                });
            let np = sp.key("sysctls").idx(i).key("name");
            if !well_formed || !(ipc || net) {
                c.fail(
                    &np,
                    format!(
                        "{:?} is not a namespaced sysctl; a pod may set kernel.shm*, kernel.msg*, kernel.sem, \
                         fs.mqueue.* and net.* (the others are the host's)",
                        sysctl.name
                    ),
                );
            } else if net && pod.spec.host_network {
                c.fail(
                    &np,
                    format!(
                        "{:?} would change the host's network (hostNetwork: true); drop one of them",
                        sysctl.name
                    ),
                );
            } else if ipc && pod.spec.host_ipc {
                c.fail(
                    &np,
                    format!(
                        "{:?} would change the host's IPC namespace (hostIPC: true); drop one of them",
                        sysctl.name
                    ),
                );
            }
        }
        check_seccomp(c, &sp.key("seccompProfile"), security.seccomp_profile.as_ref());
    }
    for (list, containers) in [
        ("initContainers", &pod.spec.init_containers),
        ("containers", &pod.spec.containers),
    ] {
        for (i, container) in containers.iter().enumerate() {
            let profile = container
                .security_context
                .as_ref()
                .and_then(|s| s.seccomp_profile.as_ref());
            check_seccomp(
                c,
                &spec.key(list).idx(i).key("securityContext").key("seccompProfile"),
                profile,
            );
        }
    }
    if pod.spec.active_deadline_seconds == Some(0) {
        c.fail(
            &spec.key("activeDeadlineSeconds"),
            "activeDeadlineSeconds must be at least 1; leave it out for no deadline",
        );
    }
}

fn check_seccomp(c: &mut Checker<'_>, at: &FieldPath, profile: Option<&crate::manifest::SeccompProfile>) {
    let Some(profile) = profile else { return };
    let localhost = profile.localhost_profile.as_deref();
    match (profile.type_.as_str(), localhost) {
        ("RuntimeDefault" | "Unconfined", None) => {}
        ("RuntimeDefault" | "Unconfined", Some(_)) => c.fail(
            &at.key("localhostProfile"),
            "localhostProfile goes only with type Localhost; remove it",
        ),
        ("Localhost", None) => c.fail(
            &at.key("localhostProfile"),
            format!(
                "type Localhost needs localhostProfile, a file under {}; e.g. `localhostProfile: profiles/audit.json`",
                super::SECCOMP_LOCALHOST_DIR
            ),
        ),
        ("Localhost", Some(path)) => {
            if path.starts_with('/') || path.split('/').any(|p| p == "..") || path.is_empty() {
                c.fail(
                    &at.key("localhostProfile"),
                    format!(
                        "{path:?} must be a relative path under {} without `..`",
                        super::SECCOMP_LOCALHOST_DIR
                    ),
                );
            }
        }
        (other, _) => c.fail(
            &at.key("type"),
            format!("{other:?} is not a seccomp profile type; write RuntimeDefault, Unconfined or Localhost"),
        ),
    }
}

/// A container's own `restartPolicy` exists for init containers only, and only as `Always` (a
/// native sidecar); an init container that runs to completion takes no probes, as in Kubernetes.
fn check_restart_policy(c: &mut Checker<'_>, cp: &FieldPath, list: &str, container: &Container) {
    let rp = cp.key("restartPolicy");
    match (list, container.restart_policy.as_deref()) {
        (_, None) | ("initContainers", Some("Always")) => {}
        ("initContainers", Some(other)) => c.fail(
            &rp,
            format!(
                "an init container's restartPolicy can only be \"Always\" (a sidecar that keeps running), \
                 got {other:?}; remove it for an init container that runs to completion"
            ),
        ),
        (_, Some(_)) => c.fail(
            &rp,
            "restartPolicy is not allowed on an app container: the pod's spec.restartPolicy applies; \
             move the container to initContainers with restartPolicy: Always to make it a sidecar",
        ),
    }
    if list == "initContainers" && !container.is_sidecar() {
        for (field, set) in [
            ("livenessProbe", container.liveness_probe.is_some()),
            ("readinessProbe", container.readiness_probe.is_some()),
            ("startupProbe", container.startup_probe.is_some()),
            ("lifecycle", container.lifecycle.is_some()),
        ] {
            if set {
                c.fail(
                    &cp.key(field),
                    format!(
                        "{field} may not be set for an init container that runs to completion; \
                         remove it, or add restartPolicy: Always to make the container a sidecar"
                    ),
                );
            }
        }
    }
}

/// 0.0.0.0 / :: (or no hostIP) binds every address, so it clashes with any specific one.
fn ips_overlap(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b || a.is_unspecified() || b.is_unspecified(),
        _ => true,
    }
}

fn check_pod_name(c: &mut Checker<'_>, path: &FieldPath, name: &str) {
    if name.is_empty() {
        c.fail(path, "metadata.name is required; add `name: my-pod` under metadata");
        return;
    }
    if let Err(problem) = dns_subdomain(name) {
        c.fail(
            path,
            format!("{problem}; a pod name is a DNS subdomain, e.g. {:?}", suggest(name)),
        );
    } else if name.len() > 63 {
        c.fail(
            path,
            format!(
                "the name is {} characters long; podctl uses the pod name as its hostname and in container \
                 ids, so keep it at most 63 characters",
                name.len()
            ),
        );
    }
}

fn check_container(c: &mut Checker<'_>, cp: &FieldPath, container: &Container, volumes: &HashMap<&str, FieldPath>) {
    if container.name.is_empty() {
        c.fail(&cp.key("name"), "container name is required; add `name: app`");
    } else if let Err(problem) = dns_label(&container.name) {
        c.fail(
            &cp.key("name"),
            format!(
                "{problem}; a container name is a DNS label, e.g. {:?}",
                suggest(&container.name)
            ),
        );
    }
    if container.image.trim().is_empty() {
        c.fail(
            &cp.key("image"),
            "image is required; add e.g. `image: docker.io/library/busybox:latest`",
        );
    } else if container.image.chars().any(char::is_whitespace) {
        c.fail(
            &cp.key("image"),
            format!("image {:?} contains whitespace; remove it", container.image),
        );
    }
    if let Some(dir) = &container.working_dir {
        if !dir.starts_with('/') {
            c.fail(
                &cp.key("workingDir"),
                format!("workingDir {dir:?} is not absolute; use a full path such as \"/app\""),
            );
        }
    }
    for (i, env) in container.env.iter().enumerate() {
        let ep = cp.key("env").idx(i);
        let np = ep.key("name");
        if env.name.is_empty() {
            c.fail(&np, "env name is required; add `name: VAR`");
        } else if env.name.contains('=') {
            c.fail(
                &np,
                format!(
                    "env name {:?} contains '='; put the name in `name` and the rest in `value`",
                    env.name
                ),
            );
        }
        if let Some(from) = &env.value_from {
            let fp = ep.key("valueFrom");
            if !env.value.is_empty() {
                c.fail(
                    &ep.key("value"),
                    "value and valueFrom exclude each other; keep one of them",
                );
            }
            let given = [
                from.config_map_key_ref.is_some(),
                from.secret_key_ref.is_some(),
                from.field_ref.is_some(),
                from.resource_field_ref.is_some(),
            ];
            match given.iter().filter(|g| **g).count() {
                0 => c.fail(
                    &fp,
                    "valueFrom needs a source; give one of configMapKeyRef, secretKeyRef, fieldRef or resourceFieldRef",
                ),
                1 => {}
                _ => c.fail(
                    &fp,
                    "valueFrom takes one source; keep one of configMapKeyRef, secretKeyRef, fieldRef and resourceFieldRef",
                ),
            }
            if let Some(r) = &from.config_map_key_ref {
                check_key_ref(c, &fp.key("configMapKeyRef"), r);
            }
            if let Some(r) = &from.secret_key_ref {
                check_key_ref(c, &fp.key("secretKeyRef"), r);
            }
            // fieldRef and resourceFieldRef are checked with the pod's container names (`validate`).
        }
    }
    if let Some(security) = &container.security_context {
        let sp = cp.key("securityContext");
        if security.privileged == Some(true) && security.allow_privilege_escalation == Some(false) {
            c.fail(
                &sp.key("allowPrivilegeEscalation"),
                "cannot set allowPrivilegeEscalation to false and privileged to true; drop one of them",
            );
        }
        for (list, names) in security
            .capabilities
            .iter()
            .flat_map(|caps| [("add", &caps.add), ("drop", &caps.drop)])
        {
            for (j, name) in names.iter().enumerate() {
                let upper = name.to_ascii_uppercase();
                let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
                if bare != "ALL" && !crate::manifest::ALL_CAPABILITIES.contains(&bare) {
                    c.fail(
                        &sp.key("capabilities").key(list).idx(j),
                        format!("unknown capability {name:?}; use a name such as NET_ADMIN (or CAP_NET_ADMIN), or ALL"),
                    );
                }
            }
        }
    }
    for (i, from) in container.env_from.iter().enumerate() {
        let fp = cp.key("envFrom").idx(i);
        let reference = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), None) => Some((fp.key("configMapRef"), r)),
            (None, Some(r)) => Some((fp.key("secretRef"), r)),
            (Some(_), Some(_)) => {
                c.fail(
                    &fp,
                    "an envFrom entry takes one source; keep either configMapRef or secretRef",
                );
                None
            }
            (None, None) => {
                c.fail(
                    &fp,
                    "an envFrom entry needs `configMapRef: {name: NAME}` or `secretRef: {name: NAME}`",
                );
                None
            }
        };
        if let Some((rp, r)) = reference {
            check_object_name(c, &rp.key("name"), &r.name);
        }
    }
    for (i, port) in container.ports.iter().enumerate() {
        let pp = cp.key("ports").idx(i);
        if port.container_port == 0 {
            c.fail(
                &pp.key("containerPort"),
                "containerPort must be 1-65535 and is required; set the port the process listens on",
            );
        }
        if port.host_port == Some(0) {
            c.fail(
                &pp.key("hostPort"),
                "hostPort must be 1-65535; leave hostPort out if the port should not be published",
            );
        }
        if let Some(ip) = &port.host_ip {
            if ip.parse::<IpAddr>().is_err() {
                c.fail(
                    &pp.key("hostIP"),
                    format!(
                        "hostIP {ip:?} is not an IP address; use e.g. \"127.0.0.1\" or leave it out for all addresses"
                    ),
                );
            }
        }
        if let Some(name) = &port.name {
            if let Err(problem) = port_name(name) {
                c.fail(&pp.key("name"), format!("port name {name:?} {problem}"));
            }
        }
    }
    let mut mount_paths: HashMap<&str, FieldPath> = HashMap::new();
    for (i, mount) in container.volume_mounts.iter().enumerate() {
        let mp = cp.key("volumeMounts").idx(i);
        if !volumes.contains_key(mount.name.as_str()) {
            let declared: Vec<&str> = {
                let mut v: Vec<&str> = volumes.keys().copied().collect();
                v.sort_unstable();
                v
            };
            let hint = if declared.is_empty() {
                "declare it under spec.volumes".to_string()
            } else {
                format!("declare it under spec.volumes or use one of: {}", declared.join(", "))
            };
            c.fail(
                &mp.key("name"),
                format!("volumeMount refers to undeclared volume {:?}; {hint}", mount.name),
            );
        }
        if !mount.mount_path.starts_with('/') {
            c.fail(
                &mp.key("mountPath"),
                format!(
                    "mountPath {:?} is not absolute; use a full path such as \"/data\"",
                    mount.mount_path
                ),
            );
        } else {
            let normalized = mount.mount_path.trim_end_matches('/');
            if let Some(first) = mount_paths.get(normalized) {
                c.fail(
                    &mp.key("mountPath"),
                    format!(
                        "mountPath {:?} is already used at {first}; mount each path once",
                        mount.mount_path
                    ),
                );
            } else {
                mount_paths.insert(normalized, mp.key("mountPath"));
            }
        }
        if let Some(sub) = &mount.sub_path {
            if sub.starts_with('/') || sub.split('/').any(|part| part == "..") {
                c.fail(
                    &mp.key("subPath"),
                    format!(
                        "subPath {sub:?} must stay inside the volume; use a relative path without '..', e.g. \"conf/app.conf\""
                    ),
                );
            }
        }
    }
    check_resources(
        c,
        &cp.key("resources"),
        &container.resources.limits,
        &container.resources.requests,
    );
    for (key, probe) in [
        ("livenessProbe", &container.liveness_probe),
        ("readinessProbe", &container.readiness_probe),
        ("startupProbe", &container.startup_probe),
    ] {
        if let Some(probe) = probe {
            check_probe(c, &cp.key(key), probe, container);
        }
    }
    if let Some(lifecycle) = &container.lifecycle {
        let lp = cp.key("lifecycle");
        for (key, hook) in [("postStart", &lifecycle.post_start), ("preStop", &lifecycle.pre_stop)] {
            if let Some(hook) = hook {
                check_hook(c, &lp.key(key), hook, container);
            }
        }
    }
    if let Some(policy) = &container.termination_message_policy {
        if !matches!(policy.as_str(), "File" | "FallbackToLogsOnError") {
            c.fail(
                &cp.key("terminationMessagePolicy"),
                format!("{policy:?} is not a termination message policy; write File or FallbackToLogsOnError"),
            );
        }
    }
    if let Some(path) = &container.termination_message_path {
        if !path.starts_with('/') {
            c.fail(
                &cp.key("terminationMessagePath"),
                format!("{path:?} is not absolute; write e.g. /dev/termination-log"),
            );
        }
    }
}

fn check_hook(c: &mut Checker<'_>, hp: &FieldPath, hook: &crate::manifest::LifecycleHandler, container: &Container) {
    let handlers = [
        hook.exec.is_some(),
        hook.http_get.is_some(),
        hook.tcp_socket.is_some(),
        hook.sleep.is_some(),
    ];
    if handlers.iter().filter(|h| **h).count() != 1 {
        c.fail(
            hp,
            "a lifecycle hook needs exactly one of exec, httpGet, tcpSocket or sleep; e.g. `exec: {command: [sh, -c, 'nginx -s quit']}`",
        );
        return;
    }
    check_action_port(
        c,
        hp,
        "hook",
        hook.http_get.as_ref(),
        hook.tcp_socket.as_ref(),
        container,
    );
    if hook.exec.as_ref().is_some_and(|e| e.command.is_empty()) {
        c.fail(
            &hp.key("exec").key("command"),
            "an exec hook needs a command, e.g. [sh, -c, 'echo started > /tmp/started']",
        );
    }
    if let Some(sleep) = &hook.sleep {
        if sleep.seconds < 0 {
            c.fail(
                &hp.key("sleep").key("seconds"),
                format!("{} is negative; sleep for 0 or more seconds", sleep.seconds),
            );
        }
    }
}

/// The port of a probe's or hook's httpGet or tcpSocket: a number or one of the container's ports.
fn check_action_port(
    c: &mut Checker<'_>,
    at: &FieldPath,
    what: &str,
    http: Option<&super::model::HttpGetAction>,
    tcp: Option<&super::model::TcpSocketAction>,
    container: &Container,
) {
    let port = http
        .map(|h| (&h.port, "httpGet"))
        .or(tcp.map(|t| (&t.port, "tcpSocket")));
    if let Some((port, kind)) = port {
        if port.resolve(container).is_none() {
            c.fail(
                &at.key(kind).key("port"),
                format!("{what} port {port:?} is neither 1-65535 nor the name of one of this container's ports"),
            );
        }
    }
    if let Some(http) = http {
        check_http_get(c, &at.key("httpGet"), http);
    }
}

/// Scheme and headers of an httpGet: what kubelet's API validation refuses.
fn check_http_get(c: &mut Checker<'_>, hp: &FieldPath, http: &super::model::HttpGetAction) {
    if let Some(scheme) = &http.scheme {
        if !matches!(scheme.as_str(), "HTTP" | "HTTPS") {
            c.fail(
                &hp.key("scheme"),
                format!("{scheme:?} is not a scheme; write HTTP or HTTPS"),
            );
        }
    }
    // RFC 9110 token characters: what Go's net/http (kubelet's client) would send.
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    for (i, header) in http.http_headers.iter().enumerate() {
        let at = hp.key("httpHeaders").idx(i);
        if header.name.is_empty() || !header.name.bytes().all(token) {
            c.fail(
                &at.key("name"),
                format!(
                    "{:?} is not an HTTP header name; use letters, digits and - (e.g. X-Probe)",
                    header.name
                ),
            );
        }
        if header.value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            c.fail(&at.key("value"), "a header value cannot hold a line break or NUL");
        }
    }
}

fn check_probe(c: &mut Checker<'_>, pp: &FieldPath, probe: &super::model::Probe, container: &Container) {
    let handlers = [
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
        probe.exec.is_some(),
        probe.grpc.is_some(),
    ];
    if handlers.iter().filter(|h| **h).count() != 1 {
        c.fail(pp, "a probe needs exactly one of httpGet, tcpSocket, exec or grpc");
        return;
    }
    if let Some(grpc) = &probe.grpc {
        if !(1..=65535).contains(&grpc.port) {
            c.fail(
                &pp.key("grpc").key("port"),
                format!("{} is not a port; a gRPC probe's port is a number 1-65535", grpc.port),
            );
        }
    }
    check_action_port(
        c,
        pp,
        "probe",
        probe.http_get.as_ref(),
        probe.tcp_socket.as_ref(),
        container,
    );
    if let Some(exec) = &probe.exec {
        if exec.command.is_empty() {
            c.fail(
                &pp.key("exec").key("command"),
                "exec probe needs a command, e.g. [cat, /tmp/healthy]",
            );
        }
    }
    if probe.period_seconds == 0
        || probe.timeout_seconds == 0
        || probe.failure_threshold == 0
        || probe.success_threshold == 0
    {
        c.fail(
            pp,
            "periodSeconds, timeoutSeconds, failureThreshold and successThreshold must be at least 1",
        );
    }
}

fn check_resources(
    c: &mut Checker<'_>,
    rp: &FieldPath,
    limits: &BTreeMap<String, String>,
    requests: &BTreeMap<String, String>,
) {
    for (section, map) in [("limits", limits), ("requests", requests)] {
        for (name, q) in map {
            let p = rp.key(section).key(name);
            match name.as_str() {
                "memory" if parse_quantity_bytes(q).is_none() => c.fail(
                    &p,
                    format!("{q:?} is not a memory quantity; write e.g. \"128Mi\" or \"1Gi\""),
                ),
                "cpu" if parse_quantity_millicpu(q).is_none() => {
                    c.fail(&p, format!("{q:?} is not a cpu quantity; write e.g. \"500m\" or \"1\""))
                }
                "memory" | "cpu" => {}
                _ => c.unsupported.push(p),
            }
        }
    }
    let pairs = [
        (
            "memory",
            limits.get("memory").and_then(|q| parse_quantity_bytes(q)),
            requests.get("memory").and_then(|q| parse_quantity_bytes(q)),
        ),
        (
            "cpu",
            limits.get("cpu").and_then(|q| parse_quantity_millicpu(q)),
            requests.get("cpu").and_then(|q| parse_quantity_millicpu(q)),
        ),
    ];
    for (name, limit, request) in pairs {
        if let (Some(limit), Some(request)) = (limit, request) {
            if request > limit {
                c.fail(
                    &rp.key("requests").key(name),
                    format!("{name} request is above its limit; lower the request or raise limits.{name}"),
                );
            }
        }
    }
}

/// Turns an invalid name into a plausible valid one for the error's example.
fn suggest(name: &str) -> String {
    let mut out = String::new();
    for ch in name.chars() {
        let ch = ch.to_ascii_lowercase();
        if ch.is_ascii_alphanumeric() {
            out.push(ch);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(63).collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    if trimmed.is_empty() {
        "my-name".to_string()
    } else {
        trimmed
    }
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub(crate) fn dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 63 {
        return Err(format!("{s:?} is {} characters long, the limit is 63", s.len()));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("{s:?} may only contain lowercase letters, digits and '-'"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(format!("{s:?} must start and end with a letter or digit"));
    }
    Ok(())
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 253 {
        return Err(format!("{s:?} is {} characters long, the limit is 253", s.len()));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(format!("{s:?} may only contain lowercase letters, digits, '-' and '.'"));
    }
    if s.split('.')
        .any(|part| part.is_empty() || part.starts_with('-') || part.ends_with('-'))
    {
        return Err(format!(
            "{s:?} must start and end with a letter or digit (also around each '.')"
        ));
    }
    Ok(())
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, the name part of label keys and label values.
fn label_name_chars(s: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && edge_ok(s.chars().next())
        && edge_ok(s.chars().last())
}

/// Label and annotation keys: `[prefix/]name`, prefix a DNS subdomain, name at most 63 characters.
fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if let Err(problem) = dns_subdomain(p) {
            return Err(format!(
                "has an invalid prefix: {problem}; the prefix is a DNS subdomain such as \"example.com\""
            ));
        }
    }
    if name.is_empty() || name.len() > 63 || !label_name_chars(name) {
        return Err(
            "is invalid; the name part must be 1-63 characters of letters, digits, '-', '_' and \
             '.', starting and ending with a letter or digit"
                .into(),
        );
    }
    Ok(())
}

fn label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63 || !label_name_chars(v) {
        return Err(
            "is invalid; use at most 63 characters of letters, digits, '-', '_' and '.', starting \
             and ending with a letter or digit (or an empty value); put longer text in an \
             annotation"
                .into(),
        );
    }
    Ok(())
}

/// IANA service name, as Kubernetes requires for port names.
fn port_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err("is invalid; use at most 15 lowercase letters, digits and single '-', with at least one letter, e.g. \"http\"".into())
    }
}

fn check_object_name(c: &mut Checker<'_>, path: &FieldPath, name: &str) {
    if name.is_empty() {
        c.fail(
            path,
            "the name of the ConfigMap or Secret is required; add `name: NAME`",
        );
    } else if let Err(problem) = dns_subdomain(name) {
        c.fail(
            path,
            format!("{problem}; ConfigMap and Secret names are DNS subdomains"),
        );
    }
}

/// The data keys the API server allows (they become file and variable names).
fn check_data_key(c: &mut Checker<'_>, path: &FieldPath, key: &str) {
    if key.is_empty() {
        c.fail(path, "key is required; name the key of the ConfigMap or Secret");
    } else if !key
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
    {
        c.fail(
            path,
            format!("{key:?} is not a valid key: keys have letters, digits, `-`, `_` and `.` only"),
        );
    }
}

fn check_key_ref(c: &mut Checker<'_>, path: &FieldPath, selector: &crate::manifest::KeySelector) {
    check_object_name(c, &path.key("name"), &selector.name);
    check_data_key(c, &path.key("key"), &selector.key);
}

fn check_mode(c: &mut Checker<'_>, path: &FieldPath, mode: Option<u32>) {
    if let Some(mode) = mode {
        if mode > 0o777 {
            c.fail(
                path,
                format!("{mode} is not a file mode; use 0 to 0777 (octal, e.g. 0644, or decimal 420)"),
            );
        }
    }
}

/// A file path inside a volume: relative, without `..`, each path written once.
fn check_volume_file_path(c: &mut Checker<'_>, at: &FieldPath, path: &str, paths: &mut HashMap<String, FieldPath>) {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.split('/').any(|part| part == ".." || part.is_empty())
        || path.starts_with("..");
    if bad {
        c.fail(
            at,
            format!(
                "{path:?} is not a relative path inside the volume; write e.g. `path: conf/app.properties` \
                 (no leading `/`, no `..`)"
            ),
        );
    } else if let Some(first) = paths.get(path) {
        c.fail(
            at,
            format!("path {path:?} is also written by {first}; give each file its own path"),
        );
    } else {
        paths.insert(path.to_string(), at.clone());
    }
}

/// One source of a downward-API value: a field, or a container's resource (`container_name`
/// required, as in volumes, when `in_volume`).
fn check_downward_source(
    c: &mut Checker<'_>,
    at: &FieldPath,
    field: Option<&crate::manifest::ObjectFieldSelector>,
    resource: Option<&crate::manifest::ResourceFieldSelector>,
    in_volume: bool,
    containers: &[&str],
) {
    use super::downward::{check_field_path, check_resource};
    match (field, resource) {
        (Some(f), None) => {
            if let Err(problem) = check_field_path(&f.field_path, in_volume) {
                c.fail(&at.key("fieldRef").key("fieldPath"), problem);
            }
            if !f.api_version.is_empty() && f.api_version != "v1" {
                c.fail(
                    &at.key("fieldRef").key("apiVersion"),
                    format!("apiVersion {:?} is not served; write v1 or leave it out", f.api_version),
                );
            }
        }
        (None, Some(r)) => {
            let rp = at.key("resourceFieldRef");
            if let Err(problem) = check_resource(&r.resource, r.divisor.as_deref()) {
                let key = if r.divisor.is_some() && super::downward::RESOURCES.contains(&r.resource.as_str()) {
                    "divisor"
                } else {
                    "resource"
                };
                c.fail(&rp.key(key), problem);
            }
            if r.container_name.is_empty() && in_volume {
                c.fail(
                    &rp.key("containerName"),
                    "containerName is required in a volume; name the container whose resources the file shows",
                );
            } else if !r.container_name.is_empty() && !containers.contains(&r.container_name.as_str()) {
                c.fail(
                    &rp.key("containerName"),
                    format!(
                        "the pod has no container {:?}; name one of {}",
                        r.container_name,
                        containers.join(", ")
                    ),
                );
            }
        }
        _ => c.fail(
            at,
            "give exactly one of fieldRef and resourceFieldRef; e.g. `fieldRef: {fieldPath: metadata.name}`",
        ),
    }
}

fn check_object_volume(
    c: &mut Checker<'_>,
    vp: &FieldPath,
    sources: &[(crate::manifest::ObjectKind, crate::manifest::ObjectFiles)],
    downward: &[crate::manifest::DownwardFile],
    default_mode: Option<u32>,
    form: crate::manifest::ObjectsForm,
    containers: &[&str],
) {
    use crate::manifest::{ObjectKind, ObjectsForm};
    let base = match form {
        ObjectsForm::ConfigMap => vp.key("configMap"),
        ObjectsForm::Secret => vp.key("secret"),
        ObjectsForm::Projected => vp.key("projected"),
        ObjectsForm::DownwardApi => vp.key("downwardAPI"),
    };
    check_mode(c, &base.key("defaultMode"), default_mode);
    let mut paths: HashMap<String, FieldPath> = HashMap::new();
    // A projected volume's downwardAPI source is taken to follow its configMap and secret ones.
    let downward_base = match form {
        ObjectsForm::Projected => base.key("sources").idx(sources.len()).key("downwardAPI"),
        _ => base.clone(),
    };
    for (j, file) in downward.iter().enumerate() {
        let ip = downward_base.key("items").idx(j);
        check_mode(c, &ip.key("mode"), file.mode);
        check_volume_file_path(c, &ip.key("path"), &file.path, &mut paths);
        check_downward_source(
            c,
            &ip,
            file.field_ref.as_ref(),
            file.resource_field_ref.as_ref(),
            true,
            containers,
        );
    }
    for (i, (kind, files)) in sources.iter().enumerate() {
        let sp = match (form, kind) {
            (ObjectsForm::Projected, ObjectKind::ConfigMap) => base.key("sources").idx(i).key("configMap"),
            (ObjectsForm::Projected, ObjectKind::Secret) => base.key("sources").idx(i).key("secret"),
            _ => base.clone(),
        };
        let name_key = if form == ObjectsForm::Secret {
            "secretName"
        } else {
            "name"
        };
        check_object_name(c, &sp.key(name_key), &files.name);
        for (j, item) in files.items.iter().enumerate() {
            let ip = sp.key("items").idx(j);
            check_data_key(c, &ip.key("key"), &item.key);
            check_mode(c, &ip.key("mode"), item.mode);
            check_volume_file_path(c, &ip.key("path"), &item.path, &mut paths);
        }
    }
}
