//! The pod directory's agent lock: held (`flock` on [`LOCK_FILE`]) by the agent and its monitor for
//! as long as they run, taken by podctl when it spawns them and passed down, so two agents never
//! supervise one pod directory; the kernel releases it when the last holder ends.

use super::{AgentError, LOCK_FILE, MONITOR_PID_FILE, PID_FILE};

/// Names the lock's descriptor in a child that inherits it (the monitor from podctl, the agent
/// from its monitor).
const LOCK_FD_ENV: &str = "PODCTL_AGENT_LOCK_FD";

/// The pod directory's agent lock.
pub(crate) struct PodDirLock(std::os::fd::OwnedFd);

impl PodDirLock {
    /// Takes the lock, the one the parent passed down if it did, waiting up to `wait` for a holder
    /// that is being stopped to end.
    pub(crate) fn acquire(pod_dir: &std::path::Path, wait: std::time::Duration) -> Result<Self, AgentError> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let path = pod_dir.join(LOCK_FILE);
        let io = |cause| AgentError::Io {
            pod: pod_dir.display().to_string(),
            path: path.clone(),
            cause,
        };
        let inherited = std::env::var(LOCK_FD_ENV).ok().and_then(|fd| fd.parse::<i32>().ok());
        // Children of this process (plugins, hooks) must not see it: they would hold the lock on.
        std::env::remove_var(LOCK_FD_ENV);
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        let fd = match inherited.filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } >= 0) {
            // SAFETY: the parent opened it for this process and nothing else here owns it.
            Some(fd) => unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
            None => std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(io)?
                .into(),
        };
        let deadline = std::time::Instant::now() + wait;
        loop {
            // SAFETY: plain syscalls on a descriptor this function owns.
            if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
                return Ok(PodDirLock(fd));
            }
            let cause = std::io::Error::last_os_error();
            if cause.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(cause));
            }
            if std::time::Instant::now() >= deadline {
                let holder = [MONITOR_PID_FILE, PID_FILE]
                    .iter()
                    .find_map(|file| std::fs::read_to_string(pod_dir.join(file)).ok())
                    .map(|pid| format!(" (pid {})", pid.trim()))
                    .unwrap_or_default();
                return Err(AgentError::Failed {
                    pod: pod_dir.display().to_string(),
                    message: format!(
                        "another agent of this pod runs{holder} and holds {}; two would supervise the same \
                         members, so this one does not start (`podctl agent status POD` shows the running one)",
                        path.display()
                    ),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Lets `command`'s process inherit the lock: the descriptor stays open across its exec and the
    /// environment names it.
    pub(crate) fn pass_to(&self, command: &mut std::process::Command) {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = self.0.as_raw_fd();
        command.env(LOCK_FD_ENV, fd.to_string());
        // SAFETY: fcntl is async-signal-safe and touches only the child's descriptor table.
        unsafe {
            command.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}
