//! Closing under load: peer half-close with data queued, RST with megabytes
//! queued, and graceful drain on engine stop.

mod support;

use netloop::{Action, CloseReason, Conn, Engine, EventHandler, Mode, Options};
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const MIB: usize = 1024 * 1024;

#[derive(Default)]
struct Probe {
    closes: Mutex<Vec<String>>,
    async_done: AtomicUsize,
}

/// On each request: `reply` bytes written directly, plus an async write of
/// `async_reply` bytes (both patterned so the client can check them).
#[derive(Clone)]
struct Blaster {
    p: Arc<Probe>,
    reply: usize,
    async_reply: usize,
    on_open_reply: usize,
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

impl EventHandler for Blaster {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        if self.on_open_reply > 0 {
            conn.write(&pattern(self.on_open_reply, 3)).unwrap();
        }
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let n = conn.buffered();
        conn.discard(n);
        if self.reply > 0 {
            conn.write(&pattern(self.reply, 1)).unwrap();
        }
        if self.async_reply > 0 {
            let p = self.p.clone();
            let _ = conn.handle().async_write(
                pattern(self.async_reply, 2),
                Some(Box::new(move |r| {
                    if r.is_ok() {
                        p.async_done.fetch_add(1, Ordering::Relaxed);
                    }
                })),
            );
        }
        Action::None
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        self.p.closes.lock().unwrap().push(format!("{reason:?}"));
    }
}

fn start(
    b: impl FnOnce(Arc<Probe>) -> Blaster,
    tweak: impl FnOnce(&mut Options),
) -> (Engine, Arc<Probe>) {
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
        .start_with(b(p.clone()))
        .unwrap();
    (engine, p)
}

fn closes(p: &Probe) -> Vec<String> {
    p.closes.lock().unwrap().clone()
}

/// The client sends a request and shuts down its sending side. Everything the
/// handler wrote or queued (4 MiB direct + 2 MiB async) is delivered before the
/// server closes; while the client is not reading, the half-closed connection
/// does not spin the loop.
#[test]
fn half_close_delivers_everything_queued_without_spinning() {
    let _serial = serial();
    deadline(60, || {
        let (engine, p) = start(
            |p| Blaster {
                p,
                reply: 4 * MIB,
                async_reply: 2 * MIB,
                on_open_reply: 0,
            },
            // A small kernel send buffer: the 6 MiB reply cannot all leave the
            // process however large the machine's TCP buffers are.
            |o| o.socket_send_buffer = Some(64 * 1024),
        );
        let addr = tcp_addr(&engine);
        let mut c = connect(addr);
        c.write_all(b"request").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        // Not reading for a while: the server sits half-closed with bytes queued
        // (waited for, not slept on: a loaded machine may take a while to get there).
        let h = engine.handle();
        wait_until(Duration::from_secs(10), || {
            h.stats().total.queued_out_bytes > 0
        });
        let queued = h.stats().total.queued_out_bytes;
        let (cpu0, t0) = (cpu_time(), Instant::now());
        std::thread::sleep(Duration::from_secs(1));
        let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
        eprintln!("FIGURES half-close: {} KiB queued while the peer is half-closed; cpu {cpu:?} over {wall:?}", queued / 1024);
        assert!(queued > 0, "the test needs bytes queued while half-closed");
        assert!(cpu < wall / 10, "half-closed connection spins: {cpu:?}");
        assert!(
            closes(&p).is_empty(),
            "not closed before its queue is sent: {:?}",
            closes(&p)
        );
        let (got, clean) = read_to_end(&mut c);
        assert!(clean);
        let mut expect = pattern(4 * MIB, 1);
        expect.extend(pattern(2 * MIB, 2));
        assert_eq!(got.len(), expect.len());
        assert!(got == expect, "bytes differ");
        assert!(wait_until(Duration::from_secs(5), || !closes(&p).is_empty()));
        assert_eq!(closes(&p), vec!["PeerClosed".to_string()]);
        assert_eq!(p.async_done.load(Ordering::Relaxed), 1);
        engine.stop();
    });
}

/// The peer resets while megabytes are queued: the queue is freed at once and
/// `on_close` reports the reset.
#[test]
fn rst_with_megabytes_queued_frees_queue() {
    let _serial = serial();
    deadline(30, || {
        let (engine, p) = start(
            |p| Blaster {
                p,
                reply: 16 * MIB,
                async_reply: 0,
                on_open_reply: 0,
            },
            |_| {},
        );
        let h = engine.handle();
        let addr = tcp_addr(&engine);
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"go").unwrap();
        assert!(wait_until(Duration::from_secs(5), || h
            .stats()
            .total
            .queued_out_bytes
            > 4 * MIB as u64));
        let queued = h.stats().total.queued_out_bytes;
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        let t0 = Instant::now();
        drop(c);
        assert!(wait_until(Duration::from_secs(5), || !closes(&p).is_empty()));
        let freed_in = t0.elapsed();
        eprintln!(
            "FIGURES rst: {} KiB queued, freed {freed_in:?} after the reset",
            queued / 1024
        );
        assert_eq!(closes(&p), vec!["Reset".to_string()]);
        assert_eq!(h.stats().total.queued_out_bytes, 0);
        assert_eq!(h.stats().total.closed.reset, 1);
        engine.stop();
    });
}

/// `stop()` stops accepting, lets a slow reader receive all 8 MiB queued for it,
/// then closes it with `EngineStopped`.
#[test]
fn graceful_stop_drains_queued_bytes() {
    let _serial = serial();
    deadline(60, || {
        let (engine, p) = start(
            |p| Blaster {
                p,
                reply: 0,
                async_reply: 0,
                on_open_reply: 8 * MIB,
            },
            |o| o.drain_timeout = Duration::from_secs(20),
        );
        let h = engine.handle();
        let addr = tcp_addr(&engine);
        let mut c = connect(addr);
        let mut idle = connect(addr);
        assert!(wait_until(Duration::from_secs(5), || h
            .stats()
            .total
            .queued_out_bytes
            > 0));
        let stopper = std::thread::spawn(move || {
            let t = Instant::now();
            let ok = h.stop();
            (ok, t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        // The idle connection (nothing queued) is closed at once; new ones are refused.
        let (_, clean) = read_to_end(&mut idle);
        assert!(clean);
        assert!(
            TcpStream::connect(addr).is_err(),
            "still accepting during the drain"
        );
        let (got, clean) = read_to_end(&mut c);
        assert!(clean);
        assert!(got == pattern(8 * MIB, 3), "got {} bytes", got.len());
        let (ok, took) = stopper.join().unwrap();
        eprintln!("FIGURES drain: 8 MiB delivered to a slow reader; stop() took {took:?}");
        assert!(ok);
        assert_eq!(
            closes(&p),
            vec!["EngineStopped".to_string(), "EngineStopped".to_string()]
        );
        engine.wait();
    });
}

/// A peer that never reads: the drain ends at `drain_timeout`, and the rest is
/// closed with `EngineStopped`.
#[test]
fn drain_timeout_closes_the_rest() {
    let _serial = serial();
    deadline(30, || {
        let (engine, p) = start(
            |p| Blaster {
                p,
                reply: 0,
                async_reply: 0,
                on_open_reply: 16 * MIB,
            },
            |o| o.drain_timeout = Duration::from_millis(300),
        );
        let h = engine.handle();
        let _c = TcpStream::connect(tcp_addr(&engine)).unwrap();
        assert!(wait_until(Duration::from_secs(5), || h
            .stats()
            .total
            .queued_out_bytes
            > 0));
        let t = Instant::now();
        assert!(h.stop());
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert_eq!(closes(&p), vec!["EngineStopped".to_string()]);
        engine.wait();
    });
}

/// A second `stop()` (as on a second SIGINT) ends a long drain at once; so does
/// `stop_now()`.
#[test]
fn second_stop_and_stop_now_force() {
    let _serial = serial();
    deadline(30, || {
        for use_stop_now in [false, true] {
            let (engine, p) = start(
                |p| Blaster {
                    p,
                    reply: 0,
                    async_reply: 0,
                    on_open_reply: 16 * MIB,
                },
                |o| o.drain_timeout = Duration::from_secs(60),
            );
            let h = engine.handle();
            let _c = TcpStream::connect(tcp_addr(&engine)).unwrap();
            assert!(wait_until(Duration::from_secs(5), || h
                .stats()
                .total
                .queued_out_bytes
                > 0));
            let h2 = h.clone();
            let first = std::thread::spawn(move || h2.stop());
            std::thread::sleep(Duration::from_millis(200));
            assert!(closes(&p).is_empty(), "still draining");
            let t = Instant::now();
            let ok = if use_stop_now { h.stop_now() } else { h.stop() };
            assert!(ok);
            assert!(t.elapsed() < Duration::from_secs(3));
            assert!(first.join().unwrap());
            assert_eq!(closes(&p), vec!["EngineStopped".to_string()]);
            engine.wait();
        }
    });
}
