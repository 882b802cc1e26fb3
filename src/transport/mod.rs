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
//! # When the handler hears of a connection
//!
//! Layers set a connection up in one of two ways, and the difference is who the
//! handler hears about:
//!
//! - **Preamble** ([`LayerState::Preamble`]; a PROXY protocol header). Until every
//!   layer is past its preamble the connection is not yet the client's: the handler
//!   hears nothing of it. `on_open` runs once they are; a connection that fails or
//!   stalls in its preamble closes without any callback (it shows in the stats).
//! - **Handshake** ([`LayerState::Handshaking`]; a TLS handshake). The connection
//!   opens for the handler *at once* (after any preamble): `on_open` runs at
//!   accept, [`EventHandler::on_handshake`](crate::EventHandler::on_handshake)
//!   once the handshake completed (ALPN, SNI and the peer's certificates are then
//!   readable), and `on_traffic` only after that — no plaintext exists before.
//!   Bytes the handler writes before then are held by the layer and sent once the
//!   handshake is done. A handshake that fails, is cut short or stalls closes the
//!   connection with `on_close` once, with the layer's reason
//!   (`CloseReason::Tls`, or [`TimeoutKind::Handshake`](crate::TimeoutKind::Handshake)).
//!   A handler counting its connections in `on_open`/`on_close` therefore sees
//!   every TLS connection, failed handshakes included.
//!
//! Both must finish in time: the layers' [`Layer::preamble_timeout`] (the longest)
//! becomes a setup deadline, counted from accept, that closes the connection with
//! [`TimeoutKind::Handshake`](crate::TimeoutKind::Handshake). It is kept apart from
//! the handler's own [`Conn::set_deadline`](crate::Conn::set_deadline), so a
//! handler setting or clearing its deadline in `on_open` cannot lift it.
//!
//! # The rest of a layer's life
//!
//! - **Done.** A layer with nothing more to do (a PROXY header, once parsed) retires:
//!   bytes stop passing through it, and what it learned stays readable.
//! - **Goodbye.** When the connection closes on this side, each layer may queue last
//!   words (a TLS `close_notify`) that are sent, after everything queued before
//!   them, before the descriptor closes.
//! - **Peer closed.** A layer can see the peer end the stream inside it (a TLS
//!   `close_notify`); the loop then treats the connection as half-closed by the peer.
//! - **Lingering.** A connection closed on this side keeps reading until the peer
//!   ends the stream (see [`Options::linger_timeout`](crate::Options::linger_timeout));
//!   on a layered connection those reads still go through the layers — their
//!   plaintext is dropped — so a TLS peer that answers `close_notify` with its own
//!   but keeps the socket open ends the linger at once.
//!
//! # Buffers
//!
//! A layer keeps bytes of its own only while it must (a TLS record cut short, a
//! write held during the handshake), in blocks of the loop's pool that go back as
//! soon as they are empty: an idle layered connection holds no buffer. The bytes a
//! layer produces for the wire (records) are built in one per-loop scratch vector
//! ([`LayerIo::wire`]) and sent straight from it when nothing is queued; only what
//! the socket does not take is copied into the connection's outbound queue.
//!
//! Layers live in the connection's boxed cold state, so a connection on a plain
//! listener pays nothing for this: its bytes take the loop's fast path, and the
//! check that sends a layered connection elsewhere is folded into tests the fast
//! path makes anyway.

use crate::addr::ToAddr;
use crate::buffer::{BufferPool, LinkedBuffer, RingBuffer};
use crate::conn::CloseReason;
use crate::engine::dialer::Completion;
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
    /// Bytes for the wire too, appended contiguously: the loop sends them straight
    /// from here when nothing is queued (the cheap way for records built in place)
    /// and queues them after `down` otherwise. A per-loop scratch: it may hold
    /// bytes of the stages before, so append to it, never clear it.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))] // written by the TLS layer
    pub(crate) wire: &'a mut Vec<u8>,
    /// The loop's buffer pool.
    pub(crate) pool: &'a mut BufferPool,
}

/// Where a layer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LayerState {
    /// Still in its preamble: the handler must not hear of the connection yet.
    Preamble,
    /// In its handshake: the connection is open for the handler, but no bytes come
    /// up yet and the layer holds what is written (see the [module docs](self)).
    Handshaking,
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
    /// The connection is registered with the loop: a layer that speaks first (a
    /// TLS client's ClientHello) queues its first bytes.
    fn start(&mut self, _io: &mut LayerIo<'_>) -> Result<(), CloseReason> {
        Ok(())
    }
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
    /// How long the preamble or handshake may take (counted from accept).
    fn preamble_timeout(&self) -> Option<Duration> {
        None
    }
    /// Plaintext the layer holds for sending later (written during its
    /// handshake): counted against the outbound cap.
    fn held(&self) -> usize {
        0
    }
    /// The reason a connection closes with, given the one the loop found: a layer
    /// may say more (a TLS layer turns an end of stream during its handshake into
    /// a truncated handshake).
    fn explain_close(&self, reason: CloseReason) -> CloseReason {
        reason
    }
    /// The connection closed: give the layer's buffers back to the pool.
    fn release(&mut self, _pool: &mut BufferPool) {}
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
    /// The address named the `tls://` scheme: a TLS layer must be given.
    pub(crate) tls_scheme: bool,
    /// A TLS layer was given.
    pub(crate) tls: bool,
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
            tls_scheme: addr.names_tls(),
            tls: false,
        }
    }

    /// A listener on a socket that is already bound and listening (inherited from
    /// a parent process or a service manager). `start` checks that it is a
    /// listening stream socket and makes it non-blocking.
    pub fn inherited(socket: impl Into<OwnedFd>) -> ListenConfig {
        ListenConfig {
            source: Source::Inherited(socket.into()),
            layers: Vec::new(),
            tls_scheme: false,
            tls: false,
        }
    }

    /// Adds a layer inside the ones already added (nearer the handler).
    #[allow(dead_code)] // the TLS layer builds on this (the PROXY layer goes outermost)
    pub(crate) fn layer(mut self, factory: Arc<dyn LayerFactory>) -> ListenConfig {
        self.layers.push(factory);
        self
    }

    /// Refuses a configuration that cannot be served (checked by `start`): a
    /// `tls://` address without a TLS configuration.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.tls_scheme && !self.tls {
            let addr = match &self.source {
                Source::Addr(Ok(a)) => a.to_string(),
                _ => "a tls:// address".into(),
            };
            let how = if cfg!(feature = "tls") {
                "give it one with ListenConfig::new(addr).tls(config) and listen_with"
            } else {
                "netloop was built without its `tls` feature"
            };
            return Err(Error::Config(format!(
                "{addr} was given as tls:// but has no TLS configuration: {how}"
            )));
        }
        Ok(())
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
    /// A layer is (or was, when last looked at) in its handshake.
    handshaking: bool,
    /// The tick by which every layer must be past its preamble and handshake (0:
    /// none); it closes with `TimeoutKind::Handshake`.
    pub(crate) deadline: u64,
    /// A dial whose callback waits for the handshake (client side).
    pub(crate) dial: Option<Box<Completion>>,
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
        let handshaking = stack.iter().any(|l| l.state() == LayerState::Handshaking);
        Ok(Layers {
            stack,
            between: RingBuffer::new(),
            opened: false,
            goodbye: false,
            handshaking,
            deadline: 0,
            dial: None,
        })
    }

    /// The longest preamble timeout of the layers.
    pub(crate) fn preamble_timeout(&self) -> Option<Duration> {
        self.stack.iter().filter_map(|l| l.preamble_timeout()).max()
    }

    /// Is every layer past its preamble (may the handler hear of the connection)?
    pub(crate) fn established(&self) -> bool {
        self.stack.iter().all(|l| l.state() != LayerState::Preamble)
    }

    /// Is a layer in its handshake (as of the last look)?
    pub(crate) fn handshaking(&self) -> bool {
        self.handshaking
    }

    /// Is every layer past its preamble and its handshake?
    pub(crate) fn ready(&self) -> bool {
        self.stack
            .iter()
            .all(|l| !matches!(l.state(), LayerState::Preamble | LayerState::Handshaking))
    }

    /// Did a handshake complete since the last call? (Once per connection; the
    /// setup deadline is over once everything is ready.)
    pub(crate) fn take_handshake_done(&mut self) -> bool {
        if self.deadline != 0 && self.ready() {
            self.deadline = 0;
        }
        if self.handshaking
            && !self
                .stack
                .iter()
                .any(|l| l.state() == LayerState::Handshaking)
        {
            self.handshaking = false;
            return true;
        }
        false
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

    /// Plaintext the layers hold for sending later.
    pub(crate) fn held(&self) -> usize {
        self.stack.iter().map(|l| l.held()).sum()
    }

    /// The reason the connection closes with, as the layers explain it.
    pub(crate) fn explain_close(&self, reason: CloseReason) -> CloseReason {
        self.stack
            .iter()
            .fold(reason, |reason, l| l.explain_close(reason))
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

    /// The connection is registered: layers that speak first queue their first
    /// bytes into `outbound` / `wire`.
    pub(crate) fn start(
        &mut self,
        outbound: &mut LinkedBuffer,
        wire: &mut Vec<u8>,
        pool: &mut BufferPool,
    ) -> Result<(), CloseReason> {
        let mut scratch = RingBuffer::new();
        for l in self.stack.iter_mut() {
            let mut io = LayerIo {
                up: &mut scratch,
                down: &mut *outbound,
                wire: &mut *wire,
                pool: &mut *pool,
            };
            l.start(&mut io)?;
        }
        Ok(())
    }

    /// Wire bytes arrived: run them up through the active layers; what comes out
    /// of the last one is appended to `inbound`, bytes the layers send go to
    /// `outbound` or `wire` (the caller sends `wire` after `outbound`).
    pub(crate) fn receive(
        &mut self,
        input: &mut [u8],
        inbound: &mut RingBuffer,
        outbound: &mut LinkedBuffer,
        wire: &mut Vec<u8>,
        pool: &mut BufferPool,
    ) -> Result<(), CloseReason> {
        match self.single() {
            Ok(None) => {
                inbound.push(input, pool);
                Ok(())
            }
            Ok(Some(i)) => {
                let mut io = LayerIo {
                    up: inbound,
                    down: outbound,
                    wire,
                    pool,
                };
                self.stack[i].receive(input, &mut io)
            }
            Err(()) => self.receive_chained(input, inbound, outbound, wire, pool),
        }
    }

    /// [`receive`](Self::receive) through several active layers (briefly, while
    /// an outer one such as a PROXY header hands its first bytes to an inner one).
    /// Each stage's output is the next one's input. A layer's own bytes (a
    /// handshake reply) go straight to the wire: the layers outside it are
    /// retired or pass-through by then.
    #[cold]
    fn receive_chained(
        &mut self,
        input: &mut [u8],
        inbound: &mut RingBuffer,
        outbound: &mut LinkedBuffer,
        wire: &mut Vec<u8>,
        pool: &mut BufferPool,
    ) -> Result<(), CloseReason> {
        let mut input = input.to_vec();
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
                wire: &mut *wire,
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

    /// Bytes written by the handler: run them down through the active layers;
    /// their wire form goes to `outbound` or `wire` (sent after `outbound`).
    pub(crate) fn send(
        &mut self,
        data: &[&[u8]],
        outbound: &mut LinkedBuffer,
        wire: &mut Vec<u8>,
        pool: &mut BufferPool,
    ) -> Result<(), CloseReason> {
        match self.single() {
            Ok(None) => {
                for d in data {
                    outbound.push(d, pool);
                }
                Ok(())
            }
            Ok(Some(i)) => {
                let mut scratch = RingBuffer::new();
                let mut io = LayerIo {
                    up: &mut scratch,
                    down: outbound,
                    wire,
                    pool,
                };
                self.stack[i].send(data, &mut io)
            }
            Err(()) => self.send_chained(data, wire, pool),
        }
    }

    /// [`send`](Self::send) through several active layers, innermost first.
    #[cold]
    fn send_chained(
        &mut self,
        data: &[&[u8]],
        wire: &mut Vec<u8>,
        pool: &mut BufferPool,
    ) -> Result<(), CloseReason> {
        let active: Vec<usize> = self.active().collect();
        let mut pending: Vec<Vec<u8>> = data.iter().map(|d| d.to_vec()).collect();
        for &i in active.iter().rev() {
            let mut down = LinkedBuffer::new();
            let mut own = Vec::new();
            let mut scratch = RingBuffer::new();
            let refs: Vec<&[u8]> = pending.iter().map(|v| v.as_slice()).collect();
            let mut io = LayerIo {
                up: &mut scratch,
                down: &mut down,
                wire: &mut own,
                pool: &mut *pool,
            };
            let res = self.stack[i].send(&refs, &mut io);
            pending = down.chunks().map(|c| c.to_vec()).collect();
            pending.push(own);
            down.clear(pool);
            res?;
        }
        pending.iter().for_each(|p| wire.extend_from_slice(p));
        Ok(())
    }

    /// The connection closes on this side: each active layer queues its last
    /// words, once. Returns whether anything was queued (into `outbound` or
    /// `wire`).
    pub(crate) fn goodbye(
        &mut self,
        outbound: &mut LinkedBuffer,
        wire: &mut Vec<u8>,
        pool: &mut BufferPool,
    ) -> bool {
        if std::mem::replace(&mut self.goodbye, true) {
            return false;
        }
        let before = outbound.len() + wire.len();
        let mut scratch = RingBuffer::new();
        for i in self.active().collect::<Vec<_>>() {
            let mut io = LayerIo {
                up: &mut scratch,
                down: &mut *outbound,
                wire: &mut *wire,
                pool: &mut *pool,
            };
            self.stack[i].goodbye(&mut io);
        }
        scratch.release(pool);
        outbound.len() + wire.len() > before
    }

    /// Returns the layers' buffers to the pool (the connection closed).
    pub(crate) fn release(&mut self, pool: &mut BufferPool) {
        self.between.release(pool);
        for l in self.stack.iter_mut() {
            l.release(pool);
        }
    }
}

mod proxy;
pub(crate) use proxy::ProxyLayer;

#[cfg(test)]
mod tests;
