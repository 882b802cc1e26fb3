//! The WebSocket frame codec (RFC 6455 §5.2): header parsing, header writing and
//! masking.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! ```
//!
//! The parser is stateless: [`parse_header`] looks at the start of the buffered
//! bytes and either returns a complete [`FrameHeader`], asks for more bytes, or
//! rejects what it sees with a [`WsError`] that maps to a close code. Checks that
//! depend on the connection (masking by role, reserved bits by negotiated
//! extensions, size limits) are made by the reader, not here.

use super::error::WsError;

/// The longest frame header: 2 bytes, an 8-byte extended length, a 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

/// Largest payload of a control frame (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame's opcode (§5.2). Reserved opcodes are rejected by [`parse_header`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    /// `0x0`: a continuation fragment of a data message.
    Continuation,
    /// `0x1`: the first frame of a text message.
    Text,
    /// `0x2`: the first frame of a binary message.
    Binary,
    /// `0x8`: close.
    Close,
    /// `0x9`: ping.
    Ping,
    /// `0xA`: pong.
    Pong,
}

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for a reserved one.
    pub fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong are control frames: never fragmented, at most 125
    /// bytes of payload, and allowed between the fragments of a message.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// The reserved bits of the first header byte, as they sit there.
pub mod rsv {
    /// RSV1: "per-message compressed" once permessage-deflate is negotiated.
    pub const RSV1: u8 = 0x40;
    /// RSV2: no extension here uses it.
    pub const RSV2: u8 = 0x20;
    /// RSV3: no extension here uses it.
    pub const RSV3: u8 = 0x10;
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The final fragment of its message.
    pub fin: bool,
    /// The reserved bits as they appear in the first byte (`rsv::RSV1 | ...`).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// Bytes of the header (2 to 14); the payload starts there.
    pub header_len: usize,
}

impl FrameHeader {
    /// Header plus payload, if that fits a `usize`.
    pub fn frame_len(&self) -> Option<usize> {
        usize::try_from(self.payload_len)
            .ok()?
            .checked_add(self.header_len)
    }
}

/// Parses the frame header at the start of `src`.
///
/// `Ok(None)`: more bytes are needed. Errors (close code 1002): a reserved
/// opcode, a fragmented control frame, a control payload over 125 bytes, a
/// 64-bit length with its top bit set.
///
/// ```
/// use netloop::protocol::websocket::frame::{parse_header, OpCode};
/// // A masked "Hi" text frame from a client.
/// let wire = [0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2];
/// let h = parse_header(&wire).unwrap().unwrap();
/// assert!(h.fin);
/// assert_eq!(h.opcode, OpCode::Text);
/// assert_eq!(h.mask, Some([1, 2, 3, 4]));
/// assert_eq!((h.header_len, h.payload_len), (6, 2));
/// assert_eq!(parse_header(&wire[..3]).unwrap(), None);
/// ```
pub fn parse_header(src: &[u8]) -> Result<Option<FrameHeader>, WsError> {
    let [b0, b1, ..] = *src else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let rsv = b0 & 0x70;
    let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(WsError::ReservedOpcode(b0 & 0x0F))?;
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7F;
    if opcode.is_control() {
        if !fin {
            return Err(WsError::FragmentedControl);
        }
        if usize::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(WsError::ControlTooLong);
        }
    }
    let (payload_len, mut pos) = match len7 {
        126 => match src.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match src.get(2..10) {
            Some(b) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                let n = u64::from_be_bytes(a);
                if n >> 63 != 0 {
                    return Err(WsError::BadLength);
                }
                (n, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        match src.get(pos..pos + 4) {
            Some(b) => {
                pos += 4;
                Some([b[0], b[1], b[2], b[3]])
            }
            None => return Ok(None),
        }
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len,
        header_len: pos,
    }))
}

/// Writes a frame header into `buf`; returns its length.
///
/// `rsv` are the reserved bits as in [`FrameHeader::rsv`]; `mask` is set by
/// clients (§5.3), never by servers.
///
/// ```
/// use netloop::protocol::websocket::frame::{write_header, OpCode, MAX_HEADER_LEN};
/// let mut h = [0u8; MAX_HEADER_LEN];
/// let n = write_header(&mut h, true, 0, OpCode::Binary, None, 300);
/// assert_eq!(&h[..n], &[0x82, 126, 0x01, 0x2C]);
/// ```
pub fn write_header(
    buf: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload_len: usize,
) -> usize {
    buf[0] = (if fin { 0x80 } else { 0 }) | (rsv & 0x70) | opcode.as_u8();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut pos = if payload_len < 126 {
        buf[1] = mask_bit | payload_len as u8;
        2
    } else if let Ok(n) = u16::try_from(payload_len) {
        buf[1] = mask_bit | 126;
        buf[2..4].copy_from_slice(&n.to_be_bytes());
        4
    } else {
        buf[1] = mask_bit | 127;
        buf[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    };
    if let Some(m) = mask {
        buf[pos..pos + 4].copy_from_slice(&m);
        pos += 4;
    }
    pos
}

/// XORs `buf` with the masking key, starting at key position `offset % 4`
/// (a frame's payload may be unmasked in several pieces). Masking and unmasking
/// are the same operation.
///
/// ```
/// use netloop::protocol::websocket::frame::apply_mask;
/// let mut data = *b"hello";
/// apply_mask(&mut data, [1, 2, 3, 4], 0);
/// apply_mask(&mut data[..2], [1, 2, 3, 4], 0);
/// apply_mask(&mut data[2..], [1, 2, 3, 4], 2);
/// assert_eq!(&data, b"hello");
/// ```
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut k = key;
    k.rotate_left(offset % 4);
    // Eight bytes at a time: the key repeats every four bytes, so a doubled key
    // lines up with every 8-byte chunk.
    let wide = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(a) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= k[i % 4];
    }
}

/// Appends `src` to `dst`, masked with `key` from key position `offset % 4`.
pub fn extend_masked(dst: &mut Vec<u8>, src: &[u8], key: Option<[u8; 4]>, offset: usize) {
    let start = dst.len();
    dst.extend_from_slice(src);
    if let Some(key) = key {
        apply_mask(&mut dst[start..], key, offset);
    }
}

/// Appends one whole frame (header and payload, masked with `mask` if given) to
/// `out`.
///
/// ```
/// use netloop::protocol::websocket::frame::{encode_frame, OpCode};
/// let mut out = Vec::new();
/// encode_frame(&mut out, true, 0, OpCode::Text, None, b"hi");
/// assert_eq!(out, [0x81, 2, b'h', b'i']);
/// ```
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) {
    let mut h = [0u8; MAX_HEADER_LEN];
    let n = write_header(&mut h, fin, rsv, opcode, mask, payload.len());
    out.reserve(n + payload.len());
    out.extend_from_slice(&h[..n]);
    extend_masked(out, payload, mask, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_at_every_length_boundary() {
        for len in [0usize, 1, 125, 126, 127, 65_535, 65_536, 1 << 20] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let mut h = [0u8; MAX_HEADER_LEN];
                let n = write_header(&mut h, false, rsv::RSV1, OpCode::Binary, mask, len);
                let p = parse_header(&h[..n]).unwrap().unwrap();
                assert_eq!(p.payload_len, len as u64);
                assert_eq!(p.header_len, n);
                assert_eq!(p.mask, mask);
                assert_eq!(p.rsv, rsv::RSV1);
                assert!(!p.fin);
                // Every shorter prefix asks for more.
                for k in 0..n {
                    assert_eq!(parse_header(&h[..k]).unwrap(), None, "len {len} prefix {k}");
                }
            }
        }
    }

    #[test]
    fn rejects_what_no_connection_may_send() {
        assert_eq!(
            parse_header(&[0x83, 0]).unwrap_err(),
            WsError::ReservedOpcode(3)
        );
        assert_eq!(
            parse_header(&[0x8B, 0]).unwrap_err(),
            WsError::ReservedOpcode(0xB)
        );
        assert_eq!(
            parse_header(&[0x09, 0]).unwrap_err(),
            WsError::FragmentedControl
        );
        assert_eq!(
            parse_header(&[0x89, 126]).unwrap_err(),
            WsError::ControlTooLong
        );
        let mut big = vec![0x82, 127];
        big.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(parse_header(&big).unwrap_err(), WsError::BadLength);
    }

    #[test]
    fn mask_matches_bytewise_at_any_offset() {
        let key = [0xA1, 0x05, 0x7F, 0xEE];
        let data: Vec<u8> = (0..67u8).collect();
        for off in 0..8 {
            let mut fast = data.clone();
            apply_mask(&mut fast, key, off);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[(i + off) % 4])
                .collect();
            assert_eq!(fast, slow, "offset {off}");
        }
    }
}
