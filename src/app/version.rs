//! `podctl version`: podctl's own version, then what it runs on: containerd's version and
//! revision (its Version API), the runc behind OCI members, the CNI plugins of the pod network and
//! the member runtimes (built in and plugins), as text or `-o json|yaml`.

use anyhow::Result;
use serde_json::{json, Value};

use crate::cli::{GlobalArgs, VersionArgs, VersionFormat};
use crate::containerd::Client;
use crate::sandbox::cni::CniNetwork;

/// The first line a CNI plugin prints about itself (`CNI bridge plugin v1.1.1`), with no
/// CNI_COMMAND set, from the first bin dir that has it.
fn cni_plugin_version(bin_dirs: &[std::path::PathBuf], plugin: &str) -> Value {
    let Some(path) = bin_dirs.iter().map(|d| d.join(plugin)).find(|p| p.is_file()) else {
        return json!({"name": plugin, "error": format!("not found in {}", bin_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":"))});
    };
    let out = std::process::Command::new(&path).env_remove("CNI_COMMAND").output();
    let text = out
        .map(|o| String::from_utf8_lossy(&[o.stdout, o.stderr].concat()).into_owned())
        .unwrap_or_default();
    let version = text
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('v') && w[1..].starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(str::to_string)
        // Distribution builds say "version unknown": their package knows it.
        .or_else(|| package_version(&path))
        .unwrap_or_else(|| "unknown".into());
    let protocols = text
        .lines()
        .find_map(|l| l.strip_prefix("CNI protocol versions supported:"))
        .and_then(|l| l.split(',').map(str::trim).next_back())
        .unwrap_or_default();
    json!({"name": plugin, "version": version, "cniVersion": protocols, "path": path})
}

/// The Debian package that installed `path`, with its version (`containernetworking-plugins 1.1.1+ds1-3`).
fn package_version(path: &std::path::Path) -> Option<String> {
    let owner = std::process::Command::new("dpkg-query")
        .arg("-S")
        .arg(path)
        .output()
        .ok()?;
    let package = String::from_utf8_lossy(&owner.stdout)
        .split(':')
        .next()?
        .trim()
        .to_string();
    if package.is_empty() {
        return None;
    }
    let version = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", &package])
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    (!version.is_empty()).then(|| format!("{package} {version}"))
}

/// The plugins the pod network's conflist runs: loopback, each plugin's type and its IPAM's.
fn network_plugins(network: &Value) -> Vec<String> {
    let mut names = vec!["loopback".to_string()];
    for plugin in network["plugins"].as_array().into_iter().flatten() {
        for kind in [&plugin["type"], &plugin["ipam"]["type"]] {
            if let Some(kind) = kind.as_str().filter(|k| !names.iter().any(|n| n == k)) {
                names.push(kind.to_string());
            }
        }
    }
    names
}

pub async fn version(global: &GlobalArgs, args: &VersionArgs) -> Result<()> {
    let client_version = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    });
    let mut report = json!({ "clientVersion": client_version });
    let mut server_error = None;
    if !args.client {
        match Client::connect(&global.address, &global.namespace).await {
            Ok(client) => match client.server_version().await {
                Ok((version, revision)) => {
                    report["serverVersion"] =
                        json!({"containerd": {"version": version, "revision": revision, "address": global.address}});
                }
                Err(e) => server_error = Some(e),
            },
            Err(e) => server_error = Some(e),
        }
        let settings = super::settings(global);
        report["runc"] = json!(crate::member::oci::binary_version("runc"));
        // A broken CNI config is reported, not fatal: the rest of the report still helps.
        match CniNetwork::load(settings.cni_conf_dir.as_deref()) {
            Ok(network) => {
                report["cniNetwork"] = json!(network.name);
                report["cniPlugins"] = json!(network_plugins(&network.raw)
                    .iter()
                    .map(|p| cni_plugin_version(&settings.cni_bin_dirs, p))
                    .collect::<Vec<_>>());
            }
            Err(e) => report["cniNetwork"] = json!(format!("error: {e}")),
        }
        let registry = super::registry(global)?;
        let mut runtimes = Vec::new();
        for (_, runtime) in registry.runtimes() {
            let info = runtime.info(&settings).await;
            let kind = if runtime.in_agent() { "plugin" } else { "builtin" };
            runtimes.push(json!({"name": runtime.name(), "kind": kind, "version": info.version}));
        }
        report["memberRuntimes"] = json!(runtimes);
    }
    match args.output {
        Some(VersionFormat::Json) => println!("{}", serde_json::to_string_pretty(&report)?),
        Some(VersionFormat::Yaml) => print!("{}", crate::manifest::to_yaml(&report)),
        None => print!("{}", text(&report)),
    }
    match server_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn text(report: &Value) -> String {
    let mut out = format!(
        "Client Version: podctl {}\n",
        report["clientVersion"]["version"].as_str().unwrap_or_default()
    );
    if let Some(server) = report.get("serverVersion") {
        let c = &server["containerd"];
        out.push_str(&format!(
            "Server Version: containerd {} (revision {})\n",
            c["version"].as_str().unwrap_or_default(),
            c["revision"].as_str().unwrap_or_default()
        ));
    }
    if let Some(runc) = report["runc"].as_str() {
        out.push_str(&format!("runc: {runc}\n"));
    }
    if let Some(plugins) = report["cniPlugins"].as_array() {
        let listed: Vec<String> = plugins
            .iter()
            .map(|p| match p["version"].as_str() {
                Some(v) => format!("{} {v}", p["name"].as_str().unwrap_or_default()),
                None => format!(
                    "{} ({})",
                    p["name"].as_str().unwrap_or_default(),
                    p["error"].as_str().unwrap_or_default()
                ),
            })
            .collect();
        out.push_str(&format!(
            "CNI plugins (network {}): {}\n",
            report["cniNetwork"].as_str().unwrap_or_default(),
            listed.join(", ")
        ));
    }
    if let Some(runtimes) = report["memberRuntimes"].as_array() {
        let listed: Vec<String> = runtimes
            .iter()
            .map(|r| {
                format!(
                    "{} {} ({})",
                    r["name"].as_str().unwrap_or_default(),
                    r["version"].as_str().unwrap_or_default(),
                    r["kind"].as_str().unwrap_or_default()
                )
            })
            .collect();
        out.push_str(&format!("Member runtimes: {}\n", listed.join(", ")));
    }
    out
}
