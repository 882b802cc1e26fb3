//! netloop's sans-I/O `TlsSession`, in memory, against rustls's own buffered
//! client and server: handshakes (full and resumed, TLS 1.3 and 1.2), ALPN, SNI,
//! client certificates, large writes across records, close_notify both ways, and
//! every kind of bad input ending in a clean error.
#![cfg(feature = "tls")]

mod support;
use support::*;

use std::sync::Arc;

use netloop::tls::rustls::{self, AlertDescription, HandshakeKind, ProtocolVersion};
use netloop::tls::{
    ClientAuth, ClientConfigBuilder, Identity, ServerConfigBuilder, TlsAcceptor, TlsConnector,
    TlsError, TlsFailure, TlsStatus, MAX_RECORD_WIRE,
};

/// A CA, a server certificate for localhost / 127.0.0.1, and the trust roots.
struct Setup {
    ca: TestCa,
    server_id: Identity,
}

fn setup() -> Setup {
    let ca = TestCa::new("netloop test CA");
    let server_id = ca.issue(&["localhost", "127.0.0.1"], false);
    Setup { ca, server_id }
}

impl Setup {
    fn acceptor(&self, f: impl FnOnce(ServerConfigBuilder) -> ServerConfigBuilder) -> TlsAcceptor {
        TlsAcceptor::new(
            f(ServerConfigBuilder::new(self.server_id.clone()))
                .build()
                .unwrap(),
        )
    }

    fn client_config(
        &self,
        f: impl FnOnce(ClientConfigBuilder) -> ClientConfigBuilder,
    ) -> Arc<rustls::ClientConfig> {
        f(ClientConfigBuilder::new(self.ca.roots()))
            .build()
            .unwrap()
    }

    fn client_config_versions(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        Arc::new(
            rustls::ClientConfig::builder_with_provider(netloop::tls::provider())
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(self.ca.roots())
                .with_no_client_auth(),
        )
    }
}

fn established(s: &Setup, acceptor: &TlsAcceptor) -> (Side, RustlsClient) {
    let mut server = Side::server(acceptor);
    let mut client = RustlsClient::new(s.client_config(|b| b), "localhost");
    handshake_with_client(&mut server, &mut client).unwrap();
    (server, client)
}

/// The first byte of a TLS alert record's description when unencrypted, or
/// just "is an alert record" for encrypted ones (TLS 1.3 hides the type).
fn is_record(bytes: &[u8]) -> bool {
    bytes.len() >= 5 && matches!(bytes[0], 20..=23) && bytes[1] == 3
}

#[test]
fn full_handshake_then_data_both_ways() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    let (mut server, mut client) = established(&s, &acceptor);
    assert_eq!(server.session.status(), TlsStatus::Established);
    assert!(server.saw_handshake_done());
    assert_eq!(server.events.iter().filter(|e| e.handshake_done).count(), 1);
    assert_eq!(server.session.handshake_kind(), Some(HandshakeKind::Full));
    assert_eq!(
        server.session.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    assert!(server.session.cipher_suite().is_some());
    assert_eq!(server.session.server_name(), Some("localhost"));
    assert_eq!(server.session.alpn_protocol(), None);
    assert!(server.session.peer_certificates().is_none());
    assert!(server.pending.is_empty());

    // Client to server.
    let records = client.send(b"ping over TLS");
    server.feed(&records).unwrap();
    assert_eq!(server.plain, b"ping over TLS");
    // Server to client.
    let records = server.send(b"pong over TLS").unwrap();
    assert!(is_record(&records));
    client.incoming(&records).unwrap();
    assert_eq!(client.plain, b"pong over TLS");
}

/// The kinds of `n` handshakes in a row from one client config (one resumption
/// store), each followed by a request that must arrive.
fn handshake_kinds(
    acceptor: &TlsAcceptor,
    config: &Arc<rustls::ClientConfig>,
    n: usize,
) -> Vec<HandshakeKind> {
    (0..n)
        .map(|_| {
            let mut server = Side::server(acceptor);
            let mut client = RustlsClient::new(config.clone(), "localhost");
            handshake_with_client(&mut server, &mut client).unwrap();
            assert_eq!(
                client.conn.handshake_kind(),
                server.session.handshake_kind()
            );
            // Resumed sessions still know the SNI name.
            assert_eq!(server.session.server_name(), Some("localhost"));
            server.feed(&client.send(b"request")).unwrap();
            assert_eq!(server.plain, b"request");
            server.session.handshake_kind().unwrap()
        })
        .collect()
}

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

#[test]
fn resumed_handshakes_tls13_and_tls12() {
    use HandshakeKind::{Full, Resumed};
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    for versions in [TLS13, TLS12] {
        let config = s.client_config_versions(versions);
        let kinds = handshake_kinds(&acceptor, &config, 3);
        assert_eq!(kinds, [Full, Resumed, Resumed], "{versions:?}");
    }
}

#[test]
fn resumption_through_the_session_cache_without_tickets() {
    let s = setup();
    let acceptor = s.acceptor(|b| b.tickets(false));
    for versions in [TLS13, TLS12] {
        let config = s.client_config_versions(versions);
        let kinds = handshake_kinds(&acceptor, &config, 2);
        assert_eq!(kinds, [HandshakeKind::Full, HandshakeKind::Resumed]);
    }
}

#[test]
fn no_resumption_when_cache_and_tickets_are_off() {
    let s = setup();
    let acceptor = s.acceptor(|b| b.tickets(false).session_cache(0));
    let kinds = handshake_kinds(&acceptor, &s.client_config(|b| b), 2);
    assert_eq!(kinds, [HandshakeKind::Full, HandshakeKind::Full]);
}

#[test]
fn alpn_agreed_absent_or_refused() {
    let s = setup();
    let acceptor = s.acceptor(|b| b.alpn(&["h2", "http/1.1"]));

    let mut server = Side::server(&acceptor);
    let mut client = RustlsClient::new(s.client_config(|b| b.alpn(&["http/1.1"])), "localhost");
    handshake_with_client(&mut server, &mut client).unwrap();
    assert_eq!(server.session.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(client.conn.alpn_protocol(), Some(&b"http/1.1"[..]));

    // Server preference wins when the client offers both.
    let mut server = Side::server(&acceptor);
    let mut client = RustlsClient::new(
        s.client_config(|b| b.alpn(&["http/1.1", "h2"])),
        "localhost",
    );
    handshake_with_client(&mut server, &mut client).unwrap();
    assert_eq!(server.session.alpn_protocol(), Some(&b"h2"[..]));

    // No ALPN offered: let in, no protocol.
    let mut server = Side::server(&acceptor);
    let mut client = RustlsClient::new(s.client_config(|b| b), "localhost");
    handshake_with_client(&mut server, &mut client).unwrap();
    assert_eq!(server.session.alpn_protocol(), None);

    // Only unknown protocols offered: refused with no_application_protocol.
    let mut server = Side::server(&acceptor);
    let mut client = RustlsClient::new(s.client_config(|b| b.alpn(&["spdy/1"])), "localhost");
    let hello = client.outgoing();
    let mut out = Vec::new();
    let mut wire = hello.clone();
    let err = server
        .session
        .receive(&mut wire, &mut Vec::new(), &mut out)
        .unwrap_err();
    assert_eq!(err.failure(), TlsFailure::Incompatible, "{err}");
    assert_eq!(server.session.status(), TlsStatus::Failed);
    // The alert reaches the client, which reports it.
    let client_err = client.incoming(&out).unwrap_err();
    assert_eq!(
        client_err,
        rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol)
    );
}

#[test]
fn sni_recorded_for_names_and_absent_for_ip_addresses() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    let config = s.client_config(|b| b);

    let mut server = Side::server(&acceptor);
    let mut client = RustlsClient::new(config.clone(), "127.0.0.1");
    handshake_with_client(&mut server, &mut client).unwrap();
    assert_eq!(
        server.session.server_name(),
        None,
        "no SNI for an IP address"
    );

    // Two handshakes interleaved on one thread keep their own names.
    let ca = TestCa::new("multi");
    let acceptor = TlsAcceptor::new(
        ServerConfigBuilder::new(ca.issue(&["a.example", "b.example"], false))
            .build()
            .unwrap(),
    );
    let config = ClientConfigBuilder::new(ca.roots()).build().unwrap();
    let mut server_a = Side::server(&acceptor);
    let mut server_b = Side::server(&acceptor);
    let mut client_a = RustlsClient::new(config.clone(), "a.example");
    let mut client_b = RustlsClient::new(config, "b.example");
    let out_b = server_b.feed(&client_b.outgoing()).unwrap();
    let out_a = server_a.feed(&client_a.outgoing()).unwrap();
    client_a.incoming(&out_a).unwrap();
    client_b.incoming(&out_b).unwrap();
    handshake_with_client(&mut server_a, &mut client_a).unwrap();
    handshake_with_client(&mut server_b, &mut client_b).unwrap();
    assert_eq!(server_a.session.server_name(), Some("a.example"));
    assert_eq!(server_b.session.server_name(), Some("b.example"));
}

#[test]
fn client_certificates_required_optional_and_rejected() {
    let s = setup();
    let client_ca = TestCa::new("client CA");
    let good = client_ca.issue(&["client-1"], true);
    let stranger = TestCa::new("other CA").issue(&["client-2"], true);

    let required = s.acceptor(|b| b.client_auth(ClientAuth::Required(client_ca.roots())));
    // A trusted certificate: in, and visible to the server.
    let mut server = Side::server(&required);
    let mut client = RustlsClient::new(s.client_config(|b| b.identity(good.clone())), "localhost");
    handshake_with_client(&mut server, &mut client).unwrap();
    let chain = server.session.peer_certificates().expect("client chain");
    assert_eq!(chain[0], good.chain[0]);
    let records = client.send(b"authenticated");
    server.feed(&records).unwrap();
    assert_eq!(server.plain, b"authenticated");

    // No certificate: refused.
    let mut server = Side::server(&required);
    let mut client = RustlsClient::new(s.client_config(|b| b), "localhost");
    let err = handshake_with_client(&mut server, &mut client).unwrap_err();
    assert_eq!(err.failure(), TlsFailure::Certificate, "{err}");

    // A certificate from an unknown CA: refused.
    let mut server = Side::server(&required);
    let mut client = RustlsClient::new(
        s.client_config(|b| b.identity(stranger.clone())),
        "localhost",
    );
    let err = handshake_with_client(&mut server, &mut client).unwrap_err();
    assert_eq!(err.failure(), TlsFailure::Certificate, "{err}");

    // Optional: no certificate is fine; a bad one is still refused.
    let optional = s.acceptor(|b| b.client_auth(ClientAuth::Optional(client_ca.roots())));
    let mut server = Side::server(&optional);
    let mut client = RustlsClient::new(s.client_config(|b| b), "localhost");
    handshake_with_client(&mut server, &mut client).unwrap();
    assert!(server.session.peer_certificates().is_none());
    let mut server = Side::server(&optional);
    let mut client = RustlsClient::new(s.client_config(|b| b.identity(stranger)), "localhost");
    let err = handshake_with_client(&mut server, &mut client).unwrap_err();
    assert_eq!(err.failure(), TlsFailure::Certificate, "{err}");
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

#[test]
fn one_mebibyte_writes_span_records_both_ways() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    let (mut server, mut client) = established(&s, &acceptor);
    let big = pattern(1 << 20, 7);

    // Server -> client: one send, many records.
    let records = server.send(&big).unwrap();
    let mut n_records = 0;
    let mut rest = &records[..];
    while !rest.is_empty() {
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        assert!(5 + len <= MAX_RECORD_WIRE);
        rest = &rest[5 + len..];
        n_records += 1;
    }
    assert!(n_records >= 64, "{n_records} records for 1 MiB");
    client.incoming(&records).unwrap();
    assert_eq!(client.plain.len(), big.len());
    assert!(client.plain == big);

    // Client -> server, delivered in random pieces (records cut anywhere).
    let records = client.send(&big);
    let mut rng = Rng(99);
    server.feed_chunked(&records, &mut rng).unwrap();
    assert!(server.plain == big);
    assert!(server.pending.is_empty());
    assert!(
        server
            .events
            .iter()
            .any(|e| e.consumed == 0 && e.plaintext == 0),
        "some pieces were too short for a record"
    );
}

#[test]
fn send_with_a_partial_record_pending() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    let (mut server, mut client) = established(&s, &acceptor);
    let records = client.send(b"half a record arrives first");
    let cut = records.len() / 2;
    server.feed(&records[..cut]).unwrap();
    assert_eq!(server.pending.len(), cut);
    // The server can still send while a record is cut short.
    let reply = server.send(b"meanwhile").unwrap();
    client.incoming(&reply).unwrap();
    assert_eq!(client.plain, b"meanwhile");
    server.feed(&records[cut..]).unwrap();
    assert_eq!(server.plain, b"half a record arrives first");
}

#[test]
#[should_panic(expected = "pending wire bytes must be passed again")]
fn forgetting_the_pending_bytes_is_caught() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    let (mut server, mut client) = established(&s, &acceptor);
    let records = client.send(b"cut short");
    server.feed(&records[..3]).unwrap();
    let _ = server
        .session
        .send(&mut [], b"no pending given", &mut Vec::new());
}

#[test]
fn close_notify_from_the_server() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    let (mut server, mut client) = established(&s, &acceptor);
    let mut records = server.send(b"last words").unwrap();
    records.extend(server.close().unwrap());
    assert_eq!(server.session.status(), TlsStatus::Closed);
    client.incoming(&records).unwrap();
    assert_eq!(client.plain, b"last words");
    assert!(client.closed, "the client read a clean close_notify");
    // Closing twice appends nothing; sending after close fails.
    assert!(server.close().unwrap().is_empty());
    assert!(matches!(server.send(b"more"), Err(TlsError::Closed)));
    // The server still reads what the client sends until its close_notify.
    server.feed(&client.send(b"late")).unwrap();
    assert_eq!(server.plain, b"late");
    client.conn.send_close_notify();
    server.feed(&client.outgoing()).unwrap();
    assert!(server.saw_peer_closed());
    assert_eq!(server.session.status(), TlsStatus::Closed);
}

#[test]
fn close_notify_from_the_client() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    let (mut server, mut client) = established(&s, &acceptor);
    let mut records = client.send(b"bye");
    client.conn.send_close_notify();
    records.extend(client.outgoing());
    // Anything after close_notify is ignored (RFC 8446 §6.1).
    let trailing = b"\x17\x03\x03\x00\x05trash";
    records.extend_from_slice(trailing);
    server.feed(&records).unwrap();
    assert_eq!(server.plain, b"bye");
    assert!(server.saw_peer_closed());
    assert_eq!(server.session.status(), TlsStatus::PeerClosed);
    assert!(
        server.pending.is_empty(),
        "bytes after close_notify dropped"
    );
    // Half-closed: the server may still answer, then close.
    let reply = server.send(b"answer after your close").unwrap();
    client.incoming(&reply).unwrap();
    assert_eq!(client.plain, b"answer after your close");
    let close = server.close().unwrap();
    client.incoming(&close).unwrap();
    assert!(client.closed);
    assert_eq!(server.session.status(), TlsStatus::Closed);
    // Later input is ignored.
    assert_eq!(server.feed(b"junk").unwrap(), Vec::<u8>::new());
}

#[test]
fn close_before_the_handshake_sends_nothing() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    let mut server = Side::server(&acceptor);
    assert!(server.close().unwrap().is_empty());
    assert!(matches!(
        server.send(b"too early"),
        Err(TlsError::HandshakeIncomplete)
    ));
}

/// A hand-made ClientHello offering only `version` (no supported_versions
/// extension: TLS 1.0/1.1 style).
fn legacy_client_hello(version: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]); // RSA AES-CBC suites
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0, 0, 0];
    hs[1..4].copy_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01, 0, 0];
    record[3..5].copy_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

/// Feeds `bytes` to a fresh server session; returns the error and what the
/// session wanted sent.
fn fed_to_new_server(
    acceptor: &TlsAcceptor,
    bytes: &[u8],
) -> (Result<(), TlsError>, Vec<u8>, Side) {
    let mut server = Side::server(acceptor);
    let mut out = Vec::new();
    let mut wire = bytes.to_vec();
    let res = server
        .session
        .receive(&mut wire, &mut server.plain, &mut out)
        .map(|_| ());
    (res, out, server)
}

#[test]
fn garbage_instead_of_a_client_hello() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        b"\x16\x03\x01\x00\x05\x00\x00\x00\x00\x00", // a handshake record holding junk
        b"\x17\x03\x03\x00\x10aaaaaaaaaaaaaaaa",     // application data before a hello
        b"SSH-2.0-OpenSSH_9.6\r\n",
    ] {
        let (res, out, server) = fed_to_new_server(&acceptor, garbage);
        let err = res.expect_err("garbage must fail");
        assert!(
            matches!(
                err.failure(),
                TlsFailure::BadRecord | TlsFailure::Misbehaved
            ),
            "{garbage:?}: {err} ({:?})",
            err.failure()
        );
        assert!(err.is_peer_fault());
        assert_eq!(server.session.status(), TlsStatus::Failed);
        // A fatal alert for the peer, unencrypted (no keys yet).
        assert!(out.len() >= 7 && out[0] == 21, "{garbage:?}: alert {out:?}");
        // Failed for good: later calls return the same error, nothing panics.
        let mut session = server.session;
        let again = session
            .receive(&mut b"more".to_vec(), &mut Vec::new(), &mut Vec::new())
            .unwrap_err();
        assert_eq!(again.to_string(), err.to_string());
        assert!(session.close(&mut [], &mut Vec::new()).is_ok());
    }
}

#[test]
fn truncated_handshake_waits_with_bounded_pending_bytes() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    let mut client = RustlsClient::new(s.client_config(|b| b), "localhost");
    let hello = client.outgoing();
    for cut in [1, 4, 5, 6, hello.len() / 2, hello.len() - 1] {
        let mut server = Side::server(&acceptor);
        let out = server.feed(&hello[..cut]).unwrap();
        assert!(out.is_empty());
        assert_eq!(server.pending.len(), cut);
        assert_eq!(server.session.status(), TlsStatus::Handshaking);
        assert!(server.plain.is_empty());
        // The rest completes it.
        let out = server.feed(&hello[cut..]).unwrap();
        assert!(!out.is_empty(), "server flight after the whole hello");
    }
}

#[test]
fn old_protocol_versions_only() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    for version in [0x0300u16, 0x0301, 0x0302] {
        let (res, out, _) = fed_to_new_server(&acceptor, &legacy_client_hello(version));
        let err = res.expect_err("old versions must be refused");
        assert_eq!(
            err.failure(),
            TlsFailure::Incompatible,
            "{version:#x}: {err}"
        );
        // A fatal alert: protocol_version (70) or handshake_failure (40).
        assert_eq!(&out[..1], &[21], "{version:#x}: an alert");
        assert!(
            matches!(out[out.len() - 1], 40 | 70),
            "{version:#x}: {out:?}"
        );
    }
    // A TLS 1.2-only client against a TLS 1.3-only server.
    let strict = s.acceptor(|b| b.tls13_only(true));
    let mut server = Side::server(&strict);
    let mut client = RustlsClient::new(s.client_config_versions(TLS12), "localhost");
    let err = handshake_with_client(&mut server, &mut client).unwrap_err();
    assert_eq!(err.failure(), TlsFailure::Incompatible, "{err}");
}

#[test]
fn record_over_the_size_limit() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    // Before the handshake: a header announcing 2^14 + 2049 bytes fails at once,
    // without waiting for the body.
    let len = (16_384 + 2_049) as u16;
    let mut header = vec![0x16, 0x03, 0x01];
    header.extend_from_slice(&len.to_be_bytes());
    let (res, _, _) = fed_to_new_server(&acceptor, &header);
    assert_eq!(res.unwrap_err().failure(), TlsFailure::BadRecord);

    // After the handshake, the same.
    let (mut server, _client) = established(&s, &acceptor);
    let mut header = vec![0x17, 0x03, 0x03];
    header.extend_from_slice(&u16::MAX.to_be_bytes());
    let err = server.feed(&header).unwrap_err();
    assert_eq!(err.failure(), TlsFailure::BadRecord, "{err}");

    // The largest size rustls takes (under 2^14 + 2048) just waits, with the
    // pending bytes under the limit.
    let (mut server, _client) = established(&s, &acceptor);
    let mut partial = vec![0x17, 0x03, 0x03];
    partial.extend_from_slice(&((16_384 + 2_047) as u16).to_be_bytes());
    partial.resize(MAX_RECORD_WIRE - 2, 0xaa);
    server.feed(&partial).unwrap();
    assert_eq!(server.pending.len(), MAX_RECORD_WIRE - 2);
}

#[test]
fn tampered_record_and_alert_mid_stream() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);

    // A record altered in flight: the server fails to decrypt and says so.
    let (mut server, mut client) = established(&s, &acceptor);
    let mut records = client.send(b"do not touch");
    let last = records.len() - 1;
    records[last] ^= 1;
    let mut out = Vec::new();
    let err = server
        .session
        .receive(&mut records, &mut server.plain, &mut out)
        .unwrap_err();
    assert_eq!(err.failure(), TlsFailure::Decrypt, "{err}");
    assert!(is_record(&out), "an encrypted bad_record_mac alert");
    // The client decrypts that alert.
    assert_eq!(
        client.incoming(&out).unwrap_err(),
        rustls::Error::AlertReceived(AlertDescription::BadRecordMac)
    );

    // The peer's fatal alert mid-stream: the client fails to decrypt a
    // tampered record from the server and alerts; the server reports it.
    let (mut server, mut client) = established(&s, &acceptor);
    let mut records = server.send(b"tampered on the way").unwrap();
    records[8] ^= 0x40;
    assert!(client.incoming(&records).is_err());
    let alert = client.outgoing();
    let err = server.feed(&alert).unwrap_err();
    assert_eq!(err.failure(), TlsFailure::PeerAlert, "{err}");
    assert_eq!(err.alert_received(), Some(AlertDescription::BadRecordMac));
}

#[test]
fn never_panics_on_mutated_handshakes_and_records() {
    let s = setup();
    let acceptor = s.acceptor(|b| b.alpn(&["http/1.1"]));
    let mut client = RustlsClient::new(s.client_config(|b| b.alpn(&["http/1.1"])), "localhost");
    let hello = client.outgoing();
    let legacy = legacy_client_hello(0x0301);
    let (_, mut c2) = established(&s, &acceptor);
    let app = c2.send(b"application data record");
    let seeds: [&[u8]; 3] = [&hello, &legacy, &app];
    let mut rng = Rng(0x5eed_7153);
    let (mut failed, mut waiting) = (0, 0);
    for round in 0..400 {
        let input = mutated(
            &mut rng,
            round,
            &seeds,
            2,
            8,
            &[0x00, 0x03, 0x16, 0x17, 0xff],
        );
        let mut server = Side::server(&acceptor);
        match server.feed_chunked(&input, &mut rng) {
            Err(e) => {
                failed += 1;
                assert_eq!(server.session.status(), TlsStatus::Failed, "{e}");
            }
            Ok(_) => {
                waiting += 1;
                assert!(server.pending.len() <= server.session.pending_wire_limit());
            }
        }
    }
    assert!(
        failed > 0 && failed + waiting == 400,
        "{failed} failed, {waiting} waiting"
    );
}

#[test]
fn client_session_against_a_rustls_server() {
    let s = setup();
    let server_config = ServerConfigBuilder::new(s.server_id.clone())
        .alpn(&["http/1.1"])
        .build()
        .unwrap();
    let connector = TlsConnector::new(s.client_config(|b| b.alpn(&["http/1.1"])));
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let (mut client, hello) = Side::client(&connector, "localhost");
        assert_eq!(client.session.status(), TlsStatus::Handshaking);
        let mut server = RustlsServer::new(server_config.clone());
        handshake_with_server(&mut client, hello, &mut server).unwrap();
        assert!(client.saw_handshake_done());
        assert_eq!(client.session.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(server.conn.server_name(), Some("localhost"));
        assert!(client.session.peer_certificates().is_some());
        let records = client.send(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        server.incoming(&records).unwrap();
        assert_eq!(server.plain, b"GET / HTTP/1.1\r\n\r\n");
        let reply = server.send(&pattern(100_000, 3));
        let mut rng = Rng(5);
        client.feed_chunked(&reply, &mut rng).unwrap();
        assert!(client.plain == pattern(100_000, 3));
        kinds.push(client.session.handshake_kind().unwrap());
    }
    assert_eq!(kinds, [HandshakeKind::Full, HandshakeKind::Resumed]);
}

#[test]
fn client_session_refuses_a_wrong_name() {
    let s = setup();
    let server_config = ServerConfigBuilder::new(s.server_id.clone())
        .build()
        .unwrap();
    let connector = TlsConnector::new(s.client_config(|b| b));
    let (mut client, hello) = Side::client(&connector, "not-localhost.example");
    let mut server = RustlsServer::new(server_config);
    let err = handshake_with_server(&mut client, hello, &mut server).unwrap_err();
    assert_eq!(err.failure(), TlsFailure::Certificate, "{err}");
    assert_eq!(client.session.status(), TlsStatus::Failed);
}

#[test]
fn netloop_client_and_server_sessions_together() {
    let s = setup();
    let acceptor = s.acceptor(|b| b.alpn(&["redis"]));
    let connector = TlsConnector::new(s.client_config(|b| b.alpn(&["redis"])));
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let mut server = Side::server(&acceptor);
        let (mut client, hello) = Side::client(&connector, "localhost");
        handshake_sessions(&mut client, hello, &mut server).unwrap();
        assert_eq!(server.session.alpn_protocol(), Some(&b"redis"[..]));
        assert_eq!(server.session.server_name(), Some("localhost"));
        let big = pattern(300_000, 11);
        let records = client.send(&big).unwrap();
        let mut rng = Rng(17);
        server.feed_chunked(&records, &mut rng).unwrap();
        assert!(server.plain == big);
        let close = client.close().unwrap();
        server.feed(&close).unwrap();
        assert_eq!(server.session.status(), TlsStatus::PeerClosed);
        let close = server.close().unwrap();
        client.feed(&close).unwrap();
        assert_eq!(client.session.status(), TlsStatus::Closed);
        assert!(client.saw_peer_closed());
        kinds.push(server.session.handshake_kind().unwrap());
    }
    assert_eq!(kinds, [HandshakeKind::Full, HandshakeKind::Resumed]);
}

#[test]
fn pem_round_trip_and_config_errors() {
    let dir = std::env::temp_dir().join(format!("netloop-tls-pem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pair = Identity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    std::fs::write(&key, &pair.key_pem).unwrap();

    // Files -> acceptor -> a handshake trusting the self-signed certificate.
    let acceptor = TlsAcceptor::from_pem_files(&cert, &key, &["http/1.1"]).unwrap();
    let roots = netloop::tls::roots_from_pem_file(&cert).unwrap();
    let config = ClientConfigBuilder::new(roots)
        .alpn(&["http/1.1"])
        .build()
        .unwrap();
    let mut server = Side::server(&acceptor);
    let mut client = RustlsClient::new(config, "localhost");
    handshake_with_client(&mut server, &mut client).unwrap();
    assert_eq!(server.session.alpn_protocol(), Some(&b"http/1.1"[..]));

    // Errors say what and where.
    let missing = dir.join("missing.pem");
    let e = Identity::from_pem_files(&missing, &key).unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
    let e = Identity::from_pem_files(&key, &key).unwrap_err();
    assert!(e.to_string().contains("certificate chain"), "{e}");
    let e = Identity::from_pem_files(&cert, &cert).unwrap_err();
    assert!(e.to_string().contains("private key"), "{e}");
    // A key that does not match the certificate.
    let other = Identity::self_signed(&["localhost"]).unwrap();
    let mismatched = Identity {
        chain: pair.identity.chain.clone(),
        key: other.identity.key,
    };
    assert!(ServerConfigBuilder::new(mismatched).build().is_err());
    assert!(netloop::tls::server_name("not a name!").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn client_hello_split_across_records_is_reassembled() {
    let s = setup();
    let acceptor = s.acceptor(|b| b);
    let mut client = RustlsClient::new(s.client_config(|b| b), "localhost");
    let hello = client.outgoing();
    // Re-frame the one handshake record as two, cutting the message in half.
    let payload = &hello[5..];
    let (a, b) = payload.split_at(payload.len() / 2);
    let frame = |part: &[u8]| {
        let mut r = vec![0x16, 0x03, 0x01];
        r.extend_from_slice(&(part.len() as u16).to_be_bytes());
        r.extend_from_slice(part);
        r
    };
    let (first, second) = (frame(a), frame(b));
    let mut server = Side::server(&acceptor);
    let out = server.feed(&first).unwrap();
    assert!(out.is_empty());
    // rustls keeps the half message in the caller's bytes: all of it is pending.
    assert_eq!(server.pending.len(), first.len());
    let out = server.feed(&second).unwrap();
    assert!(!out.is_empty(), "the server answers the reassembled hello");
    assert!(server.pending.is_empty());
    client.incoming(&out).unwrap();
    handshake_with_client(&mut server, &mut client).unwrap();
    assert_eq!(server.session.server_name(), Some("localhost"));
}
