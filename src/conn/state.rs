//! A connection's loop-private state: the slab entry ([`ConnInner`]), its status
//! bits, the boxed cold part, and the bookkeeping the loop does after every
//! callback (gauges, interest, the quiet check).

use super::flow::{ConnConfig, Flow};
use super::waiters::WriteWaiters;
use crate::buffer::{BufferPool, LinkedBuffer, RingBuffer};
use crate::conn::CloseReason;
use crate::driver::Interest;
use crate::engine::stats::Tally;
use crate::transport::Layers;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Why a connection that is draining its outbound queue will close once drained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Drain {
    Local,
    PeerClosed,
    Handle,
    EngineStopped,
    /// [`Conn::close_with`]: the reason is in the cold state.
    Custom,
}

impl Drain {
    pub(crate) fn reason(self) -> CloseReason {
        match self {
            Drain::Local => CloseReason::Local,
            Drain::PeerClosed => CloseReason::PeerClosed,
            Drain::Handle => CloseReason::Handle,
            Drain::EngineStopped => CloseReason::EngineStopped,
            // The reason itself waits in the connection's cold state.
            Drain::Custom => CloseReason::Local,
        }
    }
}

/// A connection's status bits, kept in one byte so the hot path tests them at once.
pub(crate) mod flag {
    /// The peer shut down its sending side.
    pub(crate) const READ_CLOSED: u8 = 1;
    /// `on_close` has run: writes are discarded.
    pub(crate) const CLOSED: u8 = 1 << 1;
    /// The handler paused reading.
    pub(crate) const PAUSED: u8 = 1 << 2;
    /// Above the high water mark (and not yet back to the low one).
    pub(crate) const UNWRITABLE: u8 = 1 << 3;
    /// Async writes were queued this task batch; the loop flushes them after it.
    pub(crate) const FLUSH_PENDING: u8 = 1 << 4;
    /// `draining` is set.
    pub(crate) const DRAINING: u8 = 1 << 5;
    /// Bytes pass through transport layers (kept in the cold state).
    pub(crate) const LAYERED: u8 = 1 << 6;
    /// Closed on this side while the peer may still be sending: what arrives is
    /// read and dropped; once the queue is sent the sending side is shut down and
    /// the connection waits for the peer's end of stream, at most the linger time
    /// (see `Options::linger_timeout`).
    pub(crate) const LINGERING: u8 = 1 << 7;
}

/// The loop-private part of a connection, stored in the loop's slab.
///
/// Kept small on purpose: an idle connection is this struct and nothing else (no
/// buffer is held while both queues are empty; per-connection overrides live in a
/// box that exists only once a handler sets one).
pub(crate) struct ConnInner<S> {
    pub(crate) fd: OwnedFd,
    /// The slab slot's generation: part of every token and handle of this connection.
    pub(crate) gen: u32,
    pub(crate) inbound: RingBuffer,
    pub(crate) outbound: LinkedBuffer,
    /// The rarely used part (see [`Cold`]); `None` for a plain idle connection.
    pub(crate) cold: Option<Box<Cold>>,
    /// Queue lengths last added to the loop's gauges (saturating at `u32::MAX`).
    pub(crate) acct_out: u32,
    pub(crate) acct_in: u32,
    /// Current registration with the poller.
    pub(crate) interest: Interest,
    /// Set once the connection is closing (see [`ConnInner::drain`]): it no longer
    /// reads and closes when drained.
    pub(crate) draining: Option<Drain>,
    /// Status bits ([`flag`]); all clear for a connection that simply reads.
    pub(crate) flags: u8,
    pub(crate) state: S,
}

/// The rarely used part of a connection, boxed so that a plain idle connection
/// stays a few words (and the rarer parts of it boxed again, so that a connection
/// with only a timer or timeout stamps holds about 80 bytes more): it exists while async-write callbacks wait, after a write
/// failed, once the handler overrides a per-connection setting, and — for the
/// traffic stamps the timeouts need — whenever timeouts are on.
pub(crate) struct Cold {
    pub(super) waiters: Option<Box<WriteWaiters>>,
    /// An error met while writing inside a callback; the loop closes with it.
    pub(super) failed: Option<Box<CloseReason>>,
    pub(super) cfg: Option<Box<ConnConfig>>,
    /// The reason given to [`Conn::close_with`], reported once the queue drains.
    pub(super) close_reason: Option<Box<CloseReason>>,
    /// Tick of the last byte received / of the last byte the kernel took (or of
    /// the moment the outbound queue became non-empty).
    pub(super) last_rx: u64,
    pub(super) last_tx: u64,
    /// The tick of this connection's live timing-wheel entry (0: none).
    pub(super) armed: u64,
    /// The tick of the handler's timer ([`Conn::set_timer`](crate::Conn::set_timer); 0: none).
    pub(super) timer: u64,
    /// Timeouts are on for this connection: keep the box (and its stamps).
    pub(super) timed: bool,
    /// The connection's transport layers (see `crate::transport`).
    pub(crate) layers: Option<Box<Layers>>,
    /// Lingering: the sending side has been shut down.
    pub(super) write_shut: bool,
}

impl Cold {
    pub(super) fn new(now: u64, timed: bool) -> Box<Cold> {
        Box::new(Cold {
            waiters: None,
            failed: None,
            cfg: None,
            close_reason: None,
            last_rx: now,
            last_tx: now,
            armed: 0,
            timer: 0,
            timed,
            layers: None,
            write_shut: false,
        })
    }
}

/// Drops a cold part once nothing in it is needed any more.
pub(super) fn tidy(cold: &mut Option<Box<Cold>>) {
    if cold.as_ref().is_some_and(|c| {
        !c.timed
            && c.waiters.is_none()
            && c.failed.is_none()
            && c.cfg.is_none()
            && c.close_reason.is_none()
            && c.layers.is_none()
    }) {
        *cold = None;
    }
}

/// Saturates a queue length into a gauge slot.
fn gauge(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}

impl<S: Default> ConnInner<S> {
    /// A new connection; `timed` when the engine's timeouts are on (its traffic
    /// stamps are then kept from the start).
    pub(crate) fn new(fd: OwnedFd, now: u64, timed: bool) -> ConnInner<S> {
        ConnInner {
            fd,
            gen: 0,
            inbound: RingBuffer::new(),
            outbound: LinkedBuffer::new(),
            cold: timed.then(|| Cold::new(now, true)),
            acct_out: 0,
            acct_in: 0,
            interest: Interest::READ,
            draining: None,
            flags: 0,
            state: S::default(),
        }
    }
}

impl<S> ConnInner<S> {
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The pending socket error (`SO_ERROR`), if any.
    pub(crate) fn fd_error(&self) -> Option<io::Error> {
        socket2::SockRef::from(&self.fd).take_error().ok().flatten()
    }

    /// Is status bit `f` set?
    #[inline]
    pub(crate) fn is(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// Sets or clears status bit `f`.
    #[inline]
    pub(crate) fn set(&mut self, f: u8, on: bool) {
        if on {
            self.flags |= f;
        } else {
            self.flags &= !f;
        }
    }

    /// Starts closing for reason `d` (a connection already closing keeps its first
    /// reason): no more reading, and the close follows once the queue is sent.
    pub(crate) fn drain(&mut self, d: Drain) {
        if self.draining.is_none() {
            self.draining = Some(d);
            self.flags |= flag::DRAINING;
        }
    }

    /// Should the loop read this connection now (for its handler)? Not after end
    /// of stream, while paused or closing, at the inbound cap, nor — with read
    /// backpressure — while unwritable.
    #[inline]
    pub(crate) fn wants_read(&self, f: &Flow) -> bool {
        self.flags & f.no_read == 0 && self.inbound.len() < f.max_in
    }

    /// Should the loop read this connection now, straight into the handler's view?
    /// Like [`wants_read`](Self::wants_read), and no transport layer: one mask test,
    /// so the read fast path pays nothing for layers.
    #[inline]
    pub(crate) fn reads_plain(&self, f: &Flow) -> bool {
        self.flags & f.no_plain_read == 0 && self.inbound.len() < f.max_in
    }

    /// Lingering, has the sending side been shut down?
    pub(crate) fn write_shut(&self) -> bool {
        self.cold.as_ref().is_some_and(|c| c.write_shut)
    }

    /// Records that the sending side has been shut down (lingering).
    pub(crate) fn set_write_shut(&mut self, now: u64) {
        self.cold_mut(now).write_shut = true;
    }

    /// The connection's transport layers, if it has any.
    pub(crate) fn layers_mut(&mut self) -> Option<&mut Layers> {
        self.cold.as_mut().and_then(|c| c.layers.as_deref_mut())
    }

    /// Gives the connection its transport layers.
    pub(crate) fn set_layers(&mut self, layers: Layers, now: u64) {
        self.cold_mut(now).layers = Some(Box::new(layers));
        self.set(flag::LAYERED, true);
    }

    /// The cold part, created (with traffic stamps at `now`) if missing.
    pub(crate) fn cold_mut(&mut self, now: u64) -> &mut Cold {
        self.cold.get_or_insert_with(|| Cold::new(now, false))
    }

    /// Has a write inside a callback failed?
    #[inline]
    pub(crate) fn has_failed(&self) -> bool {
        self.cold.as_ref().is_some_and(|c| c.failed.is_some())
    }

    /// The reason this connection closes with once drained.
    pub(crate) fn drain_reason(&mut self, d: Drain) -> CloseReason {
        match d {
            Drain::Custom => self
                .cold
                .as_mut()
                .and_then(|c| c.close_reason.take())
                .map(|r| *r)
                .unwrap_or(CloseReason::Local),
            other => other.reason(),
        }
    }

    /// Takes the failure a write recorded, if any.
    pub(crate) fn take_failed(&mut self) -> Option<CloseReason> {
        self.cold.as_mut().and_then(|c| c.failed.take()).map(|r| *r)
    }

    /// Records a write failure; the loop closes the connection with it.
    pub(crate) fn set_failed(&mut self, reason: CloseReason, now: u64) {
        self.cold_mut(now).failed = Some(Box::new(reason));
    }

    /// Per-connection overrides, if the handler set any.
    pub(crate) fn cfg(&self) -> Option<&ConnConfig> {
        self.cold.as_ref().and_then(|c| c.cfg.as_deref())
    }

    /// The interest this connection should have now.
    pub(crate) fn wanted_interest(&self, f: &Flow) -> Interest {
        Interest::NONE
            .with_read(self.wants_read(f) || self.is(flag::LINGERING))
            .with_write(!self.outbound.is_empty())
    }

    /// Nothing for `settle` to do: no failure, nothing queued or newly buffered
    /// since the gauges were updated, writable, no timers, interest up to date.
    #[inline(always)]
    pub(crate) fn is_quiet(&self, f: &Flow) -> bool {
        // A plain connection (no status bit, no cold part: no failure, waiter or
        // override) on a loop without timeouts, which only reads: the common case.
        if self.flags == 0 && self.cold.is_none() && !f.timeouts() {
            let inbound = self.inbound.len();
            return self.interest == Interest::READ
                && self.acct_out == 0
                && self.outbound.is_empty()
                && inbound == self.acct_in as usize
                && inbound < f.max_in;
        }
        self.is_quiet_slow(f)
    }

    #[inline(never)]
    fn is_quiet_slow(&self, f: &Flow) -> bool {
        self.draining.is_none()
            && self.outbound.is_empty()
            && self.acct_out == 0
            && self.inbound.len() == self.acct_in as usize
            && !self.has_failed()
            && !self.is(flag::UNWRITABLE)
            && self.interest == self.wanted_interest(f)
            && !self.has_timers(f)
    }

    /// The (low, high) water marks in force.
    pub(crate) fn water_marks(&self, f: &Flow) -> (usize, usize) {
        self.cfg().map_or((f.low, f.high), |c| (c.low, c.high))
    }

    /// Whether the connection is writable given its queue now (with hysteresis).
    pub(crate) fn writable_now(&self, f: &Flow) -> bool {
        let (low, high) = self.water_marks(f);
        let q = self.outbound.len();
        if self.is(flag::UNWRITABLE) {
            q <= low
        } else {
            q <= high
        }
    }

    /// Brings the loop's queued-bytes gauges up to date with this connection, and
    /// starts the write-stall clock when the outbound queue becomes non-empty.
    pub(crate) fn account(&mut self, tally: &mut Tally, now: u64) {
        let out = gauge(self.outbound.len());
        if out != self.acct_out {
            if self.acct_out == 0 {
                self.stamp_tx(now);
            }
            tally.queued_out = tally
                .queued_out
                .wrapping_add(u64::from(out))
                .wrapping_sub(u64::from(self.acct_out));
            self.acct_out = out;
        }
        let inb = gauge(self.inbound.len());
        if inb != self.acct_in {
            tally.buffered_in = tally
                .buffered_in
                .wrapping_add(u64::from(inb))
                .wrapping_sub(u64::from(self.acct_in));
            self.acct_in = inb;
        }
    }

    /// Takes this connection out of the loop's gauges (it is closing).
    pub(crate) fn unaccount(&mut self, tally: &mut Tally) {
        tally.queued_out = tally.queued_out.wrapping_sub(u64::from(self.acct_out));
        tally.buffered_in = tally.buffered_in.wrapping_sub(u64::from(self.acct_in));
        self.acct_out = 0;
        self.acct_in = 0;
    }

    /// Returns the inbound ring's buffer to the pool (lingering: what arrives is
    /// dropped from now on).
    pub(crate) fn release_inbound(&mut self, pool: &mut BufferPool) {
        self.inbound.release(pool);
    }

    /// Returns the inbound buffers (the ring, and the layers') to the pool as the
    /// connection closes; the outbound queue goes to the driver with the
    /// descriptor.
    pub(crate) fn release_buffers(&mut self, pool: &mut BufferPool) {
        self.inbound.release(pool);
        if let Some(l) = self.layers_mut() {
            l.release(pool);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection is this struct and nothing else (it is the whole slab
    /// slot): keep it within 48 bytes.
    #[test]
    fn cold_part_stays_small() {
        // Every rare part of it is boxed again: a connection with only a timer or
        // traffic stamps pays this much, not the size of everything it could hold.
        let size = std::mem::size_of::<Cold>();
        assert!(size <= 80, "Cold is {size} bytes");
    }

    #[test]
    fn idle_connection_stays_small() {
        let size = std::mem::size_of::<ConnInner<()>>();
        assert!(size <= 48, "ConnInner<()> is {size} bytes");
    }
}
