//! Helpers shared by the integration tests.
#![allow(dead_code)]

use netloop::{Action, CloseReason, Conn, EventHandler, LoopInfo};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Polls `cond` every 5 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// Tests that count descriptors hold this lock, so that tests running in parallel
/// in the same process do not open descriptors under their feet.
pub static FD_SERIAL: Mutex<()> = Mutex::new(());

/// Takes [`FD_SERIAL`] (ignoring poisoning by a failed test).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    FD_SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Descriptors open in this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// What a [`Recorder`] saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Open(usize),
    Close(usize, String),
    Boot(usize),
    Shutdown(usize),
    Tick(usize),
}

/// An echo handler that records its callbacks.
#[derive(Clone, Default)]
pub struct Recorder {
    pub log: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    pub fn closes(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|s| match s {
                Seen::Close(_, r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }
    pub fn count(&self, f: impl Fn(&Seen) -> bool) -> usize {
        self.log.lock().unwrap().iter().filter(|s| f(s)).count()
    }
}

/// Names a close reason for comparisons.
pub fn reason_name(r: &CloseReason) -> String {
    match r {
        CloseReason::PeerClosed => "peer".into(),
        CloseReason::Reset => "reset".into(),
        CloseReason::Local => "local".into(),
        CloseReason::Handle => "handle".into(),
        CloseReason::Panicked => "panicked".into(),
        CloseReason::EngineStopped => "stopped".into(),
        other => format!("{other}"),
    }
}

impl EventHandler for Recorder {
    type State = ();
    fn on_boot(&mut self, info: &LoopInfo<'_>) -> Action {
        self.log.lock().unwrap().push(Seen::Boot(info.index()));
        Action::None
    }
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        self.log.lock().unwrap().push(Seen::Open(conn.loop_index()));
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        if conn.peek_all() == b"boom" {
            panic!("boom requested");
        }
        let n = conn.buffered();
        let ([a, b], mut w) = conn.split();
        let res = w.writev(&[a, b]);
        conn.discard(n);
        if res.is_err() {
            Action::Close
        } else {
            Action::None
        }
    }
    fn on_close(&mut self, conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        self.log
            .lock()
            .unwrap()
            .push(Seen::Close(conn.loop_index(), reason_name(reason)));
    }
    fn on_tick(&mut self, info: &LoopInfo<'_>) -> (Duration, Action) {
        self.log.lock().unwrap().push(Seen::Tick(info.index()));
        (Duration::from_millis(20), Action::None)
    }
    fn on_shutdown(&mut self, info: &LoopInfo<'_>) {
        self.log.lock().unwrap().push(Seen::Shutdown(info.index()));
    }
}

/// Sends `msg` and reads the same number of bytes back.
pub fn round_trip<S: Read + Write>(s: &mut S, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    back
}

/// Connects with a read timeout so a broken server fails the test instead of hanging it.
pub fn connect(addr: &netloop::Addr) -> TcpStream {
    let s = TcpStream::connect(addr.as_tcp().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// How long an example run may take before it is killed.
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `cargo run --example <example> -- <args>`; returns its status and output.
pub fn run_example(example: &str, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let mut child = std::process::Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "--manifest-path",
            manifest,
            "--example",
            example,
            "--",
        ])
        .args(args)
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting cargo");
    // Drain both pipes on threads so a chatty child can't block on a full pipe.
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + EXAMPLE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for cargo") {
            break status;
        }
        if Instant::now() > deadline {
            // `cargo run` execs the example on Unix, so this kills the example itself.
            let _ = child.kill();
            let _ = child.wait();
            panic!("`cargo run --example {example}` did not finish within {EXAMPLE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    /// The next pseudo-random value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bad input for "never panics" tests: 1 to `max_seeds` seeds concatenated, then
/// up to `max_edits` random byte edits (overwrite, overwrite with a byte from
/// `special`, delete, insert), and on every tenth round up to 3,000 random bytes.
pub fn mutated(
    rng: &mut Rng,
    round: usize,
    seeds: &[&[u8]],
    max_seeds: usize,
    max_edits: usize,
    special: &[u8],
) -> Vec<u8> {
    let mut input = Vec::new();
    for _ in 0..1 + rng.below(max_seeds) {
        input.extend_from_slice(seeds[rng.below(seeds.len())]);
    }
    for _ in 0..rng.below(max_edits) {
        let i = rng.below(input.len());
        match rng.below(4) {
            0 => input[i] = rng.next() as u8,
            1 => input[i] = special[rng.below(special.len())],
            2 => {
                input.remove(i);
            }
            _ => input.insert(i, rng.next() as u8),
        }
    }
    if round % 10 == 0 {
        input.extend((0..rng.below(3000)).map(|_| rng.next() as u8));
    }
    input
}

/// Wraps a handler and counts connections closed because a callback panicked.
pub struct Watch<H> {
    pub inner: H,
    pub panics: Arc<AtomicUsize>,
}

impl<H: EventHandler> EventHandler for Watch<H> {
    type State = H::State;
    fn on_open(&mut self, conn: &mut Conn<'_, H::State>) -> Action {
        self.inner.on_open(conn)
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, H::State>) -> Action {
        self.inner.on_traffic(conn)
    }
    fn on_close(&mut self, conn: &mut Conn<'_, H::State>, reason: &CloseReason) {
        if matches!(reason, CloseReason::Panicked) {
            self.panics.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.on_close(conn, reason)
    }
    fn on_tick(&mut self, info: &LoopInfo<'_>) -> (Duration, Action) {
        self.inner.on_tick(info)
    }
}
