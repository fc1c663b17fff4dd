//! The directories a layer does not list but puts files in: made with the owner, mode and xattrs
//! of the uppermost lower layer's directory there (as overlayfs would show it), else root's 0755;
//! a symlink on the way is followed inside the snapshot, as containerd's RootPath resolves it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag};
use nix::sys::stat::{fstat, mkdirat, FchmodatFlags, Mode};

use super::dirfd::{chown, clean, errno, in_root, is_dir, join, lsetxattr, open_dir_in};
use super::target::Target;

/// A lower layer's directory, as a parent a layer does not list is made from it.
struct LowerDir {
    mode: u32,
    uid: u32,
    gid: u32,
    xattrs: Vec<(CString, Vec<u8>)>,
}

pub(super) fn make_parents(target: &Target, parts: &[&[u8]]) -> io::Result<OwnedFd> {
    let root = target.root.as_fd();
    let mut path: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
    let mut hops = 0;
    'walk: loop {
        let mut dir = open_dir_in(root, b"").map_err(errno)?;
        for depth in 1..=path.len() {
            let prefix = join(&path[..depth].iter().map(Vec::as_slice).collect::<Vec<_>>());
            dir = match open_dir_in(root, &prefix) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    let name = path[depth - 1].as_slice();
                    if let Ok(target) = nix::fcntl::readlinkat(dir.as_fd(), name) {
                        // A symlink to what is not there yet: made where it points, inside the
                        // root (as containerd's RootPath resolves it).
                        hops += 1;
                        if hops > 40 {
                            return Err(errno(Errno::ELOOP));
                        }
                        let target = target.as_bytes();
                        let mut joined = if target.starts_with(b"/") {
                            Vec::new()
                        } else {
                            join(&path[..depth - 1].iter().map(Vec::as_slice).collect::<Vec<_>>())
                        };
                        joined.push(b'/');
                        joined.extend_from_slice(target);
                        let mut resolved: Vec<Vec<u8>> = clean(&joined).iter().map(|p| p.to_vec()).collect();
                        resolved.extend(path.drain(depth..));
                        path = resolved;
                        continue 'walk;
                    }
                    let lower = lower_dir_meta(target, &prefix).unwrap_or(LowerDir {
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                        xattrs: Vec::new(),
                    });
                    let LowerDir { mode, uid, gid, .. } = lower;
                    mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(0o700)).map_err(errno)?;
                    chown(dir.as_fd(), name, uid, gid)?;
                    nix::sys::stat::fchmodat(
                        dir.as_fd(),
                        name,
                        Mode::from_bits_truncate(mode),
                        FchmodatFlags::FollowSymlink,
                    )
                    .map_err(errno)?;
                    for (key, value) in &lower.xattrs {
                        // Best effort, as containerd copies them up.
                        let _ = lsetxattr(dir.as_fd(), name, key, value);
                    }
                    open_dir_in(root, &prefix).map_err(errno)?
                }
                Err(e) => return Err(errno(e)),
            };
        }
        return Ok(dir);
    }
}

/// The owner and mode of the directory at `path` in the uppermost lower layer that has
/// anything there (a directory above hides those below, as overlayfs shows them).
fn lower_dir_meta(target: &Target, path: &[u8]) -> Option<LowerDir> {
    for lower in &target.lowers {
        let Ok(fd) = openat2(lower.as_fd(), path, in_root().flags(OFlag::O_PATH | OFlag::O_CLOEXEC)) else {
            continue;
        };
        let stat = fstat(fd.as_fd()).ok()?;
        if !is_dir(&stat) {
            return None;
        }
        // The directory's own xattrs, but not overlayfs's (trusted.*): those say how that
        // layer merges, not what this one is.
        let fd_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let xattrs = xattr::list_deref(&fd_path)
            .map(|names| {
                names
                    .filter(|name| !name.as_bytes().starts_with(b"trusted."))
                    .filter_map(|name| {
                        let value = xattr::get_deref(&fd_path, &name).ok().flatten()?;
                        Some((CString::new(name.as_bytes()).ok()?, value))
                    })
                    .collect()
            })
            .unwrap_or_default();
        return Some(LowerDir {
            mode: stat.st_mode & 0o7777,
            uid: stat.st_uid,
            gid: stat.st_gid,
            xattrs,
        });
    }
    None
}
