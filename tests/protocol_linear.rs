//! The protocol parsers cost time linear in a request's size however it is
//! split: each test times the same shape of input at two sizes (8x apart),
//! fed in tiny pieces the way a hostile client sends it, and bounds the ratio
//! of the time per byte. A parser that re-parses what is buffered on every
//! read is quadratic: its time per byte grows 8x between the sizes; a linear
//! one stays near 1x. The bound (3.5x) leaves room for a noisy machine.
//!
//! Before the streaming parsers each of these failed: every 6-byte write to
//! a half-received chunked body or RESP array re-scanned everything buffered.

use std::time::{Duration, Instant};

use netloop::protocol::resp::{Replies, RespSession, Store};

const BOUND: f64 = 3.5;

/// Feeds `src` in `step`-byte pieces like the engine glue does (unconsumed
/// input stays and is offered again with the new bytes); `run` is one
/// parser call returning how many bytes it consumed.
fn feed(src: &[u8], step: usize, mut run: impl FnMut(&[u8]) -> usize) {
    let mut inbound = Vec::new();
    for piece in src.chunks(step) {
        inbound.extend_from_slice(piece);
        let n = run(&inbound);
        inbound.drain(..n);
    }
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (ns;
/// updated at scheduler ticks, a few ms apart). Wall time would count the
/// time other work on a busy machine preempts the test, which grows with the
/// length of a run and so skews a ratio of two sizes.
fn thread_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    Duration::from_nanos(s.split_whitespace().next().unwrap().parse().unwrap())
}

/// The least CPU time of three runs of `f` repeated `reps` times.
fn best_of(reps: usize, mut f: impl FnMut()) -> Duration {
    (0..3)
        .map(|_| {
            let t = thread_cpu();
            for _ in 0..reps {
                f();
            }
            thread_cpu() - t
        })
        .min()
        .unwrap()
}

/// Time per byte at `big` over time per byte at `small`; each is
/// (bytes processed in all repetitions, CPU time).
fn per_byte_ratio(small: (usize, Duration), big: (usize, Duration)) -> f64 {
    let per = |(bytes, t): (usize, Duration)| t.as_secs_f64() / bytes as f64;
    per(big) / per(small)
}

#[cfg(feature = "http")]
mod http {
    use super::*;
    use netloop::protocol::http::{Limits, Request, Response, Session};

    fn answer_len(req: &Request<'_>, resp: &mut Response) {
        resp.set_body(req.body().len().to_string().as_bytes());
    }

    /// Runs `src` through a fresh session in `step`-byte pieces; returns the
    /// output (checked by the caller).
    fn session_run(src: &[u8], step: usize, limits: &Limits) -> Vec<u8> {
        let mut session = Session::new(limits.clone());
        let mut out = Vec::new();
        let date = b"Thu, 26 Nov 2026 15:42:58 GMT";
        feed(src, step, |input| {
            session
                .on_bytes(input, date, &mut out, &mut answer_len)
                .expect("valid request")
                .consumed
        });
        out
    }

    fn one_byte_chunks(n: usize) -> Vec<u8> {
        let mut src =
            b"POST /len HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        src.extend_from_slice(&b"1\r\nx\r\n".repeat(n));
        src.extend_from_slice(b"0\r\n\r\n");
        src
    }

    #[test]
    fn chunked_body_in_six_byte_writes_is_linear() {
        let limits = Limits::default();
        // The small size repeated 8 times: both measure the same bytes.
        let time = |n: usize, reps: usize| {
            let src = one_byte_chunks(n);
            let t = best_of(reps, || {
                let out = session_run(&src, 6, &limits);
                assert!(out.ends_with(n.to_string().as_bytes()));
            });
            (src.len() * reps, t)
        };
        let ratio = per_byte_ratio(time(4_000, 8), time(32_000, 1));
        assert!(
            ratio < BOUND,
            "time per byte grew {ratio:.2}x from 4k to 32k chunks"
        );
    }

    #[test]
    fn head_in_one_byte_writes_is_linear() {
        let limits = Limits {
            max_header_bytes: 128 * 1024,
            ..Limits::default()
        };
        let time = |len: usize, reps: usize| {
            let src = format!(
                "GET /len HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n",
                "p".repeat(len)
            );
            let t = best_of(reps, || {
                let out = session_run(src.as_bytes(), 1, &limits);
                assert!(out.starts_with(b"HTTP/1.1 200 OK"));
            });
            (src.len() * reps, t)
        };
        let ratio = per_byte_ratio(time(8_000, 8), time(64_000, 1));
        assert!(
            ratio < BOUND,
            "time per byte grew {ratio:.2}x from 8 to 64 KB heads"
        );
    }
}

/// A RESP array of `n` one-byte arguments, fed 6 bytes at a time.
#[test]
fn resp_array_in_six_byte_writes_is_linear() {
    let time = |n: usize, reps: usize| {
        let mut src = format!("*{}\r\n$3\r\nDEL\r\n", n + 1).into_bytes();
        src.extend_from_slice(&b"$1\r\nk\r\n".repeat(n));
        let t = best_of(reps, || {
            let mut session = RespSession::default();
            let mut store = Store::new();
            let mut out = Replies::default();
            let now = Instant::now();
            feed(&src, 6, |input| {
                session
                    .on_bytes(input, &mut out, &mut store, now)
                    .expect("valid command")
                    .consumed
            });
            assert_eq!(out.to_bytes(), b":0\r\n");
        });
        (src.len() * reps, t)
    };
    let ratio = per_byte_ratio(time(10_000, 8), time(80_000, 1));
    assert!(
        ratio < BOUND,
        "time per byte grew {ratio:.2}x from 10k to 80k elements"
    );
}
