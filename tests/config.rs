//! ConfigMaps and Secrets on a real containerd: a stack file (several documents) whose pods read
//! them through env, envFrom and configMap/secret/projected volumes, checked from inside the
//! members; `kind: List`; a missing key fails and leaves nothing (the stack's objects rolled
//! back); Secret values appear in no output; the objects survive a containerd restart; `create
//! configmap|secret` from literals and files; `delete -f` removes the whole stack.

mod common;

use common::BUSYBOX_IMAGE;

const SECRET_VALUE: &str = "s3cr3t-Value-9";

fn stack() -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, 'echo started; exec sleep 3600']
    env:
    - name: GREETING
      valueFrom:
        configMapKeyRef: {{name: app-config, key: greeting}}
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {{name: app-secret, key: password}}
    - name: ABSENT
      valueFrom:
        configMapKeyRef: {{name: no-such-map, key: k, optional: true}}
    - name: token
      value: from-env
    envFrom:
    - prefix: CFG_
      configMapRef: {{name: app-config}}
    - secretRef: {{name: app-secret}}
    volumeMounts:
    - {{name: config, mountPath: /etc/config}}
    - {{name: secret, mountPath: /etc/secret}}
    - {{name: both, mountPath: /etc/both}}
    - {{name: config, mountPath: /etc/app.properties, subPath: app.properties}}
  volumes:
  - name: config
    configMap: {{name: app-config}}
  - name: secret
    secret:
      secretName: app-secret
      defaultMode: 0400
      items: [{{key: password, path: db/password}}]
  - name: both
    projected:
      sources:
      - configMap: {{name: app-config, items: [{{key: greeting, path: greeting.txt}}]}}
      - secret: {{name: app-secret, items: [{{key: token, path: token, mode: 0600}}]}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  greeting: hello $(HOME)
  MODE: from-config-map
  app.properties: |
    color=blue
---
apiVersion: v1
kind: Secret
metadata:
  name: app-secret
type: Opaque
stringData:
  password: {SECRET_VALUE}
data:
  token: dG9rLTEyMw==
"#
    )
}

/// A second pod of the stack, reading the same objects its own way.
fn second_pod() -> String {
    format!(
        r#"---
apiVersion: v1
kind: Pod
metadata:
  name: second
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, 'echo "$LEVEL"; cat /conf/level; exec sleep 3600']
    env:
    - name: LEVEL
      valueFrom:
        configMapKeyRef: {{name: app-config, key: MODE}}
    volumeMounts:
    - {{name: conf, mountPath: /conf}}
  volumes:
  - name: conf
    projected:
      defaultMode: 0440
      sources:
      - configMap: {{name: app-config, items: [{{key: MODE, path: level}}]}}
"#
    )
}

#[test]
fn a_stack_of_config_maps_secrets_and_pods_works_and_leaves_nothing() {
    let mut env = require_env!("config-stack");
    env.import_busybox();
    let file = env.manifest("stack.yaml", &format!("{}{}", stack(), second_pod()));
    let created = env.ok(&["create", "-f", &file]);
    // Objects first, whatever their place in the file.
    assert_eq!(
        created.lines().collect::<Vec<_>>(),
        [
            "configmap/app-config created",
            "secret/app-secret created",
            "pod/reader created",
            "pod/second created"
        ],
        "{created}"
    );
    env.wait_running("reader");
    env.wait_running("second");
    let second = env.ok(&[
        "exec",
        "second",
        "--",
        "sh",
        "-c",
        "echo $LEVEL; cat /conf/level; echo; stat -L -c %a /conf/level",
    ]);
    assert_eq!(second, "from-config-map\nfrom-config-map\n440\n", "{second}");
    let second_sandbox = env.sandbox_id("second");
    let sandbox = env.sandbox_id("reader");
    let inside = |script: &str| env.ok(&["exec", "reader", "--", "sh", "-c", script]);

    let vars = inside("env | sort");
    for wanted in [
        // A value read from an object is never $(VAR)-expanded.
        "GREETING=hello $(HOME)",
        &format!("PASSWORD={SECRET_VALUE}"),
        "CFG_greeting=hello $(HOME)",
        "CFG_MODE=from-config-map",
        // env wins over envFrom.
        "token=from-env",
    ] {
        assert!(vars.lines().any(|l| l == wanted), "{wanted} missing from:\n{vars}");
    }
    assert!(
        !vars.contains("ABSENT="),
        "an optional missing reference is skipped: {vars}"
    );

    let files = inside(
        "cat /etc/config/greeting; echo; cat /etc/secret/db/password; echo; cat /etc/both/greeting.txt; echo; \
         cat /etc/both/token; echo; cat /etc/app.properties; \
         stat -L -c '%n %a' /etc/config/greeting /etc/secret/db/password /etc/both/token; \
         stat -f -c '%n %T' /etc/secret /etc/both /etc/config",
    );
    let lines: Vec<&str> = files.lines().collect();
    assert_eq!(
        lines[..5],
        ["hello $(HOME)", SECRET_VALUE, "hello $(HOME)", "tok-123", "color=blue"],
        "{files}"
    );
    assert!(files.contains("/etc/config/greeting 644"), "{files}");
    assert!(files.contains("/etc/secret/db/password 400"), "defaultMode: {files}");
    assert!(files.contains("/etc/both/token 600"), "items[].mode: {files}");
    assert!(files.contains("/etc/secret tmpfs"), "Secret volumes are tmpfs: {files}");
    assert!(
        files.contains("/etc/both tmpfs"),
        "a projected volume with a Secret is tmpfs: {files}"
    );
    assert!(!files.contains("/etc/config tmpfs"), "{files}");
    let write = env.podctl(&["exec", "reader", "--", "sh", "-c", "echo x > /etc/config/new"]);
    assert!(!write.status.success(), "configMap volumes are read-only");

    // The Secret's values are in no output podctl gives.
    let mut outputs = vec![
        env.ok(&["get", "secret", "app-secret", "-o", "yaml"]),
        env.ok(&["get", "secrets", "-o", "json"]),
        env.ok(&["get", "secrets"]),
        env.ok(&["describe", "pod", "reader"]),
        env.ok(&["get", "pod", "reader", "-o", "yaml"]),
        env.ok(&["events"]),
        env.ok(&["logs", "reader"]),
    ];
    outputs.push(String::from_utf8_lossy(&env.podctl(&["create", "-f", &file]).stderr).into_owned());
    for output in &outputs {
        assert!(!output.contains(SECRET_VALUE), "a Secret value was printed:\n{output}");
        assert!(
            !output.contains("dG9rLTEyMw=="),
            "a Secret value was printed:\n{output}"
        );
    }
    assert!(outputs[0].contains("<redacted: 14 bytes>"), "{}", outputs[0]);
    let table = env.ok(&["get", "configmaps"]);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["app-config", "3"])),
        "{table}"
    );

    // Kept in containerd: a restart of containerd loses nothing.
    env.restart_containerd();
    assert!(env
        .ok(&["get", "cm", "app-config", "-o", "json"])
        .contains("color=blue"));
    assert!(env.ok(&["get", "secrets"]).contains("app-secret"));

    let deleted = env.ok(&["delete", "-f", &file]);
    assert_eq!(
        deleted.lines().collect::<Vec<_>>(),
        [
            "pod \"reader\" deleted",
            "pod \"second\" deleted",
            "configmap \"app-config\" deleted",
            "secret \"app-secret\" deleted"
        ],
        "{deleted}"
    );
    env.assert_nothing_left(&sandbox);
    env.assert_nothing_left(&second_sandbox);
    assert!(env.podctl(&["get", "cm", "app-config"]).status.code() == Some(1));
}

#[test]
fn a_missing_reference_fails_the_create_and_rolls_the_stack_back() {
    let env = require_env!("config-missing");
    env.import_busybox();
    let broken = stack().replace("key: greeting}", "key: no-such-key}");
    let file = env.manifest("broken.yaml", &broken);
    let out = env.podctl(&["create", "-f", &file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("document 1 (pod/reader)")
            && stderr.contains("spec.containers[0].env[0].valueFrom.configMapKeyRef")
            && stderr.contains("configmap app-config has no key \"no-such-key\""),
        "{stderr}"
    );
    assert!(stderr.contains("rolled back"), "{stderr}");
    assert!(!stderr.contains(SECRET_VALUE), "{stderr}");
    // Nothing of the stack is left: objects, pod, files.
    assert!(env.podctl(&["get", "cm", "app-config"]).status.code() == Some(1));
    assert!(env.podctl(&["get", "secret", "app-secret"]).status.code() == Some(1));
    assert!(env.podctl(&["get", "pod", "reader"]).status.code() == Some(1));
    assert!(env.containerd_objects().is_empty(), "{:?}", env.containerd_objects());

    // A missing object that is not optional names the reference, and a bad manifest creates
    // nothing at all.
    let alone = broken
        .split("---")
        .next()
        .unwrap()
        .replace("name: app-config, key: no-such-key", "name: app-config, key: greeting");
    let pod_only = env.manifest("pod-only.yaml", &alone);
    let stderr = env.fails(&["create", "-f", &pod_only]);
    assert!(
        stderr.contains("configmap app-config not found") && stderr.contains("optional: true"),
        "{stderr}"
    );
    let bad = env.manifest(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\ndata: {a: b}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: not-base64!}\n",
    );
    let stderr = env.fails(&["create", "-f", &bad]);
    assert!(
        stderr.contains("document 2 (secret/s)") && stderr.contains("data.k") && stderr.contains("base64"),
        "{stderr}"
    );
    assert!(
        env.podctl(&["get", "cm", "ok"]).status.code() == Some(1),
        "validated before anything is made"
    );
}

#[test]
fn lists_and_imperative_objects() {
    let env = require_env!("config-list");
    env.import_busybox();
    let dir = env.dir.join("conf");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "file a").unwrap();
    std::fs::write(dir.join("blob.bin"), [0xff, 0x00, 0xfe]).unwrap();
    env.ok(&[
        "create",
        "configmap",
        "files",
        "--from-literal=level=debug",
        &format!("--from-file={}", dir.display()),
        &format!("--from-file=renamed={}", dir.join("a.txt").display()),
    ]);
    let map = env.ok(&["get", "configmap", "files", "-o", "json"]);
    let map: serde_json::Value = serde_json::from_str(&map).unwrap();
    assert_eq!(map["data"]["level"], "debug");
    assert_eq!(map["data"]["a.txt"], "file a");
    assert_eq!(map["data"]["renamed"], "file a");
    assert_eq!(
        map["binaryData"]["blob.bin"], "/wD+",
        "non-UTF-8 files go to binaryData"
    );
    env.ok(&["create", "secret", "generic", "creds", "--from-literal=user=admin"]);
    env.ok(&[
        "create",
        "secret",
        "docker-registry",
        "pull",
        "--docker-server=127.0.0.1:5000",
        "--docker-username=u",
        "--docker-password=p",
    ]);
    let secrets = env.ok(&["get", "secrets"]);
    assert!(secrets.contains("kubernetes.io/dockerconfigjson"), "{secrets}");
    // A kind: List (what `get -o yaml` prints for several objects) creates each item.
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {{name: listed}}\n  spec:\n    terminationGracePeriodSeconds: 0\n    containers:\n    - name: main\n      image: {BUSYBOX_IMAGE}\n      command: [sleep, '3600']\n      envFrom: [{{configMapRef: {{name: files}}}}, {{secretRef: {{name: creds}}}}]\n"
    );
    let file = env.manifest("list.yaml", &list);
    env.ok(&["create", "-f", &file]);
    env.wait_running("listed");
    let vars = env.ok(&["exec", "listed", "--", "sh", "-c", "env"]);
    assert!(
        vars.lines().any(|l| l == "level=debug") && vars.lines().any(|l| l == "user=admin"),
        "{vars}"
    );
    let sandbox = env.sandbox_id("listed");
    env.ok(&["delete", "-f", &file]);
    env.ok(&["delete", "configmap", "files"]);
    env.ok(&["delete", "secret", "creds", "pull"]);
    assert!(env
        .fails(&["delete", "secret", "creds"])
        .contains("secret creds not found"));
    env.assert_nothing_left(&sandbox);
}

#[test]
fn selectors_pick_pods_and_objects_and_pods_are_deleted_together() {
    let env = require_env!("config-select");
    env.import_busybox();
    let mut stack = String::new();
    for (name, app) in [("w1", "web"), ("w2", "web"), ("w3", "web"), ("d1", "db")] {
        // Members that ignore SIGTERM: each delete waits out the grace period.
        stack.push_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'trap \"\" TERM; while true; do sleep 1; done']\n---\n"
        ));
    }
    stack.push_str(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-cfg, labels: {app: web}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db-cfg, labels: {app: db, tier: data}}\n",
    );
    let file = env.manifest("select.yaml", &stack);
    env.ok(&["create", "-f", &file]);
    for name in ["w1", "w2", "w3", "d1"] {
        env.wait_running(name);
    }
    let names = |out: String| -> Vec<String> {
        out.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect()
    };
    assert_eq!(names(env.ok(&["get", "pods", "-l", "app=web"])), ["w1", "w2", "w3"]);
    assert_eq!(names(env.ok(&["get", "pods", "-l", "app notin (web)"])), ["d1"]);
    assert_eq!(names(env.ok(&["get", "cm", "-l", "tier"])), ["db-cfg"]);
    assert_eq!(names(env.ok(&["get", "cm", "-l", "!tier,app"])), ["web-cfg"]);
    assert!(env.fails(&["get", "pods", "-l", "app in web"]).contains("parentheses"));
    assert_eq!(
        env.ok(&["delete", "configmaps", "-l", "app=db"]).trim(),
        "configmap \"db-cfg\" deleted"
    );
    let sandboxes: Vec<String> = ["w1", "w2", "w3", "d1"].iter().map(|n| env.sandbox_id(n)).collect();
    // Three pods that each take their 2 s grace period go together: one grace period, not three.
    let began = std::time::Instant::now();
    let deleted = env.ok(&["delete", "pods", "-l", "app=web"]);
    let took = began.elapsed();
    eprintln!("3 pods ignoring SIGTERM (grace 2 s) deleted in {took:?}");
    assert_eq!(deleted.lines().count(), 3, "{deleted}");
    assert!(
        took < std::time::Duration::from_millis(5500),
        "deletes ran one after another: {took:?}"
    );
    assert_eq!(names(env.ok(&["get", "pods"])), ["d1"]);
    env.ok(&["delete", "--all", "--grace-period", "0"]);
    env.ok(&["delete", "configmaps", "--all"]);
    assert!(env.ok(&["get", "cm"]).is_empty());
    for sandbox in &sandboxes {
        env.assert_nothing_left(sandbox);
    }
}

#[test]
fn apply_creates_updates_and_leaves_alone_and_changed_files_reach_running_pods() {
    let env = require_env!("config-apply");
    env.import_busybox();
    let file = env.manifest("stack.yaml", &stack());
    let first = env.ok(&["apply", "-f", &file]);
    assert_eq!(
        first.lines().collect::<Vec<_>>(),
        [
            "configmap/app-config created",
            "secret/app-secret created",
            "pod/reader created"
        ],
        "{first}"
    );
    env.wait_running("reader");
    let sandbox = env.sandbox_id("reader");
    let ip = env.pod_json("reader")["status"]["podIP"].clone();
    let again = env.ok(&["apply", "-f", &file]);
    assert_eq!(
        again.lines().collect::<Vec<_>>(),
        [
            "configmap/app-config unchanged",
            "secret/app-secret unchanged",
            "pod/reader unchanged"
        ],
        "{again}"
    );

    // New data: the files in the running pod change (one swap of `..data`), its env does not.
    let changed = stack()
        .replace("greeting: hello $(HOME)", "greeting: bonjour")
        .replace("token: dG9rLTEyMw==", "token: bmV3LXRvaw==");
    std::fs::write(&file, &changed).unwrap();
    let began = std::time::Instant::now();
    let applied = env.ok(&["apply", "-f", &file]);
    assert_eq!(
        applied.lines().collect::<Vec<_>>(),
        [
            "configmap/app-config configured",
            "secret/app-secret configured",
            "pod/reader unchanged"
        ],
        "{applied}"
    );
    let inside = |script: &str| env.ok(&["exec", "reader", "--", "sh", "-c", script]);
    env.wait_until(std::time::Duration::from_secs(10), "the new files in the pod", || {
        inside("cat /etc/config/greeting /etc/both/greeting.txt /etc/both/token") == "bonjourbonjournew-tok"
    });
    eprintln!(
        "files updated in the running pod {:?} after the apply began",
        began.elapsed()
    );
    assert_eq!(
        inside("echo $GREETING").trim(),
        "hello $(HOME)",
        "env stays as the pod started"
    );
    // A subPath mount keeps the file it was started with, as in Kubernetes.
    assert_eq!(inside("cat /etc/app.properties").trim(), "color=blue");
    assert_eq!(env.pod_json("reader")["status"]["podIP"], ip, "the same pod");

    // A new image is the one change a pod takes in place: the member restarts on it, in the
    // same sandbox (same IP), its restart count one up.
    let mut layer = common::busybox_layer();
    layer.push(podctl::image::layout::Entry::file("version", 0o644, b"two".to_vec()));
    let image = podctl::image::layout::build_image(
        &podctl::image::layout::ImageSpec {
            reference: "podctl.test/busybox:2".into(),
            cmd: vec!["sh".into()],
            env: vec!["PATH=/bin".into(), "IMAGE_VERSION=2".into()],
            ..Default::default()
        },
        &layer,
    )
    .unwrap();
    let archive = env.dir.join("busybox2.tar");
    image.write_archive(std::fs::File::create(&archive).unwrap()).unwrap();
    env.ok(&["image", "import", archive.to_str().unwrap()]);
    let changed = changed.replace(&format!("image: {BUSYBOX_IMAGE}"), "image: podctl.test/busybox:2");
    std::fs::write(&file, &changed).unwrap();
    let applied = env.ok(&["apply", "-f", &file]);
    assert!(applied.contains("pod/reader configured"), "{applied}");
    env.wait_running("reader");
    assert_eq!(
        inside("cat /version; echo \" $IMAGE_VERSION\""),
        "two 2\n",
        "the new image's rootfs and env"
    );
    let status = env.container_status("reader", "main");
    assert_eq!(status["restartCount"], 1, "{status}");
    assert_eq!(status["image"], "podctl.test/busybox:2", "{status}");
    assert_eq!(env.pod_json("reader")["status"]["podIP"], ip, "the same sandbox");
    assert_eq!(env.sandbox_id("reader"), sandbox);
    assert!(env.ok(&["apply", "-f", &file]).contains("pod/reader unchanged"));
    // Files and env from the objects are still there.
    assert_eq!(inside("cat /etc/config/greeting"), "bonjour");

    // Another change to the pod's spec is refused with the fields; what the same apply changed
    // before (the Secret) is put back, files included.
    let refused = changed
        .replace("echo started;", "echo begun;")
        .replace("token: bmV3LXRvaw==", "token: dGhpcmQ=");
    std::fs::write(&file, &refused).unwrap();
    let stderr = env.fails(&["apply", "-f", &file]);
    assert!(
        stderr.contains("document 1 (pod/reader)")
            && stderr.contains("spec.containers[0].command[2]")
            && stderr.contains("--force")
            && stderr.contains("secret/app-secret put back as it was (rolled back)"),
        "{stderr}"
    );
    assert_eq!(env.sandbox_id("reader"), sandbox, "refused: the pod is the same");
    assert_eq!(
        inside("cat /etc/both/token"),
        "new-tok",
        "the Secret's change was rolled back"
    );
    // An immutable ConfigMap refuses new data.
    let immutable = changed.replace(
        "kind: ConfigMap\nmetadata:\n  name: app-config\n",
        "kind: ConfigMap\nmetadata:\n  name: app-config\nimmutable: true\n",
    );
    std::fs::write(&file, &immutable).unwrap();
    assert!(env
        .ok(&["apply", "-f", &file])
        .contains("configmap/app-config configured"));
    let frozen = immutable.replace("greeting: bonjour", "greeting: hola");
    std::fs::write(&file, &frozen).unwrap();
    assert!(env
        .fails(&["apply", "-f", &file])
        .contains("configmap app-config is immutable"));

    // --force: deleted and created again.
    std::fs::write(&file, immutable.replace("echo started;", "echo begun;")).unwrap();
    let forced = env.ok(&["apply", "-f", &file, "--force"]);
    assert!(forced.contains("pod/reader replaced"), "{forced}");
    env.wait_running("reader");
    assert!(env.wait_for_log("reader", "main", "begun").contains("begun"));
    let new_sandbox = env.sandbox_id("reader");
    env.ok(&["delete", "-f", &file]);
    env.assert_nothing_left(&sandbox);
    env.assert_nothing_left(&new_sandbox);
}
