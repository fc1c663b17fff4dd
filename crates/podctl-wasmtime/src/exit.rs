//! How a member is doing and how it ended: [`MemberStatus`], [`ExitInfo`] and [`ExitReason`]
//! (with the Kubernetes reason each maps to).

use std::time::SystemTime;

/// Current state of a member.
#[derive(Clone, Debug, PartialEq)]
pub enum MemberStatus {
    /// `ready`: HttpProxy — the listener is bound and accepting; other kinds — always true.
    Running {
        since: SystemTime,
        ready: bool,
    },
    Exited(ExitInfo),
}

/// How a member ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ExitInfo {
    /// The exit code. 0: completed; the guest's code for `proc_exit`/`wasi:cli/exit`; 1: a command
    /// whose `run` returned an error or a host-side failure; 134: trap; 137: memory limit exceeded,
    /// or interrupted by stop/kill; 0 with `Stopped`: an HTTP proxy that drained within the grace.
    pub code: i32,
    pub reason: ExitReason,
    pub message: String,
    pub at: SystemTime,
}

/// Why a member ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// Exit code 0.
    Completed,
    /// Non-zero exit code (or a host-side failure such as a failed instantiation).
    Error,
    /// A WebAssembly trap (unreachable, out-of-bounds access, stack overflow, ...).
    Trap,
    /// A memory or table growth was refused by `memory_limit` (kubectl shows OOMKilled).
    MemoryLimitExceeded,
    /// Ended by `stop` or `kill`.
    Stopped,
}

impl ExitReason {
    /// The Kubernetes `reason` string of a terminated container in this state.
    pub fn k8s_reason(&self) -> &'static str {
        match self {
            ExitReason::Completed => "Completed",
            ExitReason::Error | ExitReason::Trap | ExitReason::Stopped => "Error",
            ExitReason::MemoryLimitExceeded => "OOMKilled",
        }
    }
}

pub(crate) fn exit_info(code: i32, reason: ExitReason, message: String) -> ExitInfo {
    ExitInfo {
        code,
        reason,
        message,
        at: SystemTime::now(),
    }
}
