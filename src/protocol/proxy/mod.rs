//! The PROXY protocol (v1 and v2): the client's address from a load balancer.
//!
//! # What and why
//!
//! Behind an L4 balancer (HAProxy `mode tcp`, IPVS, cloud balancers) a server
//! sees the balancer as its peer. The PROXY protocol has the balancer prepend
//! one header to each connection saying who the client was: a text line (v1,
//! `PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n`) or a binary block (v2, with
//! optional TLVs: the negotiated ALPN, the TLS SNI, client-certificate details,
//! a unique connection id, a CRC32C of the header). Specification:
//! `proxy-protocol.txt` in HAProxy's documentation.
//!
//! Three rules shape this module:
//! * **Never guess.** A receiver configured for the protocol must get a header
//!   from the proxy and must not sniff whether one is there; so the decision is
//!   made per source address by a [`ProxyPolicy`]: trusted networks *must*
//!   send a header, everyone else is refused or served without one (their
//!   bytes never parsed as a header, so nobody outside can forge an address).
//! * **Strict and early.** Anything not exactly matching the grammar is an
//!   error naming what is wrong ([`ProxyError`]), reported at the first byte
//!   that rules the header out — plain HTTP fails on its first byte, a v2
//!   length over the limit fails before the body is buffered.
//! * **Incremental and linear.** [`HeaderParser`] takes everything buffered
//!   so far and resumes where it stopped, so a header arriving one byte at a
//!   time costs the same as one arriving whole; memory is bounded by 107 bytes
//!   (v1) or [`ParserConfig::max_header_len`] (v2).
//!
//! The module is sans-I/O: no sockets, no timers. To serve the protocol on a
//! listener, give it a policy with
//! [`ListenConfig::proxy_protocol`](crate::ListenConfig::proxy_protocol): its
//! transport layer runs a [`HeaderParser`] per trusted connection under the
//! policy's header timeout, strips the header, and the handler finds the
//! client as [`Conn::peer_addr`](crate::Conn::peer_addr) and the whole header
//! as [`Conn::proxy_header`](crate::Conn::proxy_header), while
//! [`Conn::socket_peer_addr`](crate::Conn::socket_peer_addr) stays the proxy's.
//! Other transports can drive a [`Handshake`] (parser + deadline) themselves.
//!
//! # Example
//!
//! ```
//! use netloop::protocol::proxy::{Admission, ProxyHeader, ProxyPolicy, Parsed, Version};
//! use std::time::Instant;
//!
//! // What a balancer sends: a v2 header with an ALPN TLV, then the request.
//! let client = "198.51.100.20:40000".parse().unwrap();
//! let frontend = "192.0.2.1:443".parse().unwrap();
//! let mut wire = Vec::new();
//! ProxyHeader::tcp(Version::V2, client, frontend)
//!     .with_tlv(netloop::protocol::proxy::PP2_TYPE_ALPN, b"h2").unwrap()
//!     .encode(&mut wire).unwrap();
//! wire.extend_from_slice(b"hello");
//!
//! // The receiving side: trusted balancer, header required.
//! let policy = ProxyPolicy::new().trust("127.0.0.0/8").unwrap();
//! assert_eq!(policy.admission(Some([127, 0, 0, 1].into())), Admission::ExpectHeader);
//! let mut hs = policy.handshake(Instant::now());
//! let (header, consumed) = match hs.on_bytes(&wire).unwrap() {
//!     Parsed::Complete { header, consumed } => (header, consumed),
//!     Parsed::Incomplete => unreachable!("the whole header is there"),
//! };
//! assert_eq!(header.source(), Some(client));
//! assert_eq!(header.alpn(), Some(&b"h2"[..]));
//! assert_eq!(&wire[consumed..], b"hello");
//! ```

mod error;
mod header;
mod parser;
mod policy;
mod tlv;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

pub use error::ProxyError;
pub use header::{
    Addresses, Command, EncodeError, ProxyHeader, Transport, UnixPath, Version, UNIX_PATH_LEN,
};
pub use parser::{HeaderParser, Parsed, ParserConfig, DEFAULT_MAX_HEADER_LEN};
pub use policy::{
    Admission, Handshake, InvalidNetwork, ProxyPolicy, Untrusted, DEFAULT_HEADER_TIMEOUT,
};
pub use tlv::{
    Ssl, Tlv, TlvIter, MAX_UNIQUE_ID_LEN, PP2_CLIENT_CERT_CONN, PP2_CLIENT_CERT_SESS,
    PP2_CLIENT_SSL, PP2_SUBTYPE_SSL_CIPHER, PP2_SUBTYPE_SSL_CN, PP2_SUBTYPE_SSL_KEY_ALG,
    PP2_SUBTYPE_SSL_SIG_ALG, PP2_SUBTYPE_SSL_VERSION, PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY,
    PP2_TYPE_CRC32C, PP2_TYPE_NETNS, PP2_TYPE_NOOP, PP2_TYPE_SSL, PP2_TYPE_UNIQUE_ID,
};
pub use v1::{V1_MAX_LEN, V1_PREFIX};
pub use v2::{V2_FIXED_LEN, V2_MAX_LEN, V2_SIGNATURE};
