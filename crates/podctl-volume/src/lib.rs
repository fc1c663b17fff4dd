//! The host side of the volumes whose files podctl writes (configMap, secret and projected):
//! kubelet's atomic layout — the files in a timestamped `..<time>` directory, `..data` a symlink
//! to it, each top-level name a symlink into `..data` — so a new version replaces the old one with
//! one rename and a reader never sees half of each; a tmpfs under every volume that holds a
//! Secret, so its values never touch a disk; the pod's shared `/dev/shm`; and removing a pod
//! directory with such mounts in it.

use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// One file of a volume: its path inside the volume, its bytes and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    #[error("cannot mount a tmpfs for Secret files at {path}: {cause}; podctl needs root (CAP_SYS_ADMIN)")]
    Mount { path: PathBuf, cause: nix::Error },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> VolumeError + '_ {
    move |cause| VolumeError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

const DATA_LINK: &str = "..data";
/// Room for the Secrets of one volume (each at most 1 MiB); tmpfs takes memory only as written.
const TMPFS_SIZE: &str = "size=64m";

/// Makes the volume's directory; with `tmpfs`, mounts one there (root-only until the member's
/// bind mount shows it) unless one is mounted already.
pub fn prepare_dir(dir: &Path, tmpfs: bool) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    if tmpfs && !is_mount_point(dir) {
        use nix::mount::{mount, MsFlags};
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(format!("mode=0755,{TMPFS_SIZE}").as_str()),
        )
        .map_err(|cause| VolumeError::Mount {
            path: dir.to_path_buf(),
            cause,
        })?;
    }
    Ok(())
}

/// The pod's one `/dev/shm`: a tmpfs that every member bind-mounts, so POSIX shared memory is
/// shared as SysV IPC is (the members share the pause's IPC namespace), as under CRI. Mounted once.
/// Gives the tree at `dir` to group `gid`, as kubelet applies a pod's fsGroup (only to trees no
/// container can change meanwhile: new emptyDirs, podctl's own read-only volume files): everything
/// group-owned, directories setgid (new files join the group) and group-searchable, files
/// group-readable; writable by the group too when `writable` (emptyDir, not configMap or secret).
pub fn give_to_group(dir: &Path, gid: u32, writable: bool) -> Result<(), VolumeError> {
    use std::os::unix::fs::PermissionsExt;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(io_at(&path))?;
        std::os::unix::fs::lchown(&path, None, Some(gid)).map_err(io_at(&path))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        let wanted = if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(io_at(&path))? {
                pending.push(entry.map_err(io_at(&path))?.path());
            }
            mode | 0o2050 | if writable { 0o020 } else { 0 }
        } else {
            mode | 0o040 | if writable { 0o020 } else { 0 }
        };
        if wanted != mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted)).map_err(io_at(&path))?;
        }
    }
    Ok(())
}

pub fn prepare_shm(dir: &Path) -> Result<(), VolumeError> {
    prepare_memory_dir(dir, 64 << 20, MemoryUse::Shm)
}

/// What a pod's own tmpfs is for.
pub enum MemoryUse {
    Shm,
    /// An `emptyDir` with `medium: Memory`: shared by the members that mount it.
    EmptyDir,
}

/// A tmpfs of `size` bytes at `dir` (mode 1777), mounted unless it is already.
pub fn prepare_memory_dir(dir: &Path, size: u64, what: MemoryUse) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    if !is_mount_point(dir) {
        use nix::mount::{mount, MsFlags};
        let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        if matches!(what, MemoryUse::Shm) {
            flags |= MsFlags::MS_NOEXEC;
        }
        let size_kib = size.div_ceil(1024).max(4);
        mount(
            Some(match what {
                MemoryUse::Shm => "shm",
                MemoryUse::EmptyDir => "tmpfs",
            }),
            dir,
            Some("tmpfs"),
            flags,
            Some(format!("mode=1777,size={size_kib}k").as_str()),
        )
        .map_err(|cause| VolumeError::Mount {
            path: dir.to_path_buf(),
            cause,
        })?;
    }
    Ok(())
}

/// Every mount point at or under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|point| point.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(field: &str) -> PathBuf {
    let mut out = Vec::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Some(code) = field.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(code);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

pub fn is_mount_point(dir: &Path) -> bool {
    mounts_under(dir).iter().any(|p| p == dir)
}

/// Removes a directory tree, first detaching the tmpfs mounts (Secret volumes) inside it; a
/// missing directory is fine.
pub fn remove_dir_with_mounts(dir: &Path) -> io::Result<()> {
    for point in mounts_under(dir) {
        let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The files as they are in the volume now (empty when it was never written).
fn current(dir: &Path) -> Vec<File> {
    let Ok(target) = std::fs::read_link(dir.join(DATA_LINK)) else {
        return Vec::new();
    };
    let root = dir.join(target);
    let mut files = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let (Ok(data), Ok(meta)) = (std::fs::read(&path), entry.metadata()) {
                files.push(File {
                    path: path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().into_owned(),
                    data,
                    mode: meta.permissions().mode() & 0o777,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn top_level(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// Writes `files` as the volume's new version (kubelet's AtomicWriter): nothing happens when they
/// are what the volume holds already; returns whether it changed.
pub fn write_atomically(dir: &Path, files: &[File]) -> Result<bool, VolumeError> {
    let mut wanted = files.to_vec();
    wanted.sort_by(|a, b| a.path.cmp(&b.path));
    if current(dir) == wanted && dir.join(DATA_LINK).exists() {
        return Ok(false);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let version = format!("..{}.{:09}", now.as_secs(), now.subsec_nanos());
    let version_dir = dir.join(&version);
    std::fs::create_dir(&version_dir).map_err(io_at(&version_dir))?;
    std::fs::set_permissions(&version_dir, std::fs::Permissions::from_mode(0o755)).map_err(io_at(&version_dir))?;
    for file in &wanted {
        let path = version_dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        std::fs::write(&path, &file.data).map_err(io_at(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode)).map_err(io_at(&path))?;
    }
    // The switch: a new link renamed over `..data` (rename replaces a symlink atomically).
    let next_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&next_link);
    symlink(&version, &next_link).map_err(io_at(&next_link))?;
    std::fs::rename(&next_link, dir.join(DATA_LINK)).map_err(io_at(dir))?;
    // Top-level names point into `..data`; names no longer written go.
    let names: std::collections::BTreeSet<&str> = wanted.iter().map(|f| top_level(&f.path)).collect();
    for name in &names {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_LINK).join(name), &link).map_err(io_at(&link))?;
        }
    }
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_version = name.starts_with("..") && name != DATA_LINK && name != version;
        let stale_link = !name.starts_with("..") && !names.contains(name.as_str());
        if stale_version {
            let _ = std::fs::remove_dir_all(entry.path());
        } else if stale_link && entry.file_type().is_ok_and(|t| t.is_symlink()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str, mode: u32) -> File {
        File {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn a_new_version_replaces_the_old_through_data_and_names_follow() {
        let dir = std::env::temp_dir().join(format!("podctl-volume-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        prepare_dir(&dir, false).unwrap();
        let first = [file("a.conf", "one", 0o644), file("sub/b", "two", 0o400)];
        assert!(write_atomically(&dir, &first).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a.conf")).unwrap(), "one");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "two");
        let mode = std::fs::metadata(dir.join("sub/b")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        assert!(std::fs::symlink_metadata(dir.join("a.conf"))
            .unwrap()
            .file_type()
            .is_symlink());
        // The same files again: nothing is written.
        assert!(!write_atomically(&dir, &first).unwrap());
        let second = [file("a.conf", "uno", 0o644), file("c", "three", 0o644)];
        assert!(write_atomically(&dir, &second).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a.conf")).unwrap(), "uno");
        assert!(!dir.join("sub").exists(), "a name no longer written is gone");
        let versions = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("..") && e.file_name() != DATA_LINK)
            .count();
        assert_eq!(versions, 1, "old versions are removed");
        remove_dir_with_mounts(&dir).unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn mountinfo_escapes_are_read() {
        assert_eq!(unescape_mount_path("/a\\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
    }
}
