//! Datagram batches: `recvmmsg(2)` and `sendmmsg(2)` over preallocated buffers.

use super::{cvt, cvt_size};
use std::io;
use std::os::fd::RawFd;

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
