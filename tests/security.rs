//! securityContext on a real containerd, checked from inside the members: the pod's and the
//! container's users and groups (the container's win), capabilities dropped and added,
//! readOnlyRootFilesystem, allowPrivilegeEscalation: false (no_new_privs), privileged; and
//! runAsNonRoot refusing a root process with kubelet's message, leaving nothing.

mod common;

use common::BUSYBOX_IMAGE;

/// The `CapEff` mask of a member's process, from /proc/self/status.
fn effective_caps(status: &str) -> u64 {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .expect("CapEff line")
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

#[test]
fn users_groups_capabilities_and_filesystem_follow_the_security_context() {
    let env = require_env!("security");
    env.import_busybox();
    env.create(
        "secure.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: secure}}
spec:
  terminationGracePeriodSeconds: 0
  securityContext:
    runAsUser: 1000
    runAsGroup: 1000
    supplementalGroups: [3000]
  containers:
  - name: inherits
    image: {BUSYBOX_IMAGE}
    command: [sleep, '3600']
  - name: own
    image: {BUSYBOX_IMAGE}
    command: [sleep, '3600']
    securityContext:
      runAsUser: 2000
      runAsGroup: 2500
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {{drop: [ALL], add: [NET_BIND_SERVICE]}}
  - name: root
    image: {BUSYBOX_IMAGE}
    command: [sleep, '3600']
    securityContext:
      runAsUser: 0
      privileged: true
"#
        ),
    );
    env.wait_running("secure");
    let sandbox = env.sandbox_id("secure");
    let run = |member: &str, script: &str| env.ok(&["exec", "secure", "-c", member, "--", "sh", "-c", script]);

    assert_eq!(
        run("inherits", "id -u; id -g; id -G")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1000", "1000", "1000", "3000"]
    );
    assert_eq!(
        run("own", "id -u; id -g").split_whitespace().collect::<Vec<_>>(),
        ["2000", "2500"]
    );

    let own = run("own", "cat /proc/self/status");
    // NET_BIND_SERVICE is capability 10, and the only one left (exec runs as the member's user,
    // whose effective set a non-root exec gets empty; the bounding set shows what it may hold).
    let bounding = own.lines().find_map(|l| l.strip_prefix("CapBnd:")).unwrap().trim();
    assert_eq!(u64::from_str_radix(bounding, 16).unwrap(), 1 << 10, "{own}");
    assert!(
        own.lines().any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')),
        "{own}"
    );
    let write = env.podctl(&["exec", "secure", "-c", "own", "--", "touch", "/new-file"]);
    assert!(!write.status.success(), "the root filesystem is read-only");

    // Defaults: containerd's 14 capabilities; privileged: all of them.
    let root = effective_caps(&run("root", "cat /proc/self/status"));
    assert!(root.count_ones() >= 40, "privileged has every capability: {root:x}");
    let inherits = run("inherits", "cat /proc/self/status");
    let bounding = inherits.lines().find_map(|l| l.strip_prefix("CapBnd:")).unwrap().trim();
    assert_eq!(
        u64::from_str_radix(bounding, 16).unwrap().count_ones(),
        14,
        "{inherits}"
    );

    env.ok(&["delete", "secure"]);
    env.assert_nothing_left(&sandbox);
}

#[test]
fn run_as_non_root_refuses_a_root_process_and_leaves_nothing() {
    let env = require_env!("security-nonroot");
    env.import_busybox();
    let manifest = env.manifest(
        "nonroot.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: nonroot}}\nspec:\n  securityContext: {{runAsNonRoot: true}}\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    command: [sleep, '3600']\n"
        ),
    );
    env.fails_leaving_nothing(
        &["create", "-f", &manifest],
        &["container main", "runAsNonRoot and image will run as root", "runAsUser"],
    );
    let bad = env.manifest(
        "badcap.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: badcap}}\nspec:\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    securityContext: {{capabilities: {{add: [NET_FLY]}}}}\n"
        ),
    );
    env.fails_leaving_nothing(
        &["create", "-f", &bad],
        &["spec.containers[0].securityContext.capabilities.add[0]", "NET_FLY"],
    );
}

/// busybox plus an /etc/passwd and /etc/group naming a user `app`, whose image USER is `user`.
fn import_named_image(env: &common::TestEnv, reference: &str, user: &str) {
    use podctl::image::layout::{build_image, Entry, ImageSpec};
    let mut layer = common::busybox_layer();
    layer.push(Entry::dir("etc", 0o755));
    layer.push(Entry::file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1500:1600:app:/home/app:/bin/sh\n".to_vec(),
    ));
    layer.push(Entry::file(
        "etc/group",
        0o644,
        b"root:x:0:\napp:x:1600:\nstaff:x:1700:app\n".to_vec(),
    ));
    let spec = ImageSpec {
        reference: reference.into(),
        cmd: vec!["sh".into()],
        env: vec!["PATH=/bin".into()],
        user: Some(user.into()),
        ..Default::default()
    };
    let image = build_image(&spec, &layer).unwrap();
    let path = env.dir.join(format!("{user}.tar"));
    image.write_archive(std::fs::File::create(&path).unwrap()).unwrap();
    env.ok(&["image", "import", path.to_str().unwrap()]);
}

#[test]
fn image_user_names_fs_group_sysctls_and_seccomp_apply() {
    let env = require_env!("security-named");
    env.import_busybox();
    import_named_image(&env, "podctl.test/named:1", "app");
    env.create(
        "named.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: named, labels: {{app: named}}}}
spec:
  terminationGracePeriodSeconds: 0
  securityContext:
    fsGroup: 2000
    seccompProfile: {{type: RuntimeDefault}}
    sysctls:
    - {{name: net.ipv4.ip_local_port_range, value: "20000 30000"}}
    - {{name: kernel/shm_rmid_forced, value: "1"}}
  volumes:
  - {{name: data, emptyDir: {{}}}}
  - {{name: info, downwardAPI: {{items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]}}}}
  containers:
  - name: app
    image: podctl.test/named:1
    command: [sleep, '3600']
    volumeMounts: [{{name: data, mountPath: /data}}, {{name: info, mountPath: /info}}]
  - name: open
    image: {BUSYBOX_IMAGE}
    command: [sleep, '3600']
    securityContext: {{seccompProfile: {{type: Unconfined}}}}
"#
        ),
    );
    env.wait_running("named");
    let run = |member: &str, script: &str| env.ok(&["exec", "named", "-c", member, "--", "sh", "-c", script]);
    // USER app: its UID and GID from /etc/passwd, its groups from /etc/group, plus the fsGroup.
    assert_eq!(
        run("app", "id -u; id -g").split_whitespace().collect::<Vec<_>>(),
        ["1500", "1600"]
    );
    let groups = run("app", "id -G");
    for gid in ["1600", "1700", "2000"] {
        assert!(groups.split_whitespace().any(|g| g == gid), "{groups}");
    }
    // fsGroup owns the emptyDir (setgid, group-writable) and the downwardAPI files.
    assert_eq!(run("app", "stat -c '%g %a' /data").trim(), "2000 2777");
    run("app", "touch /data/made && stat -c %g /data/made");
    assert_eq!(run("app", "stat -L -c %g /info/labels").trim(), "2000");
    // Namespaced sysctls, set in the pod's namespaces.
    assert_eq!(
        run("app", "cat /proc/sys/net/ipv4/ip_local_port_range")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["20000", "30000"]
    );
    assert_eq!(run("open", "cat /proc/sys/kernel/shm_rmid_forced").trim(), "1");
    // RuntimeDefault is a filter (mode 2); Unconfined is none.
    let seccomp = |member: &str| {
        run(member, "cat /proc/self/status")
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_string()))
            .unwrap()
    };
    assert_eq!(seccomp("app"), "2");
    assert_eq!(seccomp("open"), "0");
    env.delete_leaving_nothing("named");

    // A USER the image does not define is refused with what is missing, and nothing is made.
    import_named_image(&env, "podctl.test/ghost:1", "ghost");
    let ghost = env.manifest(
        "ghost.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: ghost}\nspec:\n  containers:\n  - name: main\n    image: podctl.test/ghost:1\n    command: [sleep, '1']\n",
    );
    env.fails_leaving_nothing(
        &["create", "-f", &ghost],
        &["container main", "no user \"ghost\" in the image's /etc/passwd"],
    );
    let bad = env.manifest(
        "badsysctl.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: badsysctl}}\nspec:\n  securityContext:\n    sysctls: [{{name: vm.swappiness, value: '1'}}]\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n"),
    );
    env.fails_leaving_nothing(
        &["create", "-f", &bad],
        &["spec.securityContext.sysctls[0].name", "not a namespaced sysctl"],
    );
}
