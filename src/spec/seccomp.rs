//! `seccompProfile` as an OCI seccomp filter. `RuntimeDefault` denies what containerd's default
//! profile denies: the system calls no container needs, and those a capability unlocks unless the
//! container holds that capability (so `privileged` or `add: [SYS_ADMIN]` still mount). They fail
//! with EPERM, everything else is allowed. `Localhost` loads a profile in OCI form (Docker's
//! conditional rules are refused) from the host's seccomp directory, as kubelet does from
//! `<root>/seccomp`. `Unconfined` and no profile
//! install none, Kubernetes' default.

use std::path::Path;

use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompBuilder, LinuxSyscallBuilder,
};

use super::SpecError;
use crate::manifest::SeccompProfile;

pub use crate::manifest::SECCOMP_LOCALHOST_DIR as LOCALHOST_DIR;

/// Denied whatever the container's capabilities (kernel keyrings, loading kernels, swap, obsolete
/// and 32-bit-only calls, userfaultfd).
const ALWAYS_DENIED: &[&str] = &[
    "add_key",
    "create_module",
    "get_kernel_syms",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "nfsservctl",
    "query_module",
    "request_key",
    "swapoff",
    "swapon",
    "_sysctl",
    "sysfs",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// Denied unless the container holds the capability.
const DENIED_WITHOUT: &[(Capability, &[&str])] = &[
    (
        Capability::SysAdmin,
        &[
            "bpf",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "pivot_root",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (Capability::SysBoot, &["reboot"]),
    (Capability::SysChroot, &["chroot"]),
    (Capability::SysModule, &["delete_module", "finit_module", "init_module"]),
    (Capability::SysPacct, &["acct"]),
    (
        Capability::SysPtrace,
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    (Capability::SysRawio, &["ioperm", "iopl"]),
    (
        Capability::SysTime,
        &["clock_adjtime", "clock_settime", "settimeofday", "stime"],
    ),
    (Capability::Syslog, &["syslog"]),
    (Capability::SysNice, &["get_mempolicy", "mbind", "set_mempolicy"]),
    (Capability::DacReadSearch, &["open_by_handle_at"]),
];

/// The filter for `profile` (the container's, else the pod's) of a process holding `caps`.
pub fn filter(
    profile: Option<&SeccompProfile>,
    caps: &Capabilities,
    localhost_dir: &Path,
) -> Result<Option<LinuxSeccomp>, SpecError> {
    let Some(profile) = profile else { return Ok(None) };
    match profile.type_.as_str() {
        "Unconfined" => Ok(None),
        "RuntimeDefault" => Ok(Some(runtime_default(caps)?)),
        "Localhost" => {
            let relative = profile.localhost_profile.as_deref().unwrap_or_default();
            let path = localhost_dir.join(relative);
            let text = std::fs::read_to_string(&path).map_err(|e| SpecError::Seccomp {
                profile: path.display().to_string(),
                cause: e.to_string(),
            })?;
            let fail = |cause: String| SpecError::Seccomp {
                profile: path.display().to_string(),
                cause,
            };
            let raw: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| fail(format!("it is not JSON: {e}")))?;
            // Docker's conditional rules (by capability, kernel or architecture) would be dropped
            // silently, widening the filter: refused instead.
            let conditional = raw.get("archMap").is_some()
                || raw["syscalls"].as_array().is_some_and(|rules| {
                    rules
                        .iter()
                        .any(|r| r.get("includes").is_some() || r.get("excludes").is_some())
                });
            if conditional {
                return Err(fail(
                    "it uses Docker's conditional rules (archMap, includes, excludes), which podctl does not \
                     evaluate; write the rules out in OCI form (defaultAction, architectures, syscalls)"
                        .into(),
                ));
            }
            let parsed: LinuxSeccomp = serde_json::from_value(raw)
                .map_err(|e| fail(format!("it is not a seccomp profile in OCI form: {e}")))?;
            Ok(Some(parsed))
        }
        other => Err(SpecError::Seccomp {
            profile: other.to_string(),
            cause: "unknown seccompProfile type".into(),
        }),
    }
}

fn runtime_default(caps: &Capabilities) -> Result<LinuxSeccomp, SpecError> {
    let mut denied: Vec<String> = ALWAYS_DENIED.iter().map(|s| s.to_string()).collect();
    for (capability, calls) in DENIED_WITHOUT {
        if !caps.contains(capability) {
            denied.extend(calls.iter().map(|s| s.to_string()));
        }
    }
    denied.sort();
    denied.dedup();
    let mut rules = vec![LinuxSyscallBuilder::default()
        .names(denied)
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(libc::EPERM as u32)
        .build()?];
    // clone3 cannot be filtered by its flags: without SYS_ADMIN it reports ENOSYS, so libc falls
    // back to clone (EPERM would make every thread creation fail), as in containerd's profile.
    if !caps.contains(&Capability::SysAdmin) {
        rules.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone3".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(libc::ENOSYS as u32)
                .build()?,
        );
    }
    Ok(LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
            Arch::ScmpArchAarch64,
        ])
        .syscalls(rules)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(filter: &LinuxSeccomp) -> Vec<String> {
        filter.syscalls().as_ref().unwrap()[0].names().clone()
    }

    #[test]
    fn runtime_default_denies_what_the_capabilities_do_not_unlock() {
        let profile = SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        };
        let plain = filter(Some(&profile), &Capabilities::new(), Path::new("/nonexistent"))
            .unwrap()
            .unwrap();
        assert!(denied(&plain).contains(&"mount".to_string()));
        assert!(denied(&plain).contains(&"keyctl".to_string()));
        let admin: Capabilities = [Capability::SysAdmin].into_iter().collect();
        let with_admin = filter(Some(&profile), &admin, Path::new("/nonexistent"))
            .unwrap()
            .unwrap();
        assert!(!denied(&with_admin).contains(&"mount".to_string()));
        assert!(
            denied(&with_admin).contains(&"keyctl".to_string()),
            "denied whatever the capabilities"
        );
        let unconfined = SeccompProfile {
            type_: "Unconfined".into(),
            localhost_profile: None,
        };
        assert!(filter(Some(&unconfined), &admin, Path::new("/")).unwrap().is_none());
        assert!(filter(None, &admin, Path::new("/")).unwrap().is_none());
        let missing = SeccompProfile {
            type_: "Localhost".into(),
            localhost_profile: Some("nope.json".into()),
        };
        let e = filter(Some(&missing), &admin, Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/nope.json"), "{e}");
    }
}
