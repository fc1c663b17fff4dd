//! The containerd records of an OCI member or init container: its snapshot, its OCI spec (process,
//! mounts of /etc files, volumes and its termination message, the sandbox's namespaces) and its
//! container record with the labels every command reads.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use oci_spec::runtime::MountBuilder;

use super::image_accounts::image_accounts;
use super::NAME;
use crate::containerd::{NewContainer, RootfsMount, OCI_SPEC_TYPE_URL};
use crate::image::ResolvedImage;
use crate::logs::relay::Interactive;
use crate::manifest::Container;
use crate::member::pod_context::PodContext;
use crate::member::runtime_handlers::NamedRuntime;
use crate::member::undo::{Step, Undo};
use crate::member::{io_error, MemberError};
use crate::record::{
    LABEL_LOG_PATH, LABEL_MEMBER_INDEX, LABEL_RUNTIME, LABEL_RUNTIME_HANDLER, LABEL_SIDECAR, LABEL_STDIO,
    LABEL_STOP_SIGNAL,
};
use crate::spec;

pub(super) fn init_record<'a>(ctx: &'a PodContext<'_>, index: usize) -> RecordKind<'a> {
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
pub(super) struct RecordKind<'a> {
    pub(super) kind: &'a str,
    pub(super) index: usize,
    pub(super) handler: Option<&'a NamedRuntime>,
    pub(super) sidecar: bool,
}

/// The snapshot and container record of an OCI member or init container, joining the sandbox's
/// namespaces; returns the rootfs mounts and the first run's log file. Steps go into `undo`.
pub(super) async fn create_records(
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
) -> Result<(Vec<RootfsMount>, PathBuf), MemberError> {
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

/// What the container asks of its input and terminal, if anything.
pub(crate) fn interactive_of(container: &Container) -> Option<Interactive> {
    Interactive::new(container.stdin, container.stdin_once, container.tty)
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
