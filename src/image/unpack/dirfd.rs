//! Paths and calls inside the snapshot: an entry's path cleaned as if rooted there, and the
//! `*at` calls on names in an open directory (openat2 with RESOLVE_IN_ROOT, never following a
//! symlink out), which is all the applier writes with.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::SFlag;
use nix::unistd::{fchownat, Gid, Uid};

/// An entry's path, cleaned as if rooted at the snapshot: `..` stops at the root.
pub(super) fn clean(path: &[u8]) -> Vec<&[u8]> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts
}

pub(super) fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&b'/')
}

pub(super) fn in_root() -> OpenHow {
    OpenHow::new().resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Opens `path` (relative, inside `root`) as a directory.
pub(super) fn open_dir_in(root: BorrowedFd<'_>, path: &[u8]) -> nix::Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    openat2(
        root,
        path,
        in_root().flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC),
    )
}

pub(super) fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

pub(super) fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> CString {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    CString::new(path).expect("tar names hold no NUL")
}

pub(super) fn lsetxattr(dir: BorrowedFd<'_>, name: &[u8], key: &CStr, value: &[u8]) -> io::Result<()> {
    let path = proc_path(dir, name);
    // SAFETY: both strings are NUL-terminated and the value slice is valid for its length.
    let rc = unsafe { libc::lsetxattr(path.as_ptr(), key.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(super) fn file_type(stat: &nix::sys::stat::FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT
}

pub(super) fn is_dir(stat: &nix::sys::stat::FileStat) -> bool {
    file_type(stat) == SFlag::S_IFDIR
}

/// Sets the owner of `name` in `dir` itself (a symlink's, never its target's).
pub(super) fn chown(dir: BorrowedFd<'_>, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    fchownat(
        dir,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(errno)
}

/// Removes `name` in `dir`, a whole tree if it is a directory (never following symlinks); nothing
/// there is no error.
pub(super) fn remove(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    if matches!(name, b"" | b"." | b"..") {
        return Err(io::Error::other("refusing to remove . or .."));
    }
    let path = proc_path(dir, name);
    let path = Path::new(OsStr::from_bytes(path.as_bytes()));
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_as_if_rooted() {
        assert_eq!(clean(b"./a/b/"), vec![b"a".as_slice(), b"b"]);
        assert_eq!(clean(b"/../../etc/passwd"), vec![b"etc".as_slice(), b"passwd"]);
        assert_eq!(clean(b"a/../../b"), vec![b"b".as_slice()]);
        assert!(clean(b"./").is_empty());
    }
}
