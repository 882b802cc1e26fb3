#![no_main]
//! The WebSocket frame reader, fed like the engine feeds it.
//!
//! Config byte 0: bit 0 = client role (expects unmasked frames), bit 1 =
//! permessage-deflate negotiated. Bytes 1..3: max message size (the max frame
//! size is the same). Then chunk sizes and the stream (see `common::split`).
//!
//! Checks: no panic; `consumed` never passes the buffered bytes; the reader
//! never waits with more buffered than one small frame can need (so a peer
//! cannot make a connection buffer without bound); event ranges lie inside the
//! scratch buffer; assembled messages and inflated payloads stay within the
//! message limit.

use libfuzzer_sys::fuzz_target;
use netloop::protocol::websocket::deflate::{DeflateCodecs, Negotiated};
use netloop::protocol::websocket::frame::MAX_HEADER_LEN;
use netloop::protocol::websocket::reader::{Event, Payload, Reader, STREAM_THRESHOLD};
use netloop::protocol::websocket::DeflateConfig;

#[path = "common.rs"]
#[allow(dead_code)] // only `split` is used here
mod common;

fuzz_target!(|data: &[u8]| {
    let (cfg, sizes, stream) = common::split(data, 3);
    let max = usize::from(u16::from_le_bytes([cfg[1], cfg[2]])) + 1;
    let neg = Negotiated {
        tx_takeover: false,
        tx_window_bits: 15,
        rx_takeover: false,
    };
    let reader = Reader {
        client: cfg[0] & 1 != 0,
        deflate: (cfg[0] & 2 != 0).then_some(neg),
        max_frame: max,
        max_message: max,
    };
    let mut codecs = DeflateCodecs::new(&DeflateConfig::default());
    let mut inbound: Vec<u8> = Vec::new();
    let mut partial = None;
    let (mut pos, mut i) = (0, 0);
    while pos < stream.len() {
        let n = if sizes.is_empty() {
            stream.len()
        } else {
            usize::from(sizes[i % sizes.len()]) + 1
        };
        i += 1;
        let end = stream.len().min(pos + n);
        inbound.extend_from_slice(&stream[pos..end]);
        pos = end;
        let mut scratch = Vec::new();
        let mut events = Vec::new();
        let res = reader.read(&inbound, &mut partial, &mut scratch, &mut events);
        assert!(res.consumed <= inbound.len());
        for e in &events {
            match e {
                Event::Data { payload, compressed, .. } => {
                    if let Payload::Scratch(r) = payload {
                        assert!(r.start <= r.end && r.end <= scratch.len());
                    }
                    let bytes = payload.bytes(&scratch);
                    assert!(bytes.len() <= max);
                    if *compressed {
                        let mut out = Vec::new();
                        if codecs.decompress(neg, None, bytes, &mut out, max).is_ok() {
                            assert!(out.len() <= max);
                        }
                    }
                }
                Event::Ping(r) | Event::Pong(r) | Event::Close(r) => {
                    assert!(r.end <= scratch.len() && r.len() <= 125);
                }
            }
        }
        if res.error.is_some() || matches!(events.last(), Some(Event::Close(_))) {
            return; // the connection is failed or closing
        }
        inbound.drain(..res.consumed);
        assert!(
            inbound.len() < STREAM_THRESHOLD + MAX_HEADER_LEN,
            "waiting with {} bytes buffered",
            inbound.len()
        );
    }
});
