#![no_main]
//! FixedLengthCodec: config byte 0 = frame length (0 is rejected by the codec).

use libfuzzer_sys::fuzz_target;
use netloop::codec::FixedLengthCodec;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (cfg, sizes, stream) = common::split(data, 1);
    let n = usize::from(cfg[0]);
    let Ok(mut codec) = FixedLengthCodec::new(n) else {
        return;
    };
    common::drive(&mut codec, sizes, stream, n);
});
