//! The member's process from its image config and its Pod container, with Kubernetes' rules:
//! `command` replaces the image ENTRYPOINT (and drops its CMD), `args` replaces CMD, Pod `env`
//! overrides image `Env` by name, and `$(VAR)` in command, args and env values expands.

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;

use super::SpecError;
use crate::manifest::{Container, PodSecurityContext};

pub(crate) const DEFAULT_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, PartialEq)]
pub struct ProcessPlan {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// The pod's supplementalGroups.
    pub additional_gids: Vec<u32>,
}

/// The member's process; `pod_security` is the pod's securityContext (the container's own wins).
pub fn plan_process(
    container: &Container,
    image: &ImageConfiguration,
    hostname: &str,
    pod_security: Option<&PodSecurityContext>,
) -> Result<ProcessPlan, SpecError> {
    let config = image.config().clone().unwrap_or_default();
    let entrypoint = config.entrypoint().clone().unwrap_or_default();
    let cmd = config.cmd().clone().unwrap_or_default();

    // Image env first, then the Pod's, later names replacing earlier ones in place (as kubelet does).
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |name: &str, value: String, env: &mut Vec<(String, String)>| match env.iter_mut().find(|(n, _)| n == name)
    {
        Some(slot) => slot.1 = value,
        None => env.push((name.to_string(), value)),
    };
    for entry in config.env().clone().unwrap_or_default() {
        let (name, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        set(name, value.to_string(), &mut env);
    }
    if !env.iter().any(|(n, _)| n == "PATH") {
        let (name, value) = DEFAULT_PATH_ENV.split_once('=').unwrap_or_default();
        set(name, value.to_string(), &mut env);
    }
    set("HOSTNAME", hostname.to_string(), &mut env);
    apply_pod_env(&mut env, container);
    let defined: BTreeMap<&str, &str> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();

    let command: Vec<String> = container.command.iter().map(|c| expand(c, &defined)).collect();
    let args: Vec<String> = container.args.iter().map(|a| expand(a, &defined)).collect();
    let argv = match (command.is_empty(), args.is_empty()) {
        (true, true) => [entrypoint, cmd].concat(),
        (true, false) => [entrypoint, args].concat(),
        (false, _) => [command, args].concat(),
    };
    if argv.is_empty() {
        return Err(SpecError::NoCommand {
            container: container.name.clone(),
            image: container.image.clone(),
        });
    }

    let cwd = container
        .working_dir
        .clone()
        .or_else(|| config.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    let own = container.security_context.as_ref();
    let run_as_user = own
        .and_then(|s| s.run_as_user)
        .or(pod_security.and_then(|s| s.run_as_user));
    let run_as_group = own
        .and_then(|s| s.run_as_group)
        .or(pod_security.and_then(|s| s.run_as_group));
    let run_as_non_root = own
        .and_then(|s| s.run_as_non_root)
        .or(pod_security.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    let image_user = config.user().as_deref().unwrap_or("");
    let (uid, gid) = match (run_as_user, parse_user(image_user, container)) {
        // The securityContext's user stands; the image's group only when it names one.
        (Some(uid), parsed) => (uid, parsed.map(|(_, g)| g).unwrap_or(0)),
        (None, parsed) => parsed?,
    };
    let gid = run_as_group.unwrap_or(gid);
    if run_as_non_root && uid == 0 {
        return Err(SpecError::RunsAsRoot {
            container: container.name.clone(),
        });
    }
    Ok(ProcessPlan {
        args: argv,
        env: env.into_iter().map(|(n, v)| format!("{n}={v}")).collect(),
        cwd,
        uid,
        gid,
        additional_gids: pod_security.map(|s| s.supplemental_groups.clone()).unwrap_or_default(),
    })
}

/// The Pod's `env` on top of `env`, in order: each value expands `$(NAME)` against what is defined
/// before it, and a name set again replaces the earlier value in place (as kubelet does).
pub fn apply_pod_env(env: &mut Vec<(String, String)>, container: &Container) {
    for var in &container.env {
        let defined: BTreeMap<&str, &str> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let value = expand(&var.value, &defined);
        match env.iter_mut().find(|(n, _)| *n == var.name) {
            Some(slot) => slot.1 = value,
            None => env.push((var.name.clone(), value)),
        }
    }
}

/// `$(NAME)` -> the value of NAME when defined, kept literally otherwise; `$$` escapes a `$`.
pub fn expand(input: &str, defined: &BTreeMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match defined.get(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Image `User`: empty, `root`, `UID` or `UID:GID`. Names other than root would need the image's
/// /etc/passwd, which podctl does not read yet.
fn parse_user(user: &str, container: &Container) -> Result<(u32, u32), SpecError> {
    let unsupported = || SpecError::User {
        container: container.name.clone(),
        user: user.to_string(),
    };
    let id = |part: &str| -> Result<u32, SpecError> {
        match part {
            "" | "root" => Ok(0),
            digits => digits.parse().map_err(|_| unsupported()),
        }
    };
    match user.split_once(':') {
        None => {
            let uid = id(user)?;
            Ok((uid, uid))
        }
        Some((u, g)) => Ok((id(u)?, id(g)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::EnvVar;

    fn image(entrypoint: &[&str], cmd: &[&str], env: &[&str], user: &str) -> ImageConfiguration {
        let json = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": entrypoint, "Cmd": cmd, "Env": env, "User": user, "WorkingDir": "/srv"},
            "rootfs": {"type": "layers", "diff_ids": []}
        });
        serde_json::from_value(json).unwrap()
    }

    fn container(command: &[&str], args: &[&str]) -> Container {
        let mut c: Container = serde_json::from_value(serde_json::json!({"name": "c", "image": "i"})).unwrap();
        c.command = command.iter().map(|s| s.to_string()).collect();
        c.args = args.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn command_and_args_follow_kubernetes_rules() {
        let img = image(&["/entry"], &["--cmd"], &[], "");
        let args = |c: Container| plan_process(&c, &img, "h", None).unwrap().args;
        assert_eq!(args(container(&[], &[])), ["/entry", "--cmd"]);
        assert_eq!(args(container(&[], &["x"])), ["/entry", "x"]);
        assert_eq!(args(container(&["/bin/sh"], &[])), ["/bin/sh"]);
        assert_eq!(
            args(container(&["/bin/sh"], &["-c", "true"])),
            ["/bin/sh", "-c", "true"]
        );
    }

    #[test]
    fn env_overrides_by_name_and_expands() {
        let img = image(&["/e"], &[], &["A=1", "PATH=/bin"], "1000:2000");
        let mut c = container(&["echo", "$(A)", "$$(A)", "$(MISSING)"], &[]);
        c.env = vec![
            EnvVar {
                name: "A".into(),
                value: "2".into(),
                value_from: None,
            },
            EnvVar {
                name: "B".into(),
                value: "$(A)-b".into(),
                value_from: None,
            },
        ];
        let plan = plan_process(&c, &img, "pod1", None).unwrap();
        assert_eq!(plan.env, ["A=2", "PATH=/bin", "HOSTNAME=pod1", "B=2-b"]);
        assert_eq!(plan.args, ["echo", "2", "$(A)", "$(MISSING)"]);
        assert_eq!((plan.uid, plan.gid, plan.cwd.as_str()), (1000, 2000, "/srv"));
    }

    #[test]
    fn default_path_and_named_user() {
        let img = image(&["/e"], &[], &[], "");
        let plan = plan_process(&container(&[], &[]), &img, "h", None).unwrap();
        assert!(plan.env.iter().any(|e| e.starts_with("PATH=/usr/local/sbin")));
        let named = image(&["/e"], &[], &[], "nginx");
        let err = plan_process(&container(&[], &[]), &named, "h", None).unwrap_err();
        assert!(err.to_string().contains("nginx"), "{err}");
        let empty = image(&[], &[], &[], "");
        assert!(matches!(
            plan_process(&container(&[], &[]), &empty, "h", None),
            Err(SpecError::NoCommand { .. })
        ));
    }
}
