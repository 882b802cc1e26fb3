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
/// ```
/// use netloop::protocol::websocket::{Config, DeflateConfig};
/// let cfg = Config::default()
///     .max_message_size(1 << 20)
///     .protocols(["chat.v2", "chat.v1"])
///     .deflate(DeflateConfig::default());
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
    /// (on the engine's timing wheel). Default: off. The engine keeps a small
    /// per-connection record for timeouts (about 200 bytes), so this raises the
    /// memory of an idle connection accordingly.
    pub idle_timeout: Option<Duration>,
    /// Once a close frame is sent, how long to wait for the peer's close frame
    /// before closing the TCP connection anyway (default 5 s).
    pub close_timeout: Duration,
    /// Stop reading a connection while its outbound queue is above the high
    /// water mark, and resume once it drained to the low mark (default on): a
    /// peer that sends faster than it reads cannot make the server queue
    /// without bound. The application is told through `on_writable_changed`
    /// either way.
    pub pause_reading_when_unwritable: bool,
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
            close_timeout: Duration::from_secs(5),
            pause_reading_when_unwritable: true,
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
    /// Sets [`Config::close_timeout`].
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }
}
