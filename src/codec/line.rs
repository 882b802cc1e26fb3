//! [`LineCodec`]: text lines ending in `\n` or `\r\n`.

use super::search::find_byte;
use super::{CodecError, Decoded, Decoder, Encoded, Encoder, DEFAULT_MAX_FRAME_LEN};

/// The line ending [`LineCodec`] appends when encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LineEnding {
    /// `\n` (the default).
    #[default]
    Lf,
    /// `\r\n`.
    CrLf,
}

impl LineEnding {
    /// The ending's bytes.
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            LineEnding::Lf => b"\n",
            LineEnding::CrLf => b"\r\n",
        }
    }
}

/// Frames are lines terminated by `\n` or `\r\n`.
///
/// **Decoding.** A frame ends at the first `\n`. If the byte before it is `\r`, the
/// two bytes `\r\n` form the line ending together; a lone `\n` is accepted too.
/// By default the ending is stripped from the payload
/// ([`keep_delimiter`](Self::keep_delimiter) keeps it, exactly as received). Any other
/// byte, including a `\r` not followed by `\n`, is payload.
///
/// **Limit.** The maximum frame length (default [`DEFAULT_MAX_FRAME_LEN`]) counts the
/// line *without* its ending, in both modes. A longer line fails with
/// [`CodecError::FrameTooLong`]; once `max + 2` bytes have been searched without a
/// `\n` the decoder fails with [`CodecError::DelimiterNotFound`] instead of waiting.
///
/// **Encoding** appends `\n` (default) or `\r\n` ([`with_ending`](Self::with_ending)).
/// Payloads that the peer would split differently are rejected with
/// [`CodecError::DelimiterInPayload`]: any payload containing `\n`, and with the `\n`
/// ending also a payload ending in `\r`. Payloads longer than the maximum are
/// rejected with [`CodecError::FrameTooLong`].
///
/// **State.** The decoder remembers how far it searched for `\n`, so a long line
/// arriving in many reads is scanned once.
///
/// ```
/// use netloop::codec::{Decoder, Encoder, LineCodec, LineEnding};
///
/// let mut codec = LineCodec::new().with_ending(LineEnding::CrLf);
/// let src = b"PING\r\nPONG\n";
/// let d = codec.decode(src).unwrap().unwrap();
/// assert_eq!(&src[d.payload.clone()], b"PING");
/// assert_eq!(d.consumed, 6);
/// let d2 = codec.decode(&src[d.consumed..]).unwrap().unwrap();
/// assert_eq!(d2.payload(&src[d.consumed..]), b"PONG");
///
/// assert_eq!(codec.encode(b"OK").unwrap().to_vec(), b"OK\r\n");
/// assert!(codec.encode(b"two\nlines").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct LineCodec {
    max_frame_len: usize,
    strip: bool,
    ending: LineEnding,
    /// Bytes of the current `src` already searched without finding `\n`.
    searched: usize,
}

impl Default for LineCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl LineCodec {
    /// A line codec: strip the ending, encode with `\n`, max frame length
    /// [`DEFAULT_MAX_FRAME_LEN`].
    pub fn new() -> Self {
        LineCodec {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            strip: true,
            ending: LineEnding::Lf,
            searched: 0,
        }
    }

    /// Sets the maximum line length (without the ending).
    pub fn with_max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max;
        self
    }

    /// Keeps (`true`) or strips (`false`, default) the line ending in decoded payloads.
    pub fn keep_delimiter(mut self, keep: bool) -> Self {
        self.strip = !keep;
        self
    }

    /// Sets the ending appended by [`encode`](Encoder::encode).
    pub fn with_ending(mut self, ending: LineEnding) -> Self {
        self.ending = ending;
        self
    }

    /// The maximum line length (without the ending).
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }
}

impl Decoder for LineCodec {
    fn decode(&mut self, src: &[u8]) -> Result<Option<Decoded>, CodecError> {
        let max = self.max_frame_len;
        // A line of `max` bytes plus "\r\n" is the longest acceptable frame.
        let window = max.saturating_add(2);
        let end = src.len().min(window);
        let from = self.searched.min(end);
        match find_byte(b'\n', &src[from..end]) {
            Some(rel) => {
                let nl = from + rel;
                self.searched = 0;
                let content_end = if nl > 0 && src[nl - 1] == b'\r' {
                    nl - 1
                } else {
                    nl
                };
                if content_end > max {
                    return Err(CodecError::FrameTooLong {
                        len: content_end as u64,
                        max,
                    });
                }
                let payload = if self.strip {
                    0..content_end
                } else {
                    0..nl + 1
                };
                Ok(Some(Decoded {
                    payload,
                    consumed: nl + 1,
                }))
            }
            None if end >= window => {
                self.searched = 0;
                Err(CodecError::DelimiterNotFound { searched: end, max })
            }
            None => {
                self.searched = end;
                Ok(None)
            }
        }
    }

    fn reset(&mut self) {
        self.searched = 0;
    }
}

impl Encoder for LineCodec {
    fn encode<'a>(&'a self, payload: &'a [u8]) -> Result<Encoded<'a>, CodecError> {
        CodecError::check_len(payload.len() as u64, self.max_frame_len)?;
        if let Some(position) = find_byte(b'\n', payload) {
            return Err(CodecError::DelimiterInPayload { position });
        }
        if self.ending == LineEnding::Lf && payload.last() == Some(&b'\r') {
            return Err(CodecError::DelimiterInPayload {
                position: payload.len() - 1,
            });
        }
        Ok(Encoded::new(payload, self.ending.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(codec: &mut LineCodec, mut src: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(d) = codec.decode(src).unwrap() {
            out.push(src[d.payload.clone()].to_vec());
            src = &src[d.consumed..];
        }
        out
    }

    #[test]
    fn lf_and_crlf_stripped() {
        let mut c = LineCodec::new();
        assert_eq!(
            frames(&mut c, b"a\nbc\r\n\n\r\nx\ry\n"),
            vec![
                b"a".to_vec(),
                b"bc".to_vec(),
                vec![],
                vec![],
                b"x\ry".to_vec()
            ]
        );
    }

    #[test]
    fn keep_delimiter_keeps_what_was_received() {
        let mut c = LineCodec::new().keep_delimiter(true);
        assert_eq!(
            frames(&mut c, b"a\nb\r\n"),
            vec![b"a\n".to_vec(), b"b\r\n".to_vec()]
        );
    }

    #[test]
    fn partial_then_complete_uses_saved_search_position() {
        let mut c = LineCodec::new();
        let src = b"hello world\r\n";
        for n in 0..src.len() {
            assert_eq!(c.decode(&src[..n]).unwrap(), None, "prefix {n}");
        }
        assert_eq!(c.searched, src.len() - 1);
        let d = c.decode(src).unwrap().unwrap();
        assert_eq!(d.payload, 0..11);
        assert_eq!(d.consumed, 13);
        assert_eq!(c.searched, 0);
    }

    #[test]
    fn cr_split_from_lf_across_reads() {
        let mut c = LineCodec::new();
        assert_eq!(c.decode(b"ab\r").unwrap(), None);
        let d = c.decode(b"ab\r\n").unwrap().unwrap();
        assert_eq!(d.payload, 0..2);
    }

    #[test]
    fn limit_exact_and_over() {
        let mut c = LineCodec::new().with_max_frame_len(4);
        assert_eq!(c.decode(b"abcd\r\n").unwrap().unwrap().payload, 0..4);
        assert_eq!(c.decode(b"abcd\n").unwrap().unwrap().payload, 0..4);
        // `\n` at index 5 without `\r`: 5-byte line.
        assert_eq!(
            c.decode(b"abcde\n"),
            Err(CodecError::FrameTooLong { len: 5, max: 4 })
        );
        // Still possible: "abcd\r" may be followed by "\n".
        assert_eq!(c.decode(b"abcd\r").unwrap(), None);
        assert_eq!(
            c.decode(b"abcdef"),
            Err(CodecError::DelimiterNotFound {
                searched: 6,
                max: 4
            })
        );
    }

    #[test]
    fn gives_up_without_reading_the_whole_buffer() {
        let mut c = LineCodec::new().with_max_frame_len(10);
        let mut src = vec![b'x'; 1000];
        src.push(b'\n');
        assert!(matches!(
            c.decode(&src),
            Err(CodecError::DelimiterNotFound {
                searched: 12,
                max: 10
            })
        ));
    }

    #[test]
    fn zero_max_allows_empty_lines_only() {
        let mut c = LineCodec::new().with_max_frame_len(0);
        assert_eq!(c.decode(b"\r\n").unwrap().unwrap().consumed, 2);
        assert_eq!(c.decode(b"\n").unwrap().unwrap().consumed, 1);
        assert!(c.decode(b"a\n").is_err());
    }

    #[test]
    fn reset_clears_search_state() {
        let mut c = LineCodec::new();
        assert_eq!(c.decode(b"abc").unwrap(), None);
        c.reset();
        assert_eq!(c.decode(b"a\n").unwrap().unwrap().consumed, 2);
    }

    #[test]
    fn shorter_src_than_before_is_tolerated() {
        let mut c = LineCodec::new();
        assert_eq!(c.decode(b"abcdef").unwrap(), None);
        // Contract violation by the caller; must not panic.
        assert_eq!(c.decode(b"ab").unwrap(), None);
    }

    #[test]
    fn encode() {
        let lf = LineCodec::new();
        assert_eq!(lf.encode(b"hi").unwrap().parts(), [&b""[..], b"hi", b"\n"]);
        assert_eq!(lf.encode(b"").unwrap().to_vec(), b"\n");
        assert_eq!(
            lf.encode(b"a\nb"),
            Err(CodecError::DelimiterInPayload { position: 1 })
        );
        assert_eq!(
            lf.encode(b"ab\r"),
            Err(CodecError::DelimiterInPayload { position: 2 })
        );
        let crlf = LineCodec::new().with_ending(LineEnding::CrLf);
        assert_eq!(crlf.encode(b"ab\r").unwrap().to_vec(), b"ab\r\r\n");
        let small = LineCodec::new().with_max_frame_len(2);
        assert_eq!(
            small.encode(b"abc"),
            Err(CodecError::FrameTooLong { len: 3, max: 2 })
        );
    }
}
