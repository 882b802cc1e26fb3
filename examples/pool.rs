//! Connection pool: `--size` persistent connections to one upstream, with
//! requests from many threads spread over them round-robin.
//!
//! The protocol is line-based request/response, answered in order on each
//! connection (an echo server qualifies). Each pooled connection carries, as its
//! per-connection state given at dial time ([`DialOptions::state`]), the queue of
//! callers waiting on it: a request appends its reply channel and queues its bytes
//! under the same lock, so the order of the waiters is the order of the bytes on
//! the wire, and `on_traffic` hands each complete reply line to the next waiter.
//! A connection that closes fails its waiters and is dialed again.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:9001 &
//! cargo run --release --example pool -- --upstream 127.0.0.1:9001 --size 4 --threads 16 --requests 10000
//! # self-contained (in-process echo upstream):
//! cargo run --example pool -- --size 4 --threads 8 --requests 500
//! ```
mod common;

use clap::Parser;
use netloop::{
    Action, Client, CloseReason, Conn, ConnHandle, DialOptions, Dialer, Engine, EventHandler,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "netloop connection pool")]
struct Args {
    /// Upstream (line echo). Default: start one in-process.
    #[arg(long)]
    upstream: Option<String>,
    /// Pooled connections.
    #[arg(long, default_value_t = 4)]
    size: usize,
    /// Application threads making requests.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Requests per thread.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Client event loops.
    #[arg(long, default_value_t = 2)]
    loops: usize,
    /// I/O backend: epoll | uring | auto (io_uring where the kernel allows it).
    #[arg(long, default_value = "epoll")]
    backend: netloop::Backend,
}

type Reply = Result<Vec<u8>, String>;
/// The callers waiting on one connection, oldest first.
type Waiters = Arc<Mutex<VecDeque<SyncSender<Reply>>>>;

/// A pooled connection's state: its waiters and its slot in the pool.
#[derive(Default)]
struct Pooled {
    waiters: Option<Waiters>,
    slot: usize,
}

#[derive(Clone)]
struct PoolHandler {
    pool: Arc<PoolInner>,
}

impl EventHandler for PoolHandler {
    type State = Pooled;

    fn on_traffic(&mut self, conn: &mut Conn<'_, Pooled>) -> Action {
        let Some(waiters) = conn.state().waiters.clone() else {
            return Action::Close;
        };
        loop {
            let line_len = {
                let all = conn.peek_all();
                match all.iter().position(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    None => return Action::None,
                }
            };
            let line = conn.next(line_len).unwrap_or_default().to_vec();
            match waiters.lock().unwrap().pop_front() {
                Some(tx) => {
                    let _ = tx.send(Ok(line));
                }
                None => return Action::Close, // a reply nobody asked for
            }
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, Pooled>, reason: &CloseReason) {
        let slot = conn.state().slot;
        if let Some(w) = &conn.state().waiters {
            for tx in w.lock().unwrap().drain(..) {
                let _ = tx.send(Err(format!("connection closed: {reason}")));
            }
        }
        if !matches!(reason, CloseReason::EngineStopped) {
            self.pool.reconnect(slot);
        }
    }
}

struct PoolInner {
    upstream: String,
    engine: Mutex<Option<Dialer<Pooled>>>,
    conns: RwLock<Vec<Option<(ConnHandle, Waiters)>>>,
    next: AtomicUsize,
    reconnects: AtomicUsize,
}

impl PoolInner {
    /// Dials slot `slot` (again); the slot is empty until it connects.
    fn connect(self: &Arc<Self>, slot: usize) {
        let Some(engine) = self.engine.lock().unwrap().clone() else {
            return;
        };
        let waiters: Waiters = Arc::default();
        let state = Pooled {
            waiters: Some(waiters.clone()),
            slot,
        };
        let me = self.clone();
        let opts = DialOptions::new()
            .timeout(Duration::from_secs(3))
            .state(state);
        engine.dial(self.upstream.as_str(), opts, move |res| match res {
            Ok(h) => me.conns.write().unwrap()[slot] = Some((h, waiters)),
            Err(e) => tracing::warn!(slot, error = %e, "pool dial failed"),
        });
    }

    fn reconnect(self: &Arc<Self>, slot: usize) {
        self.conns.write().unwrap()[slot] = None;
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        self.connect(slot);
    }
}

/// The pool as the application sees it.
struct Pool {
    inner: Arc<PoolInner>,
    client: Client<Pooled>,
}

impl Pool {
    fn open(
        upstream: &str,
        size: usize,
        loops: usize,
        backend: netloop::Backend,
    ) -> Result<Pool, Box<dyn std::error::Error>> {
        let inner = Arc::new(PoolInner {
            upstream: upstream.to_string(),
            engine: Mutex::new(None),
            conns: RwLock::new(vec![None; size]),
            next: AtomicUsize::new(0),
            reconnects: AtomicUsize::new(0),
        });
        let client = Engine::builder()
            .backend(backend)
            .loops(loops)
            .start_client_with(PoolHandler {
                pool: inner.clone(),
            })?;
        *inner.engine.lock().unwrap() = Some(client.dialer());
        for slot in 0..size {
            inner.connect(slot);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while inner.conns.read().unwrap().iter().any(|c| c.is_none()) {
            if Instant::now() > deadline {
                return Err("the pool could not connect".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Pool { inner, client })
    }

    /// Sends one request line (without its newline) and returns where its reply
    /// will arrive.
    fn request(&self, line: &[u8]) -> Receiver<Reply> {
        let (tx, rx) = mpsc::sync_channel(1);
        let conns = self.inner.conns.read().unwrap();
        let n = conns.len();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        // Round-robin, skipping slots that are reconnecting.
        let pick = (0..n)
            .map(|k| (start + k) % n)
            .find_map(|i| conns[i].as_ref());
        match pick {
            Some((h, waiters)) => {
                let mut msg = Vec::with_capacity(line.len() + 1);
                msg.extend_from_slice(line);
                msg.push(b'\n');
                let mut w = waiters.lock().unwrap();
                // Queued under the lock: same order as `w`.
                match h.async_write(msg, None) {
                    Ok(()) => w.push_back(tx),
                    Err(e) => {
                        let _ = tx.send(Err(format!("pooled connection: {e}")));
                    }
                }
            }
            None => {
                let _ = tx.send(Err("no pooled connection is up".into()));
            }
        }
        rx
    }

    fn close(self) {
        *self.inner.engine.lock().unwrap() = None;
        self.client.stop();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    let (upstream, local) = common::addr_or_local_echo(args.upstream.as_deref())?;
    let pool = Arc::new(Pool::open(&upstream, args.size, args.loops, args.backend)?);
    println!("pool of {} connections to {upstream}", args.size);
    let start = Instant::now();
    let threads: Vec<_> = (0..args.threads)
        .map(|t| {
            let (pool, n) = (pool.clone(), args.requests);
            std::thread::spawn(move || -> Result<(), String> {
                for i in 0..n {
                    let req = format!("thread {t} request {i}");
                    let reply = pool
                        .request(req.as_bytes())
                        .recv_timeout(Duration::from_secs(10))
                        .map_err(|e| format!("no reply: {e}"))??;
                    if reply.strip_suffix(b"\n") != Some(req.as_bytes()) {
                        return Err(format!("wrong reply to {req:?}"));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "thread panicked")??;
    }
    let elapsed = start.elapsed();
    let total = args.threads * args.requests;
    println!(
        "ok: {total} requests over {} connections in {:.3} s ({:.0} req/s), {} reconnects",
        args.size,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        pool.inner.reconnects.load(Ordering::Relaxed)
    );
    if let Ok(pool) = Arc::try_unwrap(pool) {
        pool.close();
    }
    if let Some(l) = local {
        l.stop();
    }
    Ok(())
}
