//! The image's accounts for USER names: its /etc/passwd and /etc/group, read from the layer
//! directories of a member's snapshot without following any symlink the image has.

use std::path::PathBuf;

use crate::containerd::RootfsMount;
use crate::spec;

/// The image's /etc/passwd and /etc/group, read from the layer directories of its snapshot (an
/// overlay's upper, then its lowers, topmost first; a bind snapshot's one), for USER names.
pub(crate) fn image_accounts(rootfs: &[RootfsMount]) -> spec::ImageAccounts {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for mount in rootfs {
        match mount.r#type.as_str() {
            "bind" | "rbind" => dirs.push(PathBuf::from(&mount.source)),
            "overlay" => {
                let option = |key: &str| mount.options.iter().find_map(|o| o.strip_prefix(key));
                dirs.extend(option("upperdir=").map(PathBuf::from));
                dirs.extend(
                    option("lowerdir=")
                        .into_iter()
                        .flat_map(|l| l.split(':'))
                        .map(PathBuf::from),
                );
            }
            _ => {}
        }
    }
    // The topmost layer that has the file (or deletes it: an overlay whiteout) decides.
    let read = |file: &str| {
        dirs.iter()
            .find_map(|dir| layer_file(dir, file))
            .flatten()
            .unwrap_or_default()
    };
    spec::ImageAccounts {
        passwd: read("passwd"),
        group: read("group"),
    }
}

/// The image's `etc/NAME` in one layer directory, opened without following any symlink (an image's
/// `etc/passwd -> /etc/shadow` must not read the host's) and at most 1 MiB of it: `None` when the
/// layer has none, `Some(None)` when it deletes it or has something other than a regular file.
fn layer_file(layer: &std::path::Path, name: &str) -> Option<Option<String>> {
    use nix::fcntl::{openat, OFlag, AT_FDCWD};
    use nix::sys::stat::{fstat, Mode, SFlag};
    use std::io::Read;
    use std::os::fd::{AsFd, OwnedFd};
    let open = |dir: Option<&OwnedFd>, path: &str, flags: OFlag| -> Option<OwnedFd> {
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match dir {
            Some(dir) => openat(dir.as_fd(), path, flags, Mode::empty()).ok(),
            None => openat(AT_FDCWD, path, flags, Mode::empty()).ok(),
        }
    };
    let root = open(None, &layer.to_string_lossy(), OFlag::O_DIRECTORY | OFlag::O_RDONLY)?;
    let etc = open(Some(&root), "etc", OFlag::O_DIRECTORY | OFlag::O_RDONLY)?;
    let file = match open(Some(&etc), name, OFlag::O_RDONLY | OFlag::O_NONBLOCK) {
        Some(file) => file,
        // A symlink (ELOOP under O_NOFOLLOW) or anything unreadable stands for no file.
        None => {
            return std::fs::symlink_metadata(layer.join("etc").join(name))
                .ok()
                .map(|_| None)
        }
    };
    let kind = fstat(file.as_fd())
        .ok()
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT);
    if kind != Some(SFlag::S_IFREG) {
        return Some(None);
    }
    let mut text = String::new();
    std::fs::File::from(file).take(1 << 20).read_to_string(&mut text).ok()?;
    Some(Some(text))
}
