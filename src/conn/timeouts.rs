//! Per-connection timeouts: traffic stamps, the armed timing-wheel entry, and
//! which timeout expires next.

use super::flow::{ConnConfig, Flow};
use super::state::ConnInner;
use crate::conn::TimeoutKind;

/// What expires on a connection at its next wheel tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// A timeout: the connection closes.
    Timeout(TimeoutKind),
    /// The handler's timer: `on_timer` runs.
    Timer,
}

impl<S> ConnInner<S> {
    /// This connection's own settings, made from the loop's on first use (timeouts
    /// are then tracked for it).
    pub(crate) fn cfg_mut(&mut self, flow: &Flow, now: u64) -> &mut ConnConfig {
        let cold = self.cold_mut(now);
        cold.timed = true;
        cold.cfg
            .get_or_insert_with(|| Box::new(ConnConfig::from_flow(flow)))
    }

    /// Gives back what per-connection timing no longer needs: settings that are
    /// the loop's again (a deadline or timer cleared, timeouts set back to the
    /// defaults) and, with them, the cold part if nothing else is in it.
    pub(crate) fn tidy_timing(&mut self, flow: &Flow) {
        let Some(cold) = self.cold.as_mut() else {
            return;
        };
        if cold
            .cfg
            .as_deref()
            .is_some_and(|c| *c == ConnConfig::from_flow(flow))
        {
            cold.cfg = None;
        }
        if cold.cfg.is_none() && cold.timer == 0 && !flow.timeouts() && cold.armed == 0 {
            cold.timed = false;
        }
        super::state::tidy(&mut self.cold);
    }

    /// Sets (or with 0 clears) the absolute deadline tick.
    pub(crate) fn set_deadline_tick(&mut self, at: u64, flow: &Flow, now: u64) {
        if at != 0 || self.cfg().is_some() {
            self.cfg_mut(flow, now).deadline = at;
        }
        if at == 0 {
            self.tidy_timing(flow);
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

    /// Sets (or with 0 clears) the handler's timer tick.
    pub(crate) fn set_timer_tick(&mut self, at: u64, now: u64) {
        if at != 0 || self.cold.as_ref().is_some_and(|c| c.timer != 0) {
            let cold = self.cold_mut(now);
            cold.timer = at;
            if at != 0 {
                cold.timed = true;
            }
        }
    }

    /// The tick by which the connection's transport layers must be past their
    /// preamble and handshake (0: none).
    fn setup_deadline(&self) -> u64 {
        self.cold
            .as_ref()
            .and_then(|c| c.layers.as_deref())
            .map_or(0, |l| l.deadline)
    }

    /// Is any timeout or timer possible on this connection?
    pub(crate) fn has_timers(&self, f: &Flow) -> bool {
        let timer = self
            .cold
            .as_ref()
            .is_some_and(|c| c.timer != 0 || c.layers.as_ref().is_some_and(|l| l.deadline != 0));
        timer
            || match self.cfg() {
                Some(c) => c.idle | c.read | c.write | c.deadline != 0,
                None => f.timeouts(),
            }
    }

    /// The earliest tick at which a timeout or the timer of this connection
    /// expires, and which.
    pub(crate) fn next_expiry(&self, f: &Flow) -> Option<(u64, Expiry)> {
        let (idle, read, write, deadline) = match self.cfg() {
            Some(c) => (c.idle, c.read, c.write, c.deadline),
            None => (f.idle, f.read, f.write, 0),
        };
        let (last_rx, last_tx, timer) = self
            .cold
            .as_ref()
            .map_or((0, 0, 0), |c| (c.last_rx, c.last_tx, c.timer));
        let mut best: Option<(u64, Expiry)> = None;
        let mut consider = |at: u64, k: Expiry| {
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, k));
            }
        };
        // One tick added: the last activity may have been anywhere in its tick, and
        // a timeout must never fire early.
        if deadline != 0 {
            consider(deadline, Expiry::Timeout(TimeoutKind::Deadline));
        }
        if timer != 0 {
            consider(timer, Expiry::Timer);
        }
        let setup = self.setup_deadline();
        if setup != 0 {
            consider(setup, Expiry::Timeout(TimeoutKind::Handshake));
        }
        if self.write_shut() {
            // Lingering after the reply was sent ends by its deadline or the peer's
            // end of stream; the traffic timeouts no longer apply.
            return best;
        }
        if idle != 0 {
            consider(
                last_rx.max(last_tx) + idle + 1,
                Expiry::Timeout(TimeoutKind::Idle),
            );
        }
        if read != 0 && self.wants_read(f) {
            consider(last_rx + read + 1, Expiry::Timeout(TimeoutKind::Read));
        }
        if write != 0 && !self.outbound.is_empty() {
            consider(last_tx + write + 1, Expiry::Timeout(TimeoutKind::Write));
        }
        best
    }
}
