//! Checks of one container: name, image, ports, env, mounts, resources, probes, hooks.

use super::*;

pub(super) fn check_container(
    c: &mut Checker<'_>,
    cp: &FieldPath,
    container: &Container,
    volumes: &HashMap<&str, FieldPath>,
) {
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
    check_env(c, cp, container);
    check_security_context(c, cp, container);
    check_ports(c, cp, container);
    check_mounts(c, cp, container, volumes);
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

/// env (names, `$(VAR)` references, valueFrom) and envFrom.
fn check_env(c: &mut Checker<'_>, cp: &FieldPath, container: &Container) {
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
}

/// containerPort, hostPort, protocol and the port's name, within this container.
fn check_ports(c: &mut Checker<'_>, cp: &FieldPath, container: &Container) {
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
}

/// volumeMounts: a declared volume, an absolute path used once, a relative subPath.
fn check_mounts(c: &mut Checker<'_>, cp: &FieldPath, container: &Container, volumes: &HashMap<&str, FieldPath>) {
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
}

pub(super) fn check_hook(c: &mut Checker<'_>, hp: &FieldPath, hook: &crate::LifecycleHandler, container: &Container) {
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
pub(super) fn check_action_port(
    c: &mut Checker<'_>,
    at: &FieldPath,
    what: &str,
    http: Option<&crate::model::HttpGetAction>,
    tcp: Option<&crate::model::TcpSocketAction>,
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
pub(super) fn check_http_get(c: &mut Checker<'_>, hp: &FieldPath, http: &crate::model::HttpGetAction) {
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

pub(super) fn check_probe(c: &mut Checker<'_>, pp: &FieldPath, probe: &crate::model::Probe, container: &Container) {
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

pub(super) fn check_resources(
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

/// The container's securityContext: privilege settings that contradict, capability names.
fn check_security_context(c: &mut Checker<'_>, cp: &FieldPath, container: &Container) {
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
                if bare != "ALL" && !crate::ALL_CAPABILITIES.contains(&bare) {
                    c.fail(
                        &sp.key("capabilities").key(list).idx(j),
                        format!("unknown capability {name:?}; use a name such as NET_ADMIN (or CAP_NET_ADMIN), or ALL"),
                    );
                }
            }
        }
    }
}
