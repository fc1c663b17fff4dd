//! The downward API: what a pod may read of itself, as env values (`fieldRef`, `resourceFieldRef`)
//! and as files of `downwardAPI` volumes. Which fields exist, and their values from the pod and the
//! facts only the host knows (node name, host IP, the pod's IPs once CNI gave them).

use super::model::{Container, Pod, ResourceFieldSelector};
use super::quantity::{parse_quantity_bytes, parse_quantity_millicpu};

/// The fields an env variable may read, as Kubernetes allows them (`metadata.labels['k']` and
/// `metadata.annotations['k']` besides).
pub const ENV_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The fields a downwardAPI volume file may hold (and `metadata.labels['k']` and so on).
pub const VOLUME_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
];

pub const RESOURCES: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

/// What the pod's fields need beyond the manifest.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    pub uid: String,
    pub node_name: String,
    pub host_ip: String,
    /// None until CNI gave the pod its addresses.
    pub pod_ips: Option<Vec<String>>,
    /// The node's allocatable CPU (millicores) and memory (bytes): a limit that is not set reads
    /// as these, as in kubelet.
    pub node_cpu_millis: u64,
    pub node_memory_bytes: u64,
}

/// `metadata.labels['key']` → ("metadata.labels", "key").
fn subscript(path: &str) -> Option<(&str, &str)> {
    let (map, rest) = path.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    matches!(map, "metadata.labels" | "metadata.annotations").then_some((map, key))
}

/// Whether an env variable (`for_volume` false) or a volume file may read `path`; the error lists
/// what may be read.
pub fn check_field_path(path: &str, for_volume: bool) -> Result<(), String> {
    let fields = if for_volume { VOLUME_FIELDS } else { ENV_FIELDS };
    if fields.contains(&path) || subscript(path).is_some_and(|(_, key)| !key.is_empty()) {
        return Ok(());
    }
    Err(format!(
        "unsupported fieldPath {path:?}; {} reads one of {}, metadata.labels['KEY'] or metadata.annotations['KEY']",
        if for_volume {
            "a downwardAPI file"
        } else {
            "an env variable"
        },
        fields.join(", ")
    ))
}

/// Whether `resource` may be read with `divisor`, as the API server checks them.
pub fn check_resource(resource: &str, divisor: Option<&str>) -> Result<(), String> {
    if !RESOURCES.contains(&resource) {
        return Err(format!(
            "unsupported resource {resource:?}; a resourceFieldRef reads one of {}",
            RESOURCES.join(", ")
        ));
    }
    let Some(divisor) = divisor else { return Ok(()) };
    let ok = if resource.ends_with(".cpu") {
        matches!(divisor, "1" | "1m")
    } else {
        matches!(
            divisor,
            "1" | "1k" | "1M" | "1G" | "1T" | "1P" | "1E" | "1Ki" | "1Mi" | "1Gi" | "1Ti" | "1Pi" | "1Ei"
        )
    };
    if ok {
        Ok(())
    } else if resource.ends_with(".cpu") {
        Err(format!(
            "divisor {divisor:?} is not valid for {resource}; use 1 (cores) or 1m (millicores)"
        ))
    } else {
        Err(format!(
            "divisor {divisor:?} is not valid for {resource}; use 1, 1k, 1M, 1G, 1Ki, 1Mi, 1Gi (or up to 1E/1Ei)"
        ))
    }
}

/// Go's `%q` of a label or annotation value, as kubelet writes them into files.
fn quoted(value: &str) -> String {
    let mut out = String::from('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a (checked) field path; None when it is the pod's IP and that is not known yet.
pub fn field_value(pod: &Pod, facts: &PodFacts, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    if let Some((map, key)) = subscript(path) {
        let map = if map == "metadata.labels" {
            &meta.labels
        } else {
            &meta.annotations
        };
        return Some(map.get(key).cloned().unwrap_or_default());
    }
    let lines = |map: &std::collections::BTreeMap<String, String>| {
        map.iter()
            .map(|(k, v)| format!("{k}={}\n", quoted(v)))
            .collect::<String>()
    };
    Some(match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => facts.uid.clone(),
        "metadata.labels" => lines(&meta.labels),
        "metadata.annotations" => lines(&meta.annotations),
        "spec.nodeName" => facts.node_name.clone(),
        "spec.serviceAccountName" => pod
            .spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into()),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        "status.podIP" => facts.pod_ips.as_ref()?.first().cloned().unwrap_or_default(),
        "status.podIPs" => facts.pod_ips.as_ref()?.join(","),
        _ => String::new(),
    })
}

/// A container's limit or request divided by `divisor`, rounded up as kubelet does. A limit that is
/// not set is the node's allocatable amount; a request that is not set is its limit if set, else 0.
pub fn resource_value(container: &Container, selector: &ResourceFieldSelector, facts: &PodFacts) -> String {
    let r = &container.resources;
    let (kind, what) = selector.resource.split_once('.').unwrap_or(("limits", "cpu"));
    let limit = |name: &str| match name {
        "cpu" => r.cpu_limit_millis(),
        "memory" => r.memory_limit_bytes(),
        _ => r.limits.get(name).and_then(|q| parse_quantity_bytes(q)),
    };
    let node = |name: &str| match name {
        "cpu" => facts.node_cpu_millis,
        "memory" => facts.node_memory_bytes,
        _ => 0,
    };
    let value = match kind {
        "limits" => limit(what).unwrap_or_else(|| node(what)),
        _ => {
            let request = match what {
                "cpu" => r.cpu_request_millis(),
                "memory" => r.memory_request_bytes(),
                _ => r.requests.get(what).and_then(|q| parse_quantity_bytes(q)),
            };
            request.or_else(|| limit(what)).unwrap_or(0)
        }
    };
    let divisor = selector.divisor.as_deref().unwrap_or("1");
    let unit = if what == "cpu" {
        // Millicores: a divisor of 1 is 1000m.
        parse_quantity_millicpu(divisor).unwrap_or(1000).max(1)
    } else {
        parse_quantity_bytes(divisor).unwrap_or(1).max(1)
    };
    value.div_ceil(unit).to_string()
}

/// The container reads the pod's IP: its env is final only once CNI has run.
pub fn needs_pod_ip(container: &Container) -> bool {
    container.env.iter().any(|var| {
        var.value_from
            .as_ref()
            .and_then(|from| from.field_ref.as_ref())
            .is_some_and(|f| f.field_path.starts_with("status.podIP"))
    })
}

/// Fills in every downward-API variable of `container` whose value is known from `facts`; one
/// that reads the pod IP before it is known is kept as it is.
pub fn fill_env(pod: &Pod, container: &mut Container, facts: &PodFacts) {
    let own = container.clone();
    for var in &mut container.env {
        let Some(from) = &var.value_from else { continue };
        let value = if let Some(field) = &from.field_ref {
            field_value(pod, facts, &field.field_path)
        } else if let Some(selector) = &from.resource_field_ref {
            let target = match selector.container_name.as_str() {
                "" => Some(&own),
                name => pod.container(name),
            };
            Some(target.map_or_else(String::new, |c| resource_value(c, selector, facts)))
        } else {
            continue;
        };
        if let Some(value) = value {
            var.value = value;
            var.value_from = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EnvVar, EnvVarSource, ObjectFieldSelector};

    fn facts() -> PodFacts {
        PodFacts {
            uid: "u-1".into(),
            node_name: "vm".into(),
            host_ip: "192.0.2.7".into(),
            pod_ips: None,
            node_cpu_millis: 2000,
            node_memory_bytes: 8 << 30,
        }
    }

    fn env_field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: String::new(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: String::new(),
                    field_path: path.into(),
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn fields_and_resources_read_as_kubelet_gives_them() {
        let mut pod = Pod::default();
        pod.metadata.name = "web".into();
        pod.metadata.labels.insert("app".into(), "web".into());
        pod.metadata.labels.insert("tier".into(), "say \"hi\"".into());
        let f = facts();
        assert_eq!(field_value(&pod, &f, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(
            field_value(&pod, &f, "metadata.labels").unwrap(),
            "app=\"web\"\ntier=\"say \\\"hi\\\"\"\n"
        );
        assert_eq!(field_value(&pod, &f, "spec.serviceAccountName").unwrap(), "default");
        assert_eq!(field_value(&pod, &f, "status.podIP"), None, "not known before CNI");
        let mut container = Container::default();
        container.resources.limits.insert("memory".into(), "64Mi".into());
        container.resources.requests.insert("cpu".into(), "250m".into());
        let sel = |resource: &str, divisor: Option<&str>| ResourceFieldSelector {
            container_name: String::new(),
            resource: resource.into(),
            divisor: divisor.map(str::to_string),
        };
        assert_eq!(resource_value(&container, &sel("limits.memory", None), &f), "67108864");
        assert_eq!(resource_value(&container, &sel("limits.memory", Some("1Mi")), &f), "64");
        assert_eq!(
            resource_value(&container, &sel("requests.cpu", None), &f),
            "1",
            "rounded up"
        );
        assert_eq!(resource_value(&container, &sel("requests.cpu", Some("1m")), &f), "250");
        assert_eq!(
            resource_value(&container, &sel("limits.cpu", None), &f),
            "2",
            "the node's"
        );
        assert_eq!(
            resource_value(&container, &sel("requests.memory", None), &f),
            "67108864"
        );

        container.env = vec![env_field("NAME", "metadata.name"), env_field("IP", "status.podIP")];
        assert!(needs_pod_ip(&container));
        fill_env(&pod, &mut container, &f);
        assert_eq!(container.env[0].value, "web");
        assert!(container.env[1].value_from.is_some(), "kept until the IP is known");
        let known = PodFacts {
            pod_ips: Some(vec!["10.89.0.5".into()]),
            ..f
        };
        fill_env(&pod, &mut container, &known);
        assert_eq!(container.env[1].value, "10.89.0.5");
        assert!(!needs_pod_ip(&container));
    }

    #[test]
    fn paths_resources_and_divisors_are_checked() {
        assert!(check_field_path("status.podIP", false).is_ok());
        assert!(check_field_path("metadata.annotations['a/b']", true).is_ok());
        assert!(check_field_path("metadata.labels", false).is_err());
        assert!(check_field_path("status.podIP", true).is_err());
        let e = check_field_path("metadata.nmae", false).unwrap_err();
        assert!(e.contains("metadata.name"), "{e}");
        assert!(check_resource("limits.gpu", None).is_err());
        assert!(check_resource("limits.cpu", Some("1Mi")).is_err());
        assert!(check_resource("limits.memory", Some("1Mi")).is_ok());
    }
}
