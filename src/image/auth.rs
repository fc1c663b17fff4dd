//! Registry credentials the docker way: `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`)
//! with `auths` entries, and `credHelpers` / `credsStore` answered by `docker-credential-NAME get`
//! programs; `--user NAME:PASSWORD` overrides both.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("credential helper docker-credential-{helper} for {registry}: {message}")]
    Helper {
        helper: String,
        registry: String,
        message: String,
    },
    #[error("--user {given:?}: give NAME:PASSWORD")]
    BadUser { given: String },
}

#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    // Never print a password, not even in a debug dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => write!(f, "Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

impl Credentials {
    pub fn from_user_flag(given: &str) -> Result<Credentials, AuthError> {
        match given.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Credentials::Basic {
                username: user.to_string(),
                password: password.to_string(),
            }),
            _ => Err(AuthError::BadUser {
                given: given.split(':').next().unwrap_or_default().to_string(),
            }),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Credentials::Anonymous => "anonymously".into(),
            Credentials::Basic { username, .. } => format!("as {username}"),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// docker's config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

/// A config key (`https://index.docker.io/v1/`, `reg:5000`, `http://reg/v2/`) as a registry host.
fn key_host(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or_default();
    canonical(host)
}

fn canonical(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        other => other.to_string(),
    }
}

/// What credential helpers are asked for: docker.io's historical URL, else the host.
fn server_url(registry: &str) -> String {
    if canonical(registry) == "docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        registry.to_string()
    }
}

/// The credentials docker would use for `registry` (`host[:port]`), anonymous when none are set.
pub fn lookup(registry: &str) -> Result<Credentials, AuthError> {
    match docker_config_path() {
        Some(path) if path.is_file() => lookup_in(registry, &path),
        _ => Ok(Credentials::Anonymous),
    }
}

pub fn lookup_in(registry: &str, path: &std::path::Path) -> Result<Credentials, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|e| AuthError::Config {
        path: path.to_path_buf(),
        message: format!("cannot be read: {e}"),
    })?;
    lookup_in_config(registry, &text, path)
}

/// A pod's image pull secret: the docker config JSON of a kubernetes.io/dockerconfigjson Secret.
#[derive(Clone)]
pub struct PullSecret {
    pub name: String,
    pub config: Vec<u8>,
}

/// The credentials a pod's pull secrets give for `registry` (the first that has some, as
/// kubelet tries them), anonymous when none does. Helpers are not run for a Secret's config.
pub fn lookup_in_secrets(registry: &str, secrets: &[PullSecret]) -> Result<Credentials, AuthError> {
    for secret in secrets {
        let text = String::from_utf8_lossy(&secret.config);
        // Named as `secret/NAME` in errors; the config's values never are.
        let origin = PathBuf::from(format!("secret/{}", secret.name));
        let mut config: serde_json::Value = serde_json::from_str(&text).map_err(|_| AuthError::Config {
            path: origin.clone(),
            message: "is not docker's config JSON".into(),
        })?;
        // A Secret's config speaks for itself only: no credential helpers.
        if let Some(object) = config.as_object_mut() {
            object.remove("credHelpers");
            object.remove("credsStore");
        }
        match lookup_in_config(registry, &config.to_string(), &origin)? {
            Credentials::Anonymous => continue,
            found => return Ok(found),
        }
    }
    Ok(Credentials::Anonymous)
}

fn lookup_in_config(registry: &str, text: &str, path: &std::path::Path) -> Result<Credentials, AuthError> {
    let config_error = |message: String| AuthError::Config {
        path: path.to_path_buf(),
        message,
    };
    let config: DockerConfig =
        serde_json::from_str(text).map_err(|e| config_error(format!("is not docker's config JSON: {e}")))?;
    let host = canonical(registry);
    let helper = config
        .cred_helpers
        .iter()
        .find(|(k, _)| key_host(k) == host)
        .map(|(_, v)| v.clone())
        .or(config.creds_store.clone());
    if let Some(helper) = helper.filter(|h| !h.is_empty()) {
        if let Some(found) = ask_helper(&helper, registry)? {
            return Ok(found);
        }
    }
    let Some((key, entry)) = config.auths.iter().find(|(k, _)| key_host(k) == host) else {
        return Ok(Credentials::Anonymous);
    };
    if entry.identitytoken.as_deref().is_some_and(|t| !t.is_empty()) {
        return Err(config_error(format!(
            "auths.{key:?} holds an identity token, which podctl cannot use yet; log in with a password or pass --user"
        )));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Credentials::Basic {
            username: username.clone(),
            password: password.clone(),
        });
    }
    let Some(encoded) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(Credentials::Anonymous);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| config_error(format!("auths.{key:?}.auth is not base64 of NAME:PASSWORD")))?;
    match decoded.split_once(':') {
        Some((username, password)) => Ok(Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }),
        None => Err(config_error(format!(
            "auths.{key:?}.auth is not base64 of NAME:PASSWORD"
        ))),
    }
}

/// Runs `docker-credential-NAME get` with the server URL on stdin; None when it has nothing stored.
fn ask_helper(helper: &str, registry: &str) -> Result<Option<Credentials>, AuthError> {
    let error = |message: String| AuthError::Helper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        message,
    };
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            error(format!(
                "cannot run {program}: {e}; install it or remove it from docker's config.json"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server_url(registry).as_bytes());
    }
    let output = child.wait_with_output().map_err(|e| error(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // The helpers' protocol: this text means "nothing stored for that server".
        if stdout.contains("credentials not found")
            || String::from_utf8_lossy(&output.stderr).contains("credentials not found")
        {
            return Ok(None);
        }
        let said = format!("{} {}", stdout.trim(), String::from_utf8_lossy(&output.stderr).trim());
        return Err(error(format!("it failed ({}): {}", output.status, said.trim())));
    }
    let answer: HelperAnswer =
        serde_json::from_str(stdout.trim()).map_err(|e| error(format!("its answer is not the helpers' JSON: {e}")))?;
    if answer.username == "<token>" {
        return Err(error("it gave an identity token, which podctl cannot use yet".into()));
    }
    Ok(Some(Credentials::Basic {
        username: answer.username,
        password: answer.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp(name: &str) -> PathBuf {
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).unwrap();
        let dir = std::env::temp_dir().join(format!("podctl-auth-{name}-{}", hex::encode(bytes)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn auths_entries_match_by_host() {
        let dir = temp("auths");
        let path = dir.join("config.json");
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:s3cret:x");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{encoded}"}},
                   "reg.local:5000": {{"username": "bob", "password": "pw"}},
                   "tok.io": {{"identitytoken": "abc"}}}}}}"#
            ),
        )
        .unwrap();
        let alice = Credentials::Basic {
            username: "alice".into(),
            password: "s3cret:x".into(),
        };
        assert_eq!(lookup_in("docker.io", &path).unwrap(), alice);
        assert_eq!(lookup_in("registry-1.docker.io", &path).unwrap(), alice);
        assert!(
            matches!(lookup_in("reg.local:5000", &path).unwrap(), Credentials::Basic { username, .. } if username == "bob")
        );
        assert_eq!(lookup_in("other.io", &path).unwrap(), Credentials::Anonymous);
        assert!(lookup_in("tok.io", &path)
            .unwrap_err()
            .to_string()
            .contains("identity token"));
        assert!(!format!("{alice:?}").contains("s3cret"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn credential_helpers_are_asked() {
        let dir = temp("helper");
        let helper = dir.join("docker-credential-podcttest");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread url\nif [ \"$url\" = reg.local:5000 ]; then echo '{\"ServerURL\":\"x\",\"Username\":\"carol\",\"Secret\":\"pw\"}'; else echo 'credentials not found in native keychain'; exit 1; fi\n",
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            r#"{"credHelpers": {"reg.local:5000": "podcttest"}, "credsStore": "podcttest"}"#,
        )
        .unwrap();
        // PATH is process-wide; the helper's name is unique to this test.
        let old = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![dir.clone()];
        paths.extend(std::env::split_paths(&old));
        std::env::set_var("PATH", std::env::join_paths(paths).unwrap());
        assert!(
            matches!(lookup_in("reg.local:5000", &path).unwrap(), Credentials::Basic { username, .. } if username == "carol")
        );
        assert_eq!(lookup_in("elsewhere.io", &path).unwrap(), Credentials::Anonymous);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn user_flag() {
        assert!(
            matches!(Credentials::from_user_flag("u:p:q").unwrap(), Credentials::Basic { password, .. } if password == "p:q")
        );
        let err = Credentials::from_user_flag("justname").unwrap_err().to_string();
        assert!(err.contains("NAME:PASSWORD"));
        assert!(Credentials::from_user_flag(":pw").is_err());
    }
}
