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
use crate::conn::{flag, Conn, ConnInner, Drain, Expiry, Flow, LoopIo};
use crate::driver::{Driver, Epoll, Interest, Trigger};
use crate::engine::listener::{self, Accepted, ListenSocket, Listener};
use crate::engine::shared::{
    panic_message, report, token, LoopShared, Ready, LISTENER_TOKEN, MAX_SLOTS, NOT_CONN_BIT,
    WAKER_TOKEN,
};
use crate::engine::stats::Tally;
use crate::engine::task_queue::{Layered, Task};
use crate::engine::timer::{later, Clock, Entry, TimerWheel};
use crate::engine::{shared::IN_LOOP, EngineHandle};
use crate::error::Error;
use crate::handler::{Action, EventHandler, LoopInfo};
use crate::options::Options;
use crate::transport::Layers;
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

mod completion;
mod conns;
mod dials;
mod tasks;
mod timers;
mod traffic;

/// A slab entry. The generation lives in the connection while it is open and in
/// the free list while it is not, so a slot is exactly a connection's size.
struct Slot<S> {
    conn: Option<ConnInner<S>>,
}

pub(crate) struct EventLoop<H: EventHandler, D: Driver> {
    engine: EngineHandle,
    opts: Arc<Options>,
    handler: H,
    driver: D,
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
    /// Completion drivers: connections whose sends go out with the next wait.
    sends: Vec<u64>,
}

impl<H: EventHandler> EventLoop<H, Epoll> {
    /// Runs a loop on epoll on the current thread until it is stopped.
    pub(crate) fn run_epoll(
        setup: LoopSetup,
        make_handler: impl FnOnce(usize) -> H,
    ) -> io::Result<()> {
        EventLoop::<H, Epoll>::run(setup, Epoll::new, make_handler)
    }
}

impl<H: EventHandler, D: Driver> EventLoop<H, D> {
    /// Runs a loop on the current thread until it is stopped.
    pub(crate) fn run(
        setup: LoopSetup,
        open_driver: impl FnOnce() -> io::Result<D>,
        make_handler: impl FnOnce(usize) -> H,
    ) -> io::Result<()> {
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
        // Everything that can fail — the driver, the listeners, the read buffer, the
        // handler factory — happens before the loop reports ready, so `start`
        // returns the failure instead of an engine with a dead loop.
        let prepared = (|| {
            let (driver, regs) = Self::setup(open_driver, &shared, listeners)?;
            // A completion driver receives into its own buffer ring instead.
            let size = if D::COMPLETION {
                0
            } else {
                opts.read_buffer_size
            };
            let mut read_buf = Vec::new();
            read_buf
                .try_reserve_exact(size)
                .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e.to_string()))?;
            read_buf.resize(size, 0u8);
            let index = shared.index;
            let handler = catch_unwind(AssertUnwindSafe(|| make_handler(index))).map_err(|p| {
                io::Error::other(format!(
                    "the handler factory panicked: {}",
                    panic_message(&*p)
                ))
            })?;
            Ok((driver, regs, read_buf.into_boxed_slice(), handler))
        })();
        let (driver, regs, read_buf, handler) = report(&ready, prepared)?;
        let clock = Clock::new(Instant::now(), opts.timer_resolution);
        let mut lp = EventLoop {
            io: LoopIo {
                pool: BufferPool::new(opts.buffer_pool_bytes)
                    .with_outbound_block(opts.write_buffer_size),
                flow: Flow::new(&opts, clock),
                // Refreshed before timers run and after each wait.
                now: clock.tick(Instant::now()),
                tally: Tally::default(),
                shared,
                engine: engine.clone(),
                inline_sends: !D::COMPLETION,
            },
            wheel: TimerWheel::new(WHEEL_SLOTS),
            due: Vec::new(),
            drain_until: None,
            trigger: if opts.edge_triggered {
                Trigger::Edge
            } else {
                Trigger::Level
            },
            read_buf,
            engine,
            opts,
            handler,
            driver,
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
            sends: Vec::new(),
        };
        lp.boot();
        lp.main_loop();
        lp.shutdown();
        Ok(())
    }

    /// Creates the poller and registers the waker and the listeners.
    pub(super) fn setup(
        open_driver: impl FnOnce() -> io::Result<D>,
        shared: &LoopShared,
        listeners: Vec<(Arc<ListenSocket>, bool)>,
    ) -> io::Result<(D, Vec<Listener>)> {
        let mut driver = open_driver()?;
        driver.add(
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
                &mut driver,
            )?);
        }
        Ok((driver, regs))
    }

    pub(super) fn boot(&mut self) {
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

    pub(super) fn main_loop(&mut self) {
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
            if D::COMPLETION {
                self.queue_sends();
            }
            // Other threads see this round's counters before the loop blocks.
            self.io.shared.stats.publish(&self.io.tally);
            let n = match self.driver.wait(timeout) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "waiting for events failed; stopping the loop");
                    return;
                }
            };
            // The wait may have been long: traffic stamps must use the time now.
            self.woke_at = Instant::now();
            self.io.now = self.io.flow.clock.tick(self.woke_at);
            self.io.tally.wakeups += 1;
            self.io.tally.events += n as u64;
            for i in 0..n {
                let ev = self.driver.event(i);
                if D::COMPLETION {
                    woken |= self.on_completion(ev);
                } else if ev.token & NOT_CONN_BIT == 0 {
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
            busy = n > 0 && n == self.driver.capacity();
        }
    }

    pub(super) fn is_live(&self, index: u32, gen: u32) -> bool {
        self.slots
            .get(index as usize)
            .is_some_and(|s| s.conn.as_ref().is_some_and(|c| c.gen == gen))
    }
}
