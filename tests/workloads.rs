//! Deployments, DaemonSets and PersistentVolumeClaims on a real containerd: a chart-like file
//! (Deployment + Service + claim) makes its pods named and labelled as Kubernetes names them; a
//! Service is a warning (an error with --strict); apply of a changed template rolls the pods over
//! to a new revision; scale; a pod deleted by hand comes back on apply; a claim's data outlives its
//! pods and the claim is refused deletion while mounted; `delete -f` keeps claims unless --volumes.

mod common;

use std::time::Duration;

use common::BUSYBOX_IMAGE;

fn chart(version: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata:
      labels: {{app: web, tier: front}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: main
        image: {BUSYBOX_IMAGE}
        command: [sh, -c, 'echo "version $VERSION"; touch /tmp/ready; exec sleep 3600']
        env: [{{name: VERSION, value: "{version}"}}]
        readinessProbe:
          exec: {{command: [cat, /tmp/ready]}}
          periodSeconds: 1
        volumeMounts: [{{name: shared, mountPath: /shared}}]
      volumes:
      - name: shared
        persistentVolumeClaim: {{claimName: web-data}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: web-data}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
"#
    )
}

/// The names of the pods whose labels match.
fn pods(env: &common::TestEnv, selector: &str) -> Vec<serde_json::Value> {
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["get", "pods", "-l", selector, "-o", "json"])).unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

fn names(pods: &[serde_json::Value]) -> Vec<String> {
    let mut names: Vec<String> = pods
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_deployment_from_a_chart_runs_rolls_over_scales_and_goes() {
    let env = require_env!("workloads-deployment");
    env.import_busybox();
    let file = env.manifest("chart.yaml", &chart("1", 2));

    // --strict: the Service is an error, and nothing is made.
    env.fails_leaving_nothing(
        &["create", "--strict", "-f", &file],
        &["service/web", "kube-proxy", "--strict"],
    );
    assert!(env.ok(&["get", "pvc"]).is_empty());

    let out = env.podctl(&["create", "-f", &file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["persistentvolumeclaim/web-data created", "deployment.apps/web created"],
        "{stdout}"
    );
    assert!(stderr.contains("warning") && stderr.contains("Service"), "{stderr}");

    // Two pods named NAME-<hash>-<5>, with the template's labels and pod-template-hash.
    let first = pods(&env, "app=web");
    assert_eq!(first.len(), 2, "{first:?}");
    let hash = first[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    for pod in &first {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let suffix = name.strip_prefix(&format!("web-{hash}-")).expect(name);
        assert_eq!(suffix.len(), 5, "{name}");
        assert_eq!(pod["metadata"]["labels"]["tier"], "front");
    }
    let rollout = env.podctl(&["rollout", "status", "deployment/web", "--timeout", "60s"]);
    if !rollout.status.success() {
        let pods = names(&pods(&env, "app=web"));
        let described: Vec<String> = pods.iter().map(|p| env.ok(&["describe", "pod", p])).collect();
        panic!(
            "rollout status: {}\n{}\n{}",
            String::from_utf8_lossy(&rollout.stderr),
            env.ok(&["get", "pods", "-o", "wide"]),
            described.join("\n")
        );
    }
    let table = env.ok(&["get", "deployments"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("web") && l.contains("2/2")),
        "{table}"
    );

    // The claim is one directory for both pods.
    let [a, b] = &names(&first)[..] else { panic!() };
    env.ok(&["exec", a, "--", "sh", "-c", "echo from-a > /shared/note"]);
    assert_eq!(env.ok(&["exec", b, "--", "sh", "-c", "cat /shared/note"]), "from-a\n");
    assert!(
        env.fails(&["delete", "pvc", "web-data"]).contains("in use"),
        "a mounted claim is not deleted"
    );

    // Unchanged: nothing moves.
    assert!(env
        .ok(&["apply", "-f", &file])
        .contains("deployment.apps/web unchanged"));
    assert_eq!(names(&pods(&env, "app=web")), names(&first));

    // A new template: a new revision, every pod replaced, the claim's data still there.
    let file = env.manifest("chart.yaml", &chart("2", 2));
    let applied = env.ok(&["apply", "-f", &file]);
    assert!(applied.contains("deployment.apps/web configured"), "{applied}");
    let second = pods(&env, "app=web");
    assert_eq!(second.len(), 2, "{second:?}");
    for pod in &second {
        assert_ne!(pod["metadata"]["labels"]["pod-template-hash"], hash.as_str());
        assert!(!names(&first).contains(&pod["metadata"]["name"].as_str().unwrap().to_string()));
    }
    let newest = names(&second)[0].clone();
    assert_eq!(env.wait_for_log(&newest, "main", "version 2"), "version 2\n");
    assert_eq!(
        env.ok(&["exec", &newest, "--", "sh", "-c", "cat /shared/note"]),
        "from-a\n"
    );
    let described = env.ok(&["describe", "deployment", "web"]);
    assert!(
        described.contains("deployment.kubernetes.io/revision: 2"),
        "{described}"
    );
    assert!(described.contains("2 desired | 2 updated | 2 total"), "{described}");

    // scale, and a pod deleted by hand comes back on the next apply.
    env.ok(&["scale", "deployment/web", "--replicas", "3"]);
    assert_eq!(pods(&env, "app=web").len(), 3);
    env.ok(&["scale", "deployment", "web", "--replicas", "1"]);
    let one = names(&pods(&env, "app=web"));
    assert_eq!(one.len(), 1);
    env.ok(&["delete", &one[0]]);
    assert!(pods(&env, "app=web").is_empty());
    env.ok(&["apply", "-f", &file]);
    assert_eq!(pods(&env, "app=web").len(), 2, "the file says 2");

    // kube generate --type deployment of one of its pods: a Deployment that makes the same pods.
    let pod = names(&pods(&env, "app=web"))[0].clone();
    let generated = env.ok(&["kube", "generate", &pod, "--type", "deployment"]);
    assert!(
        generated.contains("kind: Deployment") && generated.contains("replicas: 1"),
        "{generated}"
    );
    assert!(
        !generated.contains("pod-template-hash") && !generated.contains("controlled-by"),
        "{generated}"
    );
    let copy = env.manifest("copy.yaml", &generated.replace(&format!("name: {pod}"), "name: copy"));
    assert!(env
        .ok(&["create", "-f", &copy])
        .contains("deployment.apps/copy created"));
    let copies = pods(&env, "app=web,tier=front");
    assert_eq!(copies.len(), 3, "web's two and copy's one: {:?}", names(&copies));
    env.ok(&["delete", "deployment/copy"]);
    assert_eq!(pods(&env, "app=web").len(), 2, "web's own pods stay");

    // delete -f: the deployment and its pods go, the claim (and its data) stays.
    let deleted = env.podctl(&["delete", "-f", &file]);
    assert!(deleted.status.success());
    assert!(String::from_utf8_lossy(&deleted.stdout).contains("deployment.apps \"web\" deleted"));
    assert!(String::from_utf8_lossy(&deleted.stderr).contains("persistentvolumeclaim/web-data kept"));
    assert!(pods(&env, "app=web").is_empty());
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
    let claims = env.ok(&["get", "pvc"]);
    assert!(
        claims.contains("web-data") && claims.contains("Bound") && claims.contains("1Gi"),
        "{claims}"
    );
    let data = env
        .state_dir()
        .join("default")
        .join("claims")
        .join("web-data")
        .join("note");
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "from-a\n");
    assert!(env.ok(&["get", "deployments"]).is_empty());

    // With --volumes the claim goes too, data and all.
    env.ok(&["delete", "-f", &file, "--volumes", "--ignore-not-found"]);
    assert!(env.ok(&["get", "pvc"]).is_empty());
    assert!(!data.exists());
}

#[test]
fn workloads_are_refused_with_the_api_servers_field_paths_and_nothing_is_made() {
    let env = require_env!("workloads-refused");
    let mismatch = env.manifest(
        "mismatch.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  \
             template:\n    metadata: {{labels: {{app: api}}}}\n    spec:\n      containers: [{{name: a, image: {BUSYBOX_IMAGE}}}]\n"
        ),
    );
    env.fails_leaving_nothing(
        &["create", "-f", &mismatch],
        &[
            "spec.template.metadata.labels",
            "`selector` does not match template `labels`",
        ],
    );
    let job = env.manifest(
        "job.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: agent}}\nspec:\n  selector: {{matchLabels: {{app: a}}}}\n  \
             template:\n    metadata: {{labels: {{app: a}}}}\n    spec:\n      restartPolicy: Never\n      containers: [{{name: a, image: {BUSYBOX_IMAGE}}}]\n"
        ),
    );
    env.fails_leaving_nothing(
        &["apply", "-f", &job],
        &["spec.template.spec.restartPolicy", "supported values: \"Always\""],
    );
    assert!(env
        .fails(&["get", "deployment", "nope"])
        .contains("deployment.apps/nope not found"));
}

#[test]
fn a_daemon_set_runs_one_pod_and_a_claim_outlives_the_pods_that_wrote_it() {
    let env = require_env!("workloads-daemonset");
    env.import_busybox();
    let writer = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: writer}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, 'echo kept > /data/file']
    volumeMounts: [{{name: v, mountPath: /data}}]
  volumes: [{{name: v, persistentVolumeClaim: {{claimName: notes}}}}]
"#
    );
    // A claimName with no claim in the files: podctl makes one.
    let out = env.podctl(&["create", "-f", &env.manifest("writer.yaml", &writer)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no PersistentVolumeClaim notes is given"));
    env.wait_until(Duration::from_secs(30), "the writer to finish", || {
        env.pod_json("writer")["status"]["phase"] == "Succeeded"
    });
    env.ok(&["delete", "writer"]);

    let daemon = format!(
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: reader}}
spec:
  selector: {{matchLabels: {{app: reader}}}}
  template:
    metadata: {{labels: {{app: reader}}}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: main
        image: {BUSYBOX_IMAGE}
        command: [sh, -c, 'cat /data/file; exec sleep 3600']
        volumeMounts: [{{name: v, mountPath: /data, readOnly: true}}]
      volumes: [{{name: v, persistentVolumeClaim: {{claimName: notes}}}}]
"#
    );
    let file = env.manifest("daemon.yaml", &daemon);
    env.ok(&["apply", "-f", &file]);
    let reader = pods(&env, "app=reader");
    assert_eq!(reader.len(), 1);
    let name = reader[0]["metadata"]["name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with("reader-") && name.len() == "reader-".len() + 5,
        "{name}"
    );
    assert!(reader[0]["metadata"]["labels"]["controller-revision-hash"].is_string());
    assert_eq!(env.wait_for_log(&name, "main", "kept"), "kept\n");
    assert!(env
        .fails(&["scale", "daemonset/reader", "--replicas", "2"])
        .contains("does not scale"));
    let table = env.ok(&["get", "ds"]);
    assert!(table.contains("NODE SELECTOR"), "{table}");
    // A delete interrupted after the record went leaves pods that `gc` finds: the record is taken
    // away here with ctr.
    let ctr = |args: &[&str]| {
        let out = std::process::Command::new("ctr")
            .arg("--address")
            .arg(&env.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ctr {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let record = ctr(&["content", "ls"])
        .lines()
        .find(|l| l.contains("podctl.io/object.kind=DaemonSet"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the DaemonSet's record")
        .to_string();
    ctr(&["content", "rm", &record]);
    let listed = env.ok(&["gc", "--dry-run"]);
    assert!(
        listed.contains(&format!("pod {name}: its DaemonSet/reader is gone")),
        "{listed}"
    );
    assert_eq!(pods(&env, "app=reader").len(), 1, "a dry run removes nothing");
    env.ok(&["gc"]);
    assert!(pods(&env, "app=reader").is_empty());
    env.ok(&["delete", "pvc", "notes"]);
    assert!(env.ok(&["get", "pvc"]).is_empty());
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());
}
