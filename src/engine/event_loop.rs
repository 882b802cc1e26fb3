//! The event loop: one OS thread, one poller, a slab of connections.
//!
//! Each round the loop (1) runs tasks other threads queued, (2) waits for readiness
//! — with a zero timeout when the previous round left work behind, blocking until
//! the next timer otherwise — and (3) dispatches each event by its token, which is
//! the connection's slab index plus the slot's generation: no map lookup, and an
//! event for a connection that closed earlier in the same round is recognised as
//! stale and dropped.
//!
//! Reading goes through one per-loop read buffer (64 KiB by default): the handler
//! sees fresh bytes in place, and only what it leaves unconsumed is copied into the
//! connection's own elastic buffer. An idle connection therefore holds no buffer.
//!
//! The per-message path — event → slot → `read` → `on_traffic` → quiet check — is
//! kept to a few hundred instructions (`netloop-bench cost` counts them): the
//! connection is looked up once, counters are plain integers published once per
//! round, the clock is read once per round, and a callback that leaves nothing
//! queued, buffered or changed is recognised by a handful of compares.

use crate::buffer::BufferPool;
use crate::conn::run_callback;
use crate::conn::CloseReason;
use crate::conn::{flag, Conn, ConnInner, Drain, Flow, LoopIo};
use crate::driver::{Epoll, Event, Interest, Poller, Trigger};
use crate::engine::listener::{self, Accepted, ListenSocket, Listener};
use crate::engine::shared::{
    panic_message, report, token, LoopShared, Ready, LISTENER_TOKEN, MAX_SLOTS, NOT_CONN_BIT,
    WAKER_TOKEN,
};
use crate::engine::stats::Tally;
use crate::engine::task_queue::Task;
use crate::engine::timer::{Clock, Entry, TimerWheel};
use crate::engine::{shared::IN_LOOP, EngineHandle};
use crate::error::Error;
use crate::handler::{Action, EventHandler, LoopInfo};
use crate::options::Options;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Normal-lane tasks run per round (the urgent lane is always drained).
const TASKS_PER_ROUND: usize = 1024;
/// Connections accepted per listener event before the loop serves others.
const ACCEPTS_PER_EVENT: usize = 64;
/// Slots of each loop's timing wheel (× `timer_resolution` = one revolution).
const WHEEL_SLOTS: usize = 1024;
/// Water-mark notifications one settle may deliver (a handler that writes past
/// the high mark from every `on_writable_changed(true)` cannot loop forever).
const MAX_NOTIFY: usize = 4;

/// What a loop thread starts from.
pub(crate) struct LoopSetup {
    pub(crate) shared: Arc<LoopShared>,
    pub(crate) engine: EngineHandle,
    pub(crate) opts: Arc<Options>,
    /// Listeners this loop accepts on, and whether each is shared with other loops.
    pub(crate) listeners: Vec<(Arc<ListenSocket>, bool)>,
    /// Told once the loop is set up (or why it could not be).
    pub(crate) ready: Ready,
}

/// A slab entry. The generation lives in the connection while it is open and in
/// the free list while it is not, so a slot is exactly a connection's size.
struct Slot<S> {
    conn: Option<ConnInner<S>>,
}

pub(crate) struct EventLoop<H: EventHandler> {
    engine: EngineHandle,
    opts: Arc<Options>,
    handler: H,
    poller: Epoll,
    trigger: Trigger,
    slots: Vec<Slot<H::State>>,
    /// Free slots with the generation their next connection gets.
    free: Vec<(u32, u32)>,
    /// Connections with async writes queued by the current task batch.
    to_flush: Vec<(u32, u32)>,
    /// The pool, flow settings, clock and tallies every connection operation uses.
    io: LoopIo,
    read_buf: Box<[u8]>,
    listeners: Vec<Listener>,
    tasks: Vec<Task>,
    /// Edge-triggered connections whose read budget ran out with data left.
    et_pending: Vec<u64>,
    next_tick: Option<Instant>,
    /// When the last wait returned (the loop's clock for timers).
    woke_at: Instant,
    stopping: bool,
    /// Set once a graceful stop began: the drain ends by then.
    drain_until: Option<Instant>,
    wheel: TimerWheel,
    due: Vec<Entry>,
    /// Outgoing connects in progress (see `crate::engine::dialer`).
    dials: crate::engine::dialer::Dials,
}

impl<H: EventHandler> EventLoop<H> {
    /// Runs a loop on the current thread until it is stopped.
    pub(crate) fn run(setup: LoopSetup, make_handler: impl FnOnce(usize) -> H) -> io::Result<()> {
        IN_LOOP.with(|f| f.set(true));
        let LoopSetup {
            shared,
            engine,
            opts,
            listeners,
            ready,
        } = setup;
        if opts.cpu_affinity {
            let cpus = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            if let Err(e) = crate::sys::pin_current_thread(shared.index % cpus) {
                tracing::warn!(error = %e, "could not pin event loop to a CPU");
            }
        }
        let (poller, regs) = report(&ready, Self::setup(&shared, listeners))?;
        let handler = make_handler(shared.index);
        let clock = Clock::new(Instant::now(), opts.timer_resolution);
        let mut lp = EventLoop {
            io: LoopIo {
                pool: BufferPool::new(opts.buffer_pool_bytes),
                flow: Flow::new(&opts, clock),
                // Refreshed before timers run and after each wait.
                now: clock.tick(Instant::now()),
                tally: Tally::default(),
                shared,
            },
            wheel: TimerWheel::new(WHEEL_SLOTS),
            due: Vec::new(),
            drain_until: None,
            trigger: if opts.edge_triggered {
                Trigger::Edge
            } else {
                Trigger::Level
            },
            read_buf: vec![0u8; opts.read_buffer_size].into_boxed_slice(),
            engine,
            opts,
            handler,
            poller,
            slots: Vec::new(),
            free: Vec::new(),
            to_flush: Vec::new(),
            listeners: regs,
            tasks: Vec::new(),
            et_pending: Vec::new(),
            next_tick: None,
            woke_at: Instant::now(),
            stopping: false,
            dials: Default::default(),
        };
        lp.boot();
        lp.main_loop();
        lp.shutdown();
        Ok(())
    }

    /// Creates the poller and registers the waker and the listeners.
    fn setup(
        shared: &LoopShared,
        listeners: Vec<(Arc<ListenSocket>, bool)>,
    ) -> io::Result<(Epoll, Vec<Listener>)> {
        let poller = Epoll::new()?;
        poller.add(
            shared.queue.waker_fd(),
            WAKER_TOKEN,
            Interest::READ,
            Trigger::Level,
        )?;
        let mut regs = Vec::with_capacity(listeners.len());
        for (i, (sock, is_shared)) in listeners.into_iter().enumerate() {
            regs.push(Listener::register(
                sock,
                LISTENER_TOKEN - i as u64,
                is_shared,
                &poller,
            )?);
        }
        Ok((poller, regs))
    }

    fn boot(&mut self) {
        let info = LoopInfo {
            index: self.io.shared.index,
            engine: &self.engine,
            connections: 0,
        };
        let handler = &mut self.handler;
        match catch_unwind(AssertUnwindSafe(|| handler.on_boot(&info))) {
            Ok(Action::Shutdown) => self.engine.signal_stop(),
            Ok(_) => {}
            Err(p) => tracing::error!(panic = panic_message(&*p), "on_boot panicked"),
        }
        if self.opts.ticker {
            self.next_tick = Some(Instant::now());
        }
    }

    fn main_loop(&mut self) {
        let mut busy = false;
        let mut woken = false;
        loop {
            let mut more_tasks = false;
            if woken || self.io.shared.queue.is_notified() {
                woken = false;
                more_tasks = self.run_tasks();
            }
            if self.stopping {
                return;
            }
            if let Some(until) = self.drain_until {
                if self.io.shared.connections.load(Ordering::Relaxed) == 0
                    || Instant::now() >= until
                {
                    return; // drained, or out of time: `shutdown` closes the rest
                }
            }
            self.run_timers();
            let timeout = if busy || more_tasks || !self.et_pending.is_empty() {
                Some(Duration::ZERO)
            } else {
                self.next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            // Other threads see this round's counters before the loop blocks.
            self.io.shared.stats.publish(&self.io.tally);
            let n = match self.poller.wait(timeout) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "epoll_wait failed; stopping the loop");
                    return;
                }
            };
            // The wait may have been long: traffic stamps must use the time now.
            self.woke_at = Instant::now();
            self.io.now = self.io.flow.clock.tick(self.woke_at);
            self.io.tally.wakeups += 1;
            self.io.tally.events += n as u64;
            for i in 0..n {
                let ev = self.poller.event(i);
                if ev.token & NOT_CONN_BIT == 0 {
                    self.on_conn_event(ev);
                } else if ev.token == WAKER_TOKEN {
                    woken = true; // tasks run at the top of the next round
                } else if ev.token > LISTENER_TOKEN - self.listeners.len() as u64 {
                    self.accept((LISTENER_TOKEN - ev.token) as usize);
                } else if crate::engine::dialer::is_dial_token(ev.token) {
                    self.on_dial_ready(ev.token);
                }
            }
            if !self.et_pending.is_empty() {
                for t in std::mem::take(&mut self.et_pending) {
                    // A stale entry (closed since) fails `read_once`'s generation check.
                    self.on_readable(t as u32, (t >> 32) as u32, false, false);
                }
            }
            // Saturated: the event array was full, so more is probably ready.
            busy = n > 0 && n == self.poller.capacity();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
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
    fn run_timers(&mut self) {
        // `io.now` is already the tick of `woke_at` (set when the wait returned).
        let now = self.woke_at;
        self.expire_dials(now);
        if !self.wheel.is_empty() {
            self.fire_timers();
        }
        for l in &mut self.listeners {
            l.maybe_resume(now, &self.poller);
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
            self.next_tick = Some(now + delay);
        }
    }

    /// Handles the wheel entries due by now: each live one either expires its
    /// connection or is re-armed for the connection's new (later) deadline.
    fn fire_timers(&mut self) {
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
                Some((at, kind)) if at <= self.io.now => {
                    tracing::debug!(%kind, "connection timed out");
                    self.close(index, CloseReason::Timeout(kind));
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

    fn is_live(&self, index: u32, gen: u32) -> bool {
        self.slots
            .get(index as usize)
            .is_some_and(|s| s.conn.as_ref().is_some_and(|c| c.gen == gen))
    }

    // ----- accepting and opening -----

    fn accept(&mut self, li: usize) {
        for _ in 0..ACCEPTS_PER_EVENT {
            let Some(l) = self.listeners.get_mut(li) else {
                return;
            };
            match l.accept(&self.poller) {
                Accepted::Conn(fd, _peer) => {
                    if let Some(max) = self.opts.max_connections.filter(|&m| m > 0) {
                        if self.engine.connection_count() >= max {
                            // Over the limit: accepted and closed at once (see Options).
                            drop(fd);
                            self.engine.note_rejected();
                            continue;
                        }
                    }
                    let is_tcp = l.sock.is_tcp();
                    listener::configure(&fd, is_tcp, &self.opts);
                    self.io.shared.connections.fetch_add(1, Ordering::Relaxed);
                    self.open(fd, None);
                }
                Accepted::Done => return,
            }
        }
    }

    /// Starts serving an accepted socket. The connection count was already raised.
    /// Returns the new connection's slot index and generation.
    fn open(&mut self, fd: OwnedFd, state: Option<H::State>) -> Option<(u32, u32)> {
        let (index, gen) = match self.free.pop() {
            Some(free) => free,
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(Slot { conn: None });
                ((self.slots.len() - 1) as u32, 0)
            }
            None => {
                tracing::error!("connection slab is full; dropping connection");
                self.io.shared.connections.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
        };
        let slot = &mut self.slots[index as usize];
        let mut inner = ConnInner::new(fd, self.io.now, self.io.flow.timeouts());
        inner.gen = gen;
        if let Some(s) = state {
            inner.state = s;
        }
        if let Err(e) = self.poller.add(
            inner.raw_fd(),
            token(index, gen),
            Interest::READ,
            self.trigger,
        ) {
            tracing::error!(error = %e, "could not register connection; dropping it");
            self.free.push((index, gen));
            self.io.shared.connections.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        slot.conn = Some(inner);
        self.io.shared.stats.accepted.add(1);
        self.callback(index, gen, |h, c| h.on_open(c));
        Some((index, gen))
    }

    // ----- handler callbacks -----

    /// Runs one handler callback on a connection, then applies its outcome.
    fn callback(
        &mut self,
        index: u32,
        gen: u32,
        f: impl FnOnce(&mut H, &mut Conn<'_, H::State>) -> Action,
    ) {
        let Some(result) = self.invoke(index, gen, f) else {
            return;
        };
        self.after_callback(index, result);
    }

    /// Runs one handler callback on a connection (panics caught), without acting
    /// on its outcome.
    fn invoke(
        &mut self,
        index: u32,
        gen: u32,
        f: impl FnOnce(&mut H, &mut Conn<'_, H::State>) -> Action,
    ) -> Option<std::thread::Result<Action>> {
        let inner = self.slots[index as usize].conn.as_mut()?;
        let mut conn = Conn::new(inner, &mut self.io, index, gen, None);
        let handler = &mut self.handler;
        let result = catch_unwind(AssertUnwindSafe(|| f(handler, &mut conn)));
        conn.finish();
        Some(result)
    }

    #[inline]
    fn after_callback(&mut self, index: u32, result: std::thread::Result<Action>) {
        match result {
            Ok(Action::None) => self.settle(index),
            other => self.after_callback_slow(index, other),
        }
    }

    #[cold]
    fn after_callback_slow(&mut self, index: u32, result: std::thread::Result<Action>) {
        match result {
            Err(p) => {
                tracing::error!(
                    panic = panic_message(&*p),
                    "handler panicked; closing its connection"
                );
                self.close(index, CloseReason::Panicked);
                return;
            }
            Ok(Action::Shutdown) => self.engine.signal_stop(),
            Ok(Action::Close) => {
                if let Some(c) = self.slots[index as usize].conn.as_mut() {
                    c.drain(Drain::Local);
                }
            }
            Ok(Action::None) => {}
        }
        self.settle(index);
    }

    /// After anything touched a connection: close it if it failed or finished
    /// draining; otherwise update the loop's gauges, tell the handler about a
    /// water-mark crossing, arm its timer if a deadline came nearer, and bring its
    /// poller interest up to date.
    #[inline]
    fn settle(&mut self, index: u32) {
        // The common case after a callback (nothing failed or queued, no timers,
        // interest unchanged) costs a few compares and no call.
        if let Some(c) = self.slots[index as usize].conn.as_ref() {
            if c.is_quiet(&self.io.flow) {
                return;
            }
        }
        self.settle_slow(index);
    }

    #[inline(never)]
    fn settle_slow(&mut self, index: u32) {
        let Some(gen) = self.slots[index as usize].conn.as_ref().map(|c| c.gen) else {
            return;
        };
        let mut notified = 0;
        loop {
            let Some(c) = self.slots[index as usize].conn.as_mut() else {
                return;
            };
            if let Some(reason) = c.take_failed() {
                self.close(index, reason);
                return;
            }
            if let Some(d) = c.draining {
                if c.outbound.is_empty() {
                    let reason = c.drain_reason(d);
                    self.close(index, reason);
                    return;
                }
            }
            c.account(&mut self.io.tally, self.io.now);
            if c.draining.is_some() || notified == MAX_NOTIFY {
                break;
            }
            let writable = c.writable_now(&self.io.flow);
            if writable != c.is(flag::UNWRITABLE) {
                break; // no crossing
            }
            c.set(flag::UNWRITABLE, !writable);
            notified += 1;
            let res = self.invoke(index, gen, |h, c| {
                h.on_writable_changed(c, writable);
                Action::None
            });
            if let Some(Err(p)) = res {
                tracing::error!(
                    panic = panic_message(&*p),
                    "handler panicked; closing its connection"
                );
                self.close(index, CloseReason::Panicked);
                return;
            }
        }
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return;
        };
        if c.has_timers(&self.io.flow) {
            if let Some((at, _)) = c.next_expiry(&self.io.flow) {
                let armed = c.armed();
                if armed == 0 || at < armed {
                    c.set_armed(at, self.io.now);
                    self.wheel.insert(token(index, gen), at);
                }
            }
        }
        let wanted = c.wanted_interest(self.io.flow.max_in);
        if wanted != c.interest {
            match self
                .poller
                .modify(c.raw_fd(), token(index, gen), wanted, self.trigger)
            {
                Ok(()) => c.interest = wanted,
                Err(e) => self.close(index, CloseReason::Io(e)),
            }
        }
    }

    // ----- I/O -----

    /// A readiness event for a connection.
    #[inline(always)]
    fn on_conn_event(&mut self, ev: Event) {
        let (index, gen) = (ev.token as u32, (ev.token >> 32) as u32);
        // Stale events (the connection closed earlier this round) are dropped by
        // the generation checks of `read_once` and of `is_live`.
        if ev.wants_read() {
            self.on_readable(index, gen, ev.read_closed(), ev.error());
        }
        if ev.writable() && self.is_live(index, gen) {
            self.on_writable(index);
        }
    }

    #[inline(always)]
    fn on_readable(&mut self, index: u32, gen: u32, read_closed: bool, error: bool) {
        if self.trigger != Trigger::Edge {
            // Level-triggered: one read per event; a socket with more to read is
            // reported again by the next wait, after every other ready connection.
            self.read_once(index, gen, read_closed, error);
            return;
        }
        for _ in 0..self.opts.read_budget {
            if !self.read_once(index, gen, read_closed, error) {
                return;
            }
        }
        // Edge-triggered and out of budget with data left: no new edge will come,
        // so the loop remembers to read it next round.
        if self.is_live(index, gen) {
            self.et_pending.push(token(index, gen));
        }
    }

    /// One read and the `on_traffic` it feeds. Returns whether the socket may have
    /// more to read (the read filled its buffer, or the peer half-closed and the
    /// end of stream is still to be read).
    ///
    /// This is the hot path of every server; it borrows the loop's fields one by
    /// one (slot, read buffer, `io`, handler) so the connection is looked up once
    /// and a callback that leaves nothing to do costs a few compares afterwards.
    #[inline(always)]
    fn read_once(&mut self, index: u32, gen: u32, read_closed: bool, error: bool) -> bool {
        let Some(c) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())
            .filter(|c| c.gen == gen)
        else {
            return false;
        };
        let max_in = self.io.flow.max_in;
        if !c.wants_read(max_in) {
            // Not reading (closing, half-closed, paused or at the inbound cap):
            // only a hang-up or error matters.
            if error {
                self.on_hangup(index);
            }
            return false;
        }
        // Never buffer past the inbound cap.
        let want = (max_in - c.inbound.len()).min(self.read_buf.len());
        match crate::sys::read(c.fd.as_fd(), &mut self.read_buf[..want]) {
            Ok(0) => {
                self.on_eof(index);
                false
            }
            Ok(n) => {
                self.io.tally.bytes_in += n as u64;
                c.stamp_rx(self.io.now);
                // Fresh bytes are offered in place; only a connection that already
                // holds a partial message gets them appended to its ring first.
                let fresh = if c.inbound.is_empty() {
                    Some(&self.read_buf[..n])
                } else {
                    c.inbound.push(&self.read_buf[..n], &mut self.io.pool);
                    None
                };
                let mut conn = Conn::new(c, &mut self.io, index, gen, fresh);
                let handler = &mut self.handler;
                let res = catch_unwind(AssertUnwindSafe(|| handler.on_traffic(&mut conn)));
                conn.finish();
                let quiet = matches!(res, Ok(Action::None)) && conn.inner.is_quiet(&conn.io.flow);
                if !quiet {
                    self.after_callback_slow(index, res);
                }
                n == want || read_closed
            }
            Err(crate::sys::Errno::AGAIN) => false,
            Err(crate::sys::Errno::INTR) => true,
            Err(e) => {
                self.close(index, CloseReason::from_io(e.into()));
                false
            }
        }
    }

    fn on_eof(&mut self, index: u32) {
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return;
        };
        c.set(flag::READ_CLOSED, true);
        c.drain(Drain::PeerClosed);
        // Whatever was written or queued is still delivered before the close.
        self.settle(index);
    }

    fn on_hangup(&mut self, index: u32) {
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return;
        };
        let reason = match c.fd_error() {
            Some(e) => CloseReason::from_io(e),
            None => CloseReason::PeerClosed,
        };
        self.close(index, reason);
    }

    fn on_writable(&mut self, index: u32) {
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return;
        };
        if let Err(e) = c.flush(&mut self.io) {
            self.close(index, CloseReason::from_io(e));
            return;
        }
        self.settle(index);
    }

    /// Closes a connection now: `on_close` once, callbacks failed, buffers back to
    /// the pool, slot freed (its generation bumped), descriptor closed.
    pub(crate) fn close(&mut self, index: u32, reason: CloseReason) {
        let slot = &mut self.slots[index as usize];
        let Some(mut inner) = slot.conn.take() else {
            return;
        };
        let gen = inner.gen;
        inner.set(flag::CLOSED, true);
        match &reason {
            CloseReason::Panicked | CloseReason::Io(_) => {
                tracing::warn!(%reason, "connection closed")
            }
            CloseReason::Protocol(_) => tracing::info!(%reason, "connection closed"),
            _ => tracing::trace!(%reason, "connection closed"),
        }
        self.io.shared.stats.note_close(&reason);
        inner.unaccount(&mut self.io.tally);
        // Whoever sees the connection closed (in `on_close` or by its count) also
        // sees the gauges without it.
        self.io.shared.stats.publish(&self.io.tally);
        {
            let mut conn = Conn::new(&mut inner, &mut self.io, index, gen, None);
            let handler = &mut self.handler;
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| handler.on_close(&mut conn, &reason)))
            {
                tracing::error!(panic = panic_message(&*p), "on_close panicked");
            }
        }
        inner.fail_waiters();
        inner.release_buffers(&mut self.io.pool);
        drop(inner); // closes the descriptor, which also removes it from epoll
                     // The slot's next connection gets the next generation, so stale tokens
                     // and handles of this one never match it.
        self.free.push((index, gen.wrapping_add(1)));
        self.io.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }

    // ----- tasks from other threads -----

    /// Runs queued tasks; returns true if some were left for the next round.
    fn run_tasks(&mut self) -> bool {
        let mut tasks = std::mem::take(&mut self.tasks);
        let more = self.io.shared.queue.take(&mut tasks, TASKS_PER_ROUND);
        for task in tasks.drain(..) {
            self.run_task(task);
        }
        self.tasks = tasks;
        self.flush_queued();
        more
    }

    /// Writes what the last batch of async writes queued, one gathered write per
    /// connection.
    fn flush_queued(&mut self) {
        let mut list = std::mem::take(&mut self.to_flush);
        for &(index, gen) in &list {
            if !self.is_live(index, gen) {
                continue;
            }
            let c = self.slots[index as usize].conn.as_mut().expect("live");
            c.set(flag::FLUSH_PENDING, false);
            match c.flush(&mut self.io) {
                Ok(()) => self.settle(index),
                Err(e) => self.close(index, CloseReason::from_io(e)),
            }
        }
        list.clear();
        self.to_flush = list;
    }

    fn run_task(&mut self, task: Task) {
        match task {
            Task::Write {
                index,
                gen,
                data,
                cb,
            } => self.async_write(index, gen, cb, |c, out| c.queue_owned(data, out)),
            Task::Writev {
                index,
                gen,
                data,
                cb,
            } => self.async_write(index, gen, cb, |c, out| {
                data.into_iter().try_for_each(|v| c.queue_owned(v, out))
            }),
            Task::PauseRead { index, gen, pause } => {
                if self.is_live(index, gen) {
                    if let Some(c) = self.slots[index as usize].conn.as_mut() {
                        if c.is(flag::PAUSED) && !pause {
                            c.restart_rx(self.io.now);
                        }
                        c.set(flag::PAUSED, pause);
                    }
                    self.settle(index);
                }
            }
            Task::Wake { index, gen } => {
                if self.is_live(index, gen) {
                    self.callback(index, gen, |h, c| h.on_traffic(c));
                }
            }
            Task::Close { index, gen } => {
                if self.is_live(index, gen) {
                    if let Some(c) = self.slots[index as usize].conn.as_mut() {
                        c.drain(Drain::Handle);
                    }
                    self.settle(index);
                }
            }
            Task::Adopt { fd } => {
                if self.stopping || self.drain_until.is_some() {
                    drop(fd);
                    self.io.shared.connections.fetch_sub(1, Ordering::Relaxed);
                } else {
                    self.open(fd, None);
                }
            }
            Task::Stop => self.begin_drain(),
            Task::StopNow => self.stopping = true,
            Task::Connect(dial) => self.start_dial(dial),
        }
    }

    /// A graceful stop: no more accepting or reading; each connection closes (with
    /// `EngineStopped`) as soon as its outbound queue is empty, and whatever is left
    /// when `drain_timeout` passes is closed by `shutdown`.
    fn begin_drain(&mut self) {
        if self.drain_until.is_some() {
            self.stopping = true; // asked twice: stop now
            return;
        }
        self.drain_until = Some(Instant::now() + self.opts.drain_timeout);
        for l in &mut self.listeners {
            l.deregister(&self.poller);
        }
        self.listeners.clear();
        for index in 0..self.slots.len() as u32 {
            if let Some(c) = self.slots[index as usize].conn.as_mut() {
                c.drain(Drain::EngineStopped);
                self.settle(index);
            }
        }
    }

    fn async_write(
        &mut self,
        index: u32,
        gen: u32,
        cb: Option<crate::WriteCallback>,
        write: impl FnOnce(&mut ConnInner<H::State>, &mut LoopIo) -> Result<(), crate::conn::WriteError>,
    ) {
        let Some(c) = self.slots.get_mut(index as usize).and_then(|s| {
            s.conn
                .as_mut()
                .filter(|c| c.gen == gen && c.draining.is_none() && !c.has_failed())
        }) else {
            if let Some(cb) = cb {
                run_callback(cb, Err(Error::ConnectionClosed));
            }
            return;
        };
        match write(c, &mut self.io) {
            Ok(()) => {
                if let Some(cb) = cb {
                    c.add_waiter(cb, self.io.now);
                }
                // Written once the whole task batch is in: a burst of async writes
                // to one connection leaves in one gathered write, not one each.
                if !c.is(flag::FLUSH_PENDING) {
                    c.set(flag::FLUSH_PENDING, true);
                    self.to_flush.push((index, gen));
                }
            }
            Err(e) => {
                let reason = e.close_reason();
                if let Some(cb) = cb {
                    run_callback(cb, Err(e.into_error()));
                }
                self.close(index, reason);
            }
        }
    }

    // ----- shutdown -----

    fn shutdown(&mut self) {
        for l in &mut self.listeners {
            l.deregister(&self.poller);
        }
        self.listeners.clear();
        for task in self.io.shared.queue.close() {
            match task {
                Task::Adopt { fd, .. } => {
                    drop(fd);
                    self.io.shared.connections.fetch_sub(1, Ordering::Relaxed);
                }
                other => other.fail(|| Error::EngineStopped),
            }
        }
        self.fail_dials();
        for index in 0..self.slots.len() as u32 {
            if let Some(c) = self.slots[index as usize].conn.as_mut() {
                // One last non-blocking attempt to send what is queued.
                let _ = c.flush(&mut self.io);
                self.close(index, CloseReason::EngineStopped);
            }
        }
        let handler = &mut self.handler;
        let info = LoopInfo {
            index: self.io.shared.index,
            engine: &self.engine,
            connections: 0,
        };
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| handler.on_shutdown(&info))) {
            tracing::error!(panic = panic_message(&*p), "on_shutdown panicked");
        }
    }

    // ----- outgoing connections (see `crate::engine::dialer`) -----

    /// A dial or adopt task: connected sockets open at once, connecting ones wait
    /// for writability.
    fn start_dial(&mut self, dial: Box<crate::engine::dialer::Dial>) {
        if self.stopping {
            return dial.fail(Error::EngineStopped);
        }
        if !dial.connecting {
            return self.finish_dial(*dial);
        }
        if let Err((dial, e)) = self.dials.start(dial, &self.poller) {
            let err = dial.connect_error(e);
            dial.fail(err);
        }
    }

    fn on_dial_ready(&mut self, token: u64) {
        if let Some((dial, res)) = self.dials.ready(token, &self.poller) {
            match res {
                Ok(()) => self.finish_dial(*dial),
                Err(e) => {
                    let err = dial.connect_error(e);
                    dial.fail(err);
                }
            }
        }
    }

    fn expire_dials(&mut self, now: Instant) {
        if self.dials.len() > 0 {
            self.dials.expire(now, &self.poller, |dial| {
                let err = Error::ConnectTimeout {
                    addr: dial.done.addr.clone(),
                    timeout: dial.timeout.unwrap_or_default(),
                };
                dial.fail(err);
            });
        }
    }

    fn fail_dials(&mut self) {
        self.dials
            .drain(&self.poller, |dial| dial.fail(Error::EngineStopped));
    }

    /// A connected socket becomes an ordinary connection: `on_open`, then the
    /// dial's callback with its handle.
    fn finish_dial(&mut self, dial: crate::engine::dialer::Dial) {
        let crate::engine::dialer::Dial {
            fd,
            is_tcp,
            state,
            done,
            ..
        } = dial;
        let state = match state.map(|s| s.downcast::<H::State>()) {
            None => None,
            Some(Ok(s)) => Some(*s),
            Some(Err(_)) => {
                return done.complete(Err(Error::Config(
                    "DialOptions::state is not of the handler's State type".into(),
                )))
            }
        };
        listener::configure(&fd, is_tcp, &self.opts);
        self.io.shared.connections.fetch_add(1, Ordering::Relaxed);
        let res = match self.open(fd, state) {
            Some((index, gen)) => Ok(crate::ConnHandle {
                shared: self.io.shared.clone(),
                index,
                gen,
            }),
            None => Err(Error::Io(io::Error::other(
                "could not register the connection with the poller",
            ))),
        };
        done.complete(res);
    }
}
