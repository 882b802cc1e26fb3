//! Echo server: every byte a client sends comes back.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:9000 --loops 2 --mode reactor --lb least-connections
//! cargo run --release --example echo -- --addr unix:///tmp/echo.sock
//! ```
mod common;

use clap::Parser;
use netloop::{Action, Conn, Engine, EventHandler};

#[derive(Parser)]
#[command(about = "netloop echo server")]
struct Args {
    /// HOST:PORT, or a tcp://, tcp4://, tcp6:// or unix:// URL.
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: String,
    /// Number of event loops.
    #[arg(long, default_value_t = 1)]
    loops: usize,
    /// single | reactor | reuseport | shared (auto: single for one loop, else reactor).
    #[arg(long, default_value = "auto")]
    mode: String,
    /// round-robin | least-connections | source-hash (reactor mode).
    #[arg(long, default_value = "round-robin")]
    lb: String,
    /// Register connections edge-triggered.
    #[arg(long)]
    edge_triggered: bool,
    /// Pin loops to CPUs.
    #[arg(long)]
    pin: bool,
}

#[derive(Clone)]
struct Echo;

impl EventHandler for Echo {
    type State = ();

    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        // Write the buffered bytes straight back (zero-copy), then consume them.
        let n = conn.buffered();
        let ([a, b], mut out) = conn.split();
        let res = out.writev(&[a, b]);
        conn.discard(n);
        match res {
            Ok(()) => Action::None,
            Err(_) => Action::Close,
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    let mode = common::parse_mode(&args.mode, args.loops)?;
    let lb = common::parse_lb(&args.lb)?;
    let engine = Engine::builder()
        .loops(args.loops)
        .mode(mode)
        .load_balancer(lb)
        .edge_triggered(args.edge_triggered)
        .cpu_affinity(args.pin)
        .listen(args.addr.as_str())
        .start_with(Echo)?;
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
