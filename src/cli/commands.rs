//! The arguments of the commands on pods and their objects (create, get, logs, exec, attach, ...).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

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
    /// Kinds that mean nothing on one host (Service, Ingress, ServiceAccount…) are an error, not
    /// a warning
    #[arg(long)]
    pub strict: bool,
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
    /// Kinds that mean nothing on one host (Service, Ingress, ServiceAccount…) are an error, not
    /// a warning
    #[arg(long)]
    pub strict: bool,
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
    /// Resource type: pods (pod, po), deployments (deploy), replicasets (rs), daemonsets (ds),
    /// persistentvolumeclaims (pvc), configmaps (cm), secrets or runtimeclasses
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
    /// Resource type: pod (pods, po), deployment, replicaset or daemonset; or TYPE/NAME
    pub resource: String,
    /// The name (unless given as TYPE/NAME)
    pub name: Option<String>,
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
    /// Make this host a Kubernetes node that runs podctl's pods: install the node runtime
    /// `containerd-shim-podctl-v1` into /usr/local/bin, add the `podctl` handler to containerd's
    /// CRI config (with --containerd-config; else print it) and print the RuntimeClass
    InstallNode {
        /// Install under this root instead of / (for images and tests)
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// containerd's config file to add the handler to (e.g. /etc/containerd/config.toml);
        /// without it the TOML is printed
        #[arg(long, value_name = "FILE")]
        containerd_config: Option<PathBuf>,
        /// The shim binary to install (default: containerd-shim-podctl-v1 next to podctl)
        #[arg(long, value_name = "FILE")]
        shim: Option<PathBuf>,
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
    /// With -f: delete the PersistentVolumeClaims the files define, and their data (kept
    /// otherwise, as `podman kube down` keeps volumes)
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// `deployment NAME`, `deployment/NAME`, or a ReplicaSet's
    #[arg(required = true, num_args = 1..=2)]
    pub target: Vec<String>,
    /// The number of pods it is to run
    #[arg(long)]
    pub replicas: u32,
}

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Wait until every pod of a Deployment or DaemonSet is of its current template and ready
    Status {
        /// `deployment/NAME`, or `deployment NAME`
        #[arg(required = true, num_args = 1..=2)]
        target: Vec<String>,
        /// Give up after this long (`30s`, `5m`; default: wait)
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
    },
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
    Generate(KubeGenerateArgs),
}

#[derive(Args, Debug)]
pub struct KubeGenerateArgs {
    /// Pod name
    pub pod: String,
    /// Write it to this file instead of stdout
    #[arg(long, short = 'f')]
    pub filename: Option<PathBuf>,
    /// Push what a cluster could not pull (the pod's local .wasm/.wat programs as `wasi/wasm`
    /// images, podctl's built-in images) to this registry and name the pushed images in the YAML;
    /// a pod with WASM members gets `runtimeClassName: podctl` (podctl's node runtime)
    #[arg(long, value_name = "HOST[:PORT][/PATH]")]
    pub registry: Option<String>,
    /// The pod's runtimeClassName in the YAML, instead of `podctl` for a pod with WASM members
    #[arg(long, value_name = "NAME")]
    pub runtime_class: Option<String>,
    /// What to emit: the pod, or a Deployment of one replica with the pod as its template (as
    /// `podman kube generate --type deployment`)
    #[arg(long = "type", value_enum, default_value_t = GenerateType::Pod)]
    pub type_: GenerateType,
    #[command(flatten)]
    pub registry_args: crate::cli::RegistryArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenerateType {
    Pod,
    Deployment,
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
