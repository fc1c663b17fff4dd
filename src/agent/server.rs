//! The agent process: `podctl agent run --pod-dir DIR`. Enters the pod's netns while it is still
//! single-threaded, starts there the plugins its members need (none for a pod with only OCI
//! members), runs those members through them and serves status/stop requests.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podctl_plugin::{Client as PluginClient, EnvVar, Limits, Member, MemberStatus, State, Volume};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::RwLock;

use super::hooks::Hooked;
use super::probes::{Probed, Target};
use super::protocol::{
    AgentConfig, PluginMemberDef, PluginMemberStatus, PluginState, ProbeKind, Request, StatusReply, SupervisorConfig,
};
use super::*;
use crate::record::PodEvent;

/// Runs the agent until it is told to stop (request or SIGTERM). Must be called before the process
/// has created any thread.
pub fn run(pod_dir: &Path) -> Result<(), AgentError> {
    let config_path = pod_dir.join(CONFIG_FILE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| AgentError::Io {
            pod: pod_dir.display().to_string(),
            path,
            cause,
        }
    };
    // Held until this process ends: no second agent serves this directory meanwhile.
    let _lock = PodDirLock::acquire(pod_dir, Duration::ZERO)?;
    let text = std::fs::read_to_string(&config_path).map_err(io(&config_path))?;
    let config: AgentConfig = serde_json::from_str(&text).map_err(|e| AgentError::Protocol {
        pod: pod_dir.display().to_string(),
        cause: format!("{}: {e}", config_path.display()),
    })?;
    enter_netns(&config)?;
    // One thread: the agent only waits on sockets (containerd, probes, the plugin that runs the
    // WASM members); each more thread would cost a stack and a malloc arena in every pod.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io(pod_dir))?;
    let result = runtime.block_on(serve(pod_dir.to_path_buf(), config));
    // Exit promptly once the reply is sent: podctl waits for this process to be gone.
    runtime.shutdown_timeout(Duration::from_millis(50));
    result
}

/// Joins the pod's network namespace, and its UTS and IPC ones (the plugins' members see the pod's
/// hostname). `setns` changes only the calling thread; every thread created afterwards inherits
/// it. So this must happen while the process has exactly one thread.
fn enter_netns(config: &AgentConfig) -> Result<(), AgentError> {
    // A hostNetwork pod has none of its own: the agent stays in the host's.
    if config.netns.as_os_str().is_empty() {
        return Ok(());
    }
    let fail = |cause: String| AgentError::Netns {
        pod: config.pod.clone(),
        netns: config.netns.clone(),
        cause,
    };
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().parse::<u32>().unwrap_or(0)))
        })
        .unwrap_or(0);
    if threads != 1 {
        return Err(fail(format!(
            "the agent already runs {threads} threads; it must enter the netns first"
        )));
    }
    let file = std::fs::File::open(&config.netns).map_err(|e| fail(e.to_string()))?;
    // The pause process's other namespaces, opened before the netns changes, and only if that
    // PID is still the pod's pause (its netns is the pod's): a PID can be reused.
    let others = config.pause_pid.and_then(|pid| {
        use std::os::unix::fs::MetadataExt;
        let inode = |path: &Path| std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        let proc_ns = |kind: &str| PathBuf::from(format!("/proc/{pid}/ns/{kind}"));
        let same = inode(&proc_ns("net")).is_some() && inode(&proc_ns("net")) == inode(&config.netns);
        same.then(|| {
            [
                (proc_ns("uts"), nix::sched::CloneFlags::CLONE_NEWUTS),
                (proc_ns("ipc"), nix::sched::CloneFlags::CLONE_NEWIPC),
            ]
            .into_iter()
            .filter_map(|(path, flag)| std::fs::File::open(path).ok().map(|f| (f, flag)))
            .collect::<Vec<_>>()
        })
    });
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| fail(e.to_string()))?;
    for (file, flag) in others.unwrap_or_default() {
        nix::sched::setns(file, flag).map_err(|e| fail(e.to_string()))?;
    }
    Ok(())
}

/// Survives agent restarts: how often each member has been restarted.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct PersistentState {
    starts: u32,
    pub(super) restarts: BTreeMap<String, u32>,
}

impl PersistentState {
    pub(super) fn restarts_of(&self, name: &str) -> u32 {
        self.restarts.get(name).copied().unwrap_or(0)
    }
}

/// A plugin process of the pod, or why it could not be started.
pub(super) type Plugin = Result<Arc<PluginClient>, String>;

/// A member the pod's plugin runs, by its name there.
#[derive(Clone)]
pub(super) struct PluginMember {
    plugin: Arc<PluginClient>,
    name: String,
}

/// The reason of a run whose plugin failed (it is gone, or hangs).
pub(super) const PLUGIN_FAILED: &str = "PluginFailed";

/// How a run ended.
pub(super) struct RunExit {
    pub code: i32,
    /// The plugin's reason (Completed, Error, OOMKilled, Trap, Stopped) or PluginFailed.
    pub reason: String,
    pub message: String,
    pub finished: f64,
}

impl PluginMember {
    /// Its state; a plugin that is gone or hangs is an error naming it.
    pub(super) async fn status(&self) -> Result<MemberStatus, String> {
        self.plugin.status(&self.name).await.map_err(|e| e.to_string())
    }

    pub(super) async fn running(&self) -> bool {
        self.status().await.is_ok_and(|s| s.state() == State::Running)
    }

    /// Waits for the run to end; a plugin that fails meanwhile ends it.
    pub(super) async fn wait(&self) -> RunExit {
        match self
            .plugin
            .wait(&self.name, Duration::from_secs(u64::from(u32::MAX)))
            .await
        {
            Ok(status) => RunExit {
                code: status.exit_code,
                reason: status.reason,
                message: status.message,
                finished: status.finished_at,
            },
            Err(e) => RunExit {
                code: 1,
                reason: PLUGIN_FAILED.into(),
                message: e.to_string(),
                finished: secs(SystemTime::now()),
            },
        }
    }

    pub(super) async fn stop(&self, grace: Duration) {
        if let Err(e) = self.plugin.stop(&self.name, grace).await {
            eprintln!("agent: stopping {}: {e}", self.name);
        }
    }

    pub(super) async fn kill(&self) {
        if let Err(e) = self.plugin.kill(&self.name).await {
            eprintln!("agent: killing {}: {e}", self.name);
        }
    }
}

/// Kubernetes' reason for a run's end (the plugin's own words beyond these count as Error).
pub(super) fn k8s_reason(reason: &str, code: i32) -> &'static str {
    match reason {
        "OOMKilled" => "OOMKilled",
        "Completed" => "Completed",
        PLUGIN_FAILED => PLUGIN_FAILED,
        "" if code == 0 => "Completed",
        _ => "Error",
    }
}

pub(super) enum Slot {
    /// Not started yet: the pod's init containers run first.
    Pending,
    Running {
        member: PluginMember,
        cache_hit: bool,
        load_ms: f64,
        start_ms: f64,
        pid: Option<u32>,
    },
    Failed {
        message: String,
        at: f64,
    },
}

pub(super) struct MemberSlot {
    pub(super) name: String,
    pub(super) slot: Slot,
    /// Why it is not running while it waits out its restart backoff (`CrashLoopBackOff`).
    pub(super) waiting: Option<String>,
}

pub(super) struct Agent {
    pub(super) probes: super::probes::ProbeBoard,
    /// WASM members with a readiness or startup probe: ready only once their probes say so.
    gated: std::collections::HashSet<String>,
    started_at: f64,
    pub(super) state: PersistentState,
    state_path: PathBuf,
    pub(super) members: Vec<MemberSlot>,
}

pub(super) fn secs(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl Agent {
    async fn status(&self) -> StatusReply {
        let mut members = Vec::new();
        for MemberSlot { name, slot, waiting } in &self.members {
            let status = {
                let restarts = self.state.restarts_of(name);
                let idle = |state| PluginMemberStatus {
                    name: name.clone(),
                    state,
                    ready: false,
                    started_at: None,
                    exit_code: None,
                    reason: None,
                    message: None,
                    restarts,
                    waiting: None,
                    cache_hit: false,
                    load_ms: 0.0,
                    start_ms: 0.0,
                    pid: None,
                    memory_bytes: None,
                    cpu_nanos: None,
                };
                let status = match slot {
                    Slot::Running {
                        member,
                        cache_hit,
                        load_ms,
                        start_ms,
                        pid,
                    } => {
                        let base = PluginMemberStatus {
                            cache_hit: *cache_hit,
                            load_ms: *load_ms,
                            start_ms: *start_ms,
                            pid: *pid,
                            ..idle(PluginState::Running)
                        };
                        match member.status().await {
                            Ok(status) if status.state() == State::Running => PluginMemberStatus {
                                ready: status.ready && self.probed_ready(name),
                                started_at: Some(status.started_at),
                                // 0 and 0: a plugin that does not count (or an older one).
                                memory_bytes: (status.memory_bytes > 0 || status.cpu_nanos > 0)
                                    .then_some(status.memory_bytes),
                                cpu_nanos: (status.memory_bytes > 0 || status.cpu_nanos > 0)
                                    .then_some(status.cpu_nanos),
                                ..base
                            },
                            Ok(status) => exited(base, &status),
                            Err(message) => PluginMemberStatus {
                                reason: Some(PLUGIN_FAILED.into()),
                                message: Some(message),
                                ..idle(PluginState::Failed)
                            },
                        }
                    }
                    Slot::Pending => idle(PluginState::Pending),
                    Slot::Failed { message, at } => PluginMemberStatus {
                        started_at: Some(*at),
                        reason: Some("LoadFailed".into()),
                        message: Some(message.clone()),
                        ..idle(PluginState::Failed)
                    },
                };
                PluginMemberStatus {
                    waiting: waiting.clone(),
                    ..status
                }
            };
            members.push(status);
        }
        let mut probes: Vec<_> = self.probes.lock().expect("not poisoned").values().cloned().collect();
        probes.sort_by(|a, b| a.name.cmp(&b.name));
        StatusReply {
            pid: std::process::id(),
            started_at: self.started_at,
            members,
            probes,
        }
    }

    /// The member's startup and readiness probes passed (or it has none).
    fn probed_ready(&self, name: &str) -> bool {
        !self.gated.contains(name)
            || self
                .probes
                .lock()
                .expect("not poisoned")
                .get(name)
                .is_some_and(|p| p.started && p.ready)
    }

    fn running(&self) -> Vec<PluginMember> {
        self.members
            .iter()
            .filter_map(|m| match &m.slot {
                Slot::Running { member, .. } => Some(member.clone()),
                Slot::Pending | Slot::Failed { .. } => None,
            })
            .collect()
    }

    async fn stop_all(&self, grace: Duration) {
        let running = self.running();
        futures_util::future::join_all(running.iter().map(|m| m.stop(grace))).await;
        let all = futures_util::future::join_all(running.iter().map(PluginMember::wait));
        if tokio::time::timeout(grace + Duration::from_secs(2), all).await.is_err() {
            futures_util::future::join_all(running.iter().map(PluginMember::kill)).await;
        }
    }

    /// Writes the restart counts where the next agent of this pod finds them.
    pub(super) fn save_state(&self) -> std::io::Result<()> {
        let json = serde_json::to_vec(&self.state).expect("state serializes");
        super::write_file(&self.state_path, json)
    }
}

/// Starts a run of one member through the plugin, logging to `log`; a member that cannot be
/// loaded or started (or whose plugin is not there) is a `Failed` slot.
pub(super) async fn start_slot(plugin: &Plugin, def: &PluginMemberDef, log: &Path) -> Slot {
    let began = std::time::Instant::now();
    let failed = |message: String| Slot::Failed {
        message,
        at: secs(SystemTime::now()),
    };
    let plugin = match plugin {
        Ok(plugin) => plugin,
        Err(why) => return failed(why.clone()),
    };
    match plugin.start(member_of(def, log)).await {
        Ok(started) => Slot::Running {
            member: PluginMember {
                plugin: plugin.clone(),
                name: def.name.clone(),
            },
            cache_hit: started.cache_hit,
            load_ms: started.load_millis,
            start_ms: began.elapsed().as_secs_f64() * 1000.0,
            pid: Some(started.pid).filter(|&pid| pid != 0),
        },
        Err(podctl_plugin::ClientError::Refused { message, .. }) => failed(message),
        Err(e) => failed(e.to_string()),
    }
}

/// The log directory of a member's runs (numbered like an OCI member's, next to its first run's).
pub(super) fn log_dir(def: &PluginMemberDef) -> &Path {
    def.log_path.parent().unwrap_or(Path::new("."))
}

/// The log file of a member's `restarts`-th run.
pub(super) fn run_log(def: &PluginMemberDef, restarts: u32) -> PathBuf {
    crate::logs::run_file(log_dir(def), restarts)
}

fn exited(base: PluginMemberStatus, exit: &MemberStatus) -> PluginMemberStatus {
    PluginMemberStatus {
        state: PluginState::Exited,
        ready: false,
        exit_code: Some(exit.exit_code),
        reason: Some(exit.reason.clone()),
        message: Some(exit.message.clone()).filter(|m| !m.is_empty()),
        ..base
    }
}

/// The member as the plugin protocol gives it.
fn member_of(def: &PluginMemberDef, log: &Path) -> Member {
    Member {
        name: def.name.clone(),
        program: def.program.to_string_lossy().into_owned(),
        args: def.args.clone(),
        env: def
            .env
            .iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        volumes: def
            .preopens
            .iter()
            .map(|p| Volume {
                host_path: p.host.to_string_lossy().into_owned(),
                guest_path: p.guest.clone(),
                read_only: p.read_only,
            })
            .collect(),
        log_path: log.to_string_lossy().into_owned(),
        limits: Some(Limits {
            memory_bytes: def.memory_limit.unwrap_or(0),
            cpu_millis: def.cpu_limit_millis.map_or(0, |m| u32::try_from(m).unwrap_or(u32::MAX)),
        }),
        ports: def.ports().into_iter().map(u32::from).collect(),
        log_max_bytes: def.log_rotation.max_bytes,
        log_max_files: def.log_rotation.max_files,
    }
}

/// Starts each plugin the pod's members need (one process per plugin, hosting all its members),
/// by name; one that cannot be started is the reason its members fail.
async fn launch_plugins(pod_dir: &Path, config: &AgentConfig) -> BTreeMap<String, Plugin> {
    let mut plugins = BTreeMap::new();
    for launch in config.launches() {
        if !config.members.iter().any(|m| m.plugin == launch.name) {
            continue;
        }
        let env: Vec<(&str, &std::ffi::OsStr)> = launch
            .env
            .iter()
            .map(|(name, value)| (name.as_str(), std::ffi::OsStr::new(value)))
            .collect();
        let socket = pod_dir.join(format!("{}.sock", launch.name));
        let plugin = PluginClient::launch_with_env(&launch.binary, &socket, &env)
            .await
            .map(Arc::new)
            .map_err(|e| e.to_string());
        plugins.insert(launch.name, plugin);
    }
    plugins
}

fn load_state(path: &Path) -> PersistentState {
    std::fs::read(path)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or_default()
}

async fn serve(pod_dir: PathBuf, config: AgentConfig) -> Result<(), AgentError> {
    let pod = config.pod.clone();
    let io = |path: PathBuf| {
        let pod = pod.clone();
        move |cause| AgentError::Io { pod, path, cause }
    };
    // A second start of the agent for the same pod is a restart of every member it hosts.
    let state_path = pod_dir.join(STATE_FILE);
    let mut state = load_state(&state_path);
    if state.starts > 0 {
        for member in &config.members {
            *state.restarts.entry(member.name.clone()).or_default() += 1;
        }
    }
    state.starts += 1;
    let json = serde_json::to_vec(&state).expect("state serializes");
    super::write_file(&state_path, json).map_err(io(state_path.clone()))?;

    // Each plugin inherits the pod's netns from this process; a pod with only OCI members has none.
    let plugins = launch_plugins(&pod_dir, &config).await;
    let plugin_of = |def: &PluginMemberDef| -> Plugin {
        plugins
            .get(&def.plugin)
            .cloned()
            .unwrap_or_else(|| Err(format!("no plugin {} was configured for this pod", def.plugin)))
    };
    // With init containers still to run, the members start once they have completed.
    let init_first = !config.init.is_empty();
    let mut members = Vec::new();
    for def in &config.members {
        let slot = if init_first {
            Slot::Pending
        } else {
            start_slot(&plugin_of(def), def, &run_log(def, state.restarts_of(&def.name))).await
        };
        members.push(MemberSlot {
            name: def.name.clone(),
            slot,
            waiting: None,
        });
    }
    // The supervisor stops before the members do, so a stop is never taken for a crash.
    let (stop_supervising, stopping) = tokio::sync::watch::channel(false);
    let probe_board: super::probes::ProbeBoard = Default::default();
    let gated = config
        .members
        .iter()
        .filter(|m| m.probes.iter().any(|p| p.kind != ProbeKind::Liveness))
        .map(|m| m.name.clone())
        .collect();
    let agent = Arc::new(RwLock::new(Agent {
        probes: probe_board.clone(),
        gated,
        started_at: secs(SystemTime::now()),
        state,
        state_path,
        members,
    }));
    let mut pre_stop = None;
    if let Some(supervisor) = config.supervisor.clone() {
        let oci = supervisor.members.iter().map(|m| Probed {
            name: m.name.clone(),
            probes: m.probes.clone(),
            target: Target::Oci { id: m.id.clone() },
        });
        let wasm = config.members.iter().enumerate().map(|(index, def)| Probed {
            name: def.name.clone(),
            probes: def.probes.clone(),
            target: Target::Wasm {
                agent: agent.clone(),
                index,
            },
        });
        let containerd = super::SharedClient::new(&supervisor);
        let oci_hooked = supervisor.members.iter().map(|m| Hooked {
            name: m.name.clone(),
            record_id: Some(m.id.clone()),
            post_start: m.hooks.post_start.clone(),
            pre_stop: m.hooks.pre_stop.clone(),
            sidecar: m.sidecar,
            target: Target::Oci { id: m.id.clone() },
        });
        let wasm_hooked = config.members.iter().enumerate().map(|(index, def)| Hooked {
            name: def.name.clone(),
            record_id: None,
            post_start: def.hooks.post_start.clone(),
            pre_stop: def.hooks.pre_stop.clone(),
            sidecar: false,
            target: Target::Wasm {
                agent: agent.clone(),
                index,
            },
        });
        let hooked: Vec<Hooked> = oci_hooked.chain(wasm_hooked).collect();
        let host = supervisor.pod_ip.clone().unwrap_or_else(|| "127.0.0.1".into());
        super::hooks::spawn_post_start(
            &hooked,
            host.clone(),
            supervisor.sandbox_id.clone(),
            containerd.clone(),
            stopping.clone(),
        );
        pre_stop = Some(Arc::new(PreStop {
            members: hooked,
            host,
            sandbox_id: supervisor.sandbox_id.clone(),
            containerd: containerd.clone(),
        }));
        super::probes::spawn_all(
            &supervisor,
            oci.chain(wasm).collect(),
            probe_board,
            containerd.clone(),
            stopping.clone(),
        );
        let keepers: Vec<_> = config
            .members
            .iter()
            .enumerate()
            .map(|(index, def)| super::keeper::Keeper {
                agent: agent.clone(),
                plugin: plugin_of(def),
                def: def.clone(),
                index,
                config: supervisor.clone(),
                stopping: stopping.clone(),
                containerd: containerd.clone(),
            })
            .collect();
        if init_first {
            let init = super::init::InitRunner {
                init: config.init.clone(),
                config: supervisor.clone(),
                agent: agent.clone(),
                plugins: config.members.iter().map(plugin_of).collect(),
                defs: config.members.clone(),
                stopping: stopping.clone(),
                containerd,
            };
            tokio::spawn(init.run(keepers));
        } else {
            for keeper in keepers {
                tokio::spawn(keeper.run());
            }
        }
        let apps_in_plugins = !config.members.is_empty();
        tokio::spawn(super::supervisor::Supervisor::new(supervisor, apps_in_plugins, stopping).run());
    }

    let socket = pod_dir.join(SOCKET_FILE);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(io(socket.clone()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).map_err(io(socket.clone()))?;
    let pid_path = pod_dir.join(PID_FILE);
    super::write_file(&pid_path, std::process::id().to_string()).map_err(io(pid_path))?;

    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(io(pod_dir.clone()))?;
    // Each connection is served on its own task: a `get` is answered while a delete's graceful
    // stop runs, and a client that connects and says nothing holds up no one.
    let stop_supervising = Arc::new(stop_supervising);
    if let (Some(supervisor), Some(deadline)) =
        (&config.supervisor, config.supervisor.as_ref().and_then(|s| s.deadline))
    {
        let deadline = DeadlineEnd {
            at: deadline,
            supervisor: supervisor.clone(),
            init: config.init.clone(),
            agent: agent.clone(),
            pre_stop: pre_stop.clone(),
            stop_supervising: stop_supervising.clone(),
        };
        tokio::spawn(deadline.run());
    }
    let (exit_tx, mut exit_rx) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (agent, stop_supervising, exit_tx) = (agent.clone(), stop_supervising.clone(), exit_tx.clone());
                let pre_stop = pre_stop.clone();
                tokio::spawn(async move {
                    if handle(stream, &agent, &stop_supervising, pre_stop.as_deref()).await {
                        let _ = exit_tx.send(()).await;
                    }
                });
            }
            _ = exit_rx.recv() => break,
            _ = terminate.recv() => {
                let _ = stop_supervising.send(true);
                agent.read().await.stop_all(Duration::from_secs(10)).await;
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// `activeDeadlineSeconds`: once the pod has been up that long, its members are stopped (preStop
/// hooks, stop signal, grace period) and not restarted; the pod fails with DeadlineExceeded.
struct DeadlineEnd {
    at: f64,
    supervisor: SupervisorConfig,
    init: Vec<super::protocol::InitRef>,
    agent: Arc<RwLock<Agent>>,
    pre_stop: Option<Arc<PreStop>>,
    stop_supervising: Arc<tokio::sync::watch::Sender<bool>>,
}

impl DeadlineEnd {
    async fn run(self) {
        let left = (self.at - secs(SystemTime::now())).max(0.0);
        tokio::time::sleep(Duration::from_secs_f64(left)).await;
        let containerd = super::SharedClient::new(&self.supervisor);
        let Some(client) = containerd.get().await else { return };
        let sandbox = &self.supervisor.sandbox_id;
        // Marked first: the exits that follow are the deadline's, not crashes.
        let _ = client
            .set_labels(sandbox, &[(crate::record::LABEL_DEADLINE_EXCEEDED, "true".into())])
            .await;
        let _ = self.stop_supervising.send(true);
        let message = "Pod was active on the node longer than the specified deadline";
        let _ =
            crate::record::events::record(&client, sandbox, PodEvent::warning("DeadlineExceeded", "", message)).await;
        let grace = Duration::from_secs(self.supervisor.grace_seconds.unwrap_or(30));
        let deadline = std::time::Instant::now() + grace;
        if let Some(pre_stop) = &self.pre_stop {
            super::hooks::pre_stop_all(&client, &pre_stop.members, &pre_stop.host, sandbox, grace).await;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let oci = self.supervisor.members.iter().map(|m| {
            let signal = crate::containerd::signal_number(m.stop_signal.as_deref().unwrap_or("SIGTERM"));
            client.end_task(&m.id, signal, left)
        });
        // Init containers still running (retried by the agent) end too.
        for init in self.init.iter().filter(|i| !i.sidecar) {
            let _ = client
                .end_task(&init.id, crate::containerd::SIGKILL, Duration::ZERO)
                .await;
        }
        let agent = self.agent.read().await;
        tokio::join!(futures_util::future::join_all(oci), agent.stop_all(left));
    }
}

/// What the agent needs to run the members' preStop hooks when it is told to stop.
struct PreStop {
    members: Vec<Hooked>,
    host: String,
    sandbox_id: String,
    containerd: super::SharedClient,
}

/// Answers one request; returns true when the agent should exit.
async fn handle(
    stream: tokio::net::UnixStream,
    agent: &Arc<RwLock<Agent>>,
    stop_supervising: &tokio::sync::watch::Sender<bool>,
    pre_stop: Option<&PreStop>,
) -> bool {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read);
    // One short JSON line: a longer one is not a request.
    let mut reader = (&mut reader).take(64 * 1024);
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await;
    let request: Option<Request> = match read {
        Ok(Ok(_)) => serde_json::from_str(line.trim()).ok(),
        _ => None,
    };
    let (reply, exit) = match request {
        Some(Request::Status) => (agent.read().await.status().await, false),
        Some(Request::Stop { grace_secs }) => {
            let _ = stop_supervising.send(true);
            // preStop hooks first (before any stop signal), within the grace period.
            let deadline = std::time::Instant::now() + Duration::from_secs(grace_secs);
            if let Some(pre_stop) = pre_stop {
                if let Some(client) = pre_stop.containerd.get().await {
                    let grace = Duration::from_secs(grace_secs);
                    super::hooks::pre_stop_all(&client, &pre_stop.members, &pre_stop.host, &pre_stop.sandbox_id, grace)
                        .await;
                }
            }
            let agent = agent.read().await;
            agent
                .stop_all(deadline.saturating_duration_since(std::time::Instant::now()))
                .await;
            (agent.status().await, true)
        }
        None => return false,
    };
    let mut json = serde_json::to_vec(&reply).expect("replies serialize");
    json.push(b'\n');
    let _ = write.write_all(&json).await;
    let _ = write.shutdown().await;
    exit
}
