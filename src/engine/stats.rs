//! Per-loop counters, readable from any thread.
//!
//! Each loop owns one [`LoopCounters`] and is its only writer, so a counter is
//! bumped with a relaxed load and a relaxed store — no locked read-modify-write,
//! no lock, no shared cache line with other loops' counters being written. The
//! per-message counters (bytes, events, queue gauges) are cheaper still: the loop
//! keeps them in a plain [`Tally`] and publishes it once per round, before it
//! blocks and whenever a connection closes.
//! Readers ([`EngineHandle::stats`](crate::EngineHandle::stats)) take relaxed
//! loads: every value is exact for its own counter, but two counters read one
//! after the other may be from slightly different moments.

use crate::conn::CloseReason;
use std::sync::atomic::{AtomicU64, Ordering};

/// A single-writer counter.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (owning loop only).
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
    /// Sets the value (owning loop only).
    #[inline]
    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The counters a loop bumps per message or per event, kept in plain integers on
/// the loop and [published](LoopCounters::publish) once per round: the hot path
/// touches no shared cache line, and readers lag by at most one round (the loop
/// publishes before it blocks, so an idle loop's figures are exact).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) events: u64,
    pub(crate) wakeups: u64,
    /// Gauges (sums of every connection's queue lengths).
    pub(crate) queued_out: u64,
    pub(crate) buffered_in: u64,
}

/// Number of close-reason buckets.
const REASONS: usize = 11;

/// The live counters of one loop (in its shared part).
#[derive(Default)]
pub(crate) struct LoopCounters {
    pub(crate) accepted: Counter,
    pub(crate) closed: [Counter; REASONS],
    pub(crate) bytes_in: Counter,
    pub(crate) bytes_out: Counter,
    pub(crate) events: Counter,
    pub(crate) wakeups: Counter,
    pub(crate) queued_out: Counter,
    pub(crate) buffered_in: Counter,
}

fn bucket(r: &CloseReason) -> usize {
    match r {
        CloseReason::PeerClosed => 0,
        CloseReason::Reset => 1,
        CloseReason::Io(_) => 2,
        CloseReason::Local => 3,
        CloseReason::Handle => 4,
        CloseReason::Panicked => 5,
        CloseReason::EngineStopped => 6,
        CloseReason::Protocol(_) => 7,
        CloseReason::Timeout(_) => 8,
        CloseReason::OutboundOverflow => 9,
        #[cfg(feature = "tls")]
        CloseReason::Tls(_) => 10,
    }
}

impl LoopCounters {
    /// Makes the loop's running tallies visible to other threads.
    pub(crate) fn publish(&self, t: &Tally) {
        self.bytes_in.set(t.bytes_in);
        self.bytes_out.set(t.bytes_out);
        self.events.set(t.events);
        self.wakeups.set(t.wakeups);
        self.queued_out.set(t.queued_out);
        self.buffered_in.set(t.buffered_in);
    }

    pub(crate) fn note_close(&self, r: &CloseReason) {
        self.closed[bucket(r)].add(1);
    }

    pub(crate) fn snapshot(&self, open: usize) -> LoopStats {
        let c = |i: usize| self.closed[i].get();
        LoopStats {
            open: open as u64,
            accepted: self.accepted.get(),
            closed: ClosedStats {
                peer_closed: c(0),
                reset: c(1),
                io_error: c(2),
                local: c(3),
                handle: c(4),
                panicked: c(5),
                engine_stopped: c(6),
                protocol: c(7),
                timeout: c(8),
                outbound_overflow: c(9),
                tls: c(10),
            },
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
            events: self.events.get(),
            wakeups: self.wakeups.get(),
            queued_out_bytes: self.queued_out.get(),
            buffered_in_bytes: self.buffered_in.get(),
        }
    }
}

/// Connections closed, by [`CloseReason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClosedStats {
    /// [`CloseReason::PeerClosed`].
    pub peer_closed: u64,
    /// [`CloseReason::Reset`].
    pub reset: u64,
    /// [`CloseReason::Io`].
    pub io_error: u64,
    /// [`CloseReason::Local`].
    pub local: u64,
    /// [`CloseReason::Handle`].
    pub handle: u64,
    /// [`CloseReason::Panicked`].
    pub panicked: u64,
    /// [`CloseReason::EngineStopped`].
    pub engine_stopped: u64,
    /// [`CloseReason::Protocol`].
    pub protocol: u64,
    /// [`CloseReason::Timeout`] (any kind).
    pub timeout: u64,
    /// [`CloseReason::OutboundOverflow`].
    pub outbound_overflow: u64,
    /// `CloseReason::Tls` (feature `tls`): failed TLS sessions — handshakes
    /// refused, cut short or abandoned, bad records, fatal alerts.
    pub tls: u64,
}

impl ClosedStats {
    /// All closes together.
    pub fn total(&self) -> u64 {
        self.peer_closed
            + self.reset
            + self.io_error
            + self.local
            + self.handle
            + self.panicked
            + self.engine_stopped
            + self.protocol
            + self.timeout
            + self.outbound_overflow
            + self.tls
    }

    fn add(&mut self, o: &ClosedStats) {
        self.peer_closed += o.peer_closed;
        self.reset += o.reset;
        self.io_error += o.io_error;
        self.local += o.local;
        self.handle += o.handle;
        self.panicked += o.panicked;
        self.engine_stopped += o.engine_stopped;
        self.protocol += o.protocol;
        self.timeout += o.timeout;
        self.outbound_overflow += o.outbound_overflow;
        self.tls += o.tls;
    }
}

/// Counters of one event loop (or, in [`Stats::total`], of all of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopStats {
    /// Connections open now (including ones handed over by the main reactor and
    /// not yet registered).
    pub open: u64,
    /// Connections this loop started serving.
    pub accepted: u64,
    /// Connections closed, by reason.
    pub closed: ClosedStats,
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Bytes handed to the kernel for sending.
    pub bytes_out: u64,
    /// Readiness events dispatched.
    pub events: u64,
    /// Returns from `epoll_wait` (wake-ups of the loop).
    pub wakeups: u64,
    /// Bytes queued outbound across the loop's connections now (not yet taken by
    /// the kernel).
    pub queued_out_bytes: u64,
    /// Bytes buffered inbound (received, not yet consumed by the handler) now.
    pub buffered_in_bytes: u64,
}

impl LoopStats {
    fn add(&mut self, o: &LoopStats) {
        self.open += o.open;
        self.accepted += o.accepted;
        self.closed.add(&o.closed);
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.events += o.events;
        self.wakeups += o.wakeups;
        self.queued_out_bytes += o.queued_out_bytes;
        self.buffered_in_bytes += o.buffered_in_bytes;
    }
}

/// A snapshot of an engine's counters, from
/// [`EngineHandle::stats`](crate::EngineHandle::stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// One entry per event loop, by loop index.
    pub loops: Vec<LoopStats>,
    /// The sum over all loops.
    pub total: LoopStats,
    /// Connections accepted and closed at once because
    /// [`Options::max_connections`](crate::Options::max_connections) was reached.
    pub rejected: u64,
}

impl Stats {
    pub(crate) fn from_loops(loops: Vec<LoopStats>, rejected: u64) -> Stats {
        let mut total = LoopStats::default();
        for l in &loops {
            total.add(l);
        }
        Stats {
            loops,
            total,
            rejected,
        }
    }
}
