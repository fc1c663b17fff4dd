//! An entry's owner, mode, times and xattrs: read from its tar header and PAX records (as Go's
//! archive/tar reads them for containerd), and set on what the entry made.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;

use nix::fcntl::AtFlags;
use nix::sys::stat::{fstatat, utimensat, FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::dirfd::{chown, errno, file_type, lsetxattr};

/// What an entry's header and PAX records say about its owner and time.
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: TimeSpec,
    /// The later of the PAX atime and the mtime, as containerd sets it.
    pub(super) atime: TimeSpec,
    pub(super) xattrs: Vec<(CString, Vec<u8>)>,
}

pub(super) fn meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
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

/// Owner first (chown clears setuid bits and file capabilities), then xattrs, then mode.
pub(super) fn set_meta(dir: BorrowedFd<'_>, base: &[u8], kind: tar::EntryType, meta: &Meta) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
