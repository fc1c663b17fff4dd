//! The agent process: `podctl agent run --pod-dir DIR`. Enters the pod's netns while it is still
//! single-threaded, starts there the plugins its members need (none for a pod with only OCI
//! members), runs those members through them and serves status/stop requests.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use podctl_plugin::Client as PluginClient;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::RwLock;

use super::hooks::Hooked;
use super::probes::{Probed, Target};
use super::state::{load_state, run_log, secs, start_slot, Agent, MemberSlot, PersistentState, Plugin, Slot};
use crate::agent::protocol::{AgentConfig, PluginMemberDef, ProbeKind, Request, SupervisorConfig};
use crate::agent::*;
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

/// Counts this start in the pod's persistent state: a second start of the agent for the same pod
/// is a restart of every member it hosts.
fn count_start(pod_dir: &Path, config: &AgentConfig) -> Result<PersistentState, AgentError> {
    let state_path = pod_dir.join(STATE_FILE);
    let mut state = load_state(&state_path);
    if state.starts > 0 {
        for member in &config.members {
            *state.restarts.entry(member.name.clone()).or_default() += 1;
        }
    }
    state.starts += 1;
    let json = serde_json::to_vec(&state).expect("state serializes");
    crate::agent::write_file(&state_path, json).map_err(|cause| AgentError::Io {
        pod: config.pod.clone(),
        path: state_path,
        cause,
    })?;
    Ok(state)
}

/// The plugin process of a member, or why there is none.
fn plugin_of(plugins: &BTreeMap<String, Plugin>, def: &PluginMemberDef) -> Plugin {
    plugins
        .get(&def.plugin)
        .cloned()
        .unwrap_or_else(|| Err(format!("no plugin {} was configured for this pod", def.plugin)))
}

async fn serve(pod_dir: PathBuf, config: AgentConfig) -> Result<(), AgentError> {
    let pod = config.pod.clone();
    let io = |path: PathBuf| {
        let pod = pod.clone();
        move |cause| AgentError::Io { pod, path, cause }
    };
    let state = count_start(&pod_dir, &config)?;
    // Each plugin inherits the pod's netns from this process; a pod with only OCI members has none.
    let plugins = launch_plugins(&pod_dir, &config).await;
    // With init containers still to run, the members start once they have completed.
    let init_first = !config.init.is_empty();
    let mut members = Vec::new();
    for def in &config.members {
        let slot = if init_first {
            Slot::Pending
        } else {
            start_slot(
                &plugin_of(&plugins, def),
                def,
                &run_log(def, state.restarts_of(&def.name)),
            )
            .await
        };
        members.push(MemberSlot {
            name: def.name.clone(),
            slot,
            waiting: None,
        });
    }
    // The supervisor stops before the members do, so a stop is never taken for a crash.
    let (stop_supervising, stopping) = tokio::sync::watch::channel(false);
    let gated = config
        .members
        .iter()
        .filter(|m| m.probes.iter().any(|p| p.kind != ProbeKind::Liveness))
        .map(|m| m.name.clone())
        .collect();
    let agent = Arc::new(RwLock::new(Agent {
        probes: Default::default(),
        gated,
        started_at: secs(SystemTime::now()),
        state,
        state_path: pod_dir.join(STATE_FILE),
        members,
    }));
    let pre_stop = match config.supervisor.clone() {
        Some(supervisor) => {
            let supervision = Supervision {
                config: &config,
                supervisor,
                agent: agent.clone(),
                plugins: &plugins,
                stopping,
            };
            Some(supervision.spawn().await)
        }
        None => None,
    };

    let socket = pod_dir.join(SOCKET_FILE);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(io(socket.clone()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).map_err(io(socket.clone()))?;
    let pid_path = pod_dir.join(PID_FILE);
    crate::agent::write_file(&pid_path, std::process::id().to_string()).map_err(io(pid_path))?;
    let terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(io(pod_dir.clone()))?;
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
    answer(listener, terminate, agent, stop_supervising, pre_stop).await;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Serves requests until one says to exit, or SIGTERM comes. Each connection is served on its own
/// task: a `get` is answered while a delete's graceful stop runs, and a client that connects and
/// says nothing holds up no one.
async fn answer(
    listener: UnixListener,
    mut terminate: tokio::signal::unix::Signal,
    agent: Arc<RwLock<Agent>>,
    stop_supervising: Arc<tokio::sync::watch::Sender<bool>>,
    pre_stop: Option<Arc<PreStop>>,
) {
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
}

/// What watches a supervised pod's members: hooks, probes, the keepers of plugin members (after
/// the init containers, when there are some) and the OCI members' supervisor.
struct Supervision<'a> {
    config: &'a AgentConfig,
    supervisor: SupervisorConfig,
    agent: Arc<RwLock<Agent>>,
    plugins: &'a BTreeMap<String, Plugin>,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Supervision<'_> {
    /// Starts it all; returns what a stop needs to run the preStop hooks.
    async fn spawn(self) -> Arc<PreStop> {
        let (config, supervisor, stopping) = (self.config, &self.supervisor, &self.stopping);
        let containerd = super::SharedClient::new(supervisor);
        let hooked = self.hooked();
        let host = supervisor.pod_ip.clone().unwrap_or_else(|| "127.0.0.1".into());
        super::hooks::spawn_post_start(
            &hooked,
            host.clone(),
            supervisor.sandbox_id.clone(),
            containerd.clone(),
            stopping.clone(),
        );
        let board = self.agent.read().await.probes.clone();
        super::probes::spawn_all(supervisor, self.probed(), board, containerd.clone(), stopping.clone());
        let keepers: Vec<_> = config
            .members
            .iter()
            .enumerate()
            .map(|(index, def)| super::keeper::Keeper {
                agent: self.agent.clone(),
                plugin: plugin_of(self.plugins, def),
                def: def.clone(),
                index,
                config: supervisor.clone(),
                stopping: stopping.clone(),
                containerd: containerd.clone(),
            })
            .collect();
        if !config.init.is_empty() {
            let init = super::init::InitRunner {
                init: config.init.clone(),
                config: supervisor.clone(),
                agent: self.agent.clone(),
                plugins: config.members.iter().map(|def| plugin_of(self.plugins, def)).collect(),
                defs: config.members.clone(),
                stopping: stopping.clone(),
                containerd: containerd.clone(),
            };
            tokio::spawn(init.run(keepers));
        } else {
            for keeper in keepers {
                tokio::spawn(keeper.run());
            }
        }
        let apps_in_plugins = !config.members.is_empty();
        let sandbox_id = supervisor.sandbox_id.clone();
        tokio::spawn(super::supervisor::Supervisor::new(self.supervisor, apps_in_plugins, self.stopping).run());
        Arc::new(PreStop {
            members: hooked,
            host,
            sandbox_id,
            containerd,
        })
    }

    /// OCI and plugin members as their probes watch them.
    fn probed(&self) -> Vec<Probed> {
        let oci = self.supervisor.members.iter().map(|m| Probed {
            name: m.name.clone(),
            probes: m.probes.clone(),
            target: Target::Oci { id: m.id.clone() },
        });
        let wasm = self.config.members.iter().enumerate().map(|(index, def)| Probed {
            name: def.name.clone(),
            probes: def.probes.clone(),
            target: Target::Wasm {
                agent: self.agent.clone(),
                index,
            },
        });
        oci.chain(wasm).collect()
    }

    /// OCI and plugin members as their lifecycle hooks see them.
    fn hooked(&self) -> Vec<Hooked> {
        let oci = self.supervisor.members.iter().map(|m| Hooked {
            name: m.name.clone(),
            record_id: Some(m.id.clone()),
            post_start: m.hooks.post_start.clone(),
            pre_stop: m.hooks.pre_stop.clone(),
            sidecar: m.sidecar,
            target: Target::Oci { id: m.id.clone() },
        });
        let wasm = self.config.members.iter().enumerate().map(|(index, def)| Hooked {
            name: def.name.clone(),
            record_id: None,
            post_start: def.hooks.post_start.clone(),
            pre_stop: def.hooks.pre_stop.clone(),
            sidecar: false,
            target: Target::Wasm {
                agent: self.agent.clone(),
                index,
            },
        });
        oci.chain(wasm).collect()
    }
}

/// `activeDeadlineSeconds`: once the pod has been up that long, its members are stopped (preStop
/// hooks, stop signal, grace period) and not restarted; the pod fails with DeadlineExceeded.
struct DeadlineEnd {
    at: f64,
    supervisor: SupervisorConfig,
    init: Vec<crate::agent::protocol::InitRef>,
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
