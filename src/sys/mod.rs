//! The syscall layer: every `unsafe` call into the OS lives in this module.
//!
//! Each wrapper is tiny, converts the C return convention into `io::Result`, and
//! carries a `// SAFETY:` comment saying why the call is sound. Everything above this
//! module is safe Rust.

pub(crate) mod process;

pub(crate) use rustix::io::Errno;
use rustix::net::{SendAncillaryBuffer, SendFlags};
use std::io::{self, IoSlice};
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

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
/// killing the process with `SIGPIPE`.
#[inline]
pub(crate) fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, Errno> {
    rustix::net::send(fd, buf, SendFlags::NOSIGNAL)
}

/// Gathered write: `sendmsg(2)` with an iovec array and `MSG_NOSIGNAL`.
pub(crate) fn sendv(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> Result<usize, Errno> {
    let bufs = &bufs[..bufs.len().min(libc::UIO_MAXIOV as usize)];
    let mut control = SendAncillaryBuffer::default();
    rustix::net::sendmsg(fd, bufs, &mut control, SendFlags::NOSIGNAL)
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

// ----- datagram batches (recvmmsg / sendmmsg) -----

/// Preallocated buffers for receiving up to `batch` datagrams with one
/// `recvmmsg(2)`: one `size`-byte slot, one address and one header per datagram.
/// Nothing is allocated after construction.
pub(crate) struct RecvBatch {
    bufs: Box<[u8]>,
    size: usize,
    iovs: Box<[libc::iovec]>,
    names: Box<[libc::sockaddr_storage]>,
    hdrs: Box<[libc::mmsghdr]>,
    filled: usize,
}

impl RecvBatch {
    /// `batch` slots of `size` bytes each (both at least 1).
    pub(crate) fn new(batch: usize, size: usize) -> RecvBatch {
        let batch = batch.max(1);
        let size = size.max(1);
        // SAFETY: all-zero iovec, sockaddr_storage and mmsghdr values are valid
        // (null pointers, zero lengths); `recv` fills in the pointers before use.
        let (iov, name, hdr) = unsafe {
            (
                std::mem::zeroed::<libc::iovec>(),
                std::mem::zeroed::<libc::sockaddr_storage>(),
                std::mem::zeroed::<libc::mmsghdr>(),
            )
        };
        RecvBatch {
            bufs: vec![0u8; batch * size].into_boxed_slice(),
            size,
            iovs: vec![iov; batch].into_boxed_slice(),
            names: vec![name; batch].into_boxed_slice(),
            hdrs: vec![hdr; batch].into_boxed_slice(),
            filled: 0,
        }
    }

    /// How many datagrams one call can return.
    pub(crate) fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Receives up to `capacity()` datagrams without blocking; returns how many
    /// arrived (`WouldBlock` when none were waiting).
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.filled = 0;
        let size = self.size;
        for (i, ((hdr, iov), name)) in self
            .hdrs
            .iter_mut()
            .zip(self.iovs.iter_mut())
            .zip(self.names.iter_mut())
            .enumerate()
        {
            iov.iov_base = self.bufs[i * size..].as_mut_ptr().cast();
            iov.iov_len = size;
            hdr.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            hdr.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = std::ptr::null_mut();
            hdr.msg_hdr.msg_controllen = 0;
            hdr.msg_hdr.msg_flags = 0;
            hdr.msg_len = 0;
        }
        let n = self.hdrs.len().min(u32::MAX as usize) as libc::c_uint;
        // SAFETY: every header points at its own iovec (one `size`-byte slot inside
        // `bufs`) and its own sockaddr_storage with the matching length; all of it is
        // owned by `self`, borrowed mutably for the call, and the kernel writes at
        // most `n` headers and within those bounds. The timeout pointer is null.
        let got = cvt(unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        })? as usize;
        self.filled = got;
        Ok(got)
    }

    /// Bytes of datagram `i` (of the last `recv`).
    pub(crate) fn data(&self, i: usize) -> &[u8] {
        debug_assert!(i < self.filled);
        let len = (self.hdrs[i].msg_len as usize).min(self.size);
        &self.bufs[i * self.size..i * self.size + len]
    }

    /// Did datagram `i` not fit its slot (`MSG_TRUNC`)?
    pub(crate) fn truncated(&self, i: usize) -> bool {
        self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0
    }

    /// Sender of datagram `i` (a copy; no allocation).
    pub(crate) fn peer(&self, i: usize) -> socket2::SockAddr {
        let len = self.hdrs[i].msg_hdr.msg_namelen;
        let mut storage = socket2::SockAddrStorage::zeroed();
        // SAFETY: `sockaddr_storage` is one of the platform's sockaddr types, as
        // `view_as` requires.
        *unsafe { storage.view_as::<libc::sockaddr_storage>() } = self.names[i];
        let len = len.min(std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t);
        // SAFETY: the kernel wrote a valid address of `len` bytes (clamped to the
        // storage size) into the storage copied above.
        unsafe { socket2::SockAddr::new(storage, len) }
    }
}

/// Preallocated outgoing datagrams, sent with `sendmmsg(2)`: payloads are copied
/// into one fixed arena, destinations into a fixed array. Nothing is allocated
/// after construction.
pub(crate) struct SendBatch {
    arena: Vec<u8>,
    /// (offset in `arena`, length) per queued datagram.
    spans: Vec<(usize, usize)>,
    dests: Vec<socket2::SockAddr>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

/// What one [`SendBatch::flush`] did.
#[derive(Default, Debug)]
pub(crate) struct Flushed {
    /// Datagrams the kernel took.
    pub(crate) sent: usize,
    /// Datagrams dropped (socket buffer full, or an error for that datagram).
    pub(crate) dropped: usize,
    /// The last error other than `WouldBlock`, for the log.
    pub(crate) error: Option<io::Error>,
}

impl SendBatch {
    /// Room for `batch` datagrams and `bytes` bytes of payload.
    pub(crate) fn new(batch: usize, bytes: usize) -> SendBatch {
        let batch = batch.max(1);
        SendBatch {
            arena: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(batch),
            dests: Vec::with_capacity(batch),
            iovs: Vec::with_capacity(batch),
            hdrs: Vec::with_capacity(batch),
        }
    }

    /// Nothing queued?
    pub(crate) fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Would `len` more bytes fit (in the arena and the header array)?
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.spans.len() < self.spans.capacity() && self.arena.len() + len <= self.arena.capacity()
    }

    /// Can a datagram of `len` bytes ever be queued (is the arena large enough)?
    pub(crate) fn can_hold(&self, len: usize) -> bool {
        len <= self.arena.capacity()
    }

    /// Queues a datagram; the caller checked [`fits`](Self::fits).
    pub(crate) fn push(&mut self, to: &socket2::SockAddr, data: &[u8]) {
        debug_assert!(self.fits(data.len()));
        let off = self.arena.len();
        self.arena.extend_from_slice(data);
        self.spans.push((off, data.len()));
        self.dests.push(to.clone());
    }

    /// Sends everything queued without blocking and empties the batch. What the
    /// socket does not take is dropped (datagrams are unreliable by contract) and
    /// counted.
    pub(crate) fn flush(&mut self, fd: RawFd) -> Flushed {
        let mut out = Flushed::default();
        let n = self.spans.len();
        if n == 0 {
            return out;
        }
        self.iovs.clear();
        self.hdrs.clear();
        for &(off, len) in &self.spans {
            self.iovs.push(libc::iovec {
                iov_base: self.arena[off..].as_ptr() as *mut libc::c_void,
                iov_len: len,
            });
        }
        for (i, dest) in self.dests.iter().enumerate() {
            // SAFETY: an all-zero mmsghdr is a valid empty message.
            let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
            hdr.msg_hdr.msg_name = dest.as_ptr() as *mut libc::c_void;
            hdr.msg_hdr.msg_namelen = dest.len();
            hdr.msg_hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_hdr.msg_iovlen = 1;
            self.hdrs.push(hdr);
        }
        let mut start = 0;
        while start < n {
            let count = (n - start).min(u32::MAX as usize) as libc::c_uint;
            // SAFETY: headers `start..n` point at iovecs in `self.iovs` and
            // destinations in `self.dests`, which in turn point into `self.arena`;
            // none of these vectors is touched until the call returns, and the
            // kernel only reads them (it writes only each header's `msg_len`).
            let res = cvt(unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[start..].as_mut_ptr(),
                    count,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            });
            match res {
                Ok(k) => {
                    out.sent += k as usize;
                    start += (k as usize).max(1).min(n - start);
                    if k == 0 {
                        out.dropped += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    out.dropped += n - start;
                    break;
                }
                Err(e) => {
                    // This datagram failed (EMSGSIZE, EACCES, unreachable…): skip it.
                    out.dropped += 1;
                    out.error = Some(e);
                    start += 1;
                }
            }
        }
        self.arena.clear();
        self.spans.clear();
        self.dests.clear();
        self.iovs.clear();
        self.hdrs.clear();
        out
    }
}

/// `sendto(2)` of one datagram, without blocking.
pub(crate) fn send_to(fd: RawFd, data: &[u8], to: &socket2::SockAddr) -> io::Result<usize> {
    // SAFETY: `data` and `to` are borrowed for the call; the kernel only reads
    // `data.len()` bytes and `to.len()` bytes of address.
    cvt_size(unsafe {
        libc::sendto(
            fd,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            to.as_ptr().cast(),
            to.len(),
        )
    })
}
