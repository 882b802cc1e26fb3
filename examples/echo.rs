//! Echo server: every byte a client sends comes back.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:9000 --loops 2 --mode reactor --lb least-connections
//! cargo run --release --example echo -- --addr unix:///tmp/echo.sock
//! # on io_uring (auto: io_uring where the kernel allows it, else epoll)
//! cargo run --release --example echo -- --addr 127.0.0.1:9000 --backend uring
//! # UDP: every datagram back to its sender (one loop, or N SO_REUSEPORT loops)
//! cargo run --release --example echo -- --addr udp://127.0.0.1:9000 --mode single
//! cargo run --release --example echo -- --addr udp://127.0.0.1:9000 --mode reuseport --loops 4
//! cargo run --release --example echo -- --addr unixgram:///tmp/echo.dgram
//! # UDP self-test: serve on an ephemeral port, send from many sockets, check every echo
//! cargo run --example echo -- --addr udp://127.0.0.1:0 --mode reuseport --loops 2 --self-test
//! # prefork (SIGHUP restarts the workers without refusing a connection), and
//! # behind a load balancer speaking the PROXY protocol (v1 or v2)
//! cargo run --release --example echo -- --addr 127.0.0.1:9000 --workers 2
//! cargo run --release --example echo -- --addr 127.0.0.1:9000 --proxy-protocol 10.0.0.0/8
//! ```
//!
//! The deployment flags of stream servers (`--workers`, `--sharing`,
//! `--drain-ms`, `--proxy-protocol`, SIGHUP, socket activation) are those of
//! `examples/common/deploy.rs`.
mod common;

use clap::Parser;
use common::deploy::{self, DeployArgs};
use netloop::udp::{Datagram, DatagramHandler, UdpEngine};
use netloop::{Action, Conn, Engine, EventHandler, Mode};

#[derive(Parser)]
#[command(about = "netloop echo server")]
struct Args {
    /// HOST:PORT, or a tcp://, tcp4://, tcp6://, unix://, udp://, udp4://, udp6://
    /// or unixgram:// URL.
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: String,
    /// Number of event loops.
    #[arg(long, default_value_t = 1)]
    loops: usize,
    /// I/O backend: epoll | uring | auto (io_uring where the kernel allows it).
    /// Datagrams are always served on epoll.
    #[arg(long, default_value = "epoll")]
    backend: netloop::Backend,
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
    /// UDP only: send datagrams from many sockets, check every echo, print stats, exit.
    #[arg(long)]
    self_test: bool,
    #[command(flatten)]
    deploy: DeployArgs,
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

/// Every datagram back to its sender, from the receive batch straight into the
/// send batch (no allocation).
struct DgramEcho;

impl DatagramHandler for DgramEcho {
    fn on_datagram(&mut self, d: &mut Datagram<'_>) -> Action {
        let _ = d.reply_with_data();
        Action::None
    }
}

fn serve_datagrams(args: &Args, mode: Mode) -> Result<(), Box<dyn std::error::Error>> {
    let engine = UdpEngine::builder()
        .loops(args.loops)
        .mode(mode)
        .listen(args.addr.as_str())
        .start(|_| DgramEcho)?;
    for a in engine.local_addrs() {
        println!(
            "listening on {}",
            a.to_string().trim_start_matches("udp://")
        );
    }
    if args.self_test {
        let server = engine
            .local_addr()
            .as_udp()
            .ok_or("--self-test needs a udp:// address")?;
        let res = udp_self_test(server);
        println!(
            "stats: {:?} per loop {:?}",
            engine.stats(),
            engine.handle().loop_stats()
        );
        engine.stop();
        return res;
    }
    let handle = engine.handle();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = rx.recv();
        handle.stop();
    });
    common::on_signal(move || {
        let _ = tx.send(());
    });
    engine.wait();
    Ok(())
}

/// 64 sockets × 50 datagrams of varied sizes; every echo must come back intact.
fn udp_self_test(server: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    use std::net::UdpSocket;
    let socks: Vec<UdpSocket> = (0..64)
        .map(|_| UdpSocket::bind((server.ip(), 0)))
        .collect::<Result<_, _>>()?;
    let mut buf = vec![0u8; 70_000];
    let mut echoed = 0;
    for round in 0..50usize {
        for (i, s) in socks.iter().enumerate() {
            let msg = format!("{round}:{i}:{}", "x".repeat((round * 37 + i) % 1200));
            s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
            let mut tries = 0;
            loop {
                s.send_to(msg.as_bytes(), server)?;
                match s.recv_from(&mut buf) {
                    Ok((n, from)) if from == server && &buf[..n] == msg.as_bytes() => break,
                    Ok(_) => return Err("a wrong echo".into()),
                    Err(_) if tries < 3 => tries += 1, // datagrams may be lost: retry
                    Err(e) => return Err(e.into()),
                }
            }
            echoed += 1;
        }
    }
    println!("ok: {echoed} datagrams echoed from 64 sockets");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    let mode = common::parse_mode(&args.mode, args.loops)?;
    if args
        .addr
        .parse::<netloop::Addr>()
        .is_ok_and(|a| a.is_datagram())
    {
        if args.deploy.workers > 0 || args.deploy.proxy_protocol.is_some() {
            return Err("--workers and --proxy-protocol are for stream listeners".into());
        }
        return serve_datagrams(&args, mode);
    }
    let lb = common::parse_lb(&args.lb)?;
    let builder = Engine::builder()
        .backend(args.backend)
        .loops(args.loops)
        .mode(mode)
        .load_balancer(lb)
        .edge_triggered(args.edge_triggered)
        .cpu_affinity(args.pin)
        .drain_timeout(std::time::Duration::from_millis(args.deploy.drain_ms));
    deploy::serve(&args.deploy, &args.addr, builder, |b| b.start_with(Echo))
}
