//! The opening handshake (RFC 6455 §4): the server's checks of an upgrade
//! request and its `101` answer, the client's request and its checks of the
//! answer.
//!
//! The request itself is parsed by the HTTP layer's transport-free parser
//! ([`parse_request`](crate::protocol::http::parse_request)); this module only
//! reads the headers that matter for the upgrade.

use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::deflate::{self, DeflateConfig, Negotiated};
use crate::protocol::http::{write_response, Request, Version};

/// The GUID every `Sec-WebSocket-Accept` is derived with (§1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
///
/// ```
/// use netloop::protocol::websocket::handshake::accept_key;
/// // The example of RFC 6455 §1.3.
/// assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64-encoded.
pub fn new_key() -> String {
    let mut raw = [0u8; 16];
    fill_random(&mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn fill_random(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        // Linux's getrandom(2) does not fail once the pool is initialised; if it
        // ever does, a weaker source is better than none.
        tracing::warn!(error = %e, "getrandom failed; using a time-seeded fallback");
        let mut x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
            | 1;
        for b in buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
}

/// Why an upgrade request is refused, and the status it is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Not a WebSocket upgrade at all (no `Upgrade: websocket`): 426, with
    /// `Upgrade: websocket`.
    #[error("not a WebSocket upgrade request")]
    NotUpgrade,
    /// `Sec-WebSocket-Version` other than 13: 426, with
    /// `Sec-WebSocket-Version: 13`.
    #[error("unsupported WebSocket version")]
    UnsupportedVersion,
    /// A malformed upgrade (not GET, HTTP/1.0, no `Connection: Upgrade`, a
    /// missing or bad key, no `Host`): 400.
    #[error("bad upgrade request: {0}")]
    BadRequest(&'static str),
    /// The HTTP request itself is malformed or over a limit (its own status).
    #[error("HTTP request rejected with status {0}")]
    Http(u16),
    /// The application refused the upgrade with this status.
    #[error("upgrade refused with status {0}")]
    Refused(u16),
    /// The request was not complete within
    /// [`Config::handshake_timeout`](super::Config::handshake_timeout): 408.
    #[error("upgrade request not complete in time")]
    Timeout,
}

impl HandshakeError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::NotUpgrade | HandshakeError::UnsupportedVersion => 426,
            HandshakeError::BadRequest(_) => 400,
            HandshakeError::Http(s) | HandshakeError::Refused(s) => *s,
            HandshakeError::Timeout => 408,
        }
    }

    /// Appends the error response (which closes the connection) to `out`.
    pub fn write_response(&self, out: &mut Vec<u8>, date: &[u8]) {
        let status = self.status();
        let reason = crate::protocol::http::reason_phrase(status);
        let headers: &[(&str, &[u8])] = match self {
            HandshakeError::NotUpgrade => &[("Upgrade", b"websocket"), ("Connection", b"Upgrade")],
            HandshakeError::UnsupportedVersion => &[("Sec-WebSocket-Version", b"13")],
            _ => &[],
        };
        let body = format!("{self}\n");
        write_response(out, status, reason, headers, body.as_bytes(), date, false);
    }
}

/// Does a comma-separated header value contain `token` (ASCII case-insensitive)?
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Does any header named `name` contain `token`?
fn headers_have_token(req: &Request<'_>, name: &str, token: &str) -> bool {
    req.headers()
        .any(|(n, v)| n.eq_ignore_ascii_case(name) && has_token(v, token))
}

/// The values of every header named `name`, as text (non-UTF-8 ones skipped).
fn header_values<'a>(req: &Request<'a>, name: &str) -> Vec<&'a str> {
    req.headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .collect()
}

/// A request that passed the upgrade checks: what the `101` answer needs.
#[derive(Debug, Clone)]
pub struct UpgradeRequest<'a> {
    /// The request.
    pub request: Request<'a>,
    /// The client's `Sec-WebSocket-Key`.
    pub key: &'a [u8],
    /// The subprotocols the client offered, in its order.
    pub protocols: Vec<&'a str>,
    /// The `Sec-WebSocket-Extensions` values.
    pub extensions: Vec<&'a str>,
}

/// Checks an upgrade request (§4.2.1).
///
/// ```
/// use netloop::protocol::http::{parse_request, Limits, Parsed};
/// use netloop::protocol::websocket::handshake::{check_request, HandshakeError};
/// let src = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
///             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
///             Sec-WebSocket-Protocol: chat, superchat\r\n\r\n";
/// let mut scratch = Vec::new();
/// let Parsed::Complete { request, .. } = parse_request(src, &Limits::default(), &mut scratch).unwrap() else {
///     unreachable!()
/// };
/// let up = check_request(request).unwrap();
/// assert_eq!(up.protocols, ["chat", "superchat"]);
///
/// let src = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
/// let Parsed::Complete { request, .. } = parse_request(src, &Limits::default(), &mut scratch).unwrap() else {
///     unreachable!()
/// };
/// assert_eq!(check_request(request).unwrap_err(), HandshakeError::NotUpgrade);
/// ```
pub fn check_request(request: Request<'_>) -> Result<UpgradeRequest<'_>, HandshakeError> {
    if !headers_have_token(&request, "upgrade", "websocket") {
        return Err(HandshakeError::NotUpgrade);
    }
    if request.method() != "GET" {
        return Err(HandshakeError::BadRequest("the method must be GET"));
    }
    if request.version() != Version::Http11 {
        return Err(HandshakeError::BadRequest("HTTP/1.1 is required"));
    }
    if !headers_have_token(&request, "connection", "upgrade") {
        return Err(HandshakeError::BadRequest("Connection: Upgrade is missing"));
    }
    if request.header("host").is_none() {
        return Err(HandshakeError::BadRequest("Host is missing"));
    }
    if request.content_length().is_some_and(|n| n > 0) || request.is_chunked() {
        return Err(HandshakeError::BadRequest("an upgrade request has no body"));
    }
    let versions = header_values(&request, "sec-websocket-version");
    if versions.len() != 1 || versions[0].trim() != "13" {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let mut keys = request
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"));
    let key = match (keys.next(), keys.next()) {
        (Some((_, k)), None) => k,
        _ => {
            return Err(HandshakeError::BadRequest(
                "exactly one Sec-WebSocket-Key is required",
            ))
        }
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if decoded.map_or(true, |k| k.len() != 16) {
        return Err(HandshakeError::BadRequest(
            "Sec-WebSocket-Key is not 16 bytes in base64",
        ));
    }
    let protocols = header_values(&request, "sec-websocket-protocol")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let extensions = header_values(&request, "sec-websocket-extensions");
    Ok(UpgradeRequest {
        request,
        key,
        protocols,
        extensions,
    })
}

/// Appends the `101 Switching Protocols` answer to `out`.
pub fn write_accept(
    out: &mut Vec<u8>,
    key: &[u8],
    protocol: Option<&str>,
    extensions: Option<&str>,
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key(key).as_bytes());
    if let Some(p) = protocol {
        out.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
        out.extend_from_slice(p.as_bytes());
    }
    if let Some(e) = extensions {
        out.extend_from_slice(b"\r\nSec-WebSocket-Extensions: ");
        out.extend_from_slice(e.as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// What a client asks for in its opening handshake, besides what the
/// endpoint's [`Config`](super::Config) says (subprotocols, compression).
#[derive(Clone, Debug, Default)]
pub struct ClientRequest {
    /// `Host` header value (`host` or `host:port`).
    pub host: String,
    /// Request target, such as `/chat?room=1` (empty: `/`).
    pub path: String,
    /// More header fields (such as `Origin` or `Authorization`).
    pub headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// A request for `path` on `host`.
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> Self {
        ClientRequest {
            host: host.into(),
            path: path.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header field.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Appends the upgrade request with `key` to `out`, offering `protocols`
    /// and, if given, permessage-deflate.
    pub fn write(
        &self,
        key: &str,
        protocols: &[String],
        deflate: Option<&DeflateConfig>,
        out: &mut Vec<u8>,
    ) {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        let clean = |s: &str| s.replace(['\r', '\n'], " ");
        let mut s = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            clean(path).replace(' ', "%20"),
            clean(&self.host)
        );
        if !protocols.is_empty() {
            s.push_str(&format!(
                "Sec-WebSocket-Protocol: {}\r\n",
                clean(&protocols.join(", "))
            ));
        }
        if let Some(d) = deflate {
            s.push_str(&format!(
                "Sec-WebSocket-Extensions: {}\r\n",
                d.client_offer()
            ));
        }
        for (n, v) in &self.headers {
            s.push_str(&format!("{}: {}\r\n", clean(n), clean(v)));
        }
        s.push_str("\r\n");
        out.extend_from_slice(s.as_bytes());
    }
}

/// What the server agreed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAccepted {
    /// Bytes of the answer; WebSocket frames may follow right after.
    pub consumed: usize,
    /// The selected subprotocol: its index in the offered list.
    pub protocol: Option<usize>,
    /// permessage-deflate, if accepted.
    pub deflate: Option<Negotiated>,
}

/// Why a client's handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientHandshakeError {
    /// The answer is not HTTP, or its head is over 16 KiB.
    #[error("malformed handshake response: {0}")]
    Malformed(String),
    /// The server answered with another status than 101.
    #[error("the server answered {0} instead of 101")]
    Status(u16),
    /// The answer breaks the protocol (a wrong accept key, a subprotocol or an
    /// extension that was not offered...).
    #[error("invalid handshake response: {0}")]
    Invalid(&'static str),
    /// No complete answer within
    /// [`Config::handshake_timeout`](super::Config::handshake_timeout).
    #[error("no handshake response in time")]
    Timeout,
}

/// Largest handshake answer head a client buffers.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Checks the server's answer at the start of `src` (§4.1). `Ok(None)`: more
/// bytes are needed.
pub fn check_response(
    src: &[u8],
    key: &str,
    protocols: &[String],
    deflate: Option<&DeflateConfig>,
) -> Result<Option<ClientAccepted>, ClientHandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let consumed = match resp.parse(src) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if src.len() > MAX_RESPONSE_HEAD => {
            return Err(ClientHandshakeError::Malformed("head too large".into()))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ClientHandshakeError::Malformed(e.to_string())),
    };
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(ClientHandshakeError::Status(code));
    }
    let all: &[httparse::Header<'_>] = resp.headers;
    let find = |name: &'static str| {
        all.iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
    };
    if !find("upgrade").any(|h| has_token(h.value, "websocket")) {
        return Err(ClientHandshakeError::Invalid(
            "Upgrade: websocket is missing",
        ));
    }
    if !find("connection").any(|h| has_token(h.value, "upgrade")) {
        return Err(ClientHandshakeError::Invalid(
            "Connection: Upgrade is missing",
        ));
    }
    let expected = accept_key(key.as_bytes());
    let mut accepts = find("sec-websocket-accept");
    match (accepts.next(), accepts.next()) {
        (Some(h), None) if h.value.trim_ascii() == expected.as_bytes() => {}
        _ => return Err(ClientHandshakeError::Invalid("wrong Sec-WebSocket-Accept")),
    }
    let mut selected = find("sec-websocket-protocol");
    let protocol = match (selected.next(), selected.next()) {
        (None, _) => None,
        (Some(h), None) => {
            let p = std::str::from_utf8(h.value).unwrap_or("").trim();
            match protocols.iter().position(|o| o == p) {
                Some(i) => Some(i),
                None => {
                    return Err(ClientHandshakeError::Invalid(
                        "a subprotocol that was not offered",
                    ))
                }
            }
        }
        _ => {
            return Err(ClientHandshakeError::Invalid(
                "several subprotocols selected",
            ))
        }
    };
    let extensions: Vec<&str> = find("sec-websocket-extensions")
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .collect();
    let deflate =
        deflate::check_response(deflate, &extensions).map_err(ClientHandshakeError::Invalid)?;
    Ok(Some(ClientAccepted {
        consumed,
        protocol,
        deflate,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::http::{parse_request, Limits, Parsed};

    fn check(src: &str) -> Result<(), HandshakeError> {
        let mut scratch = Vec::new();
        match parse_request(src.as_bytes(), &Limits::default(), &mut scratch) {
            Ok(Parsed::Complete { request, .. }) => check_request(request).map(|_| ()),
            other => panic!("not a complete request: {other:?}"),
        }
    }

    const GOOD: &str = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: upgrade\r\n\
                        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn request_checks_map_to_statuses() {
        assert_eq!(check(GOOD), Ok(()));
        let status = |s: String| check(&s).unwrap_err().status();
        assert_eq!(status(GOOD.replace("GET", "POST")), 400);
        assert_eq!(status(GOOD.replace("HTTP/1.1", "HTTP/1.0")), 400);
        assert_eq!(
            status(GOOD.replace("Connection: upgrade", "Connection: close")),
            400
        );
        assert_eq!(status(GOOD.replace("Version: 13", "Version: 8")), 426);
        assert_eq!(
            status(GOOD.replace("Upgrade: WebSocket", "Upgrade: h2c")),
            426
        );
        assert_eq!(
            status(GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=")),
            400
        );
        // A request without Host is refused by the HTTP layer itself (RFC 9112
        // §3.2), before the WebSocket checks.
        let mut scratch = Vec::new();
        let no_host = GOOD.replace("Host: x\r\n", "");
        let err = parse_request(no_host.as_bytes(), &Limits::default(), &mut scratch).unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn client_and_server_agree() {
        let req = ClientRequest::new("example", "/x y").header("Origin", "http://example");
        let protocols = vec!["b".to_string(), "a".to_string()];
        let d = DeflateConfig::default();
        let key = new_key();
        let mut wire = Vec::new();
        req.write(&key, &protocols, Some(&d), &mut wire);
        let text = String::from_utf8(wire.clone()).unwrap();
        assert!(text.starts_with("GET /x%20y HTTP/1.1\r\n"));
        let mut scratch = Vec::new();
        let Ok(Parsed::Complete { request, .. }) =
            parse_request(&wire, &Limits::default(), &mut scratch)
        else {
            panic!("unparsable request");
        };
        let up = check_request(request).unwrap();
        assert_eq!(up.protocols, ["b", "a"]);
        let (_, ext) = deflate::accept_offer(&DeflateConfig::default(), &up.extensions).unwrap();
        let mut answer = Vec::new();
        write_accept(&mut answer, up.key, Some("a"), Some(&ext));
        answer.extend_from_slice(b"\x81\x00");
        let check = |src: &[u8], key: &str| check_response(src, key, &protocols, Some(&d));
        let acc = check(&answer, &key).unwrap().unwrap();
        assert_eq!(acc.consumed, answer.len() - 2);
        assert_eq!(acc.protocol, Some(1));
        assert!(acc.deflate.is_some());
        assert_eq!(check(&answer[..20], &key).unwrap(), None);
        assert!(matches!(
            check(&answer, &new_key()),
            Err(ClientHandshakeError::Invalid(_))
        ));
        assert_eq!(
            check(b"HTTP/1.1 403 Forbidden\r\n\r\n", &key),
            Err(ClientHandshakeError::Status(403))
        );
        // A subprotocol or extension that was not offered fails the handshake.
        assert!(check_response(&answer, &key, &[], Some(&d)).is_err());
        assert!(check_response(&answer, &key, &protocols, None).is_err());
    }
}
