//! The loop's coarse clock.

use std::time::{Duration, Instant};

/// How far "never" is: deadlines past it (`Duration::MAX` timeouts) saturate here
/// instead of overflowing `Instant` arithmetic. About a century.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + d`, saturated at a century from now.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(FAR)).unwrap_or(now)
}

/// A loop's coarse clock: tick numbers of the timing wheel. Tick 0 is never a
/// deadline (it means "none"), so ticks count from 1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
    res_ns: u64,
}

impl Clock {
    pub(crate) fn new(origin: Instant, resolution: Duration) -> Clock {
        Clock {
            origin,
            res_ns: (resolution.as_nanos() as u64).max(1),
        }
    }
    /// The tick `t` falls in.
    pub(crate) fn tick(&self, t: Instant) -> u64 {
        // 64-bit nanoseconds cover 584 years of uptime, and spare the 128-bit
        // division `as_nanos` would need.
        let d = t.saturating_duration_since(self.origin);
        let ns = d
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(d.subsec_nanos()));
        ns / self.res_ns + 1
    }
    /// Whole ticks covering `d` (rounded up; 0 only for a zero duration).
    pub(crate) fn ticks(&self, d: Duration) -> u64 {
        d.as_nanos()
            .div_ceil(u128::from(self.res_ns))
            .min(u128::from(u32::MAX)) as u64
    }
    /// When tick `t` starts.
    pub(crate) fn instant(&self, t: u64) -> Instant {
        self.origin + Duration::from_nanos(t.saturating_sub(1).saturating_mul(self.res_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_never_fires_early() {
        let origin = Instant::now();
        let c = Clock::new(origin, Duration::from_millis(10));
        assert_eq!(c.tick(origin), 1);
        assert_eq!(c.tick(origin + Duration::from_millis(25)), 3);
        assert_eq!(c.ticks(Duration::from_millis(1)), 1);
        assert_eq!(c.ticks(Duration::from_millis(20)), 2);
        assert!(c.instant(3) <= origin + Duration::from_millis(25));
    }
}
