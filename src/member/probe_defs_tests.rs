//! How a container's probes reach the agent ([`super::probe_defs`]): here, not with the manifest
//! tests, because the Pod model's crate sees nothing of podctl (member, agent).

#[test]
fn probe_schemes_headers_and_grpc_ports_become_probe_defs() {
    let parsed = crate::manifest::parse_pod(
        &[
            "apiVersion: v1",
            "kind: Pod",
            "metadata:",
            "  name: web",
            "spec:",
            "  containers:",
            "  - name: app",
            "    image: nginx",
            "    readinessProbe: {httpGet: {port: 8443, scheme: HTTPS, httpHeaders: [{name: X-A, value: b}]}}",
            "    livenessProbe: {grpc: {port: 9000, service: ready}}",
        ]
        .join("\n"),
    )
    .unwrap();
    assert!(parsed.warnings.is_empty(), "nothing is ignored: {:?}", parsed.warnings);
    let defs = crate::member::probe_defs(&parsed.pod.spec.containers[0]);
    assert!(defs.iter().any(|d| matches!(&d.action,
        crate::agent::protocol::ProbeAction::Http { https: true, headers, .. } if headers == &[("X-A".to_string(), "b".to_string())])));
    assert!(defs.iter().any(|d| matches!(&d.action,
        crate::agent::protocol::ProbeAction::Grpc { port: 9000, service } if service == "ready")));
}
