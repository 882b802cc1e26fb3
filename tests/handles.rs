//! Cross-thread handles: async writes from many threads, wake-ups, closes racing
//! queued writes, and stale handles after a slot is reused.
mod support;

use netloop::{Action, CloseReason, Conn, ConnHandle, Engine, Error, EventHandler, Mode};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use support::*;

#[derive(Clone, Default)]
struct Hub {
    handles: Arc<Mutex<Vec<ConnHandle>>>,
    wakes: Arc<AtomicUsize>,
    closes: Arc<Mutex<Vec<String>>>,
}
impl EventHandler for Hub {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        self.handles.lock().unwrap().push(conn.handle());
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        if conn.buffered() == 0 {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            let _ = conn.write(b"woken\n");
        }
        let n = conn.buffered();
        conn.discard(n);
        Action::None
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        self.closes.lock().unwrap().push(reason_name(reason));
    }
}

fn start(hub: &Hub, loops: usize) -> Engine {
    engine_builder()
        .loops(loops)
        .mode(Mode::Reactor)
        .listen("127.0.0.1:0")
        .start_with(hub.clone())
        .unwrap()
}

fn handle_of(hub: &Hub, i: usize) -> ConnHandle {
    assert!(wait_until(Duration::from_secs(5), || hub
        .handles
        .lock()
        .unwrap()
        .len()
        > i));
    hub.handles.lock().unwrap()[i].clone()
}

#[test]
fn async_writes_from_many_threads_all_arrive_in_per_thread_order() {
    let hub = Hub::default();
    let engine = start(&hub, 2);
    let mut c = connect(engine.local_addr());
    let handle = handle_of(&hub, 0);
    let (threads, per_thread) = (8u32, 2000u32);
    let acked = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..threads)
        .map(|t| {
            let (h, acked) = (handle.clone(), acked.clone());
            std::thread::spawn(move || {
                for k in 0..per_thread {
                    let acked = acked.clone();
                    let mut msg = [0u8; 8];
                    msg[..4].copy_from_slice(&t.to_le_bytes());
                    msg[4..].copy_from_slice(&k.to_le_bytes());
                    h.async_write(
                        msg.to_vec(),
                        Some(Box::new(move |r| {
                            r.unwrap();
                            acked.fetch_add(1, Ordering::SeqCst);
                        })),
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    let mut buf = vec![0u8; (threads * per_thread * 8) as usize];
    c.read_exact(&mut buf).unwrap();
    for w in writers {
        w.join().unwrap();
    }
    let mut next = vec![0u32; threads as usize];
    for m in buf.chunks(8) {
        let t = u32::from_le_bytes(m[..4].try_into().unwrap()) as usize;
        let k = u32::from_le_bytes(m[4..].try_into().unwrap());
        assert_eq!(k, next[t], "thread {t} out of order");
        next[t] += 1;
    }
    assert!(wait_until(Duration::from_secs(5), || acked
        .load(Ordering::SeqCst)
        == (threads * per_thread) as usize));
    engine.stop();
}

#[test]
fn wake_runs_on_traffic() {
    let hub = Hub::default();
    let engine = start(&hub, 1);
    let mut c = connect(engine.local_addr());
    handle_of(&hub, 0).wake().unwrap();
    let mut b = [0u8; 6];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"woken\n");
    assert_eq!(hub.wakes.load(Ordering::SeqCst), 1);
    engine.stop();
}

#[test]
fn close_racing_queued_writes_completes_every_callback() {
    let hub = Hub::default();
    let engine = start(&hub, 2);
    let addr = engine.local_addr().clone();
    for round in 0..20 {
        let c = connect(&addr);
        let handle = handle_of(&hub, round);
        let calls = Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (h, calls) = (handle.clone(), calls.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let c2 = calls.clone();
                        // Every write is accounted for exactly once: refused at
                        // once (the connection is known closed), or its callback.
                        let res = h.async_write(
                            vec![1u8; 1024],
                            Some(Box::new(move |_| {
                                c2.fetch_add(1, Ordering::SeqCst);
                            })),
                        );
                        if res.is_err() {
                            calls.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        handle.close().unwrap();
        for w in writers {
            w.join().unwrap();
        }
        // Drain the client so the close can complete.
        let mut c = c;
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
        assert!(
            wait_until(Duration::from_secs(5), || calls.load(Ordering::SeqCst)
                == 800),
            "round {round}: {} callbacks",
            calls.load(Ordering::SeqCst)
        );
    }
    assert!(wait_until(Duration::from_secs(5), || hub
        .closes
        .lock()
        .unwrap()
        .len()
        == 20));
    assert!(hub.closes.lock().unwrap().iter().all(|r| r == "handle"));
    engine.stop();
}

#[test]
fn stale_handle_cannot_reach_a_reused_slot() {
    let hub = Hub::default();
    let engine = start(&hub, 1);
    let addr = engine.local_addr().clone();
    let first = connect(&addr);
    let old = handle_of(&hub, 0);
    drop(first);
    assert!(wait_until(Duration::from_secs(5), || hub
        .closes
        .lock()
        .unwrap()
        .len()
        == 1));
    // The next connection takes the same slot (index) with a new generation.
    let mut second = connect(&addr);
    let new = handle_of(&hub, 1);
    assert_eq!(old.id().slot(), new.id().slot(), "same slot reused");
    assert_ne!(old.id(), new.id(), "a new generation");
    assert_ne!(old, new);
    // The stale handle knows at once: every operation says the connection is closed
    // (the callback of a refused write is not called: the error is returned).
    assert!(!old.is_open() && new.is_open());
    let (tx, rx) = mpsc::channel::<Result<(), Error>>();
    let res = old.async_write(
        &b"must not arrive"[..],
        Some(Box::new(move |r| tx.send(r).unwrap())),
    );
    assert!(matches!(res, Err(Error::ConnectionClosed)), "{res:?}");
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    for (op, res) in [
        ("wake", old.wake()),
        ("close", old.close()),
        ("pause_read", old.pause_read()),
        ("resume_read", old.resume_read()),
    ] {
        assert!(matches!(res, Err(Error::ConnectionClosed)), "{op}: {res:?}");
    }
    new.async_write(&b"for the new one"[..], None).unwrap();
    let mut b = [0u8; 15];
    second.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"for the new one");
    second
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(second.read(&mut b).is_err(), "nothing else arrived");
    second.write_all(b"x").unwrap();
    engine.stop();
}
