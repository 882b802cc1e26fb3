#![no_main]
//! DelimiterCodec: config = keep flag, max, then up to 3 delimiters of 1..=4 bytes.

use libfuzzer_sys::fuzz_target;
use netloop::codec::DelimiterCodec;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (cfg, sizes, stream) = common::split(data, 2 + 3 * 5);
    let keep = cfg[0] & 1 == 1;
    let max = usize::from(cfg[1]);
    let count = 1 + usize::from(cfg[2] % 3);
    let delims: Vec<Vec<u8>> = cfg[2..]
        .chunks(5)
        .take(count)
        .map(|c| c[1..=1 + usize::from(c[0] % 4)].to_vec())
        .collect();
    let longest = delims.iter().map(Vec::len).max().unwrap_or(1);
    let Ok(codec) = DelimiterCodec::with_delimiters(delims) else {
        return;
    };
    let mut codec = codec.keep_delimiter(keep).with_max_frame_len(max);
    common::drive(&mut codec, sizes, stream, max + longest);
});
