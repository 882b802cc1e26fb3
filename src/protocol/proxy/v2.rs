//! The v2 (binary) format: a 16-byte fixed part (signature, version/command,
//! family/transport, length), the address block, then TLVs.

use super::header::{
    Addresses, Command, EncodeError, ProxyHeader, Transport, UnixPath, Version, UNIX_PATH_LEN,
};
use super::tlv::{self, PP2_TYPE_CRC32C};
use super::ProxyError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12-byte signature every v2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Size of the fixed part (signature, version/command, family, length).
pub const V2_FIXED_LEN: usize = 16;

/// The longest v2 header the format can express (16 + a 16-bit length).
pub const V2_MAX_LEN: usize = V2_FIXED_LEN + u16::MAX as usize;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 1;
const AF_INET6: u8 = 2;
const AF_UNIX: u8 = 3;

/// Bytes of the address block for each family.
fn address_len(family: u8) -> usize {
    match family {
        AF_INET => 12,
        AF_INET6 => 36,
        AF_UNIX => 2 * UNIX_PATH_LEN,
        _ => 0,
    }
}

fn family_name(family: u8) -> &'static str {
    match family {
        AF_INET => "AF_INET",
        AF_INET6 => "AF_INET6",
        AF_UNIX => "AF_UNIX",
        _ => "AF_UNSPEC",
    }
}

/// Checks the fixed part (signature already matched) and returns the total
/// header length; fails at once on an unknown version, command, family or
/// transport, or a length above `max`.
pub(super) fn total_len(fixed: &[u8], max: usize) -> Result<usize, ProxyError> {
    let (ver, cmd) = (fixed[12] >> 4, fixed[12] & 0x0f);
    if ver != 2 {
        return Err(ProxyError::V2Version(ver));
    }
    if cmd > 1 {
        return Err(ProxyError::V2Command(cmd));
    }
    let (fam, proto) = (fixed[13] >> 4, fixed[13] & 0x0f);
    if fam > AF_UNIX {
        return Err(ProxyError::V2Family(fam));
    }
    if proto > 2 {
        return Err(ProxyError::V2Transport(proto));
    }
    let len = V2_FIXED_LEN + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > max {
        return Err(ProxyError::V2TooLong { len, max });
    }
    Ok(len)
}

/// Decodes a complete v2 header (`header.len()` is what
/// [`total_len`] returned).
pub(super) fn decode(header: &[u8]) -> Result<ProxyHeader, ProxyError> {
    let command = if header[12] & 0x0f == 0 {
        Command::Local
    } else {
        Command::Proxy
    };
    let (fam, proto) = (header[13] >> 4, header[13] & 0x0f);
    let body = &header[V2_FIXED_LEN..];
    if command == Command::Local {
        // "The receiver must accept this connection as valid and must use the
        // real connection endpoints and discard the protocol block."
        return Ok(ProxyHeader::local());
    }
    let transport = match proto {
        1 => Transport::Stream,
        2 => Transport::Datagram,
        _ => Transport::Unspec,
    };
    if fam == AF_UNSPEC {
        // The length covers address information of an unknown layout: skip it.
        return Ok(ProxyHeader::new(
            Version::V2,
            command,
            transport,
            Addresses::Unspecified,
        ));
    }
    let needed = address_len(fam);
    if body.len() < needed {
        return Err(ProxyError::V2AddressTruncated {
            family: family_name(fam),
            needed,
            len: body.len(),
        });
    }
    let (block, tlvs) = body.split_at(needed);
    let addresses = if transport == Transport::Unspec {
        // "The receiver should ignore address information."
        Addresses::Unspecified
    } else {
        decode_addresses(fam, block)
    };
    let tlv_base = V2_FIXED_LEN + needed;
    if let Some((at, expected)) = tlv::validate(tlvs, tlv_base)? {
        let computed = tlv::crc32c_with_zeroed(header, tlv_base + at);
        if computed != expected {
            return Err(ProxyError::Checksum { expected, computed });
        }
    }
    let mut h = ProxyHeader::new(Version::V2, command, transport, addresses);
    h.tlvs = tlvs.to_vec();
    Ok(h)
}

fn decode_addresses(fam: u8, b: &[u8]) -> Addresses {
    let port = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    match fam {
        AF_INET => {
            let ip = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
            Addresses::Inet {
                source: SocketAddr::new(ip(0).into(), port(8)),
                destination: SocketAddr::new(ip(4).into(), port(10)),
            }
        }
        AF_INET6 => {
            let ip = |i: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[i..i + 16]);
                Ipv6Addr::from(a)
            };
            Addresses::Inet {
                source: SocketAddr::new(ip(0).into(), port(32)),
                destination: SocketAddr::new(ip(16).into(), port(34)),
            }
        }
        _ => {
            let (src, dst) = b.split_at(UNIX_PATH_LEN);
            Addresses::Unix {
                source: UnixPath::from_padded(src),
                destination: UnixPath::from_padded(dst),
            }
        }
    }
}

/// Appends the v2 header for `h`, computing the CRC32C if `h` has that TLV.
pub(super) fn encode(h: &ProxyHeader, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if !h.tlvs.is_empty() && (h.command == Command::Local || h.addresses == Addresses::Unspecified)
    {
        return Err(EncodeError(
            "TLVs follow an address block: LOCAL and unspecified addresses carry none",
        ));
    }
    let start = out.len();
    let proto = match h.transport {
        Transport::Unspec => 0,
        Transport::Stream => 1,
        Transport::Datagram => 2,
    };
    let (ver_cmd, fam) = match (h.command, &h.addresses) {
        (Command::Local, _) => (0x20, 0),
        (Command::Proxy, Addresses::Unspecified) => (0x21, 0),
        (Command::Proxy, Addresses::Inet { source, .. }) if source.is_ipv4() => (0x21, AF_INET),
        (Command::Proxy, Addresses::Inet { .. }) => (0x21, AF_INET6),
        (Command::Proxy, Addresses::Unix { .. }) => (0x21, AF_UNIX),
    };
    let mut block = Vec::with_capacity(address_len(fam) + h.tlvs.len());
    match (&h.addresses, fam) {
        (_, AF_UNSPEC) | (Addresses::Unspecified, _) => {}
        (
            Addresses::Inet {
                source,
                destination,
            },
            _,
        ) => {
            let octets = |ip: IpAddr| match ip {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            if source.is_ipv4() != destination.is_ipv4() {
                return Err(EncodeError("source and destination of different families"));
            }
            block.extend(octets(source.ip()));
            block.extend(octets(destination.ip()));
            block.extend_from_slice(&source.port().to_be_bytes());
            block.extend_from_slice(&destination.port().to_be_bytes());
        }
        (
            Addresses::Unix {
                source,
                destination,
            },
            _,
        ) => {
            for p in [source, destination] {
                let mut padded = [0u8; UNIX_PATH_LEN];
                padded[..p.as_bytes().len()].copy_from_slice(p.as_bytes());
                block.extend_from_slice(&padded);
            }
        }
    }
    block.extend_from_slice(&h.tlvs);
    let len = u16::try_from(block.len())
        .map_err(|_| EncodeError("addresses and TLVs exceed 65,535 bytes"))?;
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(ver_cmd);
    out.push(
        (fam << 4)
            | if h.command == Command::Local {
                0
            } else {
                proto
            },
    );
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&block);
    // Fill in the checksum over the finished header.
    if h.command == Command::Proxy && fam != AF_UNSPEC {
        let tlv_base = start + V2_FIXED_LEN + address_len(fam);
        let crc_at = tlv::raw(&h.tlvs)
            .find(|(k, _, _)| *k == PP2_TYPE_CRC32C)
            .map(|(_, at, _)| at + 3);
        if let Some(at) = crc_at {
            let field = tlv_base - start + at;
            let crc = tlv::crc32c_with_zeroed(&out[start..], field);
            out[start + field..start + field + 4].copy_from_slice(&crc.to_be_bytes());
        }
    }
    Ok(())
}
