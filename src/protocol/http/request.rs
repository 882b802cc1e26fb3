//! Zero-copy HTTP/1.1 request-head parsing (on top of `httparse`), the
//! request view handed to applications, and the one-shot [`parse_request`].
//!
//! The head rules enforced here, beyond `httparse`'s syntax checks: one
//! `Host` in HTTP/1.1 and at most one in 1.0 (RFC 9112 §3.2); one agreed
//! `Content-Length`, never with `Transfer-Encoding`; `chunked` only as the
//! final coding (`chunked, identity` is 400, other codings 501); HTTP/1.0
//! with `Transfer-Encoding` closes after the response (§6.1).

use std::mem::MaybeUninit;

use super::chunked::ChunkedDecoder;
use super::limits::MAX_HEADERS_CAP;
use super::{HttpError, Limits, Method};

/// Header slots kept on the stack; larger `max_headers` use a heap buffer.
const STACK_HEADERS: usize = 128;

/// The HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`: connections close unless `Connection: keep-alive`.
    Http10,
    /// `HTTP/1.1`: connections persist unless `Connection: close`.
    Http11,
}

/// A parsed request borrowing from the inbound bytes (and, for chunked
/// bodies, from the caller's decode buffer).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    method: Option<Method>,
    method_str: &'a str,
    path: &'a str,
    version: Version,
    header_block: &'a [u8],
    header_count: usize,
    pub(crate) body: &'a [u8],
    content_length: Option<u64>,
    chunked: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl<'a> Request<'a> {
    /// The request method as sent, e.g. `"GET"`.
    pub fn method(&self) -> &'a str {
        self.method_str
    }

    /// The request method if it is a standard one (the [`Session`](super::Session)
    /// answers every other one 501 before the application sees it).
    pub fn known_method(&self) -> Option<Method> {
        self.method
    }

    /// The request target as sent, e.g. `"/json?x=1"`.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The request target without its query string.
    pub fn path_only(&self) -> &'a str {
        match self.path.find('?') {
            Some(i) => &self.path[..i],
            None => self.path,
        }
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Number of header fields.
    pub fn header_count(&self) -> usize {
        self.header_count
    }

    /// Iterates the header fields in order as `(name, value)`; values have
    /// surrounding whitespace removed.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            rest: self.header_block,
        }
    }

    /// The value of the first header field named `name` (ASCII
    /// case-insensitive). Takes a `&str` or, with the `http-types` feature,
    /// an `http::HeaderName`.
    pub fn header(&self, name: impl AsRef<str>) -> Option<&'a [u8]> {
        let name = name.as_ref();
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The body: the `Content-Length` bytes, or the decoded chunked body.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The declared `Content-Length`, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Whether the body used `Transfer-Encoding: chunked`.
    pub fn is_chunked(&self) -> bool {
        self.chunked
    }

    /// Whether the connection may stay open after this request, following
    /// the version default and the `Connection` header.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Whether an HTTP/1.1 client sent `Expect: 100-continue`.
    pub fn expect_continue(&self) -> bool {
        self.expect_continue
    }
}

/// Iterator over a request's header fields; see [`Request::headers`].
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let nl = self
                .rest
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(self.rest.len());
            let mut line = &self.rest[..nl];
            self.rest = &self.rest[(nl + 1).min(self.rest.len())..];
            if let [head @ .., b'\r'] = line {
                line = head;
            }
            if line.is_empty() {
                self.rest = &[];
                return None;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = std::str::from_utf8(&line[..colon]).unwrap_or("");
            return Some((name, trim(&line[colon + 1..])));
        }
    }
}

/// The outcome of [`parse_request`].
#[derive(Debug, Clone)]
pub enum Parsed<'a> {
    /// More bytes are needed. `expect_continue` is true when the header
    /// section is complete, the client sent `Expect: 100-continue`, and the
    /// body is still missing: the glue should write
    /// `HTTP/1.1 100 Continue\r\n\r\n` (once per request).
    Partial {
        /// See the variant docs.
        expect_continue: bool,
    },
    /// A whole request (head and body) was parsed.
    Complete {
        /// The request.
        request: Request<'a>,
        /// Bytes of `src` it occupied; the next pipelined request starts there.
        consumed: usize,
    },
}

/// Parses one whole request from the start of `src`, without state.
///
/// Zero-copy: the request borrows from `src`. A chunked body is decoded into
/// `body_buf` (cleared first, capacity reused) and the request's body then
/// borrows from it.
///
/// This is the one-shot form, for tools and tests: each call starts over from
/// the first byte, so feeding a request piecewise through it costs time
/// quadratic in its size. A server uses the streaming [`Session`](super::Session),
/// which resumes where it stopped and consumes body bytes as they arrive.
///
/// ```
/// use netloop::protocol::http::{parse_request, Limits, Method, Parsed};
/// let mut scratch = Vec::new();
/// let src = b"GET /json HTTP/1.1\r\nHost: x\r\n\r\nGET /";
/// match parse_request(src, &Limits::default(), &mut scratch).unwrap() {
///     Parsed::Complete { request, consumed } => {
///         assert_eq!(request.path(), "/json");
///         assert_eq!(request.known_method(), Some(Method::Get));
///         assert!(request.keep_alive());
///         assert_eq!(consumed, src.len() - 5);
///     }
///     Parsed::Partial { .. } => unreachable!(),
/// }
/// ```
pub fn parse_request<'a>(
    src: &'a [u8],
    limits: &Limits,
    body_buf: &'a mut Vec<u8>,
) -> Result<Parsed<'a>, HttpError> {
    let skip = leading_empty_lines(src);
    let rest = &src[skip..];
    let Some(head) = parse_head(rest, limits)? else {
        return Ok(Parsed::Partial {
            expect_continue: false,
        });
    };
    let ParsedHead {
        mut request,
        len,
        framing,
    } = head;
    let body_src = &rest[len..];
    let partial = Parsed::Partial {
        expect_continue: request.expect_continue,
    };
    let body_len = match framing {
        Framing::None => 0,
        Framing::Length(n) => {
            let n = n as usize;
            if body_src.len() < n {
                return Ok(partial);
            }
            request.body = &body_src[..n];
            n
        }
        Framing::Chunked => {
            body_buf.clear();
            let mut decoder = ChunkedDecoder::default();
            let used = decoder.decode(body_src, body_buf, limits)?;
            if !decoder.is_done() {
                return Ok(partial);
            }
            let decoded: &'a Vec<u8> = body_buf;
            request.body = decoded;
            used
        }
    };
    Ok(Parsed::Complete {
        request,
        consumed: skip + len + body_len,
    })
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes (within [`Limits::max_body_bytes`]).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head: the request (with an empty body), the head's length
/// and how its body is framed.
#[derive(Debug, Clone)]
pub(crate) struct ParsedHead<'a> {
    pub(crate) request: Request<'a>,
    pub(crate) len: usize,
    pub(crate) framing: Framing,
}

/// Bytes of empty lines (`\r\n` or `\n`) at the start of `src`, which a
/// server ignores before a request line (RFC 9112 §2.2).
pub(crate) fn leading_empty_lines(src: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match &src[i..] {
            [b'\r', b'\n', ..] => i += 2,
            [b'\n', ..] => i += 1,
            _ => return i,
        }
    }
}

/// Searches `src` for the end of a head (an empty line), starting at
/// `from` — the caller's earlier searches covered the bytes before it.
/// Returns `Ok(end)` (the head's length) or `Err(next_from)`: where the
/// next search, with more bytes appended, has to resume.
pub(crate) fn find_head_end(src: &[u8], from: usize) -> Result<usize, usize> {
    let mut i = from;
    while let Some(off) = src[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        match &src[nl + 1..] {
            [b'\n', ..] => return Ok(nl + 2),
            [b'\r', b'\n', ..] => return Ok(nl + 3),
            // Not yet decidable: look at this line end again next time.
            [] | [b'\r'] => return Err(nl),
            _ => i = nl + 1,
        }
    }
    Err(src.len())
}

/// Parses a request head at the start of `src` (no leading empty lines).
/// `Ok(None)` when the head is not complete yet (an error once `src` is
/// longer than [`Limits::max_header_bytes`]).
pub(crate) fn parse_head<'a>(
    src: &'a [u8],
    limits: &Limits,
) -> Result<Option<ParsedHead<'a>>, HttpError> {
    let max_headers = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut stack: [MaybeUninit<httparse::Header<'a>>; STACK_HEADERS] =
        [const { MaybeUninit::uninit() }; STACK_HEADERS];
    let mut heap: Vec<MaybeUninit<httparse::Header<'a>>> = Vec::new();
    let slots: &mut [MaybeUninit<httparse::Header<'a>>] = if max_headers <= STACK_HEADERS {
        &mut stack[..max_headers]
    } else {
        heap.resize_with(max_headers, MaybeUninit::uninit);
        &mut heap[..]
    };

    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(src, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if src.len() > limits.max_header_bytes {
                return Err(HttpError::HeadersTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(e) => return Err(HttpError::Malformed(httparse_reason(e))),
    };
    if head_len > limits.max_header_bytes {
        return Err(HttpError::HeadersTooLarge);
    }

    let method_str = req.method.unwrap_or("");
    let path = req.path.unwrap_or("");
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::Malformed("unsupported HTTP version")),
    };

    let mut content_length: Option<u64> = None;
    let mut te = TransferCodings::default();
    let mut hosts = 0u32;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        // Dispatch on length first: most names are rejected by one compare.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => hosts += 1,
            6 if name.eq_ignore_ascii_case(b"expect") => {
                expect_continue = trim(h.value).eq_ignore_ascii_case(b"100-continue");
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in h.value.split(|&b| b == b',') {
                    let token = trim(token);
                    if token.eq_ignore_ascii_case(b"close") {
                        conn_close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        conn_keep_alive = true;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let v = parse_content_length(h.value)?;
                match content_length {
                    Some(prev) if prev != v => return Err(HttpError::InvalidContentLength),
                    _ => content_length = Some(v),
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => te.add(h.value)?,
            _ => {}
        }
    }
    // RFC 9112 §3.2: a 1.1 request has exactly one Host; none may have two.
    match (version, hosts) {
        (Version::Http11, 0) => return Err(HttpError::Malformed("missing Host header")),
        (_, 2..) => return Err(HttpError::Malformed("more than one Host header")),
        _ => {}
    }
    let chunked = te.finish()?;
    if chunked && content_length.is_some() {
        return Err(HttpError::ConflictingLength);
    }
    let header_count = req.headers.len();
    let keep_alive = match version {
        Version::Http11 => !conn_close,
        // A 1.0 message with Transfer-Encoding: close after the response
        // (RFC 9112 §6.1), whatever its Connection header says.
        Version::Http10 => conn_keep_alive && !conn_close && !chunked,
    };
    let expect_continue = expect_continue && version == Version::Http11;
    let framing = if chunked {
        Framing::Chunked
    } else {
        match content_length {
            Some(cl) if cl > limits.max_body_bytes as u64 => return Err(HttpError::BodyTooLarge),
            Some(0) | None => Framing::None,
            Some(cl) => Framing::Length(cl),
        }
    };

    // The header block starts after the request line (httparse may have
    // skipped leading empty lines, so locate the line through `path`).
    let path_off = (path.as_ptr() as usize)
        .checked_sub(src.as_ptr() as usize)
        .filter(|&o| o <= head_len)
        .unwrap_or(0);
    let block_start = src[path_off..head_len]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(head_len, |i| path_off + i + 1);
    let header_block = &src[block_start..head_len];

    Ok(Some(ParsedHead {
        request: Request {
            method: Method::from_bytes(method_str.as_bytes()),
            method_str,
            path,
            version,
            header_block,
            header_count,
            body: &[],
            content_length,
            chunked,
            keep_alive,
            expect_continue,
        },
        len: head_len,
        framing,
    }))
}

/// The `Transfer-Encoding` codings of a request, checked as they come.
#[derive(Debug, Default)]
struct TransferCodings {
    present: bool,
    chunked: bool,
    other: bool,
}

impl TransferCodings {
    fn add(&mut self, value: &[u8]) -> Result<(), HttpError> {
        self.present = true;
        for token in value.split(|&b| b == b',') {
            let token = trim(token);
            if token.is_empty() {
                continue;
            }
            if self.chunked {
                // Anything after `chunked` (`chunked, identity`, a second
                // `chunked`): the length cannot be determined.
                return Err(HttpError::ChunkedNotFinal);
            }
            if token.eq_ignore_ascii_case(b"chunked") {
                self.chunked = true;
            } else {
                self.other = true;
            }
        }
        Ok(())
    }

    /// Whether the body is chunked; errors for codings this server lacks.
    fn finish(&self) -> Result<bool, HttpError> {
        match (self.present, self.chunked, self.other) {
            (false, _, _) => Ok(false),
            (true, true, false) => Ok(true),
            (true, false, false) => Err(HttpError::Malformed("empty Transfer-Encoding")),
            (true, _, true) => Err(HttpError::UnsupportedTransferEncoding),
        }
    }
}

fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid new line",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// Removes leading and trailing spaces and tabs.
fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn parse_content_length(v: &[u8]) -> Result<u64, HttpError> {
    let v = trim(v);
    if v.is_empty() {
        return Err(HttpError::InvalidContentLength);
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(HttpError::InvalidContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(HttpError::InvalidContentLength)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Path, body, consumed, keep-alive.
    type Summary = (String, Vec<u8>, usize, bool);

    fn parse(src: &[u8]) -> Result<Option<Summary>, HttpError> {
        let mut buf = Vec::new();
        Ok(match parse_request(src, &Limits::default(), &mut buf)? {
            Parsed::Partial { .. } => None,
            Parsed::Complete { request, consumed } => Some((
                request.path().to_string(),
                request.body().to_vec(),
                consumed,
                request.keep_alive(),
            )),
        })
    }

    #[test]
    fn simple_get() {
        let src = b"GET /a?b HTTP/1.1\r\nHost: h\r\nX-A:  1 \r\n\r\n";
        let mut buf = Vec::new();
        let Parsed::Complete { request, consumed } =
            parse_request(src, &Limits::default(), &mut buf).unwrap()
        else {
            panic!()
        };
        assert_eq!(consumed, src.len());
        assert_eq!(request.method(), "GET");
        assert_eq!(request.path_only(), "/a");
        assert_eq!(request.version(), Version::Http11);
        assert_eq!(request.header_count(), 2);
        assert_eq!(request.header("x-a"), Some(&b"1"[..]));
        let all: Vec<_> = request.headers().collect();
        assert_eq!(all, vec![("Host", &b"h"[..]), ("X-A", &b"1"[..])]);
        assert!(request.keep_alive());
        assert!(request.body().is_empty());
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |s: &[u8]| parse(s).unwrap().unwrap().3;
        assert!(ka(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, Close\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn content_length_body() {
        let src = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET";
        let (_, body, consumed, _) = parse(src).unwrap().unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(consumed, src.len() - 3);
        assert!(parse(&src[..src.len() - 4]).unwrap().is_none());
    }

    #[test]
    fn chunked_body() {
        let src = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n";
        let (_, body, consumed, _) = parse(src).unwrap().unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(consumed, src.len());
        for i in 0..src.len() {
            assert!(parse(&src[..i]).unwrap().is_none(), "prefix {i}");
        }
    }

    #[test]
    fn errors_map_to_statuses() {
        let st = |s: &[u8]| parse(s).unwrap_err().status();
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n"),
            400
        );
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999\r\n\r\n"),
            413
        );
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            400
        );
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n"),
            400
        );
        assert_eq!(st(b"GET\0 / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(st(b"GET / HTTP/2.0\r\n\r\n"), 400);
    }

    #[test]
    fn expect_continue_partial() {
        let src = b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        let mut buf = Vec::new();
        let r = parse_request(src, &Limits::default(), &mut buf).unwrap();
        assert!(matches!(
            r,
            Parsed::Partial {
                expect_continue: true
            }
        ));
        let r = parse_request(&src[..src.len() - 1], &Limits::default(), &mut buf).unwrap();
        assert!(matches!(
            r,
            Parsed::Partial {
                expect_continue: false
            }
        ));
    }

    #[test]
    fn chunk_extension_and_trailer_bounds() {
        let limits = Limits {
            max_chunk_ext_bytes: 100,
            ..Limits::default()
        };
        let mut src = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..20 {
            src.extend_from_slice(b"1;ext=0123456789\r\nx\r\n");
        }
        let mut buf = Vec::new();
        let e = parse_request(&src, &limits, &mut buf).unwrap_err();
        assert_eq!(e, HttpError::ChunkExtensionsTooLong);
        assert_eq!(e.status(), 413);
        // Trailers are bounded by max_header_bytes.
        let limits = Limits {
            max_header_bytes: 128,
            ..Limits::default()
        };
        let mut src =
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
        for _ in 0..20 {
            src.extend_from_slice(b"X-Trailer: value\r\n");
        }
        let e = parse_request(&src, &limits, &mut buf).unwrap_err();
        assert_eq!(e, HttpError::HeadersTooLarge);
    }

    #[test]
    fn host_and_transfer_encoding_rules() {
        let st = |s: &[u8]| parse(s).unwrap_err().status();
        assert_eq!(st(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(st(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(st(b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"), 400);
        assert!(parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
        let te = |v: &str| {
            let src =
                format!("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {v}\r\n\r\n0\r\n\r\n");
            parse(src.as_bytes()).map(|r| r.is_some())
        };
        assert_eq!(te("chunked"), Ok(true));
        assert_eq!(te("Chunked"), Ok(true));
        assert_eq!(te("chunked, identity"), Err(HttpError::ChunkedNotFinal));
        assert_eq!(te("chunked, chunked"), Err(HttpError::ChunkedNotFinal));
        assert_eq!(
            te("gzip, chunked"),
            Err(HttpError::UnsupportedTransferEncoding)
        );
        assert_eq!(te("identity"), Err(HttpError::UnsupportedTransferEncoding));
        assert_eq!(te(""), Err(HttpError::Malformed("empty Transfer-Encoding")));
        // Split over two fields: the same list.
        let src = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n";
        assert_eq!(parse(src).unwrap_err(), HttpError::ChunkedNotFinal);
        // HTTP/1.0 with Transfer-Encoding closes, even when asked to keep alive.
        let src = b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(!parse(src).unwrap().unwrap().3);
    }

    #[test]
    fn head_end_search_resumes() {
        let src = b"GET / HTTP/1.1\r\nHost: h\r\n\r\nrest";
        let end = 27;
        assert_eq!(find_head_end(src, 0), Ok(end));
        for cut in 0..end {
            // Searching a prefix, then resuming on the whole, finds the end.
            match find_head_end(&src[..cut], 0) {
                Ok(_) => panic!("found an end in a prefix of {cut}"),
                Err(from) => assert_eq!(find_head_end(src, from), Ok(end), "cut {cut}"),
            }
        }
        assert_eq!(find_head_end(b"GET / HTTP/1.0\n\nx", 0), Ok(16));
        assert_eq!(leading_empty_lines(b"\r\n\nGET"), 3);
        assert_eq!(leading_empty_lines(b"\rGET"), 0);
    }

    #[test]
    fn headers_limits() {
        let limits = Limits {
            max_headers: 2,
            max_header_bytes: 64,
            ..Limits::default()
        };
        let mut buf = Vec::new();
        let e = parse_request(
            b"GET / HTTP/1.1\r\nHost: h\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n",
            &limits,
            &mut buf,
        )
        .unwrap_err();
        assert_eq!(e, HttpError::TooManyHeaders);
        let big = [b'a'; 100];
        let e = parse_request(&big, &limits, &mut buf).unwrap_err();
        assert_eq!(e, HttpError::HeadersTooLarge);
    }

    #[test]
    fn many_headers_use_heap_slots() {
        let limits = Limits {
            max_headers: 300,
            max_header_bytes: 64 * 1024,
            ..Limits::default()
        };
        let mut src = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..200 {
            src.extend_from_slice(format!("h{i}: {i}\r\n").as_bytes());
        }
        src.extend_from_slice(b"\r\n");
        let mut buf = Vec::new();
        let Parsed::Complete { request, .. } = parse_request(&src, &limits, &mut buf).unwrap()
        else {
            panic!()
        };
        assert_eq!(request.header_count(), 201);
        assert_eq!(request.header("H199"), Some(&b"199"[..]));
    }
}
