//! Where a layer is unpacked: the writable directory of a freshly prepared snapshot and, for
//! overlay, the lower layers under it, opened from the snapshot's mounts.

use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::containerd::RootfsMount;

/// Where a layer goes: the snapshot's writable directory and, for overlay, the layers under it.
pub struct Target {
    pub(super) root: OwnedFd,
    root_path: PathBuf,
    /// The lower layers, uppermost first (for the metadata of parents a layer does not list).
    pub(super) lowers: Vec<OwnedFd>,
    /// Whiteouts become overlayfs's (a 0/0 character device, the opaque xattr); without lower
    /// layers (the first layer, a bind mount) they only remove what this layer made.
    pub(super) overlay: bool,
    pub(super) opaque_xattr: &'static CStr,
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
