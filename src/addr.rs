//! Listening addresses: `tcp://`, `tcp4://`, `tcp6://` and `unix://` URLs, or typed.

use crate::error::Error;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;

/// Where a listener listens or a connection is bound.
///
/// Parse one from a string: `"127.0.0.1:9000"` and `"tcp://127.0.0.1:9000"` are TCP
/// (any family), `"tcp4://localhost:9000"` and `"tcp6://[::1]:9000"` pick a family,
/// `"unix:///tmp/echo.sock"` is a Unix stream socket.
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
}

impl Addr {
    /// The TCP address, if this is one.
    pub fn as_tcp(&self) -> Option<SocketAddr> {
        match self {
            Addr::Tcp(a) => Some(*a),
            Addr::Unix(_) => None,
        }
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
            "tcp" => resolve(s, rest, Family::Any).map(Addr::Tcp),
            "tcp4" => resolve(s, rest, Family::V4).map(Addr::Tcp),
            "tcp6" => resolve(s, rest, Family::V6).map(Addr::Tcp),
            "unix" => {
                if rest.is_empty() {
                    Err(Error::InvalidAddress {
                        addr: s.into(),
                        reason: "empty socket path".into(),
                    })
                } else {
                    Ok(Addr::Unix(PathBuf::from(rest)))
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
}
impl ToAddr for String {
    fn to_addr(&self) -> Result<Addr, Error> {
        self.parse()
    }
}
impl<T: ToAddr + ?Sized> ToAddr for &T {
    fn to_addr(&self) -> Result<Addr, Error> {
        (**self).to_addr()
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
