//! Transport layers: per-listener stages between the socket and the handler.
//!
//! Some protocols wrap a connection's byte stream before the application sees it:
//! TLS turns records into plaintext and back; a load balancer's PROXY protocol
//! header comes before the client's first byte and says who the client really is.
//! A listener can be given such layers ([`ListenConfig`]); every connection it
//! accepts then carries one instance of each, and the loop runs every byte through
//! them:
//!
//! ```text
//!   socket ── wire bytes ──► layer 0 ──► layer 1 ──► inbound ring ──► on_traffic
//!   socket ◄── outbound ◄─── layer 0 ◄── layer 1 ◄─────────────── Conn::write
//! ```
//!
//! - **Preamble.** A layer may need bytes before the connection is usable (a TLS
//!   handshake, a PROXY header). Until every layer is past its preamble the handler
//!   hears nothing: `on_open` runs once they are, and a deadline (the layers'
//!   [`Layer::preamble_timeout`]) closes connections that never get there with
//!   [`TimeoutKind::Deadline`](crate::TimeoutKind::Deadline).
//! - **Done.** A layer with nothing more to do (a PROXY header, once parsed) retires:
//!   bytes stop passing through it, and what it learned stays readable.
//! - **Goodbye.** When the connection closes on this side, each layer may queue last
//!   words (a TLS `close_notify`) that are sent before the descriptor closes.
//! - **Peer closed.** A layer can see the peer end the stream inside it (a TLS
//!   `close_notify`); the loop then treats the connection as half-closed by the peer.
//!
//! Layers live in the connection's boxed cold state, so a connection on a plain
//! listener pays nothing for this: its bytes take the loop's fast path, and the
//! check that sends a layered connection elsewhere is folded into tests the fast
//! path makes anyway.

use crate::addr::ToAddr;
use crate::buffer::{BufferPool, LinkedBuffer, RingBuffer};
use crate::conn::CloseReason;
use crate::error::Error;
use std::any::Any;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

/// Where a layer's bytes go: the layer above's input (or the handler's inbound
/// ring) and the wire (the connection's outbound queue).
pub(crate) struct LayerIo<'a> {
    /// Bytes for the next stage towards the handler.
    pub(crate) up: &'a mut RingBuffer,
    /// Bytes for the next stage towards the socket (ultimately the outbound queue).
    pub(crate) down: &'a mut LinkedBuffer,
    /// The loop's buffer pool.
    pub(crate) pool: &'a mut BufferPool,
}

/// Where a layer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LayerState {
    /// Still in its preamble: the handler must not hear of the connection yet.
    Preamble,
    /// Passing bytes both ways.
    #[cfg_attr(not(test), allow(dead_code))]
    // the TLS layer's (PROXY goes from preamble to done)
    Open,
    /// Finished: bytes no longer pass through it (it stays for its accessors).
    Done,
    /// The peer ended the stream inside this layer: no more bytes will come up.
    PeerClosed,
}

/// One connection's instance of a transport layer.
pub(crate) trait Layer: 'static {
    /// Bytes arrived from below (in order; the slice may be modified in place, for
    /// example decrypted). Bytes for above go to `io.up`, bytes the layer itself
    /// must send (handshake messages, alerts) to `io.down`.
    fn receive(&mut self, input: &mut [u8], io: &mut LayerIo<'_>) -> Result<(), CloseReason>;
    /// Bytes written from above: append their wire form to `io.down`.
    fn send(&mut self, data: &[&[u8]], io: &mut LayerIo<'_>) -> Result<(), CloseReason>;
    /// The connection closes on this side: queue last words into `io.down`.
    fn goodbye(&mut self, _io: &mut LayerIo<'_>) {}
    /// Where the layer stands.
    fn state(&self) -> LayerState;
    /// How long the preamble may take (counted from accept).
    fn preamble_timeout(&self) -> Option<Duration> {
        None
    }
    /// The client's address, if this layer learned it (a PROXY protocol header).
    fn peer_addr(&self) -> Option<crate::Addr> {
        None
    }
    /// The layer, for accessors that downcast to its concrete type.
    fn as_any(&self) -> &dyn Any;
}

/// Makes a connection's layer instance when a listener accepts it.
pub(crate) trait LayerFactory: Send + Sync + 'static {
    /// A layer for a connection from `peer`, or why the connection is refused
    /// (for example a PROXY header required from an untrusted source).
    fn open(&self, peer: &socket2::SockAddr) -> Result<Box<dyn Layer>, CloseReason>;
}

/// What a listener does to each connection it accepts, besides accepting it: the
/// transport layers every byte passes through, outermost first.
///
/// ```no_run
/// # use netloop::{Engine, ListenConfig};
/// # #[derive(Clone)] struct Echo;
/// # impl netloop::EventHandler for Echo { type State = ();
/// #   fn on_traffic(&mut self, _c: &mut netloop::Conn<'_, ()>) -> netloop::Action { netloop::Action::None } }
/// let engine = Engine::builder()
///     .listen("127.0.0.1:9000") // a plain listener
///     .listen_with(ListenConfig::new("127.0.0.1:9001")) // the same, configured
///     .start_with(Echo)?;
/// # Ok::<(), netloop::Error>(())
/// ```
pub struct ListenConfig {
    pub(crate) source: Source,
    pub(crate) layers: Vec<Arc<dyn LayerFactory>>,
}

/// Where a listener's socket comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// An address to bind (or why the address given was not one).
    Addr(Result<crate::Addr, Error>),
    /// A socket already bound and listening.
    Inherited(OwnedFd),
}

impl std::fmt::Debug for ListenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenConfig")
            .field("source", &self.source)
            .field("layers", &self.layers.len())
            .finish()
    }
}

impl ListenConfig {
    /// A listener on `addr` (anything [`listen`](crate::EngineBuilder::listen)
    /// takes), with no transport layer yet. A bad address is reported by `start`.
    pub fn new(addr: impl ToAddr) -> ListenConfig {
        ListenConfig {
            source: Source::Addr(addr.to_addr()),
            layers: Vec::new(),
        }
    }

    /// A listener on a socket that is already bound and listening (inherited from
    /// a parent process or a service manager). `start` checks that it is a
    /// listening stream socket and makes it non-blocking.
    pub fn inherited(socket: impl Into<OwnedFd>) -> ListenConfig {
        ListenConfig {
            source: Source::Inherited(socket.into()),
            layers: Vec::new(),
        }
    }

    /// Adds a layer inside the ones already added (nearer the handler).
    #[allow(dead_code)] // the TLS layer builds on this (the PROXY layer goes outermost)
    pub(crate) fn layer(mut self, factory: Arc<dyn LayerFactory>) -> ListenConfig {
        self.layers.push(factory);
        self
    }
}

/// A connection's layers, kept in its cold state.
pub(crate) struct Layers {
    /// Outermost first; retired layers stay (for their accessors) but are skipped.
    stack: Vec<Box<dyn Layer>>,
    /// Bytes between two active layers, waiting for the upper one.
    between: RingBuffer,
    /// Everything past its preamble, `on_open` has run.
    pub(crate) opened: bool,
    /// Last words were queued.
    goodbye: bool,
}

impl Layers {
    /// Instantiates a listener's layers for a connection from `peer`.
    pub(crate) fn open(
        factories: &[Arc<dyn LayerFactory>],
        peer: &socket2::SockAddr,
    ) -> Result<Layers, CloseReason> {
        let stack = factories
            .iter()
            .map(|f| f.open(peer))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Layers {
            stack,
            between: RingBuffer::new(),
            opened: false,
            goodbye: false,
        })
    }

    /// The longest preamble timeout of the layers.
    pub(crate) fn preamble_timeout(&self) -> Option<Duration> {
        self.stack.iter().filter_map(|l| l.preamble_timeout()).max()
    }

    /// Is every layer past its preamble?
    pub(crate) fn established(&self) -> bool {
        self.stack.iter().all(|l| l.state() != LayerState::Preamble)
    }

    /// Has a layer seen the peer end the stream?
    pub(crate) fn peer_closed(&self) -> bool {
        self.stack
            .iter()
            .any(|l| l.state() == LayerState::PeerClosed)
    }

    /// The client's address as the first layer that knows it says.
    pub(crate) fn peer_addr(&self) -> Option<crate::Addr> {
        self.stack.iter().find_map(|l| l.peer_addr())
    }

    /// The first layer of type `T`.
    pub(crate) fn get<T: 'static>(&self) -> Option<&T> {
        self.stack
            .iter()
            .find_map(|l| l.as_any().downcast_ref::<T>())
    }

    fn active(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.stack.len()).filter(|&i| self.stack[i].state() != LayerState::Done)
    }

    /// The one active layer, when exactly one is (the common case: no allocation).
    fn single(&self) -> Result<Option<usize>, ()> {
        let mut it = self.active();
        match (it.next(), it.next()) {
            (None, _) => Ok(None),
            (Some(i), None) => Ok(Some(i)),
            _ => Err(()),
        }
    }

    /// Wire bytes arrived: run them up through the active layers; what comes out
    /// of the last one is appended to `inbound`, bytes the layers send go to
    /// `outbound`.
    pub(crate) fn receive(
        &mut self,
        wire: &mut [u8],
        inbound: &mut RingBuffer,
        outbound: &mut LinkedBuffer,
        pool: &mut BufferPool,
    ) -> Result<(), CloseReason> {
        match self.single() {
            Ok(None) => {
                inbound.push(wire, pool);
                Ok(())
            }
            Ok(Some(i)) => {
                let mut io = LayerIo {
                    up: inbound,
                    down: outbound,
                    pool,
                };
                self.stack[i].receive(wire, &mut io)
            }
            Err(()) => self.receive_chained(wire, inbound, outbound, pool),
        }
    }

    /// [`receive`](Self::receive) through several active layers (briefly, while
    /// an outer one such as a PROXY header hands its first bytes to an inner one).
    /// Each stage's output is the next one's input. A layer's own bytes (a
    /// handshake reply) go straight to `outbound`: the layers outside it are
    /// retired or pass-through by then.
    #[cold]
    fn receive_chained(
        &mut self,
        wire: &mut [u8],
        inbound: &mut RingBuffer,
        outbound: &mut LinkedBuffer,
        pool: &mut BufferPool,
    ) -> Result<(), CloseReason> {
        let mut input = wire.to_vec();
        let mut i = 0;
        while i < self.stack.len() {
            if self.stack[i].state() == LayerState::Done {
                i += 1;
                continue;
            }
            let mut up = std::mem::take(&mut self.between);
            let mut io = LayerIo {
                up: &mut up,
                down: &mut *outbound,
                pool: &mut *pool,
            };
            let res = self.stack[i].receive(&mut input, &mut io);
            input = vec![0u8; up.len()];
            up.read_to(&mut input, pool);
            self.between = up;
            res?;
            i += 1;
        }
        inbound.push(&input, pool);
        Ok(())
    }

    /// Bytes written by the handler: run them down through the active layers
    /// into `outbound`.
    pub(crate) fn send(
        &mut self,
        data: &[&[u8]],
        outbound: &mut LinkedBuffer,
        pool: &mut BufferPool,
    ) -> Result<(), CloseReason> {
        let mut scratch = RingBuffer::new();
        match self.single() {
            Ok(None) => {
                for d in data {
                    outbound.push(d, pool);
                }
                Ok(())
            }
            Ok(Some(i)) => {
                let mut io = LayerIo {
                    up: &mut scratch,
                    down: outbound,
                    pool,
                };
                self.stack[i].send(data, &mut io)
            }
            Err(()) => self.send_chained(data, outbound, pool),
        }
    }

    /// [`send`](Self::send) through several active layers, innermost first.
    #[cold]
    fn send_chained(
        &mut self,
        data: &[&[u8]],
        outbound: &mut LinkedBuffer,
        pool: &mut BufferPool,
    ) -> Result<(), CloseReason> {
        let active: Vec<usize> = self.active().collect();
        let mut pending: Vec<Vec<u8>> = data.iter().map(|d| d.to_vec()).collect();
        for &i in active.iter().rev() {
            let mut down = LinkedBuffer::new();
            let mut scratch = RingBuffer::new();
            let refs: Vec<&[u8]> = pending.iter().map(|v| v.as_slice()).collect();
            let mut io = LayerIo {
                up: &mut scratch,
                down: &mut down,
                pool: &mut *pool,
            };
            let res = self.stack[i].send(&refs, &mut io);
            pending = down.chunks().map(|c| c.to_vec()).collect();
            down.clear(pool);
            res?;
        }
        for p in &pending {
            outbound.push(p, pool);
        }
        Ok(())
    }

    /// The connection closes on this side: each active layer queues its last
    /// words, once. Returns whether anything was queued.
    pub(crate) fn goodbye(&mut self, outbound: &mut LinkedBuffer, pool: &mut BufferPool) -> bool {
        if std::mem::replace(&mut self.goodbye, true) {
            return false;
        }
        let before = outbound.len();
        let mut scratch = RingBuffer::new();
        for i in self.active().collect::<Vec<_>>() {
            let mut io = LayerIo {
                up: &mut scratch,
                down: outbound,
                pool,
            };
            self.stack[i].goodbye(&mut io);
        }
        scratch.release(pool);
        outbound.len() > before
    }

    /// Returns the layers' buffers to the pool.
    pub(crate) fn release(&mut self, pool: &mut BufferPool) {
        self.between.release(pool);
    }
}

mod proxy;
pub(crate) use proxy::ProxyLayer;

#[cfg(test)]
mod tests;
