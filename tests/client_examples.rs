//! Runs the datagram and client examples' self-tests through `cargo run`, as a
//! user would: UDP echo (reuseport), the round-trip client, the proxy, the pool.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(120);

fn run_ok(example: &str, args: &[&str], expect: &str) -> String {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let mut child = Command::new(env!("CARGO"))
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
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting cargo");
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for cargo") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`cargo run --example {example}` did not finish within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    assert!(
        status.success() && out.contains(expect),
        "{example} {args:?} failed: {status}\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    out
}

#[test]
fn udp_echo_reuseport_self_test() {
    let args = [
        "--addr",
        "udp://127.0.0.1:0",
        "--mode",
        "reuseport",
        "--loops",
        "2",
        "--self-test",
    ];
    let out = run_ok("echo", &args, "ok: 3200 datagrams echoed");
    assert!(out.contains("listening on 127.0.0.1:"), "{out}");
}

#[test]
fn udp_echo_single_self_test() {
    let args = [
        "--addr",
        "udp://127.0.0.1:0",
        "--mode",
        "single",
        "--self-test",
    ];
    run_ok("echo", &args, "ok: 3200 datagrams echoed");
}

#[test]
fn client_round_trips() {
    let args = ["--conns", "200", "--count", "20"];
    let out = run_ok("client", &args, "ok: every connection completed");
    assert!(out.contains("4000 round trips"), "{out}");
}

#[test]
fn proxy_self_test() {
    let args = ["--addr", "127.0.0.1:0", "--loops", "2", "--self-test"];
    run_ok("proxy", &args, "all pairs closed");
}

#[test]
fn pool_spreads_requests() {
    let args = ["--size", "4", "--threads", "8", "--requests", "300"];
    run_ok("pool", &args, "ok: 2400 requests over 4 connections");
}
