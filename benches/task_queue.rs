//! The cross-thread path: `ConnHandle::async_write` from another thread → the
//! loop's task queue (urgent lane, coalesced eventfd wake-up) → the socket.
//!
//! Each iteration queues a burst of 64 B writes to one connection whose peer
//! discards everything, and waits until the loop has completed every callback. The
//! queue itself is internal; this measures it the way applications use it.
//!
//! Run with `cargo bench --bench task_queue` (add `-- --quick` for a fast pass).

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use netloop::{Action, Conn, ConnHandle, Engine, EventHandler, Mode};

#[derive(Clone, Default)]
struct Keep {
    handles: Arc<Mutex<Vec<ConnHandle>>>,
}

impl EventHandler for Keep {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        self.handles.lock().unwrap().push(conn.handle());
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let n = conn.buffered();
        conn.discard(n);
        Action::None
    }
}

fn async_write_bursts(c: &mut Criterion) {
    let keep = Keep::default();
    let engine = Engine::builder()
        .loops(1)
        .mode(Mode::Single)
        .listen("127.0.0.1:0")
        .start_with(keep.clone())
        .unwrap();
    let mut client = std::net::TcpStream::connect(engine.local_addr().as_tcp().unwrap()).unwrap();
    // The peer drains everything so the socket never fills.
    let sink = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
    });
    while keep.handles.lock().unwrap().is_empty() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let handle = keep.handles.lock().unwrap()[0].clone();
    let done = Arc::new(AtomicUsize::new(0));
    let mut group = c.benchmark_group("task_queue/async_write_64B");
    for burst in [1usize, 64, 1024] {
        group.throughput(Throughput::Elements(burst as u64));
        group.bench_with_input(BenchmarkId::from_parameter(burst), &burst, |b, &burst| {
            b.iter(|| {
                let target = done.load(Ordering::Acquire) + burst;
                for _ in 0..burst {
                    let done = done.clone();
                    let _ = handle.async_write(
                        vec![0x42u8; 64],
                        Some(Box::new(move |r| {
                            r.unwrap();
                            done.fetch_add(1, Ordering::Release);
                        })),
                    );
                }
                while done.load(Ordering::Acquire) < target {
                    std::hint::spin_loop();
                }
            });
        });
    }
    group.finish();
    engine.stop();
    let _ = sink.join();
}

criterion_group!(benches, async_write_bursts);
criterion_main!(benches);
