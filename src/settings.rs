//! Host-side settings every pod operation needs, from the CLI's global flags.

use std::path::PathBuf;

use crate::containerd::Client;
use crate::image::PullSettings;

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
        let own_dir = crate::podctl_exe().ok().and_then(|exe| exe.parent().map(PathBuf::from));
        let dirs: Vec<PathBuf> = self.plugin_dirs.iter().cloned().chain(own_dir).collect();
        dirs.iter()
            .map(|dir| dir.join(&file))
            .find(|path| path.is_file())
            .ok_or_else(|| dirs.iter().map(|dir| dir.join(&file)).collect())
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
