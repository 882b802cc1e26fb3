//! epoll(7): creating an instance, registering descriptors, waiting.

use super::{cvt, cvt_long, owned};
use std::io;
use std::os::fd::{OwnedFd, RawFd};

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: no pointers are passed.
    let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    Ok(owned(fd))
}

/// `epoll_ctl(epfd, op, fd, {events, data})`.
pub(crate) fn epoll_ctl(
    epfd: RawFd,
    op: libc::c_int,
    fd: RawFd,
    events: u32,
    data: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call; the kernel
    // copies it and keeps no pointer.
    cvt(unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) })?;
    Ok(())
}

/// `epoll_wait` into the spare capacity of `events`, setting its length to the
/// number of events returned. `timeout_ms` of -1 blocks.
pub(crate) fn epoll_wait(
    epfd: RawFd,
    events: &mut Vec<libc::epoll_event>,
    timeout_ms: i32,
) -> io::Result<usize> {
    events.clear();
    let cap = events.capacity().min(i32::MAX as usize) as libc::c_int;
    // SAFETY: the pointer and capacity describe writable memory owned by `events`;
    // the kernel writes at most `cap` initialised entries.
    // epoll_pwait with no signal mask is epoll_wait, and exists on every architecture.
    let n = cvt_long(unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait,
            epfd,
            events.as_mut_ptr(),
            cap,
            timeout_ms,
            std::ptr::null::<libc::sigset_t>(),
            0usize,
        )
    })?;
    // SAFETY: the kernel initialised the first `n <= cap` entries.
    unsafe { events.set_len(n) };
    Ok(n)
}
