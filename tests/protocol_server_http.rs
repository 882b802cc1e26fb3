//! End-to-end tests of `protocol::http::HttpServer` on a real engine, over
//! raw TCP (and through `curl` when it is installed).
#![cfg(feature = "http")]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{engine_builder, mutated, Rng, Watch};

use netloop::protocol::http::{techempower, HttpServer, Limits, Request, Response};
use netloop::{Addr, Engine};

/// TechEmpower routes plus `/echo`, which answers the request body.
fn app(req: &Request<'_>, resp: &mut Response) {
    if req.path_only() == "/echo" {
        resp.header("Content-Type", "application/octet-stream")
            .set_body(req.body());
    } else {
        techempower(req, resp);
    }
}

struct Server {
    engine: Engine,
    addr: SocketAddr,
    panics: Arc<AtomicUsize>,
}

impl Server {
    fn start(limits: Limits) -> Server {
        let panics = Arc::new(AtomicUsize::new(0));
        let p = panics.clone();
        let engine = engine_builder()
            .loops(2)
            .ticker(true)
            .listen("127.0.0.1:0")
            .start(move |_| Watch {
                inner: HttpServer::with_limits(app, limits.clone()),
                panics: p.clone(),
            })
            .expect("engine starts");
        let addr = match engine.local_addr() {
            Addr::Tcp(a) => *a,
            other => panic!("unexpected address {other}"),
        };
        Server {
            engine,
            addr,
            panics,
        }
    }

    fn connect(&self) -> BufReader<TcpStream> {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        BufReader::new(s)
    }

    fn finish(self) {
        assert_eq!(self.panics.load(Ordering::SeqCst), 0, "a handler panicked");
        self.engine.stop();
    }
}

fn send(c: &mut BufReader<TcpStream>, bytes: &[u8]) {
    c.get_mut().write_all(bytes).expect("write");
}

/// A parsed response: status, lower-cased headers, body.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (with a `Content-Length` body, or none for 1xx).
fn read_response(c: &mut BufReader<TcpStream>) -> Resp {
    let mut line = String::new();
    c.read_line(&mut line).expect("status line");
    assert!(line.starts_with("HTTP/1.1 "), "bad status line {line:?}");
    let status: u16 = line[9..12].parse().expect("status code");
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        c.read_line(&mut h).expect("header line");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':').expect("header colon");
        headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut r = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if status >= 200 {
        let len: usize = r
            .header("content-length")
            .expect("content-length")
            .parse()
            .unwrap();
        r.body = vec![0; len];
        c.read_exact(&mut r.body).expect("body");
    }
    r
}

/// Asserts the server closes the connection (EOF, or a reset).
fn assert_closed(c: &mut BufReader<TcpStream>) {
    let mut rest = Vec::new();
    match c.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "unexpected bytes {rest:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

#[test]
fn keep_alive_serves_many_requests() {
    let srv = Server::start(Limits::default());
    let mut c = srv.connect();
    for i in 0..20 {
        let path = if i % 2 == 0 { "/plaintext" } else { "/json" };
        send(
            &mut c,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
        let r = read_response(&mut c);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), None);
        assert_eq!(r.header("server"), Some("netloop"));
        assert_eq!(r.header("date").map(str::len), Some(29));
        if i % 2 == 0 {
            assert_eq!(r.body, b"Hello, World!");
            assert_eq!(r.header("content-type"), Some("text/plain"));
        } else {
            assert_eq!(r.body, br#"{"message":"Hello, World!"}"#);
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
    }
    let mut c2 = srv.connect();
    send(&mut c2, b"GET /missing HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(read_response(&mut c2).status, 404);
    srv.finish();
}

#[test]
fn pipelined_16_answered_in_order() {
    let srv = Server::start(Limits::default());
    let mut c = srv.connect();
    let mut batch = Vec::new();
    for i in 0..16 {
        if i % 3 == 0 {
            let body = format!("req-{i}");
            batch.extend_from_slice(
                format!(
                    "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        } else {
            let path = if i % 3 == 1 { "/plaintext" } else { "/json" };
            batch.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        }
    }
    // Twice: once in one write, once byte-split in awkward places.
    send(&mut c, &batch);
    for round in 0..2 {
        for i in 0..16 {
            let r = read_response(&mut c);
            assert_eq!(r.status, 200, "round {round} response {i}");
            let want: Vec<u8> = match i % 3 {
                0 => format!("req-{i}").into_bytes(),
                1 => b"Hello, World!".to_vec(),
                _ => br#"{"message":"Hello, World!"}"#.to_vec(),
            };
            assert_eq!(r.body, want, "round {round} response {i}");
        }
        if round == 0 {
            for piece in batch.chunks(37) {
                send(&mut c, piece);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    srv.finish();
}

/// Far more pipelined requests than the water marks hold, sent before any
/// answer is read: the server stops reading while its output backs up and —
/// through the `Watch` wrapper, which must forward `on_writable_changed` —
/// resumes once it drains, so every request is answered.
#[test]
fn pipelined_past_the_water_marks_all_answered() {
    let srv = Server::start(Limits::default());
    let c = srv.connect();
    let n = 100_000;
    let mut w = c.get_ref().try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let req = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n".repeat(n);
        w.write_all(&req).expect("write");
    });
    // Nothing is read until the server's output has backed up.
    let backed_up = || srv.engine.handle().stats().total.queued_out_bytes > 0;
    assert!(support::wait_until(Duration::from_secs(10), backed_up));
    let mut r = c.into_inner();
    let (mut seen, mut carry) = (0, Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    while seen < n {
        let got = r.read(&mut buf).expect("answers stalled");
        assert!(got > 0, "closed after {seen} answers");
        carry.extend_from_slice(&buf[..got]);
        let text = b"Hello, World!";
        let mut last = 0;
        for i in 0..carry.len().saturating_sub(text.len() - 1) {
            if carry[i..].starts_with(text) {
                seen += 1;
                last = i + text.len();
            }
        }
        carry.drain(..last.max(carry.len().saturating_sub(text.len() - 1)));
    }
    assert_eq!(seen, n);
    writer.join().unwrap();
    srv.finish();
}

#[test]
fn chunked_upload() {
    let srv = Server::start(Limits::default());
    let mut c = srv.connect();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    send(
        &mut c,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for chunk in data.chunks(7000) {
        send(&mut c, format!("{:x}\r\n", chunk.len()).as_bytes());
        send(&mut c, chunk);
        send(&mut c, b"\r\n");
    }
    send(&mut c, b"0\r\n\r\n");
    let r = read_response(&mut c);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    // The connection is still usable.
    send(&mut c, b"GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(read_response(&mut c).body, b"Hello, World!");
    srv.finish();
}

#[test]
fn expect_100_continue() {
    let srv = Server::start(Limits::default());
    let mut c = srv.connect();
    send(
        &mut c,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    let interim = read_response(&mut c);
    assert_eq!(interim.status, 100);
    send(&mut c, b"hel");
    std::thread::sleep(Duration::from_millis(20));
    send(&mut c, b"lo");
    let r = read_response(&mut c);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    srv.finish();
}

#[test]
fn http10_and_connection_close() {
    let srv = Server::start(Limits::default());
    let mut c = srv.connect();
    send(&mut c, b"GET /plaintext HTTP/1.0\r\n\r\n");
    let r = read_response(&mut c);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert_closed(&mut c);

    // `Connection: close` in a pipeline: later requests are ignored.
    let mut c = srv.connect();
    send(
        &mut c,
        b"GET /json HTTP/1.1\r\nHost: h\r\n\r\nGET /json HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /json HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert_eq!(read_response(&mut c).header("connection"), None);
    assert_eq!(read_response(&mut c).header("connection"), Some("close"));
    assert_closed(&mut c);
    srv.finish();
}

/// RFC 9110/9112 conformance on the wire. Before: unknown methods and a
/// missing or duplicated `Host` were answered 200, HTTP/1.0 with
/// `Transfer-Encoding` stayed open, `chunked, identity` got 501 and an
/// HTTP/1.0 keep-alive response did not say so.
#[test]
fn rfc9112_conformance_over_the_wire() {
    let srv = Server::start(Limits::default());
    // An unknown method: 501, and the connection goes on (its body is
    // skipped by its framing).
    let mut c = srv.connect();
    send(
        &mut c,
        b"BREW /pot HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nteaFOO / HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert_eq!(read_response(&mut c).status, 501);
    assert_eq!(read_response(&mut c).status, 501);
    // A known method the route does not take: 405 with `Allow`.
    send(
        &mut c,
        b"DELETE /plaintext HTTP/1.1\r\nHost: h\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let r = read_response(&mut c);
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(read_response(&mut c).body, b"Hello, World!");
    drop(c);

    // Rejected requests: the status, `Connection: close`, then end of stream.
    let rejected: &[(&[u8], u16)] = &[
        (b"GET /plaintext HTTP/1.1\r\n\r\n", 400),
        (b"GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /plaintext HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400),
        (
            b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
    ];
    for (req, status) in rejected {
        let mut c = srv.connect();
        send(&mut c, req);
        let r = read_response(&mut c);
        assert_eq!(r.status, *status, "for {:?}", String::from_utf8_lossy(req));
        assert_eq!(r.header("connection"), Some("close"));
        assert_closed(&mut c);
    }

    // HTTP/1.0 asking to keep alive is told so, and stays open.
    let mut c = srv.connect();
    send(
        &mut c,
        b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    let r = read_response(&mut c);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    send(
        &mut c,
        b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    assert_eq!(read_response(&mut c).body, b"Hello, World!");
    // HTTP/1.0 with Transfer-Encoding: answered, then closed even though it
    // asked to keep alive (RFC 9112 §6.1).
    send(
        &mut c,
        b"POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    );
    let r = read_response(&mut c);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
    assert_eq!(r.header("connection"), Some("close"));
    assert_closed(&mut c);
    drop(c);
    srv.finish();
}

#[test]
fn errors_answer_then_close() {
    let limits = Limits {
        max_body_bytes: 1000,
        max_header_bytes: 2048,
        ..Limits::default()
    };
    let srv = Server::start(limits);
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
        "a".repeat(4000)
    );
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n".to_vec(),
            413,
        ),
        (big_header.into_bytes(), 431),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            501,
        ),
    ];
    for (req, status) in cases {
        let mut c = srv.connect();
        // A good request first: its response precedes the error's.
        send(&mut c, b"GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n");
        send(&mut c, &req);
        assert_eq!(read_response(&mut c).status, 200);
        let r = read_response(&mut c);
        assert_eq!(r.status, status, "for {:?}", String::from_utf8_lossy(&req));
        assert_eq!(r.header("connection"), Some("close"));
        assert_closed(&mut c);
    }
    // A chunked body over the limit.
    let mut c = srv.connect();
    let mut req = b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..2 {
        req.extend_from_slice(b"258\r\n");
        req.extend_from_slice(&[b'z'; 600]);
        req.extend_from_slice(b"\r\n");
    }
    // The server may reject (and close) before it has read everything.
    let _ = c.get_mut().write_all(&req);
    assert_eq!(read_response(&mut c).status, 413);
    assert_closed(&mut c);
    srv.finish();
}

/// A small deterministic generator (xorshift64*).

#[test]
fn malformed_input_never_panics() {
    let srv = Server::start(Limits {
        max_body_bytes: 4096,
        ..Limits::default()
    });
    let seeds: &[&[u8]] = &[
        b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"PUT /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..200 {
        let input = mutated(&mut rng, round, seeds, 3, 8, b"\r\n:; \0\x7f9fF-");
        let mut c = srv.connect();
        c.get_ref()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let _ = c.get_mut().write_all(&input);
        let _ = c.get_ref().shutdown(Shutdown::Write);
        // Whatever comes back, the server must answer or close, not hang.
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
    }
    // Still serving.
    let mut c = srv.connect();
    send(&mut c, b"GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(read_response(&mut c).body, b"Hello, World!");
    srv.finish();
}

fn have(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn curl_keep_alive_and_chunked_upload() {
    if !have("curl") {
        println!("note: curl not on PATH, skipping (apt-get install curl)");
        return;
    }
    let srv = Server::start(Limits::default());
    let base = format!("http://{}", srv.addr);
    // Two URLs in one invocation: curl reuses the connection.
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--http1.1",
            "--max-time",
            "10",
            "-w",
            " connects=%{num_connects}\\n",
        ])
        .arg(format!("{base}/plaintext"))
        .arg(format!("{base}/json"))
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "Hello, World! connects=1\n{\"message\":\"Hello, World!\"} connects=0\n"
    );

    let dir = std::env::temp_dir().join(format!("netloop-curl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("upload.bin");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    for extra in [&[][..], &["-H", "Expect: 100-continue"][..]] {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--http1.1", "--max-time", "10"])
            .args([
                "-H",
                "Transfer-Encoding: chunked",
                "-H",
                "Content-Type: application/octet-stream",
            ])
            .args(extra)
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!("{base}/echo"))
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == data,
            "echoed body differs ({} bytes)",
            out.stdout.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    srv.finish();
}
