//! WebSocket timers and flow control: keep-alive pings (answered, unanswered,
//! answered by other traffic, a pong timeout shorter than the interval), the
//! close wait, the handshake deadline on both sides, and parsing that stops
//! while the output backs up. Intervals are short (tens of milliseconds) so the
//! tests run fast; every wait is bounded.

mod support;
use support::*;

use netloop::protocol::websocket::{
    client, ClientHandshakeError, ClientRequest, Config, Message, WebSocket, WebSocketHandler,
    WsConn,
};
use netloop::{Action, DialOptions};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PING: u8 = 9;
const PONG: u8 = 10;
const CLOSE: u8 = 8;

fn keep_alive(interval_ms: u64) -> Config {
    Config::default().ping_interval(Some(Duration::from_millis(interval_ms)))
}

#[test]
fn keep_alive_pings_a_peer_that_answers_and_keeps_it() {
    let (engine, addr, log) = ws_echo_server(keep_alive(50));
    deadline(30, move || {
        let mut ws = RawWs::connect(addr);
        let mut pings = 0;
        while pings < 4 {
            let f = ws.read_frame().expect("closed while answering pings");
            assert_eq!((f.opcode, f.masked), (PING, false), "{f:?}");
            assert!(f.payload.is_empty());
            pings += 1;
            ws.send(&client_frame(true, PONG, &f.payload));
        }
        // Still open and serving.
        ws.send(&client_frame(true, 1, b"alive"));
        loop {
            let f = ws.read_frame().expect("closed");
            if f.opcode != PING {
                assert_eq!((f.opcode, f.payload.as_slice()), (1, &b"alive"[..]));
                break;
            }
        }
        assert!(log.closes().is_empty(), "{:?}", log.closes());
    });
    engine.stop();
}

#[test]
fn a_silent_peer_is_failed_with_1011() {
    let (engine, addr, log) = ws_echo_server(keep_alive(50));
    deadline(30, move || {
        let mut ws = RawWs::connect(addr);
        let f = ws.read_frame().expect("no ping");
        assert_eq!(f.opcode, PING);
        // Not answered: the next thing is a close frame, then end of stream
        // (without waiting for our close frame).
        let f = ws.read_frame().expect("no close frame");
        assert_eq!(f.close_code(), 1011, "{f:?}");
        let reason = String::from_utf8_lossy(&f.payload[2..]).into_owned();
        assert!(reason.contains("keep-alive"), "{reason}");
        ws.expect_eof();
        assert!(wait_until(Duration::from_secs(5), || !log
            .closes()
            .is_empty()));
        assert_eq!(log.closes()[0].0, 1011);
    });
    engine.stop();
}

#[test]
fn any_frame_answers_a_ping() {
    let (engine, addr, log) = ws_echo_server(keep_alive(60));
    deadline(30, move || {
        let mut ws = RawWs::connect(addr);
        ws.stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        // Never a pong, but a message every 20 ms, for 15 intervals.
        let (mut pings, mut echoes) = (0, 0);
        let end = Instant::now() + Duration::from_millis(900);
        let mut buf = Vec::new();
        while Instant::now() < end {
            ws.send(&client_frame(true, 2, b"tick"));
            let mut b = [0u8; 4096];
            match ws.stream.read(&mut b) {
                Ok(0) => panic!("the server closed a connection that talks"),
                Ok(n) => buf.extend_from_slice(&b[..n]),
                Err(_) => {}
            }
            while let Some((f, n)) = parse(&buf) {
                buf.drain(..n);
                match f.opcode {
                    PING => pings += 1,
                    2 => echoes += 1,
                    _ => panic!("unexpected frame {f:?}"),
                }
            }
        }
        assert!(pings >= 2, "{pings} pings");
        assert!(echoes > 0);
        assert!(log.closes().is_empty(), "{:?}", log.closes());
    });
    engine.stop();
}

#[test]
fn a_short_pong_timeout_fails_early_and_keeps_the_interval() {
    // Answered: pings come an interval apart, not a pong timeout apart.
    let cfg = keep_alive(300).pong_timeout(Some(Duration::from_millis(30)));
    let (engine, addr, log) = ws_echo_server(cfg.clone());
    deadline(30, move || {
        let mut ws = RawWs::connect(addr);
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let f = ws.read_frame().expect("closed");
            assert_eq!(f.opcode, PING);
            seen.push(Instant::now());
            ws.send(&client_frame(true, PONG, b""));
        }
        for w in seen.windows(2) {
            let gap = w[1] - w[0];
            assert!(gap >= Duration::from_millis(200), "pings {gap:?} apart");
        }
        assert!(log.closes().is_empty());
    });
    engine.stop();
    // Silent: failed a pong timeout after the ping, well before the next one
    // would be due.
    let (engine, addr, _log) = ws_echo_server(cfg.pong_timeout(Some(Duration::from_millis(30))));
    deadline(30, move || {
        let mut ws = RawWs::connect(addr);
        assert_eq!(ws.read_frame().unwrap().opcode, PING);
        let at = Instant::now();
        assert_eq!(ws.read_frame().unwrap().close_code(), 1011);
        let waited = at.elapsed();
        assert!(
            waited < Duration::from_millis(250),
            "failed after {waited:?}"
        );
    });
    engine.stop();
}

#[test]
fn close_wait_ends_when_the_peer_does_not_answer() {
    let cfg = Config::default().close_timeout(Duration::from_millis(100));
    let (engine, addr, log) = ws_echo_server(cfg);
    deadline(30, move || {
        let mut ws = RawWs::connect(addr);
        ws.send(&client_frame(true, 1, b"close:4000"));
        let f = ws.read_frame().expect("no close frame");
        assert_eq!(f.opcode, CLOSE);
        assert_eq!(f.close_code(), 4000);
        // We never send our close frame: the server gives up and closes.
        ws.expect_eof();
        assert_eq!(log.closes(), vec![(4000, "asked to".to_string())]);
    });
    engine.stop();
}

#[test]
fn an_incomplete_upgrade_request_gets_408() {
    let cfg = Config::default().handshake_timeout(Some(Duration::from_millis(100)));
    let (engine, addr, log) = ws_echo_server(cfg);
    deadline(30, move || {
        let mut ws = RawWs::connect_raw(addr);
        ws.send(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: web");
        let head = ws.read_head();
        assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
        assert!(head.contains("Connection: close\r\n"), "{head}");
        ws.read_rest();
        // And a connection that sends nothing at all.
        let mut ws = RawWs::connect_raw(addr);
        assert!(ws.read_head().starts_with("HTTP/1.1 408 "));
        assert_eq!(*log.opens.lock().unwrap(), 0);
    });
    engine.stop();
}

/// A client application that records handshake failures.
#[derive(Clone, Default)]
struct Failures(Arc<Mutex<Vec<ClientHandshakeError>>>);

impl WebSocketHandler for Failures {
    type State = ();
    fn on_message(&mut self, _ws: &mut WsConn<'_, '_, ()>, _msg: Message<'_>) -> Action {
        Action::None
    }
    fn on_handshake_failed(&mut self, _state: &mut (), error: &ClientHandshakeError) {
        self.0.lock().unwrap().push(error.clone());
    }
}

#[test]
fn a_client_gives_up_on_a_server_that_never_answers() {
    // A TCP server that accepts and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mute = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 4096];
        // Reads the request, then waits for the client to hang up.
        while matches!(s.read(&mut b), Ok(n) if n > 0) {}
    });
    let app = Failures::default();
    let cfg = Config::default().handshake_timeout(Some(Duration::from_millis(100)));
    let engine = engine_builder()
        .loops(1)
        .start_client_with(WebSocket::new(app.clone(), cfg))
        .unwrap();
    client::dial(
        &engine.dialer(),
        addr,
        ClientRequest::new("127.0.0.1", "/"),
        (),
        DialOptions::new(),
        |res| assert!(res.is_ok(), "{res:?}"),
    );
    let failures = app.0.clone();
    assert!(wait_until(Duration::from_secs(10), || !failures
        .lock()
        .unwrap()
        .is_empty()));
    assert_eq!(app.0.lock().unwrap()[0], ClientHandshakeError::Timeout);
    assert!(wait_until(Duration::from_secs(5), || engine
        .connection_count()
        == 0));
    mute.join().unwrap();
    engine.stop();
}

#[test]
fn a_netloop_client_with_keep_alive_stays_up() {
    // Both sides ping every 30 ms; each answers the other's pings.
    let (engine, addr, log) = ws_echo_server(keep_alive(30));
    let app = Failures::default();
    let client_engine = engine_builder()
        .loops(1)
        .start_client_with(WebSocket::new(app.clone(), keep_alive(30)))
        .unwrap();
    client::dial(
        &client_engine.dialer(),
        addr,
        ClientRequest::new("127.0.0.1", "/"),
        (),
        DialOptions::new(),
        |res| assert!(res.is_ok(), "{res:?}"),
    );
    assert!(wait_until(Duration::from_secs(10), || *log
        .opens
        .lock()
        .unwrap()
        == 1));
    std::thread::sleep(Duration::from_millis(400));
    assert!(log.closes().is_empty(), "{:?}", log.closes());
    assert_eq!(client_engine.connection_count(), 1);
    client_engine.stop();
    engine.stop();
}

#[test]
fn buffered_frames_wait_while_the_output_backs_up() {
    // Read backpressure off and a large inbound cap: only the layer itself
    // keeps the output bounded, by not parsing what is already buffered.
    let app = WsEcho::default();
    let log = app.log.clone();
    let engine = engine_builder()
        .loops(1)
        .read_backpressure(false)
        .max_inbound_bytes(32 << 20)
        .listen("127.0.0.1:0")
        .start_with(WebSocket::new(app, Config::default()))
        .unwrap();
    let addr = engine.local_addr().as_tcp().unwrap();
    let h = engine.handle();
    deadline(60, move || {
        let mut ws = RawWs::connect(addr);
        let frame = client_frame(true, 2, &vec![7u8; 16 * 1024]);
        let total = 16usize << 20;
        ws.stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // 16 MiB of echo requests, none of the answers read.
        for _ in 0..total / frame.len() {
            ws.stream.write_all(&frame).unwrap();
        }
        assert!(wait_until(Duration::from_secs(5), || log
            .writable_changes
            .lock()
            .unwrap()
            .first()
            == Some(&false)));
        let stats = h.stats().total;
        // The outbound queue stays near the high water mark (64 KiB) plus one
        // batch; the requests wait inbound, unparsed.
        assert!(
            stats.queued_out_bytes < 1 << 20,
            "{} bytes queued out",
            stats.queued_out_bytes
        );
        // Reading the answers lets every request through, in order.
        let mut got = 0usize;
        while got < total / frame.len() {
            let f = ws.read_frame().expect("closed early");
            assert_eq!(f.payload.len(), 16 * 1024);
            got += 1;
        }
        assert!(log.closes().is_empty(), "{:?}", log.closes());
    });
    engine.stop();
}
