//! Helpers shared by the `flow_*` fault tests: deadlines, process probes
//! (descriptors, CPU time, RSS) and loopback clients.
#![allow(dead_code)]

use netloop::{Addr, Engine, EngineHandle};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `f` on its own thread and fails the test if it is not done in `secs`.
pub fn deadline<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("sent nothing but returned"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test exceeded its {secs} s deadline"),
    }
}

/// Polls `cond` every 5 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Descriptors this process has open.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// User + system CPU time of this process (from `/proc/self/stat`, in clock ticks
/// of 10 ms).
pub fn cpu_time() -> Duration {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Resident set size of this process.
pub fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    s.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 4096
}

/// The engine's TCP address.
pub fn tcp_addr(engine: &Engine) -> SocketAddr {
    match engine.local_addr() {
        Addr::Tcp(sa) => *sa,
        other => panic!("not tcp: {other}"),
    }
}

/// A blocking loopback client with a read timeout.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends `msg` and reads back exactly as many bytes (an echo round trip); returns
/// how long it took.
pub fn round_trip(addr: SocketAddr, msg: &[u8]) -> Duration {
    let t = Instant::now();
    let mut s = connect(addr);
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
    t.elapsed()
}

/// Waits until the engine reports no open connection.
pub fn wait_no_connections(h: &EngineHandle, timeout: Duration) -> bool {
    wait_until(timeout, || h.connection_count() == 0)
}

/// Reads until end-of-file or an error; returns the bytes and whether it ended
/// with a clean end-of-file.
pub fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs the tests of one file one at a time, so process-wide probes (CPU time,
/// RSS, descriptor counts) see only the test that reads them.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// What each open descriptor points at (for diagnosing a leak).
pub fn fd_targets() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
