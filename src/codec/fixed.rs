//! [`FixedLengthCodec`]: every frame is exactly *n* bytes.

use super::{CodecError, Decoded, Decoder, Encoded, Encoder, DEFAULT_MAX_FRAME_LEN};

/// Every frame is exactly `n` bytes; there is no header or delimiter.
///
/// Decoding yields a frame as soon as `n` bytes are available. Encoding accepts only
/// payloads of exactly `n` bytes ([`CodecError::LengthMismatch`] otherwise) and writes
/// them unchanged.
///
/// `n` must be at least 1 and at most the maximum frame length (default
/// [`DEFAULT_MAX_FRAME_LEN`]), else [`CodecError::InvalidConfig`]; since the length is
/// fixed, the limit is checked once, at construction.
///
/// ```
/// use netloop::codec::{Decoder, Encoder, FixedLengthCodec};
///
/// let mut codec = FixedLengthCodec::new(4).unwrap();
/// assert_eq!(codec.decode(b"abc").unwrap(), None);
/// let d = codec.decode(b"abcdef").unwrap().unwrap();
/// assert_eq!((d.payload, d.consumed), (0..4, 4));
///
/// assert_eq!(codec.encode(b"wxyz").unwrap().to_vec(), b"wxyz");
/// assert!(codec.encode(b"short").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct FixedLengthCodec {
    len: usize,
}

impl FixedLengthCodec {
    /// Frames of `len` bytes, with the default maximum frame length.
    pub fn new(len: usize) -> Result<Self, CodecError> {
        Self::with_max_frame_len(len, DEFAULT_MAX_FRAME_LEN)
    }

    /// Frames of `len` bytes, checked against the maximum frame length `max`.
    pub fn with_max_frame_len(len: usize, max: usize) -> Result<Self, CodecError> {
        if len == 0 {
            return Err(CodecError::InvalidConfig(
                "fixed frame length must be at least 1".into(),
            ));
        }
        if len > max {
            return Err(CodecError::InvalidConfig(format!(
                "fixed frame length {len} exceeds the maximum frame length {max}"
            )));
        }
        Ok(FixedLengthCodec { len })
    }

    /// The frame length.
    pub fn frame_len(&self) -> usize {
        self.len
    }
}

impl Decoder for FixedLengthCodec {
    #[inline]
    fn decode(&mut self, src: &[u8]) -> Result<Option<Decoded>, CodecError> {
        Ok((src.len() >= self.len).then_some(Decoded {
            payload: 0..self.len,
            consumed: self.len,
        }))
    }
}

impl Encoder for FixedLengthCodec {
    fn encode<'a>(&'a self, payload: &'a [u8]) -> Result<Encoded<'a>, CodecError> {
        if payload.len() != self.len {
            return Err(CodecError::LengthMismatch {
                expected: self.len,
                actual: payload.len(),
            });
        }
        Ok(Encoded::new(payload, &[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_consecutive_frames() {
        let mut c = FixedLengthCodec::new(3).unwrap();
        let mut src: &[u8] = b"abcdefgh";
        let mut out = Vec::new();
        while let Some(d) = c.decode(src).unwrap() {
            out.push(d.payload(src).to_vec());
            src = &src[d.consumed..];
        }
        assert_eq!(out, vec![b"abc".to_vec(), b"def".to_vec()]);
        assert_eq!(src, b"gh");
    }

    #[test]
    fn config_validation() {
        assert!(matches!(
            FixedLengthCodec::new(0),
            Err(CodecError::InvalidConfig(_))
        ));
        assert!(matches!(
            FixedLengthCodec::with_max_frame_len(5, 4),
            Err(CodecError::InvalidConfig(_))
        ));
        assert_eq!(
            FixedLengthCodec::with_max_frame_len(4, 4)
                .unwrap()
                .frame_len(),
            4
        );
    }

    #[test]
    fn encode_checks_length() {
        let c = FixedLengthCodec::new(2).unwrap();
        assert_eq!(c.encode(b"ab").unwrap().parts(), [&b""[..], b"ab", b""]);
        assert_eq!(
            c.encode(b"a"),
            Err(CodecError::LengthMismatch {
                expected: 2,
                actual: 1
            })
        );
        assert_eq!(
            c.encode(b"abc"),
            Err(CodecError::LengthMismatch {
                expected: 2,
                actual: 3
            })
        );
    }
}
