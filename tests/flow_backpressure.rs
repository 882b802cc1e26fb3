//! Flow control faults: a peer that sends and never reads, water marks, the
//! outbound cap (async writes included), the inbound cap and pause/resume.

mod support;

use netloop::{Action, CloseReason, Conn, ConnHandle, Engine, EventHandler, Mode, Options};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const MIB: usize = 1024 * 1024;

#[derive(Default)]
struct Probe {
    closes: Mutex<Vec<String>>,
    went_unwritable: AtomicUsize,
    went_writable: AtomicUsize,
    consumed: AtomicU64,
    traffic_calls: AtomicUsize,
    handles: Mutex<Vec<ConnHandle>>,
    consume: AtomicBool,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode2 {
    /// Echo, ignoring writability.
    Echo,
    /// Echo, pausing reads while unwritable.
    PoliteEcho,
    /// Consume only while `Probe::consume` is set.
    Sink,
}

#[derive(Clone)]
struct H {
    p: Arc<Probe>,
    mode: Mode2,
    pause_on_open: bool,
}

impl EventHandler for H {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        self.p.handles.lock().unwrap().push(conn.handle());
        if self.pause_on_open {
            conn.pause_read();
        }
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        self.p.traffic_calls.fetch_add(1, Ordering::Relaxed);
        let n = conn.buffered();
        if self.mode == Mode2::Sink {
            if self.p.consume.load(Ordering::Relaxed) {
                conn.discard(n);
                self.p.consumed.fetch_add(n as u64, Ordering::Relaxed);
            }
            return Action::None;
        }
        let ([a, b], mut w) = conn.split();
        let res = w.writev(&[a, b]);
        conn.discard(n);
        self.p.consumed.fetch_add(n as u64, Ordering::Relaxed);
        if res.is_err() {
            Action::Close
        } else {
            Action::None
        }
    }
    fn on_writable_changed(&mut self, conn: &mut Conn<'_, ()>, writable: bool) {
        if writable {
            self.p.went_writable.fetch_add(1, Ordering::Relaxed);
        } else {
            self.p.went_unwritable.fetch_add(1, Ordering::Relaxed);
        }
        assert_eq!(conn.is_writable(), writable);
        if self.mode == Mode2::PoliteEcho {
            if writable {
                conn.resume_read();
            } else {
                conn.pause_read();
            }
        }
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        self.p.closes.lock().unwrap().push(format!("{reason:?}"));
    }
}

fn start(
    mode: Mode2,
    pause_on_open: bool,
    tweak: impl FnOnce(&mut Options),
) -> (Engine, Arc<Probe>) {
    let p = Arc::new(Probe::default());
    let mut opts = Options {
        loops: 1,
        mode: Mode::Single,
        ..Options::default()
    };
    tweak(&mut opts);
    let h = H {
        p: p.clone(),
        mode,
        pause_on_open,
    };
    let engine = engine_builder()
        .options(opts)
        .listen("tcp://127.0.0.1:0")
        .start_with(h)
        .unwrap();
    (engine, p)
}

/// Writes up to `total` bytes and never reads; stops once a write blocks for
/// `stall` or fails. Returns the bytes sent and the still-open socket.
fn flood(addr: SocketAddr, total: usize, stall: Duration) -> (usize, TcpStream) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(stall)).unwrap();
    let buf = vec![b'x'; 256 * 1024];
    let mut sent = 0;
    while sent < total {
        match s.write(&buf[..(total - sent).min(buf.len())]) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    (sent, s)
}

/// Samples the engine's held bytes (queued outbound + buffered inbound) until
/// `stop` is set; returns the maximum seen.
fn sample_held(h: netloop::EngineHandle, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut max = 0;
        while !stop.load(Ordering::Relaxed) {
            let t = h.stats().total;
            max = max.max(t.queued_out_bytes + t.buffered_in_bytes);
            std::thread::sleep(Duration::from_millis(2));
        }
        max
    })
}

/// 200 MiB sent by a peer that never reads, to a handler that pauses reading
/// while unwritable: the server holds at most about the high water mark, and
/// another client is served meanwhile.
#[test]
fn flood_never_reading_peer_with_water_marks_stays_bounded() {
    let _serial = serial();
    deadline(60, || {
        let high = 256 * 1024;
        let (engine, p) = start(Mode2::PoliteEcho, false, |o| {
            o.write_high_water = high;
            o.write_low_water = 64 * 1024;
        });
        let addr = tcp_addr(&engine);
        let rss0 = rss_bytes();
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_held(engine.handle(), stop.clone());
        let flooder = std::thread::spawn(move || flood(addr, 200 * MIB, Duration::from_secs(1)));
        // Meanwhile, other clients get their round trips.
        std::thread::sleep(Duration::from_millis(100));
        let mut rtts = Vec::new();
        for _ in 0..20 {
            rtts.push(timed_round_trip(addr, b"ping from a well-behaved client"));
        }
        let (sent, sock) = flooder.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        let max_held = sampler.join().unwrap();
        let rss_growth = rss_bytes().saturating_sub(rss0);
        eprintln!(
            "FIGURES flood+marks: sent={} KiB before stalling, max held={} KiB, rss growth={} KiB, max rtt={:?}, unwritable={} writable={}",
            sent / 1024,
            max_held / 1024,
            rss_growth / 1024,
            rtts.iter().max().unwrap(),
            p.went_unwritable.load(Ordering::Relaxed),
            p.went_writable.load(Ordering::Relaxed),
        );
        assert!(
            sent < 200 * MIB,
            "the peer should have been stopped by TCP flow control"
        );
        assert!(p.went_unwritable.load(Ordering::Relaxed) >= 1);
        assert!(
            max_held <= (high + pause_slack()) as u64,
            "held {max_held} bytes"
        );
        assert!(rss_growth < 48 * MIB, "rss grew {rss_growth} bytes");
        drop(sock);
        assert!(wait_no_connections(
            &engine.handle(),
            Duration::from_secs(5)
        ));
        assert_eq!(engine.handle().stats().total.queued_out_bytes, 0);
        engine.stop();
    });
}

/// The same flood against a naive echo that ignores writability, with read
/// backpressure off: the outbound cap closes the connection with
/// `OutboundOverflow` instead of queuing 200 MiB.
#[test]
fn flood_naive_echo_hits_outbound_cap() {
    let _serial = serial();
    deadline(60, || {
        let cap = 4 * MIB;
        let (engine, p) = start(Mode2::Echo, false, |o| {
            o.max_outbound_bytes = cap;
            o.read_backpressure = false;
        });
        let addr = tcp_addr(&engine);
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_held(engine.handle(), stop.clone());
        let flooder = std::thread::spawn(move || flood(addr, 200 * MIB, Duration::from_secs(2)));
        std::thread::sleep(Duration::from_millis(50));
        let rtt = timed_round_trip(addr, b"still served");
        let (sent, _sock) = flooder.join().unwrap();
        assert!(wait_until(Duration::from_secs(5), || !p
            .closes
            .lock()
            .unwrap()
            .is_empty()));
        stop.store(true, Ordering::Relaxed);
        let max_held = sampler.join().unwrap();
        eprintln!(
            "FIGURES flood+cap: sent={} KiB, max held={} KiB, rtt={rtt:?}",
            sent / 1024,
            max_held / 1024
        );
        let closes = p.closes.lock().unwrap().clone();
        assert!(closes.iter().any(|c| c == "OutboundOverflow"), "{closes:?}");
        assert!(max_held <= cap as u64 + 64 * 1024, "held {max_held}");
        let st = engine.handle().stats();
        assert_eq!(st.total.closed.outbound_overflow, 1);
        assert_eq!(st.total.queued_out_bytes, 0, "the queue was freed");
        engine.stop();
    });
}

/// Async writes from another thread count toward the cap too.
#[test]
fn async_writes_count_toward_outbound_cap() {
    let _serial = serial();
    deadline(30, || {
        let (engine, p) = start(Mode2::Sink, false, |o| o.max_outbound_bytes = 8 * MIB);
        let addr = tcp_addr(&engine);
        let _client = TcpStream::connect(addr).unwrap(); // never reads
        assert!(wait_until(Duration::from_secs(5), || !p
            .handles
            .lock()
            .unwrap()
            .is_empty()));
        let h = p.handles.lock().unwrap()[0].clone();
        let ok = Arc::new(AtomicUsize::new(0));
        let overflow = Arc::new(AtomicUsize::new(0));
        for _ in 0..64 {
            let (ok2, overflow2) = (ok.clone(), overflow.clone());
            // Each write is accounted for once: its callback, or (once the overflow
            // closed the connection) the error returned at once.
            let res = h.async_write(
                vec![7u8; MIB],
                Some(Box::new(move |r| match r {
                    Ok(()) => {
                        ok2.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        overflow2.fetch_add(1, Ordering::Relaxed);
                    }
                })),
            );
            if res.is_err() {
                overflow.fetch_add(1, Ordering::Relaxed);
            }
        }
        assert!(wait_until(Duration::from_secs(10), || ok
            .load(Ordering::Relaxed)
            + overflow.load(Ordering::Relaxed)
            == 64));
        let closes = p.closes.lock().unwrap().clone();
        assert_eq!(closes, vec!["OutboundOverflow".to_string()]);
        assert!(overflow.load(Ordering::Relaxed) > 0);
        assert_eq!(engine.handle().stats().total.queued_out_bytes, 0);
        engine.stop();
    });
}

/// A handler that does not consume: at `max_inbound_bytes` the loop stops reading
/// (no spin: CPU time stays far below wall time), and reading resumes when the
/// handler consumes.
#[test]
fn inbound_cap_stops_reading_without_spinning() {
    let _serial = serial();
    deadline(60, || inbound_cap(false));
}

/// The same with edge-triggered registration.
#[test]
fn inbound_cap_stops_reading_without_spinning_edge_triggered() {
    let _serial = serial();
    deadline(60, || inbound_cap(true));
}

fn inbound_cap(edge: bool) {
    let cap = 256 * 1024;
    let (engine, p) = start(Mode2::Sink, false, |o| {
        o.max_inbound_bytes = cap;
        o.edge_triggered = edge;
    });
    let addr = tcp_addr(&engine);
    let total = 8 * MIB;
    let writer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&vec![1u8; total]).unwrap();
        s
    });
    assert!(wait_until(Duration::from_secs(5), || engine
        .handle()
        .stats()
        .total
        .buffered_in_bytes
        >= cap as u64));
    let calls = p.traffic_calls.load(Ordering::Relaxed);
    let (cpu0, t0) = (cpu_time(), Instant::now());
    std::thread::sleep(Duration::from_millis(1500));
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    let st = engine.handle().stats().total;
    eprintln!(
        "FIGURES inbound cap: buffered={} KiB, cpu {cpu:?} over {wall:?}",
        st.buffered_in_bytes / 1024
    );
    // Under io_uring a round of receives completed before the cap took effect is
    // kept (see `Options::max_inbound_bytes`); epoll reads no further than the cap.
    let slack = match test_backend() {
        netloop::Backend::Epoll => 0,
        _ => pause_slack() as u64,
    };
    assert!(st.buffered_in_bytes <= cap as u64 + slack);
    assert!(cpu < wall / 5, "loop spinning: {cpu:?} of CPU in {wall:?}");
    assert_eq!(
        p.traffic_calls.load(Ordering::Relaxed),
        calls,
        "no reads while at the cap"
    );
    // Consume: a wake lets the handler drain, and reading resumes.
    p.consume.store(true, Ordering::Relaxed);
    p.handles.lock().unwrap()[0].wake().unwrap();
    let _s = writer.join().unwrap();
    assert!(wait_until(Duration::from_secs(20), || p
        .consumed
        .load(Ordering::Relaxed)
        == total as u64));
    engine.stop();
}

/// `pause_read` (from `on_open`) holds bytes back until `ConnHandle::resume_read`.
#[test]
fn pause_and_resume_read_through_handle() {
    let _serial = serial();
    deadline(30, || {
        // Edge-triggered: resuming must re-arm readiness for bytes already waiting.
        let (engine, p) = start(Mode2::Echo, true, |o| o.edge_triggered = true);
        let addr = tcp_addr(&engine);
        let mut c = connect(addr);
        c.write_all(b"hello").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            p.traffic_calls.load(Ordering::Relaxed),
            0,
            "paused: nothing read"
        );
        let h = p.handles.lock().unwrap()[0].clone();
        h.resume_read().unwrap();
        let mut back = [0u8; 5];
        std::io::Read::read_exact(&mut c, &mut back).unwrap();
        assert_eq!(&back, b"hello");
        h.pause_read().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let calls = p.traffic_calls.load(Ordering::Relaxed);
        c.write_all(b"again").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(p.traffic_calls.load(Ordering::Relaxed), calls);
        h.resume_read().unwrap();
        std::io::Read::read_exact(&mut c, &mut back).unwrap();
        assert_eq!(&back, b"again");
        engine.stop();
    });
}

/// The same flood against the same naive echo with the defaults: read
/// backpressure stops reading the connection while it is unwritable, so the peer
/// is held by TCP flow control, memory stays at the water marks, and the
/// connection is not closed (before `read_backpressure`, the echo grew its queue
/// to the outbound cap and was closed).
#[test]
fn flood_naive_echo_is_held_by_read_backpressure() {
    let _serial = serial();
    deadline(60, || {
        let (engine, p) = start(Mode2::Echo, false, |_| {});
        let high = Options::default().write_high_water as u64;
        let addr = tcp_addr(&engine);
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_held(engine.handle(), stop.clone());
        let flooder = std::thread::spawn(move || flood(addr, 200 * MIB, Duration::from_secs(1)));
        std::thread::sleep(Duration::from_millis(50));
        let rtt = timed_round_trip(addr, b"still served");
        let (sent, sock) = flooder.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        let max_held = sampler.join().unwrap();
        eprintln!(
            "FIGURES flood+backpressure: sent={} KiB, max held={} KiB, rtt={rtt:?}",
            sent / 1024,
            max_held / 1024
        );
        assert!(sent < 200 * MIB, "TCP flow control should stop the peer");
        // The high mark, plus what reading can add before the pause takes effect:
        // one read and its echo under epoll, a round of completed receives under
        // io_uring (see `pause_slack`).
        let bound = high + pause_slack() as u64;
        assert!(max_held <= bound, "held {max_held} > {bound}");
        // Only the round-trip client has gone; the flooder is still served.
        let closes = p.closes.lock().unwrap().clone();
        assert_eq!(closes, ["PeerClosed"]);
        assert_eq!(engine.handle().connection_count(), 1);
        drop(sock);
        assert!(wait_no_connections(
            &engine.handle(),
            Duration::from_secs(5)
        ));
        engine.stop();
    });
}
