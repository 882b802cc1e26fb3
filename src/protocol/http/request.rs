//! Zero-copy HTTP/1.1 request parsing (on top of `httparse`) and chunked
//! body decoding.

use std::mem::MaybeUninit;

use super::limits::MAX_HEADERS_CAP;
use super::{HttpError, Limits};

/// Header slots kept on the stack; larger `max_headers` use a heap buffer.
const STACK_HEADERS: usize = 128;
/// Longest accepted chunk-size line (size plus extensions), in bytes.
const MAX_CHUNK_LINE: usize = 4096;

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
    method: &'a str,
    path: &'a str,
    version: Version,
    header_block: &'a [u8],
    header_count: usize,
    body: &'a [u8],
    content_length: Option<u64>,
    chunked: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl<'a> Request<'a> {
    /// The request method, e.g. `"GET"`.
    pub fn method(&self) -> &'a str {
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
    /// case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
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

/// Parses one request from the start of `src`.
///
/// Zero-copy: the request borrows from `src`. A chunked body is decoded into
/// `body_buf` (cleared first, capacity reused) once it is complete, and the
/// request's body then borrows from it; `body_buf` is untouched otherwise.
/// Parsing is stateless: call again with the grown buffer after `Partial`.
///
/// ```
/// use netloop::protocol::http::{parse_request, Limits, Parsed};
/// let mut scratch = Vec::new();
/// let src = b"GET /json HTTP/1.1\r\nHost: x\r\n\r\nGET /";
/// match parse_request(src, &Limits::default(), &mut scratch).unwrap() {
///     Parsed::Complete { request, consumed } => {
///         assert_eq!(request.path(), "/json");
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
            return Ok(Parsed::Partial {
                expect_continue: false,
            });
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(e) => return Err(HttpError::Malformed(httparse_reason(e))),
    };
    if head_len > limits.max_header_bytes {
        return Err(HttpError::HeadersTooLarge);
    }

    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("");
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::Malformed("unsupported HTTP version")),
    };

    let mut content_length: Option<u64> = None;
    let mut te_seen = false;
    let mut te_unsupported = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let v = parse_content_length(h.value)?;
            match content_length {
                Some(prev) if prev != v => return Err(HttpError::InvalidContentLength),
                _ => content_length = Some(v),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only one lone `chunked` coding is supported.
            if te_seen || !trim(h.value).eq_ignore_ascii_case(b"chunked") {
                te_unsupported = true;
            }
            te_seen = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue = trim(h.value).eq_ignore_ascii_case(b"100-continue");
        }
    }
    if te_seen && content_length.is_some() {
        return Err(HttpError::ConflictingLength);
    }
    if te_unsupported {
        return Err(HttpError::UnsupportedTransferEncoding);
    }
    let header_count = req.headers.len();
    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };
    let expect_continue = expect_continue && version == Version::Http11;

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

    let rest = &src[head_len..];
    let (body, body_len) = if te_seen {
        match scan_chunked(rest, limits, None)? {
            None => return Ok(Parsed::Partial { expect_continue }),
            Some(raw_len) => {
                body_buf.clear();
                scan_chunked(rest, limits, Some(&mut *body_buf))?;
                let decoded: &'a Vec<u8> = body_buf;
                (&decoded[..], raw_len)
            }
        }
    } else if let Some(cl) = content_length {
        if cl > limits.max_body_bytes as u64 {
            return Err(HttpError::BodyTooLarge);
        }
        let cl = cl as usize;
        if rest.len() < cl {
            return Ok(Parsed::Partial { expect_continue });
        }
        (&rest[..cl], cl)
    } else {
        (&rest[..0], 0)
    };

    Ok(Parsed::Complete {
        request: Request {
            method,
            path,
            version,
            header_block,
            header_count,
            body,
            content_length,
            chunked: te_seen,
            keep_alive,
            expect_continue,
        },
        consumed: head_len + body_len,
    })
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

/// Finds the `\n` ending the line starting at `pos`, looking at most `max`
/// bytes ahead. `Ok(None)` = not yet present; `Err` when longer than `max`.
fn find_line(
    src: &[u8],
    pos: usize,
    max: usize,
    err: HttpError,
) -> Result<Option<usize>, HttpError> {
    let avail = &src[pos..];
    let window = &avail[..avail.len().min(max)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => Ok(Some(pos + i)),
        None if avail.len() >= max => Err(err),
        None => Ok(None),
    }
}

/// Scans (and, with `out`, decodes) a chunked body at the start of `src`.
///
/// Returns the raw length of the complete chunked body including trailers,
/// or `None` when more bytes are needed.
fn scan_chunked(
    src: &[u8],
    limits: &Limits,
    mut out: Option<&mut Vec<u8>>,
) -> Result<Option<usize>, HttpError> {
    // Bound the raw (encoded) size so chunk-extension padding cannot make the
    // inbound buffer grow without limit.
    let raw_cap = limits
        .max_body_bytes
        .saturating_mul(4)
        .saturating_add(64 * 1024);
    let mut pos = 0usize;
    let mut total = 0usize;
    loop {
        if pos > raw_cap {
            return Err(HttpError::BodyTooLarge);
        }
        let Some(nl) = find_line(src, pos, MAX_CHUNK_LINE, HttpError::BadChunk)? else {
            return if src.len() > raw_cap {
                Err(HttpError::BodyTooLarge)
            } else {
                Ok(None)
            };
        };
        let line = match &src[pos..nl] {
            [line @ .., b'\r'] => line,
            _ => return Err(HttpError::BadChunk),
        };
        let size = parse_chunk_size(line)?;
        pos = nl + 1;
        if size == 0 {
            break;
        }
        total = total.checked_add(size).ok_or(HttpError::BodyTooLarge)?;
        if total > limits.max_body_bytes {
            return Err(HttpError::BodyTooLarge);
        }
        let data_end = pos.checked_add(size).ok_or(HttpError::BodyTooLarge)?;
        if src.len() < data_end.saturating_add(2) {
            return Ok(None);
        }
        if &src[data_end..data_end + 2] != b"\r\n" {
            return Err(HttpError::BadChunk);
        }
        if let Some(out) = out.as_deref_mut() {
            out.extend_from_slice(&src[pos..data_end]);
        }
        pos = data_end + 2;
    }
    // Trailer section: header-like lines until an empty line.
    let trailer_start = pos;
    loop {
        let budget = limits
            .max_header_bytes
            .saturating_sub(pos - trailer_start)
            .max(2);
        let Some(nl) = find_line(src, pos, budget, HttpError::HeadersTooLarge)? else {
            return Ok(None);
        };
        let line = match &src[pos..nl] {
            [line @ .., b'\r'] => line,
            _ => return Err(HttpError::BadChunk),
        };
        pos = nl + 1;
        if line.is_empty() {
            return Ok(Some(pos));
        }
        let valid = matches!(line.first(), Some(b) if !b.is_ascii_whitespace())
            && line.contains(&b':')
            && !line.contains(&b'\r');
        if !valid {
            return Err(HttpError::BadChunk);
        }
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<usize, HttpError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(HttpError::BadChunk);
    }
    let mut size = 0usize;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).unwrap_or(0) as usize;
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(d))
            .ok_or(HttpError::BadChunk)?;
    }
    let ext = trim(&line[digits..]);
    if !(ext.is_empty() || ext[0] == b';') || ext.contains(&b'\r') {
        return Err(HttpError::BadChunk);
    }
    Ok(size)
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
        assert!(ka(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn content_length_body() {
        let src = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET";
        let (_, body, consumed, _) = parse(src).unwrap().unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(consumed, src.len() - 3);
        assert!(parse(&src[..src.len() - 4]).unwrap().is_none());
    }

    #[test]
    fn chunked_body() {
        let src = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n";
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
        assert_eq!(st(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"),
            413
        );
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            400
        );
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n"),
            400
        );
        assert_eq!(st(b"GET\0 / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(st(b"GET / HTTP/2.0\r\n\r\n"), 400);
    }

    #[test]
    fn expect_continue_partial() {
        let src = b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
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
    fn chunk_line_and_raw_size_bounds() {
        let mut src = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
        src.extend_from_slice(&[b'x'; MAX_CHUNK_LINE]);
        assert_eq!(parse(&src).unwrap_err(), HttpError::BadChunk);
        let limits = Limits {
            max_body_bytes: 100_000,
            ..Limits::default()
        };
        // Tiny chunks padded with long extensions exceed the raw-size cap
        // (4 x max body + 64 KiB) long before the decoded limit.
        let mut src = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..200 {
            src.extend_from_slice(b"1;");
            src.extend_from_slice(&[b'e'; 3000]);
            src.extend_from_slice(b"\r\nx\r\n");
        }
        let mut buf = Vec::new();
        let e = parse_request(&src, &limits, &mut buf).unwrap_err();
        assert_eq!(e.status(), 413);
        // Trailers are bounded by max_header_bytes.
        let limits = Limits {
            max_header_bytes: 128,
            ..Limits::default()
        };
        let mut src = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
        for _ in 0..20 {
            src.extend_from_slice(b"X-Trailer: value\r\n");
        }
        let e = parse_request(&src, &limits, &mut buf).unwrap_err();
        assert_eq!(e, HttpError::HeadersTooLarge);
    }

    #[test]
    fn chunk_size_parsing() {
        assert_eq!(parse_chunk_size(b"1a").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"A ; ext").unwrap(), 10);
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"1x").is_err());
        assert!(parse_chunk_size(b"ffffffffffffffffff").is_err());
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
            b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n",
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
        let mut src = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..200 {
            src.extend_from_slice(format!("h{i}: {i}\r\n").as_bytes());
        }
        src.extend_from_slice(b"\r\n");
        let mut buf = Vec::new();
        let Parsed::Complete { request, .. } = parse_request(&src, &limits, &mut buf).unwrap()
        else {
            panic!()
        };
        assert_eq!(request.header_count(), 200);
        assert_eq!(request.header("H199"), Some(&b"199"[..]));
    }
}
