//! Resource limits for the HTTP/1.1 parser and session.

/// Hard cap on [`Limits::max_headers`]; larger values are clamped to this.
pub const MAX_HEADERS_CAP: usize = 1024;

/// Limits applied while parsing requests.
///
/// Every violation maps to an [`HttpError`](super::HttpError) and thereby to a
/// status code (413 for bodies, 431 for headers).
///
/// ```
/// use netloop::protocol::http::Limits;
/// let limits = Limits { max_body_bytes: 64 * 1024, ..Limits::default() };
/// assert_eq!(limits.max_headers, 64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of header fields in one request (default 64, at most
    /// [`MAX_HEADERS_CAP`]). Exceeding it yields 431.
    pub max_headers: usize,
    /// Maximum size in bytes of the request line plus header section,
    /// including the terminating empty line (default 8 KiB). Exceeding it
    /// yields 431. Chunked trailers are bounded by the same number.
    pub max_header_bytes: usize,
    /// Maximum (decoded) body size in bytes (default 1 MiB). Exceeding it
    /// yields 413; a too-large `Content-Length` (or chunk size) is rejected
    /// before the body arrives. The body is copied out of the connection's
    /// inbound buffer as it arrives, so this limit may exceed the engine's
    /// [`Options::max_inbound_bytes`](crate::Options::max_inbound_bytes).
    pub max_body_bytes: usize,
    /// Maximum bytes of chunk extensions (everything after the size on a
    /// chunk-size line) in one chunked body (default 16 KiB). Extensions are
    /// ignored; the bound keeps the wire size of a body within a small
    /// factor of its decoded size. Exceeding it yields 413.
    pub max_chunk_ext_bytes: usize,
    /// Maximum number of requests served on one connection; the response to
    /// the last one carries `Connection: close`. `0` (the default) means no
    /// limit.
    pub max_requests_per_connection: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_headers: 64,
            max_header_bytes: 8 * 1024,
            max_body_bytes: 1024 * 1024,
            max_chunk_ext_bytes: 16 * 1024,
            max_requests_per_connection: 0,
        }
    }
}
