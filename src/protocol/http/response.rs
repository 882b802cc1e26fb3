//! Response serialization.

/// The interim response written for `Expect: 100-continue`.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The standard reason phrase for `status` (`"Unknown"` when unlisted).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Whether `bytes` holds a CR or an LF, eight bytes at a time (this runs
/// over every header value and the date of every response).
fn has_cr_or_lf(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Nonzero iff some byte of `w` is zero (the classic SWAR test).
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS != 0;
    let crlf = |w: &[u8]| {
        let w = u64::from_ne_bytes(w.try_into().expect("eight bytes"));
        has_zero(w ^ (ONES * u64::from(b'\r'))) || has_zero(w ^ (ONES * u64::from(b'\n')))
    };
    let mut words = bytes.chunks_exact(8);
    if words.any(crlf) {
        return true;
    }
    match words.remainder().len() {
        0 => false,
        // The last eight bytes, overlapping words already seen.
        _ if bytes.len() >= 8 => crlf(&bytes[bytes.len() - 8..]),
        // Shorter than a word: padded with zeros (neither CR nor LF).
        n => {
            let mut last = [0u8; 8];
            last[..n].copy_from_slice(bytes);
            crlf(&last)
        }
    }
}

/// Appends `bytes` with CR and LF replaced by spaces (no response splitting).
fn push_sanitized(out: &mut Vec<u8>, bytes: &[u8]) {
    if !has_cr_or_lf(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    out.extend(
        bytes
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

fn valid_header_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic() && b != b':')
}

/// Writes the status line, `Server` and `Date`.
fn write_status(out: &mut Vec<u8>, status: u16, reason: &str, date: &[u8]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    push_sanitized(out, reason.as_bytes());
    out.extend_from_slice(b"\r\nServer: netloop\r\nDate: ");
    push_sanitized(out, date);
    out.extend_from_slice(b"\r\n");
}

/// The `Connection` header a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionHeader {
    /// None: an HTTP/1.1 connection that stays open.
    Default,
    /// `Connection: keep-alive`: an HTTP/1.0 connection that stays open
    /// (1.0 closes by default, so the client must be told).
    KeepAlive,
    /// `Connection: close`.
    Close,
}

impl ConnectionHeader {
    /// The header for a response that keeps the connection open or not, to
    /// a request of HTTP/1.0 (`http10`) or 1.1.
    pub(crate) fn for_request(keep_alive: bool, http10: bool) -> ConnectionHeader {
        match (keep_alive, http10) {
            (false, _) => ConnectionHeader::Close,
            (true, true) => ConnectionHeader::KeepAlive,
            (true, false) => ConnectionHeader::Default,
        }
    }
}

/// Writes `Content-Length`, the `Connection` header if any, and the blank line.
fn write_tail(out: &mut Vec<u8>, content_length: usize, conn: ConnectionHeader) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(num.format(content_length).as_bytes());
    out.extend_from_slice(match conn {
        ConnectionHeader::Default => b"\r\n\r\n",
        ConnectionHeader::KeepAlive => b"\r\nConnection: keep-alive\r\n\r\n",
        ConnectionHeader::Close => b"\r\nConnection: close\r\n\r\n",
    });
}

/// Appends a complete response to `out`: status line, `Server: netloop`,
/// `Date`, the given headers, `Content-Length`, `Connection: close` when
/// `keep_alive` is false, then the body.
///
/// Headers with an invalid name are skipped; CR/LF in the reason or values
/// are replaced by spaces. Do not pass `Content-Length`, `Date`, `Server` or
/// `Connection` in `headers`: they are written here.
///
/// ```
/// use netloop::protocol::http::write_response;
/// let mut out = Vec::new();
/// let date = b"Thu, 26 Nov 2026 15:42:58 GMT";
/// write_response(&mut out, 200, "OK", &[("Content-Type", b"text/plain")], b"hi", date, true);
/// assert_eq!(
///     out,
///     b"HTTP/1.1 200 OK\r\nServer: netloop\r\nDate: Thu, 26 Nov 2026 15:42:58 GMT\r\n\
///       Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
/// );
/// ```
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    date: &[u8],
    keep_alive: bool,
) {
    let conn = ConnectionHeader::for_request(keep_alive, false);
    write_response_with(out, status, reason, headers, body, date, conn);
}

/// [`write_response`] with an explicit `Connection` header.
pub(crate) fn write_response_with(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    date: &[u8],
    conn: ConnectionHeader,
) {
    write_status(out, status, reason, date);
    for (name, value) in headers {
        push_header(out, name, value);
    }
    write_tail(out, body.len(), conn);
    out.extend_from_slice(body);
}

fn push_header(dst: &mut Vec<u8>, name: &str, value: &[u8]) -> bool {
    if !valid_header_name(name.as_bytes()) {
        tracing::warn!(name, "dropping response header with invalid name");
        return false;
    }
    dst.extend_from_slice(name.as_bytes());
    dst.extend_from_slice(b": ");
    push_sanitized(dst, value);
    dst.extend_from_slice(b"\r\n");
    true
}

/// A response under construction, filled in by an application handler and
/// serialized by [`Session`](super::Session). Reused across requests: its
/// buffers keep their capacity, so steady-state responses do not allocate.
///
/// ```
/// use netloop::protocol::http::Response;
/// let mut resp = Response::new();
/// resp.set_status(201).header("Content-Type", "text/plain").set_body(b"made");
/// let mut out = Vec::new();
/// resp.write_to(&mut out, b"Thu, 26 Nov 2026 15:42:58 GMT", true, false);
/// assert!(out.starts_with(b"HTTP/1.1 201 Created\r\n"));
/// assert!(out.ends_with(b"Content-Length: 4\r\n\r\nmade"));
/// ```
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    reason: Option<&'static str>,
    headers: Vec<u8>,
    body: Vec<u8>,
    close: bool,
}

impl Default for Response {
    fn default() -> Self {
        Self::new()
    }
}

impl Response {
    /// An empty `200 OK` response.
    pub fn new() -> Self {
        Response {
            status: 200,
            reason: None,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
        }
    }

    /// Resets to an empty `200 OK`, keeping buffer capacity.
    pub fn clear(&mut self) {
        self.status = 200;
        self.reason = None;
        self.headers.clear();
        self.body.clear();
        self.close = false;
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Sets the status code (the reason phrase defaults to the standard one).
    pub fn set_status(&mut self, status: u16) -> &mut Self {
        self.status = status;
        self
    }

    /// Overrides the reason phrase.
    pub fn set_reason(&mut self, reason: &'static str) -> &mut Self {
        self.reason = Some(reason);
        self
    }

    /// Appends a header field. Invalid names are dropped; CR/LF in the value
    /// become spaces. `Content-Length`, `Date`, `Server` and `Connection` are
    /// written by the serializer; use [`Response::close`] to close.
    ///
    /// Takes `&str`/`&[u8]` pairs, or (with the `http-types` feature) the
    /// `http` crate's `HeaderName` and `HeaderValue` as they are.
    pub fn header(&mut self, name: impl AsRef<str>, value: impl AsRef<[u8]>) -> &mut Self {
        push_header(&mut self.headers, name.as_ref(), value.as_ref());
        self
    }

    /// The serialized extra header lines (`name: value\r\n` each).
    pub fn header_bytes(&self) -> &[u8] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body buffer, for writing into directly.
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }

    /// Replaces the body.
    pub fn set_body(&mut self, body: &[u8]) -> &mut Self {
        self.body.clear();
        self.body.extend_from_slice(body);
        self
    }

    /// Asks for the connection to be closed after this response.
    pub fn close(&mut self) -> &mut Self {
        self.close = true;
        self
    }

    /// Whether [`Response::close`] was called.
    pub fn wants_close(&self) -> bool {
        self.close
    }

    /// Appends the serialized response to `out`. `keep_alive` false (or a
    /// prior [`Response::close`]) adds `Connection: close`; `head_only`
    /// omits the body but keeps its `Content-Length` (for `HEAD`).
    pub fn write_to(&self, out: &mut Vec<u8>, date: &[u8], keep_alive: bool, head_only: bool) {
        let conn = ConnectionHeader::for_request(keep_alive && !self.close, false);
        self.write_with(out, date, conn, head_only);
    }

    /// [`write_to`](Self::write_to) with the `Connection` header decided by
    /// the caller.
    pub(crate) fn write_with(
        &self,
        out: &mut Vec<u8>,
        date: &[u8],
        conn: ConnectionHeader,
        head_only: bool,
    ) {
        let reason = self.reason.unwrap_or_else(|| reason_phrase(self.status));
        write_status(out, self.status, reason, date);
        out.extend_from_slice(&self.headers);
        let conn = if self.close {
            ConnectionHeader::Close
        } else {
            conn
        };
        write_tail(out, self.body.len(), conn);
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8] = b"Thu, 26 Nov 2026 15:42:58 GMT";

    #[test]
    fn cr_and_lf_found_at_every_position() {
        for len in 0..40 {
            let clean: Vec<u8> = (0..len).map(|i| b' ' + (i % 90) as u8).collect();
            assert!(!has_cr_or_lf(&clean), "{clean:?}");
            for at in 0..len {
                for bad in [b'\r', b'\n'] {
                    let mut v = clean.clone();
                    v[at] = bad;
                    assert!(has_cr_or_lf(&v), "{v:?}");
                }
            }
        }
        // Bytes next to CR/LF in value, and high bytes, are not mistaken.
        assert!(!has_cr_or_lf(
            b"\x0c\x0e\x0b\x09\x8d\x8a\xff\x00\x0c\x0e\x0b"
        ));
    }

    #[test]
    fn close_and_sanitize() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            400,
            "Bad\r\nRequest",
            &[("X\r\nEvil", b"1"), ("Ok", b"a\r\nb")],
            b"",
            DATE,
            false,
        );
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 400 Bad  Request\r\n"));
        assert!(!s.contains("Evil"));
        assert!(s.contains("Ok: a  b\r\n"));
        assert!(s.ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn head_only_and_reuse() {
        let mut r = Response::new();
        r.set_status(404).set_body(b"nope").close();
        let mut out = Vec::new();
        r.write_to(&mut out, DATE, true, true);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(s.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"));
        r.clear();
        assert_eq!(r.status(), 200);
        assert!(r.body().is_empty() && !r.wants_close() && r.header_bytes().is_empty());
        assert_eq!(reason_phrase(999), "Unknown");
    }
}
