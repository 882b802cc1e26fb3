//! HTTP/1.1 server with the TechEmpower plaintext and JSON endpoints.
//!
//! ```text
//! cargo run --release --example http -- --addr 127.0.0.1:8080 --loops 2
//! curl http://127.0.0.1:8080/plaintext   # Hello, World!
//! curl http://127.0.0.1:8080/json        # {"message":"Hello, World!"}
//! ```
mod common;

use clap::Parser;
use netloop::protocol::http::{techempower, HttpServer};
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
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    let mode = common::parse_mode(&args.mode, args.loops)?;
    let engine = Engine::builder()
        .backend(args.backend)
        .loops(args.loops)
        .mode(mode)
        .cpu_affinity(args.pin)
        .ticker(true)
        .listen(args.addr.as_str())
        .start(|_| HttpServer::new(techempower))?;
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
