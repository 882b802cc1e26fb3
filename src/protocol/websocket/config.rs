//! Settings of a WebSocket endpoint: limits, timeouts, subprotocols, compression.

use std::time::Duration;

use super::deflate::DeflateConfig;
use crate::protocol::http::Limits;

/// Settings shared by every connection of a [`WebSocket`](super::WebSocket)
/// handler (one copy per loop).
///
/// Frames up to 64 KiB are waited for whole in the connection's inbound
/// buffer, larger ones are consumed as they arrive: keep the engine's
/// [`Options::max_inbound_bytes`](crate::Options::max_inbound_bytes) above
/// that (its default is 4 MiB).
///
/// Backpressure: while a connection's outbound queue is above the engine's
/// high water mark the layer stops parsing its buffered input, and the engine
/// stops reading it ([`Options::read_backpressure`](crate::Options::read_backpressure),
/// on by default); both resume once the queue drained to the low mark. The
/// application hears of it through
/// [`on_writable_changed`](super::WebSocketHandler::on_writable_changed).
///
/// ```
/// use netloop::protocol::websocket::{Config, DeflateConfig};
/// use std::time::Duration;
/// let cfg = Config::default()
///     .max_message_size(1 << 20)
///     .protocols(["chat.v2", "chat.v1"])
///     .deflate(DeflateConfig::default())
///     .ping_interval(Some(Duration::from_secs(20)));
/// assert_eq!(cfg.max_message_size, 1 << 20);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest frame payload accepted (default 16 MiB); past it the connection
    /// fails with 1009.
    pub max_frame_size: usize,
    /// Largest message accepted, after reassembly and decompression (default
    /// 16 MiB); past it the connection fails with 1009.
    pub max_message_size: usize,
    /// Limits of the HTTP upgrade request (its header section above all).
    pub http_limits: Limits,
    /// Subprotocols this server speaks, in order of preference; the first one the
    /// client also offers is selected (`Sec-WebSocket-Protocol`). Empty: none is
    /// ever selected (the client's offer is ignored, as RFC 6455 allows).
    pub protocols: Vec<String>,
    /// permessage-deflate (RFC 7692); `None` (the default) never negotiates it.
    pub deflate: Option<DeflateConfig>,
    /// Close a connection after this long without traffic in either direction
    /// (on the engine's timing wheel). Default: off. A connection with a
    /// timeout keeps a small record for it in the engine (its cold state and
    /// timeout settings, about 150 bytes), so this raises the memory of an
    /// idle connection accordingly; [`ping_interval`](Config::ping_interval)
    /// is the leaner way to drop dead peers.
    pub idle_timeout: Option<Duration>,
    /// Keep-alive: send a ping this long after the connection opened and
    /// every interval after, and fail the connection with 1011 when the peer
    /// sent nothing at all (no pong, no other frame) within
    /// [`pong_timeout`](Config::pong_timeout) of a ping. Default: off. Runs on
    /// the connection's timer ([`Conn::set_timer`](crate::Conn::set_timer)),
    /// which holds the engine's cold state for the connection (about 80
    /// bytes) while it is on.
    pub ping_interval: Option<Duration>,
    /// How long the peer has to answer a keep-alive ping (with a pong or any
    /// other frame). `None` (the default): the whole
    /// [`ping_interval`](Config::ping_interval). Longer than the interval
    /// counts as the interval.
    pub pong_timeout: Option<Duration>,
    /// The upgrade request (server) or the server's answer to it (client)
    /// must be complete this long after the TCP connection opened (default
    /// 10 s): a server answers `408 Request Timeout` and closes, a client
    /// reports [`ClientHandshakeError::Timeout`](super::ClientHandshakeError::Timeout).
    /// `None`: no limit.
    pub handshake_timeout: Option<Duration>,
    /// Once a close frame is sent, how long to wait for the peer's close frame
    /// before closing the TCP connection anyway (default 5 s).
    pub close_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            http_limits: Limits::default(),
            protocols: Vec::new(),
            deflate: None,
            idle_timeout: None,
            ping_interval: None,
            pong_timeout: None,
            handshake_timeout: Some(Duration::from_secs(10)),
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// Sets [`Config::max_frame_size`].
    pub fn max_frame_size(mut self, n: usize) -> Self {
        self.max_frame_size = n;
        self
    }
    /// Sets [`Config::max_message_size`].
    pub fn max_message_size(mut self, n: usize) -> Self {
        self.max_message_size = n;
        self
    }
    /// Sets [`Config::protocols`].
    pub fn protocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }
    /// Enables permessage-deflate ([`Config::deflate`]).
    pub fn deflate(mut self, deflate: DeflateConfig) -> Self {
        self.deflate = Some(deflate);
        self
    }
    /// Sets [`Config::idle_timeout`].
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }
    /// Sets [`Config::ping_interval`] (keep-alive pings).
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.ping_interval = interval;
        self
    }
    /// Sets [`Config::pong_timeout`].
    pub fn pong_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.pong_timeout = timeout;
        self
    }
    /// Sets [`Config::handshake_timeout`].
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }
    /// Sets [`Config::close_timeout`].
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// The keep-alive schedule, if on: the ping interval and how long a ping
    /// waits for an answer (at most the interval).
    pub(crate) fn keep_alive(&self) -> Option<(Duration, Duration)> {
        let interval = self.ping_interval.filter(|d| !d.is_zero())?;
        let wait = self.pong_timeout.map_or(interval, |t| t.min(interval));
        Some((interval, wait))
    }
}
