//! Memory after hostile clients: once they are idle, and again once they are
//! gone, the process's resident memory is back within 10% of its baseline.
//!
//! Before: the RESP argument buffer kept its peak per connection (20 idle
//! connections after one 600,000-argument command each held 190 MiB), and a
//! client pipelining without reading made the server queue every answer.
#![cfg(feature = "http")]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use support::*;

use netloop::protocol::http::{techempower, HttpServer};
use netloop::protocol::resp::{RedisServer, StoreMode};
use netloop::Engine;

fn start_http() -> (Engine, SocketAddr) {
    let mut builder = engine_builder();
    // Small kernel buffers: a client that does not read blocks sooner.
    builder.options_mut().socket_send_buffer = Some(64 * 1024);
    let engine = builder
        .loops(1)
        .ticker(true)
        .listen("127.0.0.1:0")
        .start(|_| HttpServer::new(techempower))
        .expect("engine starts");
    let addr = tcp_addr(&engine);
    (engine, addr)
}

fn start_resp() -> (Engine, SocketAddr) {
    let engine = engine_builder()
        .loops(1)
        .listen("127.0.0.1:0")
        .start(RedisServer::factory(StoreMode::Shared))
        .expect("engine starts");
    let addr = tcp_addr(&engine);
    (engine, addr)
}

/// A `DEL` with `n` keys (a large multibulk command).
fn big_del(n: usize) -> Vec<u8> {
    let mut v = format!("*{}\r\n$3\r\nDEL\r\n", n + 1).into_bytes();
    for i in 0..n {
        let k = format!("key:{i:08}");
        v.extend_from_slice(format!("${}\r\n{k}\r\n", k.len()).as_bytes());
    }
    v
}

/// Sends `req` and reads until `want` bytes came back. (No helper thread:
/// the server takes the command in as it arrives, and a thread's cached
/// stack would show in this process's memory.)
fn exchange(c: &mut TcpStream, req: &[u8], want: usize) {
    c.write_all(req).unwrap();
    let mut got = vec![0u8; want];
    c.read_exact(&mut got).unwrap();
}

/// Pipelines `bytes` of GET requests without reading, as far as the server
/// takes them; the connection is returned unread.
fn pipeline_without_reading(addr: SocketAddr, bytes: usize) -> TcpStream {
    let c = connect(addr);
    let sock = socket2::SockRef::from(&c);
    sock.set_send_buffer_size(64 * 1024).unwrap();
    sock.set_recv_buffer_size(64 * 1024).unwrap();
    c.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let batch = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n".repeat(1000);
    let mut sent = 0;
    let mut w = &c;
    while sent < bytes {
        match w.write(&batch[sent % batch.len()..]) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    c
}

fn mib(b: usize) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// One round of hostile clients: 20 RESP clients that each send a
/// 25,000-argument command and then stay connected, idle; 4 HTTP clients
/// that pipeline up to 16 MiB of requests each without reading, then leave.
/// Returns the idle RESP connections.
fn hostile_round(resp_addr: SocketAddr, http: &Engine, http_addr: SocketAddr) -> Vec<TcpStream> {
    let cmd = big_del(25_000);
    let idle: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = connect(resp_addr);
            exchange(&mut c, &cmd, 4);
            c
        })
        .collect();
    drop(cmd);
    let hogs: Vec<TcpStream> = (0..4)
        .map(|_| pipeline_without_reading(http_addr, 16 << 20))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    drop(hogs);
    assert!(wait_no_connections(&http.handle(), Duration::from_secs(10)));
    idle
}

/// Set in the child process that runs the measurement.
const CHILD: &str = "NETLOOP_PROTOCOL_MEMORY_CHILD";

/// Runs the measurement in a child process whose allocator returns freed
/// memory promptly: glibc's malloc otherwise raises its mmap and trim
/// thresholds after the first large free and keeps up to twice that much
/// freed memory per arena — memory the servers gave back, which RSS would
/// still count. Fixed thresholds (the `MALLOC_*_` variables) make RSS show
/// what the servers hold.
#[test]
fn memory_returns_to_baseline_after_hostile_clients() {
    if std::env::var_os(CHILD).is_some() {
        return measure();
    }
    let _serial = serial();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "memory_returns_to_baseline_after_hostile_clients",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("MALLOC_MMAP_THRESHOLD_", "131072")
        .env("MALLOC_TRIM_THRESHOLD_", "131072")
        .output()
        .expect("the test binary runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}");
    assert!(out.status.success(), "the measurement failed");
    assert!(
        text.contains("rss: baseline"),
        "the measurement did not run"
    );
}

fn measure() {
    let (http, http_addr) = start_http();
    let (resp, resp_addr) = start_resp();
    // One round first, so the baseline holds what the allocator and the
    // engine's buffer pools keep once they have seen this traffic at all.
    drop(hostile_round(resp_addr, &http, http_addr));
    assert!(wait_no_connections(&resp.handle(), Duration::from_secs(10)));
    let baseline = rss_bytes();

    let mut idle = hostile_round(resp_addr, &http, http_addr);
    // The idle RESP connections still answer, and hold no argument buffer.
    for c in &mut idle {
        c.write_all(b"PING\r\n").unwrap();
        let mut pong = [0u8; 7];
        c.read_exact(&mut pong).unwrap();
    }
    let with_idle = rss_bytes();
    drop(idle);
    assert!(wait_no_connections(&resp.handle(), Duration::from_secs(10)));
    drop(hostile_round(resp_addr, &http, http_addr));
    assert!(wait_no_connections(&resp.handle(), Duration::from_secs(10)));
    let after = rss_bytes();
    eprintln!(
        "rss: baseline {:.1} MiB, with 20 idle RESP clients after their 25k-argument commands {:.1} MiB, after two more rounds {:.1} MiB",
        mib(baseline),
        mib(with_idle),
        mib(after)
    );
    for (what, rss) in [("with idle clients", with_idle), ("after", after)] {
        assert!(
            (rss as f64) < baseline as f64 * 1.10,
            "{what}: {:.1} MiB vs baseline {:.1} MiB",
            mib(rss),
            mib(baseline)
        );
    }
    http.stop();
    resp.stop();
}
