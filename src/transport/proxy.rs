//! The PROXY protocol as a transport layer: a listener behind a load balancer
//! learns each client's address from the header the balancer sends first.
//!
//! [`ListenConfig::proxy_protocol`] gives a listener this layer. For every
//! connection it accepts, the [`ProxyPolicy`] decides by the socket's peer:
//!
//! * a **trusted** proxy must send a header: until it is complete the handler
//!   hears nothing (the layer is in its preamble), it must be complete within
//!   the policy's header timeout, and a missing, malformed or over-long header
//!   closes the connection with [`CloseReason::Protocol`] naming what was wrong
//!   (logged at `info`). Bytes after the header, in the same read or later, are
//!   the client's: they reach `on_traffic` untouched. The parser resumes where it
//!   stopped, so a header split over many reads costs what a whole one does, and
//!   a header that arrives whole (the usual case) is parsed in place without
//!   being copied;
//! * an **untrusted** source is refused before the handler hears of it
//!   ([`Untrusted::Reject`](crate::protocol::proxy::Untrusted::Reject), the
//!   default), or served as a direct client whose bytes are never parsed as a
//!   header ([`Untrusted::Direct`](crate::protocol::proxy::Untrusted::Direct)).
//!
//! Once the header is in, the layer retires (bytes no longer pass through it)
//! and keeps the header: [`Conn::peer_addr`](crate::Conn::peer_addr) is the
//! client's address from it, [`Conn::proxy_header`](crate::Conn::proxy_header)
//! gives its destination and TLVs, and
//! [`Conn::socket_peer_addr`](crate::Conn::socket_peer_addr) is still the
//! proxy's. A `LOCAL` header (the proxy's own health check) or one with
//! unspecified addresses leaves `peer_addr` at the socket's peer.

use super::{Layer, LayerFactory, LayerIo, LayerState, ListenConfig};
use crate::addr::Addr;
use crate::conn::CloseReason;
use crate::protocol::proxy::{
    Addresses, Admission, Command, HeaderParser, Parsed, ProxyError, ProxyHeader, ProxyPolicy,
    V1_MAX_LEN,
};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

impl ListenConfig {
    /// Requires a PROXY protocol header (v1 or v2) on this listener's
    /// connections from the sources `policy` trusts, and refuses (or serves
    /// directly) the others; see [`ProxyPolicy`].
    ///
    /// The PROXY layer is always the outermost (the balancer's header comes
    /// before anything else on the wire, a TLS handshake included), whatever
    /// order the layers are configured in. Give a listener one policy: a second
    /// call would expect a second header.
    ///
    /// ```no_run
    /// use netloop::protocol::proxy::ProxyPolicy;
    /// use netloop::{Action, Conn, Engine, EventHandler, ListenConfig};
    ///
    /// #[derive(Clone)]
    /// struct Hello;
    /// impl EventHandler for Hello {
    ///     type State = ();
    ///     fn on_open(&mut self, conn: &mut Conn<'_, ()>) -> Action {
    ///         // The client's address from the header; the balancer's stays at
    ///         // `socket_peer_addr`.
    ///         let client = conn.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    ///         let _ = conn.write(format!("hello {client}\n").as_bytes());
    ///         Action::Close
    ///     }
    ///     fn on_traffic(&mut self, _conn: &mut Conn<'_, ()>) -> Action {
    ///         Action::None
    ///     }
    /// }
    ///
    /// // Only the balancers on 10.0.0.0/8 may connect, and each must send a header.
    /// let policy = ProxyPolicy::new().trust("10.0.0.0/8").unwrap();
    /// let engine = Engine::builder()
    ///     .listen_with(ListenConfig::new("0.0.0.0:8080").proxy_protocol(policy))
    ///     .start_with(Hello)?;
    /// # Ok::<(), netloop::Error>(())
    /// ```
    pub fn proxy_protocol(mut self, policy: ProxyPolicy) -> ListenConfig {
        self.layers.insert(0, Arc::new(ProxyFactory { policy }));
        self
    }
}

/// Opens the PROXY layer of each accepted connection, by the listener's policy.
struct ProxyFactory {
    policy: ProxyPolicy,
}

impl LayerFactory for ProxyFactory {
    fn open(&self, peer: &socket2::SockAddr) -> Result<Box<dyn Layer>, CloseReason> {
        Ok(Box::new(self.layer(peer)?))
    }
}

impl ProxyFactory {
    /// The layer for a connection from `peer`, or why it is refused.
    fn layer(&self, peer: &socket2::SockAddr) -> Result<ProxyLayer, CloseReason> {
        let stage = match self.policy.admission(peer.as_socket().map(|s| s.ip())) {
            Admission::ExpectHeader => Stage::Header {
                parser: HeaderParser::new(*self.policy.parser_config()),
                partial: Vec::new(),
            },
            Admission::Direct => Stage::Direct,
            Admission::Reject => {
                let who = match peer.as_socket() {
                    Some(sa) => sa.to_string(),
                    None => "a Unix socket peer".to_string(),
                };
                return Err(CloseReason::Protocol(
                    ProxyError::Untrusted(who).to_string(),
                ));
            }
        };
        Ok(ProxyLayer {
            stage,
            timeout: self.policy.timeout(),
        })
    }
}

/// One connection's PROXY layer.
pub(crate) struct ProxyLayer {
    stage: Stage,
    timeout: Duration,
}

enum Stage {
    /// Waiting for the header.
    Header {
        parser: HeaderParser,
        /// The header's bytes so far when it is split across reads (empty, and
        /// unallocated, while none has arrived or when it arrives whole).
        partial: Vec<u8>,
    },
    /// The header arrived.
    Received(ProxyHeader),
    /// An untrusted source served without a header.
    Direct,
}

impl ProxyLayer {
    /// The header the proxy sent (`None` for a direct client).
    pub(crate) fn header(&self) -> Option<&ProxyHeader> {
        match &self.stage {
            Stage::Received(h) => Some(h),
            _ => None,
        }
    }
}

/// The close reason for a header that cannot be accepted.
fn refused(e: ProxyError) -> CloseReason {
    CloseReason::Protocol(e.to_string())
}

/// A header still incomplete at `limit` bytes. The parser itself refuses a
/// header before that (a v1 line past 107 bytes, a v2 length over the limit):
/// this only keeps the copy of a split header bounded whatever happens.
fn over_limit(limit: usize) -> CloseReason {
    CloseReason::Protocol(format!(
        "no complete PROXY protocol header within {limit} bytes"
    ))
}

impl Layer for ProxyLayer {
    fn receive(&mut self, input: &mut [u8], io: &mut LayerIo<'_>) -> Result<(), CloseReason> {
        let Stage::Header { parser, partial } = &mut self.stage else {
            // Retired layers are skipped by the loop; pass bytes on regardless.
            io.up.push(input, io.pool);
            return Ok(());
        };
        // The parser never waits past these many bytes (107 for v1, the v2
        // limit otherwise); the copy of a split header stays within them too.
        let limit = parser.config().max_header_len.max(V1_MAX_LEN);
        let header = if partial.is_empty() {
            // The common case: the whole header in one read, parsed in place.
            match parser.parse(input).map_err(refused)? {
                Parsed::Complete { header, consumed } => {
                    if consumed < input.len() {
                        io.up.push(&input[consumed..], io.pool);
                    }
                    header
                }
                Parsed::Incomplete if input.len() < limit => {
                    partial.extend_from_slice(input);
                    return Ok(());
                }
                Parsed::Incomplete => return Err(over_limit(limit)),
            }
        } else {
            let take = input.len().min(limit.saturating_sub(partial.len()));
            partial.extend_from_slice(&input[..take]);
            match parser.parse(partial).map_err(refused)? {
                Parsed::Complete { header, consumed } => {
                    if consumed < partial.len() {
                        io.up.push(&partial[consumed..], io.pool);
                    }
                    if take < input.len() {
                        io.up.push(&input[take..], io.pool);
                    }
                    header
                }
                Parsed::Incomplete if take == input.len() && partial.len() < limit => {
                    return Ok(());
                }
                Parsed::Incomplete => return Err(over_limit(limit)),
            }
        };
        tracing::trace!(?header, "PROXY protocol header received");
        self.stage = Stage::Received(header);
        Ok(())
    }

    fn send(&mut self, data: &[&[u8]], io: &mut LayerIo<'_>) -> Result<(), CloseReason> {
        // Nothing to add on the way out.
        for d in data {
            io.down.push(d, io.pool);
        }
        Ok(())
    }

    fn state(&self) -> LayerState {
        match self.stage {
            Stage::Header { .. } => LayerState::Preamble,
            Stage::Received(_) | Stage::Direct => LayerState::Done,
        }
    }

    fn preamble_timeout(&self) -> Option<Duration> {
        matches!(self.stage, Stage::Header { .. }).then_some(self.timeout)
    }

    fn peer_addr(&self) -> Option<Addr> {
        let header = self.header()?;
        if header.command() != Command::Proxy {
            return None;
        }
        match header.addresses() {
            Addresses::Inet { source, .. } => Some(Addr::Tcp(*source)),
            Addresses::Unix { source, .. } if !source.as_bytes().is_empty() => {
                use std::os::unix::ffi::OsStrExt;
                let path = std::ffi::OsStr::from_bytes(source.as_bytes());
                Some(Addr::Unix(path.into()))
            }
            _ => None,
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    //! The layer alone, fed a header and the client's bytes in arbitrary reads:
    //! exactly the client's bytes come up, whatever the split, and the copy of a
    //! split header stays within the limit.

    use super::*;
    use crate::buffer::{BufferPool, LinkedBuffer, RingBuffer};
    use crate::protocol::proxy::{ProxyHeader, Version, PP2_TYPE_UNIQUE_ID};
    use proptest::prelude::*;

    /// Feeds `wire` in reads ending at `cuts`; returns what came up, the
    /// layer's end state and the largest header copy it held.
    fn feed(
        policy: &ProxyPolicy,
        wire: &[u8],
        cuts: &[usize],
    ) -> (Result<Vec<u8>, String>, ProxyLayer, usize) {
        let peer = socket2::SockAddr::from("127.0.0.1:9".parse::<std::net::SocketAddr>().unwrap());
        let mut layer = ProxyFactory {
            policy: policy.clone(),
        }
        .layer(&peer)
        .unwrap();
        let (mut up, mut down, mut pool) = (
            RingBuffer::new(),
            LinkedBuffer::new(),
            BufferPool::new(1 << 20),
        );
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        ends.push(wire.len());
        ends.sort_unstable();
        ends.dedup();
        let (mut start, mut held) = (0, 0);
        for end in ends {
            let mut chunk = wire[start..end].to_vec();
            start = end;
            let mut io = LayerIo {
                up: &mut up,
                down: &mut down,
                pool: &mut pool,
            };
            if let Err(e) = layer.receive(&mut chunk, &mut io) {
                return (Err(e.to_string()), layer, held);
            }
            if let Stage::Header { partial, .. } = &layer.stage {
                held = held.max(partial.len());
            }
        }
        let mut out = vec![0u8; up.len()];
        up.read_to(&mut out, &mut pool);
        assert!(down.is_empty(), "the layer sends nothing of its own");
        (Ok(out), layer, held)
    }

    fn wire(version: Version, data: &[u8]) -> Vec<u8> {
        let mut header = ProxyHeader::tcp(
            version,
            "198.51.100.1:1234".parse().unwrap(),
            "192.0.2.1:80".parse().unwrap(),
        );
        if version == Version::V2 {
            header = header.with_tlv(PP2_TYPE_UNIQUE_ID, b"abc").unwrap();
        }
        let mut w = Vec::new();
        header.encode(&mut w).unwrap();
        w.extend_from_slice(data);
        w
    }

    proptest! {
        #[test]
        fn any_split_delivers_exactly_the_bytes_after_the_header(
            v2 in any::<bool>(),
            data in proptest::collection::vec(any::<u8>(), 0..300),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let version = if v2 { Version::V2 } else { Version::V1 };
            let (up, layer, _) = feed(&ProxyPolicy::new(), &wire(version, &data), &cuts);
            prop_assert_eq!(up.unwrap(), data);
            prop_assert_eq!(layer.state(), LayerState::Done);
            prop_assert_eq!(
                layer.peer_addr(),
                Some(Addr::Tcp("198.51.100.1:1234".parse().unwrap()))
            );
            prop_assert_eq!(layer.preamble_timeout(), None);
        }

        #[test]
        fn noise_is_refused_or_awaited_within_the_limit(
            noise in proptest::collection::vec(any::<u8>(), 0..6000),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let policy = ProxyPolicy::new();
            let (res, layer, held) = feed(&policy, &noise, &cuts);
            let limit = policy.parser_config().max_header_len.max(V1_MAX_LEN);
            prop_assert!(held < limit, "held {} bytes", held);
            if res.is_ok() && layer.state() == LayerState::Preamble {
                prop_assert!(noise.len() < limit);
            }
        }
    }

    #[test]
    fn untrusted_peers_are_refused_with_their_address() {
        let policy = ProxyPolicy::new().trust("10.0.0.0/8").unwrap();
        let f = ProxyFactory { policy };
        let peer =
            socket2::SockAddr::from("127.0.0.1:4000".parse::<std::net::SocketAddr>().unwrap());
        let err = f.open(&peer).err().expect("refused");
        assert_eq!(
            err.to_string(),
            "protocol error: connection from 127.0.0.1:4000, which is not a trusted proxy"
        );
        let trusted =
            socket2::SockAddr::from("10.1.2.3:4000".parse::<std::net::SocketAddr>().unwrap());
        let layer = f.open(&trusted).unwrap();
        assert_eq!(layer.state(), LayerState::Preamble);
        assert_eq!(layer.preamble_timeout(), Some(Duration::from_secs(3)));
    }
}
