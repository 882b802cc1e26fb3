//! The HTTP server against hostile clients: bodies the limits allow but the
//! engine's inbound cap does not, pipelining without reading, slowloris.
#![cfg(feature = "http")]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::*;

use netloop::protocol::http::{techempower, HttpServer, HttpTimeouts, Limits, Request, Response};
use netloop::Engine;

/// `/len` answers the body's length; everything else is TechEmpower.
fn app(req: &Request<'_>, resp: &mut Response) {
    if req.path_only() == "/len" {
        resp.set_body(req.body().len().to_string().as_bytes());
    } else {
        techempower(req, resp);
    }
}

fn start(limits: Limits, timeouts: HttpTimeouts) -> (Engine, SocketAddr) {
    let engine = engine_builder()
        .loops(1)
        .ticker(true)
        .listen("127.0.0.1:0")
        .start(move |_| HttpServer::with_limits(app, limits.clone()).with_timeouts(timeouts))
        .expect("engine starts");
    let addr = tcp_addr(&engine);
    (engine, addr)
}

/// Writes `req` from another thread (the server answers while it is still
/// being sent) and reads one response: (status line, body).
fn upload(addr: SocketAddr, req: Vec<u8>) -> (String, String) {
    let mut c = connect(addr);
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&req);
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let (status, body) = loop {
        let n = c.read(&mut buf).expect("a response, not silence");
        assert!(n > 0, "closed without a response");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + len {
                let status = text.lines().next().unwrap().to_string();
                break (status, text[end + 4..end + 4 + len].to_string());
            }
        }
    };
    writer.join().unwrap();
    (status, body)
}

fn chunked_head() -> Vec<u8> {
    b"POST /len HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
}

/// Before: no reply, ever — the 6 MiB of wire bytes stopped at the engine's
/// 4 MiB inbound cap while the parser waited for the whole body.
#[test]
fn mebibyte_body_of_one_byte_chunks_is_answered() {
    let (engine, addr) = start(Limits::default(), HttpTimeouts::default());
    let mut req = chunked_head();
    req.extend_from_slice(&b"1\r\nx\r\n".repeat(1 << 20));
    req.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = deadline(120, move || upload(addr, req));
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, (1 << 20).to_string());
    engine.stop();
}

/// Before: no reply — a ~4.2 MB body padded with chunk extensions the limits
/// allowed sat under the engine's inbound cap.
#[test]
fn body_with_long_chunk_extensions_is_answered() {
    let limits = Limits {
        max_chunk_ext_bytes: 8 << 20,
        ..Limits::default()
    };
    let (engine, addr) = start(limits, HttpTimeouts::default());
    let mut req = chunked_head();
    let ext = format!(";{}", "e".repeat(4000));
    for _ in 0..1050 {
        req.extend_from_slice(format!("1{ext}\r\nx\r\n").as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    assert!(req.len() > 4_200_000);
    let (status, body) = deadline(120, move || upload(addr, req));
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, "1050");
    engine.stop();
}

/// With the default limits the same padding is refused with 413 — readable
/// by a client still uploading only once the engine lingers on close.
#[test]
fn chunk_extension_padding_past_the_limit_gets_413() {
    let (engine, addr) = start(Limits::default(), HttpTimeouts::default());
    let mut req = chunked_head();
    let ext = format!(";{}", "e".repeat(4000));
    for _ in 0..1050 {
        req.extend_from_slice(format!("1{ext}\r\nx\r\n").as_bytes());
    }
    let (status, _) = deadline(60, move || upload(addr, req));
    assert_eq!(status, "HTTP/1.1 413 Content Too Large");
    engine.stop();
}

/// A `Content-Length` over the limit while the client keeps uploading: the
/// 413 must reach it (needs the engine's lingering close).
#[test]
fn rejected_upload_reads_413_not_reset() {
    let limits = Limits {
        max_body_bytes: 1000,
        ..Limits::default()
    };
    let (engine, addr) = start(limits, HttpTimeouts::default());
    let mut req = b"POST /len HTTP/1.1\r\nHost: t\r\nContent-Length: 8000000\r\n\r\n".to_vec();
    req.extend_from_slice(&vec![b'z'; 8_000_000]);
    let (status, _) = deadline(60, move || upload(addr, req));
    assert_eq!(status, "HTTP/1.1 413 Content Too Large");
    engine.stop();
}

/// Before: a client that pipelines and never reads made the server queue
/// every answer (hundreds of MiB). Now the server stops reading it once its
/// output is above the high water mark, and serves the rest once it reads.
#[test]
fn pipelining_without_reading_is_bounded_then_served() {
    let (engine, addr) = start(Limits::default(), HttpTimeouts::default());
    let c = connect(addr);
    let sock = socket2::SockRef::from(&c);
    sock.set_send_buffer_size(64 * 1024).unwrap();
    sock.set_recv_buffer_size(64 * 1024).unwrap();
    c.set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let req = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n";
    let batch = req.repeat(1024);
    let cap = 32 << 20;
    let mut sent = 0usize;
    let mut w = &c;
    // Write until the server stops taking bytes (or the cap).
    while sent < cap {
        match w.write(&batch[sent % batch.len()..]) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(sent < cap, "the server kept reading {sent} bytes");
    let h = engine.handle();
    std::thread::sleep(Duration::from_millis(200));
    let stats = h.stats();
    assert!(
        stats.total.queued_out_bytes < 1 << 20,
        "outbound {} bytes",
        stats.total.queued_out_bytes
    );
    assert!(
        stats.total.buffered_in_bytes < 1 << 20,
        "inbound {} bytes",
        stats.total.buffered_in_bytes
    );
    // Complete the last request, then read every answer.
    let partial = sent % req.len();
    let mut w = &c;
    c.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let reader = {
        let mut r = c.try_clone().unwrap();
        let want = sent.div_ceil(req.len());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let mut seen = 0usize;
            let mut tail = Vec::new();
            while seen < want {
                let n = r.read(&mut buf).expect("answers keep coming");
                assert!(n > 0, "closed after {seen} answers");
                tail.extend_from_slice(&buf[..n]);
                let pat = b"HTTP/1.1 200 OK";
                seen += tail.windows(pat.len()).filter(|w| w == pat).count();
                // Keep one byte short of a match: a status line may straddle
                // two reads, and no match is counted twice.
                let drop = tail.len().saturating_sub(pat.len() - 1);
                tail.drain(..drop);
            }
            seen
        })
    };
    if partial > 0 {
        w.write_all(&req[partial..]).unwrap();
    }
    let answered = deadline(120, move || reader.join().unwrap());
    assert_eq!(answered, sent.div_ceil(req.len()));
    engine.stop();
}

/// Before: 500 connections sending one header byte per second were never
/// closed. Now the head deadline answers them `408` and closes them, and
/// closes a connection that sends nothing (without a word), a body that stops
/// arriving and an idle keep-alive.
#[test]
fn slowloris_and_stalled_peers_are_closed_by_the_timers() {
    let timeouts = HttpTimeouts {
        head: Some(Duration::from_millis(300)),
        body_progress: Some(Duration::from_millis(300)),
        keep_alive: Some(Duration::from_millis(600)),
    };
    let (engine, addr) = start(Limits::default(), timeouts);
    let start = Instant::now();
    // Slowloris: one byte every 50 ms, forever.
    let mut lorises: Vec<TcpStream> = (0..20).map(|_| connect(addr)).collect();
    let silent = connect(addr);
    let mut body = connect(addr);
    body.write_all(b"POST /len HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let mut idle = connect(addr);
    idle.write_all(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = b"GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    let mut alive = lorises.len();
    for i in 0..60 {
        for l in &mut lorises {
            if l.write_all(&head[i % head.len()..][..1]).is_err() {
                continue;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        alive = engine.handle().connection_count();
        if alive == 0 {
            break;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(alive, 0, "connections still open after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    for l in &mut lorises {
        let (got, _) = read_to_end(l);
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    }
    let mut silent = silent;
    assert_eq!(read_to_end(&mut silent).0, b"");
    // The idle one got its answer before it was closed.
    let (got, _) = read_to_end(&mut idle);
    assert!(got.starts_with(b"HTTP/1.1 200 OK"));
    let (got, _) = read_to_end(&mut body);
    assert!(got.is_empty());
    assert!(engine.handle().stats().total.closed.timeout >= 23);
    engine.stop();
}
