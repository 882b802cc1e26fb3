//! [`LengthFieldCodec`]: Netty's `LengthFieldBasedFrameDecoder` and
//! `LengthFieldPrepender`, zero-copy.

use super::{CodecError, Decoded, Decoder, Encoded, Encoder, DEFAULT_MAX_FRAME_LEN};

/// Byte order of a length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ByteOrder {
    /// Most significant byte first (network order; the default).
    #[default]
    BigEndian,
    /// Least significant byte first.
    LittleEndian,
}

/// Frames located by a length field in a header, with the semantics of Netty's
/// `LengthFieldBasedFrameDecoder` for decoding and `LengthFieldPrepender` for encoding.
///
/// # Decoding
///
/// Parameters (Netty's names in parentheses), set with [`LengthFieldCodec::builder`]:
///
/// * `length_field_offset` (`lengthFieldOffset`, default 0): where the field starts.
/// * `length_field_length` (`lengthFieldLength`, 1, 2, 3, 4 or 8; default 4): its size;
///   the value is unsigned.
/// * `byte_order` (default big-endian).
/// * `length_adjustment` (`lengthAdjustment`, signed, default 0): added to the field's
///   value to get the number of bytes that follow the length field.
/// * `initial_bytes_to_strip` (`initialBytesToStrip`, default 0): bytes removed from
///   the front of the frame in the decoded payload.
/// * `max_frame_length` (`maxFrameLength`, default [`DEFAULT_MAX_FRAME_LEN`]).
///
/// With `end = length_field_offset + length_field_length`, a frame is
///
/// ```text
/// frame_len = field value + length_adjustment + end
/// payload   = src[initial_bytes_to_strip .. frame_len],  consumed = frame_len
/// ```
///
/// Errors, raised as soon as the length field has arrived (before the body):
/// [`CodecError::AdjustedLengthTooShort`] if `frame_len < end`;
/// [`CodecError::FrameTooLong`] if `frame_len > max_frame_length` — like Netty, the
/// limit counts the *whole* frame, header included, before stripping;
/// [`CodecError::StripExceedsFrame`] if `initial_bytes_to_strip > frame_len`.
/// Unlike Netty (which reads 8-byte fields as a signed `long`), the field is always
/// unsigned; there is no discarding mode — errors close the connection.
///
/// # Encoding
///
/// Encoding is Netty's `LengthFieldPrepender`: the header is just a length field of
/// `length_field_length` bytes in `byte_order` (the same settings as the decoder),
/// holding
///
/// ```text
/// payload.len() + prepend_length_adjustment
///     (+ length_field_length if length_includes_length_field_length)
/// ```
///
/// Fails with [`CodecError::NegativeAdjustedLength`] if that is negative,
/// [`CodecError::LengthOverflow`] if it does not fit the field, and
/// [`CodecError::FrameTooLong`] if header + payload exceeds `max_frame_length`.
/// The decoder settings that undo this encoding are `length_field_offset = 0`,
/// `initial_bytes_to_strip = length_field_length` and
/// `length_adjustment = -(the encoder's additions)`;
/// [`LengthFieldCodec::new`] builds the plain variant of that.
///
/// ```
/// use netloop::codec::{ByteOrder, Decoder, Encoder, LengthFieldCodec};
///
/// // Netty's "2-byte length field at offset 1 in the middle of a 4-byte header,
/// // strip the first header field and the length field" example.
/// let mut codec = LengthFieldCodec::builder()
///     .length_field_offset(1)
///     .length_field_length(2)
///     .length_adjustment(1)
///     .initial_bytes_to_strip(3)
///     .build()
///     .unwrap();
/// let src = b"\xca\x00\x0c\xfeHELLO, WORLD";
/// let d = codec.decode(src).unwrap().unwrap();
/// assert_eq!(d.payload(src), b"\xfeHELLO, WORLD");
/// assert_eq!(d.consumed, 16);
///
/// // The common case: length of the payload only, header stripped.
/// let mut codec = LengthFieldCodec::new(2, ByteOrder::LittleEndian).unwrap();
/// let wire = codec.encode(b"hi").unwrap().to_vec();
/// assert_eq!(wire, b"\x02\x00hi");
/// assert_eq!(codec.decode(&wire).unwrap().unwrap().payload(&wire), b"hi");
/// ```
#[derive(Debug, Clone)]
pub struct LengthFieldCodec {
    cfg: LengthFieldCodecBuilder,
}

/// Builder for [`LengthFieldCodec`]; see there for the meaning of each setting.
/// [`build`](Self::build) validates the combination.
#[derive(Debug, Clone)]
pub struct LengthFieldCodecBuilder {
    length_field_offset: usize,
    length_field_length: usize,
    byte_order: ByteOrder,
    length_adjustment: i64,
    initial_bytes_to_strip: usize,
    max_frame_length: usize,
    prepend_length_adjustment: i64,
    length_includes_length_field_length: bool,
}

impl Default for LengthFieldCodecBuilder {
    fn default() -> Self {
        LengthFieldCodecBuilder {
            length_field_offset: 0,
            length_field_length: 4,
            byte_order: ByteOrder::BigEndian,
            length_adjustment: 0,
            initial_bytes_to_strip: 0,
            max_frame_length: DEFAULT_MAX_FRAME_LEN,
            prepend_length_adjustment: 0,
            length_includes_length_field_length: false,
        }
    }
}

impl LengthFieldCodecBuilder {
    /// Offset of the length field in the frame (default 0).
    pub fn length_field_offset(mut self, offset: usize) -> Self {
        self.length_field_offset = offset;
        self
    }

    /// Size of the length field: 1, 2, 3, 4 or 8 bytes (default 4). Used for both
    /// decoding and encoding.
    pub fn length_field_length(mut self, len: usize) -> Self {
        self.length_field_length = len;
        self
    }

    /// Byte order of the length field (default big-endian). Used for both decoding
    /// and encoding.
    pub fn byte_order(mut self, order: ByteOrder) -> Self {
        self.byte_order = order;
        self
    }

    /// Decoding: added to the field value to get the length of the rest of the
    /// frame after the length field (default 0).
    pub fn length_adjustment(mut self, adjustment: i64) -> Self {
        self.length_adjustment = adjustment;
        self
    }

    /// Decoding: bytes to drop from the front of each frame (default 0).
    pub fn initial_bytes_to_strip(mut self, strip: usize) -> Self {
        self.initial_bytes_to_strip = strip;
        self
    }

    /// Maximum length of a whole frame, header included (default
    /// [`DEFAULT_MAX_FRAME_LEN`]).
    pub fn max_frame_length(mut self, max: usize) -> Self {
        self.max_frame_length = max;
        self
    }

    /// Encoding: added to the payload length before it is written (default 0).
    pub fn prepend_length_adjustment(mut self, adjustment: i64) -> Self {
        self.prepend_length_adjustment = adjustment;
        self
    }

    /// Encoding: whether the written length also counts the length field itself
    /// (default `false`).
    pub fn length_includes_length_field_length(mut self, includes: bool) -> Self {
        self.length_includes_length_field_length = includes;
        self
    }

    /// Validates the settings.
    ///
    /// Fails with [`CodecError::InvalidConfig`] if the length field length is not
    /// 1, 2, 3, 4 or 8, if the maximum frame length is 0, if the length field does
    /// not end within the maximum frame length, or if more bytes are to be stripped
    /// than the maximum frame length.
    pub fn build(self) -> Result<LengthFieldCodec, CodecError> {
        if !matches!(self.length_field_length, 1 | 2 | 3 | 4 | 8) {
            return Err(CodecError::InvalidConfig(format!(
                "length field length must be 1, 2, 3, 4 or 8, not {}",
                self.length_field_length
            )));
        }
        if self.max_frame_length == 0 {
            return Err(CodecError::InvalidConfig(
                "max frame length must be positive".into(),
            ));
        }
        let end = self
            .length_field_offset
            .checked_add(self.length_field_length);
        if !matches!(end, Some(end) if end <= self.max_frame_length) {
            return Err(CodecError::InvalidConfig(format!(
                "length field (offset {}, {} bytes) does not fit in the max frame length {}",
                self.length_field_offset, self.length_field_length, self.max_frame_length
            )));
        }
        if self.initial_bytes_to_strip > self.max_frame_length {
            return Err(CodecError::InvalidConfig(format!(
                "initial bytes to strip ({}) exceeds the max frame length {}",
                self.initial_bytes_to_strip, self.max_frame_length
            )));
        }
        Ok(LengthFieldCodec { cfg: self })
    }
}

impl LengthFieldCodec {
    /// A builder with the defaults listed on [`LengthFieldCodec`] (Netty's defaults:
    /// nothing stripped, no adjustments).
    pub fn builder() -> LengthFieldCodecBuilder {
        LengthFieldCodecBuilder::default()
    }

    /// The plain variant: a `length_field_length`-byte length of the payload only, at
    /// offset 0, stripped when decoding and prepended when encoding, so decoding and
    /// re-encoding reproduces the wire bytes exactly. Maximum frame length
    /// [`DEFAULT_MAX_FRAME_LEN`] (header included).
    pub fn new(length_field_length: usize, order: ByteOrder) -> Result<Self, CodecError> {
        Self::builder()
            .length_field_length(length_field_length)
            .byte_order(order)
            .initial_bytes_to_strip(length_field_length)
            .build()
    }

    /// The maximum frame length (header included).
    pub fn max_frame_length(&self) -> usize {
        self.cfg.max_frame_length
    }

    /// The length field size in bytes.
    pub fn length_field_length(&self) -> usize {
        self.cfg.length_field_length
    }

    /// The length field byte order.
    pub fn byte_order(&self) -> ByteOrder {
        self.cfg.byte_order
    }
}

fn read_uint(bytes: &[u8], order: ByteOrder) -> u64 {
    let fold = |acc: u64, &b: &u8| (acc << 8) | u64::from(b);
    match order {
        ByteOrder::BigEndian => bytes.iter().fold(0, fold),
        ByteOrder::LittleEndian => bytes.iter().rev().fold(0, fold),
    }
}

impl Decoder for LengthFieldCodec {
    fn decode(&mut self, src: &[u8]) -> Result<Option<Decoded>, CodecError> {
        let c = &self.cfg;
        // Validated at build time: no overflow, and end <= max_frame_length.
        let end = c.length_field_offset + c.length_field_length;
        if src.len() < end {
            return Ok(None);
        }
        let raw = read_uint(&src[c.length_field_offset..end], c.byte_order);
        let frame = i128::from(raw) + i128::from(c.length_adjustment) + end as i128;
        if frame < end as i128 {
            return Err(CodecError::AdjustedLengthTooShort {
                adjusted: frame,
                min: end,
            });
        }
        if frame > c.max_frame_length as i128 {
            return Err(CodecError::FrameTooLong {
                len: u64::try_from(frame).unwrap_or(u64::MAX),
                max: c.max_frame_length,
            });
        }
        // frame <= max_frame_length, a usize.
        let frame = frame as usize;
        if c.initial_bytes_to_strip > frame {
            return Err(CodecError::StripExceedsFrame {
                strip: c.initial_bytes_to_strip,
                frame_len: frame,
            });
        }
        if src.len() < frame {
            return Ok(None);
        }
        Ok(Some(Decoded {
            payload: c.initial_bytes_to_strip..frame,
            consumed: frame,
        }))
    }
}

impl Encoder for LengthFieldCodec {
    fn encode<'a>(&'a self, payload: &'a [u8]) -> Result<Encoded<'a>, CodecError> {
        let c = &self.cfg;
        let field = c.length_field_length;
        let mut length = payload.len() as i128 + i128::from(c.prepend_length_adjustment);
        if c.length_includes_length_field_length {
            length += field as i128;
        }
        if length < 0 {
            return Err(CodecError::NegativeAdjustedLength { adjusted: length });
        }
        if length >= 1i128 << (8 * field) {
            return Err(CodecError::LengthOverflow {
                len: length,
                field_len: field,
            });
        }
        let frame_len = field as u64 + payload.len() as u64;
        CodecError::check_len(frame_len, c.max_frame_length)?;
        let value = length as u64;
        let head = match c.byte_order {
            ByteOrder::BigEndian => {
                let be = value.to_be_bytes();
                let mut h = [0u8; 8];
                h[..field].copy_from_slice(&be[8 - field..]);
                h
            }
            ByteOrder::LittleEndian => value.to_le_bytes(),
        };
        Ok(Encoded::with_head(&head[..field], payload, &[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &[u8] = b"HELLO, WORLD";

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// Decodes exactly one frame from `src`, checking it is not decodable earlier.
    fn one(codec: &mut LengthFieldCodec, src: &[u8]) -> Vec<u8> {
        for n in 0..src.len() {
            assert_eq!(codec.decode(&src[..n]).unwrap(), None, "prefix {n}");
        }
        let d = codec.decode(src).unwrap().unwrap();
        assert_eq!(d.consumed, src.len());
        d.payload(src).to_vec()
    }

    // ---- The worked examples of Netty's LengthFieldBasedFrameDecoder javadoc ----

    #[test]
    fn netty_2_byte_length_offset_0_no_strip() {
        // lengthFieldOffset 0, lengthFieldLength 2, lengthAdjustment 0, initialBytesToStrip 0
        // BEFORE (14 bytes): 0x000C "HELLO, WORLD"  AFTER (14 bytes): the same
        let mut c = LengthFieldCodec::builder()
            .length_field_length(2)
            .build()
            .unwrap();
        let src = cat(&[&[0x00, 0x0C], HELLO]);
        assert_eq!(src.len(), 14);
        assert_eq!(one(&mut c, &src), src);
    }

    #[test]
    fn netty_2_byte_length_offset_0_strip_header() {
        // initialBytesToStrip 2: BEFORE (14 bytes) -> AFTER (12 bytes) "HELLO, WORLD"
        let mut c = LengthFieldCodec::builder()
            .length_field_length(2)
            .initial_bytes_to_strip(2)
            .build()
            .unwrap();
        let src = cat(&[&[0x00, 0x0C], HELLO]);
        assert_eq!(one(&mut c, &src), HELLO);
    }

    #[test]
    fn netty_length_includes_header() {
        // The length field is the whole message: lengthAdjustment -2.
        // BEFORE (14 bytes): 0x000E "HELLO, WORLD" AFTER (14 bytes): the same
        let mut c = LengthFieldCodec::builder()
            .length_field_length(2)
            .length_adjustment(-2)
            .build()
            .unwrap();
        let src = cat(&[&[0x00, 0x0E], HELLO]);
        assert_eq!(one(&mut c, &src), src);
    }

    #[test]
    fn netty_3_byte_length_at_end_of_5_byte_header() {
        // lengthFieldOffset 2, lengthFieldLength 3, lengthAdjustment 0, strip 0
        // BEFORE (17 bytes): Header 1 0xCAFE | Length 0x00000C | content; AFTER: the same
        let mut c = LengthFieldCodec::builder()
            .length_field_offset(2)
            .length_field_length(3)
            .build()
            .unwrap();
        let src = cat(&[&[0xCA, 0xFE], &[0x00, 0x00, 0x0C], HELLO]);
        assert_eq!(src.len(), 17);
        assert_eq!(one(&mut c, &src), src);
    }

    #[test]
    fn netty_3_byte_length_at_start_of_5_byte_header() {
        // lengthFieldOffset 0, lengthFieldLength 3, lengthAdjustment 2, strip 0
        // BEFORE (17 bytes): Length 0x00000C | Header 1 0xCAFE | content; AFTER: the same
        let mut c = LengthFieldCodec::builder()
            .length_field_length(3)
            .length_adjustment(2)
            .build()
            .unwrap();
        let src = cat(&[&[0x00, 0x00, 0x0C], &[0xCA, 0xFE], HELLO]);
        assert_eq!(one(&mut c, &src), src);
    }

    #[test]
    fn netty_hdr1_len_hdr2_strip_hdr1_and_len() {
        // lengthFieldOffset 1, lengthFieldLength 2, lengthAdjustment 1, strip 3
        // BEFORE (16 bytes): HDR1 0xCA | LEN 0x000C | HDR2 0xFE | content
        // AFTER (13 bytes): HDR2 0xFE | content
        let mut c = LengthFieldCodec::builder()
            .length_field_offset(1)
            .length_field_length(2)
            .length_adjustment(1)
            .initial_bytes_to_strip(3)
            .build()
            .unwrap();
        let src = cat(&[&[0xCA], &[0x00, 0x0C], &[0xFE], HELLO]);
        assert_eq!(src.len(), 16);
        let out = one(&mut c, &src);
        assert_eq!(out.len(), 13);
        assert_eq!(out, cat(&[&[0xFE], HELLO]));
    }

    #[test]
    fn netty_hdr1_len_hdr2_length_is_whole_message() {
        // As above, but LEN counts the whole message (0x0010): lengthAdjustment -3.
        let mut c = LengthFieldCodec::builder()
            .length_field_offset(1)
            .length_field_length(2)
            .length_adjustment(-3)
            .initial_bytes_to_strip(3)
            .build()
            .unwrap();
        let src = cat(&[&[0xCA], &[0x00, 0x10], &[0xFE], HELLO]);
        assert_eq!(one(&mut c, &src), cat(&[&[0xFE], HELLO]));
    }

    // ---- Netty's LengthFieldPrepender javadoc examples ----

    #[test]
    fn netty_prepender_2_bytes() {
        let c = LengthFieldCodec::builder()
            .length_field_length(2)
            .build()
            .unwrap();
        let e = c.encode(HELLO).unwrap();
        assert_eq!(e.head(), [0x00, 0x0C]);
        assert_eq!(e.body, HELLO);
        assert_eq!(e.len(), 14);
    }

    #[test]
    fn netty_prepender_includes_length_field() {
        let c = LengthFieldCodec::builder()
            .length_field_length(2)
            .length_includes_length_field_length(true)
            .build()
            .unwrap();
        assert_eq!(c.encode(HELLO).unwrap().head(), [0x00, 0x0E]);
    }

    // ---- Byte orders and field sizes ----

    #[test]
    fn all_field_sizes_both_orders_round_trip() {
        for field in [1usize, 2, 3, 4, 8] {
            for order in [ByteOrder::BigEndian, ByteOrder::LittleEndian] {
                let mut c = LengthFieldCodec::new(field, order).unwrap();
                let payload = vec![0xABu8; 200];
                let e = c.encode(&payload).unwrap();
                assert_eq!(e.head().len(), field);
                let mut expect = [0u8; 8];
                expect[0] = 200;
                if order == ByteOrder::BigEndian {
                    expect[..field].reverse();
                }
                assert_eq!(e.head(), &expect[..field], "{field} {order:?}");
                let wire = e.to_vec();
                assert_eq!(one(&mut c, &wire), payload);
            }
        }
    }

    #[test]
    fn multi_byte_values() {
        assert_eq!(
            read_uint(&[0x01, 0x02, 0x03], ByteOrder::BigEndian),
            0x010203
        );
        assert_eq!(
            read_uint(&[0x01, 0x02, 0x03], ByteOrder::LittleEndian),
            0x030201
        );
        assert_eq!(read_uint(&[0xff; 8], ByteOrder::BigEndian), u64::MAX);
        let c = LengthFieldCodec::new(3, ByteOrder::LittleEndian).unwrap();
        let p = vec![0u8; 0x1_0203];
        assert_eq!(c.encode(&p).unwrap().head(), [0x03, 0x02, 0x01]);
        let c = LengthFieldCodec::new(3, ByteOrder::BigEndian).unwrap();
        assert_eq!(c.encode(&p).unwrap().head(), [0x01, 0x02, 0x03]);
    }

    // ---- Errors ----

    #[test]
    fn max_frame_length_counts_the_whole_frame() {
        // 2-byte header + 10 payload = 12 bytes.
        let build = |max| {
            LengthFieldCodec::builder()
                .length_field_length(2)
                .initial_bytes_to_strip(2)
                .max_frame_length(max)
                .build()
                .unwrap()
        };
        assert_eq!(build(12).decode(b"\x00\x0a").unwrap(), None);
        assert_eq!(
            build(11).decode(b"\x00\x0a"),
            Err(CodecError::FrameTooLong { len: 12, max: 11 })
        );
        assert_eq!(
            build(11).encode(&[0; 10]),
            Err(CodecError::FrameTooLong { len: 12, max: 11 })
        );
        assert!(build(12).encode(&[0; 10]).is_ok());
    }

    #[test]
    fn huge_8_byte_length_is_too_long_not_overflow() {
        let mut c = LengthFieldCodec::builder()
            .length_field_length(8)
            .length_adjustment(i64::MAX)
            .build()
            .unwrap();
        assert_eq!(
            c.decode(&[0xff; 8]),
            Err(CodecError::FrameTooLong {
                len: u64::MAX,
                max: DEFAULT_MAX_FRAME_LEN
            })
        );
    }

    #[test]
    fn adjusted_length_too_short() {
        let mut c = LengthFieldCodec::builder()
            .length_field_offset(1)
            .length_field_length(2)
            .length_adjustment(-5)
            .build()
            .unwrap();
        assert_eq!(
            c.decode(b"\x00\x00\x02"),
            Err(CodecError::AdjustedLengthTooShort {
                adjusted: 0,
                min: 3
            })
        );
        assert_eq!(
            c.decode(b"\x00\x00\x01"),
            Err(CodecError::AdjustedLengthTooShort {
                adjusted: -1,
                min: 3
            })
        );
        // Exactly the header: an empty frame is fine.
        let d = c.decode(b"\x00\x00\x05").unwrap().unwrap();
        assert_eq!((d.payload, d.consumed), (0..3, 3));
    }

    #[test]
    fn strip_exceeds_frame() {
        let mut c = LengthFieldCodec::builder()
            .length_field_length(1)
            .initial_bytes_to_strip(4)
            .build()
            .unwrap();
        assert_eq!(
            c.decode(b"\x02"),
            Err(CodecError::StripExceedsFrame {
                strip: 4,
                frame_len: 3
            })
        );
        assert_eq!(c.decode(b"\x03abc").unwrap().unwrap().payload, 4..4);
    }

    #[test]
    fn prepender_errors() {
        let c = LengthFieldCodec::builder()
            .length_field_length(1)
            .build()
            .unwrap();
        assert!(c.encode(&[0; 255]).is_ok());
        assert_eq!(
            c.encode(&[0; 256]),
            Err(CodecError::LengthOverflow {
                len: 256,
                field_len: 1
            })
        );
        let c = LengthFieldCodec::builder()
            .length_field_length(1)
            .length_includes_length_field_length(true)
            .build()
            .unwrap();
        assert!(matches!(
            c.encode(&[0; 255]),
            Err(CodecError::LengthOverflow { len: 256, .. })
        ));
        let c = LengthFieldCodec::builder()
            .length_field_length(2)
            .prepend_length_adjustment(-3)
            .build()
            .unwrap();
        assert_eq!(
            c.encode(b"ab"),
            Err(CodecError::NegativeAdjustedLength { adjusted: -1 })
        );
        assert_eq!(c.encode(b"abc").unwrap().head(), [0, 0]);
    }

    #[test]
    fn prepender_and_decoder_with_adjustments_round_trip() {
        let mut c = LengthFieldCodec::builder()
            .length_field_length(2)
            .prepend_length_adjustment(5)
            .length_includes_length_field_length(true)
            .length_adjustment(-7)
            .initial_bytes_to_strip(2)
            .build()
            .unwrap();
        let wire = c.encode(HELLO).unwrap().to_vec();
        assert_eq!(&wire[..2], [0, 12 + 5 + 2]);
        assert_eq!(one(&mut c, &wire), HELLO);
    }

    #[test]
    fn config_validation() {
        for bad in [0usize, 5, 6, 7, 9, 16] {
            assert!(matches!(
                LengthFieldCodec::builder().length_field_length(bad).build(),
                Err(CodecError::InvalidConfig(_))
            ));
        }
        assert!(matches!(
            LengthFieldCodec::builder().max_frame_length(0).build(),
            Err(CodecError::InvalidConfig(_))
        ));
        assert!(matches!(
            LengthFieldCodec::builder()
                .length_field_offset(3)
                .length_field_length(2)
                .max_frame_length(4)
                .build(),
            Err(CodecError::InvalidConfig(_))
        ));
        assert!(LengthFieldCodec::builder()
            .length_field_offset(2)
            .length_field_length(2)
            .max_frame_length(4)
            .build()
            .is_ok());
        assert!(matches!(
            LengthFieldCodec::builder()
                .length_field_offset(usize::MAX)
                .build(),
            Err(CodecError::InvalidConfig(_))
        ));
        assert!(matches!(
            LengthFieldCodec::builder()
                .initial_bytes_to_strip(11)
                .max_frame_length(10)
                .build(),
            Err(CodecError::InvalidConfig(_))
        ));
    }
}
