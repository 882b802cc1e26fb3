//! Why a connection closed.

use std::io;

/// Why a connection closed; given to [`EventHandler::on_close`](crate::EventHandler::on_close).
#[derive(Debug)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed its side (read returned end-of-file) and everything queued
    /// for it was sent.
    PeerClosed,
    /// The peer reset the connection (`ECONNRESET`) or went away mid-write (`EPIPE`).
    Reset,
    /// A socket error other than a reset.
    Io(io::Error),
    /// The handler asked for it ([`Action::Close`](crate::Action::Close) or [`Conn::close`](crate::Conn::close)).
    Local,
    /// A [`ConnHandle::close`](crate::ConnHandle::close) from another thread.
    Handle,
    /// A handler callback panicked for this connection; the panic was logged.
    Panicked,
    /// The engine is stopping.
    EngineStopped,
    /// A protocol or framing layer rejected the peer's bytes.
    Protocol(String),
    /// A timeout expired (see [`TimeoutKind`]).
    Timeout(TimeoutKind),
    /// More than [`Options::max_outbound_bytes`](crate::Options::max_outbound_bytes)
    /// would have been queued outbound (the peer does not read fast enough); the
    /// queue was dropped instead of growing without bound.
    OutboundOverflow,
}

/// Which timeout closed a connection ([`CloseReason::Timeout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// No traffic in either direction for the idle timeout.
    Idle,
    /// No byte received for the read timeout while the connection wanted to read
    /// (time spent with reading paused does not count).
    Read,
    /// Bytes were queued outbound and the kernel took none of them for the write
    /// timeout (the peer stopped reading).
    Write,
    /// The deadline set with [`Conn::set_deadline`](crate::Conn::set_deadline) passed.
    Deadline,
}

impl std::fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutKind::Idle => "idle",
            TimeoutKind::Read => "read",
            TimeoutKind::Write => "write",
            TimeoutKind::Deadline => "deadline",
        })
    }
}

/// A copy of an I/O error: the same OS error code, or the same kind and message.
pub(crate) fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

impl Clone for CloseReason {
    fn clone(&self) -> Self {
        match self {
            CloseReason::PeerClosed => CloseReason::PeerClosed,
            CloseReason::Reset => CloseReason::Reset,
            CloseReason::Io(e) => CloseReason::Io(copy_io_error(e)),
            CloseReason::Local => CloseReason::Local,
            CloseReason::Handle => CloseReason::Handle,
            CloseReason::Panicked => CloseReason::Panicked,
            CloseReason::EngineStopped => CloseReason::EngineStopped,
            CloseReason::Protocol(m) => CloseReason::Protocol(m.clone()),
            CloseReason::Timeout(k) => CloseReason::Timeout(*k),
            CloseReason::OutboundOverflow => CloseReason::OutboundOverflow,
        }
    }
}

/// Two reasons are equal when they are the same variant with equal contents; two
/// I/O errors when they have the same kind and OS error code.
impl PartialEq for CloseReason {
    fn eq(&self, other: &Self) -> bool {
        use CloseReason::*;
        match (self, other) {
            (Io(a), Io(b)) => a.kind() == b.kind() && a.raw_os_error() == b.raw_os_error(),
            (Protocol(a), Protocol(b)) => a == b,
            (Timeout(a), Timeout(b)) => a == b,
            (PeerClosed, PeerClosed)
            | (Reset, Reset)
            | (Local, Local)
            | (Handle, Handle)
            | (Panicked, Panicked)
            | (EngineStopped, EngineStopped)
            | (OutboundOverflow, OutboundOverflow) => true,
            _ => false,
        }
    }
}

impl CloseReason {
    /// Classifies an I/O error from a socket read or write.
    pub(crate) fn from_io(e: io::Error) -> CloseReason {
        match e.raw_os_error() {
            Some(libc::ECONNRESET) | Some(libc::EPIPE) => CloseReason::Reset,
            _ => CloseReason::Io(e),
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::Reset => f.write_str("reset by peer"),
            CloseReason::Io(e) => write!(f, "i/o error: {e}"),
            CloseReason::Local => f.write_str("closed by handler"),
            CloseReason::Handle => f.write_str("closed through a handle"),
            CloseReason::Panicked => f.write_str("handler panicked"),
            CloseReason::EngineStopped => f.write_str("engine stopped"),
            CloseReason::Protocol(m) => write!(f, "protocol error: {m}"),
            CloseReason::Timeout(k) => write!(f, "{k} timeout"),
            CloseReason::OutboundOverflow => f.write_str("outbound queue over its cap"),
        }
    }
}
