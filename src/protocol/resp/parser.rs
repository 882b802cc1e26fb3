//! Streaming, zero-copy RESP2 command parser (multibulk and inline forms).

use std::ops::Range;

/// Limits applied while parsing commands.
///
/// ```
/// use netloop::protocol::resp::RespLimits;
/// let l = RespLimits::default();
/// assert_eq!(l.max_bulk_len, 64 * 1024 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespLimits {
    /// Largest accepted bulk string, in bytes. Default 64 MiB: smaller than
    /// Redis's 512 MiB `proto-max-bulk-len`, since the whole value is
    /// buffered contiguously before the command runs.
    pub max_bulk_len: usize,
    /// Largest accepted multibulk (argument) count. Default 1,048,576.
    pub max_array_len: usize,
    /// Longest inline command line and longest `*`/`$` count line, in bytes.
    /// Default 64 KiB (Redis's `PROTO_INLINE_MAX_SIZE`).
    pub max_inline_len: usize,
}

impl Default for RespLimits {
    fn default() -> Self {
        RespLimits {
            max_bulk_len: 64 * 1024 * 1024,
            max_array_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// A protocol violation. Its `Display` text matches Redis's, so the reply
/// is `-ERR <message>`; the connection must then be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// An inline command line longer than [`RespLimits::max_inline_len`].
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
    /// An inline command with an unterminated quote.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A `*<count>` line longer than [`RespLimits::max_inline_len`].
    #[error("Protocol error: too big mbulk count string")]
    MbulkCountTooBig,
    /// A `*<count>` that is not an integer or exceeds the limit.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A `$<len>` line longer than [`RespLimits::max_inline_len`].
    #[error("Protocol error: too big bulk count string")]
    BulkCountTooBig,
    /// A multibulk element that is not a bulk string.
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    /// A `$<len>` that is negative, not an integer, or over the limit.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// Bulk data not followed by CRLF (Redis skips these two bytes
    /// unchecked; netloop rejects them to avoid desynchronising).
    #[error("Protocol error: expected CRLF after bulk data")]
    MissingBulkCrlf,
}

impl RespError {
    /// Appends the error reply, e.g. `-ERR Protocol error: invalid bulk length\r\n`.
    pub fn write_reply(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"-ERR ");
        out.extend_from_slice(self.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// A parsed command's arguments, borrowed from the input.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    src: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    /// Arguments given as `ranges` into `src` (as filled by [`parse_command`]).
    pub fn new(src: &'a [u8], ranges: &'a [Range<usize>]) -> Self {
        Args { src, ranges }
    }

    /// Number of arguments, including the command name.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether there are no arguments (an empty line or `*0`).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i` (0 is the command name), or an empty slice if out of range.
    pub fn get(&self, i: usize) -> &'a [u8] {
        self.ranges
            .get(i)
            .and_then(|r| self.src.get(r.clone()))
            .unwrap_or(&[])
    }

    /// Iterates the arguments.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }
}

/// Parses one command from the start of `src`.
///
/// Returns `Ok(None)` when more bytes are needed, or `Ok(Some(consumed))`
/// with the arguments stored in `args` as byte ranges of `src` (cleared
/// first; its capacity is reused). Zero arguments (an empty inline line, or
/// `*0`/`*-1`) means "nothing to do", as in Redis. A first byte `*` selects
/// the multibulk form; anything else is an inline command split on spaces
/// and tabs, where `"..."` or `'...'` group words (no escape processing).
///
/// ```
/// use netloop::protocol::resp::{parse_command, Args, RespLimits};
/// let src = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n";
/// let mut ranges = Vec::new();
/// let n = parse_command(src, &RespLimits::default(), &mut ranges).unwrap().unwrap();
/// let args = Args::new(src, &ranges);
/// assert_eq!((args.get(0), args.get(1)), (&b"GET"[..], &b"k"[..]));
/// let m = parse_command(&src[n..], &RespLimits::default(), &mut ranges).unwrap().unwrap();
/// assert_eq!(n + m, src.len());
/// ```
pub fn parse_command(
    src: &[u8],
    limits: &RespLimits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, RespError> {
    args.clear();
    match src.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(src, limits, args),
        Some(_) => parse_inline(src, limits, args),
    }
}

/// Reads a `\r\n`-terminated line starting at `start`, looking at most
/// `max` bytes ahead. Returns the line (without CRLF) and the next position.
fn read_line(
    src: &[u8],
    start: usize,
    max: usize,
    too_big: RespError,
) -> Result<Option<(&[u8], usize)>, RespError> {
    let avail = src.get(start..).unwrap_or(&[]);
    let window = &avail[..avail.len().min(max.saturating_add(1))];
    match window.iter().position(|&b| b == b'\r') {
        None if avail.len() > max => Err(too_big),
        None => Ok(None),
        Some(i) => match avail.get(i + 1) {
            None => Ok(None),
            // A CR not followed by LF makes the number unparsable.
            Some(b'\n') => Ok(Some((&avail[..i], start + i + 2))),
            Some(_) => Ok(Some((&avail[..i + 2], start + i + 2))),
        },
    }
}

fn parse_multibulk(
    src: &[u8],
    limits: &RespLimits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, RespError> {
    let Some((count, mut pos)) =
        read_line(src, 1, limits.max_inline_len, RespError::MbulkCountTooBig)?
    else {
        return Ok(None);
    };
    let count = parse_i64(count)
        .filter(|&n| n <= limits.max_array_len as i64)
        .ok_or(RespError::InvalidMultibulkLength)?;
    if count <= 0 {
        return Ok(Some(pos));
    }
    args.reserve((count as usize).min(1024));
    for _ in 0..count {
        let Some(&first) = src.get(pos) else {
            return Ok(None);
        };
        if first != b'$' {
            let shown = if first.is_ascii_graphic() || first == b' ' {
                first as char
            } else {
                '?'
            };
            return Err(RespError::ExpectedDollar(shown));
        }
        let Some((len, data)) = read_line(
            src,
            pos + 1,
            limits.max_inline_len,
            RespError::BulkCountTooBig,
        )?
        else {
            return Ok(None);
        };
        let len = parse_i64(len)
            .filter(|&n| n >= 0 && n as u64 <= limits.max_bulk_len as u64)
            .ok_or(RespError::InvalidBulkLength)? as usize;
        let end = data.checked_add(len).ok_or(RespError::InvalidBulkLength)?;
        if src.len() < end.saturating_add(2) {
            return Ok(None);
        }
        if &src[end..end + 2] != b"\r\n" {
            return Err(RespError::MissingBulkCrlf);
        }
        args.push(data..end);
        pos = end + 2;
    }
    Ok(Some(pos))
}

fn parse_inline(
    src: &[u8],
    limits: &RespLimits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, RespError> {
    let window = &src[..src.len().min(limits.max_inline_len.saturating_add(1))];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        return if src.len() > limits.max_inline_len {
            Err(RespError::InlineTooBig)
        } else {
            Ok(None)
        };
    };
    let mut end = nl;
    if end > 0 && src[end - 1] == b'\r' {
        end -= 1;
    }
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c');
    let mut i = 0;
    while i < end {
        if is_space(src[i]) {
            i += 1;
            continue;
        }
        let quote = src[i];
        if quote == b'"' || quote == b'\'' {
            let close = src[i + 1..end]
                .iter()
                .position(|&b| b == quote)
                .ok_or(RespError::UnbalancedQuotes)?
                + i
                + 1;
            // Like Redis, a closing quote must be followed by a space or the end.
            if close + 1 < end && !is_space(src[close + 1]) {
                return Err(RespError::UnbalancedQuotes);
            }
            args.push(i + 1..close);
            i = close + 1;
        } else {
            let start = i;
            while i < end && !is_space(src[i]) {
                i += 1;
            }
            args.push(start..i);
        }
    }
    Ok(Some(nl + 1))
}

/// Parses a signed 64-bit decimal with Redis's `string2ll` strictness: an
/// optional `-`, no `+`, no leading zeros, no spaces, no `-0`.
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] => return (!neg).then_some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    if digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if neg {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Option<(Vec<Vec<u8>>, usize)>;

    fn parse(src: &[u8]) -> Result<Parsed, RespError> {
        let mut ranges = Vec::new();
        Ok(
            parse_command(src, &RespLimits::default(), &mut ranges)?.map(|n| {
                let args = Args::new(src, &ranges);
                (args.iter().map(<[u8]>::to_vec).collect(), n)
            }),
        )
    }

    fn strs(v: &[Vec<u8>]) -> Vec<&str> {
        v.iter().map(|a| std::str::from_utf8(a).unwrap()).collect()
    }

    #[test]
    fn multibulk() {
        let src = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
        let (args, n) = parse(src).unwrap().unwrap();
        assert_eq!(strs(&args), ["SET", "k", ""]);
        assert_eq!(n, src.len());
        for i in 0..src.len() {
            assert_eq!(parse(&src[..i]).unwrap(), None, "prefix {i}");
        }
        assert_eq!(parse(b"*0\r\n").unwrap(), Some((vec![], 4)));
        assert_eq!(parse(b"*-1\r\n").unwrap(), Some((vec![], 5)));
    }

    #[test]
    fn inline() {
        let (args, n) = parse(b"  set  \"a b\" 'c'\tx\r\nrest").unwrap().unwrap();
        assert_eq!(strs(&args), ["set", "a b", "c", "x"]);
        assert_eq!(n, 20);
        assert_eq!(parse(b"\r\n").unwrap(), Some((vec![], 2)));
        assert_eq!(parse(b"PING\n").unwrap().unwrap().1, 5);
        assert_eq!(parse(b"PING").unwrap(), None);
        assert_eq!(parse(b"a \"b\r\n"), Err(RespError::UnbalancedQuotes));
        assert_eq!(parse(b"a \"b\"c\r\n"), Err(RespError::UnbalancedQuotes));
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"*x\r\n"), Err(RespError::InvalidMultibulkLength));
        assert_eq!(parse(b"*1\rx"), Err(RespError::InvalidMultibulkLength));
        assert_eq!(
            parse(b"*2000000\r\n"),
            Err(RespError::InvalidMultibulkLength)
        );
        assert_eq!(parse(b"*1\r\n:1\r\n"), Err(RespError::ExpectedDollar(':')));
        assert_eq!(parse(b"*1\r\n$-1\r\n"), Err(RespError::InvalidBulkLength));
        assert_eq!(
            parse(b"*1\r\n$1\r\nab\r\n"),
            Err(RespError::MissingBulkCrlf)
        );
        assert_eq!(
            parse(b"*1\r\n$999999999999\r\n"),
            Err(RespError::InvalidBulkLength)
        );
        let mut ranges = Vec::new();
        let small = RespLimits {
            max_inline_len: 8,
            ..RespLimits::default()
        };
        let e = |s: &[u8], r: &mut Vec<_>| parse_command(s, &small, r).unwrap_err();
        assert_eq!(e(b"aaaaaaaaaaaa", &mut ranges), RespError::InlineTooBig);
        assert_eq!(
            e(b"*1111111111111", &mut ranges),
            RespError::MbulkCountTooBig
        );
        assert_eq!(
            e(b"*1\r\n$1111111111111", &mut ranges),
            RespError::BulkCountTooBig
        );
        let mut out = Vec::new();
        RespError::InvalidBulkLength.write_reply(&mut out);
        assert_eq!(out, b"-ERR Protocol error: invalid bulk length\r\n");
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"1a",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }
}
