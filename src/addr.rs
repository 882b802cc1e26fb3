//! Addresses: `tcp://`, `tcp4://`, `tcp6://`, `tls://`, `unix://`, `udp://`,
//! `udp4://`, `udp6://` and `unixgram://` URLs, or typed.

use crate::error::Error;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;

/// Where a listener listens or a connection is bound.
///
/// Parse one from a string: `"127.0.0.1:9000"` and `"tcp://127.0.0.1:9000"` are TCP
/// (any family), `"tcp4://localhost:9000"` and `"tcp6://[::1]:9000"` pick a family,
/// `"unix:///tmp/echo.sock"` is a Unix stream socket. `"tls://127.0.0.1:443"` is
/// a TCP address that must be served (or dialed) with TLS: it parses to
/// [`Addr::Tcp`], and a listener given it needs a TLS configuration
/// ([`ListenConfig::tls`](crate::ListenConfig), feature `tls`). Datagram addresses,
/// served by [`UdpEngine`](crate::udp::UdpEngine), are `"udp://127.0.0.1:9000"`
/// (`udp4://`, `udp6://` pick a family) and `"unixgram:///tmp/echo.sock"`.
///
/// ```
/// use netloop::Addr;
/// let a: Addr = "tcp4://localhost:9000".parse().unwrap();
/// assert_eq!(a.to_string(), "tcp://127.0.0.1:9000");
/// assert!("ftp://x".parse::<Addr>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix stream socket path.
    Unix(PathBuf),
    /// A UDP address.
    Udp(SocketAddr),
    /// A Unix datagram socket path.
    Unixgram(PathBuf),
}

impl Addr {
    /// The TCP address, if this is one.
    pub fn as_tcp(&self) -> Option<SocketAddr> {
        match self {
            Addr::Tcp(a) => Some(*a),
            _ => None,
        }
    }

    /// The UDP address, if this is one.
    pub fn as_udp(&self) -> Option<SocketAddr> {
        match self {
            Addr::Udp(a) => Some(*a),
            _ => None,
        }
    }

    /// Is this a datagram address (`udp*://` or `unixgram://`)?
    pub fn is_datagram(&self) -> bool {
        matches!(self, Addr::Udp(_) | Addr::Unixgram(_))
    }
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Addr {
        Addr::Tcp(a)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "tcp://{a}"),
            Addr::Unix(p) => write!(f, "unix://{}", p.display()),
            Addr::Udp(a) => write!(f, "udp://{a}"),
            Addr::Unixgram(p) => write!(f, "unixgram://{}", p.display()),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Family {
    Any,
    V4,
    V6,
}

fn resolve(s: &str, host_port: &str, family: Family) -> Result<SocketAddr, Error> {
    let bad = |reason: String| Error::InvalidAddress {
        addr: s.to_string(),
        reason,
    };
    if host_port.is_empty() {
        return Err(bad("empty address".into()));
    }
    let addrs = host_port
        .to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?;
    addrs
        .filter(|a| match family {
            Family::Any => true,
            Family::V4 => a.is_ipv4(),
            Family::V6 => a.is_ipv6(),
        })
        .min_by_key(|a| a.is_ipv6()) // prefer IPv4 when both resolve, like most clients
        .ok_or_else(|| bad("no address of the requested family".into()))
}

impl FromStr for Addr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Addr, Error> {
        let (scheme, rest) = match s.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("tcp".to_string(), s),
        };
        match scheme.as_str() {
            "tcp" | "tls" => resolve(s, rest, Family::Any).map(Addr::Tcp),
            "tcp4" => resolve(s, rest, Family::V4).map(Addr::Tcp),
            "tcp6" => resolve(s, rest, Family::V6).map(Addr::Tcp),
            "udp" => resolve(s, rest, Family::Any).map(Addr::Udp),
            "udp4" => resolve(s, rest, Family::V4).map(Addr::Udp),
            "udp6" => resolve(s, rest, Family::V6).map(Addr::Udp),
            "unix" | "unixgram" => {
                if rest.is_empty() {
                    Err(Error::InvalidAddress {
                        addr: s.into(),
                        reason: "empty socket path".into(),
                    })
                } else if scheme == "unix" {
                    Ok(Addr::Unix(PathBuf::from(rest)))
                } else {
                    Ok(Addr::Unixgram(PathBuf::from(rest)))
                }
            }
            _ => Err(Error::UnsupportedScheme {
                scheme,
                addr: s.into(),
            }),
        }
    }
}

/// Anything that names one listening address: a string, a `SocketAddr` or an [`Addr`].
pub trait ToAddr {
    /// Converts to an [`Addr`], parsing and resolving as needed.
    fn to_addr(&self) -> Result<Addr, Error>;

    /// Converts to a datagram [`Addr`]: an address without a scheme (a bare
    /// `HOST:PORT`, a `SocketAddr`) is taken as UDP; one that names a stream
    /// scheme (`tcp://`, `unix://`) is refused with [`Error::WrongAddressKind`].
    fn to_datagram_addr(&self) -> Result<Addr, Error> {
        match self.to_addr()? {
            Addr::Tcp(sa) => Ok(Addr::Udp(sa)),
            Addr::Unix(p) => Err(stream_for_datagrams(&Addr::Unix(p))),
            other => Ok(other),
        }
    }

    /// Whether the address names the `tls://` scheme (so the connection must
    /// speak TLS; only a string can say so).
    fn names_tls(&self) -> bool {
        false
    }
}

/// Does the string name the `tls://` scheme?
fn str_names_tls(s: &str) -> bool {
    s.split_once("://")
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("tls"))
}

fn stream_for_datagrams(a: &Addr) -> Error {
    Error::WrongAddressKind {
        addr: a.to_string(),
        kind: "stream",
        hint: "serve it with netloop::Engine (datagram schemes are udp://, udp4://, udp6:// and unixgram://)",
    }
}

/// A string's datagram address: its explicit scheme decides.
fn str_datagram_addr(s: &str) -> Result<Addr, Error> {
    let a: Addr = s.parse()?;
    let explicit_stream = s.split_once("://").is_some_and(|(scheme, _)| {
        let scheme = scheme.to_ascii_lowercase();
        scheme.starts_with("tcp") || scheme == "tls"
    });
    match a {
        Addr::Tcp(_) if explicit_stream => Err(stream_for_datagrams(&a)),
        Addr::Tcp(sa) => Ok(Addr::Udp(sa)),
        Addr::Unix(_) => Err(stream_for_datagrams(&a)),
        other => Ok(other),
    }
}

impl ToAddr for Addr {
    fn to_addr(&self) -> Result<Addr, Error> {
        Ok(self.clone())
    }
}
impl ToAddr for SocketAddr {
    fn to_addr(&self) -> Result<Addr, Error> {
        Ok(Addr::Tcp(*self))
    }
}
impl ToAddr for str {
    fn to_addr(&self) -> Result<Addr, Error> {
        self.parse()
    }
    fn to_datagram_addr(&self) -> Result<Addr, Error> {
        str_datagram_addr(self)
    }
    fn names_tls(&self) -> bool {
        str_names_tls(self)
    }
}
impl ToAddr for String {
    fn to_addr(&self) -> Result<Addr, Error> {
        self.parse()
    }
    fn to_datagram_addr(&self) -> Result<Addr, Error> {
        str_datagram_addr(self)
    }
    fn names_tls(&self) -> bool {
        str_names_tls(self)
    }
}
impl<T: ToAddr + ?Sized> ToAddr for &T {
    fn to_addr(&self) -> Result<Addr, Error> {
        (**self).to_addr()
    }
    fn to_datagram_addr(&self) -> Result<Addr, Error> {
        (**self).to_datagram_addr()
    }
    fn names_tls(&self) -> bool {
        (**self).names_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemes() {
        assert_eq!(
            "127.0.0.1:80".parse::<Addr>().unwrap(),
            Addr::Tcp("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            "tcp://127.0.0.1:80".parse::<Addr>().unwrap().to_string(),
            "tcp://127.0.0.1:80"
        );
        assert!("tcp6://[::1]:80"
            .parse::<Addr>()
            .unwrap()
            .as_tcp()
            .unwrap()
            .is_ipv6());
        assert!("tcp4://[::1]:80".parse::<Addr>().is_err());
        assert_eq!(
            "unix:///tmp/x.sock".parse::<Addr>().unwrap(),
            Addr::Unix("/tmp/x.sock".into())
        );
        // tls:// is TCP that must speak TLS.
        assert_eq!(
            "tls://127.0.0.1:443".parse::<Addr>().unwrap(),
            Addr::Tcp("127.0.0.1:443".parse().unwrap())
        );
        assert!("TLS://127.0.0.1:443".names_tls());
        assert!(!"tcp://127.0.0.1:443".names_tls() && !"127.0.0.1:443".names_tls());
        assert!("tls://127.0.0.1:443".to_datagram_addr().is_err());
    }

    #[test]
    fn parses_datagram_schemes() {
        let a: Addr = "udp://127.0.0.1:53".parse().unwrap();
        assert_eq!(a, Addr::Udp("127.0.0.1:53".parse().unwrap()));
        assert_eq!(a.to_string(), "udp://127.0.0.1:53");
        assert!(a.is_datagram() && a.as_tcp().is_none());
        assert!("udp4://localhost:53"
            .parse::<Addr>()
            .unwrap()
            .as_udp()
            .unwrap()
            .is_ipv4());
        assert!("udp6://[::1]:53"
            .parse::<Addr>()
            .unwrap()
            .as_udp()
            .unwrap()
            .is_ipv6());
        assert!("udp4://[::1]:53".parse::<Addr>().is_err());
        let g: Addr = "unixgram:///tmp/x.sock".parse().unwrap();
        assert_eq!(g, Addr::Unixgram("/tmp/x.sock".into()));
        assert_eq!(g.to_string(), "unixgram:///tmp/x.sock");
        assert!("unixgram://".parse::<Addr>().is_err());
    }

    #[test]
    fn rejects_bad_input_with_typed_errors() {
        assert!(matches!(
            "sctp://1.2.3.4:5".parse::<Addr>(),
            Err(Error::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            "tcp://".parse::<Addr>(),
            Err(Error::InvalidAddress { .. })
        ));
        assert!(matches!(
            "tcp://127.0.0.1".parse::<Addr>(),
            Err(Error::InvalidAddress { .. })
        ));
        assert!(matches!(
            "tcp://127.0.0.1:99999".parse::<Addr>(),
            Err(Error::InvalidAddress { .. })
        ));
        assert!(matches!(
            "unix://".parse::<Addr>(),
            Err(Error::InvalidAddress { .. })
        ));
    }
}
