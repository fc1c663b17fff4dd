//! A failed plugin in words: the spec's error JSON (`{"code", "msg", "details"}`) or, without
//! it, what the plugin printed, and the fix for each of the spec's error codes, as
//! [`SandboxError::PluginFailed`] says them.

use serde::Deserialize;

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
mod tests {
    use super::*;
    use crate::SandboxError;

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
}
