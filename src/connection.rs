//! A connection as the handler sees it on its event loop.

use crate::addr::Addr;
use crate::buffer::{BufferPool, LinkedBuffer, RingBuffer};
use crate::error::Error;
use crate::event_loop::LoopShared;
use crate::handle::{run_callback, ConnHandle, WriteCallback};
use crate::handler::CloseReason;
use crate::poller::Interest;
use crate::sys;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// Gathered writes use at most this many iovecs per syscall.
pub(crate) const MAX_IOVECS: usize = 64;

/// Why a connection that is draining its outbound queue will close once drained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Drain {
    Local,
    PeerClosed,
    Handle,
}

impl Drain {
    pub(crate) fn reason(self) -> CloseReason {
        match self {
            Drain::Local => CloseReason::Local,
            Drain::PeerClosed => CloseReason::PeerClosed,
            Drain::Handle => CloseReason::Handle,
        }
    }
}

/// Callbacks of async writes waiting for their bytes to reach the kernel.
///
/// Offsets count bytes since the waiter list was created: `sent` is how many have
/// been handed to the kernel, and each waiter fires once `sent` reaches its end.
pub(crate) struct WriteWaiters {
    sent: u64,
    waiters: VecDeque<(u64, WriteCallback)>,
}

/// The loop-private part of a connection, stored in the loop's slab.
///
/// Kept small on purpose: an idle connection is this struct and nothing else (no
/// buffer is held while both queues are empty).
pub(crate) struct ConnInner<S> {
    pub(crate) fd: OwnedFd,
    pub(crate) inbound: RingBuffer,
    pub(crate) outbound: LinkedBuffer,
    pub(crate) waiters: Option<Box<WriteWaiters>>,
    /// An error met while writing inside a callback; the loop closes with it.
    pub(crate) failed: Option<Box<CloseReason>>,
    /// Current registration with the poller.
    pub(crate) interest: Interest,
    /// Set once the connection is closing: it no longer reads and closes when drained.
    pub(crate) draining: Option<Drain>,
    /// The peer shut down its sending side.
    pub(crate) read_closed: bool,
    /// `on_close` has run: writes are discarded.
    pub(crate) closed: bool,
    pub(crate) state: S,
}

impl<S: Default> ConnInner<S> {
    pub(crate) fn new(fd: OwnedFd) -> ConnInner<S> {
        ConnInner {
            fd,
            inbound: RingBuffer::new(),
            outbound: LinkedBuffer::new(),
            waiters: None,
            failed: None,
            interest: Interest::READ,
            draining: None,
            read_closed: false,
            closed: false,
            state: S::default(),
        }
    }
}

impl<S> ConnInner<S> {
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The pending socket error (`SO_ERROR`), if any.
    pub(crate) fn fd_error(&self) -> Option<io::Error> {
        socket2::SockRef::from(&self.fd).take_error().ok().flatten()
    }

    /// The interest this connection should have now.
    pub(crate) fn wanted_interest(&self) -> Interest {
        let read = !self.read_closed && self.draining.is_none();
        Interest::NONE
            .with_read(read)
            .with_write(!self.outbound.is_empty())
    }

    /// Records that `n` more bytes reached the kernel; fires the callbacks whose
    /// bytes are all out.
    fn note_sent(&mut self, n: usize) {
        if let Some(w) = self.waiters.as_mut() {
            w.sent += n as u64;
            while w.waiters.front().is_some_and(|(end, _)| *end <= w.sent) {
                let (_, cb) = w.waiters.pop_front().expect("checked non-empty");
                run_callback(cb, Ok(()));
            }
            if w.waiters.is_empty() {
                self.waiters = None;
            }
        }
    }

    /// Registers `cb` to fire once everything queued now has been sent.
    pub(crate) fn add_waiter(&mut self, cb: WriteCallback) {
        if self.outbound.is_empty() {
            run_callback(cb, Ok(()));
            return;
        }
        let w = self.waiters.get_or_insert_with(|| {
            Box::new(WriteWaiters {
                sent: 0,
                waiters: VecDeque::new(),
            })
        });
        // The callback's bytes are the last ones queued: it fires once everything
        // queued now has been sent.
        let end = w.sent + self.outbound.len() as u64;
        w.waiters.push_back((end, cb));
    }

    /// Fails every pending callback (the connection is closing).
    pub(crate) fn fail_waiters(&mut self) {
        if let Some(w) = self.waiters.take() {
            for (_, cb) in w.waiters {
                run_callback(cb, Err(Error::ConnectionClosed));
            }
        }
    }

    /// Writes as much of the outbound queue as the socket takes.
    pub(crate) fn flush(&mut self, pool: &mut BufferPool) -> io::Result<()> {
        while !self.outbound.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let cnt = self.outbound.io_slices(&mut iov);
            let want: usize = iov[..cnt].iter().map(|s| s.len()).sum();
            let res = if cnt == 1 {
                sys::send(self.raw_fd(), &iov[0])
            } else {
                sys::sendv(self.raw_fd(), &iov[..cnt])
            };
            match res {
                Ok(n) => {
                    self.outbound.consume(n, pool);
                    self.note_sent(n);
                    if n < want {
                        return Ok(()); // the socket buffer is full
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes `bufs` (in order): straight to the socket when nothing is queued, the
    /// rest into the outbound queue.
    pub(crate) fn write_vectored(
        &mut self,
        bufs: &[&[u8]],
        pool: &mut BufferPool,
    ) -> io::Result<()> {
        write_or_queue(self.fd.as_raw_fd(), &mut self.outbound, bufs, pool)
    }

    /// Takes an owned buffer: written directly if possible, the rest queued without
    /// a copy when nothing of it was sent.
    pub(crate) fn write_owned(&mut self, data: Vec<u8>, pool: &mut BufferPool) -> io::Result<()> {
        let mut sent = 0;
        if self.outbound.is_empty() && !data.is_empty() {
            match sys::send(self.raw_fd(), &data) {
                Ok(n) => sent = n,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if sent == 0 {
            if !data.is_empty() {
                self.outbound.push_owned(data);
            }
        } else if sent < data.len() {
            self.outbound.push(&data[sent..], pool);
        }
        Ok(())
    }

    /// Returns every buffer to the pool.
    pub(crate) fn release_buffers(&mut self, pool: &mut BufferPool) {
        self.inbound.release(pool);
        self.outbound.clear(pool);
    }
}

/// Writes `bufs` straight to the socket when nothing is queued, and queues whatever
/// the socket did not take.
#[inline]
fn write_or_queue(
    fd: RawFd,
    outbound: &mut LinkedBuffer,
    bufs: &[&[u8]],
    pool: &mut BufferPool,
) -> io::Result<()> {
    // The hot path — nothing queued, one non-empty buffer (possibly followed by an
    // empty one, as `split()` gives), all taken by the kernel — stays inline.
    if outbound.is_empty() {
        let one = match bufs {
            [a] => Some(*a),
            [a, []] => Some(*a),
            _ => None,
        };
        if let Some(a) = one {
            if a.is_empty() {
                return Ok(());
            }
            if let Ok(n) = sys::send(fd, a) {
                if n == a.len() {
                    return Ok(());
                }
                return queue_rest(outbound, bufs, n, pool);
            }
        }
    }
    write_or_queue_slow(fd, outbound, bufs, pool)
}

/// Queues what is left of `bufs` after the first `skip` bytes were sent.
#[cold]
fn queue_rest(
    outbound: &mut LinkedBuffer,
    bufs: &[&[u8]],
    mut skip: usize,
    pool: &mut BufferPool,
) -> io::Result<()> {
    for b in bufs {
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        outbound.push(&b[skip..], pool);
        skip = 0;
    }
    Ok(())
}

#[cold]
fn write_or_queue_slow(
    fd: RawFd,
    outbound: &mut LinkedBuffer,
    bufs: &[&[u8]],
    pool: &mut BufferPool,
) -> io::Result<()> {
    let mut skip = 0usize;
    if outbound.is_empty() {
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        let Some(first) = nonempty.next() else {
            return Ok(());
        };
        let res = if nonempty.next().is_none() {
            sys::send(fd, first)
        } else {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let mut cnt = 0;
            for b in bufs.iter().filter(|b| !b.is_empty()).take(MAX_IOVECS) {
                iov[cnt] = IoSlice::new(b);
                cnt += 1;
            }
            sys::sendv(fd, &iov[..cnt])
        };
        match res {
            Ok(n) => skip = n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    queue_rest(outbound, bufs, skip, pool)
}

/// The unconsumed inbound bytes: fresh bytes in the loop's read buffer, or the
/// connection's ring, minus the `consumed` prefix.
#[inline]
fn view_of<'b>(
    fresh: Option<(usize, usize)>,
    consumed: usize,
    read_buf: &'b [u8],
    ring: &'b RingBuffer,
) -> (&'b [u8], &'b [u8]) {
    match fresh {
        Some((start, end)) => (&read_buf[(start + consumed).min(end)..end], &[]),
        None => {
            let (a, b) = ring.as_slices();
            if consumed <= a.len() {
                (&a[consumed..], b)
            } else {
                (&b[consumed - a.len()..], &[])
            }
        }
    }
}

/// Turns a write error into the reason the connection will close with.
pub(crate) fn failure(e: &io::Error) -> Box<CloseReason> {
    let copy = match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    };
    Box::new(CloseReason::from_io(copy))
}

fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, Error::ConnectionClosed)
}

/// The writing half of a [`Conn`] split with [`Conn::split`]: writes while the
/// inbound bytes stay borrowed (echoing or forwarding them without a copy).
pub struct Writer<'c> {
    fd: RawFd,
    outbound: &'c mut LinkedBuffer,
    failed: &'c mut Option<Box<CloseReason>>,
    pool: &'c mut BufferPool,
    open: bool,
}

impl Writer<'_> {
    /// Same as [`Conn::write`].
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.writev(&[data])
    }

    /// Same as [`Conn::writev`] (at most 64 buffers per call are gathered).
    #[inline]
    pub fn writev(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        if !self.open || self.failed.is_some() {
            return Err(closed_error());
        }
        if bufs.len() <= MAX_IOVECS {
            let res = write_or_queue(self.fd, self.outbound, bufs, self.pool);
            if let Err(e) = &res {
                *self.failed = Some(failure(e));
            }
            return res;
        }
        for chunk in bufs.chunks(MAX_IOVECS) {
            if let Err(e) = write_or_queue(self.fd, self.outbound, chunk, self.pool) {
                *self.failed = Some(failure(&e));
                return Err(e);
            }
        }
        Ok(())
    }

    /// Bytes queued for sending.
    pub fn outbound_len(&self) -> usize {
        self.outbound.len()
    }
}

/// Loop resources a [`Conn`] borrows while a callback runs.
pub(crate) struct ConnCtx<'a> {
    pub(crate) pool: &'a mut BufferPool,
    pub(crate) read_buf: &'a [u8],
    pub(crate) shared: &'a Arc<LoopShared>,
}

/// A connection, as seen by handler callbacks on its event loop.
///
/// **Inbound**: bytes read from the socket are offered to `on_traffic`; the handler
/// consumes what it handles with [`next`](Conn::next), [`discard`](Conn::discard) or
/// [`read`](Conn::read) and leaves the rest, which stays buffered for next time.
/// Fresh bytes are offered straight from the loop's shared read buffer; only the part
/// left unconsumed is copied into the connection's own (elastic, pooled) buffer.
///
/// **Outbound**: [`write`](Conn::write) goes to the socket at once when nothing is
/// queued; only what the socket does not take is queued, and write interest is
/// registered only while something is queued.
pub struct Conn<'a, S> {
    pub(crate) inner: &'a mut ConnInner<S>,
    pub(crate) ctx: ConnCtx<'a>,
    pub(crate) index: u32,
    pub(crate) gen: u32,
    /// Fresh bytes in `ctx.read_buf` (`None`: the view is the inbound ring).
    pub(crate) fresh: Option<(usize, usize)>,
    /// Bytes of the current view already consumed by the handler.
    pub(crate) consumed: usize,
}

impl<'a, S> Conn<'a, S> {
    pub(crate) fn new(
        inner: &'a mut ConnInner<S>,
        ctx: ConnCtx<'a>,
        index: u32,
        gen: u32,
        fresh: Option<(usize, usize)>,
    ) -> Self {
        Conn {
            inner,
            ctx,
            index,
            gen,
            fresh,
            consumed: 0,
        }
    }

    /// Settles inbound bookkeeping after a callback: consumed bytes leave the ring,
    /// unconsumed fresh bytes are copied into it.
    #[inline]
    pub(crate) fn finish(&mut self) {
        match self.fresh.take() {
            Some((start, end)) => {
                let from = (start + self.consumed).min(end);
                if from < end {
                    self.inner
                        .inbound
                        .push(&self.ctx.read_buf[from..end], self.ctx.pool);
                }
            }
            None => {
                if self.consumed > 0 {
                    self.inner.inbound.consume(self.consumed, self.ctx.pool);
                }
            }
        }
        self.consumed = 0;
    }

    /// The unconsumed inbound bytes as (up to) two slices, zero-copy.
    pub fn inbound(&self) -> (&[u8], &[u8]) {
        self.view()
    }

    fn view(&self) -> (&[u8], &[u8]) {
        view_of(
            self.fresh,
            self.consumed,
            self.ctx.read_buf,
            &self.inner.inbound,
        )
    }

    /// Number of unconsumed inbound bytes.
    pub fn buffered(&self) -> usize {
        match self.fresh {
            Some((start, end)) => (end - start).saturating_sub(self.consumed),
            None => self.inner.inbound.len().saturating_sub(self.consumed),
        }
    }

    /// Makes the first `n` unconsumed bytes contiguous (no allocation: the ring is
    /// rotated in place when its contents wrap).
    fn make_contiguous(&mut self, n: usize) {
        if self.fresh.is_none() && self.inbound().0.len() < n {
            if self.consumed > 0 {
                self.inner.inbound.consume(self.consumed, self.ctx.pool);
                self.consumed = 0;
            }
            self.inner.inbound.make_contiguous();
        }
    }

    /// The next `n` inbound bytes without consuming them, or `None` if fewer are
    /// buffered.
    pub fn peek(&mut self, n: usize) -> Option<&[u8]> {
        if self.buffered() < n {
            return None;
        }
        self.make_contiguous(n);
        Some(&self.inbound().0[..n])
    }

    /// Every unconsumed inbound byte as one slice (rotating the ring if needed).
    pub fn peek_all(&mut self) -> &[u8] {
        let n = self.buffered();
        self.make_contiguous(n);
        self.inbound().0
    }

    /// Consumes and returns the next `n` bytes, or `None` (consuming nothing) if
    /// fewer are buffered.
    pub fn next(&mut self, n: usize) -> Option<&[u8]> {
        if self.buffered() < n {
            return None;
        }
        self.make_contiguous(n);
        self.consumed += n;
        // The slice ends where the view now starts.
        let (start, first) = match self.fresh {
            Some((s, _)) => (s + self.consumed - n, self.ctx.read_buf),
            None => (self.consumed - n, self.inner.inbound.as_slices().0),
        };
        Some(&first[start..start + n])
    }

    /// Drops up to `n` inbound bytes; returns how many were dropped.
    pub fn discard(&mut self, n: usize) -> usize {
        let n = n.min(self.buffered());
        self.consumed += n;
        n
    }

    /// Copies inbound bytes into `dst` and consumes them; returns how many.
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let (a, b) = self.inbound();
        let n1 = a.len().min(dst.len());
        dst[..n1].copy_from_slice(&a[..n1]);
        let n2 = b.len().min(dst.len() - n1);
        dst[n1..n1 + n2].copy_from_slice(&b[..n2]);
        self.consumed += n1 + n2;
        n1 + n2
    }

    /// Splits the connection into its unconsumed inbound bytes (up to two slices,
    /// zero-copy) and a [`Writer`], so the bytes can be written back or forwarded
    /// without copying them first. Consume afterwards with [`discard`](Conn::discard).
    ///
    /// ```no_run
    /// # use netloop::Conn;
    /// # fn echo(conn: &mut Conn<'_, ()>) -> std::io::Result<()> {
    /// let n = conn.buffered();
    /// let ([a, b], mut w) = conn.split();
    /// w.writev(&[a, b])?;
    /// conn.discard(n);
    /// # Ok(()) }
    /// ```
    pub fn split(&mut self) -> ([&[u8]; 2], Writer<'_>) {
        let open = !self.inner.closed && self.inner.draining.is_none();
        let (a, b) = view_of(
            self.fresh,
            self.consumed,
            self.ctx.read_buf,
            &self.inner.inbound,
        );
        let w = Writer {
            fd: self.inner.fd.as_raw_fd(),
            outbound: &mut self.inner.outbound,
            failed: &mut self.inner.failed,
            pool: self.ctx.pool,
            open,
        };
        ([a, b], w)
    }

    fn writer(&mut self) -> Writer<'_> {
        self.split().1
    }

    /// Writes `data`: straight to the socket when nothing is queued, the remainder
    /// into the outbound queue. An error (the peer is gone) also closes the
    /// connection once the callback returns.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.writer().write(data)
    }

    /// Writes several buffers with one gathered `writev` (then queues the rest).
    pub fn writev(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        self.writer().writev(bufs)
    }

    /// Tries to write the outbound queue now (the loop also does it when the
    /// socket becomes writable).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.inner.closed {
            return Err(closed_error());
        }
        let res = self.inner.flush(self.ctx.pool);
        if let Err(e) = &res {
            self.inner.failed = Some(failure(e));
        }
        res
    }

    /// Bytes queued for sending (not yet taken by the kernel).
    pub fn outbound_len(&self) -> usize {
        self.inner.outbound.len()
    }

    /// Closes the connection once the callback returns and what is queued has been
    /// sent (same as returning [`Action::Close`](crate::Action::Close)).
    pub fn close(&mut self) {
        if self.inner.draining.is_none() {
            self.inner.draining = Some(Drain::Local);
        }
    }

    /// The per-connection state.
    pub fn state(&self) -> &S {
        &self.inner.state
    }

    /// The per-connection state, mutably.
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.inner.state
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ConnHandle {
        ConnHandle {
            shared: self.ctx.shared.clone(),
            index: self.index,
            gen: self.gen,
        }
    }

    /// An id unique among this loop's open connections (slot index and generation).
    pub fn id(&self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.index)
    }

    /// Index of the event loop serving this connection.
    pub fn loop_index(&self) -> usize {
        self.ctx.shared.index
    }

    /// The raw socket descriptor (for options netloop does not wrap; do not close it).
    pub fn fd(&self) -> RawFd {
        self.inner.raw_fd()
    }

    /// The socket, for options through `socket2` (`set_nodelay`, `set_keepalive`,
    /// `set_linger`, `set_send_buffer_size`, …).
    pub fn socket(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(&self.inner.fd)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<Addr> {
        to_addr(self.socket().local_addr()?)
    }

    /// The peer's address (asked of the kernel, not stored: idle connections stay small).
    pub fn peer_addr(&self) -> io::Result<Addr> {
        to_addr(self.socket().peer_addr()?)
    }
}

/// Converts a socket2 address into an [`Addr`].
pub(crate) fn to_addr(a: socket2::SockAddr) -> io::Result<Addr> {
    if let Some(sa) = a.as_socket() {
        return Ok(Addr::Tcp(sa));
    }
    match a.as_pathname() {
        Some(p) => Ok(Addr::Unix(p.to_path_buf())),
        None => Ok(Addr::Unix(Default::default())), // unnamed (client-side) Unix socket
    }
}
