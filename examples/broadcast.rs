//! Broadcast (server push): a thread outside the event loops writes to every
//! connected client.
//!
//! Each connection's [`ConnHandle`] is put in a shared registry when it opens and
//! taken out when it closes. A broadcaster thread wakes every `--interval-ms`,
//! snapshots the registry and [`ConnHandle::async_write`]s one line to every
//! connection; each write's completion callback (run on the connection's loop once
//! the bytes reached the kernel, or with the error that stopped them) counts a
//! success or a failure, and the last callback of a round prints its summary.
//!
//! ```text
//! cargo run --release --example broadcast -- --addr 127.0.0.1:9000 --loops 2
//! nc 127.0.0.1 9000            # prints "round 1 …", "round 2 …", …
//!
//! # self-test: 1000 in-process clients, 5 rounds, checks every line arrived
//! cargo run --release --example broadcast -- --addr 127.0.0.1:0 --clients 1000 --rounds 5 --interval-ms 100
//! ```
//!
//! Lines pushed to one connection arrive in the order they were pushed: they are
//! all queued by the one broadcaster thread, and a loop runs the writes queued for
//! it in order. The registry lock is held only to insert, remove or snapshot (never
//! while writing), so the loops are not held up by a round in progress.
mod common;

use clap::Parser;
use netloop::{
    Action, Bytes, CloseReason, Conn, ConnHandle, ConnId, Engine, EngineHandle, EventHandler,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Self-test clients open two descriptors each (client and server side) in this
/// one process; stay well under a 20k descriptor limit.
const MAX_CLIENTS: usize = 8000;

#[derive(Parser)]
#[command(about = "netloop broadcast (server push) example")]
struct Args {
    /// HOST:PORT, or a tcp://, tcp4://, tcp6:// or unix:// URL.
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: String,
    /// Number of event loops.
    #[arg(long, default_value_t = 2)]
    loops: usize,
    /// I/O backend: epoll | uring | auto (io_uring where the kernel allows it).
    #[arg(long, default_value = "epoll")]
    backend: netloop::Backend,
    /// single | reactor | reuseport | shared (auto: single for one loop, else reactor).
    #[arg(long, default_value = "auto")]
    mode: String,
    /// Milliseconds between broadcast rounds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Rounds to broadcast before stopping (0 = until SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0)]
    rounds: u64,
    /// Self-test: open this many loopback clients, broadcast `--rounds` rounds
    /// (default 3 here), check every client got every line, then exit.
    #[arg(long)]
    clients: Option<usize>,
    /// Pad each pushed line to this many bytes (0: the short line as is). With a
    /// large size the self-test shows what fan-out costs: one shared buffer
    /// (`bytes::Bytes`) for all connections, not a copy each.
    #[arg(long, default_value_t = 0)]
    size: usize,
}

/// Bytes per pushed line (`--size`).
static SIZE: AtomicUsize = AtomicUsize::new(0);

/// Connections by id (unique across the engine).
type Registry = Arc<Mutex<HashMap<ConnId, ConnHandle>>>;

#[derive(Clone)]
struct Broadcast {
    registry: Registry,
}

impl EventHandler for Broadcast {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        lock(&self.registry).insert(conn.id(), conn.handle());
        Action::None
    }

    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        // Clients have nothing to say: drop whatever they send.
        let n = conn.buffered();
        conn.discard(n);
        Action::None
    }

    fn on_close(&mut self, conn: &mut Conn<'_, ()>, _reason: &CloseReason) {
        lock(&self.registry).remove(&conn.id());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The line pushed in round `r` (padded to `--size` bytes).
fn message(r: u64) -> String {
    let mut line = format!("round {r} hello from netloop");
    let size = SIZE.load(Ordering::Relaxed);
    if size > line.len() + 1 {
        line.extend(std::iter::repeat_n('.', size - line.len() - 1));
    }
    line.push('\n');
    line
}

/// CPU time this process used (user + system) and its peak resident set, from
/// /proc: the figures the self-test prints.
fn process_figures() -> (Duration, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    (Duration::from_millis(ticks * 10), hwm_kib * 1024)
}

/// Outcome counters of one round, shared by its completion callbacks.
struct Round {
    number: u64,
    started: Instant,
    sent: usize,
    ok: AtomicUsize,
    failed: AtomicUsize,
    /// Callbacks still to run; the one that brings it to zero prints the summary.
    pending: AtomicUsize,
}

impl Round {
    fn complete(&self, ok: bool) {
        if ok {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            eprintln!(
                "round {}: {} connections, {} delivered, {} failed, {:.1} ms",
                self.number,
                self.sent,
                self.ok.load(Ordering::Relaxed),
                self.failed.load(Ordering::Relaxed),
                self.started.elapsed().as_secs_f64() * 1e3
            );
        }
    }

    fn is_done(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }
}

/// Pushes one round to every registered connection.
fn broadcast_round(registry: &Registry, number: u64) -> Arc<Round> {
    // Snapshot under the lock, write without it.
    let targets: Vec<ConnHandle> = lock(registry).values().cloned().collect();
    let round = Arc::new(Round {
        number,
        started: Instant::now(),
        sent: targets.len(),
        ok: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        pending: AtomicUsize::new(targets.len()),
    });
    if targets.is_empty() {
        eprintln!("round {number}: no connections");
    }
    // One buffer for every connection: each write holds a reference, not a copy.
    let msg = Bytes::from(message(number));
    for h in targets {
        let r = round.clone();
        let cb: netloop::WriteCallback = Box::new(move |res| r.complete(res.is_ok()));
        if h.async_write(msg.clone(), Some(cb)).is_err() {
            round.complete(false); // closed meanwhile: refused at once
        }
    }
    round
}

/// Sleeps up to `d`, returning early (false) if the engine is stopping.
fn sleep_unless_stopping(engine: &EngineHandle, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    while !engine.is_stopping() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        thread::sleep(left.min(Duration::from_millis(20)));
    }
    false
}

/// Runs `rounds` rounds (0 = until the engine stops); returns the rounds run, each
/// waited for until all its callbacks have run.
fn broadcaster(
    registry: Registry,
    engine: EngineHandle,
    interval: Duration,
    rounds: u64,
) -> Vec<Arc<Round>> {
    let mut done = Vec::new();
    let mut number = 0;
    while rounds == 0 || number < rounds {
        if !sleep_unless_stopping(&engine, interval) {
            break;
        }
        number += 1;
        let round = broadcast_round(&registry, number);
        if rounds == 0 {
            continue; // running forever: keep no history
        }
        done.push(round);
    }
    // Every callback runs exactly once (with an error if the engine stops first),
    // but a client that stopped reading can hold its round open: wait a while only.
    let give_up = Instant::now() + interval.max(Duration::from_secs(5));
    while !done.iter().all(|r| r.is_done()) && Instant::now() < give_up {
        thread::sleep(Duration::from_millis(5));
    }
    done
}

fn main() -> ExitCode {
    common::init_logging();
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mode = common::parse_mode(&args.mode, args.loops)?;
    if let Some(n) = args.clients {
        if n == 0 || n > MAX_CLIENTS {
            return Err(format!("--clients must be between 1 and {MAX_CLIENTS}").into());
        }
    }
    SIZE.store(args.size, Ordering::Relaxed);
    let registry: Registry = Arc::default();
    let engine = Engine::builder()
        .backend(args.backend)
        .loops(args.loops)
        .mode(mode)
        .listen(args.addr.as_str())
        .start_with(Broadcast {
            registry: registry.clone(),
        })?;
    for a in engine.local_addrs() {
        println!(
            "listening on {}",
            a.to_string().trim_start_matches("tcp://")
        );
    }
    common::stop_on_signals(engine.handle());
    let interval = Duration::from_millis(args.interval_ms);

    let Some(clients) = args.clients else {
        // Server mode: push until stopped, or for `--rounds` rounds.
        let (reg, h) = (registry.clone(), engine.handle());
        let pusher = thread::spawn(move || {
            broadcaster(reg, h.clone(), interval, args.rounds);
            h.stop();
        });
        engine.wait();
        let _ = pusher.join();
        return Ok(ExitCode::SUCCESS);
    };

    let rounds = if args.rounds == 0 { 3 } else { args.rounds };
    let addr = engine
        .local_addr()
        .as_tcp()
        .ok_or("--clients needs a TCP address")?;
    let result = self_test(&engine, &registry, addr, clients, rounds, interval);
    engine.stop();
    match result {
        Ok(()) => {
            let (cpu, peak) = process_figures();
            println!("ok: {clients} clients x {rounds} rounds");
            println!(
                "figures: {clients} clients x {rounds} rounds x {} B lines: cpu {} ms, peak rss {:.1} MiB",
                message(1).len(),
                cpu.as_millis(),
                peak as f64 / (1 << 20) as f64
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("self-test FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn self_test(
    engine: &Engine,
    registry: &Registry,
    addr: SocketAddr,
    clients: usize,
    rounds: u64,
    interval: Duration,
) -> Result<(), String> {
    let deadline = Instant::now()
        + Duration::from_secs(30)
        + interval.saturating_mul(u32::try_from(rounds).unwrap_or(u32::MAX));
    let mut streams = Vec::with_capacity(clients);
    for i in 0..clients {
        let s = TcpStream::connect(addr).map_err(|e| format!("client {i}: connect: {e}"))?;
        streams.push(s);
    }
    // Only start once the server has registered every client, so each gets every round.
    while lock(registry).len() < clients {
        if Instant::now() > deadline || engine.handle().is_stopping() {
            return Err(format!(
                "only {} of {clients} clients registered",
                lock(registry).len()
            ));
        }
        thread::sleep(Duration::from_millis(5));
    }
    eprintln!("{clients} clients connected");

    let (reg, h) = (registry.clone(), engine.handle());
    let pusher = thread::spawn(move || broadcaster(reg, h, interval, rounds));

    // Each client's lines are already in flight or queued in its socket buffer, so
    // reading the clients one after another is enough.
    let mut failures = Vec::new();
    for (i, s) in streams.into_iter().enumerate() {
        if let Err(e) = check_client(s, rounds, deadline) {
            failures.push(format!("client {i}: {e}"));
        }
    }
    let done = pusher
        .join()
        .map_err(|_| "broadcaster panicked".to_string())?;
    if done.len() as u64 != rounds {
        failures.push(format!("only {} of {rounds} rounds ran", done.len()));
    }
    for r in &done {
        let (ok, failed) = (
            r.ok.load(Ordering::Relaxed),
            r.failed.load(Ordering::Relaxed),
        );
        if !r.is_done() || r.sent != clients || ok != clients || failed != 0 {
            failures.push(format!(
                "round {}: sent {}, delivered {ok}, failed {failed}",
                r.number, r.sent
            ));
        }
    }
    match failures.len() {
        0 => Ok(()),
        n => {
            for f in failures.iter().take(10) {
                eprintln!("  {f}");
            }
            Err(format!("{n} problem(s)"))
        }
    }
}

/// Reads `rounds` lines from one client and checks they are rounds 1..=rounds in order.
fn check_client(s: TcpStream, rounds: u64, deadline: Instant) -> Result<(), String> {
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    for r in 1..=rounds {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timed out waiting for round {r}"));
        }
        reader
            .get_ref()
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Err(format!("connection closed before round {r}")),
            Ok(_) if line == message(r) => {}
            Ok(_) => return Err(format!("expected {:?}, got {line:?}", message(r))),
            Err(e) => return Err(format!("reading round {r}: {e}")),
        }
    }
    Ok(())
}
