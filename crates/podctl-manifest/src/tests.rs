use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;

/// Joins lines so that `lines[i]` is line `i + 1` of the document.
fn doc(lines: &[&str]) -> String {
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

fn err(lines: &[&str]) -> ManifestError {
    match parse_pod(&doc(lines)) {
        Ok(p) => panic!("expected an error, parsed {:?}", p.pod),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_err(e: &ManifestError, path: &str, line: usize, needle: &str) {
    assert_eq!(e.path, path, "path of {e}");
    assert_eq!(e.line, Some(line), "line of {e}");
    assert!(e.message.contains(needle), "{e:?} should mention {needle:?}");
    assert!(e.message.contains("; "), "{e:?} should carry a fix");
}

/// A minimal valid pod; `extra` lines are appended under the first container (indent 4).
fn pod_with_container_lines(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "apiVersion: v1",
        "kind: Pod",
        "metadata:",
        "  name: web",
        "spec:",
        "  containers:",
        "  - name: app",
        "    image: nginx",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn err_owned(lines: Vec<String>) -> ManifestError {
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    err(&refs)
}

const FULL: &[&str] = &[
    "apiVersion: v1",                               // 1
    "kind: Pod",                                    // 2
    "metadata:",                                    // 3
    "  name: full-pod",                             // 4
    "  namespace: team-a",                          // 5
    "  labels:",                                    // 6
    "    app.kubernetes.io/name: web",              // 7
    "    tier: \"\"",                               // 8
    "  annotations:",                               // 9
    "    example.com/note: \"any text: ok\"",       // 10
    "spec:",                                        // 11
    "  hostname: box",                              // 12
    "  shareProcessNamespace: true",                // 13
    "  restartPolicy: OnFailure",                   // 14
    "  terminationGracePeriodSeconds: 5",           // 15
    "  initContainers:",                            // 16
    "  - name: init",                               // 17
    "    image: busybox:1.36",                      // 18
    "    command: [sh, -c, \"echo hi > /work/x\"]", // 19
    "    volumeMounts:",                            // 20
    "    - name: work",                             // 21
    "      mountPath: /work",                       // 22
    "  containers:",                                // 23
    "  - name: app",                                // 24
    "    image: docker.io/library/nginx:1.25",      // 25
    "    imagePullPolicy: IfNotPresent",            // 26
    "    command: [\"/docker-entrypoint.sh\"]",     // 27
    "    args:",                                    // 28
    "    - nginx",                                  // 29
    "    - |",                                      // 30
    "      multi",                                  // 31
    "      line",                                   // 32
    "    workingDir: /srv",                         // 33
    "    env:",                                     // 34
    "    - name: MODE",                             // 35
    "      value: \"8080\"",                        // 36
    "    - name: EMPTY",                            // 37
    "    - name: NULLED",                           // 38
    "      value:",                                 // 39
    "    ports:",                                   // 40
    "    - name: http",                             // 41
    "      containerPort: 80",                      // 42
    "      hostPort: 8080",                         // 43
    "      hostIP: 127.0.0.1",                      // 44
    "    - containerPort: 53",                      // 45
    "      protocol: UDP",                          // 46
    "    volumeMounts:",                            // 47
    "    - name: work",                             // 48
    "      mountPath: /work",                       // 49
    "      readOnly: true",                         // 50
    "    - name: host",                             // 51
    "      mountPath: /etc/app.conf",               // 52
    "      subPath: app.conf",                      // 53
    "    resources:",                               // 54
    "      limits:",                                // 55
    "        memory: 64Mi",                         // 56
    "        cpu: 0.5",                             // 57
    "      requests:",                              // 58
    "        memory: 32Mi",                         // 59
    "        cpu: 250m",                            // 60
    "  - name: sidecar",                            // 61
    "    image: busybox",                           // 62
    "    ports:",                                   // 63
    "    - containerPort: 9000",                    // 64
    "      protocol: SCTP",                         // 65
    "  volumes:",                                   // 66
    "  - name: work",                               // 67
    "    emptyDir: {}",                             // 68
    "  - name: host",                               // 69
    "    hostPath:",                                // 70
    "      path: /etc/app",                         // 71
    "      type: Directory",                        // 72
    "  - name: mem",                                // 73
    "    emptyDir:",                                // 74
    "      medium: Memory",                         // 75
    "      sizeLimit: 1Gi",                         // 76
];

fn full() -> ParsedPod {
    match parse_pod(&doc(FULL)) {
        Ok(p) => p,
        Err(e) => panic!("full pod should parse: {e}"),
    }
}

#[test]
fn full_pod_parses_every_field() {
    let parsed = full();
    assert_eq!(parsed.warnings, Vec::<String>::new());
    let pod = &parsed.pod;
    assert_eq!(pod.api_version, "v1");
    assert_eq!(pod.kind, "Pod");
    assert_eq!(pod.metadata.name, "full-pod");
    assert_eq!(pod.metadata.namespace, "team-a");
    assert_eq!(
        pod.metadata.labels,
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "web".to_string()),
            ("tier".to_string(), String::new()),
        ])
    );
    assert_eq!(pod.metadata.annotations["example.com/note"], "any text: ok");
    assert_eq!(pod.spec.hostname.as_deref(), Some("box"));
    assert!(pod.spec.share_process_namespace);
    assert_eq!(pod.spec.restart_policy, RestartPolicy::OnFailure);
    assert_eq!(pod.spec.termination_grace_period_seconds, 5);

    let init = &pod.spec.init_containers[0];
    assert_eq!(init.command, ["sh", "-c", "echo hi > /work/x"]);

    let app = &pod.spec.containers[0];
    assert_eq!(app.image, "docker.io/library/nginx:1.25");
    assert_eq!(app.image_pull_policy, Some(PullPolicy::IfNotPresent));
    assert_eq!(app.args, ["nginx", "multi\nline\n"]);
    assert_eq!(app.working_dir.as_deref(), Some("/srv"));
    assert_eq!(
        app.env,
        [
            EnvVar {
                name: "MODE".into(),
                value: "8080".into(),
                value_from: None,
            },
            EnvVar {
                name: "EMPTY".into(),
                value: String::new(),
                value_from: None,
            },
            EnvVar {
                name: "NULLED".into(),
                value: String::new(),
                value_from: None,
            },
        ]
    );
    assert_eq!(
        app.ports[0],
        ContainerPort {
            name: Some("http".into()),
            container_port: 80,
            host_port: Some(8080),
            host_ip: Some("127.0.0.1".into()),
            protocol: Protocol::Tcp,
        }
    );
    assert_eq!(app.ports[1].protocol, Protocol::Udp);
    assert_eq!(app.ports[1].host_port, None);
    assert_eq!(
        app.volume_mounts[1],
        VolumeMount {
            name: "host".into(),
            mount_path: "/etc/app.conf".into(),
            read_only: false,
            sub_path: Some("app.conf".into()),
        }
    );
    assert!(app.volume_mounts[0].read_only);
    // A bare YAML number is a valid quantity and is kept as its decimal text.
    assert_eq!(app.resources.limits["cpu"], "0.5");
    assert_eq!(app.resources.memory_limit_bytes(), Some(64 * 1024 * 1024));
    assert_eq!(app.resources.cpu_limit_millis(), Some(500));
    assert_eq!(app.resources.cpu_request_millis(), Some(250));
    assert_eq!(app.resources.memory_request_bytes(), Some(32 * 1024 * 1024));
    assert_eq!(pod.spec.containers[1].ports[0].protocol, Protocol::Sctp);
    assert_eq!(pod.spec.containers[1].resources.memory_limit_bytes(), None);

    assert_eq!(
        pod.spec.volumes[0],
        Volume {
            name: "work".into(),
            source: VolumeSource::EmptyDir {
                medium: None,
                size_limit: None
            }
        }
    );
    assert_eq!(
        pod.spec.volumes[1].source,
        VolumeSource::HostPath {
            path: "/etc/app".into(),
            type_: Some("Directory".into())
        }
    );
    assert_eq!(
        pod.spec.volumes[2].source,
        VolumeSource::EmptyDir {
            medium: Some("Memory".into()),
            size_limit: Some("1Gi".into())
        }
    );
    let names: Vec<&str> = pod.all_containers().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["init", "app", "sidecar"]);
}

#[test]
fn full_pod_round_trips_through_json() {
    let pod = full().pod;
    let json = serde_json::to_string(&pod).expect("serialize");
    let back: Pod = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, pod);

    let value = serde_json::to_value(&pod).expect("to_value");
    // Kubernetes spelling on the wire, compact record.
    assert_eq!(value["spec"]["volumes"][0], json!({"name": "work", "emptyDir": {}}));
    assert_eq!(
        value["spec"]["volumes"][1],
        json!({"name": "host", "hostPath": {"path": "/etc/app", "type": "Directory"}})
    );
    assert_eq!(value["spec"]["containers"][0]["ports"][0]["hostIP"], "127.0.0.1");
    assert_eq!(value["spec"]["containers"][1]["ports"][0]["protocol"], "SCTP");
    assert!(value["spec"]["containers"][1].get("env").is_none());
    assert!(value["spec"]["containers"][1].get("resources").is_none());

    // The stored JSON, printed as YAML, is again a manifest for the same pod.
    let reparsed = parse_pod(&to_yaml(&value)).expect("to_yaml output parses");
    assert_eq!(reparsed.pod, pod);
    assert!(reparsed.warnings.is_empty());
}

#[test]
fn defaults_apply() {
    let parsed = parse_pod(&doc(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  containers: [{name: c, image: i, ports: [{containerPort: 80}]}]",
    ]))
    .expect("valid");
    let pod = parsed.pod;
    assert_eq!(pod.metadata.namespace, "default");
    assert_eq!(pod.spec.restart_policy, RestartPolicy::Always);
    assert_eq!(pod.spec.termination_grace_period_seconds, 30);
    assert!(!pod.spec.share_process_namespace);
    assert_eq!(pod.spec.containers[0].ports[0].protocol, Protocol::Tcp);
    assert_eq!(pod.spec.containers[0].image_pull_policy, None);
    let back: Pod = serde_json::from_value(serde_json::to_value(&pod).expect("ser")).expect("de");
    assert_eq!(back, pod);
}

#[test]
fn display_has_line_path_problem_and_fix() {
    let e = err_owned(pod_with_container_lines(&[
        "    ports:",
        "    - containerPort: 80",
        "      hostPort: 0",
    ]));
    assert_eq!(
        e.to_string(),
        "line 11: spec.containers[0].ports[0].hostPort: hostPort must be 1-65535; leave hostPort \
         out if the port should not be published"
    );
    let no_line = ManifestError {
        path: "x".into(),
        line: None,
        message: "bad; fix".into(),
    };
    assert_eq!(no_line.to_string(), "x: bad; fix");
}

#[test]
fn kind_and_api_version() {
    let e = err(&["apiVersion: example.com/v1", "kind: Widget", "metadata: {name: x}"]);
    assert_err(
        &e,
        "kind",
        2,
        "podctl runs Pods, Deployments, ReplicaSets and DaemonSets",
    );
    let e = err(&["apiVersion: v1", "kind: pod"]);
    assert_err(&e, "kind", 2, "case-sensitive");
    let e = err(&["apiVersion: v1", "metadata: {name: x}"]);
    assert_eq!(e.path, "kind");
    // Missing field: reported at the mapping that should hold it (the document, line 1).
    assert_eq!(e.line, Some(1));
    let e = err(&["kind: Pod", "apiVersion: apps/v1"]);
    assert_err(&e, "apiVersion", 2, "apiVersion: v1");
}

#[test]
fn metadata_rules() {
    let base = |meta: &[&str]| {
        let mut v = vec!["apiVersion: v1", "kind: Pod", "metadata:"];
        v.extend_from_slice(meta);
        v.extend_from_slice(&["spec:", "  containers: [{name: c, image: i}]"]);
        err(&v)
    };
    let e = base(&["  namespace: x"]);
    assert_err(&e, "metadata.name", 3, "required");
    let e = base(&["  name: My_Pod"]);
    assert_err(&e, "metadata.name", 4, "\"my-pod\"");
    let long = format!("  name: {}", "a".repeat(64));
    let e = base(&[&long]);
    assert_err(&e, "metadata.name", 4, "hostname");
    let e = base(&["  name: ok", "  namespace: Team.A"]);
    assert_err(&e, "metadata.namespace", 5, "lowercase");
    let e = base(&["  name: ok", "  labels:", "    app: web", "    bad key: x"]);
    assert_err(&e, "metadata.labels[bad key]", 7, "label key");
    let e = base(&["  name: ok", "  labels:", "    example.com/app: -web"]);
    assert_err(&e, "metadata.labels[example.com/app]", 6, "label value");
    let e = base(&["  name: ok", "  labels:", &format!("    k: {}", "v".repeat(64))]);
    assert_err(&e, "metadata.labels.k", 6, "63");
    let e = base(&["  name: ok", "  labels:", "    Bad_Prefix/app: x"]);
    assert_err(&e, "metadata.labels.Bad_Prefix/app", 6, "prefix");
    let e = base(&["  name: ok", "  annotations:", "    -x: y"]);
    assert_err(&e, "metadata.annotations.-x", 6, "annotation key");
}

#[test]
fn container_rules() {
    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  hostname: x",
    ]);
    assert_err(&e, "spec.containers", 4, "at least one container");

    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  initContainers:",
        "  - name: app",
        "    image: busybox",
        "  containers:",
        "  - name: app",
        "    image: nginx",
    ]);
    assert_err(&e, "spec.containers[0].name", 9, "duplicate container name");
    assert!(e.message.contains("spec.initContainers[0].name"), "{e}");

    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  containers:",
        "  - name: a",
        "    image: nginx",
        "  - name: Web_1",
        "    image: nginx",
    ]);
    assert_err(&e, "spec.containers[1].name", 8, "DNS label");

    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  containers:",
        "  - name: a",
        "    image: \"\"",
    ]);
    assert_err(&e, "spec.containers[0].image", 7, "image is required");
    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  containers:",
        "  - name: a",
    ]);
    // Missing image: the container item's line.
    assert_err(&e, "spec.containers[0].image", 6, "image is required");

    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  hostname: My.Host",
        "  containers: [{name: a, image: i}]",
    ]);
    assert_err(&e, "spec.hostname", 5, "DNS label");
}

#[test]
fn type_errors_name_the_field() {
    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  containers:",
        "    name: a",
    ]);
    assert_err(&e, "spec.containers", 5, "must be a list");
    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  restartPolicy: always",
        "  containers: [{name: a, image: i}]",
    ]);
    assert_err(&e, "spec.restartPolicy", 5, "`Always`, `OnFailure`, `Never`");
    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p, labels: {version: 1.10}}",
        "spec:",
        "  terminationGracePeriodSeconds: -1",
        "  containers: [{name: a, image: i}]",
    ]);
    // The raw text is kept: 1.10 is what to quote, not the float 1.1.
    assert_err(&e, "metadata.labels.version", 3, "quote it: \"1.10\"");
    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  terminationGracePeriodSeconds: -1",
        "  containers: [{name: a, image: i}]",
    ]);
    assert_err(&e, "spec.terminationGracePeriodSeconds", 5, "must not be negative");
}

#[test]
fn port_rules() {
    let e = err_owned(pod_with_container_lines(&["    ports:", "    - containerPort: 0"]));
    assert_err(&e, "spec.containers[0].ports[0].containerPort", 10, "1-65535");
    let e = err_owned(pod_with_container_lines(&["    ports:", "    - name: http"]));
    assert_err(&e, "spec.containers[0].ports[0].containerPort", 10, "required");
    let e = err_owned(pod_with_container_lines(&["    ports:", "    - containerPort: 70000"]));
    assert_err(&e, "spec.containers[0].ports[0].containerPort", 10, "not a port number");
    let e = err_owned(pod_with_container_lines(&["    ports:", "    - containerPort: \"80\""]));
    assert_err(&e, "spec.containers[0].ports[0].containerPort", 10, "remove the quotes");
    let e = err_owned(pod_with_container_lines(&[
        "    ports:",
        "    - containerPort: 80",
        "      hostPort: 65536",
    ]));
    assert_err(&e, "spec.containers[0].ports[0].hostPort", 11, "not a port number");
    let e = err_owned(pod_with_container_lines(&[
        "    ports:",
        "    - containerPort: 80",
        "      hostPort: 80",
        "      hostIP: 300.1.1.1",
    ]));
    assert_err(&e, "spec.containers[0].ports[0].hostIP", 12, "not an IP address");
    let e = err_owned(pod_with_container_lines(&[
        "    ports:",
        "    - containerPort: 80",
        "      protocol: tcp",
    ]));
    assert_err(&e, "spec.containers[0].ports[0].protocol", 11, "case-sensitive");

    // Same host port twice across containers, one on all addresses: a clash naming both.
    let e = err_owned(pod_with_container_lines(&[
        "    ports:",
        "    - containerPort: 80",
        "      hostPort: 8080",
        "  - name: other",
        "    image: nginx",
        "    ports:",
        "    - containerPort: 81",
        "      hostPort: 8080",
        "      hostIP: 127.0.0.1",
    ]));
    assert_err(&e, "spec.containers[1].ports[0].hostPort", 16, "already published");
    assert!(e.message.contains("spec.containers[0].ports[0].hostPort"), "{e}");

    // Different protocol or different specific IPs do not clash.
    let ok = parse_pod(&doc(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  containers:",
        "  - name: a",
        "    image: i",
        "    ports:",
        "    - {containerPort: 53, hostPort: 53}",
        "    - {containerPort: 53, hostPort: 53, protocol: UDP}",
        "    - {containerPort: 80, hostPort: 80, hostIP: 127.0.0.1}",
        "    - {containerPort: 81, hostPort: 80, hostIP: 127.0.0.2}",
    ]));
    assert!(ok.is_ok(), "{ok:?}");

    let e = err_owned(pod_with_container_lines(&[
        "    ports:",
        "    - containerPort: 80",
        "  - name: b",
        "    image: i",
        "    ports:",
        "    - containerPort: 80",
    ]));
    assert_err(&e, "spec.containers[1].ports[0].containerPort", 14, "already declared");
    assert!(e.message.contains("spec.containers[0].ports[0].containerPort"), "{e}");
}

#[test]
fn env_rules() {
    let e = err_owned(pod_with_container_lines(&["    env:", "    - value: x"]));
    assert_err(&e, "spec.containers[0].env[0].name", 10, "env name is required");
    let e = err_owned(pod_with_container_lines(&["    env:", "    - name: A=B"]));
    assert_err(&e, "spec.containers[0].env[0].name", 10, "'='");
    let e = err_owned(pod_with_container_lines(&[
        "    env:",
        "    - name: PORT",
        "      value: 8080",
    ]));
    assert_err(&e, "spec.containers[0].env[0].value", 11, "quote it: \"8080\"");
    let e = err_owned(pod_with_container_lines(&["    args: [--port, 0x1F]"]));
    assert_err(&e, "spec.containers[0].args[1]", 9, "quote it: \"0x1F\"");
    let e = err_owned(pod_with_container_lines(&[
        "    env:",
        "    - name: V",
        "      value: true",
    ]));
    assert_err(&e, "spec.containers[0].env[0].value", 11, "boolean");
}

#[test]
fn plain_yes_is_a_string() {
    let lines = pod_with_container_lines(&["    env:", "    - name: DEBUG", "      value: yes"]);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let pod = parse_pod(&doc(&refs)).expect("yes is a string in YAML 1.2").pod;
    assert_eq!(pod.spec.containers[0].env[0].value, "yes");
}

#[test]
fn volume_rules() {
    let head = ["apiVersion: v1", "kind: Pod", "metadata: {name: p}", "spec:"];
    let run = |rest: &[&str]| {
        let mut v = head.to_vec();
        v.extend_from_slice(rest);
        err(&v)
    };
    let e = run(&[
        "  containers: [{name: a, image: i}]",
        "  volumes:",
        "  - name: claim",
        "    nfs:",
        "      server: nas",
    ]);
    assert_err(
        &e,
        "spec.volumes[0].nfs",
        8,
        "podctl supports hostPath, emptyDir, configMap, secret, downwardAPI, projected and persistentVolumeClaim",
    );
    let e = run(&[
        "  containers: [{name: a, image: i}]",
        "  volumes:",
        "  - name: cfg",
        "    configMap: {name: c, items: [{key: k, path: ../out}]}",
    ]);
    assert_err(&e, "spec.volumes[0].configMap.items[0].path", 8, "not a relative path");
    let e = run(&["  containers: [{name: a, image: i}]", "  volumes:", "  - name: v"]);
    assert_err(&e, "spec.volumes[0]", 7, "no source");
    let e = run(&[
        "  containers: [{name: a, image: i}]",
        "  volumes:",
        "  - name: v",
        "    emptyDir: {}",
        "    hostPath: {path: /x}",
    ]);
    assert_err(&e, "spec.volumes[0].hostPath", 9, "exactly one source");
    let e = run(&[
        "  containers: [{name: a, image: i}]",
        "  volumes:",
        "  - name: data",
        "    hostPath:",
        "      path: relative/dir",
    ]);
    assert_err(&e, "spec.volumes[0].hostPath.path", 9, "not absolute");
    let e = run(&[
        "  containers: [{name: a, image: i}]",
        "  volumes:",
        "  - name: data",
        "    emptyDir: {}",
        "  - name: data",
        "    emptyDir: {}",
    ]);
    assert_err(&e, "spec.volumes[1].name", 9, "duplicate volume name");
    let e = run(&[
        "  containers: [{name: a, image: i}]",
        "  volumes:",
        "  - name: Data",
        "    emptyDir: {}",
    ]);
    assert_err(&e, "spec.volumes[0].name", 7, "DNS label");
    let e = run(&[
        "  containers: [{name: a, image: i}]",
        "  volumes:",
        "  - name: d",
        "    hostPath: {path: /x, type: Dir}",
    ]);
    assert_err(&e, "spec.volumes[0].hostPath.type", 8, "DirectoryOrCreate");
    let e = run(&[
        "  containers: [{name: a, image: i}]",
        "  volumes:",
        "  - name: d",
        "    emptyDir: {sizeLimit: lots}",
    ]);
    assert_err(&e, "spec.volumes[0].emptyDir.sizeLimit", 8, "not a size");
}

#[test]
fn volume_mount_rules() {
    let head = [
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  volumes:",
        "  - name: data",
        "    emptyDir: {}",
        "  containers:",
        "  - name: a",
        "    image: i",
        "    volumeMounts:",
    ];
    let run = |rest: &[&str]| {
        let mut v = head.to_vec();
        v.extend_from_slice(rest);
        err(&v)
    };
    let e = run(&["    - name: missing", "      mountPath: /m"]);
    assert_err(&e, "spec.containers[0].volumeMounts[0].name", 12, "undeclared volume");
    assert!(e.message.contains("data"), "{e}");
    let e = run(&["    - name: data", "      mountPath: data"]);
    assert_err(&e, "spec.containers[0].volumeMounts[0].mountPath", 13, "not absolute");
    let e = run(&[
        "    - name: data",
        "      mountPath: /m",
        "    - name: data",
        "      mountPath: /m/",
    ]);
    assert_err(&e, "spec.containers[0].volumeMounts[1].mountPath", 15, "already used");
    let e = run(&["    - name: data", "      mountPath: /m", "      subPath: ../etc"]);
    assert_err(&e, "spec.containers[0].volumeMounts[0].subPath", 14, "'..'");
}

#[test]
fn resource_rules() {
    let e = err_owned(pod_with_container_lines(&[
        "    resources:",
        "      limits:",
        "        memory: 64MB",
    ]));
    assert_err(
        &e,
        "spec.containers[0].resources.limits.memory",
        11,
        "not a memory quantity",
    );
    let e = err_owned(pod_with_container_lines(&[
        "    resources:",
        "      requests:",
        "        cpu: half",
    ]));
    assert_err(
        &e,
        "spec.containers[0].resources.requests.cpu",
        11,
        "not a cpu quantity",
    );
    let e = err_owned(pod_with_container_lines(&[
        "    resources:",
        "      limits: {cpu: 1}",
        "      requests: {cpu: 2}",
    ]));
    assert_err(&e, "spec.containers[0].resources.requests.cpu", 11, "above its limit");
}

#[test]
fn unknown_fields_become_one_warning() {
    let parsed = parse_pod(&doc(&[
        "apiVersion: v1",                            // 1
        "kind: Pod",                                 // 2
        "metadata:",                                 // 3
        "  name: p",                                 // 4
        "  creationTimestamp: null",                 // 5 null = unset: no warning
        "  uid: abc",                                // 6
        "spec:",                                     // 7
        "  containers:",                             // 8
        "  - name: a",                               // 9
        "    image: i",                              // 10
        "    resizePolicy: []",                      // 11
        "    stdinOnce: false",                      // 12
        "    securityContext: {seLinuxOptions: {}}", // 13
        "    resources:",                            // 14
        "      limits:",                             // 15
        "        nvidia.com/gpu: 1",                 // 16
        "  nodeSelector:",                           // 17
        "    disk: ssd",                             // 18
        "  tolerations: []",                         // 19
        "status:",                                   // 20
        "  phase: Running",                          // 21
    ]))
    .expect("unknown fields are not errors");
    assert_eq!(
        parsed.warnings,
        ["ignoring fields podctl does not support yet: metadata.uid (line 6), \
          spec.containers[0].resizePolicy (line 11), \
          spec.containers[0].securityContext.seLinuxOptions (line 13), \
          spec.containers[0].resources.limits[nvidia.com/gpu] (line 16), spec.nodeSelector (line 17), \
          spec.tolerations (line 19)"]
    );
    assert_eq!(parsed.pod.spec.containers[0].resources.limits["nvidia.com/gpu"], "1");
}

#[test]
fn bad_yaml_reports_the_parser_line() {
    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata:",
        "  name: x",
        "   bad: indent",
    ]);
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.starts_with("invalid YAML"), "{e}");
    assert_eq!(e.path, "");

    let e = err(&["apiVersion: v1", "kind: Pod", "metadata: {name: x", "spec: {}"]);
    assert!(e.line.is_some_and(|l| l >= 3), "{e}");
    assert!(e.message.starts_with("invalid YAML"), "{e}");

    let e = err(&["apiVersion: v1", "kind: Pod", "metadata:", "  name: x", "  name: y"]);
    assert_err(&e, "metadata.name", 5, "duplicate key");
    assert!(e.message.contains("line 4"), "{e}");
}

#[test]
fn document_count() {
    let e = parse_pod("").expect_err("empty");
    assert_eq!(e.line, None);
    assert!(e.message.contains("empty"), "{e}");
    let e = parse_pod("# just a comment\n---\n").expect_err("only an empty document");
    assert!(e.message.contains("empty"), "{e}");
    let one = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i}]}\n";
    let e = parse_pod(&format!("{one}---\n{one}")).expect_err("two documents");
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("exactly one"), "{e}");
    // Leading and trailing `---` around a single pod are fine.
    let pod = parse_pod(&format!("---\n{one}---\n")).expect("one pod").pod;
    assert_eq!(pod.metadata.name, "a");
    let e = parse_pod("- a\n- b\n").expect_err("not a mapping");
    assert!(e.message.contains("must be a mapping"), "{e}");
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let pod = parse_pod(&doc(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  containers:",
        "  - &base",
        "    name: a",
        "    image: busybox",
        "    env: &env",
        "    - {name: A, value: \"1\"}",
        "  - <<: *base",
        "    name: b",
        "    env: *env",
    ]))
    .expect("anchors work")
    .pod;
    let b = &pod.spec.containers[1];
    assert_eq!(b.name, "b");
    assert_eq!(b.image, "busybox");
    assert_eq!(b.env, pod.spec.containers[0].env);

    // Errors inside aliased content point at the alias.
    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "x-ports: &ports [{containerPort: 0}]",
        "spec:",
        "  containers:",
        "  - name: a",
        "    image: i",
        "    ports: *ports",
    ]);
    assert_err(&e, "spec.containers[0].ports[0].containerPort", 9, "1-65535");
}

#[test]
fn alias_bombs_and_deep_nesting_are_rejected() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    let e = parse_pod(&bomb).expect_err("bomb");
    assert!(e.message.contains("too many nodes"), "{e}");
    let deep = format!("a: {}{}\n", "[".repeat(500), "]".repeat(500));
    let e = parse_pod(&deep).expect_err("deep");
    // Either our depth limit or the parser's own recursion limit stops it.
    assert!(
        e.message.contains("nested too deeply") || e.message.contains("recursion limit"),
        "{e}"
    );
}

#[test]
fn scalars_resolve_like_yaml_core() {
    let (v, _) = yaml::load(
        "a: 12\nb: -3\nc: 0x10\nd: 0o17\ne: 1.5\nf: 1e3\ng: true\nh: False\ni: ~\nj: null\n\
         k: '12'\nl: \"true\"\nm: 64Mi\nn: .5\no: !!str 42\np: 1_000\nq: +7\nr: .inf\n",
    )
    .expect("loads");
    assert_eq!(
        v,
        json!({"a": 12, "b": -3, "c": 16, "d": 15, "e": 1.5, "f": 1000.0, "g": true,
               "h": false, "i": null, "j": null, "k": "12", "l": "true", "m": "64Mi",
               "n": 0.5, "o": "42", "p": "1_000", "q": 7, "r": ".inf"})
    );
}

#[test]
fn quantities() {
    assert_eq!(parse_quantity_bytes("64Mi"), Some(64 << 20));
    assert_eq!(parse_quantity_bytes("1G"), Some(1_000_000_000));
    assert_eq!(parse_quantity_bytes("500k"), Some(500_000));
    assert_eq!(parse_quantity_bytes("1e3"), Some(1000));
    assert_eq!(parse_quantity_bytes("1E3"), Some(1000));
    assert_eq!(parse_quantity_bytes("128974848"), Some(128_974_848));
    assert_eq!(parse_quantity_bytes("129e6"), Some(129_000_000));
    assert_eq!(parse_quantity_bytes("123Mi"), Some(128_974_848));
    assert_eq!(parse_quantity_bytes("1.5Gi"), Some(1_610_612_736));
    assert_eq!(parse_quantity_bytes("0.5"), Some(1)); // rounds up
    assert_eq!(parse_quantity_bytes("1Ei"), Some(1 << 60));
    assert_eq!(parse_quantity_bytes("16Ei"), None); // overflows u64
    assert_eq!(parse_quantity_bytes("1E"), Some(1_000_000_000_000_000_000));
    assert_eq!(parse_quantity_bytes("+1Ki"), Some(1024));
    for bad in [
        "", "-1", "Mi", "1MB", "1K", "1.2.3", "1e", "1e+", "abc", " 1", "1 Mi", ".",
    ] {
        assert_eq!(parse_quantity_bytes(bad), None, "{bad:?}");
    }
    assert_eq!(parse_quantity_millicpu("500m"), Some(500));
    assert_eq!(parse_quantity_millicpu("1"), Some(1000));
    assert_eq!(parse_quantity_millicpu("0.5"), Some(500));
    assert_eq!(parse_quantity_millicpu("2.25"), Some(2250));
    assert_eq!(parse_quantity_millicpu("100u"), Some(1)); // rounds up
    assert_eq!(parse_quantity_millicpu("1k"), Some(1_000_000));
    assert_eq!(parse_quantity_millicpu("half"), None);
}

#[test]
fn to_yaml_reparses_to_the_same_value() {
    // Two halves: one json! literal this size exceeds the macro recursion limit.
    let mut value = json!({
        "apiVersion": "v1",
        "plain": "nginx:1.25",
        "spaces": "two words",
        "colon": "a: b",
        "colon_end": "a:",
        "sexagesimal": "1:30",
        "image": "nginx:1.25",
        "hash": "x #y",
        "lead": " x",
        "trail": "x ",
        "empty": "",
        "numstr": "8080",
        "boolstr": "true",
        "yes": "yes",
        "nullstr": "null",
        "tilde": "~",
        "underscored": "1_000",
        "float": "1e3",
        "dash": "-",
        "flag": "--port=80",
        "doc": "---",
        "star": "*x",
        "amp": "&x"
    });
    let rest = json!({
        "quote": "it's \"q\"",
        "unicode": "héllo ✓",
        "tab": "a\tb",
        "script": "set -e\necho hi\n\nexit 0\n",
        "nochomp": "a\nb",
        "keep": "a\n\n\n",
        "indented": "  a\nb",
        "blankline": "a\n  \nb",
        "cr": "a\r\nb",
        "n": 42,
        "neg": -1,
        "f": 0.25,
        "b": false,
        "nul": null,
        "emptymap": {},
        "emptylist": [],
        "app.kubernetes.io/name": "key with dots",
        "key: colon": 1,
        "nested": {"list": [1, "two", {"a": [], "b": {"c": "d"}}, [3, [4]], "x\ny"]},
        "top": [{"name": "a", "ports": [{"containerPort": 80}]}]
    });
    if let (Value::Object(m), Value::Object(r)) = (&mut value, rest) {
        m.extend(r);
    }
    let text = to_yaml(&value);
    let (back, _) = yaml::load(&text).expect("to_yaml output is valid YAML");
    assert_eq!(back, value, "yaml was:\n{text}");
    // Block style with kubectl-like layout and literal blocks for scripts.
    assert!(
        text.contains("top:\n- name: a\n  ports:\n  - containerPort: 80\n"),
        "{text}"
    );
    assert!(text.contains("script: |\n  set -e\n  echo hi\n\n  exit 0\n"), "{text}");
    assert!(text.contains("numstr: \"8080\"\n"), "{text}");
    assert!(text.contains("plain: nginx:1.25\n"), "{text}");
    assert!(text.contains("sexagesimal: \"1:30\"\n"), "{text}");
    assert!(text.contains("flag: --port=80\n"), "{text}");
    assert!(
        text.contains("yes: \"yes\"\n") || text.contains("\"yes\": \"yes\"\n"),
        "{text}"
    );

    for scalar in [json!("x"), json!(1), json!([]), json!({})] {
        let (back, _) = yaml::load(&to_yaml(&scalar)).expect("scalar document");
        assert_eq!(back, scalar);
    }
}

#[test]
fn kubectl_dry_run_output_runs_with_crlf_too() {
    let text = doc(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata:",
        "  creationTimestamp: null",
        "  labels:",
        "    run: nginx",
        "  name: nginx",
        "spec:",
        "  containers:",
        "  - image: nginx",
        "    name: nginx",
        "    resources: {}",
        "  dnsPolicy: ClusterFirst",
        "  restartPolicy: Always",
        "status: {}",
    ]);
    for text in [text.clone(), text.replace('\n', "\r\n")] {
        let parsed = parse_pod(&text).expect("kubectl output is a valid pod");
        assert_eq!(parsed.pod.metadata.labels["run"], "nginx");
        assert_eq!(parsed.pod.spec.containers[0].image, "nginx");
        assert!(
            parsed.warnings.is_empty(),
            "dnsPolicy is supported now: {:?}",
            parsed.warnings
        );
    }
}

#[test]
fn probes_parse_with_kubernetes_defaults_and_are_checked() {
    let parsed = parse_pod(
        &pod_with_container_lines(&[
            "    ports: [{name: http, containerPort: 8080}]",
            "    readinessProbe: {httpGet: {path: /healthz, port: http}}",
            "    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 2}",
        ])
        .join("\n"),
    )
    .unwrap();
    let c = &parsed.pod.spec.containers[0];
    let readiness = c.readiness_probe.as_ref().unwrap();
    assert_eq!(readiness.http_get.as_ref().unwrap().port.resolve(c), Some(8080));
    assert_eq!(
        (
            readiness.period_seconds,
            readiness.timeout_seconds,
            readiness.failure_threshold
        ),
        (10, 1, 3)
    );
    assert_eq!(c.liveness_probe.as_ref().unwrap().period_seconds, 2);
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);

    let e = err_owned(pod_with_container_lines(&[
        "    livenessProbe: {tcpSocket: {port: web}}",
    ]));
    assert!(e.path.ends_with("livenessProbe.tcpSocket.port"), "{e}");
    let e = err_owned(pod_with_container_lines(&["    livenessProbe: {periodSeconds: 1}"]));
    assert!(
        e.message.contains("exactly one of httpGet, tcpSocket, exec or grpc"),
        "{e}"
    );
}

#[test]
fn probe_schemes_headers_and_grpc_ports_are_checked() {
    // That the accepted schemes, headers and gRPC ports reach the agent is tested in
    // podctl's member/probe_defs_tests.rs (this crate sees nothing of the agent).
    let e = err_owned(pod_with_container_lines(&[
        "    livenessProbe: {httpGet: {port: 80, scheme: ftp}}",
    ]));
    assert_err(
        &e,
        "spec.containers[0].livenessProbe.httpGet.scheme",
        9,
        "HTTP or HTTPS",
    );
    let e = err_owned(pod_with_container_lines(&[
        "    livenessProbe: {httpGet: {port: 80, httpHeaders: [{name: X, value: \"a\\r\\nInjected: 1\"}]}}",
    ]));
    assert_eq!(
        e.path, "spec.containers[0].livenessProbe.httpGet.httpHeaders[0].value",
        "{e}"
    );
    let e = err_owned(pod_with_container_lines(&["    startupProbe: {grpc: {port: 0}}"]));
    assert_err(&e, "spec.containers[0].startupProbe.grpc.port", 9, "1-65535");
}

#[test]
fn runtime_classes_name_a_handler() {
    let doc = |lines: &[&str]| parse_document(&lines.join("\n"));
    let Ok(Document::RuntimeClass(class)) = doc(&[
        "apiVersion: node.k8s.io/v1",
        "kind: RuntimeClass",
        "metadata: {name: sandboxed}",
        "handler: wrapped",
    ]) else {
        panic!("a RuntimeClass")
    };
    assert_eq!(
        (class.metadata.name.as_str(), class.handler.as_str()),
        ("sandboxed", "wrapped")
    );
    let e = doc(&[
        "apiVersion: node.k8s.io/v1",
        "kind: RuntimeClass",
        "metadata: {name: x}",
    ])
    .unwrap_err();
    assert_err(&e, "handler", 1, "handler is required");
    let e = doc(&[
        "apiVersion: v1",
        "kind: RuntimeClass",
        "metadata: {name: x}",
        "handler: h",
    ])
    .unwrap_err();
    assert_err(&e, "apiVersion", 1, "node.k8s.io/v1");
    let e = doc(&[
        "apiVersion: node.k8s.io/v1",
        "kind: RuntimeClass",
        "metadata: {name: x}",
        "handler: Not_A_Label",
    ])
    .unwrap_err();
    assert_err(&e, "handler", 4, "DNS label");
    assert!(matches!(
        doc(&pod_with_container_lines(&[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()),
        Ok(Document::Pod(_))
    ));
}

#[test]
fn a_stack_file_holds_config_maps_secrets_and_pods_and_lists_expand() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata:\n  a: one\nbinaryData:\n  b: AAE=\n---\n\
                apiVersion: v1\nkind: Secret\nmetadata: {name: sec}\nstringData: {p: plain}\ndata: {q: cXVldQ==}\n---\n\
                apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n  spec: {containers: [{name: c, image: i}]}\n";
    let documents = parse_documents(text).expect("three documents");
    let labels: Vec<String> = documents.iter().map(Document::label).collect();
    assert_eq!(labels, ["configmap/cfg", "secret/sec", "pod/p"]);
    let Document::ConfigMap(map) = &documents[0] else {
        panic!()
    };
    assert_eq!(map.entries()["b"], [0, 1]);
    let Document::Secret(secret) = &documents[1] else {
        panic!()
    };
    assert_eq!(secret.type_, "Opaque");
    assert_eq!(secret.entries()["p"], b"plain");
    assert_eq!(secret.entries()["q"], b"queu");
    assert!(!format!("{:?}", secret.redacted()).contains("cGxhaW4"));
    // An error names its document; a List item's lines are its own file lines.
    let broken = text.replace("image: i", "image: ''");
    let e = parse_documents(&broken).expect_err("no image");
    assert_eq!(e.index, Some(3));
    assert_eq!(e.label.as_deref(), Some("pod/p"));
    assert_eq!(e.error.path, "spec.containers[0].image");
    assert_eq!(e.error.line, Some(21), "{e}");
    assert!(e.to_string().starts_with("document 3 (pod/p): line 21: "), "{e}");
    // One document: no document number.
    let one = parse_documents("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad}\n").expect_err("name");
    assert_eq!(one.index, None);
    assert!(one.to_string().starts_with("line 3: metadata.name: "), "{one}");
}

#[test]
fn config_maps_and_secrets_are_checked_as_the_api_server_does_without_showing_values() {
    let bad = |text: &str| parse_documents(text).expect_err(text).to_string();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    assert!(bad(&format!("{cm}data: {{'a b': x}}\n")).contains("not a valid key"));
    assert!(bad(&format!("{cm}data: {{port: 8080}}\n")).contains("quote it: \"8080\""));
    assert!(bad(&format!("{cm}data: {{a: x}}\nbinaryData: {{a: AA==}}\n")).contains("both data and binaryData"));
    assert!(bad(&format!("{cm}spec: {{}}\n")).contains("unknown ConfigMap field \"spec\""));
    let big = format!("{cm}data: {{a: {}}}\n", "x".repeat(1024 * 1024 + 1));
    assert!(bad(&big).contains("over the 1 MiB"));
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n";
    let e = bad(&format!("{secret}data: {{k: 'hunter2!!'}}\n"));
    assert!(
        e.contains("data.k") && e.contains("base64") && !e.contains("hunter2"),
        "{e}"
    );
    let e = bad(&format!("{secret}stringData: {{k: 12345}}\n"));
    assert!(
        e.contains("quote it") && !e.contains("12345"),
        "a Secret's value stays out of errors: {e}"
    );
    let e = bad(&format!(
        "{secret}type: kubernetes.io/tls\nstringData: {{tls.crt: x}}\n"
    ));
    assert!(e.contains("\"tls.key\""), "{e}");
    let e = bad(&format!(
        "{secret}type: kubernetes.io/dockerconfigjson\nstringData: {{.dockerconfigjson: '{{}}'}}\n"
    ));
    assert!(e.contains("auths"), "{e}");
}

#[test]
fn pods_read_config_maps_and_secrets_by_env_and_volumes() {
    let parsed = parse_pod(&doc(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  containers:",
        "  - name: c",
        "    image: i",
        "    env:",
        "    - {name: A, valueFrom: {configMapKeyRef: {name: cfg, key: a}}}",
        "    - {name: B, valueFrom: {secretKeyRef: {name: sec, key: b, optional: true}}}",
        "    envFrom: [{prefix: X_, configMapRef: {name: cfg}}]",
        "    volumeMounts: [{name: s, mountPath: /s}]",
        "  volumes:",
        "  - name: s",
        "    secret: {secretName: sec, defaultMode: 0400, items: [{key: b, path: dir/b, mode: 0600}]}",
        "  - name: p",
        "    projected: {sources: [{configMap: {name: cfg}}, {secret: {name: sec}}]}",
    ]))
    .expect("valid");
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let pod = parsed.pod;
    let env = &pod.spec.containers[0].env;
    assert_eq!(
        env[0]
            .value_from
            .as_ref()
            .unwrap()
            .config_map_key_ref
            .as_ref()
            .unwrap()
            .key,
        "a"
    );
    assert!(
        env[1]
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .optional
    );
    assert_eq!(pod.spec.containers[0].env_from[0].prefix, "X_");
    // `0400` is octal, as Kubernetes reads YAML.
    let VolumeSource::Objects {
        sources, default_mode, ..
    } = &pod.spec.volumes[0].source
    else {
        panic!()
    };
    assert_eq!(*default_mode, Some(0o400));
    assert_eq!(sources[0].1.items[0].mode, Some(0o600));
    let VolumeSource::Objects { sources, form, .. } = &pod.spec.volumes[1].source else {
        panic!()
    };
    assert_eq!(*form, ObjectsForm::Projected);
    assert_eq!(sources.len(), 2);
    // The pod prints back as it was written.
    let json = serde_json::to_value(&pod).unwrap();
    assert_eq!(json["spec"]["volumes"][0]["secret"]["secretName"], "sec");
    assert_eq!(
        json["spec"]["volumes"][1]["projected"]["sources"][1]["secret"]["name"],
        "sec"
    );
    assert_eq!(
        json["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"],
        "cfg"
    );

    let bad = |extra: &[&str]| {
        err(&pod_with_container_lines(extra)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>())
    };
    let e = bad(&["    env: [{name: A, value: x, valueFrom: {configMapKeyRef: {name: c, key: k}}}]"]);
    assert!(e.message.contains("value and valueFrom exclude each other"), "{e}");
    let e = bad(&["    env: [{name: A, valueFrom: {configMapKeyRef: {name: c, key: 'no/slash'}}}]"]);
    assert_eq!(e.path, "spec.containers[0].env[0].valueFrom.configMapKeyRef.key", "{e}");
    let e = bad(&["    envFrom: [{prefix: X}]"]);
    assert!(e.message.contains("configMapRef"), "{e}");
}

#[test]
fn sidecars_are_init_containers_with_restart_policy_always() {
    let pod = parse_pod(&doc(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  initContainers:",
        "  - {name: setup, image: i}",
        "  - name: proxy",
        "    image: i",
        "    restartPolicy: Always",
        "    startupProbe: {tcpSocket: {port: 80}}",
        "  containers: [{name: app, image: i}]",
    ]))
    .unwrap()
    .pod;
    let sidecars: Vec<&str> = pod.sidecars().map(|c| c.name.as_str()).collect();
    assert_eq!(sidecars, ["proxy"]);
    let running: Vec<&str> = pod.long_running().map(|c| c.name.as_str()).collect();
    assert_eq!(running, ["proxy", "app"]);

    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  containers:",
        "  - {name: app, image: i, restartPolicy: Always}",
    ]);
    assert_err(
        &e,
        "spec.containers[0].restartPolicy",
        6,
        "not allowed on an app container",
    );
    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  initContainers:",
        "  - {name: setup, image: i, restartPolicy: OnFailure}",
        "  containers: [{name: app, image: i}]",
    ]);
    assert_err(&e, "spec.initContainers[0].restartPolicy", 6, "can only be \"Always\"");
    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  initContainers:",
        "  - name: setup",
        "    image: i",
        "    readinessProbe: {tcpSocket: {port: 80}}",
        "  containers: [{name: app, image: i}]",
    ]);
    assert_err(&e, "spec.initContainers[0].readinessProbe", 8, "restartPolicy: Always");
    // A sidecar's ports are open next to the app containers': the same one twice clashes.
    let e = err(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  initContainers:",
        "  - {name: proxy, image: i, restartPolicy: Always, ports: [{containerPort: 80}]}",
        "  containers:",
        "  - {name: app, image: i, ports: [{containerPort: 80}]}",
    ]);
    assert_err(&e, "spec.containers[0].ports[0].containerPort", 8, "already declared");
}

/// A Deployment of nginx labelled app=web; `spec` lines replace its spec's extra fields.
fn deployment(extra_spec: &[&str], template_labels: &str) -> Vec<String> {
    let mut v: Vec<String> = [
        "apiVersion: apps/v1",
        "kind: Deployment",
        "metadata: {name: web}",
        "spec:",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra_spec.iter().map(|s| s.to_string()));
    v.extend([
        "  template:".to_string(),
        format!("    metadata: {{labels: {template_labels}}}"),
        "    spec:".to_string(),
        "      containers:".to_string(),
        "      - name: app".to_string(),
        "        image: nginx".to_string(),
    ]);
    v
}

fn document_err(lines: &[String]) -> ManifestError {
    match parse_document(&lines.join("\n")) {
        Ok(d) => panic!("expected an error, parsed {}", d.label()),
        Err(e) => e,
    }
}

#[test]
fn deployments_are_read_with_their_defaults_and_make_pods_from_the_template() {
    let lines = deployment(
        &["  replicas: 3", "  selector: {matchLabels: {app: web}}"],
        "{app: web}",
    );
    let Document::Workload { workload, warnings } = parse_document(&lines.join("\n")).unwrap() else {
        panic!("a workload")
    };
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(workload.replicas(), 3);
    assert_eq!(
        workload.rollout(),
        workload::Rollout::Rolling {
            surge: 1,
            unavailable: 0
        }
    );
    let hash = workload.template_hash();
    assert!(hash.len() <= 10 && hash.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    let prefix = workload.pod_name_prefix(&hash);
    assert_eq!(prefix, format!("web-{hash}-"));
    let pod = workload.pod(&format!("{prefix}abcde"), &hash).unwrap().pod;
    assert_eq!(pod.metadata.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(pod.metadata.labels.get("pod-template-hash"), Some(&hash));
    assert_eq!(pod.spec.containers[0].image, "nginx");
    // The same template, the same hash; a change, another.
    let again = deployment(
        &["  replicas: 1", "  selector: {matchLabels: {app: web}}"],
        "{app: web}",
    );
    let Document::Workload { workload: other, .. } = parse_document(&again.join("\n")).unwrap() else {
        panic!("a workload")
    };
    assert_eq!(other.template_hash(), hash);
    let changed = deployment(&["  selector: {matchLabels: {app: web}}"], "{app: web, v: '2'}");
    let Document::Workload { workload: changed, .. } = parse_document(&changed.join("\n")).unwrap() else {
        panic!("a workload")
    };
    assert_ne!(changed.template_hash(), hash);
}

#[test]
fn workloads_are_refused_as_the_api_server_refuses_them() {
    let selector = "  selector: {matchLabels: {app: web}}";
    let e = document_err(&deployment(&[selector], "{app: api}"));
    assert_err(
        &e,
        "spec.template.metadata.labels",
        7,
        "`selector` does not match template `labels`",
    );
    let e = document_err(&deployment(&["  replicas: -1", selector], "{app: web}"));
    assert_eq!(e.path, "spec.replicas");
    assert!(e.message.contains("must be greater than or equal to 0"), "{e}");
    let e = document_err(&deployment(&[], "{app: web}"));
    assert_eq!(e.path, "spec.selector");
    let mut old = deployment(&[selector], "{app: web}");
    old[0] = "apiVersion: extensions/v1beta1".into();
    let e = document_err(&old);
    assert_err(&e, "apiVersion", 1, "removed in Kubernetes 1.16");
    let e = document_err(&deployment(
        &[
            selector,
            "  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}",
        ],
        "{app: web}",
    ));
    assert_eq!(e.path, "spec.strategy.rollingUpdate.maxUnavailable");
    let e = document_err(&deployment(
        &[selector, "  strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}"],
        "{app: web}",
    ));
    assert_eq!(e.path, "spec.strategy.rollingUpdate");
    let mut never = deployment(&[selector], "{app: web}");
    never.push("      restartPolicy: Never".into());
    let e = document_err(&never);
    assert_err(
        &e,
        "spec.template.spec.restartPolicy",
        12,
        "supported values: \"Always\"",
    );
    // The template's own errors carry their place under spec.template, with the file's line.
    let mut bad = deployment(&[selector], "{app: web}");
    bad.push("        ports: [{containerPort: 99999}]".into());
    let e = document_err(&bad);
    assert_eq!(e.path, "spec.template.spec.containers[0].ports[0].containerPort");
    assert_eq!(e.line, Some(12));
    let mut daemon = deployment(&["  replicas: 2", selector], "{app: web}");
    daemon[1] = "kind: DaemonSet".into();
    let e = document_err(&daemon);
    assert_eq!(e.path, "spec.replicas");
    let mut job = deployment(&[selector], "{app: web}");
    job[1] = "kind: Job".into();
    job[0] = "apiVersion: batch/v1".into();
    assert!(document_err(&job).message.contains("does not run kind: Job yet"));
}

#[test]
fn kinds_without_meaning_on_one_host_are_named_not_dropped() {
    let docs = parse_documents(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: app}\n",
    )
    .unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].label(), "service/web");
    assert!(docs[0].warnings()[0].contains("kube-proxy"), "{:?}", docs[0].warnings());
    assert!(docs[1].warnings()[0].contains("API server"));
}

#[test]
fn claims_are_checked_and_pods_mount_them() {
    let claim = |spec: &str| {
        parse_document(&format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data}}\n{spec}"
        ))
    };
    let Document::Claim { claim: ok, .. } =
        claim("spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}").unwrap()
    else {
        panic!("a claim")
    };
    assert_eq!(ok.storage(), Some("1Gi"));
    assert_eq!(ok.short_access_modes(), "RWO");
    let e = claim("spec: {resources: {requests: {storage: 1Gi}}}").unwrap_err();
    assert_eq!(e.path, "spec.accessModes");
    let e = claim("spec: {accessModes: [ReadWriteSometimes], resources: {requests: {storage: 1Gi}}}").unwrap_err();
    assert_eq!(e.path, "spec.accessModes[0]");
    let e = claim("spec: {accessModes: [ReadWriteOnce]}").unwrap_err();
    assert_eq!(e.path, "spec.resources.requests.storage");
    let e = claim("spec: {accessModes: [ReadWriteOnce], volumeMode: Block, resources: {requests: {storage: 1Gi}}}")
        .unwrap_err();
    assert_eq!(e.path, "spec.volumeMode");
    let pod = parse_pod(&doc(&[
        "apiVersion: v1",
        "kind: Pod",
        "metadata: {name: p}",
        "spec:",
        "  containers: [{name: a, image: i, volumeMounts: [{name: v, mountPath: /data}]}]",
        "  volumes: [{name: v, persistentVolumeClaim: {claimName: data, readOnly: true}}]",
    ]))
    .unwrap()
    .pod;
    assert_eq!(
        pod.spec.volumes[0].source,
        VolumeSource::Claim {
            claim_name: "data".into(),
            read_only: true
        }
    );
    let yaml = to_yaml(&serde_json::to_value(&pod).unwrap());
    assert!(yaml.contains("claimName: data"), "{yaml}");
}
