//! The host's runtime handlers (`/etc/podctl/runtimes.toml`, `--runtime-config`): what a pod's
//! `spec.runtimeClassName` or a `podctl.io/runtime.<container>` annotation may name, as
//! containerd's CRI config defines runtimes for RuntimeClass handlers; and what a handler means for
//! a pod or a member ([`RuntimeClass`], [`NamedRuntime`]).
//!
//! ```toml
//! [runtimes.crun]                       # runtimeClassName: crun
//! runtime_type = "io.containerd.runc.v2"
//! [runtimes.crun.options]
//! BinaryName = "crun"
//! [runtimes.wasm]
//! plugin = "wasmtime"                   # a podctl member runtime
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::containerd::{RuncOptions, TaskRuntime};

/// Where the handlers are read from when `--runtime-config` is not given (a missing file there
/// means no handlers beyond the built-in runtimes).
pub const DEFAULT_RUNTIME_CONFIG: &str = "/etc/podctl/runtimes.toml";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeConfigError {
    #[error("runtime config {path}: {cause}")]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("runtime config {path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// One handler: a containerd shim with options, or a podctl member runtime.
#[derive(Clone, Debug, PartialEq)]
pub enum Handler {
    Containerd(TaskRuntime),
    /// A member runtime by name (`wasmtime`).
    Plugin(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuntimeConfig {
    /// Where it was read from (for messages); None when no file was read.
    pub path: Option<PathBuf>,
    pub handlers: BTreeMap<String, Handler>,
}

/// A containerd runtime handler of the host's runtime config, by its name there.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedRuntime {
    pub handler: String,
    pub runtime: TaskRuntime,
}

/// What a pod's `spec.runtimeClassName` means on this host.
#[derive(Clone, Debug, Default)]
pub struct RuntimeClass {
    /// A containerd handler: the sandbox, the init containers and the OCI members run with it.
    pub containerd: Option<NamedRuntime>,
    /// A plugin handler: the member runtime that must run every container.
    pub runtime: Option<usize>,
}

impl RuntimeClass {
    pub fn task_runtime(&self) -> TaskRuntime {
        self.containerd.as_ref().map(|n| n.runtime.clone()).unwrap_or_default()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    runtimes: BTreeMap<String, Entry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    runtime_type: Option<String>,
    plugin: Option<String>,
    #[serde(default)]
    options: toml::Table,
}

impl RuntimeConfig {
    /// Reads `path`, or [`DEFAULT_RUNTIME_CONFIG`] if it exists when `path` is None.
    pub fn load(path: Option<&Path>) -> Result<RuntimeConfig, RuntimeConfigError> {
        let (path, required) = match path {
            Some(path) => (path.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_RUNTIME_CONFIG), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => RuntimeConfig::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(RuntimeConfig::default()),
            Err(cause) => Err(RuntimeConfigError::Read { path, cause }),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<RuntimeConfig, RuntimeConfigError> {
        let invalid = |field: String, message: String| RuntimeConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| invalid("(file)".into(), e.message().to_string()))?;
        let mut handlers = BTreeMap::new();
        for (name, entry) in file.runtimes {
            let field = format!("runtimes.{name}");
            if !valid_name(&name) {
                return Err(invalid(
                    field,
                    "a handler name is a DNS label (lowercase letters, digits and '-'), as a RuntimeClass's".into(),
                ));
            }
            let handler = match (entry.runtime_type, entry.plugin) {
                (Some(runtime_type), None) => Handler::Containerd(task_runtime(&field, runtime_type, &entry.options).map_err(|(f, m)| invalid(f, m))?),
                (None, Some(plugin)) if entry.options.is_empty() => Handler::Plugin(plugin),
                (None, Some(_)) => {
                    return Err(invalid(
                        format!("{field}.options"),
                        "options are for containerd runtimes (runtime_type); a plugin has none".into(),
                    ))
                }
                _ => {
                    return Err(invalid(
                        field,
                        "give either runtime_type (a containerd shim, e.g. \"io.containerd.runc.v2\") or plugin (a podctl member runtime, e.g. \"wasmtime\")".into(),
                    ))
                }
            };
            handlers.insert(name, handler);
        }
        Ok(RuntimeConfig {
            path: Some(path.to_path_buf()),
            handlers,
        })
    }

    pub fn describe_path(&self) -> String {
        match &self.path {
            Some(path) => path.display().to_string(),
            None => format!("{DEFAULT_RUNTIME_CONFIG} (absent)"),
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A containerd shim as containerd names it (`io.containerd.runc.v2`), with the runc shim's options
/// under their CRI config names.
fn task_runtime(field: &str, runtime_type: String, options: &toml::Table) -> Result<TaskRuntime, (String, String)> {
    let parts: Vec<&str> = runtime_type.split('.').collect();
    let well_formed =
        parts.len() >= 3 && parts.iter().all(|p| !p.is_empty()) && parts.last().is_some_and(|v| v.starts_with('v'));
    if !well_formed {
        return Err((
            format!("{field}.runtime_type"),
            format!("{runtime_type:?} is not a containerd runtime name like \"io.containerd.runc.v2\" or \"io.containerd.runsc.v1\""),
        ));
    }
    if options.is_empty() {
        return Ok(TaskRuntime {
            runtime_type,
            runc: None,
        });
    }
    if !TaskRuntime::is_runc(&runtime_type) {
        return Err((
            format!("{field}.options"),
            format!("podctl passes options to the runc shim only (io.containerd.runc.v1/v2); {runtime_type} takes its own configuration"),
        ));
    }
    let mut runc = RuncOptions::default();
    for (key, value) in options {
        let at = format!("{field}.options.{key}");
        let text = || {
            value
                .as_str()
                .map(String::from)
                .ok_or((at.clone(), "must be a string".to_string()))
        };
        let flag = || value.as_bool().ok_or((at.clone(), "must be true or false".to_string()));
        let id = || {
            value
                .as_integer()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or((at.clone(), "must be a user or group ID".to_string()))
        };
        match key.as_str() {
            "BinaryName" => runc.binary_name = text()?,
            "Root" => runc.root = text()?,
            "ShimCgroup" => runc.shim_cgroup = text()?,
            "CriuImagePath" => runc.criu_image_path = text()?,
            "CriuWorkPath" => runc.criu_work_path = text()?,
            "SystemdCgroup" => runc.systemd_cgroup = flag()?,
            "NoPivotRoot" => runc.no_pivot_root = flag()?,
            "NoNewKeyring" => runc.no_new_keyring = flag()?,
            "IoUid" => runc.io_uid = id()?,
            "IoGid" => runc.io_gid = id()?,
            _ => {
                return Err((
                    at,
                    "not a runc shim option; known: BinaryName, Root, SystemdCgroup, NoPivotRoot, NoNewKeyring, ShimCgroup, IoUid, IoGid, CriuImagePath, CriuWorkPath".into(),
                ))
            }
        }
    }
    Ok(TaskRuntime {
        runtime_type,
        runc: Some(runc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RuntimeConfig, String> {
        RuntimeConfig::parse(text, Path::new("runtimes.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn handlers_parse_like_containerds_cri_config() {
        let config = parse(
            r#"
            [runtimes.crun]
            runtime_type = "io.containerd.runc.v2"
            [runtimes.crun.options]
            BinaryName = "crun"
            SystemdCgroup = false
            [runtimes.gvisor]
            runtime_type = "io.containerd.runsc.v1"
            [runtimes.wasm]
            plugin = "wasmtime"
            "#,
        )
        .unwrap();
        let Handler::Containerd(crun) = &config.handlers["crun"] else {
            panic!("{config:?}")
        };
        assert_eq!(crun.runc.as_ref().unwrap().binary_name, "crun");
        assert_eq!(
            config.handlers["gvisor"],
            Handler::Containerd(TaskRuntime {
                runtime_type: "io.containerd.runsc.v1".into(),
                runc: None
            })
        );
        assert_eq!(config.handlers["wasm"], Handler::Plugin("wasmtime".into()));
    }

    #[test]
    fn mistakes_name_their_field() {
        for (text, needle) in [
            ("[runtimes.x]\nruntime_type = \"runc\"", "runtimes.x.runtime_type"),
            (
                "[runtimes.x]\nruntime_type = \"io.containerd.runc.v2\"\noptions = { Binary = \"c\" }",
                "runtimes.x.options.Binary",
            ),
            (
                "[runtimes.x]\nruntime_type = \"io.containerd.runc.v2\"\noptions = { BinaryName = 3 }",
                "runtimes.x.options.BinaryName: must be a string",
            ),
            (
                "[runtimes.x]\nruntime_type = \"io.containerd.runsc.v1\"\noptions = { ConfigPath = \"/c\" }",
                "runtimes.x.options",
            ),
            (
                "[runtimes.x]\nplugin = \"a\"\nruntime_type = \"io.containerd.runc.v2\"",
                "runtimes.x: give either",
            ),
            ("[runtimes.X]\nplugin = \"a\"", "runtimes.X: a handler name"),
            ("[runtimes.x]\nplugn = \"a\"", "unknown field"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn the_default_file_may_be_absent_but_a_given_one_not() {
        assert_eq!(
            RuntimeConfig::load(Some(Path::new("/nonexistent/runtimes.toml")))
                .map_err(|e| e.to_string())
                .unwrap_err(),
            "runtime config /nonexistent/runtimes.toml: No such file or directory (os error 2)"
        );
    }
}
