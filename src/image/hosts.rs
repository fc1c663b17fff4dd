//! Registry host configuration the containerd way: `<dir>/<registry>/hosts.toml` (falling back to
//! `<dir>/_default/hosts.toml`) names mirrors in the order they are tried, then the upstream
//! `server`, each with its capabilities, CA files and TLS verification; docker's `certs.d` layout
//! (`<dir>/<registry>/*.crt`) adds CAs for the registry itself.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("{path}: {message}; see containerd's docs/hosts.md for the format")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: cannot be read: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// One place a registry's content can be fetched from or pushed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// `host[:port]`, as it goes into URLs.
    pub host: String,
    pub pull: bool,
    pub resolve: bool,
    pub push: bool,
    /// PEM files of CAs to trust for this host besides the system's.
    pub ca_files: Vec<PathBuf>,
    pub skip_verify: bool,
    /// The registry itself (not a mirror).
    pub is_server: bool,
    /// No configuration names a scheme for this local registry: HTTPS first, then plain HTTP (as
    /// nerdctl and docker treat localhost).
    pub http_fallback: bool,
}

impl Endpoint {
    /// The schemes to try, in order.
    pub fn schemes(&self) -> Vec<Scheme> {
        if self.http_fallback {
            vec![self.scheme, Scheme::Http]
        } else {
            vec![self.scheme]
        }
    }

    pub fn url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}", self.host)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HostsFile {
    server: Option<String>,
    #[serde(default)]
    capabilities: Option<Vec<String>>,
    #[serde(default)]
    ca: Option<StringOrList>,
    #[serde(default)]
    skip_verify: Option<bool>,
    #[serde(default)]
    header: Option<toml::Table>,
    #[serde(default)]
    client: Option<toml::Value>,
    #[serde(default)]
    override_path: Option<bool>,
    #[serde(default)]
    host: toml::map::Map<String, toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    #[serde(default)]
    capabilities: Option<Vec<String>>,
    #[serde(default)]
    ca: Option<StringOrList>,
    #[serde(default)]
    skip_verify: Option<bool>,
    #[serde(default)]
    header: Option<toml::Table>,
    #[serde(default)]
    client: Option<toml::Value>,
    #[serde(default)]
    override_path: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn paths(&self, base: &Path) -> Vec<PathBuf> {
        let list = match self {
            StringOrList::One(s) => vec![s.clone()],
            StringOrList::Many(v) => v.clone(),
        };
        list.into_iter().map(|p| base.join(p)).collect()
    }
}

/// The registry's upstream when no `server` says otherwise (docker.io's API lives elsewhere).
fn default_server(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io".into(),
        other => other.into(),
    }
}

/// Whether the registry is on this host, where plain HTTP is the norm for test registries.
pub fn is_local(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.starts_with("127.") || host == "::1"
}

/// The endpoints for `registry` in the order they are tried: its configured mirrors, then the
/// server. `plain_http` makes the server (and mirrors given without a scheme) use HTTP.
pub fn endpoints(registry: &str, dirs: &[PathBuf], plain_http: bool) -> Result<Vec<Endpoint>, HostsError> {
    let default_scheme = if plain_http { Scheme::Http } else { Scheme::Https };
    let mut server = Endpoint {
        scheme: default_scheme,
        host: default_server(registry),
        pull: true,
        resolve: true,
        push: true,
        ca_files: Vec::new(),
        skip_verify: false,
        is_server: true,
        http_fallback: !plain_http && is_local(registry),
    };
    for dir in dirs {
        for name in [registry, "_default"] {
            let host_dir = dir.join(name);
            let file = host_dir.join("hosts.toml");
            if file.is_file() {
                let text = std::fs::read_to_string(&file).map_err(|cause| HostsError::Io {
                    path: file.clone(),
                    cause,
                })?;
                return parse_hosts(&text, &file, &host_dir, server, default_scheme);
            }
            // docker's certs.d: CA files for the registry itself, no hosts.toml.
            if name == registry && host_dir.is_dir() {
                let mut cas: Vec<PathBuf> = std::fs::read_dir(&host_dir)
                    .map_err(|cause| HostsError::Io {
                        path: host_dir.clone(),
                        cause,
                    })?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "crt"))
                    .collect();
                if !cas.is_empty() {
                    cas.sort();
                    server.ca_files = cas;
                    return Ok(vec![server]);
                }
            }
        }
    }
    Ok(vec![server])
}

fn parse_hosts(
    text: &str,
    file: &Path,
    base: &Path,
    mut server: Endpoint,
    default_scheme: Scheme,
) -> Result<Vec<Endpoint>, HostsError> {
    let invalid = |message: String| HostsError::Invalid {
        path: file.to_path_buf(),
        message,
    };
    let parsed: HostsFile = toml::from_str(text).map_err(|e| invalid(e.to_string().trim().replace('\n', " ")))?;
    let mut endpoints = Vec::new();
    for (url, value) in &parsed.host {
        let entry: HostEntry = value
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| invalid(format!("host.\"{url}\": {}", e.to_string().trim())))?;
        let (scheme, host) = split_url(url, default_scheme).map_err(|m| invalid(format!("host.\"{url}\": {m}")))?;
        let (pull, resolve, push) = capabilities(entry.capabilities.as_deref(), (true, true, true))
            .map_err(|m| invalid(format!("host.\"{url}\".capabilities: {m}")))?;
        refuse_unsupported(
            entry.header.is_some(),
            entry.client.is_some(),
            &format!("host.\"{url}\"."),
        )
        .map_err(invalid)?;
        let _ = entry.override_path;
        endpoints.push(Endpoint {
            scheme,
            http_fallback: false,
            host,
            pull,
            resolve,
            push,
            ca_files: entry.ca.as_ref().map(|c| c.paths(base)).unwrap_or_default(),
            skip_verify: entry.skip_verify.unwrap_or(false),
            is_server: false,
        });
    }
    refuse_unsupported(parsed.header.is_some(), parsed.client.is_some(), "").map_err(invalid)?;
    let _ = parsed.override_path;
    // Without `server` the registry itself is still the last resort, as in containerd.
    if let Some(url) = &parsed.server {
        let (scheme, host) = split_url(url, default_scheme).map_err(|m| invalid(format!("server: {m}")))?;
        server.scheme = scheme;
        server.host = host;
        server.http_fallback = false;
    }
    let (pull, resolve, push) = capabilities(parsed.capabilities.as_deref(), (true, true, true))
        .map_err(|m| invalid(format!("capabilities: {m}")))?;
    server.pull = pull;
    server.resolve = resolve;
    server.push = push;
    if let Some(ca) = &parsed.ca {
        server.ca_files = ca.paths(base);
    }
    server.skip_verify = parsed.skip_verify.unwrap_or(false);
    endpoints.push(server);
    Ok(endpoints)
}

/// Custom headers and client certificates change what a registry answers: refused rather than
/// silently left out.
fn refuse_unsupported(header: bool, client: bool, prefix: &str) -> Result<(), String> {
    for (set, key) in [(header, "header"), (client, "client")] {
        if set {
            return Err(format!(
                "{prefix}{key} is not supported by podctl yet; remove it or point --hosts-dir at a configuration without it"
            ));
        }
    }
    Ok(())
}

fn split_url(url: &str, default_scheme: Scheme) -> Result<(Scheme, String), String> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        Some((other, _)) => return Err(format!("scheme {other:?} is neither http nor https")),
        None => (default_scheme, url),
    };
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h, p.trim_end_matches('/')),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    if !(path.is_empty() || path == "v2") {
        return Err(format!(
            "the path prefix /{path} is not supported; podctl talks to <host>/v2/ (drop the path)"
        ));
    }
    Ok((scheme, host.to_string()))
}

fn capabilities(list: Option<&[String]>, default: (bool, bool, bool)) -> Result<(bool, bool, bool), String> {
    let Some(list) = list else { return Ok(default) };
    let mut caps = (false, false, false);
    for cap in list {
        match cap.as_str() {
            "pull" => caps.0 = true,
            "resolve" => caps.1 = true,
            "push" => caps.2 = true,
            other => return Err(format!("unknown capability {other:?} (pull, resolve, push)")),
        }
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(registry: &str, hosts: &str) -> tempdir::Dir {
        let dir = tempdir::Dir::new();
        std::fs::create_dir_all(dir.path().join(registry)).unwrap();
        std::fs::write(dir.path().join(registry).join("hosts.toml"), hosts).unwrap();
        dir
    }

    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let mut bytes = [0u8; 6];
                getrandom::fill(&mut bytes).unwrap();
                let path = std::env::temp_dir().join(format!("podctl-hosts-{}", hex::encode(bytes)));
                std::fs::create_dir_all(&path).unwrap();
                Dir(path)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn no_configuration_means_the_registry_over_https() {
        let eps = endpoints("quay.io", &[PathBuf::from("/nonexistent")], false).unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].url(), "https://quay.io");
        assert!(eps[0].is_server && eps[0].pull && eps[0].resolve && eps[0].push && !eps[0].http_fallback);
        assert_eq!(
            endpoints("docker.io", &[], false).unwrap()[0].host,
            "registry-1.docker.io"
        );
        assert_eq!(endpoints("quay.io", &[], true).unwrap()[0].url(), "http://quay.io");
        assert!(endpoints("127.0.0.1:5000", &[], false).unwrap()[0].http_fallback);
        assert!(endpoints("localhost:5000", &[], false).unwrap()[0].http_fallback);
    }

    #[test]
    fn mirrors_come_first_in_file_order_then_the_server() {
        let dir = dir_with(
            "docker.io",
            r#"
server = "https://registry-1.docker.io"
[host."http://mirror-b.local:5000"]
  capabilities = ["pull"]
[host."https://mirror-a.local"]
  capabilities = ["pull", "resolve"]
  ca = "mirror.pem"
  skip_verify = true
"#,
        );
        let eps = endpoints("docker.io", &[dir.path().to_path_buf()], false).unwrap();
        let urls: Vec<String> = eps.iter().map(Endpoint::url).collect();
        assert_eq!(
            urls,
            [
                "http://mirror-b.local:5000",
                "https://mirror-a.local",
                "https://registry-1.docker.io"
            ]
        );
        assert!(eps[0].pull && !eps[0].resolve && !eps[0].push);
        assert_eq!(eps[1].ca_files, vec![dir.path().join("docker.io").join("mirror.pem")]);
        assert!(eps[1].skip_verify);
        assert!(eps[2].is_server);
    }

    #[test]
    fn default_dir_and_bad_files() {
        let dir = dir_with("_default", "server = \"http://fallback.local:5000\"\n");
        let eps = endpoints("any.registry", &[dir.path().to_path_buf()], false).unwrap();
        assert_eq!(eps[0].url(), "http://fallback.local:5000");
        let bad = dir_with("x.io", "[host.\"https://m\"]\ncapabilities = [\"fly\"]\n");
        let err = endpoints("x.io", &[bad.path().to_path_buf()], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown capability \"fly\""), "{err}");
        let typo = dir_with("y.io", "sevrer = \"https://y.io\"\n");
        let err = endpoints("y.io", &[typo.path().to_path_buf()], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("hosts.toml") && err.contains("sevrer"), "{err}");
        let path = dir_with("z.io", "[host.\"https://m/custom/prefix\"]\n");
        let err = endpoints("z.io", &[path.path().to_path_buf()], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("path prefix"), "{err}");
    }

    #[test]
    fn docker_certs_d_adds_cas_for_the_registry() {
        let dir = tempdir::Dir::new();
        std::fs::create_dir_all(dir.path().join("reg.local:5000")).unwrap();
        std::fs::write(dir.path().join("reg.local:5000").join("ca.crt"), "x").unwrap();
        let eps = endpoints("reg.local:5000", &[dir.path().to_path_buf()], false).unwrap();
        assert_eq!(eps[0].ca_files, vec![dir.path().join("reg.local:5000").join("ca.crt")]);
    }
}
