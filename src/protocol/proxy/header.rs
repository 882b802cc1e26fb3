//! What a PROXY protocol header says: version, command, transport, the original
//! endpoints and (v2) the TLVs.

use super::tlv::{self, Ssl, Tlv, TlvIter};
use std::fmt;
use std::net::SocketAddr;

/// The protocol version a header was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The human-readable line (`PROXY TCP4 ...\r\n`).
    V1,
    /// The binary format (12-byte signature, addresses, TLVs).
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// Whether the connection is relayed for a client or is the proxy's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// The proxy opened the connection itself (a health check): the real
    /// connection endpoints apply, the header carries no client. v2 only.
    Local,
    /// The connection is relayed on behalf of a client whose endpoints the
    /// header gives (or, with [`Addresses::Unspecified`], could not give).
    Proxy,
}

/// The client's transport protocol (v2's low nibble of byte 14; v1 is always
/// [`Transport::Stream`] for `TCP4`/`TCP6` and [`Transport::Unspec`] for `UNKNOWN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unknown or unsupported: the addresses, if any, are to be ignored.
    Unspec,
    /// `SOCK_STREAM` (TCP, Unix stream).
    Stream,
    /// `SOCK_DGRAM` (UDP, Unix datagram).
    Datagram,
}

/// A Unix socket address from a v2 header: the path bytes with the trailing
/// NUL padding removed. An abstract address keeps its leading NUL.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UnixPath(Box<[u8]>);

/// Size of a Unix address in a v2 header (`sun_path`).
pub const UNIX_PATH_LEN: usize = 108;

impl UnixPath {
    /// A path of at most [`UNIX_PATH_LEN`] bytes; `None` if longer. Trailing NUL
    /// bytes are dropped, as the header's padding would drop them.
    pub fn new(bytes: &[u8]) -> Option<UnixPath> {
        (bytes.len() <= UNIX_PATH_LEN).then(|| UnixPath::from_padded(bytes))
    }
    /// The path in a NUL-padded field.
    pub(super) fn from_padded(bytes: &[u8]) -> UnixPath {
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        UnixPath(bytes[..end].into())
    }
    /// The address bytes (no padding).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Whether this is a Linux abstract-namespace address (leading NUL).
    pub fn is_abstract(&self) -> bool {
        self.0.first() == Some(&0)
    }
}

impl fmt::Debug for UnixPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_first() {
            Some((0, name)) => write!(f, "@{}", String::from_utf8_lossy(name)),
            _ => write!(f, "{}", String::from_utf8_lossy(&self.0)),
        }
    }
}

/// The original connection's endpoints, as the proxy saw them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addresses {
    /// None given (v1 `UNKNOWN`, v2 `AF_UNSPEC` or an unspecified transport,
    /// or a LOCAL command): use the real connection's endpoints.
    Unspecified,
    /// TCP or UDP over IPv4 or IPv6; both of the same family.
    Inet {
        /// The client.
        source: SocketAddr,
        /// The address the client connected to (the proxy's frontend).
        destination: SocketAddr,
    },
    /// Unix sockets (v2 `AF_UNIX`).
    Unix {
        /// The client's socket address.
        source: UnixPath,
        /// The socket the client connected to.
        destination: UnixPath,
    },
}

/// A parsed (or to-be-sent) PROXY protocol header.
///
/// Parsed headers are complete and valid: every TLV is well formed, a CRC32C
/// TLV (if any) matched. Build one to send with [`ProxyHeader::tcp`],
/// [`ProxyHeader::local`] or [`ProxyHeader::new`], then
/// [`encode`](ProxyHeader::encode) it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyHeader {
    pub(super) version: Version,
    pub(super) command: Command,
    pub(super) transport: Transport,
    pub(super) addresses: Addresses,
    /// The v2 TLV area, already validated.
    pub(super) tlvs: Vec<u8>,
}

impl ProxyHeader {
    /// A header with the given parts and no TLVs.
    pub fn new(
        version: Version,
        command: Command,
        transport: Transport,
        addresses: Addresses,
    ) -> ProxyHeader {
        ProxyHeader {
            version,
            command,
            transport,
            addresses,
            tlvs: Vec::new(),
        }
    }

    /// A PROXY command for a TCP connection from `source` to `destination`.
    pub fn tcp(version: Version, source: SocketAddr, destination: SocketAddr) -> ProxyHeader {
        ProxyHeader::new(
            version,
            Command::Proxy,
            Transport::Stream,
            Addresses::Inet {
                source,
                destination,
            },
        )
    }

    /// A v2 LOCAL command (the proxy's own connection, e.g. a health check).
    pub fn local() -> ProxyHeader {
        ProxyHeader::new(
            Version::V2,
            Command::Local,
            Transport::Unspec,
            Addresses::Unspecified,
        )
    }

    /// Adds a TLV (v2 only). The value is checked as a parsed one would be
    /// (length, UTF-8/ASCII where the spec says so, SSL sub-TLVs).
    pub fn with_tlv(mut self, kind: u8, value: &[u8]) -> Result<ProxyHeader, super::ProxyError> {
        tlv::check(kind, value, 0)?;
        let len = u16::try_from(value.len()).map_err(|_| super::ProxyError::Tlv {
            kind,
            offset: 0,
            reason: format!("{} bytes do not fit a 16-bit length", value.len()),
        })?;
        self.tlvs.push(kind);
        self.tlvs.extend_from_slice(&len.to_be_bytes());
        self.tlvs.extend_from_slice(value);
        Ok(self)
    }

    /// The version the header was parsed from (or will be encoded in).
    pub fn version(&self) -> Version {
        self.version
    }
    /// LOCAL or PROXY.
    pub fn command(&self) -> Command {
        self.command
    }
    /// The client's transport protocol.
    pub fn transport(&self) -> Transport {
        self.transport
    }
    /// The original endpoints.
    pub fn addresses(&self) -> &Addresses {
        &self.addresses
    }

    /// The client's address: `Some` for a PROXY command with IP addresses,
    /// `None` when the real connection's peer applies (LOCAL, unspecified, Unix).
    pub fn source(&self) -> Option<SocketAddr> {
        match (self.command, &self.addresses) {
            (Command::Proxy, Addresses::Inet { source, .. }) => Some(*source),
            _ => None,
        }
    }

    /// The address the client connected to, under the same conditions as
    /// [`source`](ProxyHeader::source).
    pub fn destination(&self) -> Option<SocketAddr> {
        match (self.command, &self.addresses) {
            (Command::Proxy, Addresses::Inet { destination, .. }) => Some(*destination),
            _ => None,
        }
    }

    /// Every TLV in header order (v2; empty for v1).
    pub fn tlvs(&self) -> TlvIter<'_> {
        TlvIter::new(&self.tlvs)
    }

    /// The raw value of the first TLV of type `kind`.
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        tlv::raw(&self.tlvs)
            .find(|(k, _, _)| *k == kind)
            .map(|(_, _, v)| v)
    }

    /// `PP2_TYPE_ALPN`: the application protocol the client negotiated.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.tlvs().find_map(|t| match t {
            Tlv::Alpn(v) => Some(v),
            _ => None,
        })
    }
    /// `PP2_TYPE_AUTHORITY`: the host name the client asked for (TLS SNI).
    pub fn authority(&self) -> Option<&str> {
        self.tlvs().find_map(|t| match t {
            Tlv::Authority(v) => Some(v),
            _ => None,
        })
    }
    /// `PP2_TYPE_UNIQUE_ID`: the proxy's identifier for this connection.
    pub fn unique_id(&self) -> Option<&[u8]> {
        self.tlvs().find_map(|t| match t {
            Tlv::UniqueId(v) => Some(v),
            _ => None,
        })
    }
    /// `PP2_TYPE_SSL`: what the proxy knows of the client's TLS session.
    pub fn ssl(&self) -> Option<Ssl<'_>> {
        self.tlvs().find_map(|t| match t {
            Tlv::Ssl(v) => Some(v),
            _ => None,
        })
    }
    /// `PP2_TYPE_NETNS`: the network namespace the proxy accepted in.
    pub fn netns(&self) -> Option<&str> {
        self.tlvs().find_map(|t| match t {
            Tlv::NetNs(v) => Some(v),
            _ => None,
        })
    }
    /// `PP2_TYPE_CRC32C`: the checksum the header carried (already verified).
    pub fn crc32c(&self) -> Option<u32> {
        self.tlvs().find_map(|t| match t {
            Tlv::Crc32c(v) => Some(v),
            _ => None,
        })
    }

    /// Appends the header's wire form to `out`: a v1 line or a v2 block, per
    /// [`version`](ProxyHeader::version). A v2 header with a CRC32C TLV gets
    /// its checksum computed. Fails (appending nothing) for what the version
    /// cannot express: v1 has no LOCAL, Unix, datagram or TLVs; IP addresses of
    /// two families; a v2 header over 65,535 bytes of addresses and TLVs.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self.version {
            Version::V1 => super::v1::encode(self, out),
            Version::V2 => super::v2::encode(self, out),
        }
    }
}

/// A header that its version cannot express (see [`ProxyHeader::encode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode PROXY header: {0}")]
pub struct EncodeError(pub &'static str);
