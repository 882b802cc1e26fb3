//! Completion callbacks of async writes, fired as their bytes reach the kernel.

use super::handle::{run_callback, WriteCallback};
use super::state::{tidy, Cold, ConnInner};
use crate::error::Error;
use std::collections::VecDeque;

/// Callbacks of async writes waiting for their bytes to reach the kernel.
///
/// Offsets count bytes since the waiter list was created: `sent` is how many have
/// been handed to the kernel, and each waiter fires once `sent` reaches its end.
pub(crate) struct WriteWaiters {
    sent: u64,
    waiters: VecDeque<(u64, WriteCallback)>,
}

impl<S> ConnInner<S> {
    /// Registers `cb` to fire once everything queued now has been sent.
    pub(crate) fn add_waiter(&mut self, cb: WriteCallback, now: u64) {
        if self.outbound.is_empty() {
            run_callback(cb, Ok(()));
            return;
        }
        let queued = self.outbound.len() as u64;
        let w = self.cold_mut(now).waiters.get_or_insert_with(|| {
            Box::new(WriteWaiters {
                sent: 0,
                waiters: VecDeque::new(),
            })
        });
        // The callback's bytes are the last ones queued: it fires once everything
        // queued now has been sent.
        let end = w.sent + queued;
        w.waiters.push_back((end, cb));
    }

    /// Fails every pending callback (the connection is closing).
    pub(crate) fn fail_waiters(&mut self) {
        if let Some(w) = self.cold.as_mut().and_then(|c| c.waiters.take()) {
            for (_, cb) in w.waiters {
                run_callback(cb, Err(Error::ConnectionClosed));
            }
        }
    }
}

/// Records that `n` more bytes of a connection's queue reached the kernel; fires
/// the callbacks whose bytes are all out.
pub(super) fn note_sent(cold: &mut Option<Box<Cold>>, n: usize) {
    let Some(w) = cold.as_mut().and_then(|c| c.waiters.as_mut()) else {
        return;
    };
    w.sent += n as u64;
    while w.waiters.front().is_some_and(|(end, _)| *end <= w.sent) {
        let (_, cb) = w.waiters.pop_front().expect("checked non-empty");
        run_callback(cb, Ok(()));
    }
    if w.waiters.is_empty() {
        if let Some(c) = cold.as_mut() {
            c.waiters = None;
        }
        tidy(cold);
    }
}
