//! TLS through the engine: a listener served with `ListenConfig::tls`, real
//! rustls clients over loopback sockets. The order of callbacks (on_open at
//! accept, on_handshake, then plaintext on_traffic), ALPN and SNI, writes made
//! during the handshake, close_notify both ways (and the linger it ends), large
//! writes spanning records, async writes, water marks, pause/resume and
//! timeouts over TLS, client certificates, resumption, the HTTP and RESP layers
//! as they are, stopping, and dialing with TLS.
#![cfg(feature = "tls")]

mod support;
use support::*;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netloop::tls::rustls;
use netloop::tls::{server_name, ClientAuth, TlsFailure};
use netloop::{
    Action, CloseReason, Conn, ConnHandle, DialOptions, Engine, Error, EventHandler, ListenConfig,
};

fn serve<H: EventHandler + Clone + Send>(pair: &TlsPair, handler: H) -> Engine {
    serve_with(pair, handler, |b| b)
}

fn serve_with<H: EventHandler + Clone + Send>(
    pair: &TlsPair,
    handler: H,
    opts: impl FnOnce(netloop::EngineBuilder) -> netloop::EngineBuilder,
) -> Engine {
    opts(engine_builder().loops(1))
        .listen_with(ListenConfig::new("tls://127.0.0.1:0").tls(pair.server.clone()))
        .start_with(handler)
        .unwrap()
}

/// Waits until `log` saw `n` closes.
fn wait_closes(log: &TlsLog, n: usize) -> Vec<(netloop::ConnId, String, Option<TlsFailure>)> {
    assert!(
        wait_until(Duration::from_secs(5), || log.closes().len() >= n),
        "expected {n} closes: {:?}",
        log.seen()
    );
    log.closes()
}

#[test]
fn on_open_then_on_handshake_then_plaintext_with_alpn_and_sni() {
    let pair = TlsPair::new();
    let log = TlsLog {
        greet: true,
        ..Default::default()
    };
    let engine = serve(&pair, log.clone());
    let mut c = tls_connect(&engine, pair.client.clone(), "localhost");
    // The greeting written in on_open (before the handshake) arrives first.
    c.write_all(b"ping").unwrap();
    let mut got = [0u8; 10];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello ping");
    assert_eq!(c.conn.alpn_protocol(), Some(&b"x-test"[..]));

    // The client ends the stream with close_notify: the server answers with its
    // own and closes as for an end of stream.
    c.conn.send_close_notify();
    c.flush().unwrap();
    let (rest, clean) = tls_read_to_end(&mut c);
    assert!(rest.is_empty() && clean, "{rest:?} clean={clean}");
    let closes = wait_closes(&log, 1);
    let id = closes[0].0;
    assert_eq!(
        log.of(id),
        [
            TlsSeen::Open(id),
            TlsSeen::Handshake {
                id,
                sni: Some("localhost".into()),
                alpn: Some(b"x-test".to_vec()),
                resumed: false,
                peer_certs: 0,
            },
            TlsSeen::Traffic(id, 4),
            TlsSeen::Close(id, "closed by peer".into(), None),
        ]
    );
    engine.stop();
}

#[test]
fn a_handler_close_sends_the_reply_then_close_notify_and_the_peers_ends_the_linger() {
    let pair = TlsPair::new();
    let log = TlsLog::default();
    let engine = serve_with(&pair, log.clone(), |b| {
        b.linger_timeout(Duration::from_secs(30))
    });
    let mut c = tls_connect(&engine, pair.client.clone(), "localhost");
    c.write_all(b"quit").unwrap();
    let (reply, clean) = tls_read_to_end(&mut c);
    assert_eq!(reply, b"bye");
    assert!(
        clean,
        "the server's close_notify must come before its end of stream"
    );
    // The server lingers (it shut down writing and waits for the client's end);
    // the client's close_notify — with its socket still open — ends it at once.
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        log.closes().is_empty(),
        "closed before the linger: {:?}",
        log.seen()
    );
    c.conn.send_close_notify();
    c.flush().unwrap();
    let closes = wait_closes(&log, 1);
    assert_eq!(closes[0].1, "closed by handler");
    drop(c);
    engine.stop();
}

#[test]
fn large_writes_span_records_both_ways() {
    let pair = TlsPair::new();
    let engine = serve(&pair, TlsLog::default());
    let mut c = tls_connect(&engine, pair.client.clone(), "localhost");
    // 1 MiB in one write from the client, echoed: rustls cuts it into 16 KiB
    // records, the server sees it in reads of any size and echoes what it has.
    let mib = big_pattern(1 << 20);
    // Written while the echo is read (the server stops reading while its replies
    // wait: read backpressure).
    let back = tls_pump(&mut c, &mib, mib.len());
    assert!(back == mib, "the 1 MiB echo differs ({} bytes)", back.len());
    // 3 MB in one server write (more than the loop's scratch, more than the
    // socket takes at once): queued in records, all delivered in order.
    c.write_all(b"big 3000000").unwrap();
    let mut big = vec![0u8; 3_000_000];
    c.read_exact(&mut big).unwrap();
    assert!(big == big_pattern(3_000_000), "the 3 MB reply differs");
    engine.stop();
}

#[test]
fn async_writes_from_other_threads_are_encrypted() {
    #[derive(Clone, Default)]
    struct Keep(Arc<Mutex<Option<ConnHandle>>>);
    impl EventHandler for Keep {
        type State = ();
        fn on_handshake(&mut self, conn: &mut Conn<'_, ()>) -> Action {
            *self.0.lock().unwrap() = Some(conn.handle());
            Action::None
        }
        fn on_traffic(&mut self, _conn: &mut Conn<'_, ()>) -> Action {
            Action::None
        }
    }
    let pair = TlsPair::new();
    let keep = Keep::default();
    let engine = serve(&pair, keep.clone());
    let mut c = tls_connect(&engine, pair.client.clone(), "localhost");
    tls_handshake(&mut c).unwrap();
    assert!(wait_until(Duration::from_secs(5), || keep
        .0
        .lock()
        .unwrap()
        .is_some()));
    let h = keep.0.lock().unwrap().clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    h.async_write(
        b"pushed ".to_vec(),
        Some(Box::new(move |r| tx.send(r.is_ok()).unwrap())),
    )
    .unwrap();
    h.async_writev(vec![b"in ".to_vec(), b"two".to_vec()], None)
        .unwrap();
    let mut got = [0u8; 13];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"pushed in two");
    assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
    engine.stop();
}

/// Writes `chunk`-byte blocks while writable, records water-mark changes, and
/// pauses reading on `pause` until a handle resumes it.
#[derive(Clone, Default)]
struct Flow {
    events: Arc<Mutex<Vec<String>>>,
    handle: Arc<Mutex<Option<ConnHandle>>>,
}

impl EventHandler for Flow {
    type State = ();
    fn on_handshake(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        *self.handle.lock().unwrap() = Some(conn.handle());
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let msg = conn.peek_all().to_vec();
        conn.discard(msg.len());
        self.events
            .lock()
            .unwrap()
            .push(format!("traffic {}", String::from_utf8_lossy(&msg)));
        match &msg[..] {
            b"flood" => {
                // Until the water mark says stop: the client is not reading.
                let block = vec![b'x'; 32 * 1024];
                let mut n = 0;
                while conn.is_writable() && n < 1000 {
                    conn.write(&block).unwrap();
                    n += 1;
                }
                self.events
                    .lock()
                    .unwrap()
                    .push(format!("wrote {n} blocks"));
            }
            b"pause" => conn.pause_read(),
            _ => {}
        }
        Action::None
    }
    fn on_writable_changed(&mut self, _conn: &mut Conn<'_, ()>, writable: bool) {
        self.events
            .lock()
            .unwrap()
            .push(format!("writable {writable}"));
    }
}

#[test]
fn water_marks_and_pause_resume_work_over_tls() {
    let pair = TlsPair::new();
    let flow = Flow::default();
    let engine = serve_with(&pair, flow.clone(), |b| {
        b.write_high_water(256 * 1024).write_low_water(64 * 1024)
    });
    let mut c = tls_connect(&engine, pair.client.clone(), "localhost");
    c.write_all(b"flood").unwrap();
    let ev = flow.events.clone();
    assert!(
        wait_until(Duration::from_secs(5), || ev
            .lock()
            .unwrap()
            .iter()
            .any(|e| e == "writable false")),
        "{:?}",
        ev.lock().unwrap()
    );
    let wrote: usize = ev
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| {
            e.strip_prefix("wrote ")?
                .strip_suffix(" blocks")?
                .parse()
                .ok()
        })
        .unwrap();
    // Reading it all drains the queue below the low mark: writable again.
    let mut got = vec![0u8; wrote * 32 * 1024];
    c.read_exact(&mut got).unwrap();
    assert!(got.iter().all(|&b| b == b'x'));
    assert!(wait_until(Duration::from_secs(5), || ev
        .lock()
        .unwrap()
        .iter()
        .any(|e| e == "writable true")));

    // Paused: records the client sends wait in the kernel, undecrypted.
    c.write_all(b"pause").unwrap();
    assert!(wait_until(Duration::from_secs(5), || ev
        .lock()
        .unwrap()
        .iter()
        .any(|e| e == "traffic pause")));
    c.write_all(b"after").unwrap();
    std::thread::sleep(Duration::from_millis(150));
    assert!(!ev.lock().unwrap().iter().any(|e| e == "traffic after"));
    flow.handle
        .lock()
        .unwrap()
        .clone()
        .unwrap()
        .resume_read()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || ev
        .lock()
        .unwrap()
        .iter()
        .any(|e| e == "traffic after")));
    engine.stop();
}

#[test]
fn timeouts_work_over_tls_and_an_idle_close_says_close_notify() {
    let pair = TlsPair::new();
    let log = TlsLog::default();
    let engine = serve_with(&pair, log.clone(), |b| {
        b.idle_timeout(Some(Duration::from_millis(300)))
            .timer_resolution(Duration::from_millis(10))
    });
    let mut c = tls_connect(&engine, pair.client.clone(), "localhost");
    c.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    let t = Instant::now();
    let (rest, clean) = tls_read_to_end(&mut c);
    assert!(rest.is_empty());
    assert!(
        clean,
        "an idle close of an established session sends close_notify"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    let closes = wait_closes(&log, 1);
    assert_eq!(closes[0].1, "idle timeout");
    engine.stop();
}

#[test]
fn client_certificates_are_checked_and_readable() {
    // The same CA issues the server's and the clients' certificates.
    let pair = TlsPair::new();
    let server = netloop::tls::ServerConfigBuilder::new(pair.ca.issue(&["localhost"], false))
        .client_auth(ClientAuth::Required(pair.ca.roots()))
        .build()
        .unwrap();
    let log = TlsLog::default();
    let engine = engine_builder()
        .loops(1)
        .listen_with(ListenConfig::new("127.0.0.1:0").tls(server))
        .start_with(log.clone())
        .unwrap();

    // With a certificate from the CA: in, and the server sees the chain.
    let with_cert = netloop::tls::ClientConfigBuilder::new(pair.ca.roots())
        .identity(pair.ca.issue(&["client-1"], true))
        .build()
        .unwrap();
    let mut c = tls_connect(&engine, with_cert, "localhost");
    assert_eq!(round_trip(&mut c, b"mtls"), b"mtls");
    let hs = log.handshakes();
    assert!(
        matches!(&hs[0], TlsSeen::Handshake { peer_certs: 2, .. }),
        "{hs:?}"
    );

    // Without one: refused, and the server's on_close says why.
    let mut c2 = tls_connect(&engine, pair.client.clone(), "localhost");
    let _ = c2.write_all(b"no cert");
    let mut buf = [0u8; 1];
    assert!(c2.read(&mut buf).is_err() || buf == [0]);
    let closes = wait_closes(&log, 1);
    assert_eq!(closes[0].2, Some(TlsFailure::Certificate), "{closes:?}");
    drop(c);
    engine.stop();
}

#[test]
fn sessions_resume_by_default_with_tickets_and_the_tls12_cache() {
    let pair = TlsPair::new();
    let log = TlsLog::default();
    let engine = serve(&pair, log.clone());
    // TLS 1.3 tickets: the client keeps the ticket the server sent after the
    // first handshake (read with the first reply) and resumes with it.
    for _ in 0..2 {
        let mut c = tls_connect(&engine, pair.client.clone(), "localhost");
        assert_eq!(round_trip(&mut c, b"r"), b"r");
    }
    // TLS 1.2: session IDs from the server's cache.
    let tls12 = Arc::new(
        rustls::ClientConfig::builder_with_provider(netloop::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(pair.ca.roots())
            .with_no_client_auth(),
    );
    for _ in 0..2 {
        let mut c = tls_connect(&engine, tls12.clone(), "localhost");
        assert_eq!(round_trip(&mut c, b"r"), b"r");
        assert_eq!(
            c.conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
    }
    assert!(wait_until(Duration::from_secs(5), || log
        .handshakes()
        .len()
        == 4));
    let resumed: Vec<bool> = log
        .handshakes()
        .iter()
        .map(|h| matches!(h, TlsSeen::Handshake { resumed: true, .. }))
        .collect();
    assert_eq!(resumed, [false, true, false, true]);
    engine.stop();
}

#[test]
fn the_http_and_resp_layers_run_over_tls_as_they_are() {
    use netloop::protocol::http::{techempower, HttpServer};
    use netloop::protocol::resp::RedisServer;
    let pair = TlsPair::new();
    let http = engine_builder()
        .loops(1)
        .ticker(true)
        .listen_with(ListenConfig::new("tls://127.0.0.1:0").tls(pair.server.clone()))
        .start(|_| HttpServer::new(techempower))
        .unwrap();
    let mut c = tls_connect(&http, pair.client.clone(), "localhost");
    // Two pipelined requests in one record.
    c.write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let end = Instant::now() + Duration::from_secs(5);
    while !text.contains("{\"message\":\"Hello, World!\"}") && Instant::now() < end {
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).unwrap();
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.contains("Hello, World!") && text.contains("\"message\""),
        "{text}"
    );
    http.stop();

    let resp = engine_builder()
        .loops(1)
        .listen_with(ListenConfig::new("tls://127.0.0.1:0").tls(pair.server.clone()))
        .start(|_| RedisServer::per_loop())
        .unwrap();
    let mut c = tls_connect(&resp, pair.client.clone(), "localhost");
    c.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\nGET k\r\n")
        .unwrap();
    let mut reply = [0u8; 13];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+OK\r\n$2\r\nv1\r\n");
    resp.stop();
}

#[test]
fn stopping_the_engine_says_close_notify_to_established_sessions() {
    let pair = TlsPair::new();
    let log = TlsLog::default();
    let engine = serve(&pair, log.clone());
    let mut c = tls_connect(&engine, pair.client.clone(), "localhost");
    assert_eq!(round_trip(&mut c, b"x"), b"x");
    let stopper = std::thread::spawn(move || engine.stop());
    let (rest, clean) = tls_read_to_end(&mut c);
    assert!(rest.is_empty() && clean, "clean={clean}");
    stopper.join().unwrap();
    assert_eq!(log.closes()[0].1, "engine stopped");
}

#[test]
fn a_tls_address_without_a_config_is_refused_at_start() {
    let err = engine_builder()
        .loops(1)
        .listen("tls://127.0.0.1:0")
        .start_with(TlsLog::default())
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("tls://")),
        "{err}"
    );
}

/// Records what a dialed connection receives.
#[derive(Clone, Default)]
struct Sink {
    got: Arc<Mutex<Vec<u8>>>,
    events: Arc<Mutex<Vec<String>>>,
    handshaken: Arc<AtomicBool>,
}

impl EventHandler for Sink {
    type State = ();
    fn on_open(&mut self, _conn: &mut Conn<'_, ()>) -> Action {
        self.events.lock().unwrap().push("open".into());
        Action::None
    }
    fn on_handshake(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let tls = conn.tls().unwrap();
        self.events.lock().unwrap().push(format!(
            "handshake alpn={:?} certs={}",
            tls.alpn_protocol()
                .map(|a| String::from_utf8_lossy(a).into_owned()),
            tls.peer_certificates().map_or(0, |c| c.len())
        ));
        self.handshaken.store(true, Ordering::SeqCst);
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let n = conn.buffered();
        let msg = conn.peek_all().to_vec();
        conn.discard(n);
        self.got.lock().unwrap().extend(msg);
        Action::None
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        self.events.lock().unwrap().push(format!("close {reason}"));
    }
}

#[test]
fn dialing_with_tls_completes_after_the_handshake() {
    let pair = TlsPair::new();
    let log = TlsLog::default();
    let server = serve(&pair, log.clone());
    let sink = Sink::default();
    let client = engine_builder()
        .loops(1)
        .start_client_with(sink.clone())
        .unwrap();
    let addr = format!("tls://{}", server.local_addr().as_tcp().unwrap());
    let opts = DialOptions::new()
        .timeout(Duration::from_secs(5))
        .tls(pair.client.clone(), server_name("localhost").unwrap());
    let h = client.dial_blocking(addr.as_str(), opts).unwrap();
    // The callback came after the handshake.
    assert!(sink.handshaken.load(Ordering::SeqCst));
    assert_eq!(
        sink.events.lock().unwrap()[..2],
        [
            "open".to_string(),
            "handshake alpn=Some(\"x-test\") certs=2".to_string()
        ]
    );
    h.async_write(b"over tls".to_vec(), None).unwrap();
    assert!(wait_until(Duration::from_secs(5), || *sink
        .got
        .lock()
        .unwrap()
        == b"over tls"));
    // The server saw the client's SNI.
    assert!(matches!(
        &log.handshakes()[0],
        TlsSeen::Handshake { sni: Some(s), .. } if s == "localhost"
    ));
    h.close().unwrap();
    assert!(wait_until(Duration::from_secs(5), || log.closes().len() == 1));
    assert_eq!(log.closes()[0].1, "closed by peer");

    // A name the certificate does not cover: the dial fails with the reason.
    let opts = DialOptions::new().tls(pair.client.clone(), server_name("wrong.example").unwrap());
    match client.dial_blocking(addr.as_str(), opts) {
        Err(Error::Handshake {
            reason: CloseReason::Tls(e),
            ..
        }) => assert_eq!(e.failure(), TlsFailure::Certificate),
        other => panic!("{other:?}"),
    }
    assert!(sink
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.starts_with("close TLS")));
    // tls:// without a client config.
    assert!(matches!(
        client.dial_blocking(addr.as_str(), DialOptions::new()),
        Err(Error::Config(_))
    ));
    client.stop();
    server.stop();
}
