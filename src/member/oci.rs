//! The built-in member runtime: an OCI image run by containerd's runc shim inside the sandbox's
//! namespaces. It claims every image no other runtime claims.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use oci_spec::runtime::MountBuilder;
use tokio::task::JoinSet;

use super::undo::Step;
use super::*;
use crate::containerd::signal_number;
use crate::containerd::{NewContainer, TaskState, OCI_SPEC_TYPE_URL};
use crate::image::ResolvedImage;
use crate::logs::relay::{member_dir, Interactive};
use crate::spec;

pub struct OciRuntime;

impl OciRuntime {
    async fn start_one(
        &self,
        ctx: &PodContext<'_>,
        member: PreparedMember<'_>,
        undo: &mut Undo,
        events: &mut Vec<PodEvent>,
    ) -> Result<(), MemberError> {
        let container = member.container;
        let image = member
            .payload
            .downcast::<ResolvedImage>()
            .map_err(|_| MemberError::Damaged {
                pod: ctx.pod.metadata.name.clone(),
                message: "the OCI runtime was handed another runtime's member".into(),
            })?;
        let id = member_id(ctx.sandbox_id, &container.name, member.index);
        let kind = RecordKind {
            kind: "container",
            index: member.index,
            handler: member.handler.as_ref(),
            sidecar: false,
        };
        let records = create_records(ctx, &id, container, &image, kind, undo).await?;
        create_task(ctx, &id, container, records, undo).await?;
        push_event(events, "Created", container);
        if ctx.start_deferred() {
            // The agent starts it once the init containers it took over have completed.
            return Ok(());
        }
        start_in_ready_sandbox(ctx, &id, container, events).await
    }
}

fn push_event(events: &mut Vec<PodEvent>, reason: &str, container: &Container) {
    let message = format!("{reason} container {}", container.name);
    events.push(PodEvent::normal(reason, &container.name, message));
}

/// Starts a created member's task once the sandbox is ready (kubelet's order), with its event.
async fn start_in_ready_sandbox(
    ctx: &PodContext<'_>,
    id: &str,
    container: &Container,
    events: &mut Vec<PodEvent>,
) -> Result<(), MemberError> {
    ctx.wait_sandbox_ready().await?;
    ctx.client.start_task(id).await?;
    push_event(events, "Started", container);
    Ok(())
}

fn init_record<'a>(ctx: &'a PodContext<'_>, index: usize) -> RecordKind<'a> {
    RecordKind {
        kind: "init",
        index,
        handler: ctx.runtime_class.containerd.as_ref(),
        sidecar: false,
    }
}

/// Which record [`create_records`] makes: a member (`container`) or an init container (`init`),
/// the `index`-th of its kind, run by `handler` (None: runc); a sidecar is a member whose index is
/// its place among the init containers.
struct RecordKind<'a> {
    kind: &'a str,
    index: usize,
    handler: Option<&'a NamedRuntime>,
    sidecar: bool,
}

/// The snapshot and container record of an OCI member or init container, joining the sandbox's
/// namespaces; returns the rootfs mounts and the first run's log file. Steps go into `undo`.
async fn create_records(
    ctx: &PodContext<'_>,
    id: &str,
    container: &Container,
    image: &ResolvedImage,
    RecordKind {
        kind,
        index,
        handler,
        sidecar,
    }: RecordKind<'_>,
    undo: &mut Undo,
) -> Result<(Vec<crate::containerd::RootfsMount>, PathBuf), MemberError> {
    let client = ctx.client;
    let container = &ctx.with_pod_ips(container).await?;
    let rootfs = client.prepare_snapshot(&ctx.lease, id, &image.top_chain_id).await?;
    undo.push(Step::RemoveSnapshot(id.to_string()));
    let plan = spec::plan_process(
        container,
        &image.config,
        &ctx.hostname,
        ctx.pod.spec.security_context.as_ref(),
        &image_accounts(&rootfs),
    )?;
    let mut mounts = ctx.etc_mounts.clone();
    // Its termination message: a file of the pod's that it writes where it says, as in kubelet.
    let message_file = crate::logs::termination_file(&ctx.state_dir, &container.name);
    if let Some(dir) = message_file.parent() {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    std::fs::write(&message_file, b"").map_err(io_error(&message_file))?;
    // Any user the process runs as may write it.
    std::fs::set_permissions(&message_file, std::fs::Permissions::from_mode(0o666)).map_err(io_error(&message_file))?;
    let message_path = container
        .termination_message_path
        .as_deref()
        .unwrap_or("/dev/termination-log");
    for binding in ctx.volumes(container)? {
        mounts.push(match &binding.source {
            Some(source) => spec::bind_mount(source, &binding.target, binding.read_only)?,
            None => MountBuilder::default()
                .destination(&binding.target)
                .typ("tmpfs")
                .source("tmpfs")
                .options(vec!["nosuid".into(), "nodev".into(), "mode=1777".into()])
                .build()
                .map_err(spec::SpecError::from)?,
        });
    }
    // After the volumes, as kubelet mounts it: a volume over its directory does not hide it.
    mounts.push(spec::bind_mount(&message_file, message_path, false)?);
    let spec = spec::member_spec(spec::MemberSpecInput {
        id,
        sandbox_id: ctx.sandbox_id,
        container,
        plan,
        namespaces: &ctx.namespaces,
        mounts,
        pod_seccomp: ctx
            .pod
            .spec
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref()),
    })?;
    let log_path = ctx.log_path(container)?;
    let stop_signal = image_stop_signal(image);
    let mut labels = ctx.base_labels(&container.name, kind);
    labels.insert(LABEL_MEMBER_INDEX.into(), index.to_string());
    labels.insert(LABEL_RUNTIME.into(), NAME.into());
    labels.insert(LABEL_STOP_SIGNAL.into(), stop_signal);
    labels.insert(LABEL_LOG_PATH.into(), log_path.to_string_lossy().into_owned());
    if let Some(handler) = handler {
        labels.insert(LABEL_RUNTIME_HANDLER.into(), handler.handler.clone());
    }
    if sidecar {
        labels.insert(LABEL_SIDECAR.into(), "true".into());
    }
    if let Some(stdio) = interactive_of(container) {
        labels.insert(LABEL_STDIO.into(), stdio.label());
    }

    client
        .create_container(
            &ctx.lease,
            NewContainer {
                id: id.to_string(),
                image: image.name.clone(),
                labels,
                spec_type_url: OCI_SPEC_TYPE_URL,
                spec_json: spec::to_json(&spec)?,
                snapshot_key: id.to_string(),
                extensions: HashMap::new(),
                runtime: handler.map(|h| h.runtime.clone()).unwrap_or_default(),
            },
        )
        .await?;
    undo.push(Step::DeleteContainer(id.to_string()));
    Ok((rootfs, log_path))
}

/// The image's /etc/passwd and /etc/group, read from the layer directories of its snapshot (an
/// overlay's upper, then its lowers, topmost first; a bind snapshot's one), for USER names.
pub(crate) fn image_accounts(rootfs: &[crate::containerd::RootfsMount]) -> spec::ImageAccounts {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for mount in rootfs {
        match mount.r#type.as_str() {
            "bind" | "rbind" => dirs.push(PathBuf::from(&mount.source)),
            "overlay" => {
                let option = |key: &str| mount.options.iter().find_map(|o| o.strip_prefix(key));
                dirs.extend(option("upperdir=").map(PathBuf::from));
                dirs.extend(
                    option("lowerdir=")
                        .into_iter()
                        .flat_map(|l| l.split(':'))
                        .map(PathBuf::from),
                );
            }
            _ => {}
        }
    }
    // The topmost layer that has the file (or deletes it: an overlay whiteout) decides.
    let read = |file: &str| {
        dirs.iter()
            .find_map(|dir| layer_file(dir, file))
            .flatten()
            .unwrap_or_default()
    };
    spec::ImageAccounts {
        passwd: read("passwd"),
        group: read("group"),
    }
}

/// The image's `etc/NAME` in one layer directory, opened without following any symlink (an image's
/// `etc/passwd -> /etc/shadow` must not read the host's) and at most 1 MiB of it: `None` when the
/// layer has none, `Some(None)` when it deletes it or has something other than a regular file.
fn layer_file(layer: &std::path::Path, name: &str) -> Option<Option<String>> {
    use nix::fcntl::{openat, OFlag, AT_FDCWD};
    use nix::sys::stat::{fstat, Mode, SFlag};
    use std::io::Read;
    use std::os::fd::{AsFd, OwnedFd};
    let open = |dir: Option<&OwnedFd>, path: &str, flags: OFlag| -> Option<OwnedFd> {
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match dir {
            Some(dir) => openat(dir.as_fd(), path, flags, Mode::empty()).ok(),
            None => openat(AT_FDCWD, path, flags, Mode::empty()).ok(),
        }
    };
    let root = open(None, &layer.to_string_lossy(), OFlag::O_DIRECTORY | OFlag::O_RDONLY)?;
    let etc = open(Some(&root), "etc", OFlag::O_DIRECTORY | OFlag::O_RDONLY)?;
    let file = match open(Some(&etc), name, OFlag::O_RDONLY | OFlag::O_NONBLOCK) {
        Some(file) => file,
        // A symlink (ELOOP under O_NOFOLLOW) or anything unreadable stands for no file.
        None => {
            return std::fs::symlink_metadata(layer.join("etc").join(name))
                .ok()
                .map(|_| None)
        }
    };
    let kind = fstat(file.as_fd())
        .ok()
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT);
    if kind != Some(SFlag::S_IFREG) {
        return Some(None);
    }
    let mut text = String::new();
    std::fs::File::from(file).take(1 << 20).read_to_string(&mut text).ok()?;
    Some(Some(text))
}

/// The task (created, not started) on the records [`create_records`] made; recorded in `undo`.
async fn create_task(
    ctx: &PodContext<'_>,
    id: &str,
    container: &Container,
    (rootfs, log_path): (Vec<crate::containerd::RootfsMount>, PathBuf),
    undo: &mut Undo,
) -> Result<(), MemberError> {
    let pod_dir = ctx.settings.pod_state_dir(ctx.client, ctx.sandbox_id);
    create_member_task(
        ctx.client,
        id,
        rootfs,
        &log_path,
        ctx.settings.log_rotation,
        (interactive_of(container), &pod_dir, &container.name),
    )
    .await?;
    undo.push(Step::DeleteTask(id.to_string()));
    Ok(())
}

/// What the container asks of its input and terminal, if anything.
pub(crate) fn interactive_of(container: &Container) -> Option<Interactive> {
    Interactive::new(container.stdin, container.stdin_once, container.tty)
}

/// A member's task, its output logged to `log`; one with stdin or tty (`stdio`, with the pod's
/// directory and the member's name) gets FIFOs held by a relay for `podctl attach`.
pub(crate) async fn create_member_task(
    client: &Client,
    id: &str,
    rootfs: Vec<crate::containerd::RootfsMount>,
    log: &std::path::Path,
    rotation: crate::logs::Rotation,
    (stdio, pod_dir, name): (Option<Interactive>, &std::path::Path, &str),
) -> Result<u32, MemberError> {
    let output = crate::logs::relay::task_output(log, rotation, stdio, pod_dir, name).map_err(|e| MemberError::Io {
        path: member_dir(pod_dir, name),
        cause: e,
    })?;
    let pid = client.create_task(id, rootfs, &output.io).await?;
    output.keep();
    Ok(pid)
}

/// The containerd ID of the `index`-th init container when it is a sidecar: a member's ID, numbered
/// after the app containers where the name is too long to be part of it.
pub fn sidecar_id(ctx: &PodContext<'_>, container: &Container, index: usize) -> String {
    member_id(ctx.sandbox_id, &container.name, ctx.pod.spec.containers.len() + index)
}

/// Starts a sidecar (an init container with `restartPolicy: Always`) in its init order: a member
/// record and task, started in the ready sandbox without waiting for it to end. One with a
/// startup probe, or one after an init container the agent took over, is handed to the agent,
/// which starts it and holds the init containers after it until the probe passes: `create` never
/// waits for a probe.
pub async fn start_sidecar(
    ctx: &PodContext<'_>,
    index: usize,
    container: &Container,
    image: &ResolvedImage,
    undo: &mut Undo,
    events: &mut Vec<PodEvent>,
) -> Result<(), MemberError> {
    let id = sidecar_id(ctx, container, index);
    let kind = RecordKind {
        kind: "container",
        index,
        handler: ctx.runtime_class.containerd.as_ref(),
        sidecar: true,
    };
    let records = create_records(ctx, &id, container, image, kind, undo).await?;
    create_task(ctx, &id, container, records, undo).await?;
    push_event(events, "Created", container);
    if ctx.start_deferred() || container.startup_probe.is_some() {
        ctx.hand_over_init(InitRef {
            name: container.name.clone(),
            id,
            log_dir: ctx.log_dir.join(&container.name),
            index,
            total: ctx.pod.spec.init_containers.len(),
            sidecar: true,
            stdio: interactive_of(container),
        });
        return Ok(());
    }
    start_in_ready_sandbox(ctx, &id, container, events).await
}

/// Runs one init container in the ready sandbox. Under `restartPolicy: Never` a failure fails the
/// create (which rolls back, showing the end of its output). Under `Always` and `OnFailure` the
/// agent retries a failure as kubelet does, with the crash-loop backoff and for as long as it
/// takes: this init container and the ones after it are handed over ([`PodContext::hand_over_init`]),
/// with their records kept, and the members are created but started by the agent afterwards.
pub async fn run_init(
    ctx: &PodContext<'_>,
    index: usize,
    container: &Container,
    image: &ResolvedImage,
    undo: &mut Undo,
    events: &mut Vec<PodEvent>,
) -> Result<(), MemberError> {
    let client = ctx.client;
    // Numbered after the app containers and sidecars where the name is too long to be part of it.
    let id = member_id(
        ctx.sandbox_id,
        &format!("init-{}", container.name),
        ctx.pod.spec.containers.len() + ctx.pod.spec.init_containers.len() + index,
    );
    let total = ctx.pod.spec.init_containers.len();
    let handover = InitRef {
        name: container.name.clone(),
        id: id.clone(),
        log_dir: ctx.log_dir.join(&container.name),
        index,
        total,
        sidecar: false,
        stdio: interactive_of(container),
    };
    if ctx.start_deferred() {
        // An earlier init container was handed over: this one waits for it, in the agent.
        create_records(ctx, &id, container, image, init_record(ctx, index), undo).await?;
        ctx.hand_over_init(handover);
        return Ok(());
    }
    ctx.wait_sandbox_ready().await?;
    // `podctl get` shows the progress from the sandbox record while `create` waits here.
    let show = |status: String| async move {
        let _ = client.set_labels(ctx.sandbox_id, &[(LABEL_INIT_STATUS, status)]).await;
    };
    show(format!("Init:{index}/{total}")).await;
    let records = create_records(ctx, &id, container, image, init_record(ctx, index), undo).await?;
    create_task(ctx, &id, container, records, undo).await?;
    client.start_task(&id).await?;
    // A create never waits without bound: an init container still running after --init-wait is
    // the agent's to wait for (it applies the restart policy to how it ends), with the ones after
    // it; create returns with the pod in Init:N/M.
    let exit = match tokio::time::timeout(ctx.settings.init_wait, client.wait_task(&id)).await {
        Ok(exit) => exit?,
        Err(_) => {
            events.push(PodEvent::normal(
                "Started",
                &container.name,
                format!(
                    "Init container {} still runs after {}s; the pod's agent waits for it",
                    container.name,
                    ctx.settings.init_wait.as_secs_f64()
                ),
            ));
            ctx.hand_over_init(handover);
            return Ok(());
        }
    };
    // Task delete waits for the log driver: the log is complete afterwards.
    client.delete_task(&id).await?;
    if exit.code == 0 {
        client.delete_container(&id).await?;
        client.remove_snapshot(&id).await?;
        events.push(PodEvent::normal(
            "Completed",
            &container.name,
            format!("Init container {} completed", container.name),
        ));
        return Ok(());
    }
    if format!("{:?}", ctx.pod.spec.restart_policy) != "Never" {
        show("Init:CrashLoopBackOff".into()).await;
        events.push(PodEvent::warning(
            "BackOff",
            &container.name,
            format!(
                "Init container {} exited with code {}; the pod's agent retries it",
                container.name, exit.code
            ),
        ));
        ctx.hand_over_init(handover);
        return Ok(());
    }
    let raw = std::fs::read(ctx.log_path(container)?).unwrap_or_default();
    let log = String::from_utf8_lossy(&crate::logs::render(&raw, false)).into_owned();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(MemberError::InitFailed {
        pod: ctx.pod.metadata.name.clone(),
        container: container.name.clone(),
        code: exit.code,
        output: tail.join("\n"),
    })
}

/// containerd's task state as Kubernetes container state; `oom_killed` comes from containerd's
/// `/tasks/oom` event, recorded by the supervisor.
fn observe_task(task: Option<&TaskInfo>, oom_killed: bool, created: Option<f64>) -> MemberState {
    match task {
        None => MemberState::Waiting {
            reason: "ContainerCreating".into(),
        },
        Some(t) => match t.state {
            TaskState::Running | TaskState::Paused | TaskState::Pausing => MemberState::Running { since: created },
            TaskState::Created | TaskState::Unknown => MemberState::Waiting {
                reason: "ContainerCreating".into(),
            },
            TaskState::Stopped => MemberState::Terminated {
                exit_code: t.exit_status,
                reason: match (t.exit_status, oom_killed) {
                    (_, true) => "OOMKilled".into(),
                    (0, _) => "Completed".into(),
                    _ => "Error".into(),
                },
                finished: t.exited_at,
            },
        },
    }
}

/// A new task of an existing member record on its snapshot, its output logged to `log`
/// (`podctl start`, `podctl system restore`); its stdin and tty as its record says.
pub(crate) async fn create_task_logging_to(
    client: &Client,
    settings: &Settings,
    member: &MemberView,
    log: &std::path::Path,
) -> Result<u32, MemberError> {
    let rootfs = client.snapshot_mounts(&member.id).await?;
    let labels = &member.record.labels;
    let stdio = labels.get(LABEL_STDIO).and_then(|l| Interactive::from_label(l));
    let sandbox = labels.get(LABEL_SANDBOX_ID).cloned().unwrap_or_default();
    let pod_dir = settings.pod_state_dir(client, &sandbox);
    create_member_task(
        client,
        &member.id,
        rootfs,
        log,
        settings.log_rotation,
        (stdio, &pod_dir, &member.name),
    )
    .await
}

/// Starts a member's next run outside its agent (a restore after a reboot, a new image from
/// `apply`): a task logging to run file `restarts` next to its earlier runs (`fallback_log_dir`
/// when it records none), its restart count and log path recorded, plus `labels`.
pub(crate) async fn start_next_run(
    client: &Client,
    settings: &Settings,
    member: &MemberView,
    fallback_log_dir: &std::path::Path,
    restarts: u32,
    labels: &[(&str, String)],
) -> Result<(), MemberError> {
    let log_dir = member
        .log_path
        .as_ref()
        .and_then(|p| p.parent())
        .unwrap_or(fallback_log_dir);
    let log = crate::logs::run_file(log_dir, restarts);
    create_task_logging_to(client, settings, member, &log).await?;
    client.start_task(&member.id).await?;
    let mut recorded = vec![
        (LABEL_RESTART_COUNT, restarts.to_string()),
        (LABEL_LAST_RESTART, crate::record::now_secs().to_string()),
        (LABEL_LOG_PATH, log.to_string_lossy().into_owned()),
    ];
    recorded.extend(labels.iter().cloned());
    client.set_labels(&member.id, &recorded).await?;
    Ok(())
}

/// The image's STOPSIGNAL, SIGTERM when it names none.
pub(crate) fn image_stop_signal(image: &ResolvedImage) -> String {
    image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.stop_signal().clone())
        .unwrap_or_else(|| "SIGTERM".into())
}

fn has_memory_limit(spec_json: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(spec_json)
        .ok()
        .and_then(|s| s["linux"]["resources"]["memory"]["limit"].as_i64())
        .is_some()
}

/// The OCI runtime's name in labels and annotations.
pub const NAME: &str = "oci";

impl MemberRuntime for OciRuntime {
    fn name(&self) -> &str {
        NAME
    }

    fn runs_tasks(&self) -> bool {
        true
    }

    fn info<'a>(&'a self, _settings: &'a Settings) -> BoxFuture<'a, RuntimeInfo> {
        Box::pin(async {
            RuntimeInfo {
                claims: "every image no other runtime claims".into(),
                version: format!(
                    "{} via {}",
                    binary_version("runc"),
                    crate::containerd::DEFAULT_RUNTIME_TYPE
                ),
            }
        })
    }

    fn claim<'a>(
        &'a self,
        _settings: &'a Settings,
        _container: &'a Container,
        probe: &'a ImageProbe,
    ) -> BoxFuture<'a, Claim> {
        let claim = match (&probe.local_file, &probe.local_dir, &probe.url_scheme) {
            (Some(path), _, _) => Claim::Decline(format!("{} is a local file, not an OCI image", path.display())),
            (_, Some(path), _) => Claim::Decline(format!("{} is a local directory, not an OCI image", path.display())),
            (_, _, Some(scheme)) => Claim::Decline(format!(
                "{} is a {scheme}: URL, not an OCI image, and no installed plugin claims {scheme}:",
                probe.reference
            )),
            _ => Claim::Accept,
        };
        Box::pin(async move { claim })
    }

    fn prepare<'a>(
        &'a self,
        client: &'a Client,
        _settings: &'a Settings,
        container: &'a Container,
        _probe: &'a ImageProbe,
        _events: &'a mut Vec<PodEvent>,
    ) -> BoxFuture<'a, Result<Payload, MemberError>> {
        Box::pin(async move {
            // `create` pulled it already, per imagePullPolicy.
            let name = crate::image::reference::normalize(&container.image);
            let image = crate::image::resolve_image(client, &name).await?;
            Ok(Box::new(image) as Payload)
        })
    }

    fn start<'a>(
        &'a self,
        ctx: &'a PodContext<'a>,
        members: Vec<PreparedMember<'a>>,
        undo: &'a mut Undo,
        events: &'a mut Vec<PodEvent>,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async move {
            for member in members {
                self.start_one(ctx, member, undo, events).await?;
            }
            Ok(())
        })
    }

    fn observe<'a>(
        &'a self,
        ctx: &'a ObserveContext<'a>,
        pod: &'a PodView,
    ) -> BoxFuture<'a, HashMap<String, Observation>> {
        Box::pin(async move {
            // Probes run in the agent: ask it once, only if some member has one.
            let spec = |name: &str| pod.pod.as_ref().and_then(|p| p.container(name));
            let gated =
                |name: &str| spec(name).is_some_and(|c| c.readiness_probe.is_some() || c.startup_probe.is_some());
            let probed = |name: &str| spec(name).is_some_and(|c| c.liveness_probe.is_some()) || gated(name);
            let probes = if pod.members.iter().any(|m| m.runtime == self.name() && probed(&m.name)) {
                let dir = ctx.settings.pod_state_dir(ctx.client, &pod.sandbox_id);
                crate::agent::client::status(&pod.name, &dir)
                    .await
                    .map(|r| r.probes)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            pod.members
                .iter()
                .filter(|m| m.runtime == self.name())
                .map(|m| {
                    let task = ctx.tasks.get(&m.id);
                    let label = |key: &str| m.record.labels.get(key).filter(|v| !v.is_empty());
                    // containerd's /tasks/oom event can trail the exit under load; a SIGKILL under a
                    // memory limit is then the kernel's OOM killer too.
                    let oom = label(LABEL_OOM_KILLED).is_some_and(|v| v == "true")
                        || (task.is_some_and(|t| t.exit_status == 137) && has_memory_limit(&m.record.spec_json));
                    let mut state = observe_task(task, oom, m.record.created);
                    // After a host restart, a restartPolicy Never pod does not run again.
                    if task.is_none() && label(LABEL_HOST_RESTARTED).is_some() {
                        state = MemberState::Terminated {
                            exit_code: 255,
                            reason: "Unknown".into(),
                            finished: label(LABEL_HOST_RESTARTED).and_then(|at| at.parse().ok()),
                        };
                    }
                    if task.is_none() && pod.sandbox.labels.get(LABEL_STOPPED).is_some_and(|v| v == "true") {
                        state = MemberState::Waiting {
                            reason: "Stopped".into(),
                        };
                    }
                    // Created, and started by the agent once the init containers have completed.
                    let initializing = pod.sandbox.labels.get(LABEL_INIT_STATUS).is_some_and(|s| !s.is_empty());
                    if initializing && task.is_some_and(|t| t.state == TaskState::Created) {
                        state = MemberState::Waiting {
                            reason: "PodInitializing".into(),
                        };
                    }
                    // The supervisor waits out a backoff before restarting a member that exited.
                    if let Some(waiting) = label(LABEL_WAITING) {
                        if !matches!(state, MemberState::Running { .. }) {
                            state = MemberState::Waiting {
                                reason: waiting.clone(),
                            };
                        }
                    }
                    let running = matches!(state, MemberState::Running { .. });
                    let probed_ready =
                        !gated(&m.name) || probes.iter().any(|p| p.name == m.name && p.started && p.ready);
                    let message = match (&state, spec(&m.name)) {
                        (MemberState::Terminated { exit_code, .. }, container) => {
                            let dir = ctx.settings.pod_state_dir(ctx.client, &pod.sandbox_id);
                            let fallback = container.is_some_and(|c| {
                                c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
                            }) && *exit_code != 0;
                            crate::logs::termination_message(
                                &crate::logs::termination_file(&dir, &m.name),
                                m.log_path.as_deref().filter(|_| fallback),
                            )
                        }
                        _ => None,
                    };
                    let observation = Observation {
                        message,
                        ready: running && probed_ready,
                        state,
                        restarts: label(LABEL_RESTART_COUNT).and_then(|n| n.parse().ok()).unwrap_or(0),
                        pid: task.map(|t| t.pid).filter(|p| *p > 0),
                        own_process: true,
                        probe: last_probe(&probes, &m.name),
                    };
                    (m.id.clone(), observation)
                })
                .collect()
        })
    }

    fn halt<'a>(
        &'a self,
        client: &'a Client,
        members: Vec<&'a MemberView>,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async move {
            let stopping = members
                .into_iter()
                .map(|member| client.stop_task(&member.id, signal_number(&member.stop_signal), grace));
            for result in futures_util::future::join_all(stopping).await {
                result?;
            }
            Ok(())
        })
    }

    fn resume<'a>(
        &'a self,
        client: &'a Client,
        settings: &'a Settings,
        pod: &'a PodView,
        members: Vec<&'a MemberView>,
        now: bool,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async move {
            for member in members {
                // A start killed midway can leave a task created but not started, or one whose
                // process already ended: those are made again; a running one is kept.
                match client.get_task(&member.id).await? {
                    Some(task) if matches!(task.state, TaskState::Running | TaskState::Paused | TaskState::Pausing) => {
                        continue
                    }
                    Some(_) => {
                        let _ = client.kill_task(&member.id, crate::containerd::SIGKILL, true).await;
                        client.delete_task(&member.id).await?;
                    }
                    None => {}
                }
                let log = member.log_path.clone().ok_or_else(|| MemberError::Damaged {
                    pod: pod.name.clone(),
                    message: format!("member {} records no log path", member.name),
                })?;
                create_task_logging_to(client, settings, member, &log).await?;
                if now {
                    client.start_task(&member.id).await?;
                }
            }
            Ok(())
        })
    }

    fn wait_exited<'a>(&'a self, client: &'a Client, members: Vec<&'a MemberView>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for member in members {
                let _ = client.wait_task(&member.id).await;
            }
        })
    }

    fn stop<'a>(
        &'a self,
        client: &'a Client,
        _settings: &'a Settings,
        _pod: &'a PodView,
        members: Vec<&'a MemberView>,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async move {
            // Members stop in parallel, each with the whole grace period, as kubelet does.
            let mut stopping = JoinSet::new();
            for member in members {
                let client = client.clone();
                let id = member.id.clone();
                let signal = signal_number(&member.stop_signal);
                stopping.spawn(async move {
                    client.stop_task(&id, signal, grace).await?;
                    client.delete_container(&id).await?;
                    client.remove_snapshot(&id).await?;
                    Ok::<(), MemberError>(())
                });
            }
            let mut first_error = None;
            while let Some(joined) = stopping.join_next().await {
                if let Ok(Err(e)) = joined {
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }
}

/// The first line of `BINARY --version` (runc, crun and runsc print their version there).
pub fn binary_version(binary: &str) -> String {
    match std::process::Command::new(binary).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        Ok(out) => format!("{binary}: `--version` exited with {}", out.status),
        Err(e) => format!("{binary}: {e}"),
    }
}
