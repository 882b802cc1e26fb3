//! Per-connection timeouts: traffic stamps, the armed timing-wheel entry, and
//! which timeout expires next.

use super::flow::{ConnConfig, Flow};
use super::state::ConnInner;
use crate::conn::TimeoutKind;

impl<S> ConnInner<S> {
    /// This connection's own settings, made from the loop's on first use (timeouts
    /// are then tracked for it).
    pub(crate) fn cfg_mut(&mut self, flow: &Flow, now: u64) -> &mut ConnConfig {
        let cold = self.cold_mut(now);
        cold.timed = true;
        cold.cfg.get_or_insert_with(|| ConnConfig::from_flow(flow))
    }

    /// Sets (or with 0 clears) the absolute deadline tick.
    pub(crate) fn set_deadline_tick(&mut self, at: u64, flow: &Flow, now: u64) {
        if at != 0 || self.cfg().is_some() {
            self.cfg_mut(flow, now).deadline = at;
        }
    }

    #[inline]
    pub(crate) fn stamp_rx(&mut self, now: u64) {
        if let Some(c) = self.cold.as_mut() {
            c.last_rx = now;
        }
    }

    /// Notes that the kernel took bytes at `now`.
    #[inline]
    pub(crate) fn stamp_tx(&mut self, now: u64) {
        if let Some(c) = self.cold.as_mut() {
            c.last_tx = now;
        }
    }

    /// Starts the read-timeout clock over (reading resumed at `now`).
    pub(crate) fn restart_rx(&mut self, now: u64) {
        if let Some(c) = self.cold.as_mut() {
            c.last_rx = c.last_rx.max(now);
        }
    }

    /// The tick of the live timing-wheel entry (0: none).
    pub(crate) fn armed(&self) -> u64 {
        self.cold.as_ref().map_or(0, |c| c.armed)
    }

    /// Records the live timing-wheel entry (0: none).
    pub(crate) fn set_armed(&mut self, at: u64, now: u64) {
        if at == 0 {
            if let Some(c) = self.cold.as_mut() {
                c.armed = 0;
            }
        } else {
            self.cold_mut(now).armed = at;
        }
    }

    /// Is any timeout possible on this connection?
    pub(crate) fn has_timers(&self, f: &Flow) -> bool {
        match self.cfg() {
            Some(c) => c.idle | c.read | c.write | c.deadline != 0,
            None => f.timeouts(),
        }
    }

    /// The earliest tick at which a timeout of this connection expires, and which.
    pub(crate) fn next_expiry(&self, f: &Flow) -> Option<(u64, TimeoutKind)> {
        let (idle, read, write, deadline) = match self.cfg() {
            Some(c) => (c.idle, c.read, c.write, c.deadline),
            None => (f.idle, f.read, f.write, 0),
        };
        let (last_rx, last_tx) = self
            .cold
            .as_ref()
            .map_or((0, 0), |c| (c.last_rx, c.last_tx));
        let mut best: Option<(u64, TimeoutKind)> = None;
        let mut consider = |at: u64, k: TimeoutKind| {
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, k));
            }
        };
        // One tick added: the last activity may have been anywhere in its tick, and
        // a timeout must never fire early.
        if deadline != 0 {
            consider(deadline, TimeoutKind::Deadline);
        }
        if idle != 0 {
            consider(last_rx.max(last_tx) + idle + 1, TimeoutKind::Idle);
        }
        if read != 0 && self.wants_read(f.max_in) {
            consider(last_rx + read + 1, TimeoutKind::Read);
        }
        if write != 0 && !self.outbound.is_empty() {
            consider(last_tx + write + 1, TimeoutKind::Write);
        }
        best
    }
}
