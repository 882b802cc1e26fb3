//! The prefork supervisor's test program: an echo server on the engine that is
//! either the supervisor (`--workers N`) or one of the workers it starts (the
//! same program, re-executed, serving the inherited sockets), or a single
//! process that hands over to a successor on SIGHUP. The process life cycle is
//! `examples/common/deploy.rs`, shared with `echo` and `http`; this program
//! adds a way to make a new generation fail (`--fail-if-exists`).
//!
//! ```text
//! cargo run --example prefork_echo -- --addr 127.0.0.1:9000 --workers 2
//! kill -HUP <supervisor pid>     # new generation, then the old one drains
//! kill -TERM <supervisor pid>    # drain everything and exit
//! systemd-socket-activate -l 127.0.0.1:9000 target/debug/examples/prefork_echo
//! ```
//!
//! Each worker prints `worker <generation>.<slot> pid <pid> ready` and
//! `... stopped (<n> connections cut)` lines, which the tests read.
mod common;

use clap::Parser;
use common::deploy::{self, DeployArgs};
use netloop::Engine;

#[derive(Parser)]
#[command(about = "netloop prefork echo server (supervisor, workers, hand-over)")]
struct Args {
    /// HOST:PORT or a tcp:// or unix:// URL (ignored when sockets are inherited).
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: String,
    /// Event loops per process.
    #[arg(long, default_value_t = 1)]
    loops: usize,
    /// I/O backend: epoll | uring | auto (io_uring where the kernel allows it).
    #[arg(long, default_value = "epoll")]
    backend: netloop::Backend,
    #[command(flatten)]
    deploy: DeployArgs,
    /// A worker exits with status 3 before it is ready if this file exists (to
    /// test a failing new generation).
    #[arg(long)]
    fail_if_exists: Option<std::path::PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    if !deploy::is_supervisor(&args.deploy) {
        if let Some(path) = &args.fail_if_exists {
            if path.exists() {
                eprintln!(
                    "{}: {} exists: failing at start-up",
                    deploy::who(),
                    path.display()
                );
                std::process::exit(3);
            }
        }
    }
    let builder = Engine::builder()
        .loops(args.loops)
        .backend(args.backend)
        .drain_timeout(std::time::Duration::from_millis(args.deploy.drain_ms));
    deploy::serve(&args.deploy, &args.addr, builder, |b| {
        b.start_with(common::Echo)
    })
}
