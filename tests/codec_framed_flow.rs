//! The `Framed` adapter's flow control and timing, as a plain handler has them:
//! pausing on the water marks (with the frames that arrived meanwhile delivered
//! after the resume), the per-connection timer and timeouts, and half-close.
mod support;

use netloop::codec::{FrameConn, FrameHandler, Framed, LineCodec};
use netloop::{Action, CloseReason, Engine};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// Bytes of each bulk reply.
const REPLY: usize = 16 * 1024;
/// The engine's outbound high water mark in these tests.
const HIGH: usize = 64 * 1024;

/// Answers every request line `i` with a `REPLY`-byte line starting with `i`;
/// pauses reading while unwritable and resumes once writable again.
#[derive(Clone, Default)]
struct Bulk {
    /// The largest outbound queue seen right after a reply was written.
    peak: Arc<AtomicUsize>,
    pauses: Arc<AtomicUsize>,
}

impl FrameHandler for Bulk {
    type State = ();

    fn on_frame(&mut self, conn: &mut FrameConn<'_, '_, ()>, frame: &[u8]) -> Action {
        let mut reply = frame.to_vec();
        reply.resize(REPLY - 1, b'.');
        if conn.send(&reply).is_err() {
            return Action::Close;
        }
        self.peak.fetch_max(conn.outbound_len(), Ordering::Relaxed);
        if !conn.is_writable() {
            self.pauses.fetch_add(1, Ordering::Relaxed);
            conn.pause_read();
            assert!(conn.is_read_paused());
        }
        Action::None
    }

    fn on_writable_changed(&mut self, conn: &mut FrameConn<'_, '_, ()>, writable: bool) {
        if writable {
            conn.resume_read();
        }
    }
}

#[test]
fn pausing_frame_handler_bounds_its_output_and_loses_no_frame() {
    let bulk = Bulk::default();
    let engine = engine_builder()
        .loops(1)
        // The handler's own pause is under test, not the engine's.
        .read_backpressure(false)
        .write_high_water(HIGH)
        .write_low_water(HIGH / 2)
        .listen("127.0.0.1:0")
        .start_with(Framed::new(LineCodec::new, bulk.clone()))
        .unwrap();
    let mut c = TcpStream::connect(engine.local_addr().as_tcp().unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // 2,000 requests in one go (all buffered by the server at once), replies worth
    // 32 MiB: far more than the socket buffers hold, so the server must pause.
    let n = 2000;
    let requests: String = (0..n).map(|i| format!("{i}\n")).collect();
    c.write_all(requests.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut lines = BufReader::new(c.try_clone().unwrap()).lines();
    for i in 0..n {
        let line = lines.next().expect("a reply").unwrap();
        assert_eq!(line.len(), REPLY - 1, "reply {i}");
        let head = line.trim_end_matches('.');
        assert_eq!(head, i.to_string(), "replies in order");
    }
    let peak = bulk.peak.load(Ordering::Relaxed);
    assert!(bulk.pauses.load(Ordering::Relaxed) > 0, "never paused");
    assert!(
        peak <= HIGH + REPLY,
        "outbound reached {peak} B: the pause did not stop frame delivery"
    );
    engine.stop();
}

/// Sets a timer at open; the timer says "tick" and arms a short idle timeout.
#[derive(Clone, Default)]
struct Ticking {
    closes: Arc<Mutex<Vec<String>>>,
}

impl FrameHandler for Ticking {
    type State = ();

    fn on_open(&mut self, conn: &mut FrameConn<'_, '_, ()>) -> Action {
        conn.set_timer(Some(Instant::now() + Duration::from_millis(50)));
        Action::None
    }

    fn on_frame(&mut self, conn: &mut FrameConn<'_, '_, ()>, frame: &[u8]) -> Action {
        let _ = conn.send(frame);
        Action::None
    }

    fn on_timer(&mut self, conn: &mut FrameConn<'_, '_, ()>) -> Action {
        let _ = conn.send(b"tick");
        conn.set_idle_timeout(Some(Duration::from_millis(200)));
        Action::None
    }

    fn on_read_closed(&mut self, conn: &mut FrameConn<'_, '_, ()>) -> Action {
        let _ = conn.send(b"done");
        Action::Close
    }

    fn on_close(&mut self, _conn: &mut FrameConn<'_, '_, ()>, reason: &CloseReason) {
        self.closes.lock().unwrap().push(reason_name(reason));
    }
}

impl Ticking {
    /// Waits (up to 5 s) until `n` connections have closed.
    fn wait_closes(&self, n: usize) -> bool {
        wait_until(Duration::from_secs(5), || {
            self.closes.lock().unwrap().len() == n
        })
    }
}

fn start_ticking(t: &Ticking) -> Engine {
    engine_builder()
        .loops(1)
        .allow_half_closure(true)
        .listen("127.0.0.1:0")
        .start_with(Framed::new(LineCodec::new, t.clone()))
        .unwrap()
}

#[test]
fn timer_and_idle_timeout_set_from_a_frame_handler() {
    let t = Ticking::default();
    let engine = start_ticking(&t);
    let c = TcpStream::connect(engine.local_addr().as_tcp().unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    let mut lines = BufReader::new(c);
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    assert_eq!(line, "tick\n");
    // Then silence: the idle timeout the timer armed closes the connection.
    let mut rest = Vec::new();
    lines.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(t.wait_closes(1));
    let reason = t.closes.lock().unwrap()[0].clone();
    assert!(reason.contains("idle"), "{reason}");
    engine.stop();
}

#[test]
fn half_close_reaches_the_frame_handler_after_every_frame() {
    let t = Ticking::default();
    let engine = start_ticking(&t);
    let mut c = TcpStream::connect(engine.local_addr().as_tcp().unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"a\nb\n").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    // "tick" may come first if the timer beat the bytes; the rest is ordered.
    let got = got.trim_start_matches("tick\n");
    assert_eq!(got, "a\nb\ndone\n");
    assert!(t.wait_closes(1));
    engine.stop();
}
