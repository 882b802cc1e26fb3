//! The TLS transport layer: a [`TlsSession`] plugged into the event loop through
//! the per-listener transport seam (`crate::transport`), on the server side
//! ([`ListenConfig::tls`]) and the client side ([`DialOptions::tls`]).
//!
//! What the layer adds to the session is the buffers the session does not own,
//! each held only while it must be:
//!
//! - **Pending ciphertext.** Wire bytes arrive in the loop's shared read buffer
//!   and are decrypted there, in place. A record cut short by the read (or a
//!   handshake message spanning records) stays *pending*: the layer copies those
//!   bytes into a block of the loop's pool, appends the next read behind them and
//!   hands them to the session again, then gives the block back as soon as
//!   nothing is pending. An idle established connection holds none.
//! - **Plaintext** goes straight from rustls into the connection's inbound ring
//!   (the handler's view), which is pooled and released when consumed as for any
//!   connection.
//! - **Records to send** are built in the loop's wire scratch and sent straight
//!   from it when nothing is queued; what the socket does not take is queued.
//! - **Writes during the handshake** (from `on_open`) are held, in pooled blocks,
//!   and encrypted once the handshake is done.
//!
//! The handshake has a deadline ([`DEFAULT_HANDSHAKE_TIMEOUT`], or
//! [`TlsAcceptor::with_handshake_timeout`] / [`TlsConnector::with_handshake_timeout`])
//! kept apart from the handler's own deadline. An end of stream, reset or socket
//! error before the handshake completed is reported as a truncated handshake
//! ([`TlsError::Interrupted`]).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use super::{TlsAcceptor, TlsConnector, TlsError, TlsSession};
use crate::buffer::{BufferPool, LinkedBuffer};
use crate::conn::CloseReason;
use crate::transport::{Layer, LayerFactory, LayerIo, LayerState};
use crate::{DialOptions, ListenConfig};

/// How long a TLS handshake may take by default, counted from accept (or from
/// connect, for a dial): 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Small pieces written together (a response head and its body) are sealed into
/// one record when they add up to at most this (one record's worth of plaintext).
const COALESCE: usize = 16 * 1024;

/// Records built in the wire scratch move to the connection's queue once they
/// add up to this much, so a large write never needs a scratch of its size.
const SPILL: usize = 64 * 1024;

impl ListenConfig {
    /// Serves this listener with TLS (feature `tls`): every connection it accepts
    /// gets a server session from `acceptor` — a [`TlsAcceptor`], or an
    /// `Arc<rustls::ServerConfig>` (built with
    /// [`ServerConfigBuilder`](super::ServerConfigBuilder) or by hand; PEM files:
    /// [`TlsAcceptor::from_pem_files`]). Handlers are unchanged: `on_traffic` sees
    /// plaintext, what they write is encrypted, and
    /// [`EventHandler::on_handshake`](crate::EventHandler::on_handshake) tells
    /// when the handshake is done ([`Conn::tls`](crate::Conn::tls) then says what
    /// was negotiated). An address given as `tls://host:port` must be given this.
    ///
    /// A PROXY protocol header comes before the TLS handshake on the wire: add
    /// that layer first.
    ///
    /// ```no_run
    /// # use netloop::tls::{Identity, ServerConfigBuilder};
    /// # use netloop::{Engine, ListenConfig};
    /// # #[derive(Clone)] struct Echo;
    /// # impl netloop::EventHandler for Echo { type State = ();
    /// #   fn on_traffic(&mut self, _c: &mut netloop::Conn<'_, ()>) -> netloop::Action { netloop::Action::None } }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = ServerConfigBuilder::from_pem_files("cert.pem", "key.pem")?
    ///     .alpn(&["http/1.1"])
    ///     .build()?;
    /// let engine = Engine::builder()
    ///     .listen_with(ListenConfig::new("tls://0.0.0.0:8443").tls(config))
    ///     .start_with(Echo)?;
    /// # Ok(()) }
    /// ```
    pub fn tls(mut self, acceptor: impl Into<TlsAcceptor>) -> ListenConfig {
        self.tls = true;
        self.layer(Arc::new(ServerLayers(acceptor.into())))
    }
}

impl<S> DialOptions<S> {
    /// Dials with TLS (feature `tls`): the connection gets a client session from
    /// `connector` (a [`TlsConnector`], or an `Arc<rustls::ClientConfig>` built
    /// with [`ClientConfigBuilder`](super::ClientConfigBuilder)) for
    /// `server_name` (checked against the server's certificate, sent as SNI; see
    /// [`server_name`](super::server_name)). `on_open` runs once connected,
    /// [`EventHandler::on_handshake`](crate::EventHandler::on_handshake) and then
    /// the dial's callback once the handshake is done; a failed handshake gives
    /// the callback [`Error::Handshake`](crate::Error::Handshake). An address
    /// given as `tls://host:port` must be dialed with this.
    ///
    /// ```no_run
    /// # use netloop::tls::{roots_from_pem_file, server_name, ClientConfigBuilder};
    /// # use netloop::{Client, DialOptions};
    /// # fn dial(client: &Client<()>) -> Result<(), Box<dyn std::error::Error>> {
    /// let config = ClientConfigBuilder::new(roots_from_pem_file("ca.pem")?).build()?;
    /// let opts = DialOptions::new().tls(config, server_name("example.com")?);
    /// let conn = client.dial_blocking("tls://127.0.0.1:8443", opts)?;
    /// # Ok(()) }
    /// ```
    pub fn tls(
        self,
        connector: impl Into<TlsConnector>,
        server_name: ServerName<'static>,
    ) -> DialOptions<S> {
        self.layer(Arc::new(ClientLayers {
            connector: connector.into(),
            name: server_name,
        }))
    }
}

/// Makes the server layer of each accepted connection.
struct ServerLayers(TlsAcceptor);

impl LayerFactory for ServerLayers {
    fn open(&self, _peer: &socket2::SockAddr) -> Result<Box<dyn Layer>, CloseReason> {
        let session = self.0.accept().map_err(CloseReason::Tls)?;
        Ok(Box::new(TlsLayer::new(session, self.0.handshake_timeout())))
    }
}

/// Makes the client layer of a dialed connection.
struct ClientLayers {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl LayerFactory for ClientLayers {
    fn open(&self, _peer: &socket2::SockAddr) -> Result<Box<dyn Layer>, CloseReason> {
        let session = self
            .connector
            .connect(self.name.clone())
            .map_err(CloseReason::Tls)?;
        Ok(Box::new(TlsLayer::new(
            session,
            self.connector.handshake_timeout(),
        )))
    }
}

/// One connection's TLS layer (see the [module docs](self)).
pub(crate) struct TlsLayer {
    session: TlsSession,
    /// The wire bytes the session left pending, at the front of a pooled block
    /// (`session.pending_wire()` of them); `None` when there are none.
    pending: Option<Box<[u8]>>,
    /// Plaintext written before the handshake completed.
    held: LinkedBuffer,
    /// The peer sent `close_notify`.
    peer_closed: bool,
    timeout: Duration,
}

impl TlsLayer {
    fn new(session: TlsSession, timeout: Duration) -> TlsLayer {
        TlsLayer {
            session,
            pending: None,
            held: LinkedBuffer::new(),
            peer_closed: false,
            timeout,
        }
    }

    /// The session (for [`Conn::tls`](crate::Conn::tls)).
    pub(crate) fn session(&self) -> &TlsSession {
        &self.session
    }

    /// Seals `plain` into records appended to `io.wire`, spilling the scratch
    /// into the queue once it is large.
    fn seal(&mut self, plain: &[u8], io: &mut LayerIo<'_>) -> Result<(), CloseReason> {
        let pending = pending_slice(&mut self.pending, self.session.pending_wire());
        self.session
            .send(pending, plain, io.wire)
            .map_err(CloseReason::Tls)?;
        if io.wire.len() >= SPILL {
            // Everything in the scratch goes after what is queued: moving it to
            // the end of the queue keeps the order.
            io.down.push(io.wire, io.pool);
            io.wire.clear();
        }
        Ok(())
    }

    /// Encrypts what the handler wrote.
    fn encrypt(&mut self, data: &[&[u8]], io: &mut LayerIo<'_>) -> Result<(), CloseReason> {
        let total: usize = data.iter().map(|d| d.len()).sum();
        let pieces = data.iter().filter(|d| !d.is_empty()).count();
        if pieces > 1 && total <= COALESCE {
            // One record, not one per piece (each costs a header, a tag and a seal).
            let mut joined = io.pool.take(total);
            let mut at = 0;
            for d in data {
                joined[at..at + d.len()].copy_from_slice(d);
                at += d.len();
            }
            let res = self.seal(&joined[..total], io);
            io.pool.give(joined);
            return res;
        }
        for d in data {
            // Sealed in pieces so the scratch spills between them (a record holds
            // 16 KiB of plaintext; a piece is a whole number of records).
            for piece in d.chunks(SPILL) {
                self.seal(piece, io)?;
            }
        }
        Ok(())
    }

    /// The handshake completed: what the handler wrote meanwhile leaves now.
    fn release_held(&mut self, io: &mut LayerIo<'_>) -> Result<(), CloseReason> {
        let held = std::mem::take(&mut self.held);
        let res = held.chunks().try_for_each(|c| self.seal(c, io));
        let mut held = held;
        held.clear(io.pool);
        res
    }

    /// Runs the session over `wire` (the pending bytes, then what arrived).
    fn process(&mut self, wire: &mut [u8], io: &mut LayerIo<'_>) -> Result<usize, TlsError> {
        let LayerIo {
            up,
            wire: out,
            pool,
            ..
        } = io;
        let r = self
            .session
            .receive_with(wire, &mut |p: &[u8]| up.push(p, pool), out)?;
        if r.peer_closed {
            self.peer_closed = true;
        }
        Ok(r.consumed)
    }
}

impl Layer for TlsLayer {
    fn start(&mut self, io: &mut LayerIo<'_>) -> Result<(), CloseReason> {
        if self.session.is_server() {
            return Ok(()); // a server waits for the ClientHello
        }
        self.session.start(io.wire).map_err(CloseReason::Tls)
    }

    fn receive(&mut self, input: &mut [u8], io: &mut LayerIo<'_>) -> Result<(), CloseReason> {
        let was_handshaking = self.session.is_handshaking();
        match self.pending.take() {
            None => {
                // The common case: decrypted in place, in the loop's read buffer.
                let consumed = self.process(input, io).map_err(CloseReason::Tls)?;
                let rest = &input[consumed..];
                if !rest.is_empty() {
                    let mut block = io.pool.take(rest.len());
                    block[..rest.len()].copy_from_slice(rest);
                    self.pending = Some(block);
                }
            }
            Some(mut block) => {
                // A record was cut short: the new bytes go behind it.
                let have = self.session.pending_wire();
                let total = have + input.len();
                if total > block.len() {
                    let mut bigger = io.pool.take(total);
                    bigger[..have].copy_from_slice(&block[..have]);
                    io.pool.give(std::mem::replace(&mut block, bigger));
                }
                block[have..total].copy_from_slice(input);
                let consumed = match self.process(&mut block[..total], io) {
                    Ok(n) => n,
                    Err(e) => {
                        io.pool.give(block);
                        return Err(CloseReason::Tls(e));
                    }
                };
                if consumed == total {
                    io.pool.give(block);
                } else {
                    block.copy_within(consumed..total, 0);
                    self.pending = Some(block);
                }
            }
        }
        if was_handshaking && !self.session.is_handshaking() && !self.held.is_empty() {
            self.release_held(io)?;
        }
        Ok(())
    }

    fn send(&mut self, data: &[&[u8]], io: &mut LayerIo<'_>) -> Result<(), CloseReason> {
        if self.session.is_handshaking() {
            for d in data {
                self.held.push(d, io.pool);
            }
            return Ok(());
        }
        self.encrypt(data, io)
    }

    fn goodbye(&mut self, io: &mut LayerIo<'_>) {
        let pending = pending_slice(&mut self.pending, self.session.pending_wire());
        // Nothing to say before the handshake completed, nor on a failed session.
        if let Err(e) = self.session.close(pending, io.wire) {
            tracing::debug!(error = %e, "TLS close_notify not sent");
        }
    }

    fn state(&self) -> LayerState {
        if self.peer_closed {
            LayerState::PeerClosed
        } else if self.session.is_handshaking() {
            LayerState::Handshaking
        } else {
            LayerState::Open
        }
    }

    fn preamble_timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }

    fn held(&self) -> usize {
        self.held.len()
    }

    fn explain_close(&self, reason: CloseReason) -> CloseReason {
        match reason {
            CloseReason::PeerClosed | CloseReason::Reset | CloseReason::Io(_)
                if self.session.is_handshaking() =>
            {
                CloseReason::Tls(TlsError::Interrupted(reason.to_string()))
            }
            other => other,
        }
    }

    fn release(&mut self, pool: &mut BufferPool) {
        if let Some(block) = self.pending.take() {
            pool.give(block);
        }
        self.held.clear(pool);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The `n` pending wire bytes at the front of the pending block (rustls wants
/// them back on every call).
fn pending_slice(block: &mut Option<Box<[u8]>>, n: usize) -> &mut [u8] {
    match block.as_deref_mut() {
        Some(block) => &mut block[..n],
        None => &mut [],
    }
}
