//! podctl's own layer applier: a layer tar (gzip-compressed or plain) unpacked straight into a
//! prepared overlayfs snapshot, while it streams in. It does what containerd's applier does for
//! overlay mounts (whiteouts become overlayfs whiteouts, opaque directories get the opaque xattr,
//! missing parents copy the lower layers' directories, directory times are set last), so the
//! snapshot is the one `ctr` would have made; and it returns the digest of the uncompressed
//! stream, which the caller checks against the config's diff_id before committing the snapshot.
//!
//! Why not containerd's diff service: it reads the blob back from the content store, and its Go
//! SHA-256 (no SHA-NI in Debian's build) hashes every uncompressed byte after the download ended.
//! Here the layer is unpacked while it downloads, on the client's core, with SHA-NI.
//!
//! Every path is resolved inside the snapshot (openat2 with RESOLVE_IN_ROOT, as containerd's
//! RootPath): a layer's `..` or symlinks cannot reach outside it.

use std::ffi::{CStr, CString, OsStr};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, Gid, Uid};
use sha2::{Digest, Sha256};

use crate::containerd::RootfsMount;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Bytes read before the compression is decided.
const MAGIC_BYTES: usize = 10;
/// Bytes moved per read/write of a file's content.
const COPY_BUFFER: usize = 256 << 10;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Found before anything was written: the caller hands the layer to containerd instead.
    #[error("the layer is compressed with {0}, which podctl's applier does not read")]
    Unsupported(&'static str),
    #[error("{}", stream_message(.0))]
    Stream(io::Error),
    #[error("cannot unpack {path:?}: {cause}")]
    Entry { path: String, cause: io::Error },
}

fn stream_message(cause: &io::Error) -> String {
    match cause.kind() {
        io::ErrorKind::UnexpectedEof => {
            format!("the layer's stream ends early (unexpected EOF: {cause}); it is truncated")
        }
        _ => format!("the layer is not a readable tar stream: {cause}"),
    }
}

/// Where a layer goes: the snapshot's writable directory and, for overlay, the layers under it.
pub struct Target {
    root: OwnedFd,
    root_path: PathBuf,
    /// The lower layers, uppermost first (for the metadata of parents a layer does not list).
    lowers: Vec<OwnedFd>,
    /// Whiteouts become overlayfs's (a 0/0 character device, the opaque xattr); without lower
    /// layers (the first layer, a bind mount) they only remove what this layer made.
    overlay: bool,
    opaque_xattr: &'static CStr,
}

impl Target {
    /// The target behind a freshly prepared snapshot's mounts, when they are the kind this
    /// applier writes (overlay with an upperdir, or the bind mount of a first layer) and their
    /// directories are reachable from here; None otherwise.
    pub fn open(mounts: &[RootfsMount]) -> Option<Target> {
        let [mount] = mounts else { return None };
        let option = |key: &str| {
            mount
                .options
                .iter()
                .find_map(|o| o.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
        };
        let (root, lowers, overlay) = match mount.r#type.as_str() {
            "bind" => (PathBuf::from(&mount.source), Vec::new(), false),
            "overlay" => {
                let upper = option("upperdir")?;
                let lowers: Vec<PathBuf> = option("lowerdir")?.split(':').map(PathBuf::from).collect();
                (PathBuf::from(upper), lowers, true)
            }
            _ => return None,
        };
        let open_dir = |path: &Path| {
            nix::fcntl::open(
                path,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ok()
        };
        let lowers = lowers.iter().map(|p| open_dir(p)).collect::<Option<Vec<_>>>()?;
        Some(Target {
            root: open_dir(&root)?,
            root_path: root,
            lowers,
            overlay,
            opaque_xattr: if mount.options.iter().any(|o| o == "userxattr") {
                c"user.overlay.opaque"
            } else {
                c"trusted.overlay.opaque"
            },
        })
    }

    pub fn root_path(&self) -> &Path {
        &self.root_path
    }
}

/// Unpacks the layer read from `input` into `target`; returns the `sha256:` digest of the
/// uncompressed stream (every byte, trailing padding included, as containerd hashes it).
pub fn apply(target: &Target, mut input: impl Read) -> Result<String, UnpackError> {
    // The first bytes say the compression, as containerd reads them (its magic numbers are up to
    // 6 bytes; the first chunk of a download may be shorter).
    let mut head = Vec::with_capacity(MAGIC_BYTES);
    while head.len() < MAGIC_BYTES {
        let mut byte_run = [0u8; MAGIC_BYTES];
        let n = input
            .read(&mut byte_run[..MAGIC_BYTES - head.len()])
            .map_err(UnpackError::Stream)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&byte_run[..n]);
    }
    let gzip = match head.as_slice() {
        [0x1f, 0x8b, ..] => true,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => return Err(UnpackError::Unsupported("zstd")),
        [b'B', b'Z', b'h', ..] => return Err(UnpackError::Unsupported("bzip2")),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => return Err(UnpackError::Unsupported("xz")),
        _ => false,
    };
    let input = BufReader::with_capacity(COPY_BUFFER, io::Cursor::new(head).chain(input));
    let tar: Box<dyn Read> = if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut archive = tar::Archive::new(Hashing {
        inner: tar,
        hasher: Sha256::new(),
    });
    let mut unpacker = Unpacker {
        target,
        parent: None,
        dir_times: Vec::new(),
        buffer: vec![0; COPY_BUFFER],
    };
    for entry in archive.entries().map_err(UnpackError::Stream)? {
        let mut entry = entry.map_err(UnpackError::Stream)?;
        let name = entry.path_bytes().into_owned();
        unpacker.entry(&mut entry).map_err(|cause| match cause.kind() {
            // The tar stream broke inside an entry's content.
            io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
                UnpackError::Stream(cause)
            }
            _ => UnpackError::Entry {
                path: String::from_utf8_lossy(&name).into_owned(),
                cause,
            },
        })?;
    }
    unpacker.finish()?;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(UnpackError::Stream)?;
    Ok(format!("sha256:{}", hex::encode(rest.hasher.finalize())))
}

struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// An entry's path, cleaned as if rooted at the snapshot: `..` stops at the root.
fn clean(path: &[u8]) -> Vec<&[u8]> {
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

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&b'/')
}

struct Unpacker<'a> {
    target: &'a Target,
    /// The directory of the last entry, kept open (a layer lists a directory's files together).
    parent: Option<(Vec<u8>, OwnedFd)>,
    /// Directories' times, set once nothing more is written into them.
    dir_times: Vec<(Vec<u8>, TimeSpec, TimeSpec)>,
    buffer: Vec<u8>,
}

/// A lower layer's directory, as a parent a layer does not list is made from it.
struct LowerDir {
    mode: u32,
    uid: u32,
    gid: u32,
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// What an entry's header and PAX records say about its owner and time.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
    /// The later of the PAX atime and the mtime, as containerd sets it.
    atime: TimeSpec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

fn meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let header = entry.header();
    // An empty numeric field reads as 0, as Go's archive/tar (containerd's) reads it.
    let mut meta = Meta {
        mode: header.mode().unwrap_or(0) & 0o7777,
        uid: header.uid().unwrap_or(0) as u32,
        gid: header.gid().unwrap_or(0) as u32,
        mtime: TimeSpec::new(header.mtime().unwrap_or(0) as i64, 0),
        atime: TimeSpec::new(0, 0),
        xattrs: Vec::new(),
    };
    if let Some(records) = entry.pax_extensions()? {
        for record in records {
            let record = record?;
            let value = record.value_bytes();
            let number = || std::str::from_utf8(value).ok();
            match record.key_bytes() {
                b"uid" => meta.uid = number().and_then(|v| v.parse().ok()).unwrap_or(meta.uid),
                b"gid" => meta.gid = number().and_then(|v| v.parse().ok()).unwrap_or(meta.gid),
                b"mtime" => {
                    if let Some(time) = number().and_then(pax_time) {
                        meta.mtime = time;
                    }
                }
                b"atime" => {
                    if let Some(time) = number().and_then(pax_time) {
                        meta.atime = time;
                    }
                }
                key => {
                    // trusted.* (overlayfs's own opaque/redirect/metacopy among them) is the
                    // host's to set, never a layer's: containerd skips it too.
                    if let Some(name) = key
                        .strip_prefix(b"SCHILY.xattr.")
                        .filter(|n| !n.starts_with(b"trusted."))
                    {
                        if let Ok(name) = CString::new(name) {
                            meta.xattrs.push((name, value.to_vec()));
                        }
                    }
                }
            }
        }
    }
    meta.atime = meta.atime.max(meta.mtime);
    Ok(meta)
}

/// A PAX time: seconds with an optional fraction ("1700000000.123456789"). Times before the
/// epoch become the epoch, as containerd bounds them.
fn pax_time(value: &str) -> Option<TimeSpec> {
    let (seconds, fraction) = value.split_once('.').unwrap_or((value, ""));
    let seconds: i64 = seconds.parse().ok()?;
    if seconds < 0 || value.starts_with('-') {
        return Some(TimeSpec::new(0, 0));
    }
    let digits: String = fraction.chars().take(9).collect();
    let nanos: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(TimeSpec::new(seconds, nanos))
}

fn in_root() -> OpenHow {
    OpenHow::new().resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Opens `path` (relative, inside `root`) as a directory.
fn open_dir_in(root: BorrowedFd<'_>, path: &[u8]) -> nix::Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    openat2(
        root,
        path,
        in_root().flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC),
    )
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> CString {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    CString::new(path).expect("tar names hold no NUL")
}

fn lsetxattr(dir: BorrowedFd<'_>, name: &[u8], key: &CStr, value: &[u8]) -> io::Result<()> {
    let path = proc_path(dir, name);
    // SAFETY: both strings are NUL-terminated and the value slice is valid for its length.
    let rc = unsafe { libc::lsetxattr(path.as_ptr(), key.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn file_type(stat: &nix::sys::stat::FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT
}

fn is_dir(stat: &nix::sys::stat::FileStat) -> bool {
    file_type(stat) == SFlag::S_IFDIR
}

/// Sets the owner of `name` in `dir` itself (a symlink's, never its target's).
fn chown(dir: BorrowedFd<'_>, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
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
fn remove(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
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

/// Owner first (chown clears setuid bits and file capabilities), then xattrs, then mode.
fn set_meta(dir: BorrowedFd<'_>, base: &[u8], kind: tar::EntryType, meta: &Meta) -> io::Result<()> {
    chown(dir, base, meta.uid, meta.gid)?;
    for (key, value) in &meta.xattrs {
        match lsetxattr(dir, base, key, value) {
            // As containerd: a filesystem without xattrs, or user.* on a symlink or a device.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) => {}
            other => other?,
        }
    }
    // Never through a symlink: a hard link may name one (whose target is outside the snapshot),
    // and chmod follows. What is not a symlink now stays one podctl made or found as a directory.
    let is_symlink = fstatat(dir, base, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map(|stat| file_type(&stat) == SFlag::S_IFLNK)
        .map_err(errno)?;
    if !is_symlink {
        nix::sys::stat::fchmodat(
            dir,
            base,
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(errno)?;
    }
    if kind != tar::EntryType::Directory {
        utimensat(dir, base, &meta.atime, &meta.mtime, UtimensatFlags::NoFollowSymlink).map_err(errno)?;
    }
    Ok(())
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> io::Result<()> {
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader) {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let parts = clean(&raw);
        let Some((&base, parent)) = parts.split_last() else {
            // The root itself: ignored, as containerd ignores it (the snapshot's root is its own).
            return Ok(());
        };
        if base.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(parent, base, entry);
        }
        let meta = meta(entry)?;
        let device = match kind {
            tar::EntryType::Char | tar::EntryType::Block => libc::makedev(
                entry.header().device_major().ok().flatten().unwrap_or(0),
                entry.header().device_minor().ok().flatten().unwrap_or(0),
            ),
            _ => 0,
        };
        let link_target = entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
        let dir_fd = self.parent_dir(parent)?;
        let dir = dir_fd.as_fd();
        let existing = fstatat(dir, base, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
        if let Some(stat) = &existing {
            // Replaced, unless a directory meets a directory: then only its metadata changes.
            if !(kind == tar::EntryType::Directory && is_dir(stat)) {
                remove(dir, base)?;
            }
        }
        let perm = Mode::from_bits_truncate(meta.mode);
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = nix::fcntl::openat(
                    dir,
                    base,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(errno)?;
                let mut file = std::fs::File::from(fd);
                loop {
                    let n = entry.read(&mut self.buffer)?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&self.buffer[..n])?;
                }
            }
            tar::EntryType::Directory => {
                if existing.as_ref().is_none_or(|s| !is_dir(s)) {
                    mkdirat(dir, base, Mode::from_bits_truncate(0o700)).map_err(errno)?;
                }
            }
            tar::EntryType::Symlink => symlinkat(link_target.as_slice(), dir, base).map_err(errno)?,
            tar::EntryType::Link => {
                let target = clean(&link_target);
                let Some((&target_base, target_parent)) = target.split_last() else {
                    return Err(io::Error::other("a hard link to the root"));
                };
                let target_dir = open_dir_in(self.target.root.as_fd(), &join(target_parent))
                    .map_err(|e| io::Error::other(format!("its link target's directory: {}", errno(e))))?;
                linkat(target_dir.as_fd(), target_base, dir, base, AtFlags::empty()).map_err(|e| {
                    io::Error::other(format!(
                        "hard link to {:?}: {} (the target must be in the same layer)",
                        String::from_utf8_lossy(&join(&target)),
                        errno(e)
                    ))
                })?;
            }
            tar::EntryType::Char => mknodat(dir, base, SFlag::S_IFCHR, perm, device).map_err(errno)?,
            tar::EntryType::Block => mknodat(dir, base, SFlag::S_IFBLK, perm, device).map_err(errno)?,
            tar::EntryType::Fifo => mknodat(dir, base, SFlag::S_IFIFO, perm, 0).map_err(errno)?,
            other => {
                return Err(io::Error::other(format!(
                    "tar entries of type {other:?} are not supported"
                )))
            }
        }
        // A hard link's header sets its inode's metadata too (the target's), as containerd does.
        set_meta(dir, base, kind, &meta)?;
        if kind == tar::EntryType::Directory {
            let mut path = join(parent);
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(base);
            self.dir_times.push((path, meta.atime, meta.mtime));
        }
        self.parent = Some((join(parent), dir_fd));
        Ok(())
    }

    /// `.wh.NAME` hides NAME of the layers below; `.wh..wh..opq` hides all their content of its
    /// directory. Other `.wh..wh.` names are AUFS bookkeeping and are skipped, as containerd does.
    fn whiteout<R: Read>(&mut self, parent: &[&[u8]], base: &[u8], entry: &mut tar::Entry<'_, R>) -> io::Result<()> {
        let overlay = self.target.overlay;
        if base == OPAQUE_MARKER {
            if overlay {
                let dir = self.parent_dir(parent)?;
                lsetxattr(dir.as_fd(), b".", self.target.opaque_xattr, b"y")?;
                self.parent = Some((join(parent), dir));
            }
            return Ok(());
        }
        if base.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(());
        }
        let hidden = &base[WHITEOUT_PREFIX.len()..];
        if matches!(hidden, b"" | b"." | b"..") {
            // `.wh..` would remove the directory itself, `.wh...` its parent: refused, as containerd
            // refuses them.
            return Err(io::Error::new(io::ErrorKind::InvalidData, "an invalid whiteout name"));
        }
        let meta = meta(entry)?;
        let dir_fd = self.parent_dir(parent)?;
        let dir = dir_fd.as_fd();
        remove(dir, hidden)?;
        if overlay {
            mknodat(dir, hidden, SFlag::S_IFCHR, Mode::empty(), 0).map_err(errno)?;
            chown(dir, hidden, meta.uid, meta.gid)?;
        }
        self.parent = Some((join(parent), dir_fd));
        Ok(())
    }

    /// The entry's directory, made (with the lower layers' owner and mode) when the layer does
    /// not list it. Taken from the cache: the caller puts it back once the entry is done.
    fn parent_dir(&mut self, parent: &[&[u8]]) -> io::Result<OwnedFd> {
        let path = join(parent);
        if let Some((cached, fd)) = self.parent.take() {
            if cached == path {
                return Ok(fd);
            }
        }
        match open_dir_in(self.target.root.as_fd(), &path) {
            Ok(fd) => Ok(fd),
            Err(Errno::ENOENT) => self.make_parents(parent),
            Err(e) => Err(errno(e)),
        }
    }

    fn make_parents(&self, parts: &[&[u8]]) -> io::Result<OwnedFd> {
        let root = self.target.root.as_fd();
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
                        let lower = self.lower_dir_meta(&prefix).unwrap_or(LowerDir {
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
    fn lower_dir_meta(&self, path: &[u8]) -> Option<LowerDir> {
        for lower in &self.target.lowers {
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

    /// Sets the directories' times in archive order (a directory listed twice keeps its last
    /// header's), on whatever is at each path now, as containerd does.
    fn finish(&mut self) -> Result<(), UnpackError> {
        self.parent = None;
        let root = self.target.root.as_fd();
        for (path, atime, mtime) in &self.dir_times {
            let entry_error = |cause: Errno| UnpackError::Entry {
                path: String::from_utf8_lossy(path).into_owned(),
                cause: errno(cause),
            };
            let parts = clean(path);
            let Some((&base, parent)) = parts.split_last() else {
                continue;
            };
            let dir = open_dir_in(root, &join(parent)).map_err(entry_error)?;
            match utimensat(dir.as_fd(), base, atime, mtime, UtimensatFlags::NoFollowSymlink) {
                // Removed by a later entry of the layer.
                Err(Errno::ENOENT) => {}
                other => other.map_err(entry_error)?,
            }
        }
        Ok(())
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

    #[test]
    fn pax_times_keep_their_fraction() {
        assert_eq!(
            pax_time("1700000000.5"),
            Some(TimeSpec::new(1_700_000_000, 500_000_000))
        );
        assert_eq!(pax_time("12"), Some(TimeSpec::new(12, 0)));
        assert_eq!(pax_time("x"), None);
        // Before the epoch: the epoch, as containerd bounds times.
        assert_eq!(pax_time("-1.5"), Some(TimeSpec::new(0, 0)));
        assert_eq!(pax_time("-0.5"), Some(TimeSpec::new(0, 0)));
    }
}
