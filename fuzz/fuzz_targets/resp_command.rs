#![no_main]
//! The RESP command parser and session, fed the way the engine feeds them:
//! the stream in chunks (sizes from the input), unconsumed bytes kept and
//! offered again. Checks: nothing panics; `consumed` never exceeds the input;
//! the replies are always valid RESP; an error leaves `-ERR Protocol error`
//! last; the parser holds no more than its limits allow.

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use netloop::protocol::resp::{Replies, RespLimits, RespSession, Store, Value};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    // Config byte 0: small limits.
    let (cfg, sizes, stream) = common::split(data, 1);
    let limits = if cfg[0] & 1 == 1 {
        RespLimits {
            max_bulk_len: 64,
            max_array_len: 8,
            max_inline_len: 32,
            max_command_bytes: 256,
        }
    } else {
        RespLimits::default()
    };
    let mut session = RespSession::new(limits.clone());
    let mut store = Store::new();
    let mut inbound: Vec<u8> = Vec::new();
    let mut replies = Replies::default();
    let mut out = Vec::new();
    let now = Instant::now();
    for piece in common::chunks(stream, sizes) {
        inbound.extend_from_slice(piece);
        let res = session.on_bytes(&inbound, &mut replies, &mut store, now);
        let bytes = replies.to_bytes();
        let values = Value::parse_all(&bytes).expect("replies are valid RESP");
        out.extend(values);
        assert!(session.held_bytes() <= limits.max_command_bytes.saturating_mul(2) + 64 * 1024);
        match res {
            Ok(p) => {
                assert!(p.consumed <= inbound.len());
                inbound.drain(..p.consumed);
                if p.close {
                    break;
                }
            }
            Err(_) => {
                match out.last() {
                    Some(Value::Error(e)) => assert!(e.starts_with(b"ERR Protocol error")),
                    other => panic!("error without its reply: {other:?}"),
                }
                break;
            }
        }
    }
});
