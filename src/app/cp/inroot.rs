//! Copies through a running member's root filesystem from the host side (`/proc/PID/root`), as
//! docker cp and podman cp do: nothing (no `tar`) is needed in the image, and the member's mount
//! namespace is what is walked, so its volumes are seen where it sees them.
//!
//! Every path is resolved inside that root (openat2 with RESOLVE_IN_ROOT): `..` stops at the
//! root and an absolute symlink means the container's `/`, so no symlink in the image reaches the
//! host's files. Below the named path, entries are opened one name at a time, never following a
//! symlink: a symlink is copied as a symlink.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, readlinkat, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, futimens, mkdirat, FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

/// The root filesystem of a member's running process, and that process's user, who owns what is
/// copied in (so the member can change it, as after `kubectl cp`, whose tar runs as that user).
pub(super) struct MemberRoot {
    root: OwnedFd,
    cwd: PathBuf,
    owner: (Uid, Gid),
}

/// What a copy left out: device nodes, FIFOs and sockets are not copied.
pub(super) type Skipped = Vec<PathBuf>;

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn kind(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits())
}

fn permissions(mode: u32) -> Mode {
    Mode::from_bits_truncate(mode & 0o7777)
}

fn times(stat: &FileStat) -> (TimeSpec, TimeSpec) {
    (
        TimeSpec::new(stat.st_atime, stat.st_atime_nsec),
        TimeSpec::new(stat.st_mtime, stat.st_mtime_nsec),
    )
}

impl MemberRoot {
    pub(super) fn of_process(pid: u32) -> io::Result<MemberRoot> {
        let root = nix::fcntl::open(
            format!("/proc/{pid}/root").as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        // Relative paths are the member's working directory's, as for tar run in it.
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_else(|_| "/".into());
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        // `Uid:\treal\teffective\tsaved\tfs`: the effective IDs are what its writes would carry.
        let id = |key: &str| -> u32 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        Ok(MemberRoot {
            root,
            cwd,
            owner: (Uid::from_raw(id("Uid:")), Gid::from_raw(id("Gid:"))),
        })
    }

    /// Opens the directory `path` names (symlinks followed, inside the root).
    fn open_dir(&self, path: &Path) -> io::Result<OwnedFd> {
        let path = self.cwd.join(path);
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(self.root.as_fd(), path.as_path(), how).map_err(errno)
    }

    /// Copies `name` of the directory `parent` (a file, a symlink or a whole tree) out to `dest`,
    /// which must not exist yet; modes and modification times are kept, the owner is the caller.
    pub(super) fn copy_out(&self, parent: &Path, name: &OsStr, dest: &Path) -> io::Result<Skipped> {
        let dir = self.open_dir(parent)?;
        let mut skipped = Vec::new();
        out_entry(dir.as_fd(), name, dest, &mut skipped)?;
        Ok(skipped)
    }

    /// Copies the host's `local` in as `name` of the directory `parent`, owned by the member's
    /// user with `local`'s modes and times. A file copied onto an existing directory goes inside
    /// it under its own name (as docker cp); a directory merges into an existing one (as tar).
    /// A symlink in the way is replaced, never written through.
    pub(super) fn copy_in(&self, local: &Path, parent: &Path, name: &OsStr) -> io::Result<Skipped> {
        let mut dir = self.open_dir(parent)?;
        let mut name = name.to_os_string();
        let existing = fstatat(dir.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW);
        let local_is_dir = std::fs::symlink_metadata(local)?.is_dir();
        if existing.is_ok_and(|st| kind(&st) == SFlag::S_IFDIR) && !local_is_dir {
            dir = openat(dir.as_fd(), name.as_os_str(), dir_flags(), Mode::empty()).map_err(errno)?;
            name = local.file_name().map(OsStr::to_os_string).unwrap_or(name);
        }
        let mut skipped = Vec::new();
        self.in_entry(dir.as_fd(), &name, local, &mut skipped)?;
        Ok(skipped)
    }

    fn in_entry(&self, dir: BorrowedFd<'_>, name: &OsStr, local: &Path, skipped: &mut Skipped) -> io::Result<()> {
        let meta = std::fs::symlink_metadata(local)?;
        let existing = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| kind(&st));
        let (uid, gid) = self.owner;
        let kind = meta.file_type();
        // Whatever is in the way and is not a directory we merge into goes first.
        let in_the_way = match existing {
            None => false,
            Some(SFlag::S_IFDIR) if kind.is_dir() => false,
            Some(SFlag::S_IFDIR) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{name:?} is a directory in the container; remove it first or copy into it"),
                ))
            }
            Some(SFlag::S_IFREG) if kind.is_file() => false,
            Some(_) => true,
        };
        if in_the_way {
            unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(errno)?;
        }
        if kind.is_symlink() {
            symlinkat(std::fs::read_link(local)?.as_path(), dir, name).map_err(errno)?;
            return fchownat(dir, name, Some(uid), Some(gid), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno);
        }
        let fd = if kind.is_dir() {
            if existing.is_none() {
                mkdirat(dir, name, Mode::from_bits_truncate(0o700)).map_err(errno)?;
            }
            let fd = openat(dir, name, dir_flags(), Mode::empty()).map_err(errno)?;
            for entry in std::fs::read_dir(local)? {
                let entry = entry?;
                self.in_entry(fd.as_fd(), &entry.file_name(), &entry.path(), skipped)?;
            }
            fd
        } else if kind.is_file() {
            let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let fd = openat(dir, name, flags, Mode::from_bits_truncate(0o600)).map_err(errno)?;
            let mut to = File::from(fd);
            io::copy(&mut File::open(local)?, &mut to)?;
            to.into()
        } else {
            skipped.push(local.to_path_buf());
            return Ok(());
        };
        // Owner before mode: a chown clears the set-user-ID and set-group-ID bits.
        fchown(fd.as_fd(), Some(uid), Some(gid)).map_err(errno)?;
        fchmod(fd.as_fd(), permissions(meta.mode())).map_err(errno)?;
        let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
        let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
        futimens(fd.as_fd(), &atime, &mtime).map_err(errno)
    }
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn out_entry(dir: BorrowedFd<'_>, name: &OsStr, dest: &Path, skipped: &mut Skipped) -> io::Result<()> {
    let stat = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno)?;
    let (atime, mtime) = times(&stat);
    let written = match kind(&stat) {
        SFlag::S_IFLNK => {
            let target: OsString = readlinkat(dir, name).map_err(errno)?;
            return std::os::unix::fs::symlink(target, dest);
        }
        SFlag::S_IFDIR => {
            let fd = openat(dir, name, dir_flags(), Mode::empty()).map_err(errno)?;
            std::fs::create_dir(dest)?;
            // Our own descriptor, reopened through /proc: the listing is of that very directory.
            for entry in std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))? {
                let entry = entry?.file_name();
                out_entry(fd.as_fd(), &entry, &dest.join(&entry), skipped)?;
            }
            File::open(dest)?
        }
        SFlag::S_IFREG => {
            // O_NONBLOCK: should the entry have become a FIFO meanwhile, the open does not hang.
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
            let mut from = File::from(openat(dir, name, flags, Mode::empty()).map_err(errno)?);
            if kind(&fstat(from.as_fd()).map_err(errno)?) != SFlag::S_IFREG {
                skipped.push(dest.to_path_buf());
                return Ok(());
            }
            let mut to = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)?;
            io::copy(&mut from, &mut to)?;
            to
        }
        _ => {
            skipped.push(dest.to_path_buf());
            return Ok(());
        }
    };
    written.set_permissions(std::fs::Permissions::from_mode(stat.st_mode & 0o7777))?;
    futimens(written.as_fd(), &atime, &mtime).map_err(errno)
}
