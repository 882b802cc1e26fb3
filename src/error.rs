//! netloop's error type.

use std::io;

/// Everything that can go wrong in netloop's public API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An address string could not be parsed or resolved.
    #[error("invalid address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The address names a scheme netloop does not serve (yet).
    #[error("unsupported scheme {scheme:?} in {addr:?} (expected tcp, tcp4, tcp6, unix, udp, udp4, udp6 or unixgram)")]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
        /// The address as given.
        addr: String,
    },
    /// The options are inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// [`Backend::IoUring`](crate::Backend::IoUring) was asked for and the kernel
    /// refuses io_uring or lacks what the backend needs ([`Backend::Auto`](crate::Backend::Auto)
    /// falls back to epoll instead).
    #[error("the io_uring backend is unavailable: {reason}")]
    BackendUnavailable {
        /// What the probe found missing, or why the kernel refused.
        reason: String,
    },
    /// An option is outside the range netloop accepts.
    #[error("invalid option {name}: {reason}")]
    InvalidOption {
        /// The option's name (an [`Options`](crate::Options) field).
        name: &'static str,
        /// What range it must be in.
        reason: String,
    },
    /// The address's kind is served by another engine (a datagram address given to
    /// a stream engine, or the reverse).
    #[error("{addr} is a {kind} address: {hint}")]
    WrongAddressKind {
        /// The address as given.
        addr: String,
        /// Its kind (`datagram` or `stream`).
        kind: &'static str,
        /// Which engine serves it.
        hint: &'static str,
    },
    /// An operating-system error.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The connection a handle refers to is closed (or its slot was reused).
    #[error("connection closed")]
    ConnectionClosed,
    /// The write would have queued more than
    /// [`Options::max_outbound_bytes`](crate::Options::max_outbound_bytes) on the
    /// connection, which is closed with
    /// [`CloseReason::OutboundOverflow`](crate::CloseReason::OutboundOverflow).
    #[error("outbound queue over max_outbound_bytes")]
    OutboundOverflow,
    /// The engine (or the event loop owning the connection) has stopped.
    #[error("engine stopped")]
    EngineStopped,
    /// The worker pool's queue is full; the job was not accepted.
    #[error("worker pool queue is full")]
    PoolFull,
    /// An outgoing connection could not be established.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address dialed.
        addr: String,
        /// Why it failed (`ConnectionRefused`, unreachable, …).
        #[source]
        source: io::Error,
    },
    /// An outgoing connection did not complete within its timeout.
    #[error("connecting to {addr}: timed out after {timeout:?}")]
    ConnectTimeout {
        /// The address dialed.
        addr: String,
        /// The timeout that expired.
        timeout: std::time::Duration,
    },
}

/// netloop's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
