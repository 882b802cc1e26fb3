//! The prefork supervisor's test program: an echo server that is either the
//! supervisor (`--workers N`) or one of the workers it starts (the same
//! program, re-executed), or a single process that hands over to a successor
//! on SIGHUP (`--handover`). Workers serve the inherited sockets with a thread
//! per connection: this program exercises the process mechanics (hand-down,
//! readiness, restarts, draining), not the engine — `examples/echo.rs` and
//! `examples/http.rs` run the engine the same way.
//!
//! ```text
//! cargo run --example prefork_echo -- --addr 127.0.0.1:9000 --workers 2
//! kill -HUP <supervisor pid>     # new generation, then the old one drains
//! kill -TERM <supervisor pid>    # drain everything and exit
//! systemd-socket-activate -l 127.0.0.1:9000 target/debug/examples/prefork_echo
//! ```
//!
//! Each worker prints `worker <generation>.<slot> pid <pid> ready` and
//! `... stopped` lines, which the tests read.
mod common;

use clap::Parser;
use netloop::prefork::{self, Sharing, Supervisor};
use socket2::Socket;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "netloop prefork echo server (supervisor, workers, hand-over)")]
struct Args {
    /// HOST:PORT or a tcp:// or unix:// URL (ignored when sockets are inherited).
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: String,
    /// Worker processes; 0 serves in this process.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// shared | reuseport: how workers share the sockets.
    #[arg(long, default_value = "shared")]
    sharing: String,
    /// A worker exits with status 3 before it is ready if this file exists (to
    /// test a failing new generation).
    #[arg(long)]
    fail_if_exists: Option<std::path::PathBuf>,
    /// How long a stopping process waits for its connections to end.
    #[arg(long, default_value_t = 5000)]
    drain_ms: u64,
    /// Single process: on SIGHUP, hand the sockets to a successor, then drain.
    #[arg(long)]
    handover: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    if args.workers > 0 && prefork::worker_id().is_none() {
        // The supervisor adopts socket-activated sockets itself, if any.
        return supervise(&args);
    }
    let inherited = prefork::inherited_listeners()?;
    let who = match prefork::worker_id() {
        Some(w) => format!("worker {}.{}", w.generation, w.slot),
        None => "server".to_string(),
    };
    if let Some(path) = &args.fail_if_exists {
        if path.exists() {
            eprintln!("{who}: {} exists: failing at start-up", path.display());
            std::process::exit(3);
        }
    }
    let listeners: Vec<(OwnedFd, String)> = if inherited.is_empty() {
        let l = std::net::TcpListener::bind(args.addr.trim_start_matches("tcp://"))?;
        l.set_nonblocking(true)?;
        println!("listening on {}", l.local_addr()?);
        vec![(OwnedFd::from(l), "listen".to_string())]
    } else {
        inherited
            .into_iter()
            .map(|l| (l.name().to_string(), l.into_fd()))
            .map(|(n, fd)| (fd, n))
            .collect()
    };
    serve(&args, &who, listeners)
}

fn supervise(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let sharing = match args.sharing.as_str() {
        "shared" => Sharing::Shared,
        "reuseport" => Sharing::ReusePort,
        s => return Err(format!("unknown sharing {s:?} (shared|reuseport)").into()),
    };
    let sup = Supervisor::builder()
        .workers(args.workers)
        .sharing(sharing)
        .listen(args.addr.as_str())
        .ready_timeout(Duration::from_secs(10))
        .stop_timeout(Duration::from_millis(args.drain_ms) + Duration::from_secs(2))
        .backoff(Duration::from_millis(50), Duration::from_secs(2))
        .build()?;
    for a in sup.local_addrs() {
        println!(
            "listening on {}",
            a.to_string().trim_start_matches("tcp://")
        );
    }
    println!("supervisor pid {}", std::process::id());
    sup.run()?;
    println!("supervisor stopped");
    Ok(())
}

fn serve(
    args: &Args,
    who: &str,
    listeners: Vec<(OwnedFd, String)>,
) -> Result<(), Box<dyn std::error::Error>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGTERM, stop.clone())?;
    signal_hook::flag::register(SIGINT, stop.clone())?;
    signal_hook::flag::register(SIGHUP, hup.clone())?;
    let active = Arc::new(AtomicUsize::new(0));
    let accepting = Arc::new(AtomicBool::new(true));
    let sockets: Vec<Arc<Socket>> = listeners
        .iter()
        .map(|(fd, _)| Ok(Arc::new(Socket::from(fd.try_clone()?))))
        .collect::<std::io::Result<_>>()?;
    let acceptors: Vec<_> = sockets
        .iter()
        .map(|s| {
            let (s, accepting, active) = (s.clone(), accepting.clone(), active.clone());
            std::thread::spawn(move || accept_loop(&s, &accepting, &active))
        })
        .collect();
    prefork::notify_ready()?;
    println!("{who} pid {} ready", std::process::id());
    loop {
        std::thread::sleep(Duration::from_millis(10));
        if stop.load(Ordering::Acquire) {
            break;
        }
        if args.handover && hup.swap(false, Ordering::AcqRel) {
            let fds: Vec<(BorrowedFd<'_>, &str)> = listeners
                .iter()
                .map(|(fd, n)| (fd.as_fd(), n.as_str()))
                .collect();
            match prefork::hand_over(&fds, Duration::from_secs(10)) {
                Ok(pid) => {
                    println!("{who} handed over to pid {pid}");
                    break;
                }
                Err(e) => eprintln!("{who}: hand-over failed, serving on: {e}"),
            }
        }
    }
    // Stop accepting first (the sockets stay open in the supervisor or the
    // successor), then drain.
    let _ = prefork::notify_stopping();
    accepting.store(false, Ordering::Release);
    for a in acceptors {
        let _ = a.join();
    }
    drop(sockets);
    drop(listeners);
    let deadline = Instant::now() + Duration::from_millis(args.drain_ms);
    while active.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "{who} pid {} stopped ({} connections cut)",
        std::process::id(),
        active.load(Ordering::Acquire)
    );
    Ok(())
}

/// Accepts while `accepting` (the listener is non-blocking: poll every 2 ms).
fn accept_loop(listener: &Socket, accepting: &AtomicBool, active: &Arc<AtomicUsize>) {
    while accepting.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((conn, _)) => {
                active.fetch_add(1, Ordering::AcqRel);
                let active = active.clone();
                std::thread::spawn(move || {
                    let _ = echo(&conn);
                    active.fetch_sub(1, Ordering::AcqRel);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn echo(mut conn: &Socket) -> std::io::Result<()> {
    let mut buf = [0u8; 16384];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n])?;
    }
}
