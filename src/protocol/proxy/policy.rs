//! Who must send a PROXY header, what happens to everyone else, and the
//! per-connection handshake (parser + deadline) a listener runs.

use super::parser::{HeaderParser, Parsed, ParserConfig};
use super::ProxyError;
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Default time a trusted peer has to deliver its whole header.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(3);

/// What to do with a connection from a source outside the trusted networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Untrusted {
    /// Close it at once (the default): only the proxies may connect.
    #[default]
    Reject,
    /// Serve it as a direct client: no header is expected, and bytes that
    /// look like one are the application's data (never parsed as a header,
    /// so an untrusted client cannot forge its address).
    Direct,
}

/// The decision for one new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A trusted proxy: a header is required before any application data.
    ExpectHeader,
    /// An untrusted source served directly ([`Untrusted::Direct`]).
    Direct,
    /// An untrusted source to close ([`Untrusted::Reject`]).
    Reject,
}

/// A network given to [`ProxyPolicy::trust`] that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid trusted network {0:?} (expected an address or CIDR such as 10.0.0.0/8 or ::1)")]
pub struct InvalidNetwork(pub String);

/// A listener's PROXY protocol policy.
///
/// The spec forbids guessing whether a header is present, so a connection from
/// a trusted network *must* start with a header (or it is closed), and one from
/// anywhere else is never parsed for one: it is refused or served as is.
///
/// ```
/// use netloop::protocol::proxy::{Admission, ProxyPolicy, Untrusted};
///
/// let policy = ProxyPolicy::new()
///     .trust("10.0.0.0/8").unwrap()
///     .trust("::1").unwrap()
///     .untrusted(Untrusted::Reject);
/// assert_eq!(policy.admission(Some("10.1.2.3".parse().unwrap())), Admission::ExpectHeader);
/// assert_eq!(policy.admission(Some("::ffff:10.9.9.9".parse().unwrap())), Admission::ExpectHeader);
/// assert_eq!(policy.admission(Some("192.0.2.1".parse().unwrap())), Admission::Reject);
/// ```
#[derive(Debug, Clone)]
pub struct ProxyPolicy {
    /// `None`: every source is trusted.
    trusted: Option<Vec<IpNet>>,
    trust_unix: bool,
    untrusted: Untrusted,
    header_timeout: Duration,
    parser: ParserConfig,
}

impl Default for ProxyPolicy {
    fn default() -> Self {
        ProxyPolicy::new()
    }
}

impl ProxyPolicy {
    /// A header is required from every source (until [`trust`](Self::trust)
    /// narrows the trusted networks), v1 and v2 accepted, 3 s to send it.
    pub fn new() -> ProxyPolicy {
        ProxyPolicy {
            trusted: None,
            trust_unix: true,
            untrusted: Untrusted::Reject,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            parser: ParserConfig::default(),
        }
    }

    /// Adds a trusted network (`10.0.0.0/8`, `fd00::/8`) or address
    /// (`127.0.0.1`). The first call replaces "every source is trusted".
    pub fn trust(mut self, network: &str) -> Result<ProxyPolicy, InvalidNetwork> {
        let net = network
            .parse::<IpNet>()
            .or_else(|_| network.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| InvalidNetwork(network.to_string()))?;
        self.trusted.get_or_insert_with(Vec::new).push(net.trunc());
        Ok(self)
    }

    /// Whether peers on Unix-socket listeners (which have no IP address) are
    /// trusted (default: yes — the file's permissions decide who connects).
    pub fn trust_unix(mut self, on: bool) -> ProxyPolicy {
        self.trust_unix = on;
        self
    }

    /// What to do with connections from untrusted sources.
    pub fn untrusted(mut self, action: Untrusted) -> ProxyPolicy {
        self.untrusted = action;
        self
    }

    /// How long a trusted peer may take to deliver its whole header.
    pub fn header_timeout(mut self, timeout: Duration) -> ProxyPolicy {
        self.header_timeout = timeout;
        self
    }

    /// Versions accepted and the v2 length limit.
    pub fn parser(mut self, config: ParserConfig) -> ProxyPolicy {
        self.parser = config;
        self
    }

    /// The header timeout.
    pub fn timeout(&self) -> Duration {
        self.header_timeout
    }

    /// The parser configuration.
    pub fn parser_config(&self) -> &ParserConfig {
        &self.parser
    }

    /// Whether `ip` is in a trusted network (IPv4-mapped IPv6 addresses, as a
    /// dual-stack socket reports IPv4 peers, are matched as IPv4).
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match &self.trusted {
            None => true,
            Some(nets) => nets.iter().any(|n| n.contains(&ip)),
        }
    }

    /// The decision for a new connection whose peer is `peer` (`None` for a
    /// Unix-socket peer).
    pub fn admission(&self, peer: Option<IpAddr>) -> Admission {
        let trusted = match peer {
            Some(ip) => self.is_trusted(ip),
            None => self.trust_unix,
        };
        match (trusted, self.untrusted) {
            (true, _) => Admission::ExpectHeader,
            (false, Untrusted::Direct) => Admission::Direct,
            (false, Untrusted::Reject) => Admission::Reject,
        }
    }

    /// Starts the handshake of a trusted connection accepted at `now`.
    pub fn handshake(&self, now: Instant) -> Handshake {
        Handshake {
            parser: HeaderParser::new(self.parser),
            deadline: now + self.header_timeout,
            timeout: self.header_timeout,
        }
    }
}

/// One trusted connection waiting for its header: the parser and its deadline.
///
/// The transport that owns the connection feeds it the inbound bytes on each
/// read, arms a timer for [`deadline`](Handshake::deadline), and closes the
/// connection with the returned error's message on a failure, on
/// [`expired`](Handshake::expired), or on EOF ([`truncated`](Handshake::truncated)).
#[derive(Debug, Clone)]
pub struct Handshake {
    parser: HeaderParser,
    deadline: Instant,
    timeout: Duration,
}

impl Handshake {
    /// When the header must be complete.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Parses the connection's inbound bytes (all of them so far).
    pub fn on_bytes(&mut self, buf: &[u8]) -> Result<Parsed, ProxyError> {
        self.parser.parse(buf)
    }

    /// The error to close with if `now` is past the deadline.
    pub fn expired(&self, now: Instant) -> Option<ProxyError> {
        (now >= self.deadline).then_some(ProxyError::Timeout(self.timeout))
    }

    /// The error to close with when the peer ends the connection before the
    /// header is complete (`buffered` bytes received).
    pub fn truncated(&self, buffered: usize) -> ProxyError {
        ProxyError::Truncated(buffered)
    }
}
