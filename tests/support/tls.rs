//! TLS helpers: certificates (a test CA issuing server and client certificates),
//! in-memory harnesses around netloop's `TlsSession` that keep the pending wire
//! bytes the way the event loop does, rustls's own buffered connections as
//! independent peers, and for engine-level tests: config pairs, blocking rustls
//! clients over sockets, and a recording echo handler.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netloop::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use netloop::tls::rustls::{self, ClientConnection, RootCertStore, ServerConnection};
use netloop::tls::{ClientConfigBuilder, ServerConfigBuilder, TlsFailure};
use netloop::tls::{Identity, Received, TlsAcceptor, TlsConnector, TlsError, TlsSession};
use netloop::{Action, CloseReason, Conn, ConnId, EventHandler};

use super::Rng;

/// A test CA and what it issues.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate.
    pub cert: CertificateDer<'static>,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert: cert.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A trust store holding this CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        roots
    }

    /// A leaf certificate for `names` (server: DNS names / IPs; client: any
    /// name), chain = [leaf, CA].
    pub fn issue(&self, names: &[&str], client: bool) -> Identity {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            chain: vec![cert.der().clone(), self.cert.clone()],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }
}

/// A netloop session plus the buffers the event loop would keep for it: the
/// pending wire bytes and the plaintext received so far.
pub struct Side {
    pub session: TlsSession,
    pub pending: Vec<u8>,
    pub plain: Vec<u8>,
    /// Every `Received` so far, for assertions on events.
    pub events: Vec<Received>,
}

impl Side {
    /// A server side from `acceptor`.
    pub fn server(acceptor: &TlsAcceptor) -> Side {
        Side::wrap(acceptor.accept().unwrap())
    }

    /// A client side from `connector` for `name`; returns it with its ClientHello.
    pub fn client(connector: &TlsConnector, name: &str) -> (Side, Vec<u8>) {
        let mut side = Side::wrap(
            connector
                .connect(netloop::tls::server_name(name).unwrap())
                .unwrap(),
        );
        let mut hello = Vec::new();
        side.session.start(&mut hello).unwrap();
        (side, hello)
    }

    fn wrap(session: TlsSession) -> Side {
        Side {
            session,
            pending: Vec::new(),
            plain: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Delivers `bytes` (after the pending ones, as the loop does); returns what
    /// the session wants sent back.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<u8>, TlsError> {
        let mut out = Vec::new();
        self.feed_into(bytes, &mut out)?;
        Ok(out)
    }

    fn feed_into(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        let mut wire = std::mem::take(&mut self.pending);
        wire.extend_from_slice(bytes);
        let r = self.session.receive(&mut wire, &mut self.plain, out)?;
        assert!(r.consumed <= wire.len());
        self.pending = wire[r.consumed..].to_vec();
        assert_eq!(self.pending.len(), self.session.pending_wire());
        assert!(self.pending.len() <= self.session.pending_wire_limit());
        self.events.push(r);
        Ok(())
    }

    /// Delivers `bytes` in random pieces (records cut anywhere).
    pub fn feed_chunked(&mut self, bytes: &[u8], rng: &mut Rng) -> Result<Vec<u8>, TlsError> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(20_000));
            self.feed_into(&rest[..n], &mut out)?;
            rest = &rest[n..];
        }
        Ok(out)
    }

    /// Encrypts `data`; returns the records.
    pub fn send(&mut self, data: &[u8]) -> Result<Vec<u8>, TlsError> {
        let mut out = Vec::new();
        self.session.send(&mut self.pending, data, &mut out)?;
        Ok(out)
    }

    /// Closes (close_notify); returns the records.
    pub fn close(&mut self) -> Result<Vec<u8>, TlsError> {
        let mut out = Vec::new();
        self.session.close(&mut self.pending, &mut out)?;
        Ok(out)
    }

    /// Whether any `receive` reported the handshake done / the peer closed.
    pub fn saw_handshake_done(&self) -> bool {
        self.events.iter().any(|e| e.handshake_done)
    }
    pub fn saw_peer_closed(&self) -> bool {
        self.events.iter().any(|e| e.peer_closed)
    }
}

/// rustls's buffered connection (client or server) as an independent peer.
pub struct Peer<C> {
    pub conn: C,
    /// Plaintext received.
    pub plain: Vec<u8>,
    /// Whether the peer's close_notify was read.
    pub closed: bool,
}

/// A rustls client peer.
pub type RustlsClient = Peer<ClientConnection>;
/// A rustls server peer.
pub type RustlsServer = Peer<ServerConnection>;

impl RustlsClient {
    pub fn new(config: Arc<rustls::ClientConfig>, name: &str) -> RustlsClient {
        let name = netloop::tls::server_name(name).unwrap();
        Peer::wrap(ClientConnection::new(config, name).unwrap())
    }
}

impl RustlsServer {
    pub fn new(config: Arc<rustls::ServerConfig>) -> RustlsServer {
        Peer::wrap(ServerConnection::new(config).unwrap())
    }
}

impl<C, D> Peer<C>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
{
    fn wrap(conn: C) -> Peer<C> {
        Peer {
            conn,
            plain: Vec::new(),
            closed: false,
        }
    }

    /// Everything the peer wants to send.
    pub fn outgoing(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut v).unwrap();
        }
        v
    }

    /// Feeds records to the peer, collecting its plaintext.
    pub fn incoming(&mut self, mut bytes: &[u8]) -> Result<(), rustls::Error> {
        loop {
            if !bytes.is_empty() {
                self.conn.read_tls(&mut bytes).unwrap();
            }
            self.conn.process_new_packets()?;
            let mut buf = [0u8; 16384];
            loop {
                match self.conn.reader().read(&mut buf) {
                    Ok(0) => {
                        self.closed = true;
                        break;
                    }
                    Ok(n) => self.plain.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("reading plaintext: {e}"),
                }
            }
            if bytes.is_empty() {
                return Ok(());
            }
        }
    }

    /// Queues plaintext and returns the records.
    pub fn send(&mut self, mut data: &[u8]) -> Vec<u8> {
        let mut records = Vec::new();
        while !data.is_empty() {
            // rustls's writer takes up to its buffer limit at a time.
            let n = self.conn.writer().write(data).unwrap();
            data = &data[n..];
            records.extend(self.outgoing());
        }
        records
    }
}

/// Runs the handshake between a netloop server side and a rustls client to the
/// end (tickets included).
pub fn handshake_with_client(server: &mut Side, client: &mut RustlsClient) -> Result<(), TlsError> {
    for _ in 0..10 {
        let to_server = client.outgoing();
        let to_client = server.feed(&to_server)?;
        client.incoming(&to_client).map_err(TlsError::from)?;
        if !client.conn.is_handshaking()
            && !server.session.is_handshaking()
            && !client.conn.wants_write()
            && to_client.is_empty()
        {
            return Ok(());
        }
    }
    panic!("handshake did not finish in 10 rounds");
}

/// Runs the handshake between a netloop client side (with its ClientHello) and a
/// rustls server.
pub fn handshake_with_server(
    client: &mut Side,
    hello: Vec<u8>,
    server: &mut RustlsServer,
) -> Result<(), TlsError> {
    let mut to_server = hello;
    for _ in 0..10 {
        server.incoming(&to_server).map_err(TlsError::from)?;
        let to_client = server.outgoing();
        to_server = client.feed(&to_client)?;
        if !server.conn.is_handshaking()
            && !client.session.is_handshaking()
            && to_server.is_empty()
            && !server.conn.wants_write()
        {
            return Ok(());
        }
    }
    panic!("handshake did not finish in 10 rounds");
}

/// Runs the handshake between two netloop sides.
pub fn handshake_sessions(
    client: &mut Side,
    hello: Vec<u8>,
    server: &mut Side,
) -> Result<(), TlsError> {
    let mut to_server = hello;
    for _ in 0..10 {
        let to_client = server.feed(&to_server)?;
        to_server = client.feed(&to_client)?;
        if !client.session.is_handshaking()
            && !server.session.is_handshaking()
            && to_server.is_empty()
            && to_client.is_empty()
        {
            return Ok(());
        }
    }
    panic!("handshake did not finish in 10 rounds");
}

// ----- engine-level helpers: TLS servers on netloop, blocking rustls clients -----

/// A test CA with a server certificate for `localhost` / `127.0.0.1`, and the
/// configs built from them (ALPN `x-test` and `http/1.1` offered on both sides).
pub struct TlsPair {
    pub ca: TestCa,
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

impl TlsPair {
    pub fn new() -> TlsPair {
        TlsPair::with(|b| b, |b| b)
    }

    /// A pair whose builders were adjusted by `server` and `client`.
    pub fn with(
        server: impl FnOnce(ServerConfigBuilder) -> ServerConfigBuilder,
        client: impl FnOnce(ClientConfigBuilder) -> ClientConfigBuilder,
    ) -> TlsPair {
        let ca = TestCa::new("netloop test CA");
        let id = ca.issue(&["localhost", "127.0.0.1"], false);
        let server = server(ServerConfigBuilder::new(id).alpn(&["x-test", "http/1.1"]))
            .build()
            .unwrap();
        let client = client(ClientConfigBuilder::new(ca.roots()).alpn(&["x-test"]))
            .build()
            .unwrap();
        TlsPair { ca, server, client }
    }
}

/// A blocking TLS client (rustls's buffered connection over a socket).
pub type TlsStream = rustls::StreamOwned<ClientConnection, TcpStream>;

/// Connects to `to` with `config`, asking for `name`; nothing is sent until the
/// first write or read (the handshake runs then).
pub fn tls_connect(
    to: impl super::Target,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> TlsStream {
    let sock = TcpStream::connect(to.socket_addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let conn = ClientConnection::new(config, netloop::tls::server_name(name).unwrap()).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// Runs the client's handshake to completion.
pub fn tls_handshake(s: &mut TlsStream) -> std::io::Result<()> {
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(())
}

/// Sends `out` while reading what comes back, until `want` bytes came back (or
/// 10 s passed); returns them. For exchanges larger than the socket buffers.
pub fn tls_pump(s: &mut TlsStream, out: &[u8], want: usize) -> Vec<u8> {
    s.sock.set_nonblocking(true).unwrap();
    s.conn.set_buffer_limit(None);
    s.conn.writer().write_all(out).unwrap();
    let mut got = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while got.len() < want && std::time::Instant::now() < end {
        let mut progressed = false;
        while s.conn.wants_write() {
            match s.conn.write_tls(&mut s.sock) {
                Ok(n) if n > 0 => progressed = true,
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("sending: {e}"),
            }
        }
        match s.conn.read_tls(&mut s.sock) {
            Ok(0) => break,
            Ok(_) => {
                progressed = true;
                s.conn.process_new_packets().unwrap();
                let mut buf = [0u8; 16384];
                loop {
                    match s.conn.reader().read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("reading: {e}"),
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("receiving: {e}"),
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    s.sock.set_nonblocking(false).unwrap();
    got
}

/// Reads until the stream ends; returns the bytes and whether it ended cleanly
/// (the server's `close_notify` before end of stream).
pub fn tls_read_to_end(s: &mut TlsStream) -> (Vec<u8>, bool) {
    let mut v = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (v, true),
            Ok(n) => v.extend_from_slice(&buf[..n]),
            Err(_) => return (v, false),
        }
    }
}

/// What a [`TlsLog`] handler saw, per connection.
#[derive(Clone, Debug, PartialEq)]
pub enum TlsSeen {
    Open(ConnId),
    Handshake {
        id: ConnId,
        sni: Option<String>,
        alpn: Option<Vec<u8>>,
        resumed: bool,
        peer_certs: usize,
    },
    Traffic(ConnId, usize),
    /// The reason's text, and its TLS failure kind when it is a TLS reason.
    Close(ConnId, String, Option<TlsFailure>),
}

/// An echo handler over TLS that records its callbacks. Commands (one per
/// message): `quit` → writes `bye` and closes; `big N` → writes N bytes
/// (`i % 251`); anything else is echoed. Writes `hello ` from `on_open` when
/// `greet` is set.
#[derive(Clone, Default)]
pub struct TlsLog {
    pub log: Arc<Mutex<Vec<TlsSeen>>>,
    pub greet: bool,
}

impl TlsLog {
    pub fn seen(&self) -> Vec<TlsSeen> {
        self.log.lock().unwrap().clone()
    }
    pub fn closes(&self) -> Vec<(ConnId, String, Option<TlsFailure>)> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                TlsSeen::Close(id, r, f) => Some((id, r, f)),
                _ => None,
            })
            .collect()
    }
    pub fn handshakes(&self) -> Vec<TlsSeen> {
        self.seen()
            .into_iter()
            .filter(|s| matches!(s, TlsSeen::Handshake { .. }))
            .collect()
    }
    /// Events of connection `id`, in order.
    pub fn of(&self, id: ConnId) -> Vec<TlsSeen> {
        self.seen()
            .into_iter()
            .filter(|s| match s {
                TlsSeen::Open(i) | TlsSeen::Traffic(i, _) | TlsSeen::Close(i, _, _) => *i == id,
                TlsSeen::Handshake { id: i, .. } => *i == id,
            })
            .collect()
    }
    fn push(&self, s: TlsSeen) {
        self.log.lock().unwrap().push(s);
    }
}

/// The bytes `big N` asks for.
pub fn big_pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

impl EventHandler for TlsLog {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        self.push(TlsSeen::Open(conn.id()));
        if self.greet {
            let _ = conn.write(b"hello ");
        }
        Action::None
    }
    fn on_handshake(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let tls = conn.tls().expect("a TLS connection");
        let s = TlsSeen::Handshake {
            id: conn.id(),
            sni: tls.server_name().map(str::to_owned),
            alpn: tls.alpn_protocol().map(<[u8]>::to_vec),
            resumed: tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            peer_certs: tls.peer_certificates().map_or(0, |c| c.len()),
        };
        self.push(s);
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let msg = conn.peek_all().to_vec();
        conn.discard(msg.len());
        self.push(TlsSeen::Traffic(conn.id(), msg.len()));
        if msg == b"quit" {
            let _ = conn.write(b"bye");
            return Action::Close;
        }
        if let Some(n) = std::str::from_utf8(&msg)
            .ok()
            .and_then(|m| m.strip_prefix("big "))
            .and_then(|n| n.trim().parse::<usize>().ok())
        {
            let _ = conn.write(&big_pattern(n));
            return Action::None;
        }
        let _ = conn.write(&msg);
        Action::None
    }
    fn on_close(&mut self, conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        let failure = match reason {
            CloseReason::Tls(e) => Some(e.failure()),
            _ => None,
        };
        self.push(TlsSeen::Close(conn.id(), reason.to_string(), failure));
    }
}
