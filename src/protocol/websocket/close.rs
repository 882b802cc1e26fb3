//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use super::error::WsError;
use super::frame::MAX_CONTROL_PAYLOAD;

/// A close status code (§7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page left).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with the message type (such as invalid UTF-8 text).
    pub const INVALID_DATA: CloseCode = CloseCode(1007);
    /// 1008: a policy violation.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: (client) the server did not negotiate a required extension.
    pub const MISSING_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: (server) an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// May this code appear in a close frame on the wire? 1000–1003, 1007–1014
    /// (the IANA registry's), and 3000–4999 (libraries, applications). 1004–1006
    /// and 1015 are reserved or only reported locally; the rest is unassigned.
    ///
    /// ```
    /// use netloop::protocol::websocket::CloseCode;
    /// assert!(CloseCode(1000).is_sendable() && CloseCode(4999).is_sendable());
    /// assert!(!CloseCode(1005).is_sendable() && !CloseCode(999).is_sendable());
    /// ```
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The longest close reason that fits a control frame next to its code.
pub const MAX_REASON_LEN: usize = MAX_CONTROL_PAYLOAD - 2;

/// A received close frame's payload, checked: `None` for an empty payload
/// (reported as 1005), otherwise the code and the UTF-8 reason.
///
/// ```
/// use netloop::protocol::websocket::{close::parse_close_payload, CloseCode, WsError};
/// assert_eq!(parse_close_payload(b"\x03\xe8bye").unwrap(), Some((CloseCode(1000), "bye")));
/// assert_eq!(parse_close_payload(b"").unwrap(), None);
/// assert_eq!(parse_close_payload(b"\x03").unwrap_err(), WsError::BadClosePayload);
/// assert_eq!(parse_close_payload(b"\x03\xe8\xff").unwrap_err(), WsError::InvalidUtf8);
/// ```
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, WsError> {
    match payload {
        [] => Ok(None),
        [_] => Err(WsError::BadClosePayload),
        [a, b, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*a, *b]));
            if !code.is_sendable() {
                return Err(WsError::BadClosePayload);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
            Ok(Some((code, reason)))
        }
    }
}

/// Builds a close payload: the code, then `reason` cut to at most
/// [`MAX_REASON_LEN`] bytes on a character boundary. A code that may not be
/// sent ([`CloseCode::is_sendable`]) gives an empty payload.
pub fn close_payload(code: CloseCode, reason: &str) -> ([u8; MAX_CONTROL_PAYLOAD], usize) {
    let mut buf = [0u8; MAX_CONTROL_PAYLOAD];
    if !code.is_sendable() {
        return (buf, 0);
    }
    buf[..2].copy_from_slice(&code.0.to_be_bytes());
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    buf[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    (buf, 2 + end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autobahn_close_code_table() {
        // Section 7.7 (valid) and 7.9 (invalid) of the Autobahn testsuite.
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(c).is_sendable(), "{c}");
        }
        for c in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(c).is_sendable(), "{c}");
        }
    }

    #[test]
    fn reason_is_cut_on_a_char_boundary() {
        let reason = "é".repeat(100); // 200 bytes
        let (buf, n) = close_payload(CloseCode::NORMAL, &reason);
        assert!(n <= MAX_CONTROL_PAYLOAD);
        assert!(std::str::from_utf8(&buf[2..n]).is_ok());
        assert_eq!(close_payload(CloseCode::NO_STATUS, "x").1, 0);
    }
}
