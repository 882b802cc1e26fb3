//! Flow-control and timeout settings: the loop-wide ones resolved from the
//! options ([`Flow`]) and a connection's own overrides ([`ConnConfig`]).

use crate::engine::timer::Clock;
use std::time::Duration;

/// A loop's flow-control and timeout settings, resolved from the options.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flow {
    pub(crate) high: usize,
    pub(crate) low: usize,
    pub(crate) max_out: usize,
    pub(crate) max_in: usize,
    /// Status bits that stop reading ([`flag`](super::flag)): end of stream,
    /// paused, closing — and unwritable, with read backpressure on.
    pub(crate) no_read: u8,
    /// The same, plus the bits that send a read off the plain fast path.
    pub(crate) no_plain_read: u8,
    /// Lingering close (`Options::linger_timeout`) in ticks (0: off).
    pub(crate) linger: u64,
    /// Give half-closed connections to the handler (`Options::allow_half_closure`).
    pub(crate) half_closure: bool,
    /// Is any engine-wide timeout on?
    timed: bool,
    /// Timeouts in ticks (0: off).
    pub(crate) idle: u64,
    pub(crate) read: u64,
    pub(crate) write: u64,
    pub(crate) clock: Clock,
}

impl Flow {
    pub(crate) fn new(o: &crate::options::Options, clock: Clock) -> Flow {
        let t = |d: Option<Duration>| d.map_or(0, |d| clock.ticks(d).max(1));
        let (idle, read, write) = (t(o.idle_timeout), t(o.read_timeout), t(o.write_timeout));
        use super::flag;
        let mut no_read = flag::READ_CLOSED | flag::PAUSED | flag::DRAINING;
        if o.read_backpressure {
            no_read |= flag::UNWRITABLE;
        }
        Flow {
            no_read,
            no_plain_read: no_read | flag::LAYERED,
            linger: if o.linger_timeout.is_zero() {
                0
            } else {
                clock.ticks(o.linger_timeout).max(1)
            },
            half_closure: o.allow_half_closure,
            timed: idle | read | write != 0,
            high: o.write_high_water,
            low: o.write_low_water.min(o.write_high_water),
            max_out: o.max_outbound_bytes,
            max_in: o.max_inbound_bytes.max(1),
            idle,
            read,
            write,
            clock,
        }
    }
    /// Is any engine-wide timeout on?
    #[inline]
    pub(crate) fn timeouts(&self) -> bool {
        self.timed
    }
}

/// Per-connection overrides of the loop's [`Flow`]; boxed and only allocated once
/// a handler overrides something, so a default connection stays small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnConfig {
    pub(super) high: usize,
    pub(super) low: usize,
    pub(super) idle: u64,
    pub(super) read: u64,
    pub(super) write: u64,
    /// Absolute deadline tick (0: none).
    pub(super) deadline: u64,
}

impl ConnConfig {
    pub(super) fn from_flow(f: &Flow) -> ConnConfig {
        ConnConfig {
            high: f.high,
            low: f.low,
            idle: f.idle,
            read: f.read,
            write: f.write,
            deadline: 0,
        }
    }
}
