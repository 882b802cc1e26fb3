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
//! before it) and the connection is closed, as Redis does.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{RespLimits, RespSession, Store};
use crate::{Action, CloseReason, Conn, EventHandler, LoopInfo};

/// Output buffers larger than this are dropped after use instead of being
/// kept for the next batch.
const MAX_RETAINED_OUT: usize = 1024 * 1024;
/// Initial capacity of the per-loop output buffer.
const INITIAL_OUT: usize = 16 * 1024;
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

#[derive(Debug)]
enum StoreRef {
    Shared(Arc<Mutex<Store>>),
    Own(Box<Store>),
}

/// Per-connection state of a [`RedisServer`]: the connection's [`RespSession`].
#[derive(Debug, Default)]
pub struct RedisConn {
    session: Option<RespSession>,
}

impl RedisConn {
    /// The connection's session (`None` before `on_open`).
    pub fn session(&self) -> Option<&RespSession> {
        self.session.as_ref()
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
    purge: bool,
    out: Vec<u8>,
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
            purge: true,
            out: Vec::with_capacity(INITIAL_OUT),
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

    /// Writes the batch output (if any) and returns the action to take.
    fn flush_out(&mut self, conn: &mut Conn<'_, RedisConn>, close: bool) -> Action {
        let mut action = if close { Action::Close } else { Action::None };
        if !self.out.is_empty() && conn.write(&self.out).is_err() {
            action = Action::Close;
        }
        if self.out.capacity() > MAX_RETAINED_OUT {
            self.out = Vec::with_capacity(INITIAL_OUT);
        } else {
            self.out.clear();
        }
        action
    }
}

impl EventHandler for RedisServer {
    type State = RedisConn;

    fn on_open(&mut self, conn: &mut Conn<'_, RedisConn>) -> Action {
        conn.state_mut().session = Some(RespSession::new(self.limits.clone()));
        Action::None
    }

    fn on_traffic(&mut self, conn: &mut Conn<'_, RedisConn>) -> Action {
        if conn.buffered() == 0 {
            return Action::None;
        }
        // Moved out for the call: `peek_all` borrows the whole connection.
        let mut session = match conn.state_mut().session.take() {
            Some(s) => s,
            None => RespSession::new(self.limits.clone()),
        };
        self.out.clear();
        let now = Instant::now();
        let src = conn.peek_all();
        let res = match &mut self.store {
            StoreRef::Own(store) => session.on_bytes(src, &mut self.out, store, now),
            StoreRef::Shared(m) => {
                let mut store = m.lock().unwrap_or_else(PoisonError::into_inner);
                session.on_bytes(src, &mut self.out, &mut store, now)
            }
        };
        conn.state_mut().session = Some(session);
        match res {
            Ok((consumed, close)) => {
                conn.discard(consumed);
                self.flush_out(conn, close)
            }
            Err(_) => {
                // `-ERR Protocol error: ...` is in `out`; ignore what follows.
                let n = conn.buffered();
                conn.discard(n);
                self.flush_out(conn, true)
            }
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, RedisConn>, _reason: &CloseReason) {
        conn.state_mut().session = None;
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
