//! The engine: listeners, event loops, the main reactor, and the threads that run
//! them; how they start and stop; outgoing connections.

mod acceptor;
mod builder;
mod client;
pub(crate) mod dialer;
mod event_loop;
mod handle;
pub(crate) mod listener;
mod load_balancer;
pub(crate) mod shared;
pub(crate) mod stats;
pub(crate) mod task_queue;
pub(crate) mod threads;
pub(crate) mod timer;

pub use builder::{serve, EngineBuilder};
pub use client::Client;
pub use dialer::{DialCallback, DialOptions, Dialer};
pub use handle::EngineHandle;
pub use stats::{ClosedStats, LoopStats, Stats};

use crate::addr::Addr;
use std::thread::JoinHandle;
use threads::join_all;

/// A running engine. Dropping it stops it (see [`EngineHandle::stop`]).
pub struct Engine {
    handle: EngineHandle,
    threads: Vec<JoinHandle<()>>,
    addrs: Vec<Addr>,
    /// The first socket of each listener, in the order given (for hand-over); weak,
    /// so that a stopped engine's listeners close with its threads.
    sockets: Vec<std::sync::Weak<listener::ListenSocket>>,
    /// The backend the loops run on ([`Backend::Auto`](crate::Backend::Auto) resolved).
    backend: crate::Backend,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("addrs", &self.addrs)
            .field("backend", &self.backend)
            .field("handle", &self.handle)
            .finish()
    }
}

impl Engine {
    /// Starts configuring an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::new()
    }

    /// The addresses actually bound (port 0 resolved), in the order given.
    pub fn local_addrs(&self) -> &[Addr] {
        &self.addrs
    }

    /// Duplicates of the listening sockets, one per listener in the order given
    /// (the first of each in [`Mode::ReusePort`](crate::Mode::ReusePort)): what a
    /// process hands to its successor for a restart that refuses no connection
    /// (see [`prefork`](crate::prefork)). Empty once the engine has stopped (its
    /// listeners are closed by then).
    pub fn listener_fds(&self) -> std::io::Result<Vec<std::os::fd::OwnedFd>> {
        self.sockets
            .iter()
            .filter_map(|w| w.upgrade())
            .map(|s| s.fd.try_clone())
            .collect()
    }

    /// The first bound address.
    pub fn local_addr(&self) -> &Addr {
        &self.addrs[0]
    }

    /// The kernel interface the event loops run on: [`Backend::Epoll`](crate::Backend::Epoll)
    /// or [`Backend::IoUring`](crate::Backend::IoUring) ([`Backend::Auto`](crate::Backend::Auto)
    /// resolved at start).
    pub fn backend(&self) -> crate::Backend {
        self.backend
    }

    /// A handle for other threads.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Blocks until the engine has stopped (through a handle, a handler's
    /// [`Action::Shutdown`](crate::Action::Shutdown), or a signal the application
    /// turns into [`EngineHandle::stop`]).
    pub fn wait(mut self) {
        join_all(&mut self.threads);
    }

    /// Stops the engine and waits for its threads.
    pub fn stop(self) {
        self.handle.stop();
        self.wait();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.handle.stop();
            join_all(&mut self.threads);
        }
    }
}
