//! Command-line types (clap derive) and nothing else: what a user can type, with ctr's global flags.
//! [`complete`] turns them into shell completion scripts and man pages.

pub mod complete;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Pod name
    pub pod: String,
    /// Member name (default: the kubectl.kubernetes.io/default-container annotation, else the first)
    #[arg(long, short = 'c')]
    pub container: Option<String>,
    /// Send standard input to the member (it needs `stdin: true`)
    #[arg(long, short = 'i')]
    pub stdin: bool,
    /// Use your terminal as the member's (it needs `tty: true`)
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Print nothing of podctl's own, only the member's output
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create pods and their ConfigMaps and Secrets from manifests, or a ConfigMap or Secret from
    /// literals and files
    Create(CreateArgs),
    /// Create what is missing, update what changed, leave the rest (as `kubectl apply`)
    Apply(ApplyArgs),
    /// List pods (`get pods`, `get pod NAME`)
    Get(GetArgs),
    /// Show a pod in detail: members, images, namespaces, IP, ports, labels, events
    Describe(DescribeArgs),
    /// Print a member's logs
    Logs(LogsArgs),
    /// Stop a pod gracefully and remove everything it made
    Delete(DeleteArgs),
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

#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Run the agent of a pod (podctl starts it; not for interactive use)
    #[command(hide = true)]
    Run {
        #[arg(long)]
        pod_dir: PathBuf,
    },
    /// Run the agent of a pod and start it again when it dies (podctl starts it)
    #[command(hide = true)]
    Monitor {
        #[arg(long)]
        pod_dir: PathBuf,
    },
    /// Show what the agent of a pod reports (JSON)
    Status { pod: String },
    /// Start the agent of a pod again after it died; its WASM members count a restart
    Restart { pod: String },
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CreateArgs {
    /// Manifest files or directories of them (`-` for standard input; repeat for several). A file
    /// may hold several documents (`---`) or a `kind: List`
    #[arg(long, short = 'f')]
    pub filename: Vec<PathBuf>,
    /// Read the directories given with -f and their subdirectories
    #[arg(long, short = 'R')]
    pub recursive: bool,
    #[command(subcommand)]
    pub object: Option<CreateObject>,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Manifest files or directories of them (`-` for standard input; repeat for several)
    #[arg(long, short = 'f', required = true)]
    pub filename: Vec<PathBuf>,
    /// Read the directories given with -f and their subdirectories
    #[arg(long, short = 'R')]
    pub recursive: bool,
    /// A pod whose spec changed beyond its images is deleted and created again
    #[arg(long)]
    pub force: bool,
}

/// `podctl create configmap|secret`, as kubectl's.
#[derive(Subcommand, Debug)]
pub enum CreateObject {
    /// A ConfigMap from literals and files
    #[command(visible_alias = "cm")]
    Configmap(ConfigDataArgs),
    /// A Secret: `generic` from literals and files, or `docker-registry` credentials
    Secret {
        #[command(subcommand)]
        kind: SecretKind,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretKind {
    /// An Opaque Secret (or --type) from literals and files
    Generic {
        #[command(flatten)]
        data: ConfigDataArgs,
        /// The Secret's type
        #[arg(long = "type", default_value = "Opaque")]
        type_: String,
    },
    /// A kubernetes.io/dockerconfigjson Secret, for a pod's imagePullSecrets
    DockerRegistry {
        name: String,
        #[arg(long)]
        docker_server: String,
        #[arg(long)]
        docker_username: String,
        #[arg(long)]
        docker_password: String,
        #[arg(long)]
        docker_email: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ConfigDataArgs {
    pub name: String,
    /// KEY=VALUE (repeat for several)
    #[arg(long)]
    pub from_literal: Vec<String>,
    /// [KEY=]PATH: a file (its name is the key) or a directory (each regular file in it)
    #[arg(long)]
    pub from_file: Vec<String>,
}

/// `-o`: wide, yaml, json, name, `jsonpath=TEMPLATE` or `custom-columns=NAME:PATH,...` (as kubectl).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Wide,
    Yaml,
    Json,
    Name,
    JsonPath(String),
    CustomColumns(String),
}

fn parse_output(text: &str) -> Result<OutputFormat, String> {
    let unquote = |t: &str| {
        let t = t.trim();
        t.strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .unwrap_or(t)
            .to_string()
    };
    match text.split_once('=') {
        Some(("jsonpath", template)) => Ok(OutputFormat::JsonPath(unquote(template))),
        Some(("custom-columns", spec)) => Ok(OutputFormat::CustomColumns(unquote(spec))),
        _ => match text {
            "wide" => Ok(OutputFormat::Wide),
            "yaml" => Ok(OutputFormat::Yaml),
            "json" => Ok(OutputFormat::Json),
            "name" => Ok(OutputFormat::Name),
            other => Err(format!(
                "{other:?} is not an output format; use wide, yaml, json, name, jsonpath=TEMPLATE or custom-columns=NAME:.path,..."
            )),
        },
    }
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Resource type: pods (pod, po), configmaps (cm), secrets or runtimeclasses
    pub resource: String,
    /// Names (all when none)
    pub names: Vec<String>,
    /// Output format: wide, yaml, json, name, jsonpath=TEMPLATE, custom-columns=NAME:.path,...
    #[arg(long, short = 'o', value_parser = parse_output)]
    pub output: Option<OutputFormat>,
    /// After the table, print each pod's row again whenever it changes
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// Only objects whose labels match, as kubectl's: `app=web,tier!=db,env in (a,b),k,!k`
    #[arg(long, short = 'l')]
    pub selector: Option<String>,
    /// Sort by a JSONPath of the objects, e.g. `.metadata.name` or `{.status.startTime}`
    #[arg(long)]
    pub sort_by: Option<String>,
    /// A LABELS column with every label
    #[arg(long)]
    pub show_labels: bool,
    /// A column with this label's value (repeat, or separate keys with ',')
    #[arg(long = "label-columns", short = 'L', value_delimiter = ',')]
    pub label_columns: Vec<String>,
    /// Tables without their header line
    #[arg(long)]
    pub no_headers: bool,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Resource type: pod (pods, po)
    pub resource: String,
    /// Pod name
    pub name: String,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Pod name (or `-l SELECTOR`)
    #[arg(required_unless_present = "selector")]
    pub pod: Option<String>,
    /// Member name (default: the kubectl.kubernetes.io/default-container annotation, else the first)
    #[arg(long, short = 'c')]
    pub container: Option<String>,
    /// The logs of every pod whose labels match (`app=web`); --tail defaults to 10 then, as in kubectl
    #[arg(long, short = 'l', conflicts_with = "pod")]
    pub selector: Option<String>,
    /// Every container of the pod: init containers, sidecars and app containers
    #[arg(long)]
    pub all_containers: bool,
    /// Start each line with `[pod/NAME/CONTAINER] `
    #[arg(long)]
    pub prefix: bool,
    /// Only what was logged in this last stretch of time: `10s`, `5m`, `2h`
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "since_time")]
    pub since: Option<std::time::Duration>,
    /// Only what was logged from this time on (RFC 3339, e.g. 2026-12-01T10:00:00Z)
    #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
    pub since_time: Option<std::time::SystemTime>,
    /// At most this many bytes of each container's log
    #[arg(long)]
    pub limit_bytes: Option<usize>,
    /// Print only the last N lines
    #[arg(long)]
    pub tail: Option<usize>,
    /// Print the logs of the member's previous run (before its last restart)
    #[arg(long, short = 'p')]
    pub previous: bool,
    /// Keep printing what the member logs, across its restarts, until the pod is deleted
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Prefix each line with the time it was logged (RFC 3339, nanoseconds, UTC)
    #[arg(long)]
    pub timestamps: bool,
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Bring back pods whose sandbox a host restart took: new netns and pause, CNI ADD (with their
    /// host ports), members per restartPolicy, the agent
    Restore {
        /// Every containerd namespace, not only --namespace
        #[arg(long, short = 'A')]
        all_namespaces: bool,
    },
    /// Install (and, with systemd, enable) podctl-restore.service, which runs
    /// `podctl system restore -A` at boot after containerd
    Install {
        /// Install under this root instead of / (for images and tests); nothing is enabled then
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Only list what would be removed
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Pod names; a leading `pod`/`pods`/`po` is accepted as in kubectl, and `configmap NAME...`,
    /// `secret NAME...` and `runtimeclass NAME...` delete those objects
    pub names: Vec<String>,
    /// Delete what manifest files (or directories of them) name: pods first, then their objects
    #[arg(long, short = 'f', conflicts_with = "names")]
    pub filename: Vec<PathBuf>,
    /// Read the directories given with -f and their subdirectories
    #[arg(long, short = 'R')]
    pub recursive: bool,
    /// Seconds members get after their stop signal before SIGKILL (default: the pod's
    /// terminationGracePeriodSeconds, else 30)
    #[arg(long)]
    pub grace_period: Option<u64>,
    /// Succeed when the pod does not exist
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Every object of the kind (pods unless `configmaps`/`secrets` is named) whose labels match
    #[arg(long, short = 'l', conflicts_with_all = ["filename", "all"])]
    pub selector: Option<String>,
    /// Every object of the kind in the namespace (pods unless `configmaps`/`secrets` is named)
    #[arg(long, conflicts_with = "filename")]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Only this pod's events
    pub pod: Option<String>,
    /// Keep printing new events
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Output format: yaml, json, jsonpath=TEMPLATE, custom-columns=NAME:.path,... (Event objects)
    #[arg(long, short = 'o', value_parser = parse_output, conflicts_with = "follow")]
    pub output: Option<OutputFormat>,
    /// Sort by a JSONPath of the Event objects, e.g. `.reason` (default: the time)
    #[arg(long)]
    pub sort_by: Option<String>,
    /// The table without its header line
    #[arg(long)]
    pub no_headers: bool,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Pod name
    pub pod: String,
    /// Member name (default: the kubectl.kubernetes.io/default-container annotation, else the first)
    #[arg(long, short = 'c')]
    pub container: Option<String>,
    /// Pass standard input to the command
    #[arg(long, short = 'i')]
    pub stdin: bool,
    /// Allocate a terminal
    #[arg(long, short = 't')]
    pub tty: bool,
    /// The command and its arguments (after `--`)
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum TopCommand {
    /// CPU(cores) in millicores and MEMORY(bytes) in Mi, sampled over a short window
    #[command(alias = "pods", alias = "po")]
    Pod(TopArgs),
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Pod name (all when none)
    pub name: Option<String>,
    /// A row per member
    #[arg(long)]
    pub containers: bool,
    /// cpu or memory, highest first
    #[arg(long, value_parser = ["cpu", "memory"])]
    pub sort_by: Option<String>,
    /// Only pods whose labels match
    #[arg(long, short = 'l')]
    pub selector: Option<String>,
    /// Tables without their header line
    #[arg(long)]
    pub no_headers: bool,
    /// How long CPU use is sampled
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub window: std::time::Duration,
}

#[derive(Subcommand, Debug)]
pub enum KubeCommand {
    /// A clean `kind: Pod` of the pod: no status, no podctl-only fields; `podctl create -f` of it
    /// makes the same pod again
    Generate {
        /// Pod name
        pod: String,
        /// Write it to this file instead of stdout
        #[arg(long, short = 'f')]
        filename: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    pub shell: CompletionShell,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write podctl.1 and podctl-COMMAND.1 here (e.g. /usr/local/share/man/man1)
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CompleteNamesArgs {
    /// `pods`, or `members` with a pod name
    pub what: String,
    pub pod: Option<String>,
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// `POD:PATH` or a local path
    pub source: String,
    /// `POD:PATH` or a local path
    pub destination: String,
    /// Member name (default: the kubectl.kubernetes.io/default-container annotation, else the first)
    #[arg(long, short = 'c')]
    pub container: Option<String>,
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Only podctl's own version (no containerd needed)
    #[arg(long)]
    pub client: bool,
    /// Output format
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<VersionFormat>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionFormat {
    Yaml,
    Json,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Pods: `pod/NAME`, `pods/NAME` or `NAME`
    #[arg(required_unless_present_any = ["all", "selector"])]
    pub names: Vec<String>,
    /// `condition=Ready` (`condition=Initialized=False` waits for False), `delete`, or
    /// `jsonpath={.status.phase}=Running`
    #[arg(long = "for", value_name = "CONDITION")]
    pub condition: String,
    /// How long to wait: `60s`, `5m`, `1h`
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Every pod
    #[arg(long)]
    pub all: bool,
    /// The pods whose labels match, as kubectl's: `app=web,tier!=db`
    #[arg(long, short = 'l')]
    pub selector: Option<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Pod names
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Seconds members get after their stop signal before SIGKILL (default: the pod's
    /// terminationGracePeriodSeconds)
    #[arg(long)]
    pub grace_period: Option<u64>,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Pod names
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// The registry speaks plain HTTP (mirrors in hosts.toml say so in their URL)
    #[arg(long)]
    pub plain_http: bool,
    /// Credentials for the registry, instead of ~/.docker/config.json
    #[arg(long, short = 'u', value_name = "NAME:PASSWORD")]
    pub user: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum RuntimeCommand {
    /// List podctl's member runtimes and the handlers of the runtime config, with what they run
    #[command(alias = "list")]
    Ls,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Pull an image from a registry into containerd (OCI images and wasm artifacts)
    Pull {
        /// Image reference, e.g. nginx, registry.example:5000/team/app:1.4, name@sha256:...
        reference: String,
        /// Platform to pull from a multi-platform index (default: this host's)
        #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
        platform: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Layers downloaded at once
        #[arg(long, value_name = "N", default_value_t = crate::image::PARALLEL_LAYERS as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
        max_concurrent_downloads: u16,
        /// Print only the image's digest, no progress
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Push a local image (OCI or wasm) to the registry its name names
    Push {
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Import an OCI image-layout or docker-archive tar (`-` for standard input), or a `.wasm`
    /// file as an OCI wasm artifact (give it a name with --name)
    Import {
        file: PathBuf,
        /// Name for an image the archive does not name (required for a .wasm file)
        #[arg(long)]
        name: Option<String>,
    },
    /// Give a local image another name (as `ctr image tag`, `podman tag`)
    Tag { source: String, target: String },
    /// List images
    #[command(alias = "list")]
    Ls,
    /// Remove images
    Rm { names: Vec<String> },
    /// Write one of podctl's built-in images (pause, echoserver) as an OCI archive
    Export {
        /// Built-in image reference, e.g. podctl.local/echoserver:0.1
        reference: String,
        /// Output file
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
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
