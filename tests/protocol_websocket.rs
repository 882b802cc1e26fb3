//! WebSocket server and client on the engine: the upgrade (status codes,
//! subprotocols, the application's veto), the netloop client over the dialer,
//! backpressure, the idle timeout, and an independent client (Python's
//! `websockets`, skipped with a note when missing).

mod support;
use support::*;

use netloop::protocol::websocket::{
    client, ClientHandshakeError, ClientRequest, CloseCode, Config, DeflateConfig, Message,
    Upgrade, WebSocket, WebSocketHandler, WsConn,
};
use netloop::{Action, DialOptions};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn non_upgrade_requests_get_426_or_400() {
    let (engine, addr, log) = ws_echo_server(Config::default());
    deadline(30, move || {
        let cases: [(String, &str); 6] = [
            (
                "GET / HTTP/1.1\r\nHost: x\r\n\r\n".into(),
                "HTTP/1.1 426 Upgrade Required\r\n",
            ),
            (
                upgrade_request("").replace("Version: 13", "Version: 8"),
                "HTTP/1.1 426 Upgrade Required\r\n",
            ),
            (
                upgrade_request("").replace("GET", "POST"),
                "HTTP/1.1 400 Bad Request\r\n",
            ),
            (
                upgrade_request("").replace("Connection: Upgrade", "Connection: keep-alive"),
                "HTTP/1.1 400 Bad Request\r\n",
            ),
            (
                upgrade_request("").replace("dGhlIHNhbXBsZSBub25jZQ==", "!!"),
                "HTTP/1.1 400 Bad Request\r\n",
            ),
            ("GARBAGE\r\n\r\n".into(), "HTTP/1.1 400 Bad Request\r\n"),
        ];
        for (req, status) in cases {
            let (mut ws, head) = RawWs::connect_with(addr, &req);
            assert!(head.starts_with(status), "{req:?} got\n{head}");
            assert!(head.contains("Connection: close\r\n"));
            if status.contains("426") && req.contains("Version: 8") {
                assert!(head.contains("Sec-WebSocket-Version: 13\r\n"), "{head}");
            }
            ws.read_rest(); // the server closes
        }
        // Headers over the limit: 431.
        let big = format!("X-Big: {}\r\n", "a".repeat(10_000));
        let (_, head) = RawWs::connect_with(addr, &upgrade_request(&big));
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert_eq!(*log.opens.lock().unwrap(), 0);
    });
    engine.stop();
}

#[test]
fn request_split_anywhere_and_frames_right_behind_it() {
    let (engine, addr, _) = ws_echo_server(Config::default());
    deadline(30, move || {
        let mut wire = upgrade_request("").into_bytes();
        wire.extend_from_slice(&client_frame(true, 1, b"early"));
        for chunk in [1, 7, wire.len()] {
            let mut ws = RawWs::connect_raw(addr);
            ws.send_chunked(&wire, chunk);
            let head = ws.read_head();
            assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
            ws.expect(1, b"early");
        }
    });
    engine.stop();
}

/// Selects subprotocols and refuses paths other than `/ws`.
#[derive(Clone, Default)]
struct Picky;

impl WebSocketHandler for Picky {
    type State = String;
    fn on_upgrade(&mut self, up: &mut Upgrade<'_, '_, String>) -> Result<(), u16> {
        if up.path() != "/ws" {
            return Err(404);
        }
        // The client's explicit wish wins over the server's order if offered.
        if up.offered_protocols().contains(&"v1") && up.request().header("x-prefer-v1").is_some() {
            assert!(up.select_protocol(Some("v1")));
        }
        assert!(!up.select_protocol(Some("not-offered")));
        *up.state_mut() = up.protocol().unwrap_or("none").to_string();
        Ok(())
    }
    fn on_message(&mut self, ws: &mut WsConn<'_, '_, String>, _msg: Message<'_>) -> Action {
        let reply = format!("{}|{}", ws.state(), ws.protocol().unwrap_or("none"));
        let _ = ws.send_text(&reply);
        Action::None
    }
}

#[test]
fn subprotocols_and_the_applications_veto() {
    let engine = engine_builder()
        .loops(1)
        .listen("127.0.0.1:0")
        .start_with(WebSocket::new(
            Picky,
            Config::default().protocols(["v2", "v1"]),
        ))
        .unwrap();
    let addr = tcp_addr(&engine);
    deadline(30, move || {
        let cases = [
            ("Sec-WebSocket-Protocol: v1, v2\r\n", Some("v2")),
            (
                "Sec-WebSocket-Protocol: v1\r\nSec-WebSocket-Protocol: v3\r\n",
                Some("v1"),
            ),
            (
                "Sec-WebSocket-Protocol: v1, v2\r\nX-Prefer-V1: 1\r\n",
                Some("v1"),
            ),
            ("Sec-WebSocket-Protocol: v3\r\n", None),
            ("", None),
        ];
        for (extra, want) in cases {
            let (mut ws, head) = RawWs::connect_extra(addr, extra);
            let got = head
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Protocol: "));
            assert_eq!(got, want, "{extra:?}");
            ws.send(&client_frame(true, 1, b"?"));
            let w = want.unwrap_or("none");
            ws.expect(1, format!("{w}|{w}").as_bytes());
        }
        let (mut ws, head) =
            RawWs::connect_with(addr, &upgrade_request("").replace("/ws", "/other"));
        assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
        ws.read_rest();
    });
    engine.stop();
}

/// The client side of the tests: sends a script of messages on open, records
/// what comes back, closes after `expect` messages.
#[derive(Clone, Default)]
struct Script {
    expect: usize,
    got: Arc<Mutex<Vec<String>>>,
    closed: Arc<Mutex<Vec<u16>>>,
    failed: Arc<Mutex<Vec<String>>>,
    compressed: Arc<Mutex<Option<bool>>>,
}

impl WebSocketHandler for Script {
    type State = usize;
    fn on_open(&mut self, ws: &mut WsConn<'_, '_, usize>) -> Action {
        *self.compressed.lock().unwrap() = Some(ws.is_compressed());
        assert!(ws.is_client());
        ws.send_text("hello").unwrap();
        ws.send_binary(&[0, 1, 2, 255]).unwrap();
        ws.send_fragmented(Message::Text(&"fragmented ".repeat(100)), 64)
            .unwrap();
        ws.ping(b"are you there").unwrap();
        let big = "x".repeat(300_000);
        ws.send_text(&big).unwrap();
        Action::None
    }
    fn on_message(&mut self, ws: &mut WsConn<'_, '_, usize>, msg: Message<'_>) -> Action {
        let s = match msg {
            Message::Text(t) if t.len() > 1000 => format!("text of {}", t.len()),
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => format!("{b:?}"),
        };
        self.got.lock().unwrap().push(s);
        *ws.state_mut() += 1;
        if *ws.state() == self.expect {
            ws.close(CloseCode::NORMAL, "done");
        }
        Action::None
    }
    fn on_pong(&mut self, _ws: &mut WsConn<'_, '_, usize>, payload: &[u8]) -> Action {
        self.got
            .lock()
            .unwrap()
            .push(format!("pong {}", String::from_utf8_lossy(payload)));
        Action::None
    }
    fn on_close(&mut self, _ws: &mut WsConn<'_, '_, usize>, code: CloseCode, _reason: &str) {
        self.closed.lock().unwrap().push(code.0);
    }
    fn on_handshake_failed(&mut self, _state: &mut usize, error: &ClientHandshakeError) {
        self.failed.lock().unwrap().push(error.to_string());
    }
}

fn run_client(server_cfg: Config, client_cfg: Config) -> (Script, WsLog) {
    let (engine, addr, log) = ws_echo_server(server_cfg);
    let app = Script {
        expect: 4,
        ..Script::default()
    };
    let client_engine = engine_builder()
        .loops(1)
        .start_client_with(WebSocket::new(app.clone(), client_cfg))
        .unwrap();
    let (target, request) = client::parse_url(&format!("ws://{addr}/ws")).unwrap();
    client::dial(
        &client_engine.dialer(),
        target.as_str(),
        request,
        0usize,
        DialOptions::new().timeout(Duration::from_secs(5)),
        |res| assert!(res.is_ok(), "dial failed: {res:?}"),
    );
    let closed = app.closed.clone();
    assert!(
        wait_until(Duration::from_secs(20), || !closed
            .lock()
            .unwrap()
            .is_empty()),
        "the client never closed; got {:?}",
        app.got.lock().unwrap()
    );
    assert!(wait_until(Duration::from_secs(5), || !log
        .closes()
        .is_empty()));
    client_engine.stop();
    engine.stop();
    (app, log)
}

#[test]
fn netloop_client_against_the_server() {
    for deflate in [false, true] {
        let cfg = || {
            let c = Config::default();
            if deflate {
                c.deflate(DeflateConfig::default())
            } else {
                c
            }
        };
        let (app, log) = run_client(cfg(), cfg());
        assert_eq!(*app.compressed.lock().unwrap(), Some(deflate));
        assert_eq!(
            *app.got.lock().unwrap(),
            [
                "hello".to_string(),
                "[0, 1, 2, 255]".to_string(),
                "text of 1100".to_string(),
                "pong are you there".to_string(),
                "text of 300000".to_string(),
            ]
        );
        assert_eq!(*app.closed.lock().unwrap(), [1000]);
        assert_eq!(log.closes(), [(1000, "done".to_string())]);
    }
}

#[test]
fn client_with_context_takeover_and_small_windows() {
    let takeover = DeflateConfig {
        context_takeover: true,
        max_window_bits: 10,
        ..DeflateConfig::default()
    };
    let (app, _) = run_client(
        Config::default().deflate(takeover.clone()),
        Config::default().deflate(takeover),
    );
    assert_eq!(*app.compressed.lock().unwrap(), Some(true));
    assert_eq!(app.got.lock().unwrap().len(), 5);
    // A compressing client against a server without compression runs plain.
    let (app, _) = run_client(
        Config::default(),
        Config::default().deflate(DeflateConfig::default()),
    );
    assert_eq!(*app.compressed.lock().unwrap(), Some(false));
}

#[test]
fn client_handshake_failure_is_reported() {
    // A server that refuses every upgrade path the client asks for.
    let engine = engine_builder()
        .loops(1)
        .listen("127.0.0.1:0")
        .start_with(WebSocket::new(Picky, Config::default()))
        .unwrap();
    let app = Script::default();
    let client_engine = engine_builder()
        .loops(1)
        .start_client_with(WebSocket::new(app.clone(), Config::default()))
        .unwrap();
    client::dial(
        &client_engine.dialer(),
        engine.local_addr(),
        ClientRequest::new("localhost", "/nope"),
        0usize,
        DialOptions::new(),
        |_| {},
    );
    let failed = app.failed.clone();
    assert!(wait_until(Duration::from_secs(10), || !failed
        .lock()
        .unwrap()
        .is_empty()));
    assert!(
        failed.lock().unwrap()[0].contains("404"),
        "{:?}",
        failed.lock().unwrap()
    );
    assert!(wait_until(Duration::from_secs(5), || client_engine
        .connection_count()
        == 0));
    assert!(app.closed.lock().unwrap().is_empty());
    client_engine.stop();
    engine.stop();
}

#[test]
fn a_peer_that_does_not_read_is_paused_not_buffered() {
    let (engine, addr, log) = ws_echo_server(Config::default());
    let h = engine.handle();
    deadline(60, move || {
        let mut ws = RawWs::connect(addr);
        ws.stream
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        // Send 64 MiB of echo requests without reading a byte back: the server
        // stops reading once its outbound queue is past the high water mark, so
        // our writes eventually block instead of the server queueing it all.
        let frame = client_frame(true, 2, &vec![7u8; 64 * 1024]);
        let mut sent = 0usize;
        while sent < 64 << 20 {
            match ws.stream.write(&frame) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        assert!(sent < 64 << 20, "the server never pushed back");
        assert!(wait_until(Duration::from_secs(5), || {
            log.writable_changes.lock().unwrap().first() == Some(&false)
        }));
        // The queue stays bounded (the default high mark is 64 KiB; one read's
        // batch of echoes can pass it).
        let queued = h.stats().total.queued_out_bytes;
        assert!(queued < 4 << 20, "{queued} bytes queued");
        // Reading resumes it all: every echo arrives, in order.
        ws.stream.set_write_timeout(None).unwrap();
        let mut got = 0usize;
        while got + 64 * 1024 <= sent.min(4 << 20) {
            let f = ws.read_frame().unwrap();
            assert_eq!(f.payload.len(), 64 * 1024);
            got += f.payload.len();
        }
        assert!(log.writable_changes.lock().unwrap().contains(&true));
        assert!(log.closes().is_empty());
    });
    engine.stop();
}

#[test]
fn idle_connections_close_after_the_timeout() {
    let cfg = Config::default().idle_timeout(Some(Duration::from_millis(200)));
    let (engine, addr, log) = ws_echo_server(cfg);
    deadline(30, move || {
        let mut ws = RawWs::connect(addr);
        ws.send(&client_frame(true, 1, b"still here"));
        ws.expect(1, b"still here");
        ws.expect_eof();
        assert!(wait_until(Duration::from_secs(5), || !log
            .closes()
            .is_empty()));
        let (code, reason) = log.closes()[0].clone();
        assert_eq!(code, 1006);
        assert!(reason.contains("idle"), "{reason}");
    });
    engine.stop();
}

#[test]
fn broadcast_through_handles_across_loops() {
    use netloop::protocol::websocket::{PreparedMessage, WsHandle};
    /// Collects every connection's handle.
    #[derive(Clone, Default)]
    struct Room(Arc<Mutex<Vec<WsHandle>>>);
    impl WebSocketHandler for Room {
        type State = ();
        fn on_open(&mut self, ws: &mut WsConn<'_, '_, ()>) -> Action {
            self.0.lock().unwrap().push(ws.handle());
            Action::None
        }
        fn on_message(&mut self, _ws: &mut WsConn<'_, '_, ()>, _msg: Message<'_>) -> Action {
            Action::None
        }
    }
    let room = Room::default();
    let engine = engine_builder()
        .loops(2)
        .listen("127.0.0.1:0")
        .start_with(WebSocket::new(room.clone(), Config::default()))
        .unwrap();
    let addr = tcp_addr(&engine);
    deadline(30, move || {
        let mut clients: Vec<RawWs> = (0..6).map(|_| RawWs::connect(addr)).collect();
        assert!(wait_until(Duration::from_secs(5), || room
            .0
            .lock()
            .unwrap()
            .len()
            == 6));
        let msg = PreparedMessage::text("to everyone");
        for h in room.0.lock().unwrap().iter() {
            let _ = h.send_prepared(&msg);
        }
        for c in &mut clients {
            c.expect(1, b"to everyone");
        }
        let _ = room.0.lock().unwrap()[1].ping(b"hb");
        clients[1].expect(9, b"hb");
        let _ = room.0.lock().unwrap()[0].close(CloseCode::GOING_AWAY, "bye");
        let f = clients[0].read_frame().unwrap();
        assert_eq!(f.close_code(), 1001);
    });
    engine.stop();
}

/// Python's `websockets` (an independent implementation) against the server:
/// with and without compression, fragmented messages, pings, close codes.
#[test]
fn python_websockets_client() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import websockets.sync.client"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("note: python3 with the `websockets` package is missing; skipping (pip install websockets)");
        return;
    }
    let cfg = Config::default()
        .deflate(DeflateConfig::default())
        .protocols(["chat"]);
    let (engine, addr, log) = ws_echo_server(cfg);
    let script = r#"
import sys
from websockets.sync.client import connect
from websockets.exceptions import ConnectionClosed
url = sys.argv[1]
for compression in ("deflate", None):
    with connect(url, compression=compression, subprotocols=["chat"], max_size=None) as ws:
        assert ws.subprotocol == "chat", ws.subprotocol
        ext = ws.response.headers.get("Sec-WebSocket-Extensions")
        assert (ext is not None) == (compression is not None), ext
        for msg in ["hello", "", "é" * 1000, b"\x00\xff" * 50000, "x" * 200000]:
            ws.send(msg)
            assert ws.recv() == msg
        ws.send(["frag", "mented ", "text"])
        assert ws.recv() == "fragmented text"
        ws.send([b"\x01", b"\x02\x03"])
        assert ws.recv() == b"\x01\x02\x03"
        ws.ping(b"heartbeat").wait(5)
        ws.send("close:4001")
        try:
            ws.recv()
            raise SystemExit("expected a close")
        except ConnectionClosed as e:
            assert e.rcvd.code == 4001, e.rcvd
    with connect(url, compression=compression) as ws:
        ws.send("bye")
        assert ws.recv() == "bye"
        ws.close(code=1000, reason="done")
print("ok")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &format!("ws://{addr}/")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "python websockets client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wait_until(Duration::from_secs(5), || log.closes().len() == 4));
    let closes = log.closes();
    assert_eq!(closes.iter().filter(|(c, _)| *c == 4001).count(), 2);
    assert_eq!(
        closes
            .iter()
            .filter(|(c, r)| *c == 1000 && r == "done")
            .count(),
        2
    );
    let _ = std::io::stderr().flush();
    engine.stop();
}

/// The example's self-test: the netloop client (over the dialer) against the
/// example server, echo and chat room across two loops, with compression.
#[test]
fn websocket_example_self_test() {
    let (status, out, err) = run_example(
        "websocket",
        &[
            "--addr",
            "127.0.0.1:0",
            "--loops",
            "2",
            "--deflate",
            "--self-test",
        ],
    );
    assert!(
        status.success() && out.contains("ok: websocket self-test passed"),
        "websocket example failed: {status}\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    assert!(out.contains("listening on 127.0.0.1:"), "{out}");
}
