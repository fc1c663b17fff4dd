//! Running the standard CNI plugin binaries, per the CNI spec (1.0): chaining results across a
//! plugin list for ADD, reverse-order DEL, and `lo` through the loopback plugin.
//!
//! Here: ADD and DEL of a network. `network` owns the network configuration (built-in default or
//! a conf dir) and each plugin's stdin, `invoke` runs one plugin binary (the `CNI_*` environment,
//! a deadline), `result` reads what ADD left, and `plugin_error` turns a plugin's error JSON
//! into words for [`SandboxError`].

mod invoke;
mod network;
pub(crate) mod plugin_error;
mod result;

use serde_json::{json, Value};

use crate::SandboxError;
use invoke::{bin_dirs, find_plugin, require_netns, run_plugin};
pub use invoke::{Attachment, DEFAULT_BIN_DIRS};
use network::{plugin_config, plugin_type};
pub use network::{CniNetwork, PortMapping, DEFAULT_CONFLIST};
pub use result::CniResult;

/// The `cniVersion` used for the loopback plugin, which is not part of any network config.
const LOOPBACK_CNI_VERSION: &str = "1.0.0";

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

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
