//! Redis-compatible (RESP2) in-memory server, enough for `redis-cli` and
//! `redis-benchmark`.
//!
//! ```text
//! cargo run --release --example redis -- --addr 127.0.0.1:6380 --loops 2
//! redis-cli -p 6380 set k v && redis-cli -p 6380 get k
//! redis-benchmark -p 6380 -t ping,set,get -n 100000 -c 50 -P 16
//! ```
//!
//! By default all loops share one store (locked once per pipelined batch), so
//! every client sees every write; `--per-loop-store` gives each loop its own
//! lock-free store instead (clients on different loops then see different
//! keys: for throughput measurements only).
//!
//! A command must be complete within `--command-timeout` seconds of its first
//! byte, and a connection without traffic closes after `--idle-timeout`
//! (0 turns one off).
mod common;

use clap::Parser;
use std::time::Duration;

use netloop::protocol::resp::{RedisServer, RespTimeouts, StoreMode};
use netloop::Engine;

#[derive(Parser)]
#[command(about = "netloop Redis (RESP2) server")]
struct Args {
    /// HOST:PORT, or a tcp://, tcp4://, tcp6:// or unix:// URL.
    #[arg(long, default_value = "127.0.0.1:6380")]
    addr: String,
    /// Number of event loops.
    #[arg(long, default_value_t = 1)]
    loops: usize,
    /// I/O backend: epoll | uring | auto (io_uring where the kernel allows it).
    #[arg(long, default_value = "epoll")]
    backend: netloop::Backend,
    /// single | reactor | reuseport | shared (auto: single for one loop, else reactor).
    #[arg(long, default_value = "auto")]
    mode: String,
    /// One lock-free store per loop instead of one shared store.
    #[arg(long)]
    per_loop_store: bool,
    /// Pin loops to CPUs.
    #[arg(long)]
    pin: bool,
    /// Seconds a command may take to arrive once started (0: off).
    #[arg(long, default_value_t = 10)]
    command_timeout: u64,
    /// Seconds a connection may carry no traffic (0: off, as in Redis).
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
}

/// `secs` as a timeout, 0 meaning none.
fn secs(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    let mode = common::parse_mode(&args.mode, args.loops)?;
    let store = if args.per_loop_store {
        StoreMode::PerLoop
    } else {
        StoreMode::Shared
    };
    let timeouts = RespTimeouts {
        command: secs(args.command_timeout),
        idle: secs(args.idle_timeout),
    };
    // One factory: with a shared store every loop must get the same one.
    let factory = RedisServer::factory(store);
    let engine = Engine::builder()
        .backend(args.backend)
        .loops(args.loops)
        .mode(mode)
        .cpu_affinity(args.pin)
        .ticker(true)
        .listen(args.addr.as_str())
        .start(move |i| factory(i).with_timeouts(timeouts))?;
    for a in engine.local_addrs() {
        println!(
            "listening on {}",
            a.to_string().trim_start_matches("tcp://")
        );
    }
    common::stop_on_signals(engine.handle());
    engine.wait();
    Ok(())
}
