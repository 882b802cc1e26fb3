//! The `Framed` adapter against real engines: every codec, frames in random chunkings
//! (with pauses, so frames are split across reads and several arrive per read),
//! decode errors closing only the offending connection, and the frame handler's
//! callbacks (greeting, close, state, panics).
mod support;

use support::Rng;

use netloop::codec::{
    ByteOrder, Codec, CodecSpec, FrameConn, FrameHandler, Framed, LengthFieldCodec, LineCodec,
};
use netloop::{Action, CloseReason, Engine, EventHandler};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use support::*;

/// Echoes every frame, counts frames per connection, records close reasons and the
/// count each connection ended with.
#[derive(Clone, Default)]
struct Echo {
    closes: Arc<Mutex<Vec<(String, u64)>>>,
}

impl FrameHandler for Echo {
    type State = u64;

    fn on_frame(&mut self, conn: &mut FrameConn<'_, '_, u64>, frame: &[u8]) -> Action {
        *conn.state_mut() += 1;
        match frame {
            b"quit" => Action::Close,
            b"bye" => {
                let _ = conn.send(b"goodbye");
                conn.close();
                Action::None
            }
            b"panic" => panic!("asked to panic"),
            _ => match conn.send(frame) {
                Ok(()) => Action::None,
                Err(_) => Action::Close,
            },
        }
    }

    fn on_close(&mut self, conn: &mut FrameConn<'_, '_, u64>, reason: &CloseReason) {
        let name = match reason {
            CloseReason::Protocol(m) => format!("protocol: {m}"),
            other => reason_name(other),
        };
        self.closes.lock().unwrap().push((name, *conn.state()));
    }
}

impl Echo {
    fn closes(&self) -> Vec<(String, u64)> {
        self.closes.lock().unwrap().clone()
    }
}

fn start<C: Codec>(server: Framed<C, Echo>, loops: usize) -> Engine {
    engine_builder()
        .loops(loops)
        .listen("127.0.0.1:0")
        .start_with(server)
        .unwrap()
}

fn connect_to(engine: &Engine) -> TcpStream {
    let s = TcpStream::connect(engine.local_addr().as_tcp().unwrap()).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// A payload the codec described by `spec` can carry unchanged.
fn payload(spec: &CodecSpec, rng: &mut Rng, max: usize) -> Vec<u8> {
    match spec {
        CodecSpec::Fixed(n) => (0..*n).map(|_| rng.next() as u8).collect(),
        CodecSpec::Line(_) | CodecSpec::Delimiter(_) => {
            // Printable ASCII: no line ending, no NUL.
            let len = rng.below(max + 1);
            (0..len).map(|_| b' ' + rng.below(95) as u8).collect()
        }
        CodecSpec::LengthField {
            length_field_length: 1,
            ..
        } => (0..rng.below(256.min(max + 1)))
            .map(|_| rng.next() as u8)
            .collect(),
        _ => (0..rng.below(max + 1)).map(|_| rng.next() as u8).collect(),
    }
}

/// Writes `wire` in random chunks, sometimes pausing so the server reads partial frames.
fn send_chunked(s: &mut TcpStream, wire: &[u8], rng: &mut Rng) {
    let mut at = 0;
    while at < wire.len() {
        let n = match rng.below(4) {
            0 => 1,
            1 => rng.below(16) + 1,
            2 => rng.below(600) + 1,
            _ => rng.below(20_000) + 1,
        }
        .min(wire.len() - at);
        s.write_all(&wire[at..at + n]).unwrap();
        at += n;
        if rng.below(5) == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Reads and decodes `count` frames with `codec`.
fn read_frames(s: &mut TcpStream, codec: &mut dyn Codec, count: usize) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while frames.len() < count {
        while let Some(d) = codec.decode(&buf).unwrap() {
            frames.push(d.payload(&buf).to_vec());
            buf.drain(..d.consumed);
            if frames.len() == count {
                return frames;
            }
        }
        let n = s.read(&mut chunk).expect("reading echoed frames");
        assert!(
            n > 0,
            "server closed after {} of {count} frames",
            frames.len()
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    frames
}

/// Several clients per codec, each sending frames in random chunkings from its own
/// thread (the writer) while the test reads the echo (so neither side blocks).
fn echo_roundtrip(spec_str: &str, max: usize, seed: u64) {
    let spec: CodecSpec = spec_str.parse().unwrap();
    let echo = Echo::default();
    let engine = start(Framed::from_spec(&spec, max, echo.clone()).unwrap(), 2);
    let clients: Vec<_> = (0..3u64)
        .map(|c| {
            let spec = spec.clone();
            let mut s = connect_to(&engine);
            thread::spawn(move || {
                let mut rng = Rng(seed.wrapping_mul(31).wrapping_add(c) | 1);
                let encoder = spec.build(max).unwrap();
                let frames: Vec<Vec<u8>> =
                    (0..150).map(|_| payload(&spec, &mut rng, max)).collect();
                let mut wire = Vec::new();
                for f in &frames {
                    encoder.encode(f).unwrap().write_to(&mut wire);
                }
                let mut w = s.try_clone().unwrap();
                let writer = thread::spawn(move || send_chunked(&mut w, &wire, &mut rng));
                let mut decoder = spec.build(max).unwrap();
                let got = read_frames(&mut s, &mut *decoder, frames.len());
                writer.join().unwrap();
                for (i, (g, f)) in got.iter().zip(&frames).enumerate() {
                    assert_eq!(g, f, "{spec}: frame {i} differs (client {c})");
                }
                frames.len() as u64
            })
        })
        .collect();
    let sent: Vec<u64> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(wait_until(Duration::from_secs(5), || echo.closes().len() == 3));
    engine.stop();
    for (reason, count) in echo.closes() {
        assert_eq!(reason, "peer", "{spec_str}");
        assert_eq!(count, sent[0], "{spec_str}: frames seen by the server");
    }
}

#[test]
fn echo_line() {
    echo_roundtrip("line", 3000, 1);
}

#[test]
fn echo_line_crlf() {
    echo_roundtrip("line=crlf", 3000, 2);
}

#[test]
fn echo_delimiter() {
    echo_roundtrip("delimiter=00", 3000, 3);
}

#[test]
fn echo_two_delimiters() {
    echo_roundtrip("delimiter=0d0a,00", 2000, 4);
}

#[test]
fn echo_fixed() {
    echo_roundtrip("fixed=7", 64, 5);
    echo_roundtrip("fixed=1500", 4096, 6);
}

#[test]
fn echo_length_field() {
    echo_roundtrip("length-field=1,be", 255, 7);
    echo_roundtrip("length-field=2,le", 5000, 8);
    echo_roundtrip("length-field=4,be", 70_000, 9);
    echo_roundtrip("length-field=8,le", 3000, 10);
}

#[test]
fn echo_frame_codec() {
    echo_roundtrip("frame", 5000, 11);
}

#[test]
fn many_frames_in_one_read_and_one_frame_over_many_reads() {
    let echo = Echo::default();
    let engine = start(Framed::new(LineCodec::new, echo.clone()), 1);
    let mut s = connect_to(&engine);
    // 2000 small lines in one write: many frames per read.
    let mut wire = Vec::new();
    for i in 0..2000 {
        wire.extend_from_slice(format!("line {i}\n").as_bytes());
    }
    s.write_all(&wire).unwrap();
    let mut back = vec![0u8; wire.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, wire);
    // One line byte by byte, with pauses: one frame over many reads.
    for &b in b"slowly, one byte at a time\n" {
        s.write_all(&[b]).unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    let mut back = vec![0u8; 27];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"slowly, one byte at a time\n");
    engine.stop();
}

/// Expects the server to close `s`: end of file or a reset.
fn assert_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!("expected the server to close the connection, got {e}"),
        }
    }
}

fn assert_echoes(s: &mut TcpStream, line: &[u8]) {
    s.write_all(line).unwrap();
    let mut back = vec![0u8; line.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, line);
}

#[test]
fn oversize_line_closes_that_connection_only() {
    // 1 MiB limit (the default); a 2 MiB line without newline.
    let echo = Echo::default();
    let engine = start(Framed::new(LineCodec::new, echo.clone()), 2);
    let mut good = connect_to(&engine);
    assert_echoes(&mut good, b"before\n");

    let mut bad = connect_to(&engine);
    let mut w = bad.try_clone().unwrap();
    let writer = thread::spawn(move || {
        // The server closes mid-way: the tail of this write may fail.
        let _ = w.write_all(&vec![b'x'; 2 << 20]);
    });
    assert_closed(&mut bad);
    writer.join().unwrap();

    assert_echoes(&mut good, b"after\n");
    let mut third = connect_to(&engine);
    assert_echoes(&mut third, b"a newcomer\n");
    assert!(wait_until(Duration::from_secs(5), || !echo
        .closes()
        .is_empty()));
    let closes = echo.closes();
    assert_eq!(closes.len(), 1, "{closes:?}");
    assert!(
        closes[0].0.starts_with("protocol: ") && closes[0].0.contains("1048576"),
        "{closes:?}"
    );
    engine.stop();
}

#[test]
fn garbage_length_fields_close_without_panicking() {
    // A plain 4-byte length field with a small limit, and a Netty-style codec whose
    // negative adjustment turns small lengths into errors.
    let plain = Echo::default();
    let plain_engine = start(
        Framed::from_spec(&"length-field=4,be".parse().unwrap(), 1024, plain.clone()).unwrap(),
        1,
    );
    let adjusted = Echo::default();
    let adjusted_engine = start(
        Framed::with_codec(
            LengthFieldCodec::builder()
                .length_field_length(2)
                .byte_order(ByteOrder::BigEndian)
                .length_adjustment(-100)
                .max_frame_length(1 << 16)
                .build()
                .unwrap(),
            adjusted.clone(),
        ),
        1,
    );
    let mut rng = Rng(0x5eed);
    for (engine, echo) in [(&plain_engine, &plain), (&adjusted_engine, &adjusted)] {
        let mut good = connect_to(engine);
        for round in 0..20 {
            let mut bad = connect_to(engine);
            let mut garbage: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
            if std::ptr::eq(echo, &plain) {
                garbage[0] = 0x7f; // an absurd length whatever follows
            } else {
                // A length below 100: negative once adjusted.
                garbage[0] = 0;
                garbage[1] = rng.below(100) as u8;
            }
            let _ = bad.write_all(&garbage);
            assert_closed(&mut bad);
            // The server lingers (reading and dropping) until this side closes
            // too, or its linger timeout passes; on_close follows either.
            drop(bad);
            assert!(
                wait_until(Duration::from_secs(5), || echo.closes().len() == round + 1),
                "round {round}: {:?}",
                echo.closes()
            );
        }
        // The other connection was never disturbed.
        if std::ptr::eq(echo, &plain) {
            assert_echoes(&mut good, b"\x00\x00\x00\x02hi");
        } else {
            // 0x66 - 100 = 2 bytes after the field; no header stripped, so the
            // payload is the whole frame and the reply prepends a length of 4.
            good.write_all(b"\x00\x66hi").unwrap();
            let mut back = [0u8; 6];
            good.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"\x00\x04\x00\x66hi");
        }
        for (reason, _) in echo.closes() {
            assert!(reason.starts_with("protocol: "), "{reason}");
        }
    }
    plain_engine.stop();
    adjusted_engine.stop();
}

#[test]
fn close_from_a_frame_stops_delivery_and_keeps_state() {
    let echo = Echo::default();
    let engine = start(Framed::new(LineCodec::new, echo.clone()), 1);
    // `quit` arrives with more frames in the same write: they are not delivered.
    let mut s = connect_to(&engine);
    s.write_all(b"one\ntwo\nquit\nthree\nfour\n").unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"one\ntwo\n");
    assert!(wait_until(Duration::from_secs(5), || echo.closes().len() == 1));
    assert_eq!(echo.closes()[0], ("local".to_string(), 3));

    // FrameConn::close after a send: the reply is flushed before the close.
    let mut s = connect_to(&engine);
    s.write_all(b"a\nbye\nb\n").unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"a\ngoodbye\n");
    assert!(wait_until(Duration::from_secs(5), || echo.closes().len() == 2));
    assert_eq!(echo.closes()[1], ("local".to_string(), 2));
    engine.stop();
}

#[test]
fn panic_in_on_frame_reports_panicked_with_the_state() {
    let echo = Echo::default();
    let engine = start(Framed::new(LineCodec::new, echo.clone()), 1);
    let mut s = connect_to(&engine);
    s.write_all(b"x\ny\npanic\nz\n").unwrap();
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    assert!(wait_until(Duration::from_secs(5), || echo.closes().len() == 1));
    // on_close ran once, with the state as it was when the handler panicked.
    assert_eq!(echo.closes(), [("panicked".to_string(), 3)]);
    // The loop carries on.
    let mut s = connect_to(&engine);
    assert_echoes(&mut s, b"still here\n");
    engine.stop();
}

/// Sends a greeting frame from `on_open`, closes on an empty frame.
#[derive(Clone)]
struct Greeter;

impl FrameHandler for Greeter {
    type State = ();

    fn on_open(&mut self, conn: &mut FrameConn<'_, '_, ()>) -> Action {
        let _ = conn.send(b"welcome");
        Action::None
    }

    fn on_frame(&mut self, conn: &mut FrameConn<'_, '_, ()>, frame: &[u8]) -> Action {
        if frame.is_empty() {
            return Action::Close;
        }
        // An unencodable reply is an InvalidInput error and writes nothing.
        let err = conn.send(b"two\nlines").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let _ = conn.send(frame);
        Action::None
    }
}

#[test]
fn greeting_and_unencodable_replies() {
    let engine = engine_builder()
        .loops(1)
        .listen("127.0.0.1:0")
        .start_with(Framed::new(LineCodec::new, Greeter))
        .unwrap();
    let mut s = connect_to(&engine);
    s.write_all(b"hi\n\n").unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"welcome\nhi\n");
    engine.stop();
}

#[test]
fn framed_is_an_event_handler_with_typed_state() {
    fn is_handler<H: EventHandler + Clone + Send>(_: &H) {}
    is_handler(&Framed::new(LineCodec::new, Echo::default()));
    is_handler(&Framed::from_spec(&CodecSpec::Frame, 10, Greeter).unwrap());
}

/// The chat example's scripted conversation (nicknames, broadcast across loops, an
/// over-long line disconnecting only its sender), through `cargo run`.
#[test]
fn chat_example_self_test() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .args(["--example", "chat", "--"])
        .args(["--addr", "127.0.0.1:0", "--loops", "2", "--self-test"])
        .env("RUST_LOG", "error")
        .output()
        .expect("running cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok: chat self-test passed"),
        "chat self-test failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
