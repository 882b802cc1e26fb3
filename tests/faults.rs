//! Bad peers and faults: resets, half-close, EOF mid-message, panicking handlers,
//! stop with queued writes. Each checks `on_close` runs once with the right reason
//! and that descriptors are released.
mod support;

use netloop::{Action, CloseReason, Conn, ConnHandle, Engine, Error, EventHandler, Mode};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// A one-loop engine on an ephemeral port serving a clone of `handler`.
fn start<H: EventHandler + Clone + Send>(handler: &H) -> Engine {
    engine_builder()
        .loops(1)
        .mode(Mode::Single)
        .listen("127.0.0.1:0")
        .start_with(handler.clone())
        .unwrap()
}

#[test]
fn peer_reset_closes_once_with_reset_and_frees_the_fd() {
    let _serial = serial();
    let rec = Recorder::default();
    let engine = start(&rec);
    let h = engine.handle();
    let mut c = connect(engine.local_addr());
    round_trip(&mut c, b"hello");
    let before = fd_count();
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c); // RST
    assert!(wait_until(Duration::from_secs(5), || rec.closes().len() == 1));
    assert_eq!(rec.closes(), vec!["reset"]);
    assert!(wait_until(Duration::from_secs(5), || h.connection_count() == 0));
    // The client's fd and the server's fd are both gone.
    assert!(
        wait_until(Duration::from_secs(5), || fd_count() <= before - 2),
        "fds: {} vs {before}",
        fd_count()
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rec.closes().len(), 1, "on_close exactly once");
    engine.stop();
}

#[test]
fn half_close_still_gets_every_reply_then_closes() {
    let _serial = serial();
    let rec = Recorder::default();
    let engine = start(&rec);
    let mut c = connect(engine.local_addr());
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut w = c.try_clone().unwrap();
    let d2 = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&d2).unwrap();
        w.shutdown(Shutdown::Write).unwrap(); // half-close
    });
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap(); // EOF arrives only after every echoed byte
    writer.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data);
    assert!(wait_until(Duration::from_secs(5), || rec.closes() == vec!["peer"]));
    engine.stop();
}

/// Keeps every byte (never consumes) to model a frame that never completes.
#[derive(Clone, Default)]
struct Hoarder {
    at_close: Arc<Mutex<Vec<(usize, String)>>>,
}
impl EventHandler for Hoarder {
    type State = ();
    fn on_traffic(&mut self, _conn: &mut Conn<'_, ()>) -> Action {
        Action::None
    }
    fn on_close(&mut self, conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        self.at_close
            .lock()
            .unwrap()
            .push((conn.buffered(), reason_name(reason)));
    }
}

#[test]
fn eof_mid_message_reports_peer_close_with_the_partial_bytes() {
    let _serial = serial();
    let h = Hoarder::default();
    let engine = start(&h);
    let mut c = connect(engine.local_addr());
    c.write_all(b"\x00\x00\x10\x00partial frame").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    c.write_all(b" and more").unwrap();
    drop(c);
    assert!(wait_until(Duration::from_secs(5), || h
        .at_close
        .lock()
        .unwrap()
        .len()
        == 1));
    assert_eq!(h.at_close.lock().unwrap()[0], (26, "peer".to_string()));
    engine.stop();
}

#[test]
fn panicking_handler_closes_only_its_connection() {
    let _serial = serial();
    let rec = Recorder::default();
    let engine = start(&rec);
    let mut good = connect(engine.local_addr());
    let mut bad = connect(engine.local_addr());
    round_trip(&mut good, b"before");
    bad.write_all(b"boom").unwrap();
    let mut b = [0u8; 8];
    assert_eq!(
        bad.read(&mut b).unwrap_or(0),
        0,
        "the panicking connection is closed"
    );
    assert_eq!(
        round_trip(&mut good, b"after"),
        b"after",
        "the loop lives on"
    );
    assert!(wait_until(Duration::from_secs(5), || rec.closes() == vec!["panicked"]));
    engine.stop();
}

/// Stores each connection's handle for the test to use from other threads.
#[derive(Clone, Default)]
struct Handles {
    handles: Arc<Mutex<Vec<ConnHandle>>>,
    closes: Arc<Mutex<Vec<String>>>,
    traffic: Arc<AtomicUsize>,
}
impl EventHandler for Handles {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        self.handles.lock().unwrap().push(conn.handle());
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        self.traffic.fetch_add(1, Ordering::SeqCst);
        let n = conn.buffered();
        conn.discard(n);
        Action::None
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        self.closes.lock().unwrap().push(reason_name(reason));
    }
}

#[test]
fn stop_with_queued_async_writes_completes_every_callback() {
    let _serial = serial();
    let h = Handles::default();
    let engine = start(&h);
    let c = connect(engine.local_addr()); // never reads: writes pile up
    assert!(wait_until(Duration::from_secs(5), || h
        .handles
        .lock()
        .unwrap()
        .len()
        == 1));
    let handle = h.handles.lock().unwrap()[0].clone();
    let done = Arc::new(Mutex::new((0usize, 0usize)));
    let issued = 200;
    for _ in 0..issued {
        let done = done.clone();
        let _ = handle.async_write(
            vec![7u8; 256 * 1024],
            Some(Box::new(move |r| {
                let mut d = done.lock().unwrap();
                if r.is_ok() {
                    d.0 += 1
                } else {
                    d.1 += 1
                }
            })),
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    let eh = engine.handle();
    assert!(eh.stop(), "stop does not hang on queued writes");
    let (ok, failed) = *done.lock().unwrap();
    assert_eq!(ok + failed, issued, "every callback ran");
    assert!(
        failed > 0,
        "50 MiB cannot all have reached an unread socket"
    );
    // After the stop, new writes fail at once with EngineStopped (returned, so
    // the callback is not called).
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), Error>>();
    let res = handle.async_write(
        b"late".to_vec(),
        Some(Box::new(move |r| tx.send(r).unwrap())),
    );
    assert!(matches!(res, Err(Error::EngineStopped)), "{res:?}");
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    drop(c);
    engine.wait();
}

#[test]
fn many_connections_open_and_close_without_leaking_fds() {
    let _serial = serial();
    let rec = Recorder::default();
    let engine = engine_builder()
        .loops(2)
        .listen("127.0.0.1:0")
        .start_with(rec.clone())
        .unwrap();
    let h = engine.handle();
    let addr = engine.local_addr().clone();
    // Warm up (thread stacks, pools), then measure.
    let mut warm = connect(&addr);
    round_trip(&mut warm, b"warm"); // accepted and served before the baseline
    drop(warm);
    assert!(wait_until(Duration::from_secs(5), || h.connection_count() == 0));
    let base = fd_count();
    for round in 0..5 {
        let mut cs: Vec<_> = (0..100).map(|_| connect(&addr)).collect();
        for c in cs.iter_mut() {
            round_trip(c, b"ping");
        }
        if round % 2 == 0 {
            for c in &cs {
                socket2::SockRef::from(c)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
        }
        drop(cs);
        assert!(wait_until(Duration::from_secs(5), || h.connection_count() == 0));
    }
    assert!(
        wait_until(Duration::from_secs(5), || fd_count() == base),
        "fds {} != {base}: {:?}",
        fd_count(),
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .collect::<Vec<_>>()
    );
    assert_eq!(rec.closes().len(), 501);
    engine.stop();
}

/// Rejects the peer's bytes with a custom reason after a final reply.
#[derive(Clone, Default)]
struct Rejecter {
    closes: Arc<Mutex<Vec<String>>>,
}
impl EventHandler for Rejecter {
    type State = ();
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let n = conn.buffered();
        conn.discard(n);
        let _ = conn.write(b"-ERR rejected\r\n");
        conn.close_with(CloseReason::Protocol("bad input".into()));
        Action::None
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        self.closes.lock().unwrap().push(reason.to_string());
    }
}

#[test]
fn close_with_flushes_then_reports_the_given_reason() {
    let _serial = serial();
    let r = Rejecter::default();
    let engine = start(&r);
    let mut c = connect(engine.local_addr());
    c.write_all(b"garbage").unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(
        got, b"-ERR rejected\r\n",
        "the reply is flushed before the close"
    );
    assert!(wait_until(Duration::from_secs(5), || r
        .closes
        .lock()
        .unwrap()
        .len()
        == 1));
    assert_eq!(r.closes.lock().unwrap()[0], "protocol error: bad input");
    engine.stop();
}
