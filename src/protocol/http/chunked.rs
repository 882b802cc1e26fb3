//! A streaming decoder for the chunked transfer coding (RFC 9112 §7.1).
//!
//! The decoder is a byte-level state machine that keeps its place between
//! calls: each call looks only at the bytes it has not seen, appends the
//! chunk data it finds to the caller's body buffer and reports how many wire
//! bytes it used. The caller drops those bytes from its inbound buffer, so a
//! body costs time linear in its wire size however it is split into reads,
//! and the wire bytes never pile up in the connection's inbound buffer (whose
//! cap would otherwise stall a body the limits allow).
//!
//! Bounds: the decoded size ([`Limits::max_body_bytes`], 413), the bytes of
//! all chunk extensions together ([`Limits::max_chunk_ext_bytes`], 413: they
//! are ignored, and without a bound a peer could make the server read
//! gigabytes of padding for a one-byte body), the trailer section
//! ([`Limits::max_header_bytes`], 431), hex digits of a size (15).

use super::{HttpError, Limits};

/// Most hex digits accepted in a chunk size (60 bits: no overflow).
const MAX_SIZE_DIGITS: u8 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Hex digits of a chunk size.
    #[default]
    Size,
    /// Whitespace after the size, before `;` or CR.
    AfterSize,
    /// A chunk extension, up to CR.
    Ext,
    /// LF ending a size line.
    SizeLf,
    /// Chunk data.
    Data,
    /// CR after chunk data.
    DataCr,
    /// LF after chunk data.
    DataLf,
    /// Start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// LF ending a trailer field line.
    TrailerLf,
    /// LF of the final empty line.
    FinalLf,
    /// The body is complete.
    Done,
}

/// Streaming chunked-body decoder; one per connection, [`reset`](Self::reset)
/// for each body.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Current chunk size (while reading digits) or data bytes left.
    size: u64,
    digits: u8,
    /// Extension bytes of this body so far.
    ext_bytes: usize,
    /// Trailer bytes of this body so far.
    trailer_bytes: usize,
    /// Whether the current trailer line has a colon.
    colon: bool,
    /// Decoded bytes so far.
    total: usize,
}

impl ChunkedDecoder {
    /// Starts a new body.
    pub(crate) fn reset(&mut self) {
        *self = ChunkedDecoder::default();
    }

    /// Whether the last chunk and the trailer section have been read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `src` as possible, appending chunk data to `body`.
    /// Returns the bytes of `src` used; stops right after the body's end (the
    /// next pipelined request starts there).
    pub(crate) fn decode(
        &mut self,
        src: &[u8],
        body: &mut Vec<u8>,
        limits: &Limits,
    ) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < src.len() {
            let b = src[i];
            match self.state {
                State::Size => match hex(b) {
                    Some(d) => {
                        self.digits += 1;
                        if self.digits > MAX_SIZE_DIGITS {
                            return Err(HttpError::BadChunk);
                        }
                        self.size = self.size << 4 | u64::from(d);
                    }
                    None if self.digits == 0 => return Err(HttpError::BadChunk),
                    None => {
                        self.start_chunk(limits)?;
                        self.state = State::AfterSize;
                        continue; // this byte belongs to the rest of the line
                    }
                },
                State::AfterSize => match b {
                    b' ' | b'\t' => self.count_ext(limits)?,
                    b';' => {
                        self.count_ext(limits)?;
                        self.state = State::Ext;
                    }
                    b'\r' => self.state = State::SizeLf,
                    _ => return Err(HttpError::BadChunk),
                },
                State::Ext => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\t' | b' '..=b'~' | 0x80.. => self.count_ext(limits)?,
                    _ => return Err(HttpError::BadChunk),
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(HttpError::BadChunk);
                    }
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let n = (src.len() - i).min(self.size as usize);
                    body.extend_from_slice(&src[i..i + n]);
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(HttpError::BadChunk);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(HttpError::BadChunk);
                    }
                    self.state = State::Size;
                    self.digits = 0;
                }
                State::TrailerStart => match b {
                    b'\r' => self.state = State::FinalLf,
                    // A field line cannot start with whitespace (obs-fold).
                    b' ' | b'\t' | b'\n' | b':' => return Err(HttpError::BadChunk),
                    _ => {
                        self.colon = false;
                        self.count_trailer(limits)?;
                        self.state = State::Trailer;
                    }
                },
                State::Trailer => match b {
                    b'\r' => self.state = State::TrailerLf,
                    b'\n' | 0 => return Err(HttpError::BadChunk),
                    _ => {
                        self.colon |= b == b':';
                        self.count_trailer(limits)?;
                    }
                },
                State::TrailerLf => {
                    if b != b'\n' || !self.colon {
                        return Err(HttpError::BadChunk);
                    }
                    self.state = State::TrailerStart;
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return Err(HttpError::BadChunk);
                    }
                    self.state = State::Done;
                    return Ok(i + 1);
                }
                State::Done => return Ok(i),
            }
            i += 1;
        }
        Ok(i)
    }

    /// The size line's digits are complete: check the decoded total.
    fn start_chunk(&mut self, limits: &Limits) -> Result<(), HttpError> {
        let size = usize::try_from(self.size).map_err(|_| HttpError::BodyTooLarge)?;
        self.total = self
            .total
            .checked_add(size)
            .filter(|&t| t <= limits.max_body_bytes)
            .ok_or(HttpError::BodyTooLarge)?;
        Ok(())
    }

    fn count_ext(&mut self, limits: &Limits) -> Result<(), HttpError> {
        self.ext_bytes += 1;
        if self.ext_bytes > limits.max_chunk_ext_bytes {
            return Err(HttpError::ChunkExtensionsTooLong);
        }
        Ok(())
    }

    fn count_trailer(&mut self, limits: &Limits) -> Result<(), HttpError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > limits.max_header_bytes {
            return Err(HttpError::HeadersTooLarge);
        }
        Ok(())
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `src` fed in pieces of `step` bytes; (body, used) or the error.
    fn decode_in(src: &[u8], step: usize, limits: &Limits) -> Result<(Vec<u8>, usize), HttpError> {
        let mut d = ChunkedDecoder::default();
        let mut body = Vec::new();
        let mut used = 0;
        while used < src.len() && !d.is_done() {
            let end = (used + step).min(src.len());
            used += d.decode(&src[used..end], &mut body, limits)?;
        }
        assert!(d.is_done(), "incomplete");
        Ok((body, used))
    }

    #[test]
    fn decodes_at_every_split() {
        let src = b"5;x=y\r\nhello\r\n6 ; a\r\n world\r\nA\r\n0123456789\r\n0\r\nT: v\r\n\r\nNEXT";
        for step in 1..src.len() {
            let (body, used) = decode_in(src, step, &Limits::default()).unwrap();
            assert_eq!(body, b"hello world0123456789");
            assert_eq!(used, src.len() - 4, "step {step}");
        }
    }

    #[test]
    fn rejects_bad_framing() {
        let l = Limits::default();
        let bad: &[&[u8]] = &[
            b"zz\r\n",
            b"\r\n",
            b"1\nx\r\n",
            b"1\r\nxy\r\n",
            b"1\r\nx\n",
            b"1x\r\n",
            b"ffffffffffffffff\r\n",
            b"0\r\n bad: fold\r\n\r\n",
            b"0\r\nnocolon\r\n\r\n",
            b"0\r\n\n",
            b"1;a\nb\r\n",
        ];
        for src in bad {
            let mut d = ChunkedDecoder::default();
            let r = d.decode(src, &mut Vec::new(), &l);
            assert!(r.is_err(), "{:?}", String::from_utf8_lossy(src));
        }
    }

    #[test]
    fn limits_map_to_statuses() {
        let l = Limits {
            max_body_bytes: 10,
            max_chunk_ext_bytes: 8,
            max_header_bytes: 16,
            ..Limits::default()
        };
        let status = |src: &[u8]| {
            let mut d = ChunkedDecoder::default();
            d.decode(src, &mut Vec::new(), &l).unwrap_err().status()
        };
        assert_eq!(status(b"b\r\n"), 413);
        assert_eq!(status(b"5\r\nhello\r\n6\r\n"), 413);
        assert_eq!(status(b"1;aaaaaaaaaa\r\n"), 413);
        assert_eq!(status(b"0\r\nX-Long-Trailer: 0123456789\r\n"), 431);
    }

    #[test]
    fn stops_at_the_end_of_the_body() {
        let mut d = ChunkedDecoder::default();
        let mut body = Vec::new();
        let n = d
            .decode(b"0\r\n\r\nGET /", &mut body, &Limits::default())
            .unwrap();
        assert_eq!(n, 5);
        assert!(d.is_done());
        assert_eq!(d.decode(b"GET", &mut body, &Limits::default()), Ok(0));
    }
}
