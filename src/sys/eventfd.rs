//! eventfd(2): the loops' wake-up counters.

use super::{cvt, cvt_size, owned};
use std::io;
use std::os::fd::{OwnedFd, RawFd};

/// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: no pointers are passed.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    Ok(owned(fd))
}

/// Adds one to an eventfd's counter (wakes whoever polls it).
pub(crate) fn eventfd_write(fd: RawFd) -> io::Result<()> {
    let one: u64 = 1;
    // SAFETY: reads 8 bytes from a live local.
    let n = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    match cvt_size(n) {
        Ok(_) => Ok(()),
        // The counter is saturated: a wake-up is pending anyway.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Resets an eventfd's counter.
pub(crate) fn eventfd_read(fd: RawFd) {
    let mut buf: u64 = 0;
    // SAFETY: writes at most 8 bytes into a live local. An error (EAGAIN when
    // the counter is already zero) needs no handling.
    let _ = unsafe { libc::read(fd, (&mut buf as *mut u64).cast(), 8) };
}
