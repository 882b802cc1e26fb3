#![no_main]
//! LengthFieldCodec: every Netty parameter from the config bytes.

use libfuzzer_sys::fuzz_target;
use netloop::codec::{ByteOrder, LengthFieldCodec};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (cfg, sizes, stream) = common::split(data, 9);
    let field = [1usize, 2, 3, 4, 8][usize::from(cfg[0] % 5)];
    let order = if cfg[1] & 1 == 1 { ByteOrder::LittleEndian } else { ByteOrder::BigEndian };
    let offset = usize::from(cfg[2] % 16);
    let adjustment = i64::from(i16::from_le_bytes([cfg[3], cfg[4]]));
    let strip = usize::from(cfg[5] % 32);
    let max = usize::from(u16::from_le_bytes([cfg[6], cfg[7]]));
    let built = LengthFieldCodec::builder()
        .length_field_length(field)
        .byte_order(order)
        .length_field_offset(offset)
        .length_adjustment(adjustment)
        .initial_bytes_to_strip(strip)
        .max_frame_length(max)
        .prepend_length_adjustment(i64::from(cfg[8] as i8))
        .length_includes_length_field_length(cfg[8] & 1 == 1)
        .build();
    let Ok(mut codec) = built else {
        return;
    };
    common::drive(&mut codec, sizes, stream, max);
});
