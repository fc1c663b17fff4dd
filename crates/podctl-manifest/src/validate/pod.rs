//! Checks of the pod-level fields: host namespaces, DNS, /etc/hosts entries, sysctls, seccomp,
//! the active deadline, the pod's name and the restart policies of its containers.

use super::*;

/// The pod-level fields: host namespaces, DNS, /etc/hosts entries, the active deadline.
pub(super) fn check_pod_level(c: &mut Checker<'_>, spec: &FieldPath, pod: &Pod) {
    if pod.spec.host_network {
        check_host_network_ports(c, spec, pod);
    }
    check_dns(c, spec, pod);
    check_host_names(c, spec, pod);
    check_security(c, spec, pod);
    if pod.spec.active_deadline_seconds == Some(0) {
        c.fail(
            &spec.key("activeDeadlineSeconds"),
            "activeDeadlineSeconds must be at least 1; leave it out for no deadline",
        );
    }
}

/// As the API server: in the host's network, a container's port is the host's.
fn check_host_network_ports(c: &mut Checker<'_>, spec: &FieldPath, pod: &Pod) {
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

/// dnsPolicy and dnsConfig, within resolv.conf's limits.
fn check_dns(c: &mut Checker<'_>, spec: &FieldPath, pod: &Pod) {
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
}

/// hostAliases and the subdomain: names that end up in /etc/hosts.
fn check_host_names(c: &mut Checker<'_>, spec: &FieldPath, pod: &Pod) {
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
}

/// The pod's sysctls (namespaced ones, not the host's) and every seccomp profile.
fn check_security(c: &mut Checker<'_>, spec: &FieldPath, pod: &Pod) {
    if let Some(security) = &pod.spec.security_context {
        let sp = spec.key("securityContext");
        for (i, sysctl) in security.sysctls.iter().enumerate() {
            let name = crate::sysctl_dotted(&sysctl.name);
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
}

pub(super) fn check_seccomp(c: &mut Checker<'_>, at: &FieldPath, profile: Option<&crate::SeccompProfile>) {
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
                crate::SECCOMP_LOCALHOST_DIR
            ),
        ),
        ("Localhost", Some(path)) => {
            if path.starts_with('/') || path.split('/').any(|p| p == "..") || path.is_empty() {
                c.fail(
                    &at.key("localhostProfile"),
                    format!(
                        "{path:?} must be a relative path under {} without `..`",
                        crate::SECCOMP_LOCALHOST_DIR
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
pub(super) fn check_restart_policy(c: &mut Checker<'_>, cp: &FieldPath, list: &str, container: &Container) {
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
pub(super) fn ips_overlap(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b || a.is_unspecified() || b.is_unspecified(),
        _ => true,
    }
}

pub(super) fn check_pod_name(c: &mut Checker<'_>, path: &FieldPath, name: &str) {
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
