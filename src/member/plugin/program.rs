//! A plugin member's program at `prepare`, before anything of the pod exists: what a plugin's member
//! cannot have (exec probes and hooks, stdin, a tty), where its program is (a local file or
//! directory, a URL, an image layer), and the plugin's validation of it, as the create's event.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use podctl_plugin::{Client as PluginClient, Validated};

use super::claims::{describe_claims, is_rootfs_layer, Claims};
use super::wasmtime;
use crate::containerd::Client;
use crate::manifest::Container;
use crate::member::image_probe::ImageProbe;
use crate::member::{io_error, MemberError};
use crate::record::PodEvent;
use crate::settings::Settings;

/// The program of a prepared member: a local file, and/or bytes that start copies into the pod's
/// state directory (an image's layer; a wasm module, so that the pod keeps running what was
/// validated even if the file changes).
pub(super) struct Program {
    pub(super) local: Option<PathBuf>,
    pub(super) copy: Option<Vec<u8>>,
}

pub(super) fn member_error(container: &Container, message: impl Into<String>) -> MemberError {
    MemberError::Runtime {
        container: container.name.clone(),
        message: message.into(),
    }
}

/// Refuses what a member that `plugin` runs cannot have: it has no container to run a command in,
/// and no standard input or terminal.
pub(super) fn refuse_unsupported(plugin: &str, container: &Container) -> Result<(), MemberError> {
    for (field, probe) in [
        ("livenessProbe", &container.liveness_probe),
        ("readinessProbe", &container.readiness_probe),
        ("startupProbe", &container.startup_probe),
    ] {
        if probe.as_ref().is_some_and(|p| p.exec.is_some()) {
            return Err(member_error(
                container,
                format!("{field}.exec: a member that plugin {plugin} runs has no container to run a command in; probe it with httpGet or tcpSocket"),
            ));
        }
    }
    for (field, set) in [("stdin", container.stdin), ("tty", container.tty)] {
        if set {
            return Err(member_error(
                container,
                format!("{field}: a member that plugin {plugin} runs has no standard input or terminal to attach to (WASM members read no input through podctl yet); remove {field}: true, or run the program in an OCI container"),
            ));
        }
    }
    let lifecycle = container.lifecycle.as_ref();
    for (field, hook) in [
        ("postStart", lifecycle.and_then(|l| l.post_start.as_ref())),
        ("preStop", lifecycle.and_then(|l| l.pre_stop.as_ref())),
    ] {
        if hook.is_some_and(|h| h.exec.is_some()) {
            return Err(member_error(
                container,
                format!("lifecycle.{field}.exec: a member that plugin {plugin} runs has no container to run a command in; use an httpGet or sleep hook"),
            ));
        }
    }
    Ok(())
}

/// Where the member's program is (an image's layer is read here); `claims`, the plugin's, is
/// awaited only for an image.
pub(super) async fn locate(
    client: &Client,
    plugin: &str,
    container: &Container,
    probe: &ImageProbe,
    claims: impl std::future::Future<Output = Result<Claims, MemberError>>,
) -> Result<Program, MemberError> {
    if let Some(wasi) = &probe.wasi_program {
        return Ok(Program {
            local: None,
            copy: Some(wasi.module.clone()),
        });
    }
    let program = match (&probe.local_file, &probe.layers) {
        // A directory, or a URL exactly as written, is handed to the plugin unchanged.
        (None, _) if probe.local_dir.is_some() || probe.url_scheme.is_some() => Program {
            local: Some(match &probe.local_dir {
                Some(dir) => dir.clone(),
                None => PathBuf::from(&probe.reference),
            }),
            copy: None,
        },
        (Some(path), _) => Program {
            local: Some(path.clone()),
            copy: match wasmtime::is(plugin) {
                true => Some(std::fs::read(path).map_err(io_error(path))?),
                false => None,
            },
        },
        (None, Some(layers)) => {
            let claims = claims.await?;
            // A plugin picked by runtimeClassName or annotation gets the first layer that
            // is not a root filesystem, if none has a media type it claims.
            let layer = layers
                .iter()
                .find(|(m, _)| claims.media_types.contains(m))
                .or_else(|| layers.iter().find(|(m, _)| !is_rootfs_layer(m)))
                .ok_or_else(|| {
                    member_error(
                        container,
                        format!(
                            "its image has no layer plugin {plugin} runs ({})",
                            describe_claims(&claims)
                        ),
                    )
                })?;
            Program {
                local: None,
                copy: Some(client.read_blob(&layer.1).await?),
            }
        }
        (None, None) => return Err(member_error(container, "no program to run")),
    };
    Ok(program)
}

/// Has the plugin check the member (a WASM module compiles into the AOT cache here).
pub(super) async fn validate(
    plugin: &PluginClient,
    settings: &Settings,
    container: &Container,
    program: &Program,
) -> Result<Validated, MemberError> {
    // The plugin reads the program from a file: the member's own, or a private copy of an
    // image's, gone after validation.
    let copy = match (&program.local, &program.copy) {
        (None, Some(bytes)) => Some(tempfile_in(&settings.state_dir.join("plugins"), bytes)?),
        _ => None,
    };
    let path = match (&program.local, &copy) {
        (Some(path), _) => path.as_path(),
        (None, Some(copy)) => copy.path.as_path(),
        (None, None) => return Err(member_error(container, "no program to run")),
    };
    let member = podctl_plugin::Member {
        name: container.name.clone(),
        program: path.to_string_lossy().into_owned(),
        ports: container.ports.iter().map(|p| u32::from(p.container_port)).collect(),
        ..Default::default()
    };
    plugin.validate(member).await.map_err(|e| match e {
        podctl_plugin::ClientError::Refused { message, .. } => member_error(container, message),
        other => member_error(container, other.to_string()),
    })
}

/// The create's event for a validated member: wasmtime compiled (or loaded) it, another plugin
/// accepted it.
pub(super) fn validated_event(plugin: &str, container: &Container, validated: &Validated) -> PodEvent {
    if wasmtime::is(plugin) {
        let how = if validated.cache_hit {
            "loaded from the AOT cache"
        } else {
            "compiled"
        };
        let message = format!(
            "{} {} {how} in {:.0} ms",
            validated.kind, validated.digest, validated.load_millis
        );
        PodEvent::normal("Compiled", &container.name, message)
    } else {
        let message = format!("plugin {plugin} accepts it as {}", validated.kind);
        PodEvent::normal("Validated", &container.name, message)
    }
}

/// A file removed when dropped.
struct TempFile {
    path: PathBuf,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn tempfile_in(dir: &Path, bytes: &[u8]) -> Result<TempFile, MemberError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let path = dir.join(format!(
        "program-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bytes).map_err(io_error(&path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).map_err(io_error(&path))?;
    Ok(TempFile { path })
}
