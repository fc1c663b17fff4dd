//! Running the standard CNI plugin binaries, per the CNI spec (1.0): network configuration
//! (built-in default or a conf dir), building each plugin's stdin (`name`, `cniVersion`,
//! `prevResult`, `runtimeConfig.portMappings`), the `CNI_*` environment, chaining results across
//! a plugin list for ADD, reverse-order DEL, and turning a plugin's error JSON into a
//! [`SandboxError`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

use super::SandboxError;

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

/// Where plugin binaries are looked up when the caller passes none: upstream's install location,
/// then Debian's `containernetworking-plugins`.
pub const DEFAULT_BIN_DIRS: &[&str] = &["/opt/cni/bin", "/usr/lib/cni"];

/// The `cniVersion` used for the loopback plugin, which is not part of any network config.
const LOOPBACK_CNI_VERSION: &str = "1.0.0";

/// A plugin that hangs (e.g. waiting for the xtables lock) must not hang pod startup forever.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

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
    fn from_conflist(raw: Value, origin: &str) -> Result<CniNetwork, SandboxError> {
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

    fn plugins(&self) -> &[Value] {
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

/// Which pod, which namespace and which interface a CNI call is about.
#[derive(Clone, Copy, Debug)]
pub struct Attachment<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    /// Interface name inside the netns, usually "eth0".
    pub ifname: &'a str,
    /// Plugin search path; empty means [`DEFAULT_BIN_DIRS`].
    pub bin_dirs: &'a [PathBuf],
    pub port_mappings: &'a [PortMapping],
    /// The address to ask IPAM for (host-local's `IP` CNI arg): a pod restored after a reboot
    /// gets the one it had when it is still free.
    pub requested_ip: Option<&'a str>,
}

/// What ADD produced: the pod's addresses, plus the raw final result that DEL must get back as
/// `prevResult` (store it with the pod).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct CniResult {
    /// Addresses on the pod's interface(s) in CIDR form, e.g. "10.89.0.5/16".
    pub ips: Vec<String>,
    pub raw: Value,
}

impl CniResult {
    /// The first IPv4 address (else the first address), without the prefix length.
    pub fn primary_ip(&self) -> Option<String> {
        let ip = self
            .ips
            .iter()
            .find(|ip| !ip.contains(':'))
            .or_else(|| self.ips.first())?;
        Some(ip.split('/').next().unwrap_or(ip).to_string())
    }

    /// A `hostNetwork` pod's "result": the host's address, as the pod's IP.
    pub fn host(ip: &str) -> CniResult {
        CniResult {
            ips: vec![ip.to_string()],
            raw: serde_json::json!({ "hostNetwork": true }),
        }
    }

    /// Every address of the pod, the primary first, without prefix lengths.
    pub fn all_ips(&self) -> Vec<String> {
        let bare = |ip: &String| ip.split('/').next().unwrap_or(ip).to_string();
        let primary = self.primary_ip();
        primary
            .iter()
            .cloned()
            .chain(self.ips.iter().map(bare).filter(|ip| Some(ip) != primary.as_ref()))
            .collect()
    }

    fn from_raw(raw: Value) -> CniResult {
        let interfaces = raw["interfaces"].as_array();
        // Only addresses on sandbox-side interfaces are the pod's; bridge also reports the
        // host-side veth and the bridge itself in `interfaces`.
        let in_sandbox = |ip: &Value| match (ip["interface"].as_u64(), interfaces) {
            (Some(i), Some(ifs)) => ifs
                .get(i as usize)
                .and_then(|iface| iface["sandbox"].as_str())
                .is_some_and(|s| !s.is_empty()),
            _ => true,
        };
        let entries = raw["ips"].as_array().map_or(&[][..], Vec::as_slice);
        let address = |ip: &Value| ip["address"].as_str().map(str::to_string);
        let mut ips: Vec<String> = entries.iter().filter(|ip| in_sandbox(ip)).filter_map(address).collect();
        if ips.is_empty() {
            ips = entries.iter().filter_map(address).collect();
        }
        // cniVersion 0.2.0 results carry `ip4`/`ip6` instead of `ips`.
        for key in ["ip4", "ip6"] {
            if let Some(ip) = raw[key]["ip"].as_str() {
                ips.push(ip.to_string());
            }
        }
        CniResult { ips, raw }
    }
}

/// Brings up `lo` in the pod's netns with the `loopback` plugin (`att.ifname` is ignored).
pub async fn setup_loopback(att: &Attachment<'_>) -> Result<(), SandboxError> {
    let att = Attachment { ifname: "lo", ..*att };
    let conf = json!({ "cniVersion": LOOPBACK_CNI_VERSION, "name": "cni-loopback", "type": "loopback" });
    let dirs = bin_dirs(&att);
    let path = find_plugin("loopback", &dirs)?;
    require_netns(&att)?;
    run_plugin(&path, "loopback", "ADD", &att, &dirs, LOOPBACK_CNI_VERSION, &conf).await?;
    Ok(())
}

/// Attaches the pod to `net`: ADD for each plugin in order, each getting the previous plugin's
/// result as `prevResult`. On failure, DELs the plugins run so far (in reverse) and returns the
/// ADD error.
pub async fn add(net: &CniNetwork, att: &Attachment<'_>) -> Result<CniResult, SandboxError> {
    let plugins = net.plugins();
    let dirs = bin_dirs(att);
    // Resolve every binary first, so a missing plugin fails before anything changes on the host.
    let paths = plugins
        .iter()
        .map(|p| find_plugin(plugin_type(p), &dirs))
        .collect::<Result<Vec<_>, _>>()?;
    require_netns(att)?;

    let mut prev: Option<Value> = None;
    for (i, (plugin, path)) in plugins.iter().zip(&paths).enumerate() {
        let conf = plugin_config(net, plugin, prev.as_ref(), att.port_mappings);
        let ty = plugin_type(plugin);
        match run_plugin(path, ty, "ADD", att, &dirs, &net.cni_version, &conf).await {
            Ok(Some(result)) => prev = Some(result),
            // Spec violation, but harmless: keep chaining the last result we have.
            Ok(None) => {}
            Err(e) => {
                // The failed plugin may have half-applied its changes, so it gets a DEL too.
                let _ = del_plugins(net, &plugins[..=i], att, prev.as_ref()).await;
                return Err(e);
            }
        }
    }
    match prev {
        Some(raw) => Ok(CniResult::from_raw(raw)),
        None => {
            let _ = del_plugins(net, plugins, att, None).await;
            Err(SandboxError::PluginOutput {
                plugin: plugins.last().map(plugin_type).unwrap_or("").to_string(),
                command: "ADD",
                container_id: att.container_id.to_string(),
                cni_version: net.cni_version.clone(),
                reason: "no plugin printed a result".into(),
            })
        }
    }
}

/// Detaches the pod from `net`: DEL for each plugin in reverse order, all with `prev` (the ADD
/// result) as `prevResult`. Keeps going past failures so one broken plugin doesn't leak the
/// others' state, and returns the first error. DEL of a pod that is no longer attached is Ok.
///
/// Call it *before* unpinning the netns: after the netns is gone it still runs (plugins get
/// `CNI_NETNS=""`, as the spec allows) and frees the IPAM reservation, but `bridge` (plugins
/// 1.1.x) finds the address of its ipMasq rule via the pod's interface, so that rule then stays.
pub async fn del(net: &CniNetwork, att: &Attachment<'_>, prev: Option<&CniResult>) -> Result<(), SandboxError> {
    del_plugins(net, net.plugins(), att, prev.map(|r| &r.raw)).await
}

async fn del_plugins(
    net: &CniNetwork,
    plugins: &[Value],
    att: &Attachment<'_>,
    prev: Option<&Value>,
) -> Result<(), SandboxError> {
    let dirs = bin_dirs(att);
    let mut first_err = None;
    for plugin in plugins.iter().rev() {
        let ty = plugin_type(plugin);
        let conf = plugin_config(net, plugin, prev, att.port_mappings);
        let res = match find_plugin(ty, &dirs) {
            Ok(path) => run_plugin(&path, ty, "DEL", att, &dirs, &net.cni_version, &conf)
                .await
                .map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn plugin_type(plugin: &Value) -> &str {
    plugin["type"].as_str().unwrap_or("")
}

/// The JSON a plugin reads on stdin: its own object from the list plus the network's `name` and
/// `cniVersion`, `prevResult` when chained, and the runtime's capability args for the
/// capabilities it declares (only `portMappings` here, and only when there are any, as libcni).
pub(crate) fn plugin_config(
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

fn bin_dirs(att: &Attachment<'_>) -> Vec<PathBuf> {
    if att.bin_dirs.is_empty() {
        DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect()
    } else {
        att.bin_dirs.to_vec()
    }
}

fn join_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn find_plugin(plugin: &str, dirs: &[PathBuf]) -> Result<PathBuf, SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    dirs.iter()
        .map(|d| d.join(plugin))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| SandboxError::PluginNotFound {
            plugin: plugin.to_string(),
            dirs: join_dirs(dirs),
        })
}

fn require_netns(att: &Attachment<'_>) -> Result<(), SandboxError> {
    if att.netns.exists() {
        Ok(())
    } else {
        Err(SandboxError::NetnsMissing {
            path: att.netns.to_path_buf(),
        })
    }
}

/// Runs one plugin once. `Ok(None)` means it succeeded and printed nothing (normal for DEL).
async fn run_plugin(
    path: &Path,
    plugin: &str,
    command: &'static str,
    att: &Attachment<'_>,
    dirs: &[PathBuf],
    cni_version: &str,
    conf: &Value,
) -> Result<Option<Value>, SandboxError> {
    // For DEL of a pod whose netns is already gone (or was never mounted), the spec says
    // CNI_NETNS may be empty; plugins then clean up only host-side state (IPAM, iptables).
    let netns = if command == "DEL" && !super::netns::is_namespace(att.netns) {
        String::new()
    } else {
        att.netns.display().to_string()
    };
    let mut cmd = tokio::process::Command::new(path);
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", att.container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", att.ifname)
        .env("CNI_PATH", join_dirs(dirs))
        // A stray CNI_ARGS from our own environment would be parsed by plugins as theirs.
        .env_remove("CNI_ARGS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let (Some(ip), "ADD") = (att.requested_ip, command) {
        // IgnoreUnknown: plugins other than host-local must not refuse an argument not theirs.
        cmd.env("CNI_ARGS", format!("IgnoreUnknown=1;IP={ip}"));
    }
    let input = serde_json::to_vec(conf).expect("a JSON value serializes");

    let run = async {
        let mut child = cmd.spawn().map_err(|source| SandboxError::PluginSpawn {
            plugin: plugin.to_string(),
            path: path.to_path_buf(),
            source,
        })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let write = async move {
            let res = stdin.write_all(&input).await;
            drop(stdin); // EOF: plugins read stdin to the end before acting.
            res
        };
        let (written, output) = tokio::join!(write, child.wait_with_output());
        let output = output.map_err(|source| SandboxError::PluginSpawn {
            plugin: plugin.to_string(),
            path: path.to_path_buf(),
            source,
        })?;
        // A plugin that exits early without reading stdin causes EPIPE; its exit status and
        // error JSON are the interesting part then, so only report write errors on success.
        if let (Err(e), true) = (written, output.status.success()) {
            return Err(SandboxError::PluginSpawn {
                plugin: plugin.to_string(),
                path: path.to_path_buf(),
                source: e,
            });
        }
        Ok(output)
    };
    // Dropping `run` on timeout drops the child, and kill_on_drop kills it.
    let output = tokio::time::timeout(PLUGIN_TIMEOUT, run)
        .await
        .map_err(|_| SandboxError::PluginTimeout {
            plugin: plugin.to_string(),
            command,
            container_id: att.container_id.to_string(),
            secs: PLUGIN_TIMEOUT.as_secs(),
        })??;

    if !output.status.success() {
        let (code, msg, details) = parse_plugin_error(&output.stdout, &output.stderr, &output.status.to_string());
        return Err(SandboxError::PluginFailed {
            plugin: plugin.to_string(),
            command,
            container_id: att.container_id.to_string(),
            code,
            msg,
            details,
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    if stdout.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(&stdout) {
        Ok(v) if v.is_object() => Ok(Some(v)),
        // DEL has no result; whatever a plugin prints there is not worth failing teardown for.
        _ if command == "DEL" => Ok(None),
        Ok(_) => Err(output_error(
            plugin,
            command,
            att,
            cni_version,
            "not a JSON object".into(),
        )),
        Err(e) => Err(output_error(plugin, command, att, cni_version, e.to_string())),
    }
}

fn output_error(
    plugin: &str,
    command: &'static str,
    att: &Attachment<'_>,
    cni_version: &str,
    reason: String,
) -> SandboxError {
    SandboxError::PluginOutput {
        plugin: plugin.to_string(),
        command,
        container_id: att.container_id.to_string(),
        cni_version: cni_version.to_string(),
        reason,
    }
}

/// The spec's error JSON (`{"code", "msg", "details"}` on stdout); when a plugin didn't print
/// one, the message falls back to stderr, then stdout, then the exit status.
pub(crate) fn parse_plugin_error(stdout: &[u8], stderr: &[u8], status: &str) -> (Option<u32>, String, String) {
    #[derive(Deserialize)]
    struct ErrorJson {
        code: Option<u32>,
        #[serde(default)]
        msg: String,
        #[serde(default)]
        details: String,
    }
    let parsed = serde_json::from_slice::<ErrorJson>(stdout).ok();
    let (code, msg, details) = match parsed {
        Some(e) => (e.code, e.msg, e.details),
        None => (None, String::new(), String::new()),
    };
    if !msg.is_empty() {
        return (code, msg, details);
    }
    let fallback = [stderr, stdout]
        .iter()
        .map(|b| String::from_utf8_lossy(b).trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| format!("it exited with {status} and printed nothing"));
    (code, fallback, details)
}

pub(crate) fn fmt_code(code: Option<u32>) -> String {
    code.map(|c| format!(" (CNI error code {c})")).unwrap_or_default()
}

pub(crate) fn fmt_details(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}

/// The fix for each well-known error code of the CNI spec.
pub(crate) fn hint_for_code(code: Option<u32>) -> &'static str {
    match code {
        Some(1) => "the plugin does not support this cniVersion; lower `cniVersion` in the network config or upgrade the plugins",
        Some(2) => "remove the field the plugin does not support from the network config",
        Some(3) => "the plugin does not know this container; it may have been torn down already",
        Some(4) => "the plugin rejected podctl's CNI_* environment; this is a podctl bug, please report it",
        Some(5) => "check free space and permissions under /var/lib/cni and /run, then retry",
        Some(6) => "the plugin could not decode its configuration; fix the network config JSON",
        Some(7) => "fix the network configuration for this plugin (see its documentation)",
        Some(11) => "this is a transient failure; retry shortly",
        _ => "fix the network config or host state the message points at, then retry",
    }
}

#[cfg(test)]
mod unit_tests {
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

    #[test]
    fn result_ips_are_sandbox_side_and_primary_is_ipv4() {
        let raw = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "podctl0", "mac": "aa:bb:cc:dd:ee:ff"},
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:00"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:01", "sandbox": "/run/netns/x"}
            ],
            "ips": [
                {"address": "10.89.0.1/16", "interface": 0},
                {"address": "fd00::5/64", "interface": 2},
                {"address": "10.89.0.5/16", "gateway": "10.89.0.1", "interface": 2}
            ]
        });
        let r = CniResult::from_raw(raw);
        assert_eq!(r.ips, ["fd00::5/64", "10.89.0.5/16"]);
        assert_eq!(r.primary_ip().as_deref(), Some("10.89.0.5"));
        // Old 0.2.0 shape.
        let r = CniResult::from_raw(json!({"ip4": {"ip": "10.1.2.3/24"}}));
        assert_eq!(r.primary_ip().as_deref(), Some("10.1.2.3"));
        assert_eq!(CniResult::from_raw(json!({})).primary_ip(), None);
        // Round-trips through serde, as the pod store will keep it.
        let r2: CniResult = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(r2.ips, r.ips);
    }

    #[test]
    fn plugin_error_json_becomes_message() {
        let out = br#"{"cniVersion":"1.0.0","code":7,"msg":"bad subnet","details":"10.0/99"}"#;
        let (code, msg, details) = parse_plugin_error(out, b"", "exit status: 1");
        assert_eq!(
            (code, msg.as_str(), details.as_str()),
            (Some(7), "bad subnet", "10.0/99")
        );
        let err = SandboxError::PluginFailed {
            plugin: "bridge".into(),
            command: "ADD",
            container_id: "c1".into(),
            code,
            msg,
            details,
        };
        let text = err.to_string();
        assert!(text.contains("`bridge` ADD for container `c1`"), "{text}");
        assert!(text.contains("(CNI error code 7): bad subnet (10.0/99)"), "{text}");
        assert!(text.contains("fix the network configuration"), "{text}");
        // Not JSON: stderr, then stdout, then the status.
        let (code, msg, _) = parse_plugin_error(b"", b"panic: boom\n", "exit status: 2");
        assert_eq!((code, msg.as_str()), (None, "panic: boom"));
        let (_, msg, _) = parse_plugin_error(b"", b"", "exit status: 2");
        assert_eq!(msg, "it exited with exit status: 2 and printed nothing");
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

    #[tokio::test]
    async fn missing_plugin_is_a_clear_error() {
        let net = CniNetwork::from_conflist(
            json!({"cniVersion": "1.0.0", "name": "t",
                   "plugins": [{"type": "podctl-no-such-plugin"}]}),
            "test",
        )
        .unwrap();
        let dirs = [PathBuf::from("/nonexistent/podctl/cni"), PathBuf::from("/usr/lib/cni")];
        let att = Attachment {
            container_id: "podctl-test-missing",
            netns: Path::new("/nonexistent/netns"),
            ifname: "eth0",
            bin_dirs: &dirs,
            port_mappings: &[],
            requested_ip: None,
        };
        let err = add(&net, &att).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "CNI plugin `podctl-no-such-plugin` not found in /nonexistent/podctl/cni:/usr/lib/cni; \
             install containernetworking-plugins or pass --cni-bin-dir"
        );
        // Default search path is named when the caller passes none.
        let att = Attachment { bin_dirs: &[], ..att };
        let err = add(&net, &att).await.unwrap_err().to_string();
        assert!(err.contains("not found in /opt/cni/bin:/usr/lib/cni;"), "{err}");
        // DEL reports it too (nothing to tear down without the binary).
        assert!(matches!(
            del(&net, &att, None).await,
            Err(SandboxError::PluginNotFound { .. })
        ));
    }
}
