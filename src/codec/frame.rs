//! [`FrameCodec`]: netloop's own length-prefixed message format.

use super::{CodecError, Decoded, Decoder, Encoded, Encoder, DEFAULT_MAX_FRAME_LEN};

/// Length of the [`FrameCodec`] header.
const HEADER: usize = 4;

/// netloop's built-in message format, the simplest choice for applications that
/// just want to exchange messages.
///
/// ```text
/// +----------------------------+---------------------+
/// | length: u32, big-endian    | payload             |
/// | (payload bytes only)       | (`length` bytes)    |
/// +----------------------------+---------------------+
/// ```
///
/// The length counts the payload only (not the 4 header bytes); an empty payload is
/// the 4 bytes `00 00 00 00`. Decoding yields the payload without the header.
///
/// **Limit.** The maximum frame length (default [`DEFAULT_MAX_FRAME_LEN`]) counts the
/// *payload*. The announced length is checked as soon as the 4 header bytes have
/// arrived, so an over-long frame fails with [`CodecError::FrameTooLong`] before its
/// body is received. Encoding rejects payloads over the limit the same way.
///
/// It is wire-compatible with a [`LengthFieldCodec`](super::LengthFieldCodec) with a
/// 4-byte big-endian length field at offset 0 and 4 initial bytes stripped (and with
/// `length-field=4,be` of [`CodecSpec`](super::CodecSpec)), but has a simpler
/// configuration and a limit that counts the payload only.
///
/// ```
/// use netloop::codec::{Decoder, Encoder, FrameCodec};
///
/// let mut codec = FrameCodec::new();
/// let wire = codec.encode(b"hello").unwrap().to_vec();
/// assert_eq!(wire, b"\x00\x00\x00\x05hello");
/// assert_eq!(codec.decode(&wire[..6]).unwrap(), None);
/// let d = codec.decode(&wire).unwrap().unwrap();
/// assert_eq!((d.payload, d.consumed), (4..9, 9));
/// ```
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame_len: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameCodec {
    /// A frame codec with maximum payload length [`DEFAULT_MAX_FRAME_LEN`].
    pub fn new() -> Self {
        FrameCodec {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// Sets the maximum payload length (values above `u32::MAX` act as `u32::MAX`).
    pub fn with_max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max;
        self
    }

    /// The maximum payload length.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }
}

impl Decoder for FrameCodec {
    #[inline]
    fn decode(&mut self, src: &[u8]) -> Result<Option<Decoded>, CodecError> {
        let Some(header) = src.first_chunk::<HEADER>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*header);
        CodecError::check_len(u64::from(len), self.max_frame_len)?;
        // len <= max_frame_len: a usize, and HEADER + len cannot overflow on 64-bit;
        // on 32-bit checked_add guards it.
        let end = (len as usize)
            .checked_add(HEADER)
            .ok_or(CodecError::LengthOverflow {
                len: i128::from(len),
                field_len: std::mem::size_of::<usize>(),
            })?;
        if src.len() < end {
            return Ok(None);
        }
        Ok(Some(Decoded {
            payload: HEADER..end,
            consumed: end,
        }))
    }
}

impl Encoder for FrameCodec {
    fn encode<'a>(&'a self, payload: &'a [u8]) -> Result<Encoded<'a>, CodecError> {
        CodecError::check_len(payload.len() as u64, self.max_frame_len)?;
        let len = u32::try_from(payload.len()).map_err(|_| CodecError::LengthOverflow {
            len: payload.len() as i128,
            field_len: HEADER,
        })?;
        Ok(Encoded::with_head(&len.to_be_bytes(), payload, &[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_payload() {
        let mut c = FrameCodec::new();
        let wire = c.encode(b"").unwrap().to_vec();
        assert_eq!(wire, [0, 0, 0, 0]);
        let d = c.decode(&wire).unwrap().unwrap();
        assert_eq!((d.payload, d.consumed), (4..4, 4));
    }

    #[test]
    fn needs_header_then_body() {
        let mut c = FrameCodec::new();
        assert_eq!(c.decode(b"").unwrap(), None);
        assert_eq!(c.decode(b"\x00\x00\x00").unwrap(), None);
        assert_eq!(c.decode(b"\x00\x00\x00\x02a").unwrap(), None);
        let d = c.decode(b"\x00\x00\x00\x02abX").unwrap().unwrap();
        assert_eq!((d.payload, d.consumed), (4..6, 6));
    }

    #[test]
    fn limit_checked_on_header() {
        let mut c = FrameCodec::new().with_max_frame_len(3);
        assert!(c.decode(b"\x00\x00\x00\x03").unwrap().is_none());
        assert_eq!(
            c.decode(b"\x00\x00\x00\x04"),
            Err(CodecError::FrameTooLong { len: 4, max: 3 })
        );
        let mut c = FrameCodec::new();
        assert_eq!(
            c.decode(b"\xff\xff\xff\xff"),
            Err(CodecError::FrameTooLong {
                len: u64::from(u32::MAX),
                max: DEFAULT_MAX_FRAME_LEN
            })
        );
        assert_eq!(
            FrameCodec::new().with_max_frame_len(3).encode(b"abcd"),
            Err(CodecError::FrameTooLong { len: 4, max: 3 })
        );
    }

    #[test]
    fn huge_limit_still_rejects_unrepresentable_payloads() {
        let c = FrameCodec::new().with_max_frame_len(usize::MAX);
        let mut d = c.clone();
        assert!(d.decode(b"\xff\xff\xff\xff").unwrap().is_none());
        assert_eq!(c.encode(b"x").unwrap().head(), [0, 0, 0, 1]);
    }
}
