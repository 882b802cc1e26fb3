//! Decode throughput of every codec, for small (64 B) and large (64 KiB) frames.
//!
//! Each iteration decodes a whole pre-encoded buffer of about 1 MiB frame by frame,
//! the way the engine does (decode, hand out the payload range, advance by
//! `consumed`), so the reported throughput is wire bytes per second.
//!
//! Run: `cargo bench --bench codecs` (smoke test: `cargo bench --bench codecs -- --test`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use netloop::codec::{
    ByteOrder, Codec, DelimiterCodec, FixedLengthCodec, FrameCodec, LengthFieldCodec, LineCodec,
};

const WIRE_BYTES: usize = 1 << 20;
const SIZES: [(&str, usize); 2] = [("64B", 64), ("64KiB", 64 * 1024)];

/// A payload without `\n`, `\0` or `\r` (so line and delimiter codecs accept it).
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// About `WIRE_BYTES` of frames of `len`-byte payloads.
fn wire(codec: &dyn Codec, len: usize) -> Vec<u8> {
    let p = payload(len);
    let mut out = Vec::with_capacity(WIRE_BYTES + len + 16);
    while out.len() < WIRE_BYTES {
        codec.encode(&p).expect("encodable").write_to(&mut out);
    }
    out
}

/// Decodes all of `wire`; returns the payload bytes seen (to keep the work alive).
fn decode_all(codec: &mut dyn Codec, wire: &[u8]) -> usize {
    let mut pos = 0;
    let mut total = 0;
    while let Some(d) = codec.decode(&wire[pos..]).expect("valid stream") {
        total += black_box(&wire[pos..][d.payload.clone()]).len();
        pos += d.consumed;
    }
    assert_eq!(pos, wire.len());
    total
}

fn codecs(len: usize) -> Vec<(&'static str, Box<dyn Codec>)> {
    let max = 2 * len + 64;
    vec![
        ("line", Box::new(LineCodec::new().with_max_frame_len(max))),
        (
            "delimiter_1B",
            Box::new(
                DelimiterCodec::new(&b"\0"[..])
                    .unwrap()
                    .with_max_frame_len(max),
            ),
        ),
        (
            "delimiter_crlf_or_nul",
            Box::new(
                DelimiterCodec::with_delimiters([&b"\r\n"[..], b"\0"])
                    .unwrap()
                    .with_max_frame_len(max),
            ),
        ),
        (
            "fixed",
            Box::new(FixedLengthCodec::with_max_frame_len(len, max).unwrap()),
        ),
        (
            "length_field_3le",
            // 3-byte little-endian length of the payload, header stripped.
            Box::new(
                LengthFieldCodec::builder()
                    .length_field_length(3)
                    .byte_order(ByteOrder::LittleEndian)
                    .initial_bytes_to_strip(3)
                    .max_frame_length(max)
                    .build()
                    .unwrap(),
            ),
        ),
        ("frame", Box::new(FrameCodec::new().with_max_frame_len(max))),
    ]
}

fn bench_decode(c: &mut Criterion) {
    for (size_name, len) in SIZES {
        let mut group = c.benchmark_group(format!("decode/{size_name}"));
        for (name, mut codec) in codecs(len) {
            let wire = wire(&*codec, len);
            group.throughput(Throughput::Bytes(wire.len() as u64));
            group.bench_with_input(BenchmarkId::from_parameter(name), &wire, |b, wire| {
                b.iter(|| decode_all(&mut *codec, wire))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
