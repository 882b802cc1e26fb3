//! Bad input on a TLS listener, each case end to end through the engine while
//! an established client keeps being served: garbage instead of a ClientHello,
//! a truncated handshake, a handshake that stalls, a client offering only old
//! protocol versions, a record over the size limit, a fatal alert mid-stream, a
//! reset mid-handshake. Each must give a clean close, `on_close` exactly once
//! with a TLS reason (or the handshake timeout), the failure counted, no
//! connection or descriptor left behind, and the other client still served.
#![cfg(feature = "tls")]

mod support;
use support::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use netloop::tls::rustls::{self, ClientConnection};
use netloop::tls::{TlsAcceptor, TlsFailure};
use netloop::{ConnId, ListenConfig};

/// What a case expects the server's `on_close` to say.
#[derive(Debug)]
enum Expect {
    Tls(TlsFailure),
    HandshakeTimeout,
}

/// A ClientHello from a real rustls client, as bytes.
fn client_hello(pair: &TlsPair) -> Vec<u8> {
    let mut c = ClientConnection::new(
        pair.client.clone(),
        netloop::tls::server_name("localhost").unwrap(),
    )
    .unwrap();
    let mut hello = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut hello).unwrap();
    }
    hello
}

/// A well-formed ClientHello of an old client: `version` (TLS 1.0 or 1.1) and
/// no `supported_versions` extension, suites of its day and a modern one, and
/// the extensions a server needs to get as far as the version check.
fn old_client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(version); // client_version
    body.extend([0x42; 32]); // random
    body.push(0); // session id
                  // TLS_RSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    body.extend([0, 4, 0x00, 0x2f, 0xc0, 0x2b]);
    body.extend([1, 0]); // compression: null
    let mut ext = Vec::new();
    ext.extend([0x00, 0x0d, 0, 6, 0, 4, 0x04, 0x03, 0x08, 0x04]); // signature_algorithms
    ext.extend([0x00, 0x0a, 0, 4, 0, 2, 0x00, 0x1d]); // supported_groups: x25519
    ext.extend([0x00, 0x0b, 0, 2, 1, 0]); // ec_point_formats: uncompressed
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![1]; // client_hello
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut rec = vec![22, version[0], version[1]];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads what the server sends until it closes (an alert, perhaps).
fn drain(mut s: TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v);
    v
}

/// Is `bytes` a TLS alert record (unencrypted: before the handshake ended)?
fn is_alert(bytes: &[u8]) -> bool {
    bytes.len() >= 7 && bytes[0] == 21
}

/// Runs `case` (which misbehaves towards the server at `addr`), then checks the
/// server's side of it.
fn check_case(
    name: &str,
    engine: &netloop::Engine,
    log: &TlsLog,
    good: &mut TlsStream,
    expect: Expect,
    case: impl FnOnce(SocketAddr),
) {
    let before = log.closes().len();
    let tls_before = engine.handle().stats().total.closed.tls;
    case(engine.local_addr().as_tcp().unwrap());
    assert!(
        wait_until(Duration::from_secs(5), || log.closes().len() > before),
        "{name}: no close: {:?}",
        log.seen()
    );
    std::thread::sleep(Duration::from_millis(50)); // a second close would show by now
    let closes = log.closes();
    assert_eq!(closes.len(), before + 1, "{name}: {closes:?}");
    let (id, reason, failure) = closes.last().unwrap().clone();
    match expect {
        Expect::Tls(f) => {
            assert_eq!(failure, Some(f), "{name}: closed with {reason}");
            assert_eq!(
                engine.handle().stats().total.closed.tls,
                tls_before + 1,
                "{name}"
            );
        }
        Expect::HandshakeTimeout => assert_eq!(reason, "handshake timeout", "{name}"),
    }
    // Opened once and closed once (a failed handshake saw no plaintext).
    let of: Vec<TlsSeen> = log.of(id);
    assert!(
        matches!(of.first(), Some(TlsSeen::Open(_))),
        "{name}: {of:?}"
    );
    assert!(
        matches!(of.last(), Some(TlsSeen::Close(..))),
        "{name}: {of:?}"
    );
    let opens = of.iter().filter(|s| matches!(s, TlsSeen::Open(_))).count();
    let closes = of
        .iter()
        .filter(|s| matches!(s, TlsSeen::Close(..)))
        .count();
    assert_eq!((opens, closes), (1, 1), "{name}: {of:?}");
    if !matches!(of[1], TlsSeen::Handshake { .. }) {
        assert_eq!(of.len(), 2, "{name}: {of:?}");
    }
    // Only the good connection is left; it is still served.
    assert!(
        wait_until(Duration::from_secs(5), || engine
            .handle()
            .connection_count()
            == 1),
        "{name}: {} connections left",
        engine.handle().connection_count()
    );
    assert_eq!(round_trip(good, name.as_bytes()), name.as_bytes(), "{name}");
}

#[test]
fn bad_input_closes_cleanly_with_a_tls_reason_and_others_are_served() {
    let _serial = serial();
    let pair = TlsPair::new();
    let log = TlsLog::default();
    let acceptor =
        TlsAcceptor::new(pair.server.clone()).with_handshake_timeout(Duration::from_millis(300));
    let engine = engine_builder()
        .loops(1)
        .timer_resolution(Duration::from_millis(10))
        .listen_with(ListenConfig::new("tls://127.0.0.1:0").tls(acceptor))
        .start_with(log.clone())
        .unwrap();
    let mut good = tls_connect(&engine, pair.client.clone(), "localhost");
    assert_eq!(round_trip(&mut good, b"hello"), b"hello");
    let fds = fd_count();
    let hello = client_hello(&pair);

    check_case(
        "garbage",
        &engine,
        &log,
        &mut good,
        Expect::Tls(TlsFailure::BadRecord),
        |a| {
            let mut s = raw(a);
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            assert!(is_alert(&drain(s)), "a fatal alert tells the client why");
        },
    );

    check_case(
        "truncated",
        &engine,
        &log,
        &mut good,
        Expect::Tls(TlsFailure::Truncated),
        |a| {
            let mut s = raw(a);
            s.write_all(&hello[..hello.len() / 2]).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            assert!(drain(s).is_empty());
        },
    );

    check_case(
        "stalled",
        &engine,
        &log,
        &mut good,
        Expect::HandshakeTimeout,
        |a| {
            let mut s = raw(a);
            s.write_all(&hello[..10]).unwrap();
            // Slowloris: a byte now and then does not extend the deadline.
            for i in 10..14 {
                std::thread::sleep(Duration::from_millis(60));
                s.write_all(&hello[i..i + 1]).unwrap();
            }
            let t = std::time::Instant::now();
            drain(s);
            assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        },
    );

    for (name, version) in [("tls1.0 only", [3, 1]), ("tls1.1 only", [3, 2])] {
        check_case(
            name,
            &engine,
            &log,
            &mut good,
            Expect::Tls(TlsFailure::Incompatible),
            |a| {
                let mut s = raw(a);
                s.write_all(&old_client_hello(version)).unwrap();
                let reply = drain(s);
                // A fatal alert (rustls answers handshake_failure: no common version).
                assert!(is_alert(&reply) && reply[5] == 2, "{reply:?}");
            },
        );
    }

    let client = pair.client.clone();
    check_case(
        "oversized record",
        &engine,
        &log,
        &mut good,
        Expect::Tls(TlsFailure::BadRecord),
        |a| {
            let mut c = tls_connect(a, client, "localhost");
            assert_eq!(round_trip(&mut c, b"x"), b"x");
            // An application-data record header claiming 65,535 bytes: over the
            // limit, refused at the header without waiting for (or buffering) it.
            c.sock.write_all(&[23, 3, 3, 0xff, 0xff]).unwrap();
            c.sock.write_all(&[0u8; 100]).unwrap();
            let (_, clean) = tls_read_to_end(&mut c);
            assert!(!clean);
        },
    );

    let client = pair.client.clone();
    check_case(
        "alert mid-stream",
        &engine,
        &log,
        &mut good,
        Expect::Tls(TlsFailure::PeerAlert),
        |a| {
            let mut c = tls_connect(a, client, "localhost");
            assert_eq!(round_trip(&mut c, b"ping"), b"ping");
            // The next record from the server is tampered with on the way in: the
            // client fails it and sends its fatal alert (encrypted, mid-stream).
            c.write_all(b"pong").unwrap();
            let mut head = [0u8; 5];
            c.sock.read_exact(&mut head).unwrap();
            let mut body = vec![0u8; u16::from_be_bytes([head[3], head[4]]) as usize];
            c.sock.read_exact(&mut body).unwrap();
            *body.last_mut().unwrap() ^= 1;
            let mut record = head.to_vec();
            record.extend(body);
            c.conn.read_tls(&mut &record[..]).unwrap();
            assert!(matches!(
                c.conn.process_new_packets(),
                Err(rustls::Error::DecryptError)
            ));
            while c.conn.wants_write() {
                c.conn.write_tls(&mut c.sock).unwrap();
            }
            drain(c.sock);
        },
    );

    check_case(
        "reset mid-handshake",
        &engine,
        &log,
        &mut good,
        Expect::Tls(TlsFailure::Truncated),
        |a| {
            let s = raw(a);
            (&s).write_all(&hello[..hello.len() - 3]).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(s); // RST
        },
    );

    // Nothing left behind: the descriptors are the good client's and the engine's.
    assert!(
        wait_until(Duration::from_secs(5), || fd_count() <= fds),
        "{} descriptors, {fds} before",
        fd_count()
    );
    let reasons: Vec<String> = log.closes().into_iter().map(|c| c.1).collect();
    eprintln!("close reasons: {reasons:#?}");
    drop(good);
    engine.stop();
}

#[test]
fn many_bad_handshakes_at_once_leave_the_listener_serving() {
    let _serial = serial();
    let pair = TlsPair::new();
    let log = TlsLog::default();
    let engine = engine_builder()
        .loops(2)
        .listen_with(ListenConfig::new("tls://127.0.0.1:0").tls(pair.server.clone()))
        .start_with(log.clone())
        .unwrap();
    let addr = engine.local_addr().as_tcp().unwrap();
    let hello = client_hello(&pair);
    // 200 connections, each a different kind of bad, all in flight together.
    let mut socks = Vec::new();
    for i in 0..200 {
        let mut s = raw(addr);
        match i % 4 {
            0 => s
                .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
                .unwrap(),
            1 => s.write_all(&hello[..i % hello.len()]).unwrap(),
            2 => s.write_all(&old_client_hello([3, 1])).unwrap(),
            _ => s.write_all(&[0u8; 64]).unwrap(),
        }
        socks.push(s);
    }
    // A good client is served meanwhile.
    let mut c = tls_connect(addr, pair.client.clone(), "localhost");
    assert_eq!(round_trip(&mut c, b"still here"), b"still here");
    drop(socks);
    assert!(wait_until(Duration::from_secs(10), || {
        engine.handle().connection_count() == 1
    }));
    // Each opened connection closed exactly once.
    let seen = log.seen();
    let opens = seen
        .iter()
        .filter(|s| matches!(s, TlsSeen::Open(_)))
        .count();
    let closes = log.closes();
    assert_eq!(opens, 201);
    assert_eq!(closes.len(), 200);
    let mut ids: Vec<ConnId> = closes.iter().map(|c| c.0).collect();
    ids.sort_by_key(|id| (id.loop_index(), id.slot(), id.generation()));
    ids.dedup();
    assert_eq!(ids.len(), 200, "a connection closed twice");
    assert!(closes.iter().all(|c| c.2.is_some()), "{closes:?}");
    engine.stop();
}
