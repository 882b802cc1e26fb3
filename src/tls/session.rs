//! [`TlsSession`]: one connection's TLS state over rustls's *unbuffered* API. It
//! owns no I/O buffer: every call borrows the caller's buffers — the wire bytes
//! received, a vector the plaintext is appended to, a vector the records to send
//! are appended to — so an idle established session is rustls's key and state
//! machine plus a few words, and the buffers belong to the event loop.
//!
//! # The contract with the caller
//!
//! - **Received bytes.** [`receive`](TlsSession::receive) takes the wire bytes
//!   as one contiguous `&mut [u8]` (rustls decrypts in place) and reports how
//!   many it consumed. The rest — a record cut short, or a handshake message
//!   that spans records — is *pending*: the caller keeps those bytes untouched and
//!   passes them again, at the front, followed by whatever arrives next. rustls
//!   keeps offsets into them, so they also go to [`send`](TlsSession::send) and
//!   [`close`](TlsSession::close) (usually there are none and an empty slice does).
//!   Their size is bounded by [`pending_wire_limit`](TlsSession::pending_wire_limit).
//! - **Bytes to send.** Every call may append records to its `out` vector:
//!   handshake flights, session tickets, alerts, encrypted application data. The
//!   caller sends them in order, before anything a later call appends.
//! - **Failures.** A call that fails with [`TlsError`] may still have appended a
//!   fatal alert to `out`: send it, then close the connection. The session stays
//!   failed (later calls return the same error).

use std::ops::DerefMut;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, ReadEarlyData, UnbufferedStatus,
    WriteTraffic,
};
use rustls::{CommonState, HandshakeKind, ProtocolVersion, SupportedCipherSuite};

use super::endpoint::{sni_clear, sni_take};
use super::TlsError;

/// The largest TLS record on the wire: a 5-byte header and up to 2^14 + 2048
/// bytes of ciphertext (RFC 8446 §5.2; rustls refuses longer ones).
pub const MAX_RECORD_WIRE: usize = 5 + 16_384 + 2_048;

/// The largest handshake message rustls reassembles (it refuses longer ones, to
/// bound memory): a client certificate chain must fit.
pub const MAX_HANDSHAKE_MESSAGE: usize = 0xffff;

/// Where a session is in its life ([`TlsSession::status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsStatus {
    /// The handshake is under way: no application data yet.
    Handshaking,
    /// Application data flows both ways.
    Established,
    /// The peer sent `close_notify`: no more data will arrive, but this side may
    /// still send (and should [`close`](TlsSession::close) when done).
    PeerClosed,
    /// This side sent `close_notify`: nothing more can be sent.
    Closed,
    /// The session failed ([`TlsError`]); the connection should close.
    Failed,
}

/// What one [`TlsSession::receive`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Received {
    /// Wire bytes used up: drop them from the front; the rest is pending (see the
    /// [module docs](self)).
    pub consumed: usize,
    /// Plaintext bytes appended to `plain`.
    pub plaintext: usize,
    /// The handshake completed during this call (ALPN, SNI and the peer's
    /// certificates are now known).
    pub handshake_done: bool,
    /// The peer's `close_notify` arrived during this call: the plaintext is
    /// complete, and anything after the alert was dropped.
    pub peer_closed: bool,
}

const ESTABLISHED: u8 = 1;
const PEER_CLOSED: u8 = 2;
const SENT_CLOSE: u8 = 4;
/// The ClientHello was resolved (a server's SNI is settled).
const HELLO_SEEN: u8 = 8;

enum Side {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

/// One connection's TLS session, server or client side: the handshake, record
/// encryption and decryption, alerts, `close_notify` — without owning a buffer
/// (see the [module docs](self) for the contract).
///
/// Made by [`TlsAcceptor::accept`](super::TlsAcceptor::accept) or
/// [`TlsConnector::connect`](super::TlsConnector::connect).
pub struct TlsSession {
    conn: Side,
    /// Bytes the last `receive` left pending (they must come back at the front).
    pending: u32,
    flags: u8,
    /// The client's SNI name (server side; noted during the handshake).
    sni: Option<Box<str>>,
    /// Set once a call failed: every later call returns it again.
    failure: Option<Box<TlsError>>,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("side", &if self.is_server() { "server" } else { "client" })
            .field("status", &self.status())
            .field("pending", &self.pending)
            .field("sni", &self.sni)
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    pub(super) fn server(conn: UnbufferedServerConnection) -> TlsSession {
        TlsSession::new(Side::Server(conn))
    }

    pub(super) fn client(conn: UnbufferedClientConnection) -> TlsSession {
        TlsSession::new(Side::Client(conn))
    }

    fn new(conn: Side) -> TlsSession {
        TlsSession {
            conn,
            pending: 0,
            flags: 0,
            sni: None,
            failure: None,
        }
    }

    fn is(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn common(&self) -> &CommonState {
        match &self.conn {
            Side::Server(c) => c,
            Side::Client(c) => c,
        }
    }

    /// Whether this is the server side.
    pub fn is_server(&self) -> bool {
        matches!(self.conn, Side::Server(_))
    }

    /// Where the session is.
    pub fn status(&self) -> TlsStatus {
        if self.failure.is_some() {
            TlsStatus::Failed
        } else if self.is(SENT_CLOSE) {
            TlsStatus::Closed
        } else if self.is(PEER_CLOSED) {
            TlsStatus::PeerClosed
        } else if self.is(ESTABLISHED) {
            TlsStatus::Established
        } else {
            TlsStatus::Handshaking
        }
    }

    /// Whether the handshake is still under way (and has not failed).
    pub fn is_handshaking(&self) -> bool {
        self.status() == TlsStatus::Handshaking
    }

    /// The ALPN protocol agreed on, once the handshake is done (`None`: no ALPN).
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.common().alpn_protocol()
    }

    /// The server name the client asked for with SNI (server side, once the
    /// ClientHello was processed; `None` when the client sent none, or on the
    /// client side).
    pub fn server_name(&self) -> Option<&str> {
        self.sni.as_deref()
    }

    /// The peer's certificate chain (leaf first): the server's on a client; a
    /// client's on a server that asked for one and got it.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.common().peer_certificates()
    }

    /// The protocol version agreed on (`None` before it is).
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.common().protocol_version()
    }

    /// The cipher suite agreed on (`None` before it is).
    pub fn cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.common().negotiated_cipher_suite()
    }

    /// Whether the handshake was full or a resumption (`None` before it is known).
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.common().handshake_kind()
    }

    /// The most pending wire bytes the session can legitimately leave (one record
    /// cut short, or during the handshake a handshake message being reassembled
    /// plus a record): [`receive`](TlsSession::receive) fails with
    /// [`TlsError::Overflow`] beyond it, so a caller's pending buffer is bounded.
    pub fn pending_wire_limit(&self) -> usize {
        if self.is(ESTABLISHED) {
            // Post-handshake messages (tickets, key updates) are small, but may
            // still span two records.
            2 * MAX_RECORD_WIRE
        } else {
            MAX_HANDSHAKE_MESSAGE + MAX_RECORD_WIRE
        }
    }

    /// Wire bytes the last [`receive`](TlsSession::receive) left pending.
    pub fn pending_wire(&self) -> usize {
        self.pending as usize
    }

    fn check(&self) -> Result<(), TlsError> {
        match &self.failure {
            Some(e) => Err((**e).clone()),
            None => Ok(()),
        }
    }

    fn check_pending(&self, wire: &[u8]) {
        // rustls keeps offsets into the pending bytes: handing it fewer would be a
        // caller bug that rustls answers with a panic (slice index out of range).
        assert!(
            wire.len() >= self.pending as usize,
            "TlsSession: the {} pending wire bytes must be passed again (got {})",
            self.pending,
            wire.len()
        );
    }

    fn fail(&mut self, e: impl Into<TlsError>) -> TlsError {
        let e = e.into();
        self.failure = Some(Box::new(e.clone()));
        e
    }

    /// Starts the handshake: on a client, appends the ClientHello to `out`. (A
    /// server needs no start: it waits for the ClientHello.)
    pub fn start(&mut self, out: &mut Vec<u8>) -> Result<(), TlsError> {
        let r = self.receive(&mut [], &mut Vec::new(), out)?;
        debug_assert_eq!(r, Received::default());
        Ok(())
    }

    /// Processes received wire bytes: every complete record in `wire` is handled
    /// (handshake steps, alerts, tickets, application data), plaintext is appended
    /// to `plain`, and whatever must be sent back (handshake flights, tickets,
    /// alerts) is appended to `out`.
    ///
    /// `wire` starts with the bytes the previous call left pending (see the
    /// [module docs](self)); rustls decrypts in place, so they are scratch
    /// afterwards except for the pending tail `wire[consumed..]`.
    ///
    /// # Panics
    ///
    /// If `wire` is shorter than the pending bytes of the previous call (a caller
    /// bug: they must be passed again).
    pub fn receive(
        &mut self,
        wire: &mut [u8],
        plain: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<Received, TlsError> {
        self.receive_with(wire, &mut |p: &[u8]| plain.extend_from_slice(p), out)
    }

    /// [`receive`](TlsSession::receive), handing each record's plaintext to
    /// `plain` as it is decrypted (the event loop's layer appends it straight
    /// to the connection's inbound ring).
    pub(crate) fn receive_with(
        &mut self,
        wire: &mut [u8],
        plain: &mut dyn FnMut(&[u8]),
        out: &mut Vec<u8>,
    ) -> Result<Received, TlsError> {
        self.check()?;
        self.check_pending(wire);
        let mut events = Events::default();
        let mut plaintext = 0;
        let mut sink = |p: &[u8]| {
            plaintext += p.len();
            plain(p);
        };
        let mut consumed = 0;
        let awaiting_hello = self.is_server() && !self.is(HELLO_SEEN);
        if awaiting_hello {
            sni_clear();
        }
        let res = match &mut self.conn {
            Side::Server(c) => drive_receive(c, wire, &mut consumed, &mut sink, out, &mut events),
            Side::Client(c) => drive_receive(c, wire, &mut consumed, &mut sink, out, &mut events),
        };
        if awaiting_hello {
            if let Some(name) = sni_take() {
                self.sni = name;
                self.flags |= HELLO_SEEN;
            }
        }
        if let Err(e) = res {
            // A fatal alert, when rustls has one, is queued: hand it over.
            match &mut self.conn {
                Side::Server(c) => drain_alerts(c, wire, &mut consumed, out),
                Side::Client(c) => drain_alerts(c, wire, &mut consumed, out),
            }
            return Err(self.fail(e));
        }
        let mut r = Received {
            consumed,
            plaintext,
            handshake_done: false,
            peer_closed: false,
        };
        if !self.is(ESTABLISHED) && !self.common().is_handshaking() {
            self.flags |= ESTABLISHED;
            r.handshake_done = true;
        }
        if events.peer_closed && !self.is(PEER_CLOSED) {
            self.flags |= PEER_CLOSED;
            r.peer_closed = true;
        }
        if self.is(PEER_CLOSED) {
            // "Any data received after a closure alert has been received MUST be
            // ignored" (RFC 8446 §6.1); rustls stops reading there.
            r.consumed = wire.len();
        }
        let pending = wire.len() - r.consumed;
        let limit = self.pending_wire_limit();
        if pending > limit {
            return Err(self.fail(TlsError::Overflow { pending, limit }));
        }
        self.pending = pending as u32;
        Ok(r)
    }

    /// Encrypts `data` into records appended to `out` (records of at most 16 KiB
    /// of plaintext each: a large write spans as many as it needs).
    ///
    /// `pending` holds the wire bytes the last [`receive`](TlsSession::receive)
    /// left pending (usually none: pass `&mut []`).
    ///
    /// # Panics
    ///
    /// If `pending` is shorter than what the last `receive` left pending.
    pub fn send(
        &mut self,
        pending: &mut [u8],
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TlsError> {
        self.check()?;
        self.check_pending(pending);
        if self.is(SENT_CLOSE) {
            return Err(TlsError::Closed);
        }
        if !self.is(ESTABLISHED) {
            return Err(TlsError::HandshakeIncomplete);
        }
        if data.is_empty() {
            return Ok(());
        }
        let pending = &mut pending[..self.pending as usize];
        let res = match &mut self.conn {
            Side::Server(c) => drive_write(c, pending, out, |w, out| encrypt(w, data, out)),
            Side::Client(c) => drive_write(c, pending, out, |w, out| encrypt(w, data, out)),
        };
        self.settle_write(res)
    }

    /// Appends a `close_notify` alert to `out`: the peer learns that no more data
    /// follows (and that none was cut off). Later [`send`](TlsSession::send)s fail
    /// with [`TlsError::Closed`]; data may still be received. Idempotent. Before
    /// the handshake completed, and on a failed session, nothing is appended (the
    /// transport simply closes).
    ///
    /// # Panics
    ///
    /// If `pending` is shorter than what the last `receive` left pending.
    pub fn close(&mut self, pending: &mut [u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        if self.failure.is_some() || self.is(SENT_CLOSE) || !self.is(ESTABLISHED) {
            return Ok(());
        }
        self.check_pending(pending);
        let pending = &mut pending[..self.pending as usize];
        let res = match &mut self.conn {
            Side::Server(c) => drive_write(c, pending, out, close_notify),
            Side::Client(c) => drive_write(c, pending, out, close_notify),
        };
        self.flags |= SENT_CLOSE;
        self.settle_write(res)
    }

    fn settle_write(&mut self, res: Result<WriteEnd, rustls::Error>) -> Result<(), TlsError> {
        match res {
            Ok(WriteEnd::Done) => Ok(()),
            Ok(WriteEnd::Closed) => {
                self.flags |= SENT_CLOSE;
                Err(TlsError::Closed)
            }
            Ok(WriteEnd::Blocked) => Err(TlsError::HandshakeIncomplete),
            Err(e) => Err(self.fail(e)),
        }
    }
}

/// The rustls unbuffered connection of either side, driven by the same code.
trait Unbuffered:
    DerefMut<Target = rustls::unbuffered::UnbufferedConnectionCommon<Self::Data>>
{
    type Data;
    fn process<'c, 'i>(&'c mut self, wire: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data>;
    /// Hands early (0-RTT) data to `plain`; returns the bytes to discard.
    fn read_early_data(
        read: &mut ReadEarlyData<'_, '_, Self::Data>,
        plain: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, rustls::Error>;
}

impl Unbuffered for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(&'c mut self, wire: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(wire)
    }
    fn read_early_data(
        read: &mut ReadEarlyData<'_, '_, Self::Data>,
        plain: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, rustls::Error> {
        let mut discard = 0;
        while let Some(record) = read.next_record() {
            let record = record?;
            discard += record.discard;
            plain(record.payload);
        }
        Ok(discard)
    }
}

impl Unbuffered for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(&'c mut self, wire: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(wire)
    }
    fn read_early_data(
        _: &mut ReadEarlyData<'_, '_, Self::Data>,
        _: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, rustls::Error> {
        // rustls yields early data on the server side only.
        Ok(0)
    }
}

#[derive(Default)]
struct Events {
    peer_closed: bool,
}

/// Runs rustls over `wire[*consumed..]` until it needs more input (or is done),
/// handing out plaintext and collecting the records to send.
fn drive_receive<C: Unbuffered>(
    conn: &mut C,
    wire: &mut [u8],
    consumed: &mut usize,
    plain: &mut dyn FnMut(&[u8]),
    out: &mut Vec<u8>,
    events: &mut Events,
) -> Result<(), rustls::Error> {
    loop {
        let UnbufferedStatus { mut discard, state } = conn.process(&mut wire[*consumed..]);
        let state = match state {
            Ok(s) => s,
            Err(e) => {
                *consumed += discard;
                return Err(e);
            }
        };
        let more = match state {
            ConnectionState::ReadTraffic(mut read) => {
                while let Some(record) = read.next_record() {
                    let record = record?;
                    discard += record.discard;
                    plain(record.payload);
                }
                true
            }
            ConnectionState::ReadEarlyData(mut read) => {
                // Never offered (max_early_data_size is 0 in netloop's configs),
                // but a config built by hand may enable it: deliver it as data.
                discard += C::read_early_data(&mut read, plain)?;
                true
            }
            ConnectionState::EncodeTlsData(mut enc) => {
                encode(&mut enc, out);
                true
            }
            ConnectionState::TransmitTlsData(tx) => {
                // `out` is sent by the caller, in order, before anything appended
                // later: as good as transmitted.
                tx.done();
                true
            }
            ConnectionState::PeerClosed => {
                events.peer_closed = true;
                true
            }
            // Waiting for input (handshake) or idle (traffic), or finished.
            ConnectionState::BlockedHandshake
            | ConnectionState::WriteTraffic(_)
            | ConnectionState::Closed => false,
            _ => false,
        };
        *consumed += discard;
        if !more {
            return Ok(());
        }
    }
}

/// After a failure: appends the fatal alert rustls queued, if any.
fn drain_alerts<C: Unbuffered>(
    conn: &mut C,
    wire: &mut [u8],
    consumed: &mut usize,
    out: &mut Vec<u8>,
) {
    // rustls hands queued records out before it looks at input again; once they
    // are out it must not be called again: it would re-read the input that
    // failed (and, after a framing error, queue a second fatal alert). An alert
    // is one record; the bound only guards against a state machine that keeps
    // queueing.
    for _ in 0..8 {
        if !conn.wants_write() {
            return;
        }
        let UnbufferedStatus { discard, state } = conn.process(&mut wire[*consumed..]);
        *consumed += discard;
        match state {
            Ok(ConnectionState::EncodeTlsData(mut enc)) => encode(&mut enc, out),
            _ => return,
        }
    }
}

/// How a write attempt ended.
enum WriteEnd {
    Done,
    /// The handshake is not complete (a session that lost its established state
    /// cannot, but rustls decides).
    Blocked,
    /// Both sides sent `close_notify`.
    Closed,
}

/// Gets rustls to its write state (handing out any queued handshake records
/// first) and runs `write` there.
fn drive_write<C: Unbuffered>(
    conn: &mut C,
    pending: &mut [u8],
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut WriteTraffic<'_, C::Data>, &mut Vec<u8>) -> Result<(), rustls::Error>,
) -> Result<WriteEnd, rustls::Error> {
    let mut write = Some(write);
    // Queued records (a key update, tickets) come out one encode + transmit pair
    // at a time; bounded so a misbehaving state machine cannot spin.
    for _ in 0..64 {
        let UnbufferedStatus { discard, state } = conn.process(pending);
        // Pending bytes are an incomplete record: rustls consumes none of them here.
        debug_assert_eq!(discard, 0);
        match state? {
            ConnectionState::WriteTraffic(mut w) => {
                if let Some(write) = write.take() {
                    write(&mut w, out)?;
                }
                return Ok(WriteEnd::Done);
            }
            ConnectionState::EncodeTlsData(mut enc) => encode(&mut enc, out),
            ConnectionState::TransmitTlsData(tx) => tx.done(),
            ConnectionState::PeerClosed => {}
            ConnectionState::Closed => return Ok(WriteEnd::Closed),
            _ => return Ok(WriteEnd::Blocked),
        }
    }
    Err(rustls::Error::General(
        "rustls did not reach its write state".into(),
    ))
}

/// Appends one queued handshake/alert record to `out`.
fn encode<D>(enc: &mut EncodeTlsData<'_, D>, out: &mut Vec<u8>) {
    let start = out.len();
    // Ask for the size first, so `out` grows by exactly the record.
    let size = match enc.encode(&mut []) {
        Ok(0) => return,
        Err(EncodeError::InsufficientSize(s)) => s.required_size,
        // Already encoded, or (never) written into an empty slice.
        Ok(_) | Err(_) => return,
    };
    out.resize(start + size, 0);
    match enc.encode(&mut out[start..]) {
        Ok(n) => out.truncate(start + n),
        Err(_) => out.truncate(start),
    }
}

/// Record overhead budget per record when sizing `out` for a write: header (5)
/// plus the largest AEAD expansion of rustls's suites (TLS 1.2 AES-GCM: an 8-byte
/// explicit nonce and a 16-byte tag; TLS 1.3: a content-type byte and a tag).
const RECORD_OVERHEAD: usize = 5 + 8 + 16 + 3;

/// Encrypts `data` into `out`, growing it to what rustls needs.
fn encrypt<D>(
    w: &mut WriteTraffic<'_, D>,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), rustls::Error> {
    let start = out.len();
    // rustls fragments at 16 KiB by default (a smaller `max_fragment_size` means
    // more records: the retry below sizes for it).
    let records = data.len().div_ceil(16_384).max(1);
    let mut size = data.len() + records * RECORD_OVERHEAD;
    loop {
        out.resize(start + size, 0);
        match w.encrypt(data, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(s)) if s.required_size > size => {
                size = s.required_size;
            }
            Err(e) => {
                out.truncate(start);
                return Err(rustls::Error::General(format!("encrypting: {e}")));
            }
        }
    }
}

/// Appends a `close_notify` alert to `out`.
fn close_notify<D>(w: &mut WriteTraffic<'_, D>, out: &mut Vec<u8>) -> Result<(), rustls::Error> {
    // One alert record: 2 bytes of alert plus record overhead.
    let start = out.len();
    out.resize(start + 2 + RECORD_OVERHEAD, 0);
    match w.queue_close_notify(&mut out[start..]) {
        Ok(n) => {
            out.truncate(start + n);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(rustls::Error::General(format!(
                "encrypting close_notify: {e}"
            )))
        }
    }
}
