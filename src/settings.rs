//! Host-side settings every pod operation needs, from the CLI's global flags.

use std::path::PathBuf;

use crate::containerd::Client;
use crate::image::PullSettings;

/// The directory of a namespace's state that holds claims, not a pod.
pub const CLAIMS_DIR: &str = "claims";

#[derive(Clone)]
pub struct Settings {
    /// Per-pod runtime files (/etc/hosts etc., emptyDir volumes).
    pub state_dir: PathBuf,
    /// Member logs, `<log_dir>/<namespace>_<pod>_<uid>/<container>/0.log` like kubelet's.
    pub log_dir: PathBuf,
    pub cni_conf_dir: Option<PathBuf>,
    pub cni_bin_dirs: Vec<PathBuf>,
    /// The pause image; the default is built into podctl and imported on first use.
    pub sandbox_image: String,
    /// Compiled WASM modules, keyed by digest and engine: a module compiles once per host.
    pub wasm_cache_dir: PathBuf,
    /// First delay of the crash-loop backoff (kubelet: 10 s, doubling to 5 minutes).
    pub backoff_base: std::time::Duration,
    /// How long `create` waits for an init container before handing it to the agent.
    pub init_wait: std::time::Duration,
    /// When members' logs are rotated (kubelet's containerLogMaxSize/MaxFiles).
    pub log_rotation: crate::logs::Rotation,
    /// Registries, pull locks and progress for the images pods need.
    pub pull: PullSettings,
    /// Where member-runtime plugins (`podctl-runtime-NAME`) are looked for, in order; the
    /// directory of podctl's own executable comes after them.
    pub plugin_dirs: Vec<PathBuf>,
}

impl Settings {
    /// The plugin binary `podctl-runtime-NAME`: the first of the plugin directories, then next to
    /// podctl, that has it; the places searched otherwise.
    pub fn find_plugin(&self, name: &str) -> Result<PathBuf, Vec<PathBuf>> {
        let file = format!("podctl-runtime-{name}");
        let dirs = self.plugin_search_path();
        dirs.iter()
            .map(|dir| dir.join(&file))
            .find(|path| path.is_file())
            .ok_or_else(|| dirs.iter().map(|dir| dir.join(&file)).collect())
    }

    fn plugin_search_path(&self) -> Vec<PathBuf> {
        let own_dir = crate::podctl_exe().ok().and_then(|exe| exe.parent().map(PathBuf::from));
        self.plugin_dirs.iter().cloned().chain(own_dir).collect()
    }

    /// NAMEs of the executables `podctl-runtime-NAME` in the plugin directories, sorted.
    pub fn installed_plugins(&self) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        let mut names = Vec::new();
        for dir in self.plugin_search_path() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let file = entry.file_name();
                let Some(name) = file.to_str().and_then(|f| f.strip_prefix("podctl-runtime-")) else {
                    continue;
                };
                // Build directories hold `podctl-runtime-x.d` and the like next to the binary.
                let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                let executable =
                    std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
                if plain && executable {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// Where PersistentVolumeClaims keep their data, beside the pods' state directories (not
    /// one of them: `gc` leaves it alone).
    pub fn claims_dir(&self, client: &Client) -> PathBuf {
        self.state_dir.join(client.namespace()).join(CLAIMS_DIR)
    }

    pub fn pod_state_dir(&self, client: &Client, sandbox_id: &str) -> PathBuf {
        self.state_dir.join(client.namespace()).join(sandbox_id)
    }

    /// Where the pod's members and init containers log, laid out like kubelet's
    /// (`<namespace>_<name>_<uid>/<container>/<run>.log`).
    pub fn pod_log_dir(&self, pod: &crate::manifest::Pod, uid: &str) -> PathBuf {
        let m = &pod.metadata;
        self.log_dir.join(format!("{}_{}_{}", m.namespace, m.name, uid))
    }
}
