//! Pinned network namespaces under `/run/netns`, created the way `ip netns add` and containerd's
//! CRI plugin do it: an empty file bind-mounted over with a fresh namespace, so the namespace
//! outlives every process in it and `ip -n <name>` / runtimes can open it by path.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::SandboxError;

/// Where `ip netns` (and containerd) keep pinned network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A pinned network namespace: `path` is a bind mount of the namespace, usable as the netns path
/// of an OCI spec or as `CNI_NETNS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetNs {
    pub name: String,
    pub path: PathBuf,
}

/// Creates a new network namespace pinned at `/run/netns/<name>`; fails if that name is taken.
pub fn create_netns(name: &str) -> Result<NetNs, SandboxError> {
    validate_name(name)?;
    let dir = Path::new(NETNS_RUN_DIR);
    let path = dir.join(name);
    let create_err = |step, source| SandboxError::NetnsCreate {
        path: path.clone(),
        step,
        source,
    };

    fs::create_dir_all(dir).map_err(|e| create_err("creating /run/netns", e))?;
    // create_new (O_EXCL) makes "already exists" atomic, so two pods can't race for one name.
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(SandboxError::NetnsExists {
                name: name.to_string(),
                path,
            })
        }
        Err(e) => return Err(create_err("creating the mount point file", e)),
    }

    // unshare() switches the namespace of the calling *thread*. Doing it on a throwaway thread
    // keeps the caller's (tokio worker) thread in the host netns; the thread exits right after,
    // and the bind mount is what keeps the new namespace alive.
    let target = path.clone();
    let pinned = std::thread::Builder::new()
        .name("podctl-netns".into())
        .spawn(move || -> Result<(), (&'static str, Errno)> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| ("unshare(CLONE_NEWNET)", e))?;
            let tid = nix::unistd::gettid();
            let src = format!("/proc/self/task/{tid}/ns/net");
            mount(
                Some(src.as_str()),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| ("bind-mounting the new namespace", e))
        })
        .map_err(|e| create_err("spawning the namespace thread", e))?
        .join()
        .unwrap_or(Err(("the namespace thread", Errno::EIO)));

    if let Err((step, errno)) = pinned {
        // Don't leave an unmounted placeholder behind: it would make the name look taken.
        let _ = fs::remove_file(&path);
        return Err(create_err(step, io::Error::from(errno)));
    }
    Ok(NetNs {
        name: name.to_string(),
        path,
    })
}

/// Whether `path` is a pinned network namespace (an nsfs mount): a create killed between making
/// the file and mounting the namespace over it leaves a plain file, which CNI must not enter.
pub fn is_namespace(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Unpins and deletes a namespace created by [`create_netns`]. Already gone is success, so
/// teardown can be retried after a crash at any point.
pub fn remove_netns(path: &Path) -> Result<(), SandboxError> {
    // MNT_DETACH: a process (or a leaked fd) still inside the namespace must not block teardown;
    // the kernel frees the namespace once its last user is gone.
    match umount2(path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (half-created or already unmounted); ENOENT: already gone.
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => {
            return Err(SandboxError::NetnsRemove {
                path: path.to_path_buf(),
                step: "unmounting",
                source: io::Error::from(e),
            })
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SandboxError::NetnsRemove {
            path: path.to_path_buf(),
            step: "deleting the mount point file",
            source: e,
        }),
    }
}

fn validate_name(name: &str) -> Result<(), SandboxError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == "." || name == ".." {
        "it is a relative directory name"
    } else if name.contains('/') {
        "it contains '/'"
    } else if name.contains('\0') {
        "it contains a NUL byte"
    } else if name.len() > 255 {
        "it is longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(SandboxError::InvalidNetnsName {
        name: name.to_string(),
        reason,
    })
}
