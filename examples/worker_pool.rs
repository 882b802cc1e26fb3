//! Worker pool: the event loop reads and frames, worker threads do the blocking
//! work, and the result goes back through the connection's [`ConnHandle`].
//!
//! The protocol is line based: every `\n`-terminated request line (a trailing `\r`
//! is dropped) gets exactly one reply line, `<16 hex digits of a hash> <request>`,
//! after the worker has "worked" for `--work-ms` milliseconds and `--hash-rounds`
//! rounds of hashing. When the pool's queue is full the loop refuses the job at once
//! and the reply is `BUSY`. A partial line stays buffered in the connection until
//! its `\n` arrives.
//!
//! ```text
//! cargo run --release --example worker_pool -- --addr 127.0.0.1:9000 --workers 4 --queue 64 --work-ms 5
//! nc 127.0.0.1 9000
//!
//! # self-test: pipelining clients, partial writes, a small queue; checks every reply
//! cargo run --example worker_pool -- --addr 127.0.0.1:0 --self-test --workers 2 --queue 8
//! ```
//!
//! # Keeping replies in request order
//!
//! Jobs of one connection run on different workers and finish in any order, but a
//! client that pipelines requests must get the replies in the order it sent them.
//! This example numbers the requests of each connection (`seq`, counted on the loop)
//! and gives every connection a small **reorder buffer** shared with the workers
//! ([`Pipeline`]): a finished job files its reply under its number, and whoever
//! files the reply the connection is waiting for (`next_out`) sends it together with
//! every consecutive reply already waiting, with one `async_write`, *while holding
//! the buffer's lock* — so the writes reach the loop's queue in sequence order, and
//! the loop runs queued writes in order.
//!
//! `BUSY` is decided on the loop the moment the pool refuses a job, but it is a
//! reply like any other: it is filed under its request's number, so it can't
//! overtake a slower reply to an earlier request. When nothing is pending ahead of it
//! it goes out at once (through the same `async_write` path: a direct
//! [`Conn::write`] could overtake earlier replies still in the loop's task queue).
//!
//! Why not "one job in flight per connection"? It would keep order trivially but
//! serialise each pipelining client onto one worker. The reorder buffer lets one
//! connection use several workers; to stop one client from hogging the pool or
//! growing the buffer without bound, a connection may have at most
//! `--max-inflight` unanswered requests. Past that the loop stops taking lines
//! (they stay buffered, unconsumed) and marks the connection *stalled*; the next
//! reply that is sent for it calls [`ConnHandle::wake`], which runs `on_traffic`
//! again on the loop to carry on with the buffered lines.
//!
//! Limitation: a client that half-closes (shuts down its sending side) after its
//! last request loses the replies still being worked on — netloop closes a
//! connection once the peer's end-of-file has been seen and its queued output is
//! sent, and refuses async writes from then on.
mod common;

use clap::Parser;
use netloop::{Action, Conn, ConnHandle, Engine, EventHandler, WorkerPool};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// A request line longer than this closes the connection.
const MAX_LINE: usize = 64 * 1024;

#[derive(Parser)]
#[command(about = "netloop worker pool example: blocking work off the event loop")]
struct Args {
    /// HOST:PORT, or a tcp://, tcp4://, tcp6:// or unix:// URL.
    #[arg(long, default_value = "127.0.0.1:9000")]
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
    /// Worker threads.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Jobs the pool queues before it refuses more (then the reply is BUSY).
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Simulated blocking work per request (a sleep), in milliseconds.
    #[arg(long, default_value_t = 1)]
    work_ms: u64,
    /// Simulated CPU work per request: rounds of hashing.
    #[arg(long, default_value_t = 1000)]
    hash_rounds: u32,
    /// Unanswered requests a connection may have before the loop stops taking its lines.
    #[arg(long, default_value_t = 32)]
    max_inflight: u64,
    /// Run a self-test against the server (in-process clients), then exit.
    #[arg(long)]
    self_test: bool,
    /// Self-test: number of clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Self-test: requests pipelined by each client.
    #[arg(long, default_value_t = 300)]
    requests: usize,
}

/// The simulated job.
#[derive(Clone, Copy)]
struct Work {
    sleep: Duration,
    hash_rounds: u32,
}

impl Work {
    /// The reply to `line`, after the blocking part of the work.
    fn run(self, line: &[u8]) -> Vec<u8> {
        if !self.sleep.is_zero() {
            thread::sleep(self.sleep);
        }
        self.reply(line)
    }

    /// The reply to `line` without the wait (also what the self-test expects).
    fn reply(self, line: &[u8]) -> Vec<u8> {
        // FNV-1a over the line, then rounds of a 64-bit mixer (xorshift-multiply).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in line {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        for _ in 0..self.hash_rounds {
            h ^= h >> 33;
            h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 29;
        }
        let mut out = format!("{h:016x} ").into_bytes();
        out.extend_from_slice(line);
        out.push(b'\n');
        out
    }
}

/// A connection's reorder buffer, shared by the loop and the workers.
struct Pipeline {
    handle: ConnHandle,
    order: Mutex<Order>,
}

#[derive(Default)]
struct Order {
    /// Sequence number of the next reply to send.
    next_out: u64,
    /// Replies that finished ahead of their turn.
    ready: BTreeMap<u64, Vec<u8>>,
    /// The loop stopped taking lines (too many in flight) and waits for a wake.
    stalled: bool,
}

impl Pipeline {
    /// Files the reply to request `seq` and sends every reply that is now in turn.
    fn complete(&self, seq: u64, reply: Vec<u8>) {
        let mut guard = lock(&self.order);
        let o = &mut *guard;
        let mut out = if seq == o.next_out {
            o.next_out += 1;
            reply
        } else {
            o.ready.insert(seq, reply);
            return;
        };
        while let Some(more) = o.ready.remove(&o.next_out) {
            out.extend_from_slice(&more);
            o.next_out += 1;
        }
        // Still under the lock: writes enter the loop's queue in sequence order. A
        // failure (the connection closed) needs no handling: there is no one to tell.
        let _ = self.handle.async_write(out, None);
        if std::mem::take(&mut o.stalled) {
            let _ = self.handle.wake();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct ConnState {
    /// Sequence number the next request line gets.
    next_seq: u64,
    pipeline: Option<Arc<Pipeline>>,
}

#[derive(Clone)]
struct Server {
    pool: Arc<WorkerPool>,
    work: Work,
    max_inflight: u64,
}

impl EventHandler for Server {
    type State = ConnState;

    fn on_open(&mut self, conn: &mut Conn<'_, ConnState>) -> Action {
        let pipeline = Pipeline {
            handle: conn.handle(),
            order: Mutex::default(),
        };
        conn.state_mut().pipeline = Some(Arc::new(pipeline));
        Action::None
    }

    fn on_traffic(&mut self, conn: &mut Conn<'_, ConnState>) -> Action {
        let Some(pipeline) = conn.state().pipeline.clone() else {
            return Action::Close;
        };
        loop {
            let seq = conn.state().next_seq;
            {
                let mut o = lock(&pipeline.order);
                if seq - o.next_out >= self.max_inflight {
                    // Leave the remaining lines buffered; a sent reply wakes us.
                    o.stalled = true;
                    return Action::None;
                }
            }
            // Only whole lines are consumed; a partial one stays buffered.
            let buf = conn.peek_all();
            let Some(end) = buf.iter().position(|&b| b == b'\n') else {
                if buf.len() > MAX_LINE {
                    tracing::info!(len = buf.len(), "request line too long; closing");
                    return Action::Close;
                }
                return Action::None;
            };
            let line = buf[..end]
                .strip_suffix(b"\r")
                .unwrap_or(&buf[..end])
                .to_vec();
            conn.discard(end + 1);
            conn.state_mut().next_seq += 1;
            let (p, work) = (pipeline.clone(), self.work);
            let job = move || p.complete(seq, work.run(&line));
            if self.pool.try_execute(job).is_err() {
                // Refused at once (the loop never blocks); ordered like any reply.
                pipeline.complete(seq, b"BUSY\n".to_vec());
            }
        }
    }
}

fn main() -> ExitCode {
    common::init_logging();
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mode = common::parse_mode(&args.mode, args.loops)?;
    if args.max_inflight == 0 {
        return Err("--max-inflight must be at least 1".into());
    }
    let pool = Arc::new(WorkerPool::new(args.workers, args.queue));
    let work = Work {
        sleep: Duration::from_millis(args.work_ms),
        hash_rounds: args.hash_rounds,
    };
    let server = Server {
        pool: pool.clone(),
        work,
        max_inflight: args.max_inflight,
    };
    let engine = Engine::builder()
        .backend(args.backend)
        .loops(args.loops)
        .mode(mode)
        .listen(args.addr.as_str())
        .start_with(server)?;
    for a in engine.local_addrs() {
        println!(
            "listening on {}",
            a.to_string().trim_start_matches("tcp://")
        );
    }
    common::stop_on_signals(engine.handle());
    let code = if args.self_test {
        let addr = engine
            .local_addr()
            .as_tcp()
            .ok_or("--self-test needs a TCP address")?;
        let result = self_test(addr, args.clients, args.requests, work);
        engine.stop();
        match result {
            Ok((results, busy)) => {
                println!(
                    "ok: {} clients x {} requests, replies in order ({results} results, {busy} busy)",
                    args.clients, args.requests
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("self-test FAILED: {e}");
                ExitCode::FAILURE
            }
        }
    } else {
        engine.wait();
        ExitCode::SUCCESS
    };
    // Queued jobs finish (their replies are refused: the engine is gone), then the
    // workers are joined. This is the last reference once the handlers are dropped.
    drop(pool);
    Ok(code)
}

/// Runs `clients` pipelining clients; returns the number of result and BUSY replies.
fn self_test(
    addr: SocketAddr,
    clients: usize,
    requests: usize,
    work: Work,
) -> Result<(usize, usize), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let threads: Vec<_> = (0..clients)
        .map(|c| thread::spawn(move || run_client(addr, c, requests, work, deadline)))
        .collect();
    let (mut results, mut busy, mut failures) = (0, 0, Vec::new());
    for (c, t) in threads.into_iter().enumerate() {
        match t.join() {
            Ok(Ok((r, b))) => {
                results += r;
                busy += b;
            }
            Ok(Err(e)) => failures.push(format!("client {c}: {e}")),
            Err(_) => failures.push(format!("client {c}: panicked")),
        }
    }
    if failures.is_empty() && results == 0 {
        failures.push("every reply was BUSY: no job ran".into());
    }
    match failures.first() {
        None => Ok((results, busy)),
        Some(first) => Err(format!("{first} (and {} more)", failures.len() - 1)),
    }
}

/// Sends `requests` lines in odd-sized pieces (so the server sees partial lines)
/// while reading the replies; checks each reply is BUSY or the right result.
fn run_client(
    addr: SocketAddr,
    c: usize,
    requests: usize,
    work: Work,
    deadline: Instant,
) -> Result<(usize, usize), String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let lines: Vec<String> = (0..requests)
        .map(|i| format!("client {c} request {i} {}", "x".repeat(i % 23)))
        .collect();
    let mut bytes = Vec::new();
    for l in &lines {
        bytes.extend_from_slice(l.as_bytes());
        bytes.extend_from_slice(if l.len() % 2 == 0 { b"\r\n" } else { b"\n" });
    }
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let sender = thread::spawn(move || -> std::io::Result<()> {
        let sizes = [1, 7, 3, 64, 13, 250, 2, 31];
        let (mut at, mut k) = (0, 0);
        while at < bytes.len() {
            let n = sizes[k % sizes.len()].min(bytes.len() - at);
            writer.write_all(&bytes[at..at + n])?;
            at += n;
            k += 1;
            if k % 16 == 0 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    });
    let mut reader = BufReader::new(stream);
    let (mut results, mut busy) = (0, 0);
    let mut reply = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timed out waiting for reply {i}"));
        }
        reader
            .get_ref()
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        reply.clear();
        match reader.read_until(b'\n', &mut reply) {
            Ok(0) => return Err(format!("connection closed before reply {i}")),
            Ok(_) if reply == b"BUSY\n" => busy += 1,
            Ok(_) if reply == work.reply(l.as_bytes()) => results += 1,
            Ok(_) => {
                return Err(format!(
                    "reply {i}: got {:?}",
                    String::from_utf8_lossy(&reply)
                ))
            }
            Err(e) => return Err(format!("reading reply {i}: {e}")),
        }
    }
    sender
        .join()
        .map_err(|_| "sender panicked".to_string())?
        .map_err(|e| format!("sending: {e}"))?;
    Ok((results, busy))
}
