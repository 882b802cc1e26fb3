//! permessage-deflate (RFC 7692): negotiation and the compressors.
//!
//! # Memory
//!
//! A zlib compressor costs about 256 KiB and a decompressor about 40 KiB at the
//! default window, far more than everything else an idle connection holds. So by
//! default both directions run **without context takeover**: every message is
//! compressed and inflated on its own, the server answers every offer with
//! `server_no_context_takeover; client_no_context_takeover`, and one compressor
//! and one decompressor *per loop* ([`DeflateCodecs`]) serve all of that loop's
//! connections, reset before each message. An idle connection then holds no
//! compression state at all, only the negotiated parameters (a few bytes).
//!
//! With [`DeflateConfig::context_takeover`] on, a connection that negotiates it
//! gets its own boxed compressor/decompressor (created on first use and kept
//! while the connection lives: that is what takeover means); the window is
//! bounded by [`DeflateConfig::max_window_bits`], which is offered to, and
//! required from, the peer where the RFC allows it.
//!
//! # Wire format
//!
//! A message is deflated with a sync flush and the trailing `00 00 ff ff` is
//! removed; the receiver appends it again before inflating (§7.2.1, §7.2.2).
//! Only the first frame of a compressed message has RSV1 set.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::error::WsError;

/// The extension's registered name.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The bytes a sync flush ends with, stripped on the wire.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Smallest window zlib can produce raw deflate for (it turns 8 into 9, which
/// would break a peer's `max_window_bits=8`; such offers are declined).
const MIN_WINDOW_BITS: u8 = 9;
const MAX_WINDOW_BITS: u8 = 15;

/// permessage-deflate settings.
///
/// ```
/// use netloop::protocol::websocket::DeflateConfig;
/// let d = DeflateConfig::default();
/// assert!(!d.context_takeover); // no compressor state per idle connection
/// assert_eq!(d.max_window_bits, 15);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// zlib compression level, 0–9 (default 1: fastest; the small messages
    /// WebSocket usually carries gain little from higher levels).
    pub level: u32,
    /// Keep the compression context between messages (better ratios for
    /// similar messages, but a compressor and decompressor per connection).
    /// Default off.
    pub context_takeover: bool,
    /// The largest LZ77 window (9–15) this endpoint compresses with, and — with
    /// context takeover — asks the peer to compress with.
    pub max_window_bits: u8,
    /// Messages shorter than this are sent uncompressed (RSV1 clear), which
    /// RFC 7692 allows on a connection that negotiated the extension.
    /// Default 0: everything is compressed.
    pub min_compress_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            level: 1,
            context_takeover: false,
            max_window_bits: MAX_WINDOW_BITS,
            min_compress_size: 0,
        }
    }
}

impl DeflateConfig {
    fn window_bits(&self) -> u8 {
        self.max_window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
    }

    /// The offer a client sends (`Sec-WebSocket-Extensions` value).
    pub fn client_offer(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.context_takeover {
            s.push_str("; client_max_window_bits");
            if self.window_bits() < MAX_WINDOW_BITS {
                s.push_str(&format!("; server_max_window_bits={}", self.window_bits()));
            }
        } else {
            s.push_str("; server_no_context_takeover; client_no_context_takeover");
        }
        s
    }
}

/// What was agreed for one connection, from this endpoint's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// This endpoint keeps its compression context between messages.
    pub tx_takeover: bool,
    /// The window this endpoint compresses with.
    pub tx_window_bits: u8,
    /// The peer keeps its compression context (this endpoint must keep its
    /// decompression context).
    pub rx_takeover: bool,
}

impl Negotiated {
    /// Does this connection need per-connection contexts?
    pub fn takeover(&self) -> bool {
        self.tx_takeover || self.rx_takeover
    }
}

/// One extension offer's parameters.
#[derive(Default)]
struct Params {
    server_no_takeover: bool,
    client_no_takeover: bool,
    server_max_bits: Option<u8>,
    /// Present without a value: `Some(None)`.
    client_max_bits: Option<Option<u8>>,
}

fn parse_bits(v: Option<&str>) -> Option<u8> {
    let v = v?;
    if v.is_empty() || v.len() > 2 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
}

/// Parses one offer's (or response's) parameters; `None` when one is unknown,
/// repeated or malformed (the offer is then declined, §7.1).
fn parse_params<'a>(params: impl Iterator<Item = &'a str>) -> Option<Params> {
    let mut p = Params::default();
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param.trim(), None),
        };
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if !p.server_no_takeover && value.is_none() => {
                p.server_no_takeover = true
            }
            "client_no_context_takeover" if !p.client_no_takeover && value.is_none() => {
                p.client_no_takeover = true
            }
            "server_max_window_bits" if p.server_max_bits.is_none() => {
                p.server_max_bits = Some(parse_bits(value)?)
            }
            "client_max_window_bits" if p.client_max_bits.is_none() => {
                p.client_max_bits = Some(match value {
                    None => None,
                    Some(v) => Some(parse_bits(Some(v))?),
                })
            }
            _ => return None,
        }
    }
    Some(p)
}

/// Splits `Sec-WebSocket-Extensions` values into offers: (name, parameters).
fn offers<'a>(values: &'a [&'a str]) -> impl Iterator<Item = (&'a str, std::str::Split<'a, char>)> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|o| !o.trim().is_empty())
        .map(|o| {
            let mut parts = o.split(';');
            let name = parts.next().unwrap_or("").trim();
            (name, parts)
        })
}

/// Server side: picks the first acceptable permessage-deflate offer among the
/// request's `Sec-WebSocket-Extensions` values; returns what was agreed and the
/// response header value, or `None` to decline (the connection then runs
/// uncompressed).
///
/// ```
/// use netloop::protocol::websocket::{deflate::accept_offer, DeflateConfig};
/// let (neg, resp) =
///     accept_offer(&DeflateConfig::default(), &["permessage-deflate; client_max_window_bits"]).unwrap();
/// assert_eq!(resp, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
/// assert!(!neg.takeover());
/// assert!(accept_offer(&DeflateConfig::default(), &["x-webkit-deflate-frame"]).is_none());
/// ```
pub fn accept_offer(cfg: &DeflateConfig, values: &[&str]) -> Option<(Negotiated, String)> {
    for (name, params) in offers(values) {
        if !name.eq_ignore_ascii_case(EXTENSION_NAME) {
            continue;
        }
        let Some(p) = parse_params(params) else {
            continue;
        };
        let tx_window_bits = cfg.window_bits().min(p.server_max_bits.unwrap_or(15));
        if tx_window_bits < MIN_WINDOW_BITS {
            continue; // the client asked for a window zlib cannot keep to
        }
        let tx_takeover = cfg.context_takeover && !p.server_no_takeover;
        let rx_takeover = cfg.context_takeover && !p.client_no_takeover;
        let mut resp = String::from(EXTENSION_NAME);
        if !tx_takeover {
            resp.push_str("; server_no_context_takeover");
        }
        if !rx_takeover {
            // Allowed even when not offered (§7.1.1.2): the client must reset
            // its compressor per message, so one decompressor per loop serves all.
            resp.push_str("; client_no_context_takeover");
        }
        if p.server_max_bits.is_some() || tx_window_bits < MAX_WINDOW_BITS {
            resp.push_str(&format!("; server_max_window_bits={tx_window_bits}"));
        }
        if rx_takeover && p.client_max_bits.is_some() && cfg.window_bits() < MAX_WINDOW_BITS {
            let bits = match p.client_max_bits {
                Some(Some(b)) => b.min(cfg.window_bits()),
                _ => cfg.window_bits(),
            };
            resp.push_str(&format!("; client_max_window_bits={bits}"));
        }
        return Some((
            Negotiated {
                tx_takeover,
                tx_window_bits,
                rx_takeover,
            },
            resp,
        ));
    }
    None
}

/// Client side: checks the server's `Sec-WebSocket-Extensions` values against
/// the offer made from `cfg` ([`DeflateConfig::client_offer`]). `Ok(None)`: no
/// extension accepted. An extension or parameter that was not offered, or a
/// missing required parameter, is an error (the client must fail the
/// connection, §7.1).
pub fn check_response(
    cfg: Option<&DeflateConfig>,
    values: &[&str],
) -> Result<Option<Negotiated>, &'static str> {
    let mut agreed = None;
    for (name, params) in offers(values) {
        let cfg = match cfg {
            Some(c) if name.eq_ignore_ascii_case(EXTENSION_NAME) => c,
            _ => return Err("the server accepted an extension that was not offered"),
        };
        if agreed.is_some() {
            return Err("permessage-deflate accepted twice");
        }
        let p = parse_params(params).ok_or("invalid permessage-deflate parameters")?;
        // Offered, server_no_context_takeover must be accepted (§7.1.1.1);
        // client_no_context_takeover is a hint the client keeps to anyway.
        if !cfg.context_takeover && !p.server_no_takeover {
            return Err("the server ignored server_no_context_takeover");
        }
        if p.client_max_bits.is_some() && !cfg.context_takeover {
            return Err("client_max_window_bits in the response but not in the offer");
        }
        let tx_window_bits = match p.client_max_bits {
            Some(Some(b)) => b.min(cfg.window_bits()),
            Some(None) => return Err("client_max_window_bits without a value"),
            None => cfg.window_bits(),
        };
        if tx_window_bits < MIN_WINDOW_BITS {
            return Err("the server asked for a window of 8 bits");
        }
        agreed = Some(Negotiated {
            tx_takeover: cfg.context_takeover && !p.client_no_takeover,
            tx_window_bits,
            rx_takeover: !p.server_no_takeover,
        });
    }
    Ok(agreed)
}

/// A loop's shared compressors: used for every message of every connection
/// that runs without context takeover, reset before each message.
pub struct DeflateCodecs {
    level: Compression,
    /// One compressor per window size in use (index `bits - 9`), made on demand.
    compress: [Option<Compress>; 7],
    /// Inflating with the largest window accepts any smaller one.
    decompress: Option<Decompress>,
}

impl std::fmt::Debug for DeflateCodecs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeflateCodecs")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

/// A connection's own contexts, for context takeover.
#[derive(Default)]
pub struct DeflateContext {
    compress: Option<Compress>,
    decompress: Option<Decompress>,
}

impl std::fmt::Debug for DeflateContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeflateContext")
            .field("compress", &self.compress.is_some())
            .field("decompress", &self.decompress.is_some())
            .finish()
    }
}

fn new_compress(level: Compression, bits: u8) -> Compress {
    Compress::new_with_window_bits(level, false, bits)
}

impl DeflateCodecs {
    /// Empty; compressors are made on first use.
    pub fn new(cfg: &DeflateConfig) -> Self {
        DeflateCodecs {
            level: Compression::new(cfg.level.min(9)),
            compress: Default::default(),
            decompress: None,
        }
    }

    /// Compresses one whole message into `out` (appended), with the sync-flush
    /// tail removed. `ctx` is the connection's own context when it negotiated
    /// takeover.
    pub fn compress(
        &mut self,
        neg: Negotiated,
        ctx: Option<&mut DeflateContext>,
        input: &[u8],
        out: &mut Vec<u8>,
    ) {
        let bits = neg.tx_window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        let level = self.level;
        let c = match ctx {
            Some(ctx) if neg.tx_takeover => ctx
                .compress
                .get_or_insert_with(|| new_compress(level, bits)),
            _ => {
                let c = self.compress[usize::from(bits - MIN_WINDOW_BITS)]
                    .get_or_insert_with(|| new_compress(level, bits));
                c.reset();
                c
            }
        };
        deflate_sync(c, input, out);
    }

    /// Inflates one whole message (`input` without the sync tail) into `out`
    /// (appended), failing with [`WsError::TooBig`] once `out` would pass `max`
    /// bytes and [`WsError::BadCompression`] on corrupt data.
    pub fn decompress(
        &mut self,
        neg: Negotiated,
        ctx: Option<&mut DeflateContext>,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), WsError> {
        let d = match ctx {
            Some(ctx) if neg.rx_takeover => ctx
                .decompress
                .get_or_insert_with(|| Decompress::new_with_window_bits(false, MAX_WINDOW_BITS)),
            _ => {
                let d = self.decompress.get_or_insert_with(|| {
                    Decompress::new_with_window_bits(false, MAX_WINDOW_BITS)
                });
                d.reset(false);
                d
            }
        };
        let start = out.len();
        let res = inflate(d, input, out, start + max).and_then(|end| {
            if end {
                Ok(true)
            } else {
                inflate(d, &SYNC_TAIL, out, start + max)
            }
        });
        match res {
            // A final block ends the stream: the next message starts afresh.
            Ok(true) => {
                d.reset(false);
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => {
                d.reset(false);
                Err(e)
            }
        }
    }
}

/// Deflates `input` with a sync flush into `out` and strips the flush's tail.
fn deflate_sync(c: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    if input.is_empty() {
        // An empty stored block (§7.2.3.6). A compressor that just flushed
        // would emit nothing at all for a second flush in a row.
        out.push(0x00);
        return;
    }
    let mut pos = 0;
    loop {
        // deflate's worst case is a few bytes per 16 KiB block over the input.
        out.reserve((input.len() - pos) + (input.len() - pos) / 1000 + 64);
        let before = c.total_in();
        if c.compress_vec(&input[pos..], out, FlushCompress::Sync)
            .is_err()
        {
            // Only a misuse of the stream can fail; a fresh one recovers.
            c.reset();
            continue;
        }
        pos += (c.total_in() - before) as usize;
        // Done once all input is in and the flush fit in the space given.
        if pos == input.len() && out.len() < out.capacity() {
            break;
        }
    }
    if out.ends_with(&SYNC_TAIL) {
        out.truncate(out.len() - SYNC_TAIL.len());
    }
}

/// Feeds `input` to `d`, appending to `out` until it is consumed; `Ok(true)`
/// when the deflate stream ended (a final block).
fn inflate(
    d: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    max: usize,
) -> Result<bool, WsError> {
    let mut pos = 0;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.len().clamp(4096, 1 << 20));
        }
        let (in0, out0) = (d.total_in(), d.total_out());
        let status = d
            .decompress_vec(&input[pos..], out, FlushDecompress::Sync)
            .map_err(|_| WsError::BadCompression)?;
        pos += (d.total_in() - in0) as usize;
        if out.len() > max {
            return Err(WsError::TooBig);
        }
        if status == Status::StreamEnd {
            return Ok(true);
        }
        let progressed = d.total_in() != in0 || d.total_out() != out0;
        if pos == input.len() && out.len() < out.capacity() {
            return Ok(false);
        }
        if !progressed && out.len() < out.capacity() {
            return Err(WsError::BadCompression);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(takeover: bool, bits: u8) -> Negotiated {
        Negotiated {
            tx_takeover: takeover,
            tx_window_bits: bits,
            rx_takeover: takeover,
        }
    }

    #[test]
    fn round_trip_without_and_with_takeover() {
        let cfg = DeflateConfig::default();
        let mut tx = DeflateCodecs::new(&cfg);
        let mut rx = DeflateCodecs::new(&cfg);
        let (mut ctx_tx, mut ctx_rx) = (DeflateContext::default(), DeflateContext::default());
        for takeover in [false, true] {
            for msg in [&b""[..], b"a", &b"Hello, Hello, Hello, Hello!".repeat(500)] {
                for _ in 0..3 {
                    let mut wire = Vec::new();
                    tx.compress(neg(takeover, 15), Some(&mut ctx_tx), msg, &mut wire);
                    assert!(!wire.ends_with(&SYNC_TAIL) || msg.is_empty());
                    let mut back = Vec::new();
                    rx.decompress(
                        neg(takeover, 15),
                        Some(&mut ctx_rx),
                        &wire,
                        &mut back,
                        1 << 20,
                    )
                    .unwrap();
                    assert_eq!(back, msg);
                }
            }
        }
    }

    #[test]
    fn bomb_is_cut_at_the_limit() {
        let cfg = DeflateConfig::default();
        let mut c = DeflateCodecs::new(&cfg);
        let mut wire = Vec::new();
        c.compress(neg(false, 15), None, &vec![0u8; 1 << 20], &mut wire);
        assert!(wire.len() < (1 << 20) / 100, "{} bytes", wire.len());
        let mut out = Vec::new();
        let err = c
            .decompress(neg(false, 15), None, &wire, &mut out, 10_000)
            .unwrap_err();
        assert_eq!(err, WsError::TooBig);
        assert!(out.len() < 10_000 + (1 << 20));
        // Garbage is an error, and the shared decompressor still works after it.
        let mut out = Vec::new();
        assert_eq!(
            c.decompress(neg(false, 15), None, &[0xFF; 40], &mut out, 1 << 20)
                .unwrap_err(),
            WsError::BadCompression
        );
        let mut small = Vec::new();
        c.compress(neg(false, 15), None, b"ok", &mut small);
        let mut out = Vec::new();
        c.decompress(neg(false, 15), None, &small, &mut out, 100)
            .unwrap();
        assert_eq!(out, b"ok");
    }

    #[test]
    fn negotiation_follows_rfc7692() {
        let cfg = DeflateConfig::default();
        // Unknown or duplicate parameters decline that offer; the next is taken.
        let (n, resp) = accept_offer(
            &cfg,
            &["permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=10"],
        )
        .unwrap();
        assert_eq!(n.tx_window_bits, 10);
        assert!(resp.ends_with("server_max_window_bits=10"));
        assert!(accept_offer(&cfg, &["permessage-deflate; server_max_window_bits=8"]).is_none());
        assert!(accept_offer(&cfg, &["permessage-deflate; server_max_window_bits=16"]).is_none());
        assert!(accept_offer(
            &cfg,
            &["permessage-deflate; client_no_context_takeover; client_no_context_takeover"]
        )
        .is_none());
        // Takeover when configured and not refused by the client.
        let t = DeflateConfig {
            context_takeover: true,
            ..cfg.clone()
        };
        let (n, resp) = accept_offer(&t, &["permessage-deflate"]).unwrap();
        assert!(n.tx_takeover && n.rx_takeover);
        assert_eq!(resp, "permessage-deflate");
        // The client side accepts our own server's answer and rejects strangers.
        let (_, resp) = accept_offer(&cfg, &[&cfg.client_offer()]).unwrap();
        let n = check_response(Some(&cfg), &[&resp]).unwrap().unwrap();
        assert!(!n.takeover());
        assert!(check_response(Some(&cfg), &["permessage-deflate"]).is_err());
        assert!(check_response(None, &["permessage-deflate"]).is_err());
        assert_eq!(check_response(None, &[]).unwrap(), None);
    }
}
