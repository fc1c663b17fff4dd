//! The host-wide lock that makes two pulls of one image (two podctl processes, or two pods
//! created at once) run one after the other: a flock on a file named after the image.

use std::path::PathBuf;

use super::super::archive::sha256_digest;
use super::super::ImageError;

/// An exclusive host-wide lock for one image name; its file goes away with it, so no lock file
/// outlives the pulls that used it.
pub(super) struct PullLock {
    path: PathBuf,
    _file: nix::fcntl::Flock<std::fs::File>,
}

impl Drop for PullLock {
    fn drop(&mut self) {
        // Removed while still held: a waiter that then gets the lock sees its file is gone and
        // takes a fresh one (below), so two holders can never coexist.
        let _ = std::fs::remove_file(&self.path);
    }
}

pub(super) async fn lock(dir: &std::path::Path, name: &str) -> Result<PullLock, ImageError> {
    use std::os::unix::fs::MetadataExt;
    let dir = dir.join("locks");
    let path = dir.join(format!("pull-{}", &sha256_digest(name.as_bytes())[7..31]));
    let io = |path: &std::path::Path, e: std::io::Error| ImageError::Invalid {
        image: name.to_string(),
        message: format!("cannot take the pull lock {}: {e}", path.display()),
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let locked =
            tokio::task::spawn_blocking(move || nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive))
                .await
                .map_err(|e| io(&path, std::io::Error::other(e)))?
                .map_err(|(_, errno)| io(&path, std::io::Error::from(errno)))?;
        let held = locked.metadata().map_err(|e| io(&path, e))?.ino();
        if std::fs::metadata(&path).is_ok_and(|m| m.ino() == held) {
            return Ok(PullLock { path, _file: locked });
        }
    }
}
