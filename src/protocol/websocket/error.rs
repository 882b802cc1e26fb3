//! Why a WebSocket connection is failed, and the close code each reason maps to.

use super::close::CloseCode;

/// A violation by the peer (or a limit it passed) that fails the connection
/// (RFC 6455 §7.1.7): a close frame with [`WsError::close_code`] is sent, then
/// the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// An opcode reserved for future use (1002).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A reserved header bit set with no extension giving it a meaning (1002).
    #[error("reserved bits {0:#04x} set")]
    ReservedBits(u8),
    /// A control frame without FIN (1002).
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload (1002).
    #[error("control frame payload over 125 bytes")]
    ControlTooLong,
    /// A 64-bit payload length with its most significant bit set (1002).
    #[error("invalid payload length")]
    BadLength,
    /// A client frame without a mask (1002).
    #[error("unmasked frame from a client")]
    UnmaskedFrame,
    /// A server frame with a mask (1002).
    #[error("masked frame from a server")]
    MaskedFrame,
    /// A continuation frame with no message in progress (1002).
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress (1002).
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A close frame with a one-byte payload, or a close code that may not be
    /// sent on the wire (1002).
    #[error("invalid close frame payload")]
    BadClosePayload,
    /// Text (or a close reason) that is not valid UTF-8 (1007).
    #[error("invalid UTF-8 in a text message")]
    InvalidUtf8,
    /// A compressed message that does not inflate (1007: inconsistent data).
    #[error("compressed payload does not inflate")]
    BadCompression,
    /// A frame over [`Config::max_frame_size`](super::Config::max_frame_size)
    /// or a message over [`Config::max_message_size`](super::Config::max_message_size) (1009).
    #[error("message too big")]
    TooBig,
    /// Nothing arrived from the peer within
    /// [`Config::pong_timeout`](super::Config::pong_timeout) of a keep-alive
    /// ping (1011); the connection closes without waiting for a close frame.
    #[error("no answer to a keep-alive ping")]
    PongTimeout,
}

impl WsError {
    /// The close code sent to the peer for this error.
    ///
    /// ```
    /// use netloop::protocol::websocket::{CloseCode, WsError};
    /// assert_eq!(WsError::InvalidUtf8.close_code(), CloseCode::INVALID_DATA);
    /// assert_eq!(WsError::TooBig.close_code(), CloseCode::TOO_BIG);
    /// assert_eq!(WsError::UnmaskedFrame.close_code(), CloseCode::PROTOCOL_ERROR);
    /// ```
    pub fn close_code(&self) -> CloseCode {
        match self {
            WsError::InvalidUtf8 | WsError::BadCompression => CloseCode::INVALID_DATA,
            WsError::TooBig => CloseCode::TOO_BIG,
            WsError::PongTimeout => CloseCode::INTERNAL_ERROR,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}
