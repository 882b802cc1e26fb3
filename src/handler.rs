//! The event handler: what an application implements.

use crate::conn::{CloseReason, Conn};
use crate::engine::EngineHandle;
use std::time::Duration;

/// What the loop should do after a callback returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Action {
    /// Carry on.
    #[default]
    None,
    /// Close this connection (after flushing what is already queued for it).
    Close,
    /// Stop the whole engine gracefully.
    Shutdown,
}

/// What a loop-level callback (`on_boot`, `on_tick`, `on_shutdown`) can see.
pub struct LoopInfo<'a> {
    pub(crate) index: usize,
    pub(crate) engine: &'a EngineHandle,
    pub(crate) connections: usize,
}

impl std::fmt::Debug for LoopInfo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopInfo")
            .field("index", &self.index)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

impl LoopInfo<'_> {
    /// This loop's index, `0..loops`.
    pub fn index(&self) -> usize {
        self.index
    }
    /// A handle to the engine (stop it, count its connections).
    pub fn engine(&self) -> &EngineHandle {
        self.engine
    }
    /// Connections this loop serves now.
    pub fn connections(&self) -> usize {
        self.connections
    }
}

/// An application's callbacks. Every method runs on an event-loop thread.
///
/// # One handler per loop
/// The engine builds one handler per event loop from a factory (or clones a
/// prototype), so callbacks take `&mut self` and touch their state without locks or
/// atomics, and the handler needs no `Send`/`Sync` bound. State that must be seen
/// by all loops goes behind an `Arc` the factory hands to each handler. This is the
/// choice that keeps the hot path free of synchronisation; a `Sync` handler shared by
/// all loops would force every application to lock.
///
/// # Per-connection state
/// `State` is created with `Default` when a connection opens and lives in the
/// loop's slab next to the socket, typed: no `Box<dyn Any>`, no map lookup.
///
/// # Panics
/// A panic in `on_open`, `on_traffic` or `on_close` is caught: it is logged and the
/// connection is closed with [`CloseReason::Panicked`]; the loop and its other
/// connections carry on.
pub trait EventHandler: 'static {
    /// Per-connection state.
    type State: Default + 'static;

    /// The loop has started (once per loop, before any connection).
    fn on_boot(&mut self, _info: &LoopInfo<'_>) -> Action {
        Action::None
    }

    /// A connection opened. Bytes written with [`Conn::write`] here are the
    /// greeting sent before anything is read (gnet's `out` return value).
    fn on_open(&mut self, _conn: &mut Conn<'_, Self::State>) -> Action {
        Action::None
    }

    /// Bytes arrived (or a [`ConnHandle::wake`](crate::ConnHandle::wake) was
    /// received). Consume what you handle with [`Conn::next`]/[`Conn::discard`];
    /// what you leave stays buffered and is seen again next time.
    fn on_traffic(&mut self, conn: &mut Conn<'_, Self::State>) -> Action;

    /// The peer shut down its sending side (half-close), and
    /// [`Options::allow_half_closure`](crate::Options::allow_half_closure) is on:
    /// nothing more will be read, but the connection stays open for writing — a
    /// reply computed on a worker can still be sent. Return [`Action::Close`] (the
    /// default) to close once what is queued has been sent, or [`Action::None`] and
    /// close later ([`Conn::close`], [`ConnHandle::close`](crate::ConnHandle::close)).
    /// Not called when the option is off: the connection then closes as soon as
    /// its queue is sent.
    fn on_read_closed(&mut self, _conn: &mut Conn<'_, Self::State>) -> Action {
        Action::Close
    }

    /// A timer set with [`Conn::set_timer`] expired. It does not repeat: set it
    /// again from here for a periodic task (a keep-alive ping, a protocol
    /// deadline that should warn before it closes).
    fn on_timer(&mut self, _conn: &mut Conn<'_, Self::State>) -> Action {
        Action::None
    }

    /// The connection closed; called exactly once per opened connection. The socket
    /// is still open (addresses can be read) but writes are discarded.
    fn on_close(&mut self, _conn: &mut Conn<'_, Self::State>, _reason: &CloseReason) {}

    /// The connection's outbound queue crossed a water mark: `writable == false`
    /// once more than the high mark is queued, `true` again once it drained to the
    /// low mark (see [`Options::write_high_water`](crate::Options::write_high_water)
    /// and [`Conn::set_write_water_marks`]). Typical use: stop producing (or
    /// [`pause_read`](Conn::pause_read) a proxied peer) while unwritable.
    ///
    /// Runs on the loop after the callback or flush that caused the change; not
    /// called once the connection is closing.
    fn on_writable_changed(&mut self, _conn: &mut Conn<'_, Self::State>, _writable: bool) {}

    /// Periodic callback when [`Options::ticker`](crate::Options::ticker) is on:
    /// first right after boot, then after the returned delay.
    fn on_tick(&mut self, _info: &LoopInfo<'_>) -> (Duration, Action) {
        (Duration::from_secs(1), Action::None)
    }

    /// The loop is shutting down; all its connections are closed.
    fn on_shutdown(&mut self, _info: &LoopInfo<'_>) {}
}
