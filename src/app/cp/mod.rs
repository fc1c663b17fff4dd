//! `podctl cp POD:PATH LOCAL` and `podctl cp LOCAL POD:PATH`, as kubectl cp, but without `tar` in
//! the image (as docker cp and podman cp): an OCI member's files are copied from the host side
//! through its running process's root, every path resolved inside it ([`inroot`]). A member that a
//! plugin runs (WASM) has no root of its own: only paths inside its declared volumes are copied,
//! straight from their host directories (a tar stream, unpacked with the tar crate, which keeps
//! every entry inside the destination).

mod inroot;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::CpArgs;
use crate::containerd::Client;
use crate::member::Registry;
use crate::pod::{MemberView, PodView, Settings};

/// `POD:PATH`, or a local path (one with a `/` before any `:` is local, as in kubectl).
fn remote(spec: &str) -> Option<(&str, &str)> {
    let (pod, path) = spec.split_once(':')?;
    (!pod.is_empty() && !pod.contains('/')).then_some((pod, path))
}

/// The container path's parent and last component (`/tmp/a/` → (`/tmp`, `a`)).
fn split(path: &str) -> Result<(String, String)> {
    let trimmed = path.trim_end_matches('/');
    let path = Path::new(if trimmed.is_empty() { "/" } else { trimmed });
    let name = path
        .file_name()
        .with_context(|| format!("{path:?} names no file or directory; give one, e.g. /tmp/data"))?
        .to_string_lossy()
        .into_owned();
    let parent = match path.parent().map(|p| p.to_string_lossy().into_owned()) {
        Some(p) if !p.is_empty() => p,
        _ => ".".to_string(),
    };
    Ok((parent, name))
}

pub async fn cp(client: &Client, settings: &Settings, registry: &Registry, args: &CpArgs) -> Result<()> {
    match (remote(&args.source), remote(&args.destination)) {
        (Some((pod, path)), None) => {
            let (view, member) = member(client, settings, registry, pod, args.container.as_deref()).await?;
            copy_out(client, settings, &view, &member, path, Path::new(&args.destination)).await
        }
        (None, Some((pod, path))) => {
            let (view, member) = member(client, settings, registry, pod, args.container.as_deref()).await?;
            copy_in(client, settings, &view, &member, Path::new(&args.source), path).await
        }
        (Some(_), Some(_)) => bail!("copy between two pods is not supported; copy to the host first"),
        (None, None) => bail!("one side must be POD:PATH, e.g. `podctl cp web:/etc/hosts ./hosts`"),
    }
}

async fn member(
    client: &Client,
    settings: &Settings,
    registry: &Registry,
    pod: &str,
    container: Option<&str>,
) -> Result<(PodView, MemberView)> {
    let view = super::find(client, settings, registry, pod).await?;
    let member = view.member_or_default(container)?.clone();
    Ok((view, member))
}

/// Where a path of a plugin-run member lives on the host: inside one of its volume mounts.
fn volume_path(
    settings: &Settings,
    client: &Client,
    view: &PodView,
    member: &MemberView,
    path: &str,
) -> Result<PathBuf> {
    let refuse = || {
        anyhow::anyhow!(
            "container {} of pod {} is a {} member with no process to copy through; only paths inside its volumeMounts \
             can be copied, and {path:?} is in none",
            member.name,
            view.name,
            member.runtime
        )
    };
    let manifest = view.pod.as_ref().ok_or_else(refuse)?;
    let container = manifest.container(&member.name).ok_or_else(refuse)?;
    let wanted = Path::new(path);
    for mount in &container.volume_mounts {
        let Ok(rest) = wanted.strip_prefix(&mount.mount_path) else {
            continue;
        };
        if rest.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            continue;
        }
        let volume = manifest
            .spec
            .volumes
            .iter()
            .find(|v| v.name == mount.name)
            .ok_or_else(refuse)?;
        let base = match &volume.source {
            crate::manifest::VolumeSource::HostPath { path, .. } => PathBuf::from(path),
            _ => settings
                .pod_state_dir(client, &view.sandbox_id)
                .join("volumes")
                .join(&volume.name),
        };
        let base = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => base.join(sub),
            None => base,
        };
        return Ok(base.join(rest));
    }
    Err(refuse())
}

async fn copy_out(
    client: &Client,
    settings: &Settings,
    view: &PodView,
    member: &MemberView,
    path: &str,
    local: &Path,
) -> Result<()> {
    let (parent, name) = split(path)?;
    if member.in_agent {
        let source = volume_path(settings, client, view, member, path)?;
        let tar_file = tar_path(settings);
        write_tar(&tar_file, &source, &name)?;
        let unpacked = place(local, &name, |staging| unpack(&tar_file, staging));
        let _ = std::fs::remove_file(&tar_file);
        return unpacked;
    }
    let root = running_root(client, view, member).await?;
    place(local, &name, |staging| {
        let skipped = root
            .copy_out(Path::new(&parent), name.as_ref(), &staging.join(&name))
            .with_context(|| format!("copying {path} out of container {} of pod {}", member.name, view.name))?;
        warn_skipped(&skipped);
        Ok(())
    })
}

/// The root filesystem of the member's running process.
async fn running_root(client: &Client, view: &PodView, member: &MemberView) -> Result<inroot::MemberRoot> {
    let task = client.get_task(&member.id).await?;
    let Some(task) = task.filter(|t| t.state == crate::containerd::TaskState::Running) else {
        bail!(
            "container {} of pod {} is not running; podctl cp copies through a running member's root filesystem \
             (`podctl start {}` starts it again)",
            member.name,
            view.name,
            view.name
        );
    };
    inroot::MemberRoot::of_process(task.pid).with_context(|| {
        format!(
            "opening the root filesystem of container {} (pid {})",
            member.name, task.pid
        )
    })
}

fn warn_skipped(skipped: &[PathBuf]) {
    for path in skipped {
        eprintln!("warning: {} is a device, FIFO or socket; not copied", path.display());
    }
}

/// Puts a copy named `name` at `local` (kubectl's rename), or inside `local` when that is an
/// existing directory. `make` writes it as `name` in a staging directory next to the destination,
/// then one rename puts it in place, so a failed copy leaves nothing half written.
fn place(local: &Path, name: &str, make: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let (into, rename) = if local.is_dir() {
        (local.to_path_buf(), None)
    } else {
        let parent = local
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (parent.to_path_buf(), Some(local.to_path_buf()))
    };
    let staging = into.join(format!(".podctl-cp-{}", std::process::id()));
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let result = make(&staging).and_then(|()| {
        let target = rename.unwrap_or_else(|| into.join(name));
        std::fs::rename(staging.join(name), &target).with_context(|| format!("moving the copy to {}", target.display()))
    });
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Unpacks `tar_file` into `dir` (the tar crate refuses `..` and absolute paths).
fn unpack(tar_file: &Path, dir: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(std::fs::File::open(tar_file)?);
    archive.set_preserve_permissions(true);
    archive.unpack(dir).context("unpacking the copy")
}

/// Where this podctl keeps the tar stream of one copy.
fn tar_path(settings: &Settings) -> PathBuf {
    settings.state_dir.join(format!("cp-{}.tar", std::process::id()))
}

/// Writes `source` (a file or a directory tree; symlinks as symlinks) into a tar at `tar_file`,
/// its top entry named `name`.
fn write_tar(tar_file: &Path, source: &Path, name: &str) -> Result<()> {
    let meta = std::fs::symlink_metadata(source).with_context(|| format!("{} does not exist", source.display()))?;
    let mut builder = tar::Builder::new(std::fs::File::create(tar_file)?);
    builder.follow_symlinks(false);
    if meta.is_dir() {
        builder.append_dir_all(name, source)?;
    } else {
        builder.append_path_with_name(source, name)?;
    }
    builder.finish()?;
    Ok(())
}

async fn copy_in(
    client: &Client,
    settings: &Settings,
    view: &PodView,
    member: &MemberView,
    local: &Path,
    path: &str,
) -> Result<()> {
    let (parent, name) = split(path)?;
    if member.in_agent {
        let target = volume_path(settings, client, view, member, path)?;
        let tar_file = tar_path(settings);
        write_tar(&tar_file, local, &name)?;
        let unpacked = place(&target, &name, |staging| unpack(&tar_file, staging));
        let _ = std::fs::remove_file(&tar_file);
        return unpacked;
    }
    if std::fs::symlink_metadata(local).is_err() {
        bail!("{} does not exist on this host", local.display());
    }
    let root = running_root(client, view, member).await?;
    let skipped = root
        .copy_in(local, Path::new(&parent), name.as_ref())
        .with_context(|| {
            format!(
                "copying {} into container {} of pod {} as {path}",
                local.display(),
                member.name,
                view.name
            )
        })?;
    warn_skipped(&skipped);
    Ok(())
}
