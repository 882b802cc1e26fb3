#![no_main]
//! PROXY protocol header parser: the input is fed in reads whose sizes come
//! from its first bytes; asserts the verdict is the same as for the whole
//! input, that a complete header's length is within the input and the limits,
//! and that a parsed header re-encodes and parses back to the same addresses.

use libfuzzer_sys::fuzz_target;
use netloop::protocol::proxy::{HeaderParser, Parsed, DEFAULT_MAX_HEADER_LEN, V1_MAX_LEN};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (_, sizes, stream) = common::split(data, 0);
    let whole = HeaderParser::default().parse(stream);
    let mut parser = HeaderParser::default();
    let (mut end, mut i) = (0, 0);
    let split = loop {
        let n = sizes.get(i % sizes.len().max(1)).map_or(stream.len(), |&s| usize::from(s) + 1);
        i += 1;
        end = stream.len().min(end + n);
        match parser.parse(&stream[..end]) {
            Ok(Parsed::Incomplete) if end < stream.len() => {
                assert!(end < DEFAULT_MAX_HEADER_LEN.max(V1_MAX_LEN), "waiting past the limits");
            }
            verdict => break verdict,
        }
    };
    assert_eq!(split, whole);
    if let Ok(Parsed::Complete { header, consumed }) = whole {
        assert!(consumed <= stream.len() && consumed <= DEFAULT_MAX_HEADER_LEN);
        let mut again = Vec::new();
        if header.encode(&mut again).is_ok() {
            match HeaderParser::default().parse(&again) {
                Ok(Parsed::Complete { header: back, consumed }) => {
                    assert_eq!(consumed, again.len());
                    assert_eq!(back.source(), header.source());
                    assert_eq!(back.addresses(), header.addresses());
                }
                other => panic!("re-encoded header does not parse: {other:?}"),
            }
        }
    }
});
