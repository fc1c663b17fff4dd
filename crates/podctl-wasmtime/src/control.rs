//! A started member as its callers hold it: [`RunningMember`] (status, usage, `wait`, `stop`,
//! `kill`) over the state its task shares with it ([`Shared`]: the stop/kill request, the
//! interrupt flag every epoch callback reads, readiness and the exit).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::exit::{exit_info, ExitInfo, ExitReason, MemberStatus};
use crate::program::ProgramKind;
use crate::usage::Usage;

/// A started member. Cheap to clone; all clones see the same member.
#[derive(Clone)]
pub struct RunningMember {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for RunningMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningMember")
            .field("name", &self.shared.name)
            .field("kind", &self.shared.kind)
            .field("status", &self.status())
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Control {
    Run,
    Stop(Duration),
    Kill,
}

/// Waits until the member's control value satisfies `pred` and returns it (Kill if the sender is
/// gone). Returns a copy so that no watch guard is held across awaits.
pub(crate) async fn requested(rx: &mut watch::Receiver<Control>, pred: impl FnMut(&Control) -> bool) -> Control {
    match rx.wait_for(pred).await {
        Ok(c) => *c,
        Err(_) => Control::Kill,
    }
}

pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) usage: Arc<Usage>,
    pub(crate) kind: ProgramKind,
    pub(crate) since: SystemTime,
    pub(crate) ready: AtomicBool,
    /// Read by every epoch callback of this member's stores: set → the next tick traps.
    pub(crate) interrupt: Arc<AtomicBool>,
    pub(crate) control: watch::Sender<Control>,
    pub(crate) exit: watch::Sender<Option<ExitInfo>>,
}

impl RunningMember {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn kind(&self) -> ProgramKind {
        self.shared.kind
    }

    /// When it started (also once it has exited).
    pub fn started_at(&self) -> SystemTime {
        self.shared.since
    }

    /// What it uses now: memory bytes and CPU nanoseconds.
    pub fn usage(&self) -> (u64, u64) {
        (
            self.shared.usage.memory_bytes.load(Ordering::Relaxed),
            self.shared.usage.cpu_nanos.load(Ordering::Relaxed),
        )
    }

    pub fn status(&self) -> MemberStatus {
        if let Some(info) = self.shared.exit.borrow().clone() {
            return MemberStatus::Exited(info);
        }
        MemberStatus::Running {
            since: self.shared.since,
            ready: self.shared.ready.load(Ordering::SeqCst),
        }
    }

    /// Resolves when the member has ended (immediately if it already has).
    pub async fn wait(&self) -> ExitInfo {
        let mut rx = self.shared.exit.subscribe();
        let info = match rx.wait_for(Option::is_some).await {
            Ok(info) => info.clone(),
            // Unreachable: `self` keeps the sender alive.
            Err(_) => None,
        };
        info.unwrap_or_else(|| exit_info(1, ExitReason::Error, "member state lost".into()))
    }

    /// Graceful stop. HttpProxy: stop accepting, let in-flight requests finish for up to `grace`,
    /// then interrupt what is left. CoreModule/Command: WASI has no signals, so there is nothing
    /// to deliver: the guest is interrupted immediately (at its next epoch tick, ≤ 10 ms, or at
    /// once if it is blocked in a WASI call) and `grace` is not used.
    pub fn stop(&self, grace: Duration) {
        if self.shared.kind != ProgramKind::HttpProxy {
            self.shared.interrupt.store(true, Ordering::SeqCst);
        }
        self.shared.control.send_if_modified(|c| match c {
            Control::Run => {
                *c = Control::Stop(grace);
                true
            }
            _ => false,
        });
    }

    /// Interrupt now: running wasm traps at the next epoch tick; guests blocked in WASI calls are
    /// dropped.
    pub fn kill(&self) {
        self.shared.interrupt.store(true, Ordering::SeqCst);
        self.shared.control.send_replace(Control::Kill);
    }
}
