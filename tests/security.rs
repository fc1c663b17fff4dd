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
