//! A connection as the handler sees it on its event loop.

use crate::addr::Addr;
use crate::buffer::{BufferPool, LinkedBuffer, RingBuffer};
use crate::error::Error;
use crate::event_loop::LoopShared;
use crate::handle::{run_callback, ConnHandle, WriteCallback};
use crate::handler::{CloseReason, TimeoutKind};
use crate::poller::Interest;
use crate::stats::Tally;
use crate::sys;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Gathered writes use at most this many iovecs per syscall.
pub(crate) const MAX_IOVECS: usize = 64;

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

/// A loop's flow-control and timeout settings, resolved from the options.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flow {
    pub(crate) high: usize,
    pub(crate) low: usize,
    pub(crate) max_out: usize,
    pub(crate) max_in: usize,
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
        Flow {
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
#[derive(Clone, Debug)]
pub(crate) struct ConnConfig {
    high: usize,
    low: usize,
    idle: u64,
    read: u64,
    write: u64,
    /// Absolute deadline tick (0: none).
    deadline: u64,
}

impl ConnConfig {
    fn from_flow(f: &Flow) -> ConnConfig {
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

/// Callbacks of async writes waiting for their bytes to reach the kernel.
///
/// Offsets count bytes since the waiter list was created: `sent` is how many have
/// been handed to the kernel, and each waiter fires once `sent` reaches its end.
pub(crate) struct WriteWaiters {
    sent: u64,
    waiters: VecDeque<(u64, WriteCallback)>,
}

/// Why a write failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The socket failed.
    Io(io::Error),
    /// Queuing the rest would pass `max_outbound_bytes`.
    Overflow,
}

impl WriteError {
    pub(crate) fn close_reason(&self) -> CloseReason {
        match self {
            WriteError::Io(e) => *failure(e),
            WriteError::Overflow => CloseReason::OutboundOverflow,
        }
    }
    pub(crate) fn into_error(self) -> Error {
        match self {
            WriteError::Io(e) => Error::Io(e),
            WriteError::Overflow => Error::OutboundOverflow,
        }
    }
    fn into_io(self) -> io::Error {
        match self {
            WriteError::Io(e) => e,
            WriteError::Overflow => io::Error::other(Error::OutboundOverflow),
        }
    }
}

/// The loop's side of every connection operation: its buffer pool, flow settings,
/// clock and per-message tallies. One per loop; a [`Conn`] borrows it whole while a
/// callback runs, so building a `Conn` costs a few pointer stores.
pub(crate) struct LoopIo {
    pub(crate) pool: BufferPool,
    pub(crate) flow: Flow,
    /// The loop's current tick.
    pub(crate) now: u64,
    /// Per-message counters, published to the loop's shared stats once per round.
    pub(crate) tally: Tally,
    pub(crate) shared: Arc<LoopShared>,
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
/// stays a few words: it exists while async-write callbacks wait, after a write
/// failed, once the handler overrides a per-connection setting, and — for the
/// traffic stamps the timeouts need — whenever timeouts are on.
pub(crate) struct Cold {
    waiters: Option<WriteWaiters>,
    /// An error met while writing inside a callback; the loop closes with it.
    failed: Option<CloseReason>,
    cfg: Option<ConnConfig>,
    /// The reason given to [`Conn::close_with`], reported once the queue drains.
    close_reason: Option<CloseReason>,
    /// Tick of the last byte received / of the last byte the kernel took (or of
    /// the moment the outbound queue became non-empty).
    last_rx: u64,
    last_tx: u64,
    /// The tick of this connection's live timing-wheel entry (0: none).
    armed: u64,
    /// Timeouts are on for this connection: keep the box (and its stamps).
    timed: bool,
}

impl Cold {
    fn new(now: u64, timed: bool) -> Box<Cold> {
        Box::new(Cold {
            waiters: None,
            failed: None,
            cfg: None,
            close_reason: None,
            last_rx: now,
            last_tx: now,
            armed: 0,
            timed,
        })
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

    /// Should the loop read this connection now?
    #[inline]
    pub(crate) fn wants_read(&self, max_in: usize) -> bool {
        self.flags & (flag::READ_CLOSED | flag::PAUSED | flag::DRAINING) == 0
            && self.inbound.len() < max_in
    }

    /// The cold part, created (with traffic stamps at `now`) if missing.
    pub(crate) fn cold_mut(&mut self, now: u64) -> &mut Cold {
        self.cold.get_or_insert_with(|| Cold::new(now, false))
    }

    /// Drops the cold part once nothing in it is needed any more.
    fn tidy_cold(&mut self) {
        if self.cold.as_ref().is_some_and(|c| {
            !c.timed
                && c.waiters.is_none()
                && c.failed.is_none()
                && c.cfg.is_none()
                && c.close_reason.is_none()
        }) {
            self.cold = None;
        }
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
                .unwrap_or(CloseReason::Local),
            other => other.reason(),
        }
    }

    /// Takes the failure a write recorded, if any.
    pub(crate) fn take_failed(&mut self) -> Option<CloseReason> {
        self.cold.as_mut().and_then(|c| c.failed.take())
    }

    /// Records a write failure; the loop closes the connection with it.
    pub(crate) fn set_failed(&mut self, reason: CloseReason, now: u64) {
        self.cold_mut(now).failed = Some(reason);
    }

    /// Per-connection overrides, if the handler set any.
    pub(crate) fn cfg(&self) -> Option<&ConnConfig> {
        self.cold.as_ref().and_then(|c| c.cfg.as_ref())
    }

    /// Notes traffic received at `now` (kept only while timeouts are possible).
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

    /// The interest this connection should have now.
    pub(crate) fn wanted_interest(&self, max_in: usize) -> Interest {
        Interest::NONE
            .with_read(self.wants_read(max_in))
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
            && self.interest == self.wanted_interest(f.max_in)
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

    /// Records that `n` more bytes reached the kernel; fires the callbacks whose
    /// bytes are all out.
    fn note_sent(&mut self, n: usize) {
        let Some(w) = self.cold.as_mut().and_then(|c| c.waiters.as_mut()) else {
            return;
        };
        w.sent += n as u64;
        while w.waiters.front().is_some_and(|(end, _)| *end <= w.sent) {
            let (_, cb) = w.waiters.pop_front().expect("checked non-empty");
            run_callback(cb, Ok(()));
        }
        if w.waiters.is_empty() {
            if let Some(c) = self.cold.as_mut() {
                c.waiters = None;
            }
            self.tidy_cold();
        }
    }

    /// Registers `cb` to fire once everything queued now has been sent.
    pub(crate) fn add_waiter(&mut self, cb: WriteCallback, now: u64) {
        if self.outbound.is_empty() {
            run_callback(cb, Ok(()));
            return;
        }
        let queued = self.outbound.len() as u64;
        let w = self
            .cold_mut(now)
            .waiters
            .get_or_insert_with(|| WriteWaiters {
                sent: 0,
                waiters: VecDeque::new(),
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

    /// Writes as much of the outbound queue as the socket takes.
    pub(crate) fn flush(&mut self, io: &mut LoopIo) -> io::Result<()> {
        while !self.outbound.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let cnt = self.outbound.io_slices(&mut iov);
            let want: usize = iov[..cnt].iter().map(|s| s.len()).sum();
            let res = if cnt == 1 {
                sys::send(self.fd.as_fd(), &iov[0])
            } else {
                sys::sendv(self.fd.as_fd(), &iov[..cnt])
            };
            match res {
                Ok(n) => {
                    self.outbound.consume(n, &mut io.pool);
                    if n > 0 {
                        io.tally.bytes_out += n as u64;
                        self.stamp_tx(io.now);
                    }
                    self.note_sent(n);
                    if n < want {
                        return Ok(()); // the socket buffer is full
                    }
                }
                Err(sys::Errno::AGAIN) => return Ok(()),
                Err(sys::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Queues an owned buffer without copying it (an async write; the loop
    /// flushes after the task batch), unless that would pass `max_out`.
    pub(crate) fn queue_owned(&mut self, data: Vec<u8>, io: &mut LoopIo) -> Result<(), WriteError> {
        if data.is_empty() {
            return Ok(());
        }
        if self.outbound.len() + data.len() > io.flow.max_out {
            return Err(WriteError::Overflow);
        }
        self.outbound.push_owned(data);
        Ok(())
    }

    /// Returns every buffer to the pool.
    pub(crate) fn release_buffers(&mut self, pool: &mut BufferPool) {
        self.inbound.release(pool);
        self.outbound.clear(pool);
    }
}

/// Writes `bufs` (at most `MAX_IOVECS`) straight to the socket when nothing is
/// queued, and queues whatever the socket did not take. Returns how many bytes
/// went straight to the socket. Refuses (queuing nothing more) when the queue
/// would pass `max_out`.
fn write_or_queue(
    fd: BorrowedFd<'_>,
    outbound: &mut LinkedBuffer,
    bufs: &[&[u8]],
    pool: &mut BufferPool,
    max_out: usize,
) -> Result<usize, WriteError> {
    let mut sent = 0usize;
    if outbound.is_empty() {
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        let Some(first) = nonempty.next() else {
            return Ok(0);
        };
        let res = if nonempty.next().is_none() {
            sys::send(fd, first)
        } else {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let mut cnt = 0;
            for b in bufs.iter().filter(|b| !b.is_empty()).take(MAX_IOVECS) {
                iov[cnt] = IoSlice::new(b);
                cnt += 1;
            }
            sys::sendv(fd, &iov[..cnt])
        };
        match res {
            Ok(n) => sent = n,
            Err(sys::Errno::AGAIN | sys::Errno::INTR) => {}
            Err(e) => return Err(WriteError::Io(e.into())),
        }
    }
    queue_rest(outbound, bufs, sent, pool, max_out)
}

/// Queues what is left of `bufs` after the first `sent` bytes went to the socket,
/// unless that would take the queue past `max_out`. Returns `sent`.
#[cold]
fn queue_rest(
    outbound: &mut LinkedBuffer,
    bufs: &[&[u8]],
    sent: usize,
    pool: &mut BufferPool,
    max_out: usize,
) -> Result<usize, WriteError> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    if sent < total && outbound.len() + (total - sent) > max_out {
        return Err(WriteError::Overflow);
    }
    let mut skip = sent;
    for b in bufs {
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        outbound.push(&b[skip..], pool);
        skip = 0;
    }
    Ok(sent)
}

/// The unconsumed inbound bytes: fresh bytes in the loop's read buffer, or the
/// connection's ring, minus the `consumed` prefix.
#[inline]
fn view_of<'b>(
    fresh: Option<&'b [u8]>,
    consumed: usize,
    ring: &'b RingBuffer,
) -> (&'b [u8], &'b [u8]) {
    match fresh {
        Some(fresh) => (&fresh[consumed..], &[]),
        None => {
            let (a, b) = ring.as_slices();
            if consumed <= a.len() {
                (&a[consumed..], b)
            } else {
                (&b[consumed - a.len()..], &[])
            }
        }
    }
}

/// Turns a write error into the reason the connection will close with.
fn failure(e: &io::Error) -> Box<CloseReason> {
    let copy = match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    };
    Box::new(CloseReason::from_io(copy))
}

fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, Error::ConnectionClosed)
}

/// The writing half of a [`Conn`] split with [`Conn::split`]: writes while the
/// inbound bytes stay borrowed (echoing or forwarding them without a copy).
pub struct Writer<'c> {
    fd: BorrowedFd<'c>,
    outbound: &'c mut LinkedBuffer,
    cold: &'c mut Option<Box<Cold>>,
    io: &'c mut LoopIo,
    open: bool,
}

impl Writer<'_> {
    /// Same as [`Conn::write`].
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.writev(&[data])
    }

    /// Same as [`Conn::writev`] (at most 64 buffers per call are gathered).
    #[inline]
    pub fn writev(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        // The hot path: open, nothing queued, no cold state (no failure, no
        // timeout stamps), one non-empty buffer (possibly followed by an empty
        // one, as `split()` gives) that the kernel takes whole. Everything else,
        // including a partial send, continues out of line.
        let mut sent = 0;
        if self.open && self.outbound.is_empty() && self.cold.is_none() {
            if let [a] | [a, []] = bufs {
                if !a.is_empty() {
                    if let Ok(n) = sys::send(self.fd, a) {
                        self.io.tally.bytes_out += n as u64;
                        if n == a.len() {
                            return Ok(());
                        }
                        sent = n;
                    }
                }
            }
        }
        writev_slow(
            self.fd,
            self.outbound,
            self.cold,
            self.io,
            self.open,
            bufs,
            sent,
        )
    }

    /// Bytes queued for sending.
    pub fn outbound_len(&self) -> usize {
        self.outbound.len()
    }
}

/// [`Writer::writev`] past its hot path; `sent` bytes of `bufs` already went to
/// the socket. Takes the writer's parts one by one, so the hot path keeps them in
/// registers.
#[cold]
#[inline(never)]
fn writev_slow(
    fd: BorrowedFd<'_>,
    outbound: &mut LinkedBuffer,
    cold: &mut Option<Box<Cold>>,
    io: &mut LoopIo,
    open: bool,
    bufs: &[&[u8]],
    sent: usize,
) -> io::Result<()> {
    let now = io.now;
    let fail = |cold: &mut Option<Box<Cold>>, e: WriteError| {
        cold.get_or_insert_with(|| Cold::new(now, false)).failed = Some(e.close_reason());
        Err(e.into_io())
    };
    if sent > 0 {
        // The hot path's send was partial: queue the rest.
        if let Some(c) = cold.as_mut() {
            c.last_tx = now;
        }
        return match queue_rest(outbound, bufs, sent, &mut io.pool, io.flow.max_out) {
            Ok(_) => Ok(()),
            Err(e) => fail(cold, e),
        };
    }
    if !open || cold.as_ref().is_some_and(|c| c.failed.is_some()) {
        return Err(closed_error());
    }
    for chunk in bufs.chunks(MAX_IOVECS) {
        match write_or_queue(fd, outbound, chunk, &mut io.pool, io.flow.max_out) {
            Ok(0) => {}
            Ok(n) => {
                io.tally.bytes_out += n as u64;
                if let Some(c) = cold.as_mut() {
                    c.last_tx = now;
                }
            }
            Err(e) => return fail(cold, e),
        }
    }
    Ok(())
}

/// A connection, as seen by handler callbacks on its event loop.
///
/// **Inbound**: bytes read from the socket are offered to `on_traffic`; the handler
/// consumes what it handles with [`next`](Conn::next), [`discard`](Conn::discard) or
/// [`read`](Conn::read) and leaves the rest, which stays buffered for next time.
/// Fresh bytes are offered straight from the loop's shared read buffer; only the part
/// left unconsumed is copied into the connection's own (elastic, pooled) buffer.
///
/// **Outbound**: [`write`](Conn::write) goes to the socket at once when nothing is
/// queued; only what the socket does not take is queued, and write interest is
/// registered only while something is queued.
///
/// **Flow control**: past the high water mark the connection is
/// [unwritable](Conn::is_writable) (advice; the handler is told through
/// [`on_writable_changed`](crate::EventHandler::on_writable_changed)); past
/// [`Options::max_outbound_bytes`](crate::Options::max_outbound_bytes) a write fails
/// and the connection closes. Reading can be [paused](Conn::pause_read), and stops
/// by itself while [`Options::max_inbound_bytes`](crate::Options::max_inbound_bytes)
/// are buffered unconsumed.
///
/// **Timeouts**: idle, read and write timeouts default to the engine's options and
/// can be changed per connection ([`set_idle_timeout`](Conn::set_idle_timeout)…);
/// [`set_deadline`](Conn::set_deadline) closes at a fixed instant (for handshakes).
pub struct Conn<'a, S> {
    pub(crate) inner: &'a mut ConnInner<S>,
    pub(crate) io: &'a mut LoopIo,
    /// Fresh bytes in the loop's read buffer (`None`: the view is the inbound ring).
    pub(crate) fresh: Option<&'a [u8]>,
    /// Bytes of the current view already consumed by the handler.
    pub(crate) consumed: usize,
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

impl<'a, S> Conn<'a, S> {
    #[inline]
    pub(crate) fn new(
        inner: &'a mut ConnInner<S>,
        io: &'a mut LoopIo,
        index: u32,
        gen: u32,
        fresh: Option<&'a [u8]>,
    ) -> Self {
        Conn {
            inner,
            io,
            fresh,
            consumed: 0,
            index,
            gen,
        }
    }

    /// Settles inbound bookkeeping after a callback: consumed bytes leave the ring,
    /// unconsumed fresh bytes are copied into it.
    #[inline]
    pub(crate) fn finish(&mut self) {
        match self.fresh.take() {
            Some(fresh) => {
                if self.consumed < fresh.len() {
                    self.inner
                        .inbound
                        .push(&fresh[self.consumed..], &mut self.io.pool);
                }
            }
            None => {
                if self.consumed > 0 {
                    self.inner.inbound.consume(self.consumed, &mut self.io.pool);
                }
            }
        }
        self.consumed = 0;
    }

    /// The unconsumed inbound bytes as (up to) two slices, zero-copy.
    pub fn inbound(&self) -> (&[u8], &[u8]) {
        self.view()
    }

    fn view(&self) -> (&[u8], &[u8]) {
        view_of(self.fresh, self.consumed, &self.inner.inbound)
    }

    /// Number of unconsumed inbound bytes.
    #[inline]
    pub fn buffered(&self) -> usize {
        match self.fresh {
            Some(fresh) => fresh.len() - self.consumed,
            None => self.inner.inbound.len() - self.consumed,
        }
    }

    /// Makes the first `n` unconsumed bytes contiguous (no allocation: the ring is
    /// rotated in place when its contents wrap).
    fn make_contiguous(&mut self, n: usize) {
        if self.fresh.is_none() && self.inbound().0.len() < n {
            if self.consumed > 0 {
                self.inner.inbound.consume(self.consumed, &mut self.io.pool);
                self.consumed = 0;
            }
            self.inner.inbound.make_contiguous();
        }
    }

    /// The next `n` inbound bytes without consuming them, or `None` if fewer are
    /// buffered.
    pub fn peek(&mut self, n: usize) -> Option<&[u8]> {
        if self.buffered() < n {
            return None;
        }
        self.make_contiguous(n);
        Some(&self.inbound().0[..n])
    }

    /// Every unconsumed inbound byte as one slice (rotating the ring if needed).
    pub fn peek_all(&mut self) -> &[u8] {
        let n = self.buffered();
        self.make_contiguous(n);
        self.inbound().0
    }

    /// Consumes and returns the next `n` bytes, or `None` (consuming nothing) if
    /// fewer are buffered.
    pub fn next(&mut self, n: usize) -> Option<&[u8]> {
        if self.buffered() < n {
            return None;
        }
        self.make_contiguous(n);
        self.consumed += n;
        // The slice ends where the view now starts.
        let start = self.consumed - n;
        let first = match self.fresh {
            Some(fresh) => fresh,
            None => self.inner.inbound.as_slices().0,
        };
        Some(&first[start..start + n])
    }

    /// Drops up to `n` inbound bytes; returns how many were dropped.
    pub fn discard(&mut self, n: usize) -> usize {
        let n = n.min(self.buffered());
        self.consumed += n;
        n
    }

    /// Copies inbound bytes into `dst` and consumes them; returns how many.
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let (a, b) = self.inbound();
        let n1 = a.len().min(dst.len());
        dst[..n1].copy_from_slice(&a[..n1]);
        let n2 = b.len().min(dst.len() - n1);
        dst[n1..n1 + n2].copy_from_slice(&b[..n2]);
        self.consumed += n1 + n2;
        n1 + n2
    }

    /// Splits the connection into its unconsumed inbound bytes (up to two slices,
    /// zero-copy) and a [`Writer`], so the bytes can be written back or forwarded
    /// without copying them first. Consume afterwards with [`discard`](Conn::discard).
    ///
    /// ```no_run
    /// # use netloop::Conn;
    /// # fn echo(conn: &mut Conn<'_, ()>) -> std::io::Result<()> {
    /// let n = conn.buffered();
    /// let ([a, b], mut w) = conn.split();
    /// w.writev(&[a, b])?;
    /// conn.discard(n);
    /// # Ok(()) }
    /// ```
    pub fn split(&mut self) -> ([&[u8]; 2], Writer<'_>) {
        let open = !self.inner.is(flag::CLOSED | flag::DRAINING);
        let (a, b) = view_of(self.fresh, self.consumed, &self.inner.inbound);
        let w = Writer {
            fd: self.inner.fd.as_fd(),
            outbound: &mut self.inner.outbound,
            cold: &mut self.inner.cold,
            io: self.io,
            open,
        };
        ([a, b], w)
    }

    fn writer(&mut self) -> Writer<'_> {
        self.split().1
    }

    /// Writes `data`: straight to the socket when nothing is queued, the remainder
    /// into the outbound queue. An error (the peer is gone) also closes the
    /// connection once the callback returns.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.writer().write(data)
    }

    /// Writes several buffers with one gathered `writev` (then queues the rest).
    pub fn writev(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        self.writer().writev(bufs)
    }

    /// Tries to write the outbound queue now (the loop also does it when the
    /// socket becomes writable).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.inner.is(flag::CLOSED) {
            return Err(closed_error());
        }
        let res = self.inner.flush(self.io);
        if let Err(e) = &res {
            self.inner.set_failed(*failure(e), self.io.now);
        }
        res
    }

    /// Bytes queued for sending (not yet taken by the kernel).
    pub fn outbound_len(&self) -> usize {
        self.inner.outbound.len()
    }

    /// Closes the connection once the callback returns and what is queued has been
    /// sent (same as returning [`Action::Close`](crate::Action::Close)).
    pub fn close(&mut self) {
        self.inner.drain(Drain::Local);
    }

    /// Closes the connection once the callback returns and what is queued has been
    /// sent, reporting `reason` to `on_close` (and the log) instead of
    /// [`CloseReason::Local`] — for protocol layers that reject the peer's bytes,
    /// typically with [`CloseReason::Protocol`].
    pub fn close_with(&mut self, reason: CloseReason) {
        if self.inner.draining.is_none() {
            let now = self.io.now;
            self.inner.cold_mut(now).close_reason = Some(reason);
            self.inner.drain(Drain::Custom);
        }
    }

    // ----- flow control -----

    /// Is the connection writable: is its outbound queue within the water marks?
    /// False from when more than the high mark is queued until the queue drains to
    /// the low mark. Writes still succeed while unwritable (up to
    /// [`Options::max_outbound_bytes`](crate::Options::max_outbound_bytes)).
    pub fn is_writable(&self) -> bool {
        self.inner.writable_now(&self.io.flow)
    }

    /// Sets this connection's outbound water marks (`low` is clamped to `high`).
    /// Default: [`Options::write_low_water`](crate::Options::write_low_water) and
    /// [`Options::write_high_water`](crate::Options::write_high_water).
    pub fn set_write_water_marks(&mut self, low: usize, high: usize) {
        let c = self.cfg_mut();
        c.high = high;
        c.low = low.min(high);
    }

    /// This connection's (low, high) outbound water marks.
    pub fn write_water_marks(&self) -> (usize, usize) {
        self.inner.water_marks(&self.io.flow)
    }

    /// Stops reading from the socket (its read interest is dropped once the
    /// callback returns, so the loop does not spin on the unread bytes) until
    /// [`resume_read`](Conn::resume_read). Bytes already buffered stay buffered.
    pub fn pause_read(&mut self) {
        self.inner.set(flag::PAUSED, true);
    }

    /// Resumes reading after [`pause_read`](Conn::pause_read). The read timeout
    /// starts over.
    pub fn resume_read(&mut self) {
        if self.inner.is(flag::PAUSED) {
            self.inner.set(flag::PAUSED, false);
            self.inner.restart_rx(self.io.now);
        }
    }

    /// Is reading paused by the handler?
    pub fn is_read_paused(&self) -> bool {
        self.inner.is(flag::PAUSED)
    }

    fn cfg_mut(&mut self) -> &mut ConnConfig {
        let flow = self.io.flow;
        let now = self.io.now;
        let cold = self.inner.cold_mut(now);
        cold.timed = true;
        cold.cfg.get_or_insert_with(|| ConnConfig::from_flow(&flow))
    }

    fn to_ticks(&self, d: Option<Duration>) -> u64 {
        d.map_or(0, |d| self.io.flow.clock.ticks(d).max(1))
    }

    /// Sets this connection's idle timeout (`None`: off): it closes with
    /// [`TimeoutKind::Idle`] after that long without traffic in either direction.
    /// Default: [`Options::idle_timeout`](crate::Options::idle_timeout).
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        let t = self.to_ticks(timeout);
        self.cfg_mut().idle = t;
    }

    /// Sets this connection's read timeout (`None`: off): it closes with
    /// [`TimeoutKind::Read`] after that long without receiving a byte while it
    /// wants to read. Default: [`Options::read_timeout`](crate::Options::read_timeout).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        let t = self.to_ticks(timeout);
        self.cfg_mut().read = t;
    }

    /// Sets this connection's write (stall) timeout (`None`: off): it closes with
    /// [`TimeoutKind::Write`] when bytes are queued and the kernel took none of them
    /// for that long. Default: [`Options::write_timeout`](crate::Options::write_timeout).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        let t = self.to_ticks(timeout);
        self.cfg_mut().write = t;
    }

    /// Sets an absolute deadline (`None`: clears it): at that instant the
    /// connection closes with [`TimeoutKind::Deadline`], whatever its traffic. Meant
    /// for phases that must finish in time, such as a TLS handshake or a first
    /// request; clear it when the phase is done. Fires up to two timer ticks
    /// ([`Options::timer_resolution`](crate::Options::timer_resolution)) late, never
    /// early.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        let clock = self.io.flow.clock;
        // The tick after the one the deadline falls in: never early.
        let t = deadline.map_or(0, |d| clock.tick(d) + 1);
        self.cfg_mut().deadline = t;
    }

    /// The per-connection state.
    pub fn state(&self) -> &S {
        &self.inner.state
    }

    /// The per-connection state, mutably.
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.inner.state
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ConnHandle {
        ConnHandle {
            shared: self.io.shared.clone(),
            index: self.index,
            gen: self.gen,
        }
    }

    /// An id unique among this loop's open connections (slot index and generation).
    pub fn id(&self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.index)
    }

    /// Index of the event loop serving this connection.
    pub fn loop_index(&self) -> usize {
        self.io.shared.index
    }

    /// The raw socket descriptor (for options netloop does not wrap; do not close it).
    pub fn fd(&self) -> RawFd {
        self.inner.raw_fd()
    }

    /// The socket, for options through `socket2` (`set_nodelay`, `set_keepalive`,
    /// `set_linger`, `set_send_buffer_size`, …).
    pub fn socket(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(&self.inner.fd)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<Addr> {
        to_addr(self.socket().local_addr()?)
    }

    /// The peer's address (asked of the kernel, not stored: idle connections stay small).
    pub fn peer_addr(&self) -> io::Result<Addr> {
        to_addr(self.socket().peer_addr()?)
    }
}

/// Converts a socket2 address into an [`Addr`].
pub(crate) fn to_addr(a: socket2::SockAddr) -> io::Result<Addr> {
    if let Some(sa) = a.as_socket() {
        return Ok(Addr::Tcp(sa));
    }
    match a.as_pathname() {
        Some(p) => Ok(Addr::Unix(p.to_path_buf())),
        None => Ok(Addr::Unix(Default::default())), // unnamed (client-side) Unix socket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection is this struct and nothing else (it is the whole slab
    /// slot): keep it within 48 bytes.
    #[test]
    fn idle_connection_stays_small() {
        let size = std::mem::size_of::<ConnInner<()>>();
        assert!(size <= 48, "ConnInner<()> is {size} bytes");
    }

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
