//! Running one CNI plugin binary once, as the spec has it: found in the bin dirs, given the
//! `CNI_*` environment and its config on stdin, killed after a deadline, its stdout read as a
//! result or its failure turned into a [`SandboxError`].

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::network::PortMapping;
use super::plugin_error::parse_plugin_error;
use crate::SandboxError;

/// Where plugin binaries are looked up when the caller passes none: upstream's install location,
/// then Debian's `containernetworking-plugins`.
pub const DEFAULT_BIN_DIRS: &[&str] = &["/opt/cni/bin", "/usr/lib/cni"];

/// A plugin that hangs (e.g. waiting for the xtables lock) must not hang pod startup forever.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

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

pub(super) fn bin_dirs(att: &Attachment<'_>) -> Vec<PathBuf> {
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

pub(super) fn find_plugin(plugin: &str, dirs: &[PathBuf]) -> Result<PathBuf, SandboxError> {
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

pub(super) fn require_netns(att: &Attachment<'_>) -> Result<(), SandboxError> {
    if att.netns.exists() {
        Ok(())
    } else {
        Err(SandboxError::NetnsMissing {
            path: att.netns.to_path_buf(),
        })
    }
}

/// Runs one plugin once. `Ok(None)` means it succeeded and printed nothing (normal for DEL).
pub(super) async fn run_plugin(
    path: &Path,
    plugin: &str,
    command: &'static str,
    att: &Attachment<'_>,
    dirs: &[PathBuf],
    cni_version: &str,
    conf: &Value,
) -> Result<Option<Value>, SandboxError> {
    let cmd = plugin_command(path, command, att, dirs);
    let input = serde_json::to_vec(conf).expect("a JSON value serializes");
    let output = run_with_timeout(cmd, input, path, plugin, command, att).await?;
    plugin_result(&output, plugin, command, att, cni_version)
}

/// The plugin's process: the `CNI_*` environment of the spec, stdin, stdout and stderr piped.
fn plugin_command(path: &Path, command: &'static str, att: &Attachment<'_>, dirs: &[PathBuf]) -> Command {
    // For DEL of a pod whose netns is already gone (or was never mounted), the spec says
    // CNI_NETNS may be empty; plugins then clean up only host-side state (IPAM, iptables).
    let netns = if command == "DEL" && !crate::netns::is_namespace(att.netns) {
        String::new()
    } else {
        att.netns.display().to_string()
    };
    let mut cmd = Command::new(path);
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
    cmd
}

/// Starts the plugin, writes its stdin and waits for it, at most [`PLUGIN_TIMEOUT`].
async fn run_with_timeout(
    mut cmd: Command,
    input: Vec<u8>,
    path: &Path,
    plugin: &str,
    command: &'static str,
    att: &Attachment<'_>,
) -> Result<Output, SandboxError> {
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
    tokio::time::timeout(PLUGIN_TIMEOUT, run)
        .await
        .map_err(|_| SandboxError::PluginTimeout {
            plugin: plugin.to_string(),
            command,
            container_id: att.container_id.to_string(),
            secs: PLUGIN_TIMEOUT.as_secs(),
        })?
}

/// What the plugin's exit status and stdout say: its error, its result, or nothing.
fn plugin_result(
    output: &Output,
    plugin: &str,
    command: &'static str,
    att: &Attachment<'_>,
    cni_version: &str,
) -> Result<Option<Value>, SandboxError> {
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
