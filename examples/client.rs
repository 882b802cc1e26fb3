//! Round-trip benchmark client: opens many connections to an echo server from a
//! netloop [`Client`] and measures round trips.
//!
//! Each connection sends a `--size`-byte message, waits for all of it to come
//! back, and repeats `--count` times; the round-trip times of all connections are
//! collected per loop (no locks on the hot path) and summarised at the end.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:9000 --loops 2 &
//! cargo run --release --example client -- --addr 127.0.0.1:9000 --conns 1000 --count 100
//! # self-contained: an in-process echo server on an ephemeral port
//! cargo run --example client -- --conns 200 --count 20
//! ```
mod common;

use clap::Parser;
use netloop::{Action, Client, CloseReason, Conn, DialOptions, Engine, EventHandler};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "netloop round-trip client")]
struct Args {
    /// Echo server to dial (HOST:PORT, tcp:// or unix://). Default: start one in-process.
    #[arg(long)]
    addr: Option<String>,
    /// Connections.
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Round trips per connection.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Client event loops.
    #[arg(long, default_value_t = 2)]
    loops: usize,
    /// I/O backend: epoll | uring | auto (io_uring where the kernel allows it).
    #[arg(long, default_value = "epoll")]
    backend: netloop::Backend,
    /// Connect timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    connect_timeout_ms: u64,
}

/// Per-connection progress.
#[derive(Default)]
struct Progress {
    left: usize,
    sent_at: Option<Instant>,
}

#[derive(Clone)]
struct Bench {
    count: usize,
    msg: Arc<Vec<u8>>,
    /// Round-trip times in microseconds, merged from each loop at shutdown.
    all: Arc<Mutex<Vec<u32>>>,
    /// This loop's samples.
    mine: Vec<u32>,
    done: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
}

impl Bench {
    fn send(&self, conn: &mut Conn<'_, Progress>) -> Action {
        conn.state_mut().sent_at = Some(Instant::now());
        match conn.write(&self.msg) {
            Ok(()) => Action::None,
            Err(_) => Action::Close,
        }
    }
}

impl EventHandler for Bench {
    type State = Progress;

    fn on_open(&mut self, conn: &mut Conn<'_, Progress>) -> Action {
        conn.state_mut().left = self.count;
        if self.count == 0 {
            self.done.fetch_add(1, Ordering::Relaxed);
            return Action::Close;
        }
        self.send(conn)
    }

    fn on_traffic(&mut self, conn: &mut Conn<'_, Progress>) -> Action {
        let n = self.msg.len();
        while conn.buffered() >= n {
            conn.discard(n);
            let st = conn.state_mut();
            if let Some(t) = st.sent_at.take() {
                self.mine
                    .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            st.left -= 1;
            if st.left == 0 {
                self.done.fetch_add(1, Ordering::Relaxed);
                return Action::Close;
            }
            let a = self.send(conn);
            if a != Action::None {
                return a;
            }
        }
        Action::None
    }

    fn on_close(&mut self, conn: &mut Conn<'_, Progress>, reason: &CloseReason) {
        if conn.state().left > 0 {
            eprintln!("connection closed early: {reason}");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_shutdown(&mut self, _info: &netloop::LoopInfo<'_>) {
        self.all.lock().unwrap().append(&mut self.mine);
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    let (addr, server) = common::addr_or_local_echo(args.addr.as_deref())?;
    println!(
        "dialing {addr}: {} connections x {} round trips of {} bytes",
        args.conns, args.count, args.size
    );
    let bench = Bench {
        count: args.count,
        msg: Arc::new(vec![b'x'; args.size.max(1)]),
        all: Arc::default(),
        mine: Vec::new(),
        done: Arc::default(),
        failed: Arc::default(),
    };
    let client: Client<Progress> = Engine::builder()
        .backend(args.backend)
        .loops(args.loops)
        .start_client_with(bench.clone())?;
    let dial_errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    for _ in 0..args.conns {
        let errs = dial_errors.clone();
        let opts = DialOptions::new().timeout(Duration::from_millis(args.connect_timeout_ms));
        client.dial(addr.as_str(), opts, move |res| {
            if let Err(e) = res {
                eprintln!("dial failed: {e}");
                errs.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    loop {
        let finished = bench.done.load(Ordering::Relaxed)
            + bench.failed.load(Ordering::Relaxed)
            + dial_errors.load(Ordering::Relaxed);
        if finished >= args.conns {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    client.stop();
    if let Some(s) = server {
        s.stop();
    }
    let mut rtts = std::mem::take(&mut *bench.all.lock().unwrap());
    rtts.sort_unstable();
    let trips = rtts.len();
    println!(
        "{trips} round trips in {:.3} s: {:.0} round trips/s; rtt p50 {} us, p99 {} us, max {} us",
        elapsed.as_secs_f64(),
        trips as f64 / elapsed.as_secs_f64(),
        percentile(&rtts, 0.50),
        percentile(&rtts, 0.99),
        rtts.last().copied().unwrap_or(0)
    );
    let (done, failed, derr) = (
        bench.done.load(Ordering::Relaxed),
        bench.failed.load(Ordering::Relaxed),
        dial_errors.load(Ordering::Relaxed),
    );
    println!("connections: {done} completed, {failed} closed early, {derr} failed to connect");
    if done == args.conns {
        println!("ok: every connection completed");
        Ok(())
    } else {
        Err("some connections did not complete".into())
    }
}
