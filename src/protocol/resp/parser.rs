//! Streaming RESP2 command parser (multibulk and inline forms): zero-copy
//! while a command is small, resumable at any byte, bounded by [`RespLimits`].

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
    /// Redis's 512 MiB `proto-max-bulk-len`, since the whole value is held
    /// before the command runs.
    pub max_bulk_len: usize,
    /// Largest accepted multibulk (argument) count. Default 1,048,576.
    pub max_array_len: usize,
    /// Longest inline command line and longest `*`/`$` count line, in bytes.
    /// Default 64 KiB (Redis's `PROTO_INLINE_MAX_SIZE`).
    pub max_inline_len: usize,
    /// Most bytes one command may hold: its arguments' data plus 16 bytes
    /// per argument (default 128 MiB; Redis bounds its query buffer at
    /// 1 GiB). A command past it gets `-ERR` and the connection closes.
    pub max_command_bytes: usize,
}

impl Default for RespLimits {
    fn default() -> Self {
        RespLimits {
            max_bulk_len: 64 * 1024 * 1024,
            max_array_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
            max_command_bytes: 128 * 1024 * 1024,
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
    /// A command holding more than [`RespLimits::max_command_bytes`].
    #[error("Protocol error: command too big")]
    CommandTooBig,
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

/// Parses one command from the start of `src`, without state.
///
/// Returns `Ok(None)` when more bytes are needed, or `Ok(Some(consumed))`
/// with the arguments stored in `args` as byte ranges of `src` (cleared
/// first; its capacity is reused). Zero arguments (an empty inline line, or
/// `*0`/`*-1`) means "nothing to do", as in Redis. A first byte `*` selects
/// the multibulk form; anything else is an inline command split on spaces
/// and tabs, where `"..."` or `'...'` group words (no escape processing).
///
/// This is the one-shot form: each call starts over from the first byte. A
/// server feeds a connection's bytes to a [`CommandParser`] instead, which
/// resumes where it stopped.
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
    let mut parser = CommandParser {
        own_at: usize::MAX,
        args: std::mem::take(args),
        ..CommandParser::default()
    };
    let res = parser.parse(src, limits);
    *args = std::mem::take(&mut parser.args);
    match res? {
        Parse::Command(n) => Ok(Some(n)),
        Parse::Partial(_) => {
            args.clear();
            Ok(None)
        }
    }
}

/// A partial command is copied out of the inbound buffer once this many of
/// its bytes are buffered (see [`CommandParser`]).
pub const OWN_AT: usize = 32 * 1024;
/// Argument storage kept between commands; a larger buffer is freed.
const RETAIN_ARG_BYTES: usize = 64 * 1024;
/// Argument slots kept between commands.
const RETAIN_ARGS: usize = 1024;
/// Bytes charged per argument on top of its data towards
/// [`RespLimits::max_command_bytes`] (its slot in the argument list).
const ARG_OVERHEAD: usize = std::mem::size_of::<Range<usize>>();

/// What one [`CommandParser::parse`] call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// A whole command, occupying this many bytes of the given input; read
    /// it with [`CommandParser::args`], then call [`CommandParser::finish`].
    Command(usize),
    /// The command is incomplete; this many bytes of the input were taken
    /// (copied into the parser) and must be dropped from it.
    Partial(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Before a command's first byte.
    #[default]
    Start,
    /// An inline command line.
    Inline,
    /// The `*<count>` line.
    Count,
    /// A `$<len>` line.
    Header,
    /// Bulk data.
    Data,
    /// The CRLF after bulk data.
    Crlf,
}

/// A streaming RESP2 command parser that keeps its place between calls.
///
/// Feed it a connection's unconsumed input; it resumes at the byte where it
/// stopped (line-end searches included), so a command costs time linear in
/// its size however it is split into reads. Arguments are zero-copy ranges of
/// the input while the command is small; once a partial command holds
/// [`OWN_AT`] bytes of the input, its arguments are copied into the parser's
/// own buffer and the input is consumed as it arrives — so a command larger
/// than the engine's inbound cap (a `SET` of a 5 MiB value) does not stall,
/// and [`RespLimits::max_command_bytes`] bounds what the parser holds. The
/// buffer shrinks back after a large command.
///
/// ```
/// use netloop::protocol::resp::{CommandParser, Parse, RespLimits};
/// let limits = RespLimits::default();
/// let mut p = CommandParser::default();
/// assert_eq!(p.parse(b"*2\r\n$4\r\nECHO\r\n$2\r\nh", &limits), Ok(Parse::Partial(0)));
/// let src = b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n";
/// assert_eq!(p.parse(src, &limits), Ok(Parse::Command(src.len())));
/// assert_eq!(p.args(src).get(1), b"hi");
/// p.finish();
/// ```
#[derive(Debug, Clone)]
pub struct CommandParser {
    state: State,
    /// Argument ranges: of the input, or of `buf` once `owned`.
    args: Vec<Range<usize>>,
    buf: Vec<u8>,
    owned: bool,
    /// Offset in the input of the next byte to parse (the input starts at
    /// the command's first byte while not `owned`).
    pos: usize,
    /// Where the search for the current line's end resumes.
    scan: usize,
    /// Start of the current bulk argument's data (in the input, or in `buf`).
    arg_start: usize,
    /// Bulk arguments still to read after the current one.
    left: u64,
    /// Data bytes of the current bulk still due.
    due: usize,
    /// Bytes charged against `max_command_bytes` so far.
    size: usize,
    /// Partial commands of this many input bytes are copied out.
    own_at: usize,
}

impl Default for CommandParser {
    fn default() -> Self {
        CommandParser {
            state: State::Start,
            args: Vec::new(),
            buf: Vec::new(),
            owned: false,
            pos: 0,
            scan: 0,
            arg_start: 0,
            left: 0,
            due: 0,
            size: 0,
            own_at: OWN_AT,
        }
    }
}

impl CommandParser {
    /// Whether a command has been started and not finished.
    pub fn in_command(&self) -> bool {
        self.state != State::Start
    }

    /// The arguments of the command [`parse`](Self::parse) just reported;
    /// `src` is the same input it was given.
    pub fn args<'a>(&'a self, src: &'a [u8]) -> Args<'a> {
        Args::new(if self.owned { &self.buf } else { src }, &self.args)
    }

    /// Bytes the parser holds for the command in progress (capacity of its
    /// argument buffer and list).
    pub fn held_bytes(&self) -> usize {
        self.buf.capacity() + self.args.capacity() * ARG_OVERHEAD
    }

    /// Forgets the command just executed and gets ready for the next one,
    /// freeing buffers a large command grew.
    pub fn finish(&mut self) {
        if self.buf.capacity() > RETAIN_ARG_BYTES {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        if self.args.capacity() > RETAIN_ARGS {
            self.args = Vec::new();
        } else {
            self.args.clear();
        }
        let own_at = self.own_at;
        *self = CommandParser {
            args: std::mem::take(&mut self.args),
            buf: std::mem::take(&mut self.buf),
            own_at,
            ..CommandParser::default()
        };
    }

    /// Parses on from where the last call stopped. `src` is the connection's
    /// unconsumed input (after dropping what earlier calls reported).
    pub fn parse(&mut self, src: &[u8], limits: &RespLimits) -> Result<Parse, RespError> {
        match self.step(src, limits)? {
            Some(end) => Ok(Parse::Command(end)),
            None => Ok(Parse::Partial(self.suspend(src))),
        }
    }

    /// Runs the state machine; `Some(end)` when a command completed.
    fn step(&mut self, src: &[u8], limits: &RespLimits) -> Result<Option<usize>, RespError> {
        loop {
            let p = self.pos;
            match self.state {
                State::Start => {
                    let Some(&first) = src.get(p) else {
                        return Ok(None);
                    };
                    if first == b'*' {
                        self.state = State::Count;
                        self.pos = p + 1;
                    } else {
                        self.state = State::Inline;
                    }
                    self.scan = self.pos;
                }
                State::Inline => return self.inline(src, limits),
                State::Count => {
                    let Some((line, next)) = line(
                        src,
                        p,
                        &mut self.scan,
                        limits.max_inline_len,
                        RespError::MbulkCountTooBig,
                    )?
                    else {
                        return Ok(None);
                    };
                    let count = parse_i64(line)
                        .filter(|&n| n <= limits.max_array_len as i64)
                        .ok_or(RespError::InvalidMultibulkLength)?;
                    self.pos = next;
                    if count <= 0 {
                        return Ok(Some(next));
                    }
                    self.left = count as u64;
                    self.args.reserve((count as usize).min(RETAIN_ARGS));
                    self.state = State::Header;
                    self.scan = next;
                }
                State::Header => {
                    let Some(&first) = src.get(p) else {
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
                    self.scan = self.scan.max(p + 1);
                    let Some((len, next)) = line(
                        src,
                        p + 1,
                        &mut self.scan,
                        limits.max_inline_len,
                        RespError::BulkCountTooBig,
                    )?
                    else {
                        return Ok(None);
                    };
                    let len = parse_i64(len)
                        .filter(|&n| n >= 0 && n as u64 <= limits.max_bulk_len as u64)
                        .ok_or(RespError::InvalidBulkLength)?
                        as usize;
                    self.size = self.size.saturating_add(len).saturating_add(ARG_OVERHEAD);
                    if self.size > limits.max_command_bytes {
                        return Err(RespError::CommandTooBig);
                    }
                    self.pos = next;
                    self.due = len;
                    self.arg_start = if self.owned { self.buf.len() } else { next };
                    self.state = State::Data;
                }
                State::Data => {
                    let avail = src.len() - p;
                    if self.owned {
                        let n = avail.min(self.due);
                        self.buf.extend_from_slice(&src[p..p + n]);
                        self.pos = p + n;
                        self.due -= n;
                        if self.due > 0 {
                            return Ok(None);
                        }
                        self.args.push(self.arg_start..self.buf.len());
                    } else {
                        if avail < self.due {
                            return Ok(None);
                        }
                        self.pos = p + self.due;
                        self.due = 0;
                        self.args.push(self.arg_start..self.pos);
                    }
                    self.state = State::Crlf;
                }
                State::Crlf => {
                    let Some(crlf) = src.get(p..p + 2) else {
                        return Ok(None);
                    };
                    if crlf != b"\r\n" {
                        return Err(RespError::MissingBulkCrlf);
                    }
                    self.pos = p + 2;
                    self.left -= 1;
                    if self.left == 0 {
                        return Ok(Some(self.pos));
                    }
                    self.state = State::Header;
                    self.scan = self.pos;
                }
            }
        }
    }

    /// The command is incomplete: decides what of `src` to take now and
    /// returns how many bytes that is.
    fn suspend(&mut self, src: &[u8]) -> usize {
        if !self.owned {
            if src.len() < self.own_at || matches!(self.state, State::Start | State::Inline) {
                // Keep borrowing: the input stays put and parsing resumes at `pos`.
                return 0;
            }
            // Copy the arguments so far (and a bulk's partial data) out.
            self.owned = true;
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            for r in &mut self.args {
                let start = buf.len();
                buf.extend_from_slice(&src[r.clone()]);
                *r = start..buf.len();
            }
            if self.state == State::Data {
                let start = buf.len();
                buf.extend_from_slice(&src[self.arg_start..]);
                self.due -= src.len() - self.arg_start;
                self.arg_start = start;
                self.pos = src.len();
            }
            self.buf = buf;
        }
        // Owned: everything parsed so far is taken; an unfinished line stays
        // in the input and its search resumes where it stopped.
        let taken = self.pos;
        self.pos = 0;
        self.scan -= taken.min(self.scan);
        taken
    }

    /// Parses an inline command line (kept in the input: it is bounded by
    /// [`RespLimits::max_inline_len`]).
    fn inline(&mut self, src: &[u8], limits: &RespLimits) -> Result<Option<usize>, RespError> {
        let max = limits.max_inline_len;
        let window = &src[..src.len().min(max.saturating_add(1))];
        let from = self.scan.min(window.len());
        let Some(nl) = window[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| from + i)
        else {
            if src.len() > max {
                return Err(RespError::InlineTooBig);
            }
            self.scan = window.len();
            return Ok(None);
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
                self.args.push(i + 1..close);
                i = close + 1;
            } else {
                let start = i;
                while i < end && !is_space(src[i]) {
                    i += 1;
                }
                self.args.push(start..i);
            }
        }
        Ok(Some(nl + 1))
    }
}

/// Reads a `\r\n`-terminated line starting at `start`, at most `max` bytes
/// long. `scan` is where the search for its end resumes (bytes before it
/// hold no CR); it is advanced when the line is incomplete. Returns the line
/// (without CRLF) and the position after it.
fn line<'s>(
    src: &'s [u8],
    start: usize,
    scan: &mut usize,
    max: usize,
    too_big: RespError,
) -> Result<Option<(&'s [u8], usize)>, RespError> {
    let window_end = src.len().min(start.saturating_add(max).saturating_add(1));
    let from = (*scan).clamp(start, window_end.max(start));
    match src[from..window_end].iter().position(|&b| b == b'\r') {
        None if src.len() - start > max => Err(too_big),
        None => {
            *scan = window_end;
            Ok(None)
        }
        Some(i) => {
            let cr = from + i;
            match src.get(cr + 1) {
                None => {
                    *scan = cr;
                    Ok(None)
                }
                Some(b'\n') => Ok(Some((&src[start..cr], cr + 2))),
                // A CR not followed by LF makes the number unparsable.
                Some(_) => Ok(Some((&src[start..cr + 2], cr + 2))),
            }
        }
    }
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

    /// Feeds `src` in pieces of `step` bytes like the engine glue (input
    /// kept until consumed); returns each command's arguments.
    fn stream(src: &[u8], step: usize, limits: &RespLimits) -> Vec<Vec<Vec<u8>>> {
        let mut p = CommandParser::default();
        let mut inbound = Vec::new();
        let mut cmds = Vec::new();
        for piece in src.chunks(step) {
            inbound.extend_from_slice(piece);
            loop {
                match p.parse(&inbound, limits).unwrap() {
                    Parse::Command(n) => {
                        cmds.push(p.args(&inbound).iter().map(<[u8]>::to_vec).collect());
                        p.finish();
                        inbound.drain(..n);
                    }
                    Parse::Partial(n) => {
                        inbound.drain(..n);
                        break;
                    }
                }
            }
        }
        assert!(inbound.is_empty() && !p.in_command());
        cmds
    }

    #[test]
    fn streaming_matches_one_shot_at_any_split_and_copies_large_commands() {
        let big = vec![b'v'; OWN_AT * 3];
        let mut src = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$".to_vec();
        src.extend_from_slice(big.len().to_string().as_bytes());
        src.extend_from_slice(b"\r\n");
        src.extend_from_slice(&big);
        src.extend_from_slice(b"\r\nPING  x\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n");
        let want: Vec<Vec<Vec<u8>>> = vec![
            vec![b"SET".to_vec(), b"k".to_vec(), big.clone()],
            vec![b"PING".to_vec(), b"x".to_vec()],
            vec![b"ECHO".to_vec(), vec![]],
        ];
        for step in [1, 2, 3, 7, 4096, 65536, src.len()] {
            assert_eq!(
                stream(&src, step, &RespLimits::default()),
                want,
                "step {step}"
            );
        }
    }

    #[test]
    fn a_large_partial_command_is_taken_out_of_the_input() {
        let limits = RespLimits::default();
        let mut p = CommandParser::default();
        let mut src = b"*2\r\n$4\r\nECHO\r\n$100000\r\n".to_vec();
        src.extend_from_slice(&[b'x'; OWN_AT]);
        let Parse::Partial(n) = p.parse(&src, &limits).unwrap() else {
            panic!("partial")
        };
        assert_eq!(n, src.len(), "everything parsed is taken");
        assert!(p.held_bytes() >= OWN_AT);
        // The rest arrives; only new bytes are looked at.
        let mut rest = vec![b'x'; 100_000 - OWN_AT];
        rest.extend_from_slice(b"\r\n");
        assert_eq!(p.parse(&rest, &limits), Ok(Parse::Command(rest.len())));
        assert_eq!(p.args(&rest).get(1).len(), 100_000);
        p.finish();
        assert!(
            p.held_bytes() < OWN_AT,
            "buffers shrink after a large command"
        );
    }

    #[test]
    fn command_size_is_bounded() {
        let limits = RespLimits {
            max_command_bytes: 1000,
            ..RespLimits::default()
        };
        let src = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000\r\n";
        let mut ranges = Vec::new();
        assert_eq!(
            parse_command(src, &limits, &mut ranges),
            Err(RespError::CommandTooBig)
        );
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
