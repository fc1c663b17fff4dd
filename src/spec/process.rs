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

/// The image's /etc/passwd and /etc/group (empty where it has none): USER names resolve there,
/// and a user's groups there become the process's supplementary groups, as containerd does.
#[derive(Debug, Default, Clone)]
pub struct ImageAccounts {
    pub passwd: String,
    pub group: String,
}

impl ImageAccounts {
    /// (name, uid, gid) of the passwd entry whose name or UID is `who`.
    fn user(&self, who: &str) -> Option<(String, u32, u32)> {
        self.passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let (name, uid, gid) = (fields.first()?, fields.get(2)?, fields.get(3)?);
            (*name == who || *uid == who).then(|| Some((name.to_string(), uid.parse().ok()?, gid.parse().ok()?)))?
        })
    }

    /// The GID of the group whose name or GID is `which`.
    fn group(&self, which: &str) -> Option<u32> {
        self.group.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let (name, gid) = (fields.first()?, fields.get(2)?);
            (*name == which || *gid == which).then(|| gid.parse().ok())?
        })
    }

    /// The groups that list `user` as a member.
    fn groups_of(&self, user: &str) -> Vec<u32> {
        self.group
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                let members = fields.get(3)?;
                members
                    .split(',')
                    .any(|m| m == user)
                    .then(|| fields.get(2)?.parse().ok())?
            })
            .collect()
    }
}

/// The member's process; `pod_security` is the pod's securityContext (the container's own wins).
pub fn plan_process(
    container: &Container,
    image: &ImageConfiguration,
    hostname: &str,
    pod_security: Option<&PodSecurityContext>,
    accounts: &ImageAccounts,
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
    let (uid, gid, mut additional_gids) = match run_as_user {
        // The securityContext's user stands, with its passwd group unless the image names one.
        Some(uid) => {
            let named_group = image_user
                .split_once(':')
                .map(|(_, g)| parse_group(g, accounts, container, image_user))
                .transpose()?;
            let entry = accounts.user(&uid.to_string());
            let gid = named_group.or(entry.as_ref().map(|e| e.2)).unwrap_or(0);
            let extra = entry.map(|e| accounts.groups_of(&e.0)).unwrap_or_default();
            (uid, gid, extra)
        }
        None => parse_user(image_user, accounts, container)?,
    };
    let gid = run_as_group.unwrap_or(gid);
    if run_as_non_root && uid == 0 {
        return Err(SpecError::RunsAsRoot {
            container: container.name.clone(),
        });
    }
    if let Some(pod) = pod_security {
        additional_gids.extend(pod.supplemental_groups.iter().copied());
        // Volumes the pod's fsGroup owns are writable through this group.
        additional_gids.extend(pod.fs_group);
    }
    let mut seen = std::collections::HashSet::new();
    additional_gids.retain(|g| *g != gid && seen.insert(*g));
    Ok(ProcessPlan {
        args: argv,
        env: env.into_iter().map(|(n, v)| format!("{n}={v}")).collect(),
        cwd,
        uid,
        gid,
        additional_gids,
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

/// Image `User`: empty, `NAME`, `UID`, `NAME:GROUP` or `UID:GID`, names resolved in the image's
/// /etc/passwd and /etc/group as containerd does (a UID without an entry gets GID 0). Returns the
/// UID, GID and the groups /etc/group gives the user besides.
fn parse_user(user: &str, accounts: &ImageAccounts, container: &Container) -> Result<(u32, u32, Vec<u32>), SpecError> {
    let (who, group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let who = if who.is_empty() { "0" } else { who };
    let (uid, passwd_gid, name) = match (accounts.user(who), who.parse::<u32>()) {
        (Some((name, uid, gid)), _) => (uid, gid, Some(name)),
        (None, Ok(uid)) => (uid, 0, None),
        (None, Err(_)) if who == "root" => (0, 0, Some("root".to_string())),
        (None, Err(_)) => {
            return Err(SpecError::User {
                container: container.name.clone(),
                user: user.to_string(),
                missing: format!("no user {who:?} in the image's /etc/passwd"),
            })
        }
    };
    let gid = match group {
        Some(g) => parse_group(g, accounts, container, user)?,
        None => passwd_gid,
    };
    let extra = name.map(|n| accounts.groups_of(&n)).unwrap_or_default();
    Ok((uid, gid, extra))
}

fn parse_group(group: &str, accounts: &ImageAccounts, container: &Container, user: &str) -> Result<u32, SpecError> {
    match (accounts.group(group), group.parse::<u32>()) {
        (Some(gid), _) | (None, Ok(gid)) => Ok(gid),
        (None, Err(_)) if group == "root" => Ok(0),
        (None, Err(_)) => Err(SpecError::User {
            container: container.name.clone(),
            user: user.to_string(),
            missing: format!("no group {group:?} in the image's /etc/group"),
        }),
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
        let args = |c: Container| {
            plan_process(&c, &img, "h", None, &ImageAccounts::default())
                .unwrap()
                .args
        };
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
        let plan = plan_process(&c, &img, "pod1", None, &ImageAccounts::default()).unwrap();
        assert_eq!(plan.env, ["A=2", "PATH=/bin", "HOSTNAME=pod1", "B=2-b"]);
        assert_eq!(plan.args, ["echo", "2", "$(A)", "$(MISSING)"]);
        assert_eq!((plan.uid, plan.gid, plan.cwd.as_str()), (1000, 2000, "/srv"));
    }

    #[test]
    fn default_path_and_named_user() {
        let img = image(&["/e"], &[], &[], "");
        let plan = plan_process(&container(&[], &[]), &img, "h", None, &ImageAccounts::default()).unwrap();
        assert!(plan.env.iter().any(|e| e.starts_with("PATH=/usr/local/sbin")));
        let named = image(&["/e"], &[], &[], "nginx");
        let err = plan_process(&container(&[], &[]), &named, "h", None, &ImageAccounts::default()).unwrap_err();
        assert!(err.to_string().contains("nginx"), "{err}");
        let empty = image(&[], &[], &[], "");
        assert!(matches!(
            plan_process(&container(&[], &[]), &empty, "h", None, &ImageAccounts::default()),
            Err(SpecError::NoCommand { .. })
        ));
    }

    #[test]
    fn user_names_resolve_in_the_image_accounts() {
        let accounts = ImageAccounts {
            passwd: "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:102:nginx:/:/sbin/nologin\n".into(),
            group: "root:x:0:\nnginx:x:102:\nwww:x:33:nginx,other\n".into(),
        };
        let plan_of = |user: &str| {
            let img = image(&["/e"], &[], &[], user);
            plan_process(&container(&[], &[]), &img, "h", None, &accounts)
        };
        let nginx = plan_of("nginx").unwrap();
        assert_eq!(
            (nginx.uid, nginx.gid, nginx.additional_gids.clone()),
            (101, 102, vec![33])
        );
        let with_group = plan_of("nginx:www").unwrap();
        assert_eq!((with_group.uid, with_group.gid), (101, 33));
        let numeric = plan_of("101").unwrap();
        assert_eq!(
            (numeric.uid, numeric.gid),
            (101, 102),
            "a UID with an entry takes its group"
        );
        assert_eq!(plan_of("4242").map(|p| (p.uid, p.gid)).unwrap(), (4242, 0));
        let missing = plan_of("nobody").unwrap_err().to_string();
        assert!(
            missing.contains("no user \"nobody\" in the image's /etc/passwd"),
            "{missing}"
        );
        let missing = plan_of("nginx:staff").unwrap_err().to_string();
        assert!(missing.contains("no group \"staff\""), "{missing}");
    }
}
