//! The pod's network: a pinned network namespace plus CNI.
//!
//! Like containerd's CRI plugin, podctl creates the pod's network namespace *before* any task
//! exists and pins it with a bind mount under `/run/netns`, runs the CNI plugins on it, and only
//! then starts the pause task with that netns path. Because the namespace is pinned rather than
//! owned by a process, teardown (CNI DEL, unmount) works even when the pause task is long gone.
//!
//! - [`netns`] owns creating and removing pinned network namespaces.
//! - [`cni`] owns network configuration and running the CNI plugin binaries (ADD/DEL).
//! - [`leftovers`] finds and removes host-side traces of pods that have no record any more.
//! - [`SandboxError`] is the one error type for both; every message names the object, the cause
//!   and what to do about it.

pub mod cni;
pub mod leftovers;
pub mod netns;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

/// Everything that can go wrong while setting up or tearing down a pod's network.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "network namespace name `{name}` is invalid: {reason}; use a non-empty name without '/' \
         (for example the pod's name)"
    )]
    InvalidNetnsName { name: String, reason: &'static str },

    #[error(
        "network namespace `{name}` already exists at {path}; pick another pod name, or remove the \
         stale one with `ip netns delete {name}`"
    )]
    NetnsExists { name: String, path: PathBuf },

    #[error(
        "cannot create network namespace {path}: {step} failed: {source}; podctl must run as root \
         (CAP_SYS_ADMIN) on a kernel with network namespaces"
    )]
    NetnsCreate {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "cannot remove network namespace {path}: {step} failed: {source}; run podctl as root, or \
         remove it by hand with `umount -l {path}; rm {path}`"
    )]
    NetnsRemove {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "network namespace {path} does not exist, so CNI ADD has nothing to attach to; create it \
         first (sandbox::netns::create_netns)"
    )]
    NetnsMissing { path: PathBuf },

    #[error(
        "cannot read CNI config directory {dir}: {source}; create it, or omit --cni-conf-dir to use \
         podctl's built-in network"
    )]
    ConfDirRead {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "no CNI network config (*.conflist, *.conf or *.json) in {dir}; add one there, or omit \
         --cni-conf-dir to use podctl's built-in network"
    )]
    NoNetworkConfig { dir: PathBuf },

    #[error("cannot read CNI config {path}: {source}; check that the file is readable")]
    ConfRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("CNI config {path} is not valid JSON: {source}; fix the file")]
    ConfParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "CNI config {origin} is invalid: {reason}; fix it (see the CNI spec's network \
         configuration format)"
    )]
    ConfInvalid { origin: String, reason: String },

    #[error(
        "CNI plugin `{plugin}` not found in {dirs}; install containernetworking-plugins or pass \
         --cni-bin-dir"
    )]
    PluginNotFound { plugin: String, dirs: String },

    #[error(
        "cannot run CNI plugin `{plugin}` ({path}): {source}; check that it is an executable \
         built for this machine"
    )]
    PluginSpawn {
        plugin: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "CNI plugin `{plugin}` {command} for container `{container_id}` did not finish within \
         {secs}s and was killed; check what it waits on (e.g. the xtables lock held by another \
         iptables) and retry"
    )]
    PluginTimeout {
        plugin: String,
        command: &'static str,
        container_id: String,
        secs: u64,
    },

    #[error(
        "CNI plugin `{plugin}` {command} for container `{container_id}` failed{}: {msg}{}; {}",
        cni::plugin_error::fmt_code(*.code),
        cni::plugin_error::fmt_details(.details),
        cni::plugin_error::hint_for_code(*.code)
    )]
    PluginFailed {
        plugin: String,
        command: &'static str,
        container_id: String,
        /// The CNI error code from the plugin's error JSON, if it printed one.
        code: Option<u32>,
        msg: String,
        details: String,
    },

    #[error(
        "CNI plugin `{plugin}` {command} for container `{container_id}` printed a result podctl \
         cannot read: {reason}; the plugin may not support cniVersion {cni_version}, lower it in \
         the network config or upgrade the plugins"
    )]
    PluginOutput {
        plugin: String,
        command: &'static str,
        container_id: String,
        cni_version: String,
        reason: String,
    },

    #[error("{tool} failed: {message}; podctl needs iptables (apt-get install iptables) and root")]
    Tool { tool: String, message: String },
}
