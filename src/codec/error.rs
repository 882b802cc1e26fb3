//! The codec error type.

/// Why a frame could not be decoded or encoded, or a codec could not be configured.
///
/// A decode error means the inbound stream is unusable: the engine logs it and closes
/// the connection. An encode error means the payload cannot be framed; nothing was
/// written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A frame (as the codec counts it, see each codec) is longer than the maximum.
    ///
    /// `len` saturates at `u64::MAX` for absurd announced lengths.
    #[error("frame of {len} bytes exceeds the maximum frame length of {max} bytes")]
    FrameTooLong {
        /// The frame length that was announced, found or requested.
        len: u64,
        /// The configured maximum.
        max: usize,
    },

    /// Encoding would have to write a negative length (payload length plus the
    /// prepender's length adjustment is below zero).
    #[error("adjusted length {adjusted} is negative")]
    NegativeAdjustedLength {
        /// The length that would have been written.
        adjusted: i128,
    },

    /// Decoding: after applying the length adjustment, the frame would end before the
    /// end of its own length field (Netty: "Adjusted frame length is less than
    /// lengthFieldEndOffset"). Covers negative adjusted lengths too.
    #[error("adjusted frame length {adjusted} is less than the length field end offset {min}")]
    AdjustedLengthTooShort {
        /// The adjusted frame length (length field value + adjustment + header up to the field end).
        adjusted: i128,
        /// `length_field_offset + length_field_length`.
        min: usize,
    },

    /// A length does not fit in the length field (encode), or a decoded length does
    /// not fit in memory addresses (decode).
    #[error("length {len} does not fit in a {field_len}-byte length field")]
    LengthOverflow {
        /// The length that did not fit.
        len: i128,
        /// The length field size in bytes (`usize` size when decoding).
        field_len: usize,
    },

    /// Decoding: `initial_bytes_to_strip` is larger than the whole frame.
    #[error("cannot strip {strip} bytes from a frame of {frame_len} bytes")]
    StripExceedsFrame {
        /// The configured number of bytes to strip.
        strip: usize,
        /// The frame length.
        frame_len: usize,
    },

    /// A delimiter-based decoder searched `searched` bytes without finding a
    /// delimiter, so any frame here would be longer than `max`.
    #[error("no delimiter found within {searched} bytes (maximum frame length {max})")]
    DelimiterNotFound {
        /// How many bytes were searched.
        searched: usize,
        /// The configured maximum frame length.
        max: usize,
    },

    /// Encoding: the payload contains the delimiter (or, with a `\n` line ending,
    /// ends in `\r`), so the peer would split it differently.
    #[error("payload contains a delimiter at byte {position}")]
    DelimiterInPayload {
        /// Offset of the offending delimiter in the payload.
        position: usize,
    },

    /// Encoding: a fixed-length codec got a payload of another length.
    #[error("payload of {actual} bytes, expected exactly {expected}")]
    LengthMismatch {
        /// The codec's frame length.
        expected: usize,
        /// The payload length.
        actual: usize,
    },

    /// A codec configuration was rejected.
    #[error("invalid codec configuration: {0}")]
    InvalidConfig(String),

    /// A codec specification string (see [`CodecSpec`](super::CodecSpec)) could not be parsed.
    #[error("invalid codec spec: {0}")]
    InvalidSpec(String),
}

impl CodecError {
    /// `Ok` when a frame of `len` bytes is within `max`, else
    /// [`CodecError::FrameTooLong`]: the one length check every codec makes.
    pub(crate) fn check_len(len: u64, max: usize) -> Result<(), CodecError> {
        if len > max as u64 {
            Err(CodecError::FrameTooLong { len, max })
        } else {
            Ok(())
        }
    }
}
