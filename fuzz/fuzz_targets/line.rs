#![no_main]
//! LineCodec: config byte 0 = keep delimiter, byte 1 = CRLF encoding, byte 2 = max.

use libfuzzer_sys::fuzz_target;
use netloop::codec::{LineCodec, LineEnding};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (cfg, sizes, stream) = common::split(data, 3);
    let max = usize::from(cfg[2]);
    let ending = if cfg[1] & 1 == 1 { LineEnding::CrLf } else { LineEnding::Lf };
    let mut codec = LineCodec::new()
        .keep_delimiter(cfg[0] & 1 == 1)
        .with_ending(ending)
        .with_max_frame_len(max);
    common::drive(&mut codec, sizes, stream, max + 2);
});
