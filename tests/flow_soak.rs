//! The soak run behind `bench/results/SOAK.md`: the fault scenarios at full size, with figures.
//!
//! ```text
//! cargo test --release --test flow_soak -- --ignored --nocapture --test-threads=1
//! ```
//!
//! Every scenario is `#[ignore]`d (they take about a minute together) and prints
//! one `SOAK` line of figures; each still asserts its bounds and has a deadline.

mod support;

use netloop::{Action, CloseReason, Conn, Engine, EventHandler, Mode, Options};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const MIB: usize = 1024 * 1024;

#[derive(Clone)]
struct Echo {
    polite: bool,
    closes: Arc<Mutex<Vec<String>>>,
}

impl EventHandler for Echo {
    type State = ();
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
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
    fn on_writable_changed(&mut self, conn: &mut Conn<'_, ()>, writable: bool) {
        if self.polite {
            if writable {
                conn.resume_read()
            } else {
                conn.pause_read()
            }
        }
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        self.closes.lock().unwrap().push(format!("{reason:?}"));
    }
}

fn start(polite: bool, tweak: impl FnOnce(&mut Options)) -> (Engine, Arc<Mutex<Vec<String>>>) {
    let closes = Arc::new(Mutex::new(Vec::new()));
    let mut opts = Options {
        loops: 1,
        mode: Mode::Single,
        ..Options::default()
    };
    tweak(&mut opts);
    let e = engine_builder()
        .options(opts)
        .listen("tcp://127.0.0.1:0")
        .start_with(Echo {
            polite,
            closes: closes.clone(),
        })
        .unwrap();
    (e, closes)
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

/// Round trips on one persistent connection until `stop`; returns the latencies.
fn prober(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let mut s = connect(addr);
        let mut out = Vec::new();
        let msg = [b'p'; 64];
        let mut back = [0u8; 64];
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            s.write_all(&msg).unwrap();
            s.read_exact(&mut back).unwrap();
            out.push(t.elapsed());
            std::thread::sleep(Duration::from_millis(2));
        }
        out
    })
}

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

fn run_flood(polite: bool) {
    let (engine, closes) = start(polite, |o| {
        o.write_high_water = 256 * 1024;
        o.write_low_water = 64 * 1024;
        o.max_outbound_bytes = 4 * MIB;
    });
    let h = engine.handle();
    let addr = tcp_addr(&engine);
    let rss0 = rss_bytes();
    let stop = Arc::new(AtomicBool::new(false));
    let probe = prober(addr, stop.clone());
    let (hs, st) = (h.clone(), stop.clone());
    let sampler = std::thread::spawn(move || {
        let mut max = 0;
        while !st.load(Ordering::Relaxed) {
            let t = hs.stats().total;
            max = max.max(t.queued_out_bytes + t.buffered_in_bytes);
            std::thread::sleep(Duration::from_millis(1));
        }
        max
    });
    let t0 = Instant::now();
    let (sent, sock) = flood(addr, 200 * MIB, Duration::from_secs(2));
    let flood_time = t0.elapsed();
    // Probe for at least a second, however fast the flood was stopped.
    while t0.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let mut rtts = probe.join().unwrap();
    let max_held = sampler.join().unwrap();
    let rss = rss_bytes().saturating_sub(rss0);
    drop(sock);
    assert!(wait_no_connections(&h, Duration::from_secs(5)));
    let closes = closes.lock().unwrap().clone();
    println!(
        "SOAK flood-200MiB {}: peer got {} MiB in before stalling/closing ({flood_time:?}); server held max {} KiB; RSS +{} KiB; \
         other client {} round trips p50 {:?} p99 {:?} max {:?}; closes {closes:?}",
        if polite { "polite(marks 64K/256K + pause)" } else { "naive(cap 4 MiB)" },
        sent / MIB,
        max_held / 1024,
        rss / 1024,
        rtts.len(),
        pct(&mut rtts, 0.5),
        pct(&mut rtts, 0.99),
        rtts.last().unwrap(),
    );
    if polite {
        assert!(
            max_held <= (256 * 1024 + pause_slack()) as u64,
            "held {max_held} bytes"
        );
    } else {
        assert!(max_held <= 4 * MIB as u64 + 64 * 1024);
        assert!(closes.iter().any(|c| c == "OutboundOverflow"));
    }
    engine.stop();
}

#[test]
#[ignore]
fn soak_flood_polite() {
    deadline(120, || run_flood(true));
}

#[test]
#[ignore]
fn soak_flood_naive_cap() {
    deadline(120, || run_flood(false));
}

#[test]
#[ignore]
fn soak_slowloris() {
    deadline(120, || {
        const N: usize = 4000;
        let (engine, _c) = start(false, |o| {
            o.read_timeout = Some(Duration::from_secs(2));
            o.backlog = 8192;
        });
        let h = engine.handle();
        let addr = tcp_addr(&engine);
        let rss0 = rss_bytes();
        let mut lorises: Vec<TcpStream> =
            (0..N).map(|_| TcpStream::connect(addr).unwrap()).collect();
        assert!(wait_until(Duration::from_secs(10), || h.connection_count() == N));
        let rss_per_conn = rss_bytes().saturating_sub(rss0) / N;
        let stop = Arc::new(AtomicBool::new(false));
        let probe = prober(addr, stop.clone());
        let t0 = Instant::now();
        for s in lorises.iter_mut() {
            let _ = s.write(b"G");
        }
        std::thread::sleep(Duration::from_secs(3));
        for s in lorises.iter_mut() {
            let _ = s.write(b"E");
        }
        assert!(wait_until(Duration::from_secs(10), || h.connection_count() == 1));
        let reaped = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut rtts = probe.join().unwrap();
        let st = h.stats();
        println!(
            "SOAK slowloris: {N} tricklers (1 byte / 3 s, read timeout 2 s) all reaped after {reaped:?} ({} timeouts); \
             RSS ~{} B per idle connection (both ends); other client {} round trips p50 {:?} p99 {:?} max {:?}; wake-ups {}",
            st.total.closed.timeout,
            rss_per_conn,
            rtts.len(),
            pct(&mut rtts, 0.5),
            pct(&mut rtts, 0.99),
            rtts.last().unwrap(),
            st.total.wakeups,
        );
        assert_eq!(st.total.closed.timeout, N as u64);
        engine.stop();
    });
}

#[test]
#[ignore]
fn soak_connection_limit_flood() {
    deadline(120, || {
        const LIMIT: usize = 1000;
        const FLOOD: usize = 8000;
        let fds0 = fd_count();
        let (engine, _c) = start(false, |o| {
            o.max_connections = Some(LIMIT);
            o.backlog = 8192;
        });
        let h = engine.handle();
        let addr = tcp_addr(&engine);
        let held: Vec<TcpStream> = (0..LIMIT)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        assert!(wait_until(Duration::from_secs(10), || h.connection_count() == LIMIT));
        let (c0, t0) = (cpu_time(), Instant::now());
        let flood: Vec<TcpStream> = (0..FLOOD)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        assert!(wait_until(Duration::from_secs(10), || h.stats().rejected
            == FLOOD as u64));
        let (fc, fw) = (cpu_time() - c0, t0.elapsed());
        let (c1, t1) = (cpu_time(), Instant::now());
        std::thread::sleep(Duration::from_secs(2));
        let (ic, iw) = (cpu_time() - c1, t1.elapsed());
        drop(flood);
        drop(held);
        assert!(wait_no_connections(&h, Duration::from_secs(10)));
        engine.stop();
        drop(h);
        assert!(wait_until(Duration::from_secs(5), || fd_count() <= fds0));
        println!(
            "SOAK limit-flood: {FLOOD} connects past a limit of {LIMIT}: all rejected in {fw:?} (cpu {fc:?}, clients included); \
             quiet window cpu {ic:?} over {iw:?}; fds back to {} (baseline {fds0})",
            fd_count()
        );
        assert!(ic < iw / 10);
    });
}

#[test]
#[ignore]
fn soak_churn_and_rst() {
    deadline(120, || {
        let (engine, _c) = start(false, |o| o.backlog = 8192);
        let h = engine.handle();
        let addr = tcp_addr(&engine);
        timed_round_trip(addr, b"warm up"); // the loop thread has created its epoll fd
        let fds0 = fd_count();
        let t0 = Instant::now();
        for i in 0..20_000 {
            let s = TcpStream::connect(addr).unwrap();
            if i % 2 == 0 {
                let _ = (&s).write_all(b"x");
            }
            if i % 4 == 0 {
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
        }
        assert!(wait_no_connections(&h, Duration::from_secs(20)));
        let took = t0.elapsed();
        assert!(wait_until(Duration::from_secs(5), || fd_count() <= fds0));
        let st = h.stats().total;
        println!(
            "SOAK churn: 20k connect/close (5k of them RST) in {took:?}; accepted {} closed {} ({} reset); queued {} B; fds {} (baseline {fds0})",
            st.accepted,
            st.closed.total(),
            st.closed.reset,
            st.queued_out_bytes + st.buffered_in_bytes,
            fd_count()
        );
        assert_eq!(st.closed.total(), 20_001); // with the warm-up
        engine.stop();
    });
}
