//! Timeouts: idle, read, write, deadline; slowloris reaping; no timer wake-ups
//! while no timer is armed.

mod support;

use netloop::{
    Action, CloseReason, Conn, ConnHandle, Engine, EventHandler, Mode, Options, TimeoutKind,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

#[derive(Default)]
struct Probe {
    /// (close reason, how long the connection lived).
    closes: Mutex<Vec<(String, Duration)>>,
    handles: Mutex<Vec<ConnHandle>>,
    opened: AtomicUsize,
}

#[derive(Clone, Copy, PartialEq)]
enum OnOpen {
    Nothing,
    /// Pause reading.
    Pause,
    /// Queue 16 MiB (for a peer that never reads).
    Blast,
    /// Deadline 300 ms from now, cleared by a line that ends in `!`.
    Deadline,
}

#[derive(Clone)]
struct H {
    p: Arc<Probe>,
    on_open: OnOpen,
}

impl EventHandler for H {
    type State = Option<Instant>;
    fn on_open(&mut self, conn: &mut Conn<'_, Self::State>) -> Action {
        *conn.state_mut() = Some(Instant::now());
        self.p.opened.fetch_add(1, Ordering::Relaxed);
        self.p.handles.lock().unwrap().push(conn.handle());
        match self.on_open {
            OnOpen::Nothing => {}
            OnOpen::Pause => conn.pause_read(),
            OnOpen::Blast => {
                let _ = conn.write(&vec![0u8; 16 << 20]);
            }
            OnOpen::Deadline => {
                conn.set_deadline(Some(Instant::now() + Duration::from_millis(300)))
            }
        }
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, Self::State>) -> Action {
        let n = conn.buffered();
        let data = conn.next(n).unwrap().to_vec();
        if self.on_open == OnOpen::Deadline && data.ends_with(b"!") {
            conn.set_deadline(None);
        }
        let _ = conn.write(&data);
        Action::None
    }
    fn on_close(&mut self, conn: &mut Conn<'_, Self::State>, reason: &CloseReason) {
        let lived = conn.state().map(|t| t.elapsed()).unwrap_or_default();
        self.p
            .closes
            .lock()
            .unwrap()
            .push((format!("{reason:?}"), lived));
    }
}

fn start(on_open: OnOpen, tweak: impl FnOnce(&mut Options)) -> (Engine, Arc<Probe>) {
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
        .start_with(H {
            p: p.clone(),
            on_open,
        })
        .unwrap();
    (engine, p)
}

fn closes(p: &Probe) -> Vec<(String, Duration)> {
    p.closes.lock().unwrap().clone()
}

fn timeout_name(k: TimeoutKind) -> String {
    format!("{:?}", CloseReason::Timeout(k))
}

#[test]
fn idle_timeout_reaps_silent_connection_only() {
    let _serial = serial();
    deadline(30, || {
        let (engine, p) = start(OnOpen::Nothing, |o| {
            o.idle_timeout = Some(Duration::from_millis(200))
        });
        let addr = tcp_addr(&engine);
        let mut silent = connect(addr);
        let mut chatty = connect(addr);
        for _ in 0..12 {
            chatty.write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            chatty.read_exact(&mut b).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(wait_until(Duration::from_secs(2), || !closes(&p).is_empty()));
        let c = closes(&p);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].0, timeout_name(TimeoutKind::Idle));
        assert!(
            c[0].1 >= Duration::from_millis(200) && c[0].1 < Duration::from_secs(1),
            "{:?}",
            c[0].1
        );
        let (_, clean) = read_to_end(&mut silent);
        assert!(clean, "the silent client sees end-of-file");
        assert_eq!(engine.handle().connection_count(), 1);
        assert_eq!(engine.handle().stats().total.closed.timeout, 1);
        engine.stop();
    });
}

#[test]
fn read_timeout_ignores_paused_time_and_server_push() {
    let _serial = serial();
    deadline(30, || {
        let (engine, p) = start(OnOpen::Pause, |o| {
            o.read_timeout = Some(Duration::from_millis(150))
        });
        let addr = tcp_addr(&engine);
        let _c = connect(addr);
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            closes(&p).is_empty(),
            "paused: the read timeout does not run"
        );
        let h = p.handles.lock().unwrap()[0].clone();
        h.resume_read().unwrap();
        // The server pushes traffic, but nothing is received: still a read timeout.
        for _ in 0..10 {
            let _ = h.async_write(b"push".to_vec(), None);
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(wait_until(Duration::from_secs(2), || !closes(&p).is_empty()));
        let c = closes(&p);
        assert_eq!(c[0].0, timeout_name(TimeoutKind::Read));
        assert!(c[0].1 >= Duration::from_millis(650), "{:?}", c[0].1);
        engine.stop();
    });
}

#[test]
fn write_timeout_fires_when_peer_stops_reading() {
    let _serial = serial();
    deadline(30, || {
        let (engine, p) = start(OnOpen::Blast, |o| {
            o.write_timeout = Some(Duration::from_millis(300))
        });
        let addr = tcp_addr(&engine);
        let _c = TcpStream::connect(addr).unwrap(); // never reads
        assert!(wait_until(Duration::from_secs(3), || !closes(&p).is_empty()));
        let c = closes(&p);
        assert_eq!(c[0].0, timeout_name(TimeoutKind::Write));
        assert!(
            c[0].1 >= Duration::from_millis(300) && c[0].1 < Duration::from_secs(2),
            "{:?}",
            c[0].1
        );
        assert_eq!(engine.handle().stats().total.queued_out_bytes, 0);
        engine.stop();
    });
}

#[test]
fn deadline_closes_unless_cleared() {
    let _serial = serial();
    deadline(30, || {
        let (engine, p) = start(OnOpen::Deadline, |_| {});
        let addr = tcp_addr(&engine);
        let mut slow = connect(addr);
        let mut quick = connect(addr);
        quick.write_all(b"hello!").unwrap();
        let mut b = [0u8; 6];
        quick.read_exact(&mut b).unwrap();
        // `slow` keeps talking but never finishes its "handshake".
        for _ in 0..10 {
            let _ = slow.write_all(b"a");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(wait_until(Duration::from_secs(2), || !closes(&p).is_empty()));
        let c = closes(&p);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].0, timeout_name(TimeoutKind::Deadline));
        assert!(c[0].1 >= Duration::from_millis(300), "{:?}", c[0].1);
        quick.write_all(b"still here").unwrap();
        let mut b = [0u8; 10];
        quick.read_exact(&mut b).unwrap();
        engine.stop();
    });
}

/// 2,000 slowloris connections trickling a byte every 1.5 s against a 1 s read
/// timeout are all reaped, while well-behaved clients keep getting answers.
#[test]
fn slowloris_2000_reaped_while_normal_clients_served() {
    let _serial = serial();
    deadline(90, || {
        const N: usize = 2000;
        let (engine, p) = start(OnOpen::Nothing, |o| {
            o.read_timeout = Some(Duration::from_secs(1));
            o.backlog = 4096;
        });
        let addr = tcp_addr(&engine);
        timed_round_trip(addr, b"warm up"); // the loop thread has created its epoll fd
        let fds0 = fd_count();
        let t0 = Instant::now();
        let mut lorises: Vec<TcpStream> =
            (0..N).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let connect_time = t0.elapsed();
        let trickler = std::thread::spawn(move || {
            // One byte per connection every 1.5 s, three rounds.
            for _ in 0..3 {
                for s in lorises.iter_mut() {
                    let _ = s.write(b"G");
                }
                std::thread::sleep(Duration::from_millis(1500));
            }
            lorises
        });
        let mut rtts = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(4) {
            rtts.push(timed_round_trip(addr, b"GET / HTTP/1.1\r\n\r\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(wait_until(Duration::from_secs(10), || engine
            .handle()
            .connection_count()
            == 0));
        let lorises = trickler.join().unwrap();
        let st = engine.handle().stats();
        rtts.sort();
        eprintln!(
            "FIGURES slowloris: {N} connected in {connect_time:?}; reaped {} by timeout; {} normal round trips, p50 {:?}, max {:?}",
            st.total.closed.timeout,
            rtts.len(),
            rtts[rtts.len() / 2],
            rtts.last().unwrap()
        );
        assert_eq!(st.total.closed.timeout, N as u64);
        let c = closes(&p);
        assert_eq!(
            c.iter()
                .filter(|(r, _)| *r == timeout_name(TimeoutKind::Read))
                .count(),
            N
        );
        drop(lorises);
        assert!(
            wait_until(Duration::from_secs(5), || fd_count() <= fds0),
            "fds {} > {}",
            fd_count(),
            fds0
        );
        engine.stop();
    });
}

/// No timer is armed when no timeout is configured: an engine with idle
/// connections does not wake up at all.
#[test]
fn no_wakeups_without_timers() {
    let _serial = serial();
    deadline(30, || {
        let (engine, _p) = start(OnOpen::Nothing, |_| {});
        let addr = tcp_addr(&engine);
        let conns: Vec<TcpStream> = (0..100).map(|_| connect(addr)).collect();
        assert!(wait_until(Duration::from_secs(5), || engine
            .handle()
            .connection_count()
            == 100));
        std::thread::sleep(Duration::from_millis(100));
        let w0 = engine.handle().stats().total.wakeups;
        std::thread::sleep(Duration::from_secs(1));
        let w1 = engine.handle().stats().total.wakeups;
        eprintln!(
            "FIGURES idle engine: {} wake-ups in 1 s with 100 idle connections",
            w1 - w0
        );
        assert!(w1 - w0 <= 1, "{} wake-ups", w1 - w0);
        drop(conns);
        engine.stop();
    });
}
