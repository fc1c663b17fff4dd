//! What podctl and the agent exchange: `agent.json` (the pod's WASM members, written by podctl at
//! create) and one JSON line of request and one of reply per connection on `agent.sock`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AgentConfig {
    pub pod: String,
    pub sandbox_id: String,
    pub netns: PathBuf,
    /// The pause process, whose UTS and IPC namespaces the agent (and so its plugins) joins too,
    /// while it still holds the pod's netns.
    #[serde(default)]
    pub pause_pid: Option<u32>,
    /// The plugins that run the members below, one process each (started by the agent).
    #[serde(default)]
    pub plugins: Vec<PluginLaunch>,
    /// What older podctl wrote instead of `plugins`: the wasmtime plugin and its AOT cache.
    #[serde(default, rename = "plugin", skip_serializing)]
    pub legacy_plugin: Option<PathBuf>,
    #[serde(default, rename = "cache_dir", skip_serializing)]
    pub legacy_cache_dir: Option<PathBuf>,
    pub members: Vec<PluginMemberDef>,
    /// The pod's OCI members, which the agent restarts per the pod's restartPolicy.
    #[serde(default)]
    pub supervisor: Option<SupervisorConfig>,
    /// Init containers left to run, in order, when one failed during `create` under a restart
    /// policy that retries it: the agent runs them to success, then starts the members.
    #[serde(default)]
    pub init: Vec<InitRef>,
}

/// How the agent starts a member-runtime plugin: `binary --socket <pod dir>/<name>.sock` with `env`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PluginLaunch {
    pub name: String,
    pub binary: PathBuf,
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

impl AgentConfig {
    /// The plugins to start, including the one an older podctl named in `plugin`.
    pub fn launches(&self) -> Vec<PluginLaunch> {
        let mut launches = self.plugins.clone();
        if let Some(binary) = &self.legacy_plugin {
            launches.push(PluginLaunch {
                name: "wasmtime".into(),
                binary: binary.clone(),
                env: self
                    .legacy_cache_dir
                    .iter()
                    .map(|dir| ("PODCTL_WASM_CACHE_DIR".into(), dir.to_string_lossy().into_owned()))
                    .collect(),
            });
        }
        launches
    }
}

fn wasmtime() -> String {
    "wasmtime".into()
}

impl PluginMemberDef {
    /// The ports the plugin is told about (older records kept only the HTTP one).
    pub fn ports(&self) -> Vec<u16> {
        match (self.ports.is_empty(), self.http_port) {
            (true, Some(port)) => vec![port],
            _ => self.ports.clone(),
        }
    }
}

/// An init container whose container record and snapshot exist; the agent makes its tasks.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InitRef {
    pub name: String,
    pub id: String,
    /// Where its numbered log files go: `<attempt>.log`.
    pub log_dir: PathBuf,
    /// Its place among the pod's init containers, for `Init:N/M`.
    pub index: usize,
    pub total: usize,
    /// A sidecar (`restartPolicy: Always`): a member, created by `create`, that the agent starts in
    /// its init order and waits for until its startup probe passes (or it runs), not until it exits.
    #[serde(default)]
    pub sidecar: bool,
    /// `stdin`/`tty`, as for [`OciMemberRef::stdio`].
    #[serde(default)]
    pub stdio: Option<crate::logs::relay::Interactive>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SupervisorConfig {
    /// The sandbox container, where the pod's events are kept.
    #[serde(default)]
    pub sandbox_id: String,
    /// containerd's socket: a path-based unix socket works from the pod's netns.
    pub address: PathBuf,
    pub namespace: String,
    /// Always, OnFailure or Never.
    pub restart_policy: String,
    /// kubelet's crash-loop backoff starts here (10 s) and doubles up to 5 minutes.
    pub backoff_base_ms: u64,
    pub members: Vec<OciMemberRef>,
    /// Where HTTP and TCP probes connect by default, as kubelet uses the pod IP.
    #[serde(default)]
    pub pod_ip: Option<String>,
    /// When the members' logs are rotated (the log driver of each restart gets it).
    #[serde(default)]
    pub log_rotation: podctl_plugin::cri_log::Rotation,
    /// The pod's terminationGracePeriodSeconds: what sidecars get when the app containers ended.
    #[serde(default)]
    pub grace_seconds: Option<u64>,
    /// The pod's state directory, where the members' termination message files are.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// When the pod's activeDeadlineSeconds runs out (Unix seconds).
    #[serde(default)]
    pub deadline: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OciMemberRef {
    pub name: String,
    pub id: String,
    /// Where its numbered log files go: `<restart>.log`.
    pub log_dir: PathBuf,
    #[serde(default)]
    pub probes: Vec<ProbeDef>,
    /// A sidecar: restarted whatever the pod's restartPolicy, and stopped (last first) once the
    /// app containers have ended for good.
    #[serde(default)]
    pub sidecar: bool,
    /// Its stop signal, for stopping a sidecar.
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub hooks: Hooks,
    /// `terminationMessagePolicy: FallbackToLogsOnError`.
    #[serde(default)]
    pub message_from_logs: bool,
    /// `stdin`/`tty`: each run's task gets FIFOs held by a relay (see `logs::relay`).
    #[serde(default)]
    pub stdio: Option<crate::logs::relay::Interactive>,
}

/// A container's `lifecycle` hooks, as the agent runs them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Hooks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_start: Option<HookDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<HookDef>,
}

/// One hook: an exec, httpGet or tcpSocket action (as probes run them), or a sleep.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum HookDef {
    Action(ProbeAction),
    Sleep { seconds: u64 },
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ProbeAction {
    Http {
        host: Option<String>,
        port: u16,
        path: String,
        /// `scheme: HTTPS`: TLS without verifying the certificate, as kubelet.
        #[serde(default)]
        https: bool,
        /// `httpHeaders` in the manifest's order; a `Host` header replaces the default one.
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    /// The standard gRPC health protocol on the pod's IP, without TLS.
    Grpc {
        port: u16,
        #[serde(default)]
        service: String,
    },
    Tcp {
        host: Option<String>,
        port: u16,
    },
    Exec {
        command: Vec<String>,
    },
}

/// A probe with its port resolved, as the agent runs it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProbeDef {
    pub kind: ProbeKind,
    pub action: ProbeAction,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

/// What the probes say about one OCI member's current run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct ProbeStatus {
    pub name: String,
    /// The startup probe succeeded (or there is none).
    pub started: bool,
    /// The readiness probe succeeds (or there is none).
    pub ready: bool,
    /// The last probe result worth showing, e.g. `liveness failed: connection refused`.
    pub last: String,
}

/// A member the agent hosts: a plugin runs it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PluginMemberDef {
    pub name: String,
    /// The plugin that runs it (NAME of podctl-runtime-NAME); pods made before plugins had names
    /// ran their members on wasmtime.
    #[serde(default = "wasmtime")]
    pub plugin: String,
    /// Its containerd container record, where restarts and last states are kept.
    #[serde(default)]
    pub id: String,
    /// What the plugin runs: a module, an executable (a local file, or copied from the image into
    /// the pod's state directory at create).
    #[serde(alias = "module")]
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub preopens: Vec<PreopenDef>,
    pub log_path: PathBuf,
    pub memory_limit: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    /// The container's ports (a member that serves HTTP listens on the first).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// When the plugin rotates its log.
    #[serde(default)]
    pub log_rotation: podctl_plugin::cri_log::Rotation,
    /// What older podctl wrote instead of `ports`.
    #[serde(default, skip_serializing)]
    pub http_port: Option<u16>,
    /// httpGet and sleep hooks, run by the agent as for OCI members.
    #[serde(default)]
    pub hooks: Hooks,
    /// httpGet and tcpSocket probes, run by the agent as for OCI members.
    #[serde(default)]
    pub probes: Vec<ProbeDef>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PreopenDef {
    pub host: PathBuf,
    pub guest: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Status,
    /// Stop every member (HTTP members drain for up to `grace_secs`), reply, then exit.
    Stop {
        grace_secs: u64,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatusReply {
    pub pid: u32,
    pub started_at: f64,
    pub members: Vec<PluginMemberStatus>,
    /// Probe results of the OCI members that have probes.
    #[serde(default)]
    pub probes: Vec<ProbeStatus>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PluginState {
    /// Not started yet: the pod's init containers are still running.
    Pending,
    Running,
    Exited,
    /// It never ran: loading or instantiating failed.
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PluginMemberStatus {
    pub name: String,
    pub state: PluginState,
    pub ready: bool,
    pub started_at: Option<f64>,
    pub exit_code: Option<i32>,
    /// Kubernetes-style reason: Completed, Error, OOMKilled, Stopped, Trap, LoadFailed.
    pub reason: Option<String>,
    pub message: Option<String>,
    /// How often the member was restarted (by its restart policy, or with the agent).
    pub restarts: u32,
    /// Why it is not running while it waits to be restarted (`CrashLoopBackOff`).
    #[serde(default)]
    pub waiting: Option<String>,
    pub cache_hit: bool,
    /// Compiling the module, or loading it from the AOT cache.
    pub load_ms: f64,
    /// From reading the module to the member running: what one more WASM member costs to start.
    #[serde(default)]
    pub start_ms: f64,
    /// Its own process, if the plugin runs it in one (else it lives in the plugin's).
    #[serde(default)]
    pub pid: Option<u32>,
    /// What the plugin counts it uses (`podctl top`): memory in bytes, CPU time in nanoseconds.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub cpu_nanos: Option<u64>,
}
