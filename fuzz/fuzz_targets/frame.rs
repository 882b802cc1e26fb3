#![no_main]
//! FrameCodec: config bytes 0..2 = max payload length.

use libfuzzer_sys::fuzz_target;
use netloop::codec::FrameCodec;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (cfg, sizes, stream) = common::split(data, 2);
    let max = usize::from(u16::from_le_bytes([cfg[0], cfg[1]]));
    let mut codec = FrameCodec::new().with_max_frame_len(max);
    common::drive(&mut codec, sizes, stream, max + 4);
});
