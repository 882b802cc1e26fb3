//! Stream sockets: the per-message reads and sends, and accepting.

use super::{cvt, owned, Errno};
use rustix::net::{SendAncillaryBuffer, SendFlags};
use std::io::{self, IoSlice};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

/// `read(2)` into `buf`.
///
/// The per-message calls (read, send, sendmsg) go through rustix's raw-syscall
/// backend: an inline `syscall` instruction instead of libc's wrappers, which are
/// thread-cancellation points (about 30 instructions each entering and leaving
/// asynchronous cancellation; netloop never cancels a thread) or, through
/// `syscall(2)`, a trampoline that shuffles all six argument registers.
///
/// They return the bare [`Errno`]: the callers test for `EAGAIN` and `EINTR` on
/// the hot path and build an `io::Error` only when a connection actually fails.
#[inline]
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    rustix::io::read(fd, buf)
}

/// `send(2)` with `MSG_NOSIGNAL`, so a peer that went away yields `EPIPE` instead of
/// killing the process with `SIGPIPE`, and `MSG_DONTWAIT`, so the call never blocks
/// whatever the socket's mode (under io_uring connection sockets are in blocking
/// mode; a direct send there — a last word before a close — must not wait).
#[inline]
pub(crate) fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, Errno> {
    rustix::net::send(fd, buf, SendFlags::NOSIGNAL | SendFlags::DONTWAIT)
}

/// Gathered write: `sendmsg(2)` with an iovec array, `MSG_NOSIGNAL` and
/// `MSG_DONTWAIT` (see [`send`]).
pub(crate) fn sendv(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> Result<usize, Errno> {
    let bufs = &bufs[..bufs.len().min(libc::UIO_MAXIOV as usize)];
    let mut control = SendAncillaryBuffer::default();
    rustix::net::sendmsg(
        fd,
        bufs,
        &mut control,
        SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
    )
}

/// `accept4(fd, SOCK_NONBLOCK | SOCK_CLOEXEC)`, returning the new socket and the
/// peer's address.
pub(crate) fn accept(fd: RawFd) -> io::Result<(OwnedFd, socket2::SockAddr)> {
    // SAFETY: `try_init` hands us storage large enough for any address and its
    // length; accept4 writes at most that many bytes and updates the length.
    let (new, addr) = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            cvt(libc::accept4(
                fd,
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            ))
        })
    }?;
    Ok((owned(new), addr))
}

/// Is this error one of the "out of descriptors" kind (`EMFILE`, `ENFILE`) or
/// out of kernel memory (`ENOBUFS`, `ENOMEM`), after which `accept` must back off.
pub(crate) fn is_resource_exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}
