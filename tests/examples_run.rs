//! Runs the examples' self-tests through `cargo run`, as a user would.
//!
//! Nothing is built here: the examples are compiled by the `cargo run` each test
//! starts (already up to date after `cargo test` built them). Each run is killed if
//! it takes longer than two minutes (`support::run_example`).

mod support;

use support::run_example;

fn assert_ok(example: &str, args: &[&str], expect: &str) -> String {
    let (status, out, err) = run_example(example, args);
    assert!(
        status.success() && out.contains(expect),
        "{example} {args:?} failed: {status}\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    assert!(
        out.contains("listening on 127.0.0.1:"),
        "{example}: no `listening on` line in\n{out}"
    );
    out
}

#[test]
fn broadcast_self_test() {
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--clients",
        "200",
        "--rounds",
        "3",
        "--interval-ms",
        "100",
    ];
    assert_ok("broadcast", &args, "ok: 200 clients x 3 rounds");
}

#[test]
fn worker_pool_self_test_mostly_busy() {
    // Two workers and a queue of 8 against 16 pipelining clients: many BUSY
    // replies, which must still come back in request order.
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--self-test",
        "--workers",
        "2",
        "--queue",
        "8",
    ];
    assert_ok("worker_pool", &args, "replies in order");
}

#[test]
fn worker_pool_self_test_no_busy() {
    // A queue big enough for everything and a small in-flight cap: every request
    // gets a real result, and connections stall and are woken repeatedly.
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--self-test",
        "--loops",
        "2",
        "--workers",
        "4",
        "--queue",
        "10000",
        "--max-inflight",
        "4",
        "--work-ms",
        "0",
    ];
    let out = assert_ok("worker_pool", &args, "replies in order");
    assert!(
        out.contains("(4800 results, 0 busy)"),
        "expected no BUSY reply:\n{out}"
    );
}
