//! The `echo` load generator: N connections, D messages of S bytes in flight
//! on each (closed loop), or a fixed offered rate (open loop); every echoed
//! byte is verified against a per-connection pattern and every message's
//! round trip goes into an HDR histogram (µs).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream as StdStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;

/// Largest latency the histograms hold (60 s, in µs); larger values saturate.
pub const MAX_LATENCY_US: u64 = 60_000_000;
/// Period of the payload pattern: a prime, so it never lines up with a
/// message size and consecutive messages on a connection differ.
const PERIOD: usize = 65_521;
/// Largest single read or write.
const CHUNK: usize = 64 * 1024;
/// How long an open-loop run waits after the window for the last answers.
const DRAIN: Duration = Duration::from_secs(2);
/// Connect timeout per connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for opening all connections of a run.
const CONNECT_PHASE_LIMIT: Duration = Duration::from_secs(30);

/// A counted error log that remembers the first message.
#[derive(Debug, Default, Clone)]
pub struct ErrorLog {
    pub count: u64,
    pub first: Option<String>,
}

impl ErrorLog {
    pub fn add(&mut self, msg: impl Into<String>) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(msg.into());
        }
    }

    fn merge(&mut self, other: ErrorLog) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }
}

/// The payload: byte `k` of connection `c`'s stream is
/// `table[(k + c * 7919) mod PERIOD]`, a pseudo-random table. Generating and
/// checking are slice copies and compares, so the client stays cheap even
/// at 4 KiB messages.
pub struct Pattern {
    table: Vec<u8>,
}

impl Default for Pattern {
    fn default() -> Self {
        Self::new()
    }
}

impl Pattern {
    pub fn new() -> Self {
        let mut x: u64 = 0x243F_6A88_85A3_08D3;
        let mut table: Vec<u8> = (0..PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        // Repeat the start so any CHUNK-long slice is contiguous.
        for i in 0..CHUNK {
            table.push(table[i % PERIOD]);
        }
        Self { table }
    }

    /// `len` (≤ 64 KiB) bytes of connection `conn`'s stream from offset `off`.
    pub fn slice(&self, conn: u64, off: u64, len: usize) -> &[u8] {
        debug_assert!(len <= CHUNK);
        let p = PERIOD as u64;
        let start = ((off % p + (conn % p) * 7919 % p) % p) as usize;
        &self.table[start..start + len]
    }
}

/// Parameters of one `echo` run.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    pub addr: SocketAddr,
    pub conns: usize,
    pub depth: usize,
    pub size: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Open loop: total offered messages per second over all connections.
    pub rate: Option<f64>,
    pub threads: usize,
}

/// Edges of the measured window, announced to an observer (used by `compare`
/// to read the server's CPU time exactly around the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    WindowStart,
    WindowEnd,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

/// Result of one `echo` run.
#[derive(Debug, Clone, Serialize)]
pub struct EchoReport {
    pub addr: String,
    pub mode: &'static str,
    pub conns_requested: usize,
    pub conns_connected: usize,
    pub depth: usize,
    pub size: usize,
    pub rate: Option<f64>,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Messages completed (echoed in full and verified) in the measured window.
    pub messages: u64,
    pub msgs_per_sec: f64,
    /// Payload megabytes (10^6) echoed per second, one direction.
    pub mb_per_sec: f64,
    pub latency: LatencySummary,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl EchoReport {
    pub fn print_table(&self) {
        let mode = match self.rate {
            Some(r) => format!("open loop at {r:.0} msgs/s"),
            None => format!("closed loop, depth {}", self.depth),
        };
        println!(
            "echo → {}  ({mode}; {}/{} conns; {} B; {:.1} s after {:.1} s warm-up)",
            self.addr,
            self.conns_connected,
            self.conns_requested,
            self.size,
            self.duration_s,
            self.warmup_s
        );
        println!("  {:<12} {}", "messages", self.messages);
        println!(
            "  {:<12} {:.0} msgs/s   {:.2} MB/s",
            "throughput", self.msgs_per_sec, self.mb_per_sec
        );
        let l = &self.latency;
        println!(
            "  {:<12} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.1}",
            "latency µs", l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.mean_us
        );
        match &self.first_error {
            Some(e) => println!("  {:<12} {} (first: {e})", "errors", self.errors),
            None => println!("  {:<12} {}", "errors", self.errors),
        }
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

fn record(hist: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, MAX_LATENCY_US);
    let _ = hist.record(us);
}

fn connect(addr: SocketAddr) -> io::Result<StdStream> {
    let s = StdStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Runs one echo measurement. `observer` is called (from the calling thread)
/// when the measured window starts and ends.
pub fn run_echo(cfg: &EchoConfig, observer: &dyn Fn(Edge)) -> Result<EchoReport> {
    if cfg.conns == 0 || cfg.depth == 0 || cfg.size == 0 || cfg.threads == 0 {
        bail!("conns, depth, size and threads must all be at least 1");
    }
    if cfg.duration.is_zero() || cfg.duration > Duration::from_secs(3600) {
        bail!("duration must be in (0, 3600] seconds");
    }
    if cfg.warmup > Duration::from_secs(600) {
        bail!("warm-up must be at most 600 seconds");
    }
    if let Some(r) = cfg.rate {
        if !(r.is_finite() && r > 0.0 && r <= 10_000_000.0) {
            bail!("rate must be in (0, 10,000,000] msgs/s");
        }
    }

    let mut errors = ErrorLog::default();
    let mut per_thread: Vec<Vec<(u64, StdStream)>> = (0..cfg.threads).map(|_| Vec::new()).collect();
    let mut connected = 0usize;
    let mut consecutive_failures = 0;
    let connect_deadline = Instant::now() + CONNECT_PHASE_LIMIT;
    for id in 0..cfg.conns {
        if Instant::now() >= connect_deadline || consecutive_failures >= 20 {
            errors.add(format!(
                "gave up connecting after {id} attempts ({consecutive_failures} failures in a row)"
            ));
            break;
        }
        match connect(cfg.addr) {
            Ok(s) => {
                per_thread[connected % cfg.threads].push((id as u64, s));
                connected += 1;
                consecutive_failures = 0;
            }
            Err(e) => {
                errors.add(format!("connect: {e}"));
                consecutive_failures += 1;
            }
        }
    }
    if connected == 0 {
        bail!(
            "no connection to {} could be established ({})",
            cfg.addr,
            errors.first.unwrap_or_default()
        );
    }
    per_thread.retain(|v| !v.is_empty());

    let t0 = Instant::now() + Duration::from_millis(20);
    let warm_end = t0 + cfg.warmup;
    let end = warm_end + cfg.duration;
    let results: Vec<WorkerResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = per_thread
            .into_iter()
            .map(|streams| {
                let rate = cfg
                    .rate
                    .map(|r| r * streams.len() as f64 / connected as f64);
                scope.spawn(move || Worker::new(cfg, rate, t0).run(streams))
            })
            .collect();
        sleep_until(warm_end);
        observer(Edge::WindowStart);
        sleep_until(end);
        observer(Edge::WindowEnd);
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    let mut w = WorkerResult::default();
                    w.errors.add("load-generator thread panicked");
                    w
                })
            })
            .collect()
    });

    let mut hist = new_histogram();
    let mut messages = 0;
    for r in results {
        let _ = hist.add(&r.hist);
        messages += r.messages;
        errors.merge(r.errors);
    }
    let secs = cfg.duration.as_secs_f64();
    let msgs_per_sec = messages as f64 / secs;
    let empty = hist.is_empty();
    let q = |p: f64| if empty { 0 } else { hist.value_at_quantile(p) };
    Ok(EchoReport {
        addr: cfg.addr.to_string(),
        mode: if cfg.rate.is_some() {
            "open-loop"
        } else {
            "closed-loop"
        },
        conns_requested: cfg.conns,
        conns_connected: connected,
        depth: cfg.depth,
        size: cfg.size,
        rate: cfg.rate,
        warmup_s: cfg.warmup.as_secs_f64(),
        duration_s: secs,
        messages,
        msgs_per_sec,
        mb_per_sec: msgs_per_sec * cfg.size as f64 / 1e6,
        latency: LatencySummary {
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if empty { 0 } else { hist.max() },
            mean_us: if empty { 0.0 } else { hist.mean() },
        },
        errors: errors.count,
        first_error: errors.first,
    })
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

struct WorkerResult {
    hist: Histogram<u64>,
    messages: u64,
    errors: ErrorLog,
}

impl Default for WorkerResult {
    fn default() -> Self {
        Self {
            hist: new_histogram(),
            messages: 0,
            errors: ErrorLog::default(),
        }
    }
}

struct Conn {
    stream: mio::net::TcpStream,
    id: u64,
    /// Bytes written so far.
    tx_off: u64,
    /// Bytes of all messages queued so far.
    tx_target: u64,
    /// Bytes received and verified so far.
    rx_off: u64,
    /// Send (closed loop) or scheduled (open loop) time of each unanswered message.
    inflight: VecDeque<Instant>,
    alive: bool,
}

struct Worker<'a> {
    cfg: &'a EchoConfig,
    pattern: Pattern,
    scratch: Vec<u8>,
    size: u64,
    rate: Option<f64>,
    t0: Instant,
    warm_end: Instant,
    end: Instant,
    alive: usize,
    out: WorkerResult,
}

impl<'a> Worker<'a> {
    fn new(cfg: &'a EchoConfig, rate: Option<f64>, t0: Instant) -> Self {
        let warm_end = t0 + cfg.warmup;
        Self {
            cfg,
            pattern: Pattern::new(),
            scratch: vec![0; CHUNK],
            size: cfg.size as u64,
            rate,
            t0,
            warm_end,
            end: warm_end + cfg.duration,
            alive: 0,
            out: WorkerResult::default(),
        }
    }

    fn run(mut self, streams: Vec<(u64, StdStream)>) -> WorkerResult {
        let mut poll = match Poll::new() {
            Ok(p) => p,
            Err(e) => {
                self.out.errors.add(format!("epoll: {e}"));
                return self.out;
            }
        };
        let mut conns = Vec::with_capacity(streams.len());
        for (id, s) in streams {
            let mut stream = mio::net::TcpStream::from_std(s);
            let token = Token(conns.len());
            if let Err(e) = poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                self.out.errors.add(format!("register: {e}"));
                continue;
            }
            conns.push(Conn {
                stream,
                id,
                tx_off: 0,
                tx_target: 0,
                rx_off: 0,
                inflight: VecDeque::new(),
                alive: true,
            });
        }
        self.alive = conns.len();
        if conns.is_empty() {
            return self.out;
        }
        sleep_until(self.t0);

        if self.rate.is_none() {
            let now = Instant::now();
            for c in conns.iter_mut() {
                for _ in 0..self.cfg.depth {
                    self.queue(c, now);
                }
                self.flush(c);
            }
        }

        let n_conns = conns.len() as u64;
        let mut next_n: u64 = 0;
        let drain_deadline = self.end + DRAIN;
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = match self.rate {
                None => {
                    if now >= self.end || self.alive == 0 {
                        break;
                    }
                    (self.end - now).min(Duration::from_millis(100))
                }
                Some(rate) => {
                    // Send every message whose scheduled time has come; message
                    // n goes to connection n mod N at t0 + n / rate.
                    let mut next_due;
                    loop {
                        next_due = self.t0 + Duration::from_secs_f64(next_n as f64 / rate);
                        if next_due > now || next_due >= self.end {
                            break;
                        }
                        let c = &mut conns[(next_n % n_conns) as usize];
                        next_n += 1;
                        if c.alive {
                            self.queue(c, next_due);
                            self.flush(c);
                        } else if next_due >= self.warm_end {
                            self.out
                                .errors
                                .add("message not sent: its connection had failed");
                        }
                    }
                    if now >= self.end {
                        let waiting = conns.iter().any(|c| c.alive && !c.inflight.is_empty());
                        if !waiting || now >= drain_deadline || self.alive == 0 {
                            break;
                        }
                        (drain_deadline - now).min(Duration::from_millis(100))
                    } else {
                        // Sleep in epoll until 1 ms before the next send, then
                        // spin, so sends leave on time (epoll has ms resolution).
                        let wait = next_due.min(self.end).saturating_duration_since(now);
                        wait.saturating_sub(Duration::from_millis(1))
                    }
                }
            };
            if let Err(e) = poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.out.errors.add(format!("epoll_wait: {e}"));
                break;
            }
            let now = Instant::now();
            for ev in events.iter() {
                let c = &mut conns[ev.token().0];
                if !c.alive {
                    continue;
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.on_readable(c, now);
                }
                if c.alive && ev.is_writable() {
                    self.flush(c);
                }
            }
        }

        if self.rate.is_some() {
            // Coordinated-omission-honest: a measured message that never came
            // back counts with the latency it had reached when we gave up.
            let now = Instant::now();
            for c in &conns {
                for &t in &c.inflight {
                    if t >= self.warm_end && t < self.end {
                        record(&mut self.out.hist, now - t);
                        self.out.errors.add(format!(
                            "message on connection {} unanswered after {:.1} s",
                            c.id,
                            (now - t).as_secs_f64()
                        ));
                    }
                }
            }
        }
        self.out
    }

    fn queue(&mut self, c: &mut Conn, at: Instant) {
        c.tx_target += self.size;
        c.inflight.push_back(at);
    }

    fn fail(&mut self, c: &mut Conn, msg: String) {
        if c.alive {
            c.alive = false;
            self.alive -= 1;
            let _ = c.stream.shutdown(Shutdown::Both);
            self.out.errors.add(msg);
        }
    }

    fn flush(&mut self, c: &mut Conn) {
        while c.alive && c.tx_off < c.tx_target {
            let len = (c.tx_target - c.tx_off).min(CHUNK as u64) as usize;
            let data = self.pattern.slice(c.id, c.tx_off, len);
            match c.stream.write(data) {
                Ok(0) => self.fail(c, format!("connection {}: write returned 0", c.id)),
                Ok(n) => c.tx_off += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.fail(c, format!("connection {}: write: {e}", c.id)),
            }
        }
    }

    fn on_readable(&mut self, c: &mut Conn, now: Instant) {
        while c.alive {
            match c.stream.read(&mut self.scratch) {
                Ok(0) => self.fail(c, format!("connection {}: closed by the server", c.id)),
                Ok(n) => self.consume(c, n, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.fail(c, format!("connection {}: read: {e}", c.id)),
            }
        }
        if c.alive && self.rate.is_none() {
            self.flush(c);
        }
    }

    fn consume(&mut self, c: &mut Conn, n: usize, now: Instant) {
        if c.rx_off + n as u64 > c.tx_off {
            let msg = format!("connection {}: received more bytes than were sent", c.id);
            return self.fail(c, msg);
        }
        let expected = self.pattern.slice(c.id, c.rx_off, n);
        if self.scratch[..n] != *expected {
            let pos = self.scratch[..n]
                .iter()
                .zip(expected)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let msg = format!(
                "connection {}: payload mismatch at stream byte {}",
                c.id,
                c.rx_off + pos as u64
            );
            return self.fail(c, msg);
        }
        let before = c.rx_off / self.size;
        c.rx_off += n as u64;
        let after = c.rx_off / self.size;
        let closed = self.rate.is_none();
        for _ in before..after {
            let Some(t) = c.inflight.pop_front() else {
                let msg = format!("connection {}: answer without a message in flight", c.id);
                return self.fail(c, msg);
            };
            let measured = if closed {
                now >= self.warm_end && now < self.end
            } else {
                t >= self.warm_end && t < self.end
            };
            if measured {
                record(&mut self.out.hist, now.saturating_duration_since(t));
                self.out.messages += 1;
            }
            if closed && now < self.end {
                self.queue(c, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_periodic_and_per_connection() {
        let p = Pattern::new();
        assert_eq!(p.slice(3, 10, 100), p.slice(3, 10 + PERIOD as u64, 100));
        assert_ne!(p.slice(3, 0, 64), p.slice(4, 0, 64));
        assert_ne!(p.slice(3, 0, 64), p.slice(3, 64, 64));
        assert_eq!(p.slice(9, PERIOD as u64 - 5, CHUNK).len(), CHUNK);
    }

    #[test]
    fn echo_against_a_local_echo_thread() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in listener.incoming().take(4) {
                let mut s = s.unwrap();
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut s);
                });
            }
        });
        let cfg = EchoConfig {
            addr,
            conns: 2,
            depth: 4,
            size: 100,
            duration: Duration::from_millis(300),
            warmup: Duration::from_millis(50),
            rate: None,
            threads: 1,
        };
        let r = run_echo(&cfg, &|_| {}).unwrap();
        assert_eq!(r.errors, 0, "{:?}", r.first_error);
        assert!(r.messages > 0);
        let open = EchoConfig {
            rate: Some(2000.0),
            ..cfg
        };
        let r = run_echo(&open, &|_| {}).unwrap();
        assert_eq!(r.errors, 0, "{:?}", r.first_error);
        assert!(r.messages > 400 && r.messages < 800, "{}", r.messages);
    }
}
