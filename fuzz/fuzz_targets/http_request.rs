#![no_main]
//! The HTTP/1.1 request parser, fed the way the engine feeds it: the stream in
//! chunks (sizes from the input), unconsumed bytes kept and offered again, a
//! small application answering. Checks: nothing panics; `consumed` never
//! exceeds the input; an error always leaves a `Connection: close` response;
//! a request whose bytes are all there is answered without waiting; the
//! stateless `parse_request` agrees on whether the first request is complete.

use libfuzzer_sys::fuzz_target;
use netloop::protocol::http::{parse_request, Limits, Parsed, Request, Response, Session};

#[path = "common.rs"]
mod common;

fn app(req: &Request<'_>, resp: &mut Response) {
    resp.header("X-Method", req.method()).set_body(req.body());
    if req.path() == "/close" {
        resp.close();
    }
}

fuzz_target!(|data: &[u8]| {
    // Config byte 0: small limits (to reach every limit quickly).
    let (cfg, sizes, stream) = common::split(data, 1);
    let limits = if cfg[0] & 1 == 1 {
        Limits {
            max_headers: 4,
            max_header_bytes: 256,
            max_body_bytes: 64,
            max_chunk_ext_bytes: 32,
            ..Limits::default()
        }
    } else {
        Limits::default()
    };
    let date = b"Thu, 26 Nov 2026 15:42:58 GMT";
    let mut session = Session::new(limits.clone());
    let mut inbound: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut first_done = false;
    for piece in common::chunks(stream, sizes) {
        inbound.extend_from_slice(piece);
        let before = out.len();
        match session.on_bytes(&inbound, date, &mut out, &mut app) {
            Ok(r) => {
                assert!(r.consumed <= inbound.len());
                first_done |= out[before..].windows(12).any(|w| w.starts_with(b"HTTP/1.1 ") && &w[9..12] != b"100");
                inbound.drain(..r.consumed);
                if r.close {
                    assert!(out.windows(19).any(|w| w == b"Connection: close\r\n"));
                    break;
                }
            }
            Err(e) => {
                let tail = format!("HTTP/1.1 {} ", e.status());
                assert!(String::from_utf8_lossy(&out[before..]).contains(&tail));
                assert!(out.ends_with(b"Connection: close\r\n\r\n"));
                return;
            }
        }
    }
    // Whole input at once, stateless: a complete first request means the
    // streaming session answered one too.
    let mut scratch = Vec::new();
    if let Ok(Parsed::Complete { .. }) = parse_request(stream, &limits, &mut scratch) {
        assert!(first_done, "a complete request went unanswered");
    }
});
