//! The syscall layer: every `unsafe` call into the OS lives in this module.
//!
//! Each wrapper is tiny, converts the C return convention into `io::Result`, and
//! carries a `// SAFETY:` comment saying why the call is sound. Everything above this
//! module is safe Rust.
#![allow(unsafe_code)] // the one exception to the crate-wide `deny(unsafe_code)`

mod datagram;
mod epoll;
mod eventfd;
pub(crate) mod process;
mod socket;
mod thread;
pub(crate) mod uring;

pub(crate) use datagram::{send_to, RecvBatch, SendBatch};
pub(crate) use epoll::{epoll_create, epoll_ctl, epoll_wait};
pub(crate) use eventfd::{eventfd, eventfd_read, eventfd_write};
pub(crate) use rustix::io::Errno;
pub(crate) use socket::{accept, is_resource_exhausted, read, send, sendv};
pub(crate) use thread::pin_current_thread;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Converts a `-1`-on-error return value into an `io::Result`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Converts the `long` returned by `syscall(2)` into an `io::Result<usize>`.
///
/// `epoll_pwait` goes through `syscall(2)` rather than libc's wrapper, which is a
/// thread-cancellation point (about 30 instructions entering and leaving
/// asynchronous cancellation; netloop never cancels its threads). The
/// per-message calls go through rustix instead (see [`read`]).
#[inline]
fn cvt_long(ret: libc::c_long) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Converts a `-1`-on-error `ssize_t` return value into an `io::Result<usize>`.
fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Wraps a freshly created descriptor.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful syscall that creates a new
    // descriptor, so nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
