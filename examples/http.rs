//! HTTP/1.1 server with the TechEmpower plaintext and JSON endpoints.
//!
//! ```text
//! cargo run --release --example http -- --addr 127.0.0.1:8080 --loops 2
//! curl http://127.0.0.1:8080/plaintext   # Hello, World!
//! curl http://127.0.0.1:8080/json        # {"message":"Hello, World!"}
//! ```
//!
//! Slow clients are timed out: a request head must be complete within
//! `--head-timeout` seconds, a body must not stall for `--body-timeout`, and an
//! idle keep-alive connection closes after `--keep-alive` (0 turns one off).
mod common;

use clap::Parser;
use std::time::Duration;

use netloop::protocol::http::{techempower, HttpServer, HttpTimeouts};
use netloop::Engine;

#[derive(Parser)]
#[command(about = "netloop HTTP server (TechEmpower /plaintext and /json)")]
struct Args {
    /// HOST:PORT, or a tcp://, tcp4://, tcp6:// or unix:// URL.
    #[arg(long, default_value = "127.0.0.1:8080")]
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
    /// Pin loops to CPUs.
    #[arg(long)]
    pin: bool,
    /// Seconds a request head may take to arrive (slowloris defence; 0: off).
    #[arg(long, default_value_t = 10)]
    head_timeout: u64,
    /// Seconds a request body may go without a byte (0: off).
    #[arg(long, default_value_t = 30)]
    body_timeout: u64,
    /// Seconds an idle keep-alive connection stays open (0: off).
    #[arg(long, default_value_t = 60)]
    keep_alive: u64,
}

/// `secs` as a timeout, 0 meaning none.
fn secs(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    let mode = common::parse_mode(&args.mode, args.loops)?;
    let timeouts = HttpTimeouts {
        head: secs(args.head_timeout),
        body_progress: secs(args.body_timeout),
        keep_alive: secs(args.keep_alive),
    };
    let engine = Engine::builder()
        .backend(args.backend)
        .loops(args.loops)
        .mode(mode)
        .cpu_affinity(args.pin)
        .ticker(true)
        .listen(args.addr.as_str())
        .start(move |_| HttpServer::new(techempower).with_timeouts(timeouts))?;
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
