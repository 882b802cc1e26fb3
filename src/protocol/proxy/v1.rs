//! The v1 (text) format: `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n` or
//! `PROXY UNKNOWN[ anything]\r\n`, at most 107 bytes.

use super::header::{Addresses, Command, EncodeError, ProxyHeader, Transport, Version};
use super::ProxyError;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `PROXY ` — what every v1 line starts with.
pub const V1_PREFIX: &[u8; 6] = b"PROXY ";

/// The longest v1 line, CRLF included (`PROXY UNKNOWN` with two full IPv6
/// addresses and ports).
pub const V1_MAX_LEN: usize = 107;

fn malformed(reason: String) -> ProxyError {
    ProxyError::V1Malformed(reason)
}

/// Decodes the fields between `PROXY ` and the CRLF (both already checked:
/// the line is printable US-ASCII without CR or LF).
pub(super) fn decode(fields: &[u8]) -> Result<ProxyHeader, ProxyError> {
    // Printable ASCII was checked byte by byte while scanning for the CRLF.
    let text =
        std::str::from_utf8(fields).map_err(|_| malformed("the line is not US-ASCII".into()))?;
    let (proto, rest) = match text.split_once(' ') {
        Some((p, r)) => (p, Some(r)),
        None => (text, None),
    };
    let is_v4 = match proto {
        "TCP4" => true,
        "TCP6" => false,
        // "The receiver must ignore anything presented before the CRLF."
        "UNKNOWN" => {
            return Ok(ProxyHeader::new(
                Version::V1,
                Command::Proxy,
                Transport::Unspec,
                Addresses::Unspecified,
            ))
        }
        p => {
            return Err(malformed(format!(
                "unknown protocol {p:?} (TCP4, TCP6 or UNKNOWN)"
            )))
        }
    };
    let rest = rest.ok_or_else(|| malformed(format!("{proto} without addresses")))?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [src, dst, sport, dport] = parts[..] else {
        return Err(malformed(format!(
            "{proto} needs 4 fields separated by single spaces, found {}",
            parts.len()
        )));
    };
    let ip = |s: &str, what: &str| -> Result<IpAddr, ProxyError> {
        let parsed = if is_v4 {
            s.parse::<Ipv4Addr>().map(IpAddr::V4).ok()
        } else {
            s.parse::<Ipv6Addr>().map(IpAddr::V6).ok()
        };
        parsed.ok_or_else(|| {
            malformed(format!(
                "{what} address {s:?} is not an {} address",
                if is_v4 { "IPv4" } else { "IPv6" }
            ))
        })
    };
    let source = SocketAddr::new(ip(src, "source")?, port(sport, "source")?);
    let destination = SocketAddr::new(ip(dst, "destination")?, port(dport, "destination")?);
    Ok(ProxyHeader::new(
        Version::V1,
        Command::Proxy,
        Transport::Stream,
        Addresses::Inet {
            source,
            destination,
        },
    ))
}

/// A decimal port in `0..=65535` without leading zeros.
fn port(s: &str, what: &str) -> Result<u16, ProxyError> {
    let bad = |why: &str| malformed(format!("{what} port {s:?} {why}"));
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("is not a decimal number"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(bad("has a leading zero"));
    }
    s.parse::<u16>().map_err(|_| bad("is above 65535"))
}

/// Appends the v1 line for `h`.
pub(super) fn encode(h: &ProxyHeader, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if h.command == Command::Local {
        return Err(EncodeError("v1 has no LOCAL command"));
    }
    if !h.tlvs.is_empty() {
        return Err(EncodeError("v1 has no TLVs"));
    }
    match (&h.addresses, h.transport) {
        (_, Transport::Unspec) | (Addresses::Unspecified, _) => {
            out.extend_from_slice(b"PROXY UNKNOWN\r\n");
            Ok(())
        }
        (_, Transport::Datagram) => Err(EncodeError("v1 carries TCP only")),
        (Addresses::Unix { .. }, _) => Err(EncodeError("v1 has no Unix addresses")),
        (
            Addresses::Inet {
                source,
                destination,
            },
            Transport::Stream,
        ) => {
            let proto = match (source, destination) {
                (SocketAddr::V4(_), SocketAddr::V4(_)) => "TCP4",
                (SocketAddr::V6(_), SocketAddr::V6(_)) => "TCP6",
                _ => return Err(EncodeError("source and destination of different families")),
            };
            // Writing into a Vec cannot fail.
            let _ = write!(
                out,
                "PROXY {proto} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            );
            Ok(())
        }
    }
}
