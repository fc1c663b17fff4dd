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
//!
//! Here: the stream (compression, hashing) and each entry by its kind, whiteouts among them;
//! `target` opens where the layer goes, `dirfd` holds the paths and calls inside it, `metadata`
//! reads and sets an entry's owner, mode and times, `parents` makes the directories a layer
//! does not list.

mod dirfd;
mod metadata;
mod parents;
mod target;

use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, mkdirat, mknodat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{linkat, symlinkat};
use sha2::{Digest, Sha256};

use dirfd::{chown, clean, errno, is_dir, join, lsetxattr, open_dir_in, remove};
use metadata::{meta, set_meta};
use parents::make_parents;
pub use target::Target;

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

struct Unpacker<'a> {
    target: &'a Target,
    /// The directory of the last entry, kept open (a layer lists a directory's files together).
    parent: Option<(Vec<u8>, OwnedFd)>,
    /// Directories' times, set once nothing more is written into them.
    dir_times: Vec<(Vec<u8>, TimeSpec, TimeSpec)>,
    buffer: Vec<u8>,
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
            Err(Errno::ENOENT) => make_parents(self.target, parent),
            Err(e) => Err(errno(e)),
        }
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
