//! HTTP protocol errors and their status codes.

/// A request that cannot be served; the connection must be closed after
/// replying with [`HttpError::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Syntax error in the request line or headers (400).
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// Invalid chunked transfer coding (400).
    #[error("malformed chunked body")]
    BadChunk,
    /// Both `Content-Length` and `Transfer-Encoding` were sent (400).
    #[error("both Content-Length and Transfer-Encoding present")]
    ConflictingLength,
    /// `Content-Length` is not a decimal number, overflows, or repeated with
    /// different values (400).
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// The body exceeds [`Limits::max_body_bytes`](super::Limits) (413).
    #[error("request body too large")]
    BodyTooLarge,
    /// The header section exceeds [`Limits::max_header_bytes`](super::Limits) (431).
    #[error("request header section too large")]
    HeadersTooLarge,
    /// More header fields than [`Limits::max_headers`](super::Limits) (431).
    #[error("too many request header fields")]
    TooManyHeaders,
    /// A transfer coding other than a lone `chunked` (501).
    #[error("unsupported transfer encoding")]
    UnsupportedTransferEncoding,
    /// `Transfer-Encoding` in which `chunked` is not the final coding (or is
    /// repeated), e.g. `chunked, identity`: the body length cannot be
    /// determined (400, RFC 9112 §6.3).
    #[error("chunked is not the final transfer coding")]
    ChunkedNotFinal,
    /// The chunk extensions of one body exceed
    /// [`Limits::max_chunk_ext_bytes`](super::Limits) (413).
    #[error("chunk extensions too long")]
    ChunkExtensionsTooLong,
}

impl HttpError {
    /// The status code to answer this error with.
    ///
    /// ```
    /// use netloop::protocol::http::HttpError;
    /// assert_eq!(HttpError::BodyTooLarge.status(), 413);
    /// assert_eq!(HttpError::TooManyHeaders.status(), 431);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_)
            | HttpError::BadChunk
            | HttpError::ConflictingLength
            | HttpError::InvalidContentLength
            | HttpError::ChunkedNotFinal => 400,
            HttpError::BodyTooLarge | HttpError::ChunkExtensionsTooLong => 413,
            HttpError::HeadersTooLarge | HttpError::TooManyHeaders => 431,
            HttpError::UnsupportedTransferEncoding => 501,
        }
    }

    /// The reason phrase matching [`HttpError::status`].
    pub fn reason(&self) -> &'static str {
        super::response::reason_phrase(self.status())
    }
}
