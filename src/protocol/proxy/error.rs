//! Why a PROXY protocol header was refused.

use super::header::Version;

/// A PROXY protocol header that cannot be accepted: the connection must be
/// closed, and the message says why (it is meant for the log).
///
/// The spec leaves no room for guessing: "any sequence which does not exactly
/// match the protocol must be discarded and cause the receiver to abort the
/// connection", as early as possible. Every variant is therefore final for its
/// connection; none of them means "wait for more bytes".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The first bytes are neither `PROXY ` (v1) nor the v2 signature: the peer
    /// did not send a PROXY protocol header at all.
    #[error("no PROXY protocol header: byte {byte:#04x} at offset {offset} starts neither \"PROXY \" nor the v2 signature")]
    Missing {
        /// Offset of the first byte that rules both versions out.
        offset: usize,
        /// That byte.
        byte: u8,
    },
    /// A header of a version this receiver is configured not to accept.
    #[error("PROXY protocol {0} header, but this listener does not accept {0}")]
    VersionNotAccepted(Version),
    /// A v1 line without its CRLF within the 107 bytes the spec allows.
    #[error("PROXY v1 line has no CRLF within {max} bytes")]
    V1TooLong {
        /// The longest v1 line, CRLF included (107).
        max: usize,
    },
    /// A v1 line with a CR not followed by LF, or an LF not preceded by CR.
    #[error("PROXY v1 line has a lone {what} at offset {offset} (only CRLF ends the line)")]
    V1BareLineEnd {
        /// `"CR"` or `"LF"`.
        what: &'static str,
        /// Offset of that byte.
        offset: usize,
    },
    /// A v1 line that does not match the grammar.
    #[error("malformed PROXY v1 line: {0}")]
    V1Malformed(String),
    /// The v2 version nibble is not 2.
    #[error("PROXY v2 header with version nibble {0:#x} (only 0x2 is defined)")]
    V2Version(u8),
    /// The v2 command nibble is neither LOCAL (0) nor PROXY (1).
    #[error("PROXY v2 header with unknown command {0:#x}")]
    V2Command(u8),
    /// The v2 address family nibble is not UNSPEC, INET, INET6 or UNIX.
    #[error("PROXY v2 header with unknown address family {0:#x}")]
    V2Family(u8),
    /// The v2 transport nibble is not UNSPEC, STREAM or DGRAM.
    #[error("PROXY v2 header with unknown transport protocol {0:#x}")]
    V2Transport(u8),
    /// The v2 header announces more bytes than this receiver accepts.
    #[error("PROXY v2 header of {len} bytes exceeds the limit of {max}")]
    V2TooLong {
        /// Announced total length (16 + the length field).
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The v2 length field is shorter than the address block of its family.
    #[error("PROXY v2 {family} address block needs {needed} bytes but the header holds {len}")]
    V2AddressTruncated {
        /// The family's name.
        family: &'static str,
        /// Bytes the address block needs.
        needed: usize,
        /// Bytes the length field announces.
        len: usize,
    },
    /// A malformed TLV (type-length-value) after the v2 addresses.
    #[error("PROXY v2 TLV {kind:#04x} at offset {offset}: {reason}")]
    Tlv {
        /// The TLV's type byte.
        kind: u8,
        /// Offset of the TLV in the header.
        offset: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The header carries a CRC32C TLV that does not match its bytes.
    #[error("PROXY v2 header checksum mismatch: header says {expected:#010x}, bytes give {computed:#010x}")]
    Checksum {
        /// The value in the CRC32C TLV.
        expected: u32,
        /// The CRC32C of the header with that field zeroed.
        computed: u32,
    },
    /// No complete header arrived before the header timeout.
    #[error("no complete PROXY protocol header within {0:?}")]
    Timeout(std::time::Duration),
    /// The peer closed (or the input ended) in the middle of the header.
    #[error("connection ended after {0} bytes of an incomplete PROXY protocol header")]
    Truncated(usize),
    /// The source address is not in a trusted network and the policy refuses
    /// such connections.
    #[error("connection from {0}, which is not a trusted proxy")]
    Untrusted(String),
}
