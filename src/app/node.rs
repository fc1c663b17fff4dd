//! `podctl system install-node`: what a Kubernetes node needs to run podctl's pods. The shim
//! binary on containerd's PATH, the `podctl` handler in containerd's CRI config (the two settings
//! below and nothing else), and the RuntimeClass that names it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::kube::NODE_RUNTIME_CLASS;

/// The binary containerd looks for when a runtime_type is `io.containerd.podctl.v1`.
pub const SHIM_BINARY: &str = "containerd-shim-podctl-v1";
const RUNTIME_TYPE: &str = "io.containerd.podctl.v1";
const CRI_PLUGIN: &str = "io.containerd.grpc.v1.cri";

/// The handler's CRI config: all a node's containerd config needs.
pub fn handler_toml() -> String {
    format!(
        "[plugins.\"{CRI_PLUGIN}\".containerd.runtimes.{NODE_RUNTIME_CLASS}]\n  runtime_type = \"{RUNTIME_TYPE}\"\n  pod_annotations = [\"podctl.io/*\"]\n"
    )
}

pub fn runtime_class_yaml() -> String {
    format!("apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {{name: {NODE_RUNTIME_CLASS}}}\nhandler: {NODE_RUNTIME_CLASS}\n")
}

fn default_shim() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding podctl's own binary")?;
    let shim = exe.with_file_name(SHIM_BINARY);
    if !shim.is_file() {
        bail!(
            "{} is missing: build it next to podctl with `cargo build --release -p containerd-shim-podctl` (it is not in the default build), or name it with --shim",
            shim.display()
        );
    }
    Ok(shim)
}

/// Copies the shim into `<root>/usr/local/bin` by rename, so a shim that runs keeps its binary.
fn install_shim(root: &Path, shim: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join("usr/local/bin");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let target = dir.join(SHIM_BINARY);
    let temporary = dir.join(format!(".{SHIM_BINARY}.{}", std::process::id()));
    std::fs::copy(shim, &temporary).with_context(|| format!("copying {} to {}", shim.display(), dir.display()))?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&temporary, &target).with_context(|| format!("installing {}", target.display()))?;
    Ok(target)
}

/// What the config says about the handler: absent, already as it should be, or different.
enum Handler {
    Missing,
    Present,
    Different(String),
}

fn handler_in(config: &toml::Table) -> Handler {
    let runtime = config
        .get("plugins")
        .and_then(|p| p.get(CRI_PLUGIN))
        .and_then(|c| c.get("containerd"))
        .and_then(|c| c.get("runtimes"))
        .and_then(|r| r.get(NODE_RUNTIME_CLASS));
    match runtime.and_then(|r| r.get("runtime_type")).and_then(|t| t.as_str()) {
        None if runtime.is_none() => Handler::Missing,
        Some(RUNTIME_TYPE) => Handler::Present,
        other => Handler::Different(other.unwrap_or("(none)").to_string()),
    }
}

/// Adds the handler to containerd's config, leaving everything else in the file as it is.
/// Returns false when it was there already.
fn add_handler(path: &Path) -> Result<bool> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let config: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML; fix it first", path.display()))?;
    let version = config.get("version").and_then(|v| v.as_integer());
    match version {
        _ if text.trim().is_empty() => {}
        Some(2) => {}
        None => bail!(
            "{}: no `version = 2` line: podctl writes the version 2 form (`[plugins.\"{CRI_PLUGIN}\"...]`); convert it with `containerd config migrate` or add the handler by hand:\n{}",
            path.display(),
            handler_toml()
        ),
        Some(other) => bail!(
            "{}: config version {other}: containerd 1.6 and 1.7 read version 2; add the handler in your version's form:\n{}",
            path.display(),
            handler_toml()
        ),
    }
    match handler_in(&config) {
        Handler::Present => return Ok(false),
        Handler::Different(found) => bail!(
            "{}: runtimes.{NODE_RUNTIME_CLASS} is there with runtime_type {found:?}, not {RUNTIME_TYPE:?}; remove that table or rename it, then run this again",
            path.display()
        ),
        Handler::Missing => {}
    }
    let mut text = text;
    if text.trim().is_empty() {
        text = "version = 2\n".into();
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("\n# podctl's node runtime (`podctl system install-node`)\n");
    text.push_str(&handler_toml());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

pub fn install_node(root: &Path, containerd_config: Option<&Path>, shim: Option<&Path>) -> Result<()> {
    let shim = match shim {
        Some(shim) => shim.to_path_buf(),
        None => default_shim()?,
    };
    let installed = install_shim(root, &shim)?;
    println!("installed {}", installed.display());
    match containerd_config {
        Some(path) => {
            if add_handler(path)? {
                println!(
                    "added the {NODE_RUNTIME_CLASS} handler to {}: restart containerd (`systemctl restart containerd`)",
                    path.display()
                );
            } else {
                println!("{} has the {NODE_RUNTIME_CLASS} handler already", path.display());
            }
        }
        None => println!(
            "add this to containerd's config (version 2), then restart containerd:\n\n{}",
            handler_toml()
        ),
    }
    println!(
        "and this RuntimeClass to the cluster (`kubectl apply -f -`):\n\n{}",
        runtime_class_yaml()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory of this test's own (removed when it is dropped).
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("podctl-node-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_handler_is_added_once_and_the_rest_of_the_file_is_kept() {
        let dir = Scratch::new("kept");
        let path = dir.path().join("config.toml");
        let original = "version = 2\n# the operator's comment\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.9\"\n";
        std::fs::write(&path, original).unwrap();
        assert!(add_handler(&path).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(original), "{text}");
        let config: toml::Table = text.parse().unwrap();
        assert!(matches!(handler_in(&config), Handler::Present));
        let runtime = &config["plugins"][CRI_PLUGIN]["containerd"]["runtimes"]["podctl"];
        assert_eq!(
            runtime["pod_annotations"].as_array().unwrap()[0].as_str(),
            Some("podctl.io/*")
        );
        assert!(!add_handler(&path).unwrap(), "a second run changes nothing");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn a_missing_config_is_created_and_a_foreign_handler_refused() {
        let dir = Scratch::new("created");
        let path = dir.path().join("etc/containerd/config.toml");
        assert!(add_handler(&path).unwrap());
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("version = 2\n"));
        let other = dir.path().join("other.toml");
        std::fs::write(
            &other,
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.podctl]\n  runtime_type = \"io.containerd.runc.v2\"\n",
        )
        .unwrap();
        let err = add_handler(&other).unwrap_err().to_string();
        assert!(err.contains("io.containerd.runc.v2"), "{err}");
        let old = dir.path().join("v1.toml");
        std::fs::write(&old, "[plugins.cri]\n  sandbox_image = \"x\"\n").unwrap();
        assert!(add_handler(&old).unwrap_err().to_string().contains("version = 2"));
    }

    #[test]
    fn the_runtime_class_names_the_handler() {
        let yaml = runtime_class_yaml();
        assert!(
            yaml.contains("kind: RuntimeClass") && yaml.contains("handler: podctl"),
            "{yaml}"
        );
    }
}
