//! Connection limits and churn: a flood past `max_connections`, connect/close
//! churn, accept-then-RST, zero-length writes. No crash, no spin, no leak.

mod support;

use netloop::{Action, CloseReason, Conn, Engine, EventHandler, Mode, Options};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

#[derive(Default)]
struct Probe {
    closes: Mutex<Vec<String>>,
    callbacks: AtomicUsize,
}

#[derive(Clone)]
struct Echo {
    p: Arc<Probe>,
    /// Also exercise zero-length writes on every traffic.
    zero_writes: bool,
}

impl EventHandler for Echo {
    type State = ();
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        if self.zero_writes {
            conn.write(b"").unwrap();
            conn.writev(&[b"", b""]).unwrap();
            conn.writev(&[]).unwrap();
            let p = self.p.clone();
            let _ = conn.handle().async_write(
                Vec::new(),
                Some(Box::new(move |r| {
                    assert!(r.is_ok());
                    p.callbacks.fetch_add(1, Ordering::Relaxed);
                })),
            );
            let _ = conn
                .handle()
                .async_writev(vec![Vec::new(), Vec::new()], None);
            conn.flush().unwrap();
        }
        let n = conn.buffered();
        let ([a, b], mut w) = conn.split();
        let res = w.writev(&[a, b]);
        conn.discard(n);
        if res.is_err() {
            Action::Close
        } else {
            Action::None
        }
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        self.p.closes.lock().unwrap().push(format!("{reason:?}"));
    }
}

fn start(tweak: impl FnOnce(&mut Options), zero_writes: bool) -> (Engine, Arc<Probe>) {
    let p = Arc::new(Probe::default());
    let mut opts = Options {
        loops: 1,
        mode: Mode::Single,
        ..Options::default()
    };
    tweak(&mut opts);
    let engine = engine_builder()
        .options(opts)
        .listen("tcp://127.0.0.1:0")
        .start_with(Echo {
            p: p.clone(),
            zero_writes,
        })
        .unwrap();
    (engine, p)
}

fn flood_past_limit(mode: Mode, loops: usize) {
    const LIMIT: usize = 50;
    const FLOOD: usize = 3000;
    let fds0 = fd_count();
    let (engine, _p) = start(
        |o| {
            o.mode = mode;
            o.loops = loops;
            o.max_connections = Some(LIMIT);
            o.backlog = 4096;
        },
        false,
    );
    let h = engine.handle();
    let addr = tcp_addr(&engine);
    let held: Vec<TcpStream> = (0..LIMIT).map(|_| connect(addr)).collect();
    assert!(wait_until(Duration::from_secs(5), || h.connection_count() == LIMIT));
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let mut flood: Vec<TcpStream> = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        flood.push(TcpStream::connect(addr).unwrap());
    }
    let flood_wall = t0.elapsed();
    // Every extra connection is accepted and closed at once: the client sees EOF.
    for s in flood.iter_mut().step_by(100) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).unwrap(), 0);
    }
    assert!(wait_until(Duration::from_secs(10), || h.stats().rejected
        == FLOOD as u64));
    let flood_cpu = cpu_time() - cpu0;
    // Quiet window with the rejected clients still holding their sockets.
    let (cpu1, t1) = (cpu_time(), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let (idle_cpu, idle_wall) = (cpu_time() - cpu1, t1.elapsed());
    eprintln!(
        "FIGURES limit ({mode:?}, {loops} loops): {FLOOD} over-limit connects in {flood_wall:?}, cpu {flood_cpu:?} (clients included); afterwards cpu {idle_cpu:?} over {idle_wall:?}; rejected {}",
        h.stats().rejected
    );
    assert!(
        idle_cpu < idle_wall / 10,
        "spinning after the flood: {idle_cpu:?}"
    );
    assert_eq!(
        h.connection_count(),
        LIMIT,
        "the held connections are untouched"
    );
    // The held ones still work.
    let mut c = held.into_iter().next().unwrap();
    c.write_all(b"ok").unwrap();
    let mut b = [0u8; 2];
    c.read_exact(&mut b).unwrap();
    drop(c);
    drop(flood);
    // Below the limit again: a new connection is served.
    assert!(wait_until(Duration::from_secs(5), || h.connection_count() < LIMIT));
    timed_round_trip(addr, b"after the flood");
    engine.stop();
    drop(h); // handles keep the loops' wakers (eventfds) alive
    assert!(
        wait_until(Duration::from_secs(5), || fd_count() <= fds0),
        "fds {} vs {}",
        fd_count(),
        fds0
    );
}

#[test]
fn flood_past_connection_limit_single() {
    let _serial = serial();
    deadline(60, || flood_past_limit(Mode::Single, 1));
}

#[test]
fn flood_past_connection_limit_reactor() {
    let _serial = serial();
    deadline(60, || flood_past_limit(Mode::Reactor, 2));
}

#[test]
fn connect_close_churn_10k_no_leak() {
    let _serial = serial();
    deadline(120, || {
        let (engine, _p) = start(|o| o.backlog = 4096, false);
        let h = engine.handle();
        let addr = tcp_addr(&engine);
        timed_round_trip(addr, b"warm up"); // the loop thread has created its epoll fd
        let fds0 = fd_count();
        let t0 = Instant::now();
        for i in 0..10_000 {
            let mut s = TcpStream::connect(addr).unwrap();
            if i % 3 == 0 {
                let _ = s.write_all(b"x");
            }
        }
        let churn = t0.elapsed();
        // Every connection accepted (some may still wait in the backlog while the
        // count is momentarily zero) and closed.
        assert!(
            wait_until(Duration::from_secs(20), || h.connection_count() == 0
                && h.stats().total.closed.total() == 10_001),
            "{} left, {} closed",
            h.connection_count(),
            h.stats().total.closed.total()
        );
        assert!(
            wait_until(Duration::from_secs(5), || fd_count() <= fds0),
            "fds {} vs {}",
            fd_count(),
            fds0
        );
        let st = h.stats().total;
        eprintln!(
            "FIGURES churn: 10k connect/close in {churn:?}; closed {:?}",
            st.closed
        );
        assert_eq!(st.accepted, 10_001); // with the warm-up
        assert_eq!(st.closed.total(), 10_001);
        assert_eq!(st.queued_out_bytes + st.buffered_in_bytes, 0);
        timed_round_trip(addr, b"still fine");
        engine.stop();
    });
}

#[test]
fn accept_then_rst_no_leak() {
    let _serial = serial();
    deadline(60, || {
        let (engine, p) = start(|o| o.backlog = 4096, false);
        let h = engine.handle();
        let addr = tcp_addr(&engine);
        timed_round_trip(addr, b"warm up"); // the loop thread has created its epoll fd
        let fds0 = fd_count();
        for i in 0..2000 {
            let s = TcpStream::connect(addr).unwrap();
            if i % 2 == 0 {
                let _ = (&s).write_all(b"data before the reset");
            }
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(s); // RST
        }
        assert!(
            wait_until(Duration::from_secs(20), || h.connection_count() == 0),
            "{} left",
            h.connection_count()
        );
        assert!(
            wait_until(Duration::from_secs(5), || fd_count() <= fds0),
            "fds {} vs {}",
            fd_count(),
            fds0
        );
        let closes = p.closes.lock().unwrap().clone();
        // Every accepted connection was closed once (a connection reset while still
        // in the backlog may never be accepted at all: accept4 skips it).
        let accepted = h.stats().total.accepted;
        assert!(accepted > 1000 && accepted <= 2001, "{accepted}");
        assert_eq!(closes.len() as u64, accepted);
        assert!(
            closes.iter().all(|c| c == "Reset" || c == "PeerClosed"),
            "{:?}",
            closes.iter().find(|c| *c != "Reset")
        );
        timed_round_trip(addr, b"still fine");
        engine.stop();
    });
}

#[test]
fn zero_length_writes_are_harmless() {
    let _serial = serial();
    deadline(30, || {
        let (engine, p) = start(|_| {}, true);
        let h = engine.handle();
        let addr = tcp_addr(&engine);
        let mut c = connect(addr);
        for i in 0..100u32 {
            let msg = i.to_string();
            c.write_all(msg.as_bytes()).unwrap();
            let mut back = vec![0u8; msg.len()];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, msg.as_bytes());
        }
        assert!(wait_until(Duration::from_secs(5), || p
            .callbacks
            .load(Ordering::Relaxed)
            >= 100));
        let (cpu0, t0) = (cpu_time(), Instant::now());
        std::thread::sleep(Duration::from_millis(500));
        assert!(cpu_time() - cpu0 < t0.elapsed() / 5, "spinning");
        let st = h.stats();
        assert_eq!(st.total.queued_out_bytes, 0);
        // Stats: 190 bytes echoed ("0".."99"), zero-length writes count nothing.
        assert_eq!((st.total.bytes_in, st.total.bytes_out), (190, 190));
        assert_eq!(st.loops.len(), 1);
        assert_eq!(st.total.open, 1);
        assert!(st.total.events >= 100 && st.total.wakeups >= 100);
        drop(c);
        assert!(wait_until(Duration::from_secs(5), || h.connection_count() == 0));
        assert!(p.closes.lock().unwrap().iter().all(|c| c == "PeerClosed"));
        engine.stop();
    });
}
