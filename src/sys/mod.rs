//! The syscall layer: every `unsafe` call into the OS lives in this module.
//!
//! Each wrapper is tiny, converts the C return convention into `io::Result`, and
//! carries a `// SAFETY:` comment saying why the call is sound. Everything above this
//! module is safe Rust.

use std::io::{self, IoSlice};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

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
/// The hot-path calls (read, send, sendmsg, epoll_pwait) go through `syscall(2)`
/// rather than libc's wrappers: those wrappers are thread-cancellation points and
/// spend about 30 instructions each entering and leaving asynchronous cancellation,
/// which netloop never uses (its threads are never cancelled). That is a fifth of
/// the user-space cost of an echoed message.
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

/// `read(2)` into `buf`.
#[inline]
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe writable memory borrowed for the call.
    cvt_long(unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) })
}

/// `send(2)` with `MSG_NOSIGNAL`, so a peer that went away yields `EPIPE` instead of
/// killing the process with `SIGPIPE`.
#[inline]
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe readable memory borrowed for the call.
    // send(2) is sendto(2) without an address.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            buf.as_ptr(),
            buf.len(),
            libc::MSG_NOSIGNAL,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    })
}

/// Gathered write: `sendmsg(2)` with an iovec array and `MSG_NOSIGNAL`.
pub(crate) fn sendv(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with `struct iovec` on Unix.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
    // SAFETY: `msg` points at `bufs`, which stay borrowed for the call; the kernel
    // only reads them.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_sendmsg,
            fd,
            &msg as *const libc::msghdr,
            libc::MSG_NOSIGNAL,
        )
    })
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

/// Pins the calling thread to one CPU.
pub(crate) fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes inside `set`; `cpu` is bounds-checked by the macro's
    // implementation against CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu % libc::CPU_SETSIZE as usize, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t and its size is passed along.
    cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) })?;
    Ok(())
}

/// Number of descriptors this process has open (from `/proc/self/fd`); used by
/// tests and diagnostics.
#[allow(dead_code)]
pub(crate) fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count().saturating_sub(1))
        .unwrap_or(0)
}

/// Is this error one of the "out of descriptors" kind (`EMFILE`, `ENFILE`) or
/// out of kernel memory (`ENOBUFS`, `ENOMEM`), after which `accept` must back off.
pub(crate) fn is_resource_exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}
