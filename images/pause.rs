//! podctl's pod sandbox init (the equivalent of Kubernetes' `pause`).
//!
//! Runs as PID 1 of the pod's PID namespace and owns the pod's namespaces for as long as the pod
//! lives. It does nothing but sleep, reap orphaned zombies (SIGCHLD → `waitpid(-1, WNOHANG)` until
//! nothing is left), and exit 0 promptly on SIGTERM/SIGINT.
//!
//! Built by podctl's `build.rs` as a static binary (std only, no crates) and shipped as the only
//! file of the `podctl.local/pause` image, so it must not depend on anything in its rootfs.

use std::os::raw::c_int;

const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;
const SIGCHLD: c_int = 17;
const WNOHANG: c_int = 1;

extern "C" {
    // glibc's `signal` installs a persistent (BSD semantics, SA_RESTART) handler, which is all
    // pause needs; it avoids declaring the arch-specific `struct sigaction` by hand.
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    fn pause() -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn _exit(status: c_int) -> !;
}

/// SIGTERM/SIGINT: the pod is being torn down. `_exit` is async-signal-safe; there is no state
/// to flush.
extern "C" fn on_shutdown(_sig: c_int) {
    unsafe { _exit(0) }
}

/// SIGCHLD: reap every exited child. Reaping inside the handler (waitpid is async-signal-safe)
/// avoids the race where a child exits between a reap loop in `main` and the next `pause()`.
extern "C" fn on_child(_sig: c_int) {
    let mut status: c_int = 0;
    // > 0: reaped one, try again; 0: children left but none exited; -1: no children (ECHILD).
    while unsafe { waitpid(-1, &raw mut status, WNOHANG) } > 0 {}
}

fn main() {
    // As PID 1 of a PID namespace the kernel drops signals that have no handler, so explicit
    // handlers are what make SIGTERM/SIGINT work at all.
    unsafe {
        signal(SIGINT, on_shutdown);
        signal(SIGTERM, on_shutdown);
        signal(SIGCHLD, on_child);
    }
    // Children may already have exited before the handler was installed.
    on_child(SIGCHLD);
    loop {
        unsafe {
            pause();
        }
    }
}
