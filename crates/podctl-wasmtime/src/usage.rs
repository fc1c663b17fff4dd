//! What a member uses, counted while it runs: live linear memory (added by the store limiter)
//! and the CPU time of its futures' polls ([`timed`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a member uses, counted as it runs: the bytes of its live linear memories and the CPU
/// time its futures took (thread CPU time per poll, so waiting costs nothing).
#[derive(Debug, Default)]
pub struct Usage {
    pub memory_bytes: std::sync::atomic::AtomicU64,
    pub cpu_nanos: std::sync::atomic::AtomicU64,
}

/// The calling thread's CPU time so far.
fn thread_cpu_nanos() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// A future whose polls count their CPU time into `usage`.
pub(crate) struct Timed<F> {
    inner: Pin<Box<F>>,
    usage: Arc<Usage>,
}

pub(crate) fn timed<F: Future>(usage: Arc<Usage>, future: F) -> Timed<F> {
    Timed {
        inner: Box::pin(future),
        usage,
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let began = thread_cpu_nanos();
        let polled = self.inner.as_mut().poll(cx);
        let spent = thread_cpu_nanos().saturating_sub(began);
        self.usage.cpu_nanos.fetch_add(spent, Ordering::Relaxed);
        polled
    }
}
