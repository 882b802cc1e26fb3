//! Runs the datagram and client examples' self-tests through `cargo run`, as a
//! user would: UDP echo (reuseport), the round-trip client, the proxy, the pool.

mod support;

use support::run_example;

fn run_ok(example: &str, args: &[&str], expect: &str) -> String {
    let (status, out, err) = run_example(example, args);
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
