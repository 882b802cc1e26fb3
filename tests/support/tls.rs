//! TLS helpers: certificates (a test CA issuing server and client certificates),
//! in-memory harnesses around netloop's `TlsSession` that keep the pending wire
//! bytes the way the event loop does, and rustls's own buffered connections as
//! independent peers.

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;

use netloop::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use netloop::tls::rustls::{self, ClientConnection, RootCertStore, ServerConnection};
use netloop::tls::{Identity, Received, TlsAcceptor, TlsConnector, TlsError, TlsSession};

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
