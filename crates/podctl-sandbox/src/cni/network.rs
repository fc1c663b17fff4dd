//! The network a pod joins: its configuration (podctl's built-in bridge, or the first file of a
//! conf dir, a single plugin wrapped as a list, as libcni does), validated once so ADD and DEL
//! can index it, and the stdin each plugin of the list reads (`name`, `cniVersion`,
//! `prevResult`, `runtimeConfig.portMappings`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::SandboxError;

/// podctl's built-in network: a bridge with NAT to the outside plus host port mappings.
pub const DEFAULT_CONFLIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "podctl",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "podctl0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.89.0.0/16" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    {
      "type": "portmap",
      "capabilities": { "portMappings": true },
      "snat": true
    }
  ]
}"#;

/// A CNI network: a plugin list (conflist) with its name and version pulled out for convenience.
#[derive(Clone, Debug, PartialEq)]
pub struct CniNetwork {
    pub name: String,
    pub cni_version: String,
    /// The whole conflist: `{"cniVersion", "name", "plugins": [...]}`.
    pub raw: Value,
}

impl CniNetwork {
    /// The built-in network ([`DEFAULT_CONFLIST`]).
    pub fn default_network() -> CniNetwork {
        let raw = serde_json::from_str(DEFAULT_CONFLIST).expect("DEFAULT_CONFLIST is valid JSON");
        CniNetwork::from_conflist(raw, "built-in default").expect("DEFAULT_CONFLIST is valid")
    }

    /// `None` gives the built-in network. `Some(dir)` gives the first `*.conflist`, `*.conf` or
    /// `*.json` file in `dir` by file name (containerd's go-cni picks the same one); a single
    /// plugin config is wrapped as a one-plugin list.
    pub fn load(conf_dir: Option<&Path>) -> Result<CniNetwork, SandboxError> {
        let Some(dir) = conf_dir else {
            return Ok(CniNetwork::default_network());
        };
        let entries = std::fs::read_dir(dir).map_err(|source| SandboxError::ConfDirRead {
            dir: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file() && conf_kind(p).is_some())
            .collect();
        files.sort();
        let path = files
            .into_iter()
            .next()
            .ok_or_else(|| SandboxError::NoNetworkConfig { dir: dir.to_path_buf() })?;
        let text = std::fs::read_to_string(&path).map_err(|source| SandboxError::ConfRead {
            path: path.clone(),
            source,
        })?;
        let raw: Value = serde_json::from_str(&text).map_err(|source| SandboxError::ConfParse {
            path: path.clone(),
            source,
        })?;
        let origin = path.display().to_string();
        match conf_kind(&path) {
            Some(ConfKind::List) => CniNetwork::from_conflist(raw, &origin),
            _ => CniNetwork::from_single(raw, &origin),
        }
    }

    /// Validates a plugin list so that ADD/DEL can index it without re-checking.
    pub(super) fn from_conflist(raw: Value, origin: &str) -> Result<CniNetwork, SandboxError> {
        let invalid = |reason: &str| SandboxError::ConfInvalid {
            origin: origin.to_string(),
            reason: reason.to_string(),
        };
        let obj = raw.as_object().ok_or_else(|| invalid("it is not a JSON object"))?;
        let name = non_empty_str(obj, "name").ok_or_else(|| invalid("`name` is missing"))?;
        let cni_version = non_empty_str(obj, "cniVersion").ok_or_else(|| invalid("`cniVersion` is missing"))?;
        let plugins = obj
            .get("plugins")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| invalid("`plugins` is missing or empty"))?;
        for (i, plugin) in plugins.iter().enumerate() {
            let ty = plugin
                .as_object()
                .and_then(|p| non_empty_str(p, "type"))
                .ok_or_else(|| invalid(&format!("plugins[{i}] has no `type`")))?;
            // `type` becomes a file name under the bin dirs; a path would escape them.
            if ty.contains('/') || ty == "." || ty == ".." {
                return Err(invalid(&format!("plugins[{i}] type `{ty}` is not a plain file name")));
            }
        }
        Ok(CniNetwork {
            name: name.to_string(),
            cni_version: cni_version.to_string(),
            raw,
        })
    }

    /// Wraps a single-plugin config (`.conf`/`.json`) as a one-plugin list, as libcni does.
    fn from_single(raw: Value, origin: &str) -> Result<CniNetwork, SandboxError> {
        let Value::Object(mut plugin) = raw else {
            return Err(SandboxError::ConfInvalid {
                origin: origin.to_string(),
                reason: "it is not a JSON object".into(),
            });
        };
        let name = plugin.remove("name").unwrap_or(Value::Null);
        let cni_version = plugin.remove("cniVersion").unwrap_or(Value::Null);
        let list = json!({ "cniVersion": cni_version, "name": name, "plugins": [plugin] });
        CniNetwork::from_conflist(list, origin)
    }

    pub(super) fn plugins(&self) -> &[Value] {
        // Validated non-empty in from_conflist.
        self.raw["plugins"].as_array().map_or(&[], Vec::as_slice)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ConfKind {
    List,
    Single,
}

fn conf_kind(path: &Path) -> Option<ConfKind> {
    match path.extension()?.to_str()? {
        "conflist" => Some(ConfKind::List),
        "conf" | "json" => Some(ConfKind::Single),
        _ => None,
    }
}

fn non_empty_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A host port forwarded into the pod; serialized exactly as the `portMappings` capability
/// expects (`hostPort`, `containerPort`, `protocol`, `hostIP`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// "tcp", "udp" or "sctp".
    pub protocol: String,
    /// "" means all host addresses.
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

pub(super) fn plugin_type(plugin: &Value) -> &str {
    plugin["type"].as_str().unwrap_or("")
}

/// The JSON a plugin reads on stdin: its own object from the list plus the network's `name` and
/// `cniVersion`, `prevResult` when chained, and the runtime's capability args for the
/// capabilities it declares (only `portMappings` here, and only when there are any, as libcni).
pub(super) fn plugin_config(
    net: &CniNetwork,
    plugin: &Value,
    prev_result: Option<&Value>,
    port_mappings: &[PortMapping],
) -> Value {
    let mut conf = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("name".into(), Value::String(net.name.clone()));
    conf.insert("cniVersion".into(), Value::String(net.cni_version.clone()));
    match prev_result {
        Some(prev) => conf.insert("prevResult".into(), prev.clone()),
        None => conf.remove("prevResult"),
    };
    let wants_ports = plugin["capabilities"]["portMappings"].as_bool() == Some(true);
    if wants_ports && !port_mappings.is_empty() {
        let rc = conf.entry("runtimeConfig").or_insert_with(|| Value::Object(Map::new()));
        if !rc.is_object() {
            *rc = Value::Object(Map::new());
        }
        rc["portMappings"] = serde_json::to_value(port_mappings).expect("PortMapping serializes");
    }
    Value::Object(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> Vec<PortMapping> {
        vec![PortMapping {
            host_port: 19080,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: String::new(),
        }]
    }

    #[test]
    fn default_network_parses() {
        let net = CniNetwork::default_network();
        assert_eq!(net.name, "podctl");
        assert_eq!(net.cni_version, "1.0.0");
        let types: Vec<_> = net.plugins().iter().map(plugin_type).collect();
        assert_eq!(types, ["bridge", "portmap"]);
        assert_eq!(net.plugins()[0]["bridge"], "podctl0");
        assert_eq!(net.plugins()[0]["ipam"]["ranges"][0][0]["subnet"], "10.89.0.0/16");
        assert_eq!(CniNetwork::load(None).unwrap(), net);
    }

    #[test]
    fn stdin_has_name_version_and_no_prev_result_for_first_plugin() {
        let net = CniNetwork::default_network();
        let conf = plugin_config(&net, &net.plugins()[0], None, &ports());
        assert_eq!(conf["name"], "podctl");
        assert_eq!(conf["cniVersion"], "1.0.0");
        assert_eq!(conf["type"], "bridge");
        assert_eq!(conf["ipam"]["type"], "host-local");
        assert!(conf.get("prevResult").is_none());
        // bridge doesn't declare the portMappings capability, so it gets no runtimeConfig.
        assert!(conf.get("runtimeConfig").is_none());
    }

    #[test]
    fn port_mappings_injected_only_where_declared() {
        let net = CniNetwork::default_network();
        let conf = plugin_config(&net, &net.plugins()[1], None, &ports());
        assert_eq!(
            conf["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 19080, "containerPort": 80, "protocol": "tcp"}]})
        );
        // hostIP is passed when set.
        let mut with_ip = ports();
        with_ip[0].host_ip = "127.0.0.1".into();
        let conf = plugin_config(&net, &net.plugins()[1], None, &with_ip);
        assert_eq!(conf["runtimeConfig"]["portMappings"][0]["hostIP"], "127.0.0.1");
        // No mappings: no runtimeConfig at all (as libcni).
        let conf = plugin_config(&net, &net.plugins()[1], None, &[]);
        assert!(conf.get("runtimeConfig").is_none());
        // capabilities.portMappings false: nothing injected.
        let plugin = json!({"type": "portmap", "capabilities": {"portMappings": false}});
        let conf = plugin_config(&net, &plugin, None, &ports());
        assert!(conf.get("runtimeConfig").is_none());
        // An existing runtimeConfig is merged into, not replaced.
        let plugin = json!({"type": "x", "capabilities": {"portMappings": true},
                            "runtimeConfig": {"bandwidth": {"ingressRate": 1}}});
        let conf = plugin_config(&net, &plugin, None, &ports());
        assert_eq!(conf["runtimeConfig"]["bandwidth"]["ingressRate"], 1);
        assert_eq!(conf["runtimeConfig"]["portMappings"][0]["hostPort"], 19080);
    }

    #[test]
    fn prev_result_chained_and_overrides_plugin_fields() {
        let net = CniNetwork::default_network();
        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.89.0.7/16"}]});
        let plugin = json!({"type": "portmap", "name": "wrong", "cniVersion": "0.1.0",
                            "prevResult": {"stale": true}});
        let conf = plugin_config(&net, &plugin, Some(&prev), &[]);
        assert_eq!(conf["prevResult"], prev);
        assert_eq!(conf["name"], "podctl");
        assert_eq!(conf["cniVersion"], "1.0.0");
        // Without a prevResult, a stale one from the config file is not passed through.
        let conf = plugin_config(&net, &plugin, None, &[]);
        assert!(conf.get("prevResult").is_none());
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("podctl-cni-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn load_from_dir() {
        let dir = temp_dir("load");
        // Empty dir (or only unrelated files): a clear error naming the dir.
        std::fs::write(dir.join("README"), "not a config").unwrap();
        let err = CniNetwork::load(Some(&dir)).unwrap_err();
        assert!(matches!(err, SandboxError::NoNetworkConfig { .. }), "{err}");
        assert!(err.to_string().contains(&dir.display().to_string()));

        // A single .conf is wrapped as a one-plugin list.
        std::fs::write(
            dir.join("20-single.conf"),
            r#"{"cniVersion":"0.4.0","name":"single","type":"bridge","bridge":"br9"}"#,
        )
        .unwrap();
        let net = CniNetwork::load(Some(&dir)).unwrap();
        assert_eq!((net.name.as_str(), net.cni_version.as_str()), ("single", "0.4.0"));
        assert_eq!(net.plugins(), [json!({"type": "bridge", "bridge": "br9"})]);

        // Files are taken in name order: 10-list.conflist wins over 20-single.conf.
        std::fs::write(
            dir.join("10-list.conflist"),
            r#"{"cniVersion":"1.0.0","name":"listed","plugins":[{"type":"ptp"},{"type":"portmap"}]}"#,
        )
        .unwrap();
        let net = CniNetwork::load(Some(&dir)).unwrap();
        assert_eq!(net.name, "listed");
        assert_eq!(net.plugins().len(), 2);

        // Invalid ones are reported, not skipped.
        std::fs::write(dir.join("05-bad.conflist"), r#"{"name":"x","plugins":[]}"#).unwrap();
        let err = CniNetwork::load(Some(&dir)).unwrap_err().to_string();
        assert!(err.contains("05-bad.conflist") && err.contains("cniVersion"), "{err}");
        std::fs::write(
            dir.join("05-bad.conflist"),
            r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"../../bin/sh"}]}"#,
        )
        .unwrap();
        let err = CniNetwork::load(Some(&dir)).unwrap_err().to_string();
        assert!(err.contains("not a plain file name"), "{err}");
        std::fs::write(dir.join("05-bad.conflist"), "{nope").unwrap();
        let err = CniNetwork::load(Some(&dir)).unwrap_err();
        assert!(matches!(err, SandboxError::ConfParse { .. }), "{err}");

        std::fs::remove_dir_all(&dir).unwrap();
        let err = CniNetwork::load(Some(&dir)).unwrap_err();
        assert!(matches!(err, SandboxError::ConfDirRead { .. }), "{err}");
    }
}
