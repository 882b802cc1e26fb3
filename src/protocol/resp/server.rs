//! A Redis (RESP2) server as a netloop [`EventHandler`].
//!
//! [`RedisServer`] glues the transport-free [`RespSession`] to an event loop:
//! one handler per loop, one [`RespSession`] per connection, one reusable
//! output buffer per loop, and a [`Store`] that is either shared by all loops
//! or private to each ([`StoreMode`]).
//!
//! ```no_run
//! use netloop::protocol::resp::{RedisServer, StoreMode};
//! use netloop::Engine;
//!
//! let engine = Engine::builder()
//!     .loops(2)
//!     .ticker(true) // purges expired keys from `on_tick`
//!     .listen("127.0.0.1:6380")
//!     .start(RedisServer::factory(StoreMode::Shared))
//!     .unwrap();
//! println!("listening on {}", engine.local_addr());
//! engine.wait();
//! ```
//!
//! # Shared store by default, per-loop store on request
//!
//! Following the analysis in [the module docs](super#sharing-the-store-between-event-loops):
//!
//! * [`StoreMode::Shared`] (the default) puts one [`Store`] behind an
//!   `Arc<Mutex<_>>` and locks it **once per batch** of pipelined commands,
//!   not once per command. It is the only layout in which every client sees
//!   every other client's writes, i.e. real Redis semantics (a pipelined
//!   batch even runs atomically). The lock is held for the microseconds a
//!   batch takes, and with pipelining its cost is spread over many commands.
//! * [`StoreMode::PerLoop`] gives each loop its own [`Store`], with no lock
//!   at all. Clients on different loops see different key spaces, so this is
//!   only for throughput benchmarks (or data partitioned by connection), never
//!   a general cache. With one loop both modes have the same semantics.
//!
//! # Expiry
//!
//! Expired keys are invisible as soon as their deadline passes (the store
//! checks on access); the memory is reclaimed by [`Store::purge_expired`],
//! called from [`on_tick`](crate::EventHandler::on_tick) with a bounded
//! budget (turn the engine's ticker on). With a shared store only one loop
//! (the one built with [`RedisServer::purging`] on; loop 0 in
//! [`RedisServer::factory`]) purges.
//!
//! # Replies and errors
//!
//! All replies to a batch go out with one `write`. `QUIT` is answered `+OK`
//! and the connection closes once that is flushed. A protocol error is
//! answered `-ERR Protocol error: ...` (after the replies to the commands
//! before it) and the connection is closed, as Redis does
//! ([`CloseReason::Protocol`] with the reason).
//!
//! # Backpressure and large replies
//!
//! The session stops at an output budget, large values are referenced by the
//! [`Replies`] rather than copied, and replies are sliced into the outbound
//! queue only while the connection is [writable](Conn::is_writable). When it
//! is not, the rest of the replies waits in the connection's state, reading
//! and parsing stop, and [`on_writable_changed`](EventHandler::on_writable_changed)
//! resumes both once the queue drained. A client that pipelines without
//! reading, or asks for a 100 MiB `MGET`, costs the server about the water
//! marks plus socket buffers, not the reply.
//!
//! # Timeouts
//!
//! [`RespTimeouts`] are off by default, as in Redis (`timeout 0`); the
//! example server turns them on. A command started must be complete within
//! [`command`](RespTimeouts::command) (otherwise the client reads
//! [`COMMAND_TIMEOUT_REPLY`] and the connection closes), and a connection
//! without traffic closes after [`idle`](RespTimeouts::idle).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Replies, RespLimits, RespSession, Store};
use crate::{Action, CloseReason, Conn, EventHandler, LoopInfo, TimeoutKind};

/// The error a client reads when its command was not complete within
/// [`RespTimeouts::command`]; the connection closes after it.
pub const COMMAND_TIMEOUT_REPLY: &[u8] = b"-ERR command timeout: incomplete command, closing\r\n";

/// Reply buffers larger than this are dropped after use instead of being
/// kept for the next batch.
const MAX_RETAINED_OUT: usize = 1024 * 1024;
/// Most bytes handed to the outbound queue per write while slicing replies.
const SLICE: usize = 64 * 1024;
/// Deadlines examined per purge tick (bounds the time the store is locked).
const PURGE_BUDGET: usize = 1024;
/// Delay between purge ticks.
const PURGE_INTERVAL: Duration = Duration::from_millis(100);
/// Delay when the last purge used its whole budget (more keys are due).
const PURGE_BACKLOG_INTERVAL: Duration = Duration::from_millis(5);

/// Where a [`RedisServer`]'s keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreMode {
    /// One store shared by all loops, locked once per batch (Redis semantics).
    #[default]
    Shared,
    /// One store per loop, lock-free; clients on different loops see
    /// different keys.
    PerLoop,
}

/// The timeouts a [`RedisServer`] applies to its connections (`None`: off,
/// the default for both, as in Redis). They run on the engine's timing wheel
/// and close the connection with [`CloseReason::Timeout`] (the command
/// timeout after answering [`COMMAND_TIMEOUT_REPLY`]).
///
/// ```
/// use std::time::Duration;
/// use netloop::protocol::resp::RespTimeouts;
/// let t = RespTimeouts { command: Some(Duration::from_secs(10)), ..RespTimeouts::default() };
/// assert_eq!(t.idle, None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RespTimeouts {
    /// A command must be complete this long after its first byte arrived.
    pub command: Option<Duration>,
    /// The longest time a connection may carry no traffic at all.
    pub idle: Option<Duration>,
}

#[derive(Debug)]
enum StoreRef {
    Shared(Arc<Mutex<Store>>),
    Own(Box<Store>),
}

/// Per-connection state of a [`RedisServer`]: the connection's
/// [`RespSession`], replies waiting for the connection to drain, and which
/// timer is armed.
#[derive(Debug, Default)]
pub struct RedisConn {
    session: Option<RespSession>,
    /// Replies not yet handed to the outbound queue (backpressure).
    pending: Replies,
    /// Reading and parsing wait for the outbound queue to drain.
    backpressure: bool,
    /// The command deadline (the connection's timer) is armed.
    command_timer: bool,
}

impl RedisConn {
    /// The connection's session (`None` before `on_open`).
    pub fn session(&self) -> Option<&RespSession> {
        self.session.as_ref()
    }

    /// Whether replies wait for the connection to drain (reading is paused
    /// meanwhile).
    pub fn is_backpressured(&self) -> bool {
        self.backpressure
    }
}

/// A Redis-compatible server handler (one per event loop).
///
/// Build it with [`RedisServer::factory`] for the common cases, or with
/// [`RedisServer::shared`] / [`RedisServer::per_loop`] from a custom factory.
#[derive(Debug)]
pub struct RedisServer {
    store: StoreRef,
    limits: RespLimits,
    timeouts: RespTimeouts,
    purge: bool,
    out: Replies,
    scratch: Vec<u8>,
}

/// How a pass over a connection's input ended.
enum Served {
    Open,
    Close(CloseReason),
}

impl RedisServer {
    /// A handler over a store shared with other loops. It purges expired
    /// keys on ticks; turn that off with [`purging`](Self::purging) on all but
    /// one loop.
    pub fn shared(store: Arc<Mutex<Store>>) -> Self {
        Self::build(StoreRef::Shared(store))
    }

    /// A handler with its own, unshared store.
    pub fn per_loop() -> Self {
        Self::build(StoreRef::Own(Box::new(Store::new())))
    }

    fn build(store: StoreRef) -> Self {
        RedisServer {
            store,
            limits: RespLimits::default(),
            timeouts: RespTimeouts::default(),
            purge: true,
            out: Replies::default(),
            scratch: Vec::new(),
        }
    }

    /// A factory for [`EngineBuilder::start`](crate::EngineBuilder::start):
    /// with [`StoreMode::Shared`] every loop gets the same store and loop 0
    /// purges it; with [`StoreMode::PerLoop`] each loop gets and purges its own.
    pub fn factory(mode: StoreMode) -> impl Fn(usize) -> RedisServer + Send + Sync + 'static {
        let store = match mode {
            StoreMode::Shared => Some(Arc::new(Mutex::new(Store::new()))),
            StoreMode::PerLoop => None,
        };
        move |index| match &store {
            Some(s) => RedisServer::shared(s.clone()).purging(index == 0),
            None => RedisServer::per_loop(),
        }
    }

    /// Sets the parser limits for connections opened from now on.
    pub fn with_limits(mut self, limits: RespLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the timeouts for connections opened from now on.
    pub fn with_timeouts(mut self, timeouts: RespTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Whether this handler purges expired keys from its ticks (default on).
    pub fn purging(mut self, on: bool) -> Self {
        self.purge = on;
        self
    }

    /// Which kind of store this handler uses.
    pub fn mode(&self) -> StoreMode {
        match self.store {
            StoreRef::Shared(_) => StoreMode::Shared,
            StoreRef::Own(_) => StoreMode::PerLoop,
        }
    }

    /// Runs `f` on the store (locking it if shared).
    pub fn with_store<R>(&mut self, f: impl FnOnce(&mut Store) -> R) -> R {
        match &mut self.store {
            StoreRef::Own(s) => f(s),
            StoreRef::Shared(m) => f(&mut m.lock().unwrap_or_else(PoisonError::into_inner)),
        }
    }

    /// Hands `replies` to the outbound queue: whole when they are plain bytes
    /// or `all` is set, otherwise slice by slice while the connection stays
    /// writable. False when the peer is gone.
    fn send(
        scratch: &mut Vec<u8>,
        conn: &mut Conn<'_, RedisConn>,
        replies: &mut Replies,
        all: bool,
    ) -> bool {
        if let Some(bytes) = replies.as_contiguous() {
            let ok = bytes.is_empty() || conn.write(bytes).is_ok();
            replies.reset(MAX_RETAINED_OUT);
            return ok;
        }
        while all || conn.is_writable() {
            scratch.clear();
            if !replies.fill(scratch, SLICE) {
                break;
            }
            if conn.write(scratch).is_err() {
                return false;
            }
        }
        if scratch.capacity() > 2 * SLICE {
            *scratch = Vec::new();
        }
        true
    }

    /// Executes what the connection's input holds, as far as output
    /// backpressure allows, then brings its command timer up to date.
    fn serve(&mut self, conn: &mut Conn<'_, RedisConn>) -> Action {
        // Moved out for the call: `peek_all` borrows the whole connection.
        let mut session = match conn.state_mut().session.take() {
            Some(s) => s,
            None => RespSession::new(self.limits.clone()),
        };
        let served = loop {
            let now = Instant::now();
            let src = conn.peek_all();
            let res = match &mut self.store {
                StoreRef::Own(store) => session.on_bytes(src, &mut self.out, store, now),
                StoreRef::Shared(m) => {
                    let mut store = m.lock().unwrap_or_else(PoisonError::into_inner);
                    session.on_bytes(src, &mut self.out, &mut store, now)
                }
            };
            let (consumed, close) = match res {
                Ok(p) if p.close => (p.consumed, Some(CloseReason::Local)),
                Ok(p) => (p.consumed, None),
                Err(e) => (conn.buffered(), Some(CloseReason::Protocol(e.to_string()))),
            };
            conn.discard(consumed);
            if let Some(reason) = close {
                // Bounded: the session stops at its budget before the
                // command that closes.
                if !Self::send(&mut self.scratch, conn, &mut self.out, true) {
                    self.out.reset(MAX_RETAINED_OUT);
                    break Served::Close(CloseReason::Local);
                }
                break Served::Close(reason);
            }
            if !Self::send(&mut self.scratch, conn, &mut self.out, false) {
                self.out.reset(MAX_RETAINED_OUT);
                break Served::Close(CloseReason::Local);
            }
            if !self.out.is_empty() || !conn.is_writable() {
                // Output backs up: keep the rest of the replies (if any) with
                // the connection and stop reading until it drains.
                let state = conn.state_mut();
                std::mem::swap(&mut self.out, &mut state.pending);
                state.backpressure = true;
                conn.pause_read();
                break Served::Open;
            }
            if !matches!(res, Ok(p) if p.more) {
                break Served::Open;
            }
        };
        let in_command = session.in_command();
        conn.state_mut().session = Some(session);
        match served {
            Served::Open => {
                self.update_timer(conn, in_command);
                Action::None
            }
            Served::Close(CloseReason::Local) => Action::Close,
            Served::Close(reason) => {
                conn.close_with(reason);
                Action::None
            }
        }
    }

    /// Arms the command deadline while a command is in progress (not while
    /// waiting on backpressure), clears it otherwise; only on a change.
    fn update_timer(&self, conn: &mut Conn<'_, RedisConn>, in_command: bool) {
        let Some(limit) = self.timeouts.command else {
            return;
        };
        let state = conn.state();
        let want = !state.backpressure && (in_command || conn.buffered() > 0);
        if want != state.command_timer {
            conn.set_timer(want.then(|| Instant::now() + limit));
            conn.state_mut().command_timer = want;
        }
    }
}

impl EventHandler for RedisServer {
    type State = RedisConn;

    fn on_open(&mut self, conn: &mut Conn<'_, RedisConn>) -> Action {
        conn.state_mut().session = Some(RespSession::new(self.limits.clone()));
        if let Some(idle) = self.timeouts.idle {
            conn.set_idle_timeout(Some(idle));
        }
        Action::None
    }

    /// The command deadline passed: the client is told, then the
    /// connection closes.
    fn on_timer(&mut self, conn: &mut Conn<'_, RedisConn>) -> Action {
        if !std::mem::take(&mut conn.state_mut().command_timer) {
            return Action::None;
        }
        tracing::debug!("RESP command not complete in time; closing");
        let _ = conn.write(COMMAND_TIMEOUT_REPLY);
        let n = conn.buffered();
        conn.discard(n);
        conn.close_with(CloseReason::Timeout(TimeoutKind::Deadline));
        Action::None
    }

    fn on_traffic(&mut self, conn: &mut Conn<'_, RedisConn>) -> Action {
        if conn.buffered() == 0 || conn.state().backpressure {
            return Action::None;
        }
        self.serve(conn)
    }

    fn on_writable_changed(&mut self, conn: &mut Conn<'_, RedisConn>, writable: bool) {
        if !writable || !conn.state().backpressure {
            return;
        }
        let mut pending = std::mem::take(&mut conn.state_mut().pending);
        let ok = Self::send(&mut self.scratch, conn, &mut pending, false);
        if !ok {
            conn.close();
            return;
        }
        if !pending.is_empty() {
            conn.state_mut().pending = pending;
            return;
        }
        conn.state_mut().backpressure = false;
        conn.resume_read();
        if conn.buffered() > 0 && self.serve(conn) == Action::Close {
            conn.close();
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, RedisConn>, _reason: &CloseReason) {
        let state = conn.state_mut();
        state.session = None;
        state.pending = Replies::default();
    }

    fn on_tick(&mut self, _info: &LoopInfo<'_>) -> (Duration, Action) {
        if !self.purge {
            return (Duration::from_secs(3600), Action::None);
        }
        let now = Instant::now();
        let removed = self.with_store(|s| s.purge_expired(now, PURGE_BUDGET));
        let delay = if removed >= PURGE_BUDGET {
            PURGE_BACKLOG_INTERVAL
        } else {
            PURGE_INTERVAL
        };
        (delay, Action::None)
    }
}
