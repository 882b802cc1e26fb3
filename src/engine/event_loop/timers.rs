//! Timers: the next wake-up, connection timeouts on the wheel, the ticker.

use super::*;

impl<H: EventHandler, D: Driver> EventLoop<H, D> {
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let listeners = self.listeners.iter().filter_map(|l| l.paused_until);
        // The wheel counts only while it holds entries: no timer, no wake-up.
        let wheel = self
            .wheel
            .next_wake()
            .map(|t| self.io.flow.clock.instant(t));
        listeners
            .chain(self.next_tick)
            .chain(wheel)
            .chain(self.drain_until)
            .chain(self.dials.next_deadline())
            .min()
    }

    /// Runs what is due by the time the last wait returned: a round reads the
    /// clock once, so timers may run up to one round late, never early.
    pub(super) fn run_timers(&mut self) {
        // `io.now` is already the tick of `woke_at` (set when the wait returned).
        let now = self.woke_at;
        self.expire_dials(now);
        if !self.wheel.is_empty() {
            self.fire_timers();
        }
        for l in &mut self.listeners {
            l.maybe_resume(now, &mut self.driver);
        }
        if self.next_tick.is_some_and(|t| t <= now) {
            let info = LoopInfo {
                index: self.io.shared.index,
                engine: &self.engine,
                connections: self.io.shared.connections.load(Ordering::Relaxed),
            };
            let handler = &mut self.handler;
            let (delay, action) = match catch_unwind(AssertUnwindSafe(|| handler.on_tick(&info))) {
                Ok(r) => r,
                Err(p) => {
                    tracing::error!(panic = panic_message(&*p), "on_tick panicked");
                    (Duration::from_secs(1), Action::None)
                }
            };
            if action == Action::Shutdown {
                self.engine.signal_stop();
            }
            self.next_tick = Some(later(now, delay));
        }
    }

    /// Handles the wheel entries due by now: each live one either expires its
    /// connection or is re-armed for the connection's new (later) deadline.
    pub(super) fn fire_timers(&mut self) {
        let mut due = std::mem::take(&mut self.due);
        self.wheel.advance(self.io.now, &mut due);
        for e in due.drain(..) {
            let (index, gen) = (e.key as u32, (e.key >> 32) as u32);
            if !self.is_live(index, gen) {
                continue; // closed since: a lazily deleted entry
            }
            let Some(c) = self.slots[index as usize].conn.as_mut() else {
                continue;
            };
            if c.armed() != e.at {
                continue; // superseded by an earlier entry
            }
            c.set_armed(0, self.io.now);
            match c.next_expiry(&self.io.flow) {
                Some((at, Expiry::Timer)) if at <= self.io.now => {
                    c.set_timer_tick(0, self.io.now);
                    c.tidy_timing(&self.io.flow);
                    self.callback(index, gen, |h, c| h.on_timer(c));
                }
                Some((at, Expiry::Timeout(kind))) if at <= self.io.now => {
                    let reason = match c.draining {
                        // A lingering close ran out of time: it closes for the
                        // reason it was asked to.
                        Some(d) if c.is(flag::LINGERING) => c.drain_reason(d),
                        _ => {
                            tracing::debug!(%kind, "connection timed out");
                            CloseReason::Timeout(kind)
                        }
                    };
                    self.close(index, reason);
                }
                Some((at, _)) => {
                    c.set_armed(at, self.io.now);
                    self.wheel.insert(e.key, at);
                }
                None => {}
            }
        }
        self.due = due;
    }
}
