//! A plugin member's definition as the pod's agent reads it ([`PluginMemberDef`]: program, argv,
//! environment, preopened volumes, limits, probes and hooks), written at `start` on its container
//! record, with its program copied into the pod's state directory.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::program::{member_error, Program};
use super::wasmtime;
use crate::agent::protocol::{PluginMemberDef, PreopenDef};
use crate::containerd::NewContainer;
use crate::manifest::Container;
use crate::member::agent_defs::{hook_defs, probe_defs};
use crate::member::pod_context::PodContext;
use crate::member::runtime_driver::PreparedMember;
use crate::member::undo::{Step, Undo};
use crate::member::{io_error, MemberError};
use crate::record::{member_id, LABEL_LOG_PATH, LABEL_MEMBER_INDEX, LABEL_RUNTIME, LABEL_STOP_SIGNAL};

/// The container record of a plugin's member carries its definition, not an OCI spec (the name is
/// from when wasmtime was the only plugin; records keep it).
const PLUGIN_MEMBER_TYPE_URL: &str = "podctl.io/wasm-member";

/// `command` + `args` with `$(VAR)` expanded, as Kubernetes composes them; `argv0` comes first
/// when `command` is empty (a WASI program's argv[0]).
fn argv(container: &Container, env: &[(String, String)], argv0: Option<&str>) -> Vec<String> {
    let defined: std::collections::BTreeMap<&str, &str> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let expand = |s: &String| crate::spec::expand(s, &defined);
    let mut args: Vec<String> = match (container.command.is_empty(), argv0) {
        (true, Some(argv0)) => vec![argv0.to_string()],
        _ => container.command.iter().map(expand).collect(),
    };
    args.extend(container.args.iter().map(expand));
    args
}

/// Writes one prepared member of `plugin`: its program where the pod keeps it, its container
/// record carrying its definition (recorded in `undo`); returns the definition for the agent.
pub(super) async fn record_member(
    plugin: &str,
    ctx: &PodContext<'_>,
    member: PreparedMember<'_>,
    undo: &mut Undo,
) -> Result<PluginMemberDef, MemberError> {
    let container = &ctx.with_pod_ips(member.container).await?;
    let program = member.payload.downcast::<Program>().map_err(|_| MemberError::Damaged {
        pod: ctx.pod.metadata.name.clone(),
        message: format!("plugin {plugin} was handed another runtime's member"),
    })?;
    let program = match (&program.copy, &program.local) {
        (None, Some(path)) => path.clone(),
        (None, None) => return Err(member_error(container, "no program to run")),
        (Some(bytes), _) => {
            let path = program_path(plugin, &ctx.state_dir, container);
            let dir = path.parent().expect("in a directory");
            std::fs::create_dir_all(dir).map_err(io_error(dir))?;
            std::fs::write(&path, bytes).map_err(io_error(&path))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).map_err(io_error(&path))?;
            path
        }
    };
    let id = member_id(ctx.sandbox_id, &container.name, member.index);
    let def = PluginMemberDef {
        id: id.clone(),
        ..member_def(plugin, ctx, container, program)?
    };
    let mut labels = ctx.base_labels(&container.name, "container");
    labels.insert(LABEL_MEMBER_INDEX.into(), member.index.to_string());
    labels.insert(LABEL_RUNTIME.into(), plugin.to_string());
    labels.insert(LABEL_STOP_SIGNAL.into(), "SIGTERM".into());
    labels.insert(LABEL_LOG_PATH.into(), def.log_path.to_string_lossy().into_owned());
    ctx.client
        .create_container(
            &ctx.lease,
            NewContainer {
                id: id.clone(),
                image: container.image.clone(),
                labels,
                spec_type_url: PLUGIN_MEMBER_TYPE_URL,
                spec_json: serde_json::to_vec(&def).expect("member definitions serialize"),
                snapshot_key: String::new(),
                extensions: HashMap::new(),
                runtime: Default::default(),
            },
        )
        .await?;
    undo.push(Step::DeleteContainer(id));
    Ok(def)
}

fn member_def(
    plugin: &str,
    ctx: &PodContext<'_>,
    container: &Container,
    program: PathBuf,
) -> Result<PluginMemberDef, MemberError> {
    let mut preopens = Vec::new();
    for binding in ctx.volumes(container)? {
        let Some(host) = binding.source else {
            return Err(member_error(
                container,
                format!("volume at {}: emptyDir with medium Memory is not supported for members a plugin runs; drop `medium: Memory`", binding.target),
            ));
        };
        preopens.push(PreopenDef {
            host,
            guest: binding.target,
            read_only: binding.read_only,
        });
    }
    let mut env = Vec::new();
    crate::spec::apply_pod_env(&mut env, container);
    Ok(PluginMemberDef {
        name: container.name.clone(),
        plugin: plugin.to_string(),
        id: String::new(),
        program,
        args: argv(container, &env, wasmtime::is(plugin).then_some(container.name.as_str())),
        env,
        preopens,
        log_path: ctx.log_path(container)?,
        memory_limit: container.resources.memory_limit_bytes(),
        cpu_limit_millis: container.resources.cpu_limit_millis(),
        ports: container.ports.iter().map(|p| p.container_port).collect(),
        http_port: None,
        log_rotation: ctx.settings.log_rotation,
        probes: probe_defs(container),
        hooks: hook_defs(container),
    })
}

/// Where a copied program goes in the pod's state directory.
fn program_path(plugin: &str, state_dir: &Path, container: &Container) -> PathBuf {
    let file = if wasmtime::is(plugin) {
        format!("{}.wasm", container.name)
    } else {
        container.name.clone()
    };
    state_dir.join("programs").join(plugin).join(file)
}
