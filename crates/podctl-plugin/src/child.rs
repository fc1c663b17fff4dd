//! Member processes that die with the plugin.
//!
//! A plugin that runs members as processes of their own must not leave them behind: the agent
//! SIGKILLs a plugin that hangs, and the plugin dies with the agent, and an orphaned member keeps
//! running under init and holds its ports while the next agent starts it again. [`spawn`] starts
//! a process with `PR_SET_PDEATHSIG` set to SIGKILL, so the kernel kills it when the plugin dies,
//! however it dies.
//!
//! The death signal fires when the *thread* that forked the child ends, not the process: a child
//! forked from one of tokio's worker threads would be killed when that thread exits (a
//! `block_in_place`, a runtime of the plugin's own that is shut down; blocking-pool threads end
//! after 10 s idle). So [`spawn`] forks from one thread that lives as long as the process.
//!
//! Only the member's own process is covered: what it starts in turn (a shell script's commands)
//! is reparented to init when the member is killed, unless the member ends it (`exec` in scripts)
//! or the plugin confines members in a cgroup of their own.

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type Reply = tokio::sync::oneshot::Sender<std::io::Result<tokio::process::Child>>;

struct Job {
    command: tokio::process::Command,
    runtime: tokio::runtime::Handle,
    reply: Reply,
}

/// The thread that forks every member (started on first use, never ends).
fn spawner() -> &'static Mutex<mpsc::Sender<Job>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (jobs, incoming) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("podctl-member-spawner".into())
            .spawn(move || {
                for mut job in incoming {
                    // tokio's process driver (reaping, pipes) is the runtime's that asked.
                    let _entered = job.runtime.enter();
                    let _ = job.reply.send(job.command.spawn());
                }
            })
            .expect("a thread can be started");
        Mutex::new(jobs)
    })
}

/// Starts `command` (from a thread that lives as long as the plugin) with its parent-death signal
/// set to SIGKILL, so that it dies with the plugin process. Call it on a tokio runtime; other
/// `pre_exec` hooks already on `command` run before this one's.
pub async fn spawn(mut command: tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    let plugin = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe, and the closure touches nothing else.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The plugin may have died between fork and prctl: then nothing would kill this one.
            if libc::getppid() as u32 != plugin {
                return Err(std::io::Error::other("the plugin exited while starting the member"));
            }
            Ok(())
        });
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = Job {
        command,
        runtime: tokio::runtime::Handle::current(),
        reply,
    };
    spawner()
        .lock()
        .expect("not poisoned")
        .send(job)
        .map_err(|_| std::io::Error::other("the member spawner thread is gone"))?;
    answer
        .await
        .map_err(|_| std::io::Error::other("the member spawner thread is gone"))?
}
