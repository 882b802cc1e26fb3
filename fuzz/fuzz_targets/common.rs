//! Shared driver: feed arbitrary bytes in arbitrary chunks, the way the engine does.

use netloop::codec::{Decoder, Encoder};

/// Splits fuzz input into (config bytes, chunk-size bytes, stream bytes).
///
/// Layout: `cfg_len` config bytes, then one byte `k`, then `k` chunk-size bytes,
/// then the stream. Missing parts are taken as zero / empty.
pub fn split(data: &[u8], cfg_len: usize) -> (Vec<u8>, &[u8], &[u8]) {
    let mut cfg = data[..data.len().min(cfg_len)].to_vec();
    cfg.resize(cfg_len, 0);
    let rest = &data[data.len().min(cfg_len)..];
    let (k, rest) = match rest.split_first() {
        Some((&k, rest)) => (usize::from(k) % 32, rest),
        None => (0, rest),
    };
    let k = k.min(rest.len());
    (cfg, &rest[..k], &rest[k..])
}

#[allow(dead_code)] // the proxy_header target drives no codec
/// Feeds `stream` to `codec` in chunks whose sizes cycle through `sizes` (each
/// 1..=256; one chunk if `sizes` is empty), appending to an inbound buffer,
/// decoding repeatedly and draining `consumed`. Checks the `Decoded` invariants and
/// that the decoder never waits with `bound` or more bytes buffered. Every decoded
/// payload is re-encoded (errors allowed) to exercise the encoder too.
#[allow(dead_code)]
pub fn drive<C: Decoder + Encoder>(codec: &mut C, sizes: &[u8], stream: &[u8], bound: usize) {
    let mut inbound: Vec<u8> = Vec::new();
    let mut pos = 0;
    let mut i = 0;
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
        loop {
            match codec.decode(&inbound) {
                Err(_) => return, // the engine would close the connection
                Ok(None) => {
                    assert!(inbound.len() < bound, "waiting past the limit");
                    break;
                }
                Ok(Some(d)) => {
                    assert!(d.consumed >= 1 && d.consumed <= inbound.len());
                    assert!(d.payload.start <= d.payload.end && d.payload.end <= d.consumed);
                    if let Ok(e) = codec.encode(&inbound[d.payload.clone()]) {
                        assert_eq!(e.body, &inbound[d.payload.clone()]);
                        assert!(e.head().len() <= netloop::codec::MAX_HEAD_LEN);
                    }
                    inbound.drain(..d.consumed);
                }
            }
        }
    }
}

/// `stream` cut into chunks whose sizes cycle through `sizes` (each 1..=256;
/// one chunk if `sizes` is empty).
#[allow(dead_code)]
pub fn chunks<'a>(stream: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut pos = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        if pos >= stream.len() {
            return None;
        }
        let n = if sizes.is_empty() {
            stream.len()
        } else {
            usize::from(sizes[i % sizes.len()]) + 1
        };
        i += 1;
        let end = stream.len().min(pos + n);
        let piece = &stream[pos..end];
        pos = end;
        Some(piece)
    })
}
