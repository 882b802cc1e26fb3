//! [`DelimiterCodec`]: frames ending in one of a set of byte strings.

use super::search::{find_byte, may_match_at_chained};
use super::{CodecError, Decoded, Decoder, Encoded, Encoder, DEFAULT_MAX_FRAME_LEN};

/// Frames end in one of one or more delimiters (arbitrary non-empty byte strings).
///
/// **Decoding.** The frame ends at the *earliest* position in the stream where any
/// delimiter matches. If several delimiters match at that same position, the
/// *longest* one wins (maximal munch: with delimiters `\r` and `\r\n`, the bytes
/// `a\r\n` are one frame `a`, not `a` followed by a frame starting with `\n`).
/// Consequently, when a shorter delimiter has matched but a longer one might still
/// match once more bytes arrive, the decoder waits for those bytes. The delimiter is
/// stripped from the payload by default ([`keep_delimiter`](Self::keep_delimiter)
/// keeps it).
///
/// **Limit.** The maximum frame length (default [`DEFAULT_MAX_FRAME_LEN`]) counts the
/// frame *without* its delimiter, in both modes. The decoder only considers
/// delimiters starting at offsets `0..=max`; once all of those are ruled out (after
/// at most `max + longest delimiter` bytes) it fails with
/// [`CodecError::DelimiterNotFound`] instead of waiting forever.
///
/// **Encoding** appends the *first* delimiter given at construction. The payload is
/// rejected with [`CodecError::DelimiterInPayload`] if any delimiter could be found
/// before the appended one: inside the payload, straddling the payload and the
/// appended delimiter, or starting in the payload and running past the appended
/// delimiter (the next frame's bytes could complete it). It is rejected with
/// [`CodecError::FrameTooLong`] if it is longer than the maximum. Together with the
/// configuration rule below this guarantees that every accepted payload decodes back
/// to itself, whatever is sent after it, and that the frame is decodable as soon as
/// its last byte has arrived.
///
/// **Configuration rules** (else [`CodecError::InvalidConfig`]): at least one
/// delimiter; no empty or duplicate delimiter; the first (encoding) delimiter must not
/// be a proper prefix of another delimiter (the decoder would otherwise swallow the
/// next frame's first bytes as part of a longer delimiter).
///
/// **State.** The decoder remembers up to where delimiters have been ruled out, so a
/// long frame arriving in many reads is scanned once.
///
/// ```
/// use netloop::codec::{DelimiterCodec, Decoder, Encoder};
///
/// // NUL-terminated messages, also accepting a 0xFF 0xFF terminator.
/// let mut codec = DelimiterCodec::with_delimiters([&b"\0"[..], b"\xff\xff"]).unwrap();
/// let src = b"one\0two\xff\xffthr";
/// let d = codec.decode(src).unwrap().unwrap();
/// assert_eq!(d.payload(src), b"one");
/// let rest = &src[d.consumed..];
/// let d = codec.decode(rest).unwrap().unwrap();
/// assert_eq!(d.payload(rest), b"two");
/// assert_eq!(codec.decode(&rest[d.consumed..]).unwrap(), None);
///
/// assert_eq!(codec.encode(b"four").unwrap().to_vec(), b"four\0");
/// ```
#[derive(Debug, Clone)]
pub struct DelimiterCodec {
    /// Delimiters in the order given; `delimiters[0]` is used for encoding.
    delimiters: Vec<Vec<u8>>,
    /// `first_byte[b]` is true if some delimiter starts with `b`.
    first_byte: Box<[bool; 256]>,
    /// `Some(b)` if all delimiters start with the same byte `b` (fast scan).
    single_first: Option<u8>,
    max_frame_len: usize,
    strip: bool,
    /// Candidate start offsets `< searched` are known not to start a delimiter.
    searched: usize,
}

impl DelimiterCodec {
    /// A codec with a single delimiter.
    pub fn new(delimiter: impl Into<Vec<u8>>) -> Result<Self, CodecError> {
        Self::with_delimiters([delimiter.into()])
    }

    /// A codec with several delimiters; the first one is appended when encoding.
    pub fn with_delimiters<I>(delimiters: I) -> Result<Self, CodecError>
    where
        I: IntoIterator,
        I::Item: Into<Vec<u8>>,
    {
        let delimiters: Vec<Vec<u8>> = delimiters.into_iter().map(Into::into).collect();
        if delimiters.is_empty() {
            return Err(CodecError::InvalidConfig(
                "delimiter codec needs at least one delimiter".into(),
            ));
        }
        for (i, d) in delimiters.iter().enumerate() {
            if d.is_empty() {
                return Err(CodecError::InvalidConfig("empty delimiter".into()));
            }
            if delimiters[..i].contains(d) {
                return Err(CodecError::InvalidConfig(format!(
                    "duplicate delimiter {d:02x?}"
                )));
            }
        }
        let enc = &delimiters[0];
        if let Some(longer) = delimiters[1..]
            .iter()
            .find(|d| d.len() > enc.len() && d.starts_with(enc))
        {
            return Err(CodecError::InvalidConfig(format!(
                "encoding delimiter {enc:02x?} is a prefix of delimiter {longer:02x?}; \
                 put the longer delimiter first"
            )));
        }
        let mut first_byte = Box::new([false; 256]);
        for d in &delimiters {
            first_byte[usize::from(d[0])] = true;
        }
        let b0 = delimiters[0][0];
        let single_first = delimiters.iter().all(|d| d[0] == b0).then_some(b0);
        Ok(DelimiterCodec {
            delimiters,
            first_byte,
            single_first,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            strip: true,
            searched: 0,
        })
    }

    /// Sets the maximum frame length (without the delimiter).
    pub fn with_max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max;
        self
    }

    /// Keeps (`true`) or strips (`false`, default) the delimiter in decoded payloads.
    pub fn keep_delimiter(mut self, keep: bool) -> Self {
        self.strip = !keep;
        self
    }

    /// The delimiters, in configuration order (the first is used for encoding).
    pub fn delimiters(&self) -> impl Iterator<Item = &[u8]> {
        self.delimiters.iter().map(Vec::as_slice)
    }

    /// The maximum frame length (without the delimiter).
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Next offset in `from..end` whose byte may start a delimiter.
    #[inline]
    fn next_candidate(&self, src: &[u8], from: usize, end: usize) -> Option<usize> {
        let hay = &src[from..end];
        match self.single_first {
            Some(b) => find_byte(b, hay),
            None => hay.iter().position(|&b| self.first_byte[usize::from(b)]),
        }
        .map(|p| p + from)
    }
}

/// What is known about delimiters starting at one offset.
enum At {
    /// None starts here.
    No,
    /// The longest delimiter matching here has this length.
    Match(usize),
    /// Some delimiter could still match here once more bytes arrive.
    Undecided,
}

impl DelimiterCodec {
    #[inline]
    fn at(&self, src: &[u8], pos: usize) -> At {
        let rest = &src[pos..];
        let mut best = 0;
        for d in &self.delimiters {
            if rest.len() >= d.len() {
                if rest[..d.len()] == **d && d.len() > best {
                    best = d.len();
                }
            } else if d[..rest.len()] == *rest {
                // A longer delimiter than any full match could still complete.
                return At::Undecided;
            }
        }
        if best > 0 {
            At::Match(best)
        } else {
            At::No
        }
    }
}

impl Decoder for DelimiterCodec {
    fn decode(&mut self, src: &[u8]) -> Result<Option<Decoded>, CodecError> {
        let max = self.max_frame_len;
        // Frames have at most `max` bytes before the delimiter: only offsets 0..=max.
        let end = src.len().min(max.saturating_add(1));
        let mut pos = self.searched.min(end);
        while let Some(p) = self.next_candidate(src, pos, end) {
            match self.at(src, p) {
                At::No => pos = p + 1,
                At::Undecided => {
                    self.searched = p;
                    return Ok(None);
                }
                At::Match(len) => {
                    self.searched = 0;
                    let payload = if self.strip { 0..p } else { 0..p + len };
                    return Ok(Some(Decoded {
                        payload,
                        consumed: p + len,
                    }));
                }
            }
        }
        if end > max {
            self.searched = 0;
            let longest = self.delimiters.iter().map(Vec::len).max().unwrap_or(0);
            return Err(CodecError::DelimiterNotFound {
                searched: src.len().min(max.saturating_add(longest)),
                max,
            });
        }
        self.searched = end;
        Ok(None)
    }

    fn reset(&mut self) {
        self.searched = 0;
    }
}

impl Encoder for DelimiterCodec {
    fn encode<'a>(&'a self, payload: &'a [u8]) -> Result<Encoded<'a>, CodecError> {
        CodecError::check_len(payload.len() as u64, self.max_frame_len)?;
        let tail = self.delimiters[0].as_slice();
        let mut pos = 0;
        while let Some(p) = self.next_candidate(payload, pos, payload.len()) {
            if self
                .delimiters
                .iter()
                .any(|d| may_match_at_chained(payload, tail, p, d))
            {
                return Err(CodecError::DelimiterInPayload { position: p });
            }
            pos = p + 1;
        }
        Ok(Encoded::new(payload, tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(codec: &mut DelimiterCodec, mut src: &[u8]) -> (Vec<Vec<u8>>, usize) {
        let mut out = Vec::new();
        while let Some(d) = codec.decode(src).unwrap() {
            out.push(src[d.payload.clone()].to_vec());
            src = &src[d.consumed..];
        }
        (out, src.len())
    }

    #[test]
    fn single_delimiter() {
        let mut c = DelimiterCodec::new(&b"||"[..]).unwrap();
        let (f, rest) = frames(&mut c, b"a||bc|d||||e|");
        assert_eq!(f, vec![b"a".to_vec(), b"bc|d".to_vec(), vec![]]);
        assert_eq!(rest, 2);
    }

    #[test]
    fn earliest_match_wins() {
        let mut c = DelimiterCodec::with_delimiters([&b"XYZ"[..], b"B"]).unwrap();
        let (f, _) = frames(&mut c, b"aaXYZbbBcc");
        assert_eq!(f, vec![b"aa".to_vec(), b"bb".to_vec()]);
        c.reset(); // a different stream
        let (f, _) = frames(&mut c, b"aBXYZ");
        assert_eq!(f, vec![b"a".to_vec(), vec![]]);
    }

    #[test]
    fn longest_wins_at_same_position_and_waits_for_it() {
        let mut c = DelimiterCodec::with_delimiters([&b"\r\n"[..], b"\r"]).unwrap();
        assert_eq!(c.decode(b"ab\r").unwrap(), None, "might become \\r\\n");
        let d = c.decode(b"ab\r\n").unwrap().unwrap();
        assert_eq!((d.payload, d.consumed), (0..2, 4));
        let d = c.decode(b"ab\rc").unwrap().unwrap();
        assert_eq!((d.payload, d.consumed), (0..2, 3));
    }

    #[test]
    fn keep_delimiter_keeps_the_matched_one() {
        let mut c = DelimiterCodec::with_delimiters([&b";"[..], b"::"])
            .unwrap()
            .keep_delimiter(true);
        let (f, _) = frames(&mut c, b"a;b::");
        assert_eq!(f, vec![b"a;".to_vec(), b"b::".to_vec()]);
    }

    #[test]
    fn overlapping_partial_matches() {
        // "aab" inside "aaab": a naive restart after a failed partial match misses it.
        let mut c = DelimiterCodec::new(&b"aab"[..]).unwrap();
        let (f, _) = frames(&mut c, b"xaaab");
        assert_eq!(f, vec![b"xa".to_vec()]);
    }

    #[test]
    fn incremental_feeding_finds_split_delimiter() {
        let mut c = DelimiterCodec::new(&b"END"[..]).unwrap();
        let src = b"helloEN_worldEND";
        for n in 0..src.len() {
            assert_eq!(c.decode(&src[..n]).unwrap(), None, "prefix {n}");
        }
        let d = c.decode(src).unwrap().unwrap();
        assert_eq!(d.payload(src), b"helloEN_world");
    }

    #[test]
    fn limits() {
        let mut c = DelimiterCodec::new(&b"--"[..])
            .unwrap()
            .with_max_frame_len(3);
        assert_eq!(c.decode(b"abc--").unwrap().unwrap().payload, 0..3);
        // Offset 3 could still start "--".
        assert_eq!(c.decode(b"abc-").unwrap(), None);
        assert_eq!(
            c.decode(b"abcd-"),
            Err(CodecError::DelimiterNotFound {
                searched: 5,
                max: 3
            })
        );
        assert!(matches!(
            c.decode(&[b'z'; 100]),
            Err(CodecError::DelimiterNotFound {
                searched: 5,
                max: 3
            })
        ));
    }

    #[test]
    fn invalid_configs() {
        let empty: [&[u8]; 0] = [];
        assert!(matches!(
            DelimiterCodec::with_delimiters(empty),
            Err(CodecError::InvalidConfig(_))
        ));
        assert!(matches!(
            DelimiterCodec::new(Vec::new()),
            Err(CodecError::InvalidConfig(_))
        ));
        assert!(matches!(
            DelimiterCodec::with_delimiters([&b"x"[..], b"x"]),
            Err(CodecError::InvalidConfig(_))
        ));
        assert!(matches!(
            DelimiterCodec::with_delimiters([&b"\r"[..], b"\r\n"]),
            Err(CodecError::InvalidConfig(_))
        ));
        assert!(DelimiterCodec::with_delimiters([&b"\r\n"[..], b"\r"]).is_ok());
    }

    #[test]
    fn encode_rejects_payloads_that_would_split() {
        let c = DelimiterCodec::new(&b"aba"[..]).unwrap();
        assert_eq!(c.encode(b"xy").unwrap().to_vec(), b"xyaba");
        assert_eq!(
            c.encode(b"xabay"),
            Err(CodecError::DelimiterInPayload { position: 1 })
        );
        // "ab" + "aba" = "ababa": "aba" found at 0, before the appended one.
        assert_eq!(
            c.encode(b"ab"),
            Err(CodecError::DelimiterInPayload { position: 0 })
        );
        // "a" + "b" could become "aba" with the next frame's first byte.
        let c = DelimiterCodec::with_delimiters([&b"b"[..], b"aba"]).unwrap();
        assert_eq!(
            c.encode(b"a"),
            Err(CodecError::DelimiterInPayload { position: 0 })
        );
        assert!(c.encode(b"c").is_ok());
        let multi = DelimiterCodec::with_delimiters([&b";"[..], b"\0"]).unwrap();
        assert_eq!(
            multi.encode(b"a\0"),
            Err(CodecError::DelimiterInPayload { position: 1 })
        );
        let small = DelimiterCodec::new(&b";"[..])
            .unwrap()
            .with_max_frame_len(1);
        assert_eq!(
            small.encode(b"ab"),
            Err(CodecError::FrameTooLong { len: 2, max: 1 })
        );
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let mut c = DelimiterCodec::with_delimiters([&b"\r\n"[..], b"\n", b"\r"]).unwrap();
        let mut wire = Vec::new();
        for p in [&b"abc"[..], b"", b"x y"] {
            c.encode(p).unwrap().write_to(&mut wire);
        }
        let (f, rest) = frames(&mut c, &wire);
        assert_eq!(f, vec![b"abc".to_vec(), vec![], b"x y".to_vec()]);
        assert_eq!(rest, 0);
    }
}
