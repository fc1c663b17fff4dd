//! Command-line types (clap derive) and nothing else: what a user can type, with ctr's global flags.
//! [`complete`] turns them into shell completion scripts and man pages.

mod commands;
pub mod complete;
mod images;

pub use commands::*;
pub use images::*;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "podctl", version, about = "Kubernetes-style pods directly on containerd", long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// containerd's gRPC socket
    #[arg(
        long,
        short = 'a',
        global = true,
        env = "CONTAINERD_ADDRESS",
        default_value = "/run/containerd/containerd.sock"
    )]
    pub address: PathBuf,
    /// containerd namespace the pods live in
    #[arg(
        long,
        short = 'n',
        global = true,
        env = "CONTAINERD_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
    /// Directory with a CNI .conflist to use instead of podctl's built-in network
    #[arg(long, global = true, env = "PODCTL_CNI_CONF_DIR")]
    pub cni_conf_dir: Option<PathBuf>,
    /// Directories searched for CNI plugin binaries (repeat, or separate with ':')
    #[arg(
        long,
        global = true,
        env = "PODCTL_CNI_BIN_DIR",
        value_delimiter = ':',
        default_value = "/opt/cni/bin:/usr/lib/cni"
    )]
    pub cni_bin_dir: Vec<PathBuf>,
    /// Per-pod files (/etc/hosts, emptyDir volumes, the agent's config): kept across reboots, so
    /// `podctl system restore` finds them
    #[arg(long, global = true, env = "PODCTL_STATE_DIR", default_value = "/var/lib/podctl")]
    pub state_dir: PathBuf,
    /// Member logs, laid out like kubelet's /var/log/pods
    #[arg(long, global = true, env = "PODCTL_LOG_DIR", default_value = "/var/log/podctl")]
    pub log_dir: PathBuf,
    /// Image for the pause sandbox (the default is built into podctl)
    #[arg(
        long,
        global = true,
        env = "PODCTL_SANDBOX_IMAGE",
        default_value = "podctl.local/pause:0.1"
    )]
    pub sandbox_image: String,
    /// Rotate a member's log past this size (kubelet's containerLogMaxSize), e.g. 10Mi
    #[arg(long, global = true, env = "PODCTL_LOG_MAX_SIZE", default_value = "10Mi", value_parser = bytes)]
    pub log_max_size: u64,
    /// Log files kept per member run, the current one included (kubelet's containerLogMaxFiles)
    #[arg(long, global = true, env = "PODCTL_LOG_MAX_FILES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub log_max_files: u32,
    /// First delay (seconds) before restarting a crashed member; doubles per crash up to 5 minutes
    #[arg(long, global = true, env = "PODCTL_BACKOFF_BASE", default_value_t = 10.0, value_parser = seconds)]
    pub backoff_base: f64,
    /// Seconds `create` waits for an init container to end before the pod's agent takes it over
    /// (and the init containers after it); create then returns with the pod in `Init:N/M`
    #[arg(long, global = true, env = "PODCTL_INIT_WAIT", default_value_t = 30.0, value_parser = seconds)]
    pub init_wait: f64,
    /// Registry host configuration: directories of `<registry>/hosts.toml`, as containerd and
    /// nerdctl read them (mirrors, server, CA, skip_verify)
    #[arg(
        long,
        global = true,
        env = "PODCTL_HOSTS_DIR",
        value_delimiter = ':',
        default_value = "/etc/containerd/certs.d:/etc/docker/certs.d"
    )]
    pub hosts_dir: Vec<PathBuf>,
    /// Cache of compiled WASM modules (shared by all pods)
    #[arg(
        long,
        global = true,
        env = "PODCTL_WASM_CACHE_DIR",
        default_value = "/var/cache/podctl/wasm"
    )]
    pub wasm_cache_dir: PathBuf,
    /// Runtime handlers for spec.runtimeClassName (TOML, as containerd's CRI runtimes) [default:
    /// /etc/podctl/runtimes.toml when it exists]
    #[arg(long, global = true, env = "PODCTL_RUNTIME_CONFIG")]
    pub runtime_config: Option<PathBuf>,
    /// Where member-runtime plugins (podctl-runtime-NAME) are found, before the directory of the
    /// podctl binary itself
    #[arg(
        long,
        global = true,
        env = "PODCTL_PLUGIN_DIR",
        value_delimiter = ':',
        default_value = "/usr/libexec/podctl/runtimes"
    )]
    pub plugin_dir: Vec<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create pods, Deployments, ReplicaSets, DaemonSets, PersistentVolumeClaims, ConfigMaps and
    /// Secrets from manifests, or a ConfigMap or Secret from literals and files
    Create(CreateArgs),
    /// Create what is missing, update what changed, leave the rest (as `kubectl apply`)
    Apply(ApplyArgs),
    /// List pods (`get pods`, `get pod NAME`), workloads (`get deployments`), claims (`get pvc`)
    /// and objects
    Get(GetArgs),
    /// Show a pod in detail (members, images, namespaces, IP, ports, labels, events), or a
    /// Deployment, ReplicaSet or DaemonSet
    Describe(DescribeArgs),
    /// Print a member's logs
    Logs(LogsArgs),
    /// Stop a pod gracefully and remove everything it made; or a workload and its pods, or an
    /// object
    Delete(DeleteArgs),
    /// Set how many pods a Deployment or ReplicaSet runs (`scale deployment/web --replicas 3`)
    Scale(ScaleArgs),
    /// A workload's rollout: `rollout status deployment/NAME`
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Show pod events (creation, exits, restarts, probe failures)
    Events(EventsArgs),
    /// Run a command in a running member (OCI containers)
    Exec(ExecArgs),
    /// Attach to a running member's output, and with -i its input (as kubectl attach); a member
    /// with `tty: true` gets your terminal with -t. Detach with Ctrl-P Ctrl-Q
    Attach(AttachArgs),
    /// Wait until pods meet a condition, or are deleted (as `kubectl wait`)
    Wait(WaitArgs),
    /// Copy files and directories between a member and the host: `cp POD:PATH LOCAL`,
    /// `cp LOCAL POD:PATH` (as kubectl cp)
    Cp(CpArgs),
    /// podctl's version, containerd's, and the runc, CNI plugin and member runtime versions in use
    Version(VersionArgs),
    /// A shell completion script: `source <(podctl completion bash)` (pod and member names too)
    Completion(CompletionArgs),
    /// CPU and memory of pods and their members (`top pod [NAME] [--containers]`), as kubectl top
    #[command(subcommand)]
    Top(TopCommand),
    /// Kubernetes YAML of a pod made here (`kube generate POD`), as `podman kube generate`
    #[command(subcommand)]
    Kube(KubeCommand),
    /// Man pages: `podctl man` prints podctl(1); `--dir DIR` writes one per command
    Man(ManArgs),
    /// Names for shell completion (used by the completion scripts)
    #[command(name = "__complete", hide = true)]
    CompleteNames(CompleteNamesArgs),
    /// Member runtimes and runtime handlers (`runtime ls`)
    #[command(subcommand)]
    Runtime(RuntimeCommand),
    /// Host integration: `system restore` (pods back after a reboot), `system install` (its
    /// systemd unit)
    #[command(subcommand)]
    System(SystemCommand),
    /// Remove what pods that no longer exist left: interrupted creates and deletes, netns pins,
    /// CNI address reservations, nat rules, create leases, state and log directories
    Gc(GcArgs),
    /// Stop a pod's members (stop signal, grace period, SIGKILL); the sandbox and its IP stay
    Stop(StopArgs),
    /// Start a stopped pod's members again
    Start(StartArgs),
    /// Stop and start a pod's members
    Restart(StopArgs),
    /// Manage images in containerd
    #[command(subcommand)]
    Image(ImageCommand),
    /// The per-pod agent: supervision, probes, and the WASM plugin of a pod with WASM members
    #[command(subcommand)]
    Agent(AgentCommand),
}

/// A size a flag takes, as Kubernetes writes quantities (`10Mi`, `512Ki`, `1048576`).
fn bytes(text: &str) -> Result<u64, String> {
    match crate::manifest::parse_quantity_bytes(text) {
        Some(n) if n >= 1024 => Ok(n),
        Some(_) => Err(format!("{text:?}: at least 1Ki")),
        None => Err(format!("{text:?} is not a size; write e.g. 10Mi")),
    }
}

/// A number of seconds a flag takes: finite, not negative, at most a day (`inf`, `NaN` and `-1`
/// are refused here rather than panicking later in a Duration).
fn seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !value.is_finite() || !(0.0..=86_400.0).contains(&value) {
        return Err(format!("{text:?}: give seconds from 0 to 86400"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_flags_refuse_what_no_duration_can_hold() {
        assert_eq!(super::seconds("2.5"), Ok(2.5));
        for bad in ["inf", "NaN", "-1", "1e300", "ten"] {
            assert!(super::seconds(bad).is_err(), "{bad}");
        }
    }
}
