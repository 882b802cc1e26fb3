//! The write path: [`Writer`], the one send-or-queue path every write takes
//! ([`send_or_queue`]), the one place bytes leave for the socket ([`transmit`]),
//! and flushing the outbound queue.

use super::loop_io::LoopIo;
use super::state::{Cold, ConnInner};
use super::waiters::note_sent;
use crate::buffer::{BufferPool, LinkedBuffer};
use crate::conn::CloseReason;
use crate::error::Error;
use crate::sys;
use bytes::Bytes;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd};

/// Gathered writes use at most this many iovecs per syscall.
pub(crate) const MAX_IOVECS: usize = 64;

/// Why a write failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The socket failed.
    Io(io::Error),
    /// Queuing the rest would pass `max_outbound_bytes`.
    Overflow,
}

impl WriteError {
    pub(crate) fn close_reason(&self) -> CloseReason {
        match self {
            WriteError::Io(e) => *failure(e),
            WriteError::Overflow => CloseReason::OutboundOverflow,
        }
    }
    pub(crate) fn into_error(self) -> Error {
        match self {
            WriteError::Io(e) => Error::Io(e),
            WriteError::Overflow => Error::OutboundOverflow,
        }
    }
    fn into_io(self) -> io::Error {
        match self {
            WriteError::Io(e) => e,
            WriteError::Overflow => io::Error::other(Error::OutboundOverflow),
        }
    }
}

impl<S> ConnInner<S> {
    /// Writes as much of the outbound queue as the socket takes (readiness drivers;
    /// under a completion driver the loop's driver sends the queue instead, so this
    /// does nothing).
    pub(crate) fn flush(&mut self, io: &mut LoopIo) -> io::Result<()> {
        flush_queue(self.fd.as_fd(), &mut self.outbound, &mut self.cold, io)
    }

    /// `n` bytes of the outbound queue reached the kernel (reported by a
    /// completion driver): consume them, count them, complete the write callbacks
    /// they finish.
    #[allow(dead_code)] // the completion driver's send completions land here
    pub(crate) fn note_transmitted(&mut self, n: usize, io: &mut LoopIo) {
        transmitted(&mut self.outbound, &mut self.cold, io, n);
    }

    /// Queues an owned buffer without copying it (an async write; the loop
    /// flushes after the task batch), unless that would pass `max_out`.
    pub(crate) fn queue_owned(&mut self, data: Bytes, io: &mut LoopIo) -> Result<(), WriteError> {
        if data.is_empty() {
            return Ok(());
        }
        if self.outbound.len() + data.len() > io.flow.max_out {
            return Err(WriteError::Overflow);
        }
        self.outbound.push_bytes(data);
        Ok(())
    }
}

/// Writes as much of `outbound` as the socket takes (a readiness driver's flush).
fn flush_queue(
    fd: BorrowedFd<'_>,
    outbound: &mut LinkedBuffer,
    cold: &mut Option<Box<Cold>>,
    io: &mut LoopIo,
) -> io::Result<()> {
    if !io.inline_sends {
        return Ok(());
    }
    while !outbound.is_empty() {
        let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
        let cnt = outbound.io_slices(&mut iov);
        let want: usize = iov[..cnt].iter().map(|s| s.len()).sum();
        match transmit(fd, &iov[..cnt]) {
            Ok(n) => {
                transmitted(outbound, cold, io, n);
                if n < want {
                    return Ok(()); // the socket buffer is full
                }
            }
            Err(sys::Errno::AGAIN) => return Ok(()),
            Err(sys::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `n` bytes of `outbound` reached the kernel: consume them, count them, and
/// complete the write callbacks they finish.
fn transmitted(
    outbound: &mut LinkedBuffer,
    cold: &mut Option<Box<Cold>>,
    io: &mut LoopIo,
    n: usize,
) {
    outbound.consume(n, &mut io.pool);
    if n > 0 {
        io.tally.bytes_out += n as u64;
        if let Some(c) = cold.as_mut() {
            c.last_tx = io.now;
        }
    }
    note_sent(cold, n);
}

/// The one place bytes leave for a stream socket under a readiness driver: `send`
/// for one slice, `sendmsg` gathering several.
#[inline(always)]
fn transmit(fd: BorrowedFd<'_>, iov: &[IoSlice<'_>]) -> Result<usize, sys::Errno> {
    if let [one] = iov {
        sys::send(fd, one)
    } else {
        sys::sendv(fd, iov)
    }
}

/// Queues what is left of `bufs` after the first `sent` bytes went to the socket,
/// unless that would take the queue past `max_out`.
fn queue_rest(
    outbound: &mut LinkedBuffer,
    bufs: &[&[u8]],
    sent: usize,
    pool: &mut BufferPool,
    max_out: usize,
) -> Result<(), WriteError> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    if sent < total && outbound.len() + (total - sent) > max_out {
        return Err(WriteError::Overflow);
    }
    let mut skip = sent;
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

/// Turns a write error into the reason the connection will close with.
pub(super) fn failure(e: &io::Error) -> Box<CloseReason> {
    Box::new(CloseReason::from_io(super::reason::copy_io_error(e)))
}

pub(super) fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, Error::ConnectionClosed)
}

/// The writing half of a [`Conn`](crate::Conn) split with [`Conn::split`](crate::Conn::split): writes while the
/// inbound bytes stay borrowed (echoing or forwarding them without a copy).
pub struct Writer<'c> {
    pub(super) fd: BorrowedFd<'c>,
    pub(super) outbound: &'c mut LinkedBuffer,
    pub(super) cold: &'c mut Option<Box<Cold>>,
    pub(super) io: &'c mut LoopIo,
    pub(super) mode: WriteMode,
}

/// What a [`Writer`] may do, decided once when it is made.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteMode {
    /// Send at once when nothing is queued (readiness drivers).
    Inline,
    /// Queue everything; the loop's driver sends it (completion drivers).
    Queue,
    /// `on_close` has run: writes are refused.
    Closed,
}

impl std::fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("queued", &self.outbound.len())
            .field("open", &(self.mode != WriteMode::Closed))
            .finish()
    }
}

/// `std::io::Write`, for code that formats into a writer (`write!`, serializers).
/// Every call takes all of `buf` (what the socket refuses is queued, as with
/// [`Writer::write`]); `flush` is a no-op: the loop sends what is queued.
///
/// ```no_run
/// # use netloop::Conn;
/// use std::io::Write;
/// # fn f(conn: &mut Conn<'_, ()>) -> std::io::Result<()> {
/// let (_, mut w) = conn.split();
/// write!(w, "{} bytes buffered\r\n", 42)?;
/// # Ok(()) }
/// ```
impl io::Write for Writer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Writer::write(self, buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Writer::write(self, buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // At most 64 buffers per call, as `writev` gathers (no allocation).
        let mut slices: [&[u8]; 64] = [&[]; 64];
        let n = bufs.len().min(slices.len());
        for (s, b) in slices.iter_mut().zip(bufs) {
            *s = b;
        }
        let slices = &slices[..n];
        Writer::writev(self, slices).map(|()| slices.iter().map(|s| s.len()).sum())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Writer<'_> {
    /// Same as [`Conn::write`](crate::Conn::write).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.writev(&[data])
    }

    /// Same as [`Conn::writev`](crate::Conn::writev) (at most 64 buffers per call are gathered).
    #[inline]
    pub fn writev(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        send_or_queue(self.fd, self.outbound, self.cold, self.io, self.mode, bufs)
    }

    /// Bytes queued for sending.
    pub fn outbound_len(&self) -> usize {
        self.outbound.len()
    }

    /// The connection's peer: a transport layer's view (a PROXY header) first
    /// (for adapters that hold only the writer, such as the framed one).
    pub(crate) fn peer_addr(&self) -> io::Result<crate::Addr> {
        super::peer_addr_of(self.fd, self.layers())
    }

    /// The connection's socket.
    pub(crate) fn socket(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(&self.fd)
    }

    /// The PROXY protocol header, if the connection's listener takes one.
    pub(crate) fn proxy_header(&self) -> Option<&crate::protocol::proxy::ProxyHeader> {
        self.layers()?
            .get::<crate::transport::ProxyLayer>()?
            .header()
    }

    fn layers(&self) -> Option<&crate::transport::Layers> {
        self.cold.as_deref().and_then(|c| c.layers.as_deref())
    }
}

/// The write path every handler write takes: sends at once what the socket takes
/// when nothing is queued (under a readiness driver), queues the rest.
///
/// The common case — nothing queued, no cold state (no failure, no timeout
/// stamps, no transport layer), one non-empty buffer (possibly followed by an empty
/// one, as `split()` gives) that the kernel takes whole — is inline: one `send`
/// and a compare. Everything else, including a partial send or an error,
/// continues out of line with the first attempt's outcome (never sending twice).
#[inline(always)]
fn send_or_queue(
    fd: BorrowedFd<'_>,
    outbound: &mut LinkedBuffer,
    cold: &mut Option<Box<Cold>>,
    io: &mut LoopIo,
    mode: WriteMode,
    bufs: &[&[u8]],
) -> io::Result<()> {
    if mode == WriteMode::Inline && outbound.is_empty() && cold.is_none() {
        if let [a] | [a, []] = bufs {
            if !a.is_empty() {
                let res = transmit(fd, &[IoSlice::new(a)]);
                if let Ok(n) = res {
                    io.tally.bytes_out += n as u64;
                    if n == a.len() {
                        return Ok(());
                    }
                }
                return send_or_queue_slow(fd, outbound, cold, io, mode, bufs, Some(res));
            }
        }
    }
    send_or_queue_slow(fd, outbound, cold, io, mode, bufs, None)
}

/// [`send_or_queue`] past its common case. `first` is the outcome of the send
/// the common case already made (if it made one) for `bufs`. Takes the writer's
/// parts one by one, so the common case keeps them in registers.
#[cold]
#[inline(never)]
fn send_or_queue_slow(
    fd: BorrowedFd<'_>,
    outbound: &mut LinkedBuffer,
    cold: &mut Option<Box<Cold>>,
    io: &mut LoopIo,
    mode: WriteMode,
    bufs: &[&[u8]],
    first: Option<Result<usize, sys::Errno>>,
) -> io::Result<()> {
    let now = io.now;
    let fail = |cold: &mut Option<Box<Cold>>, e: WriteError| {
        cold.get_or_insert_with(|| Cold::new(now, false)).failed = Some(Box::new(e.close_reason()));
        Err(e.into_io())
    };
    if let Some(res) = first {
        // The common case sent and the socket took part of it, none of it, or
        // failed: queue the rest, or report the failure — never send again.
        let sent = match res {
            Ok(n) => n,
            Err(sys::Errno::AGAIN | sys::Errno::INTR) => 0,
            Err(e) => return fail(cold, WriteError::Io(e.into())),
        };
        if sent > 0 {
            if let Some(c) = cold.as_mut() {
                c.last_tx = now;
            }
        }
        return match queue_rest(outbound, bufs, sent, &mut io.pool, io.flow.max_out) {
            Ok(()) => Ok(()),
            Err(e) => fail(cold, e),
        };
    }
    if mode == WriteMode::Closed || cold.as_ref().is_some_and(|c| c.failed.is_some()) {
        return Err(closed_error());
    }
    if let Some(layers) = cold.as_mut().and_then(|c| c.layers.as_deref_mut()) {
        // Through the transport layers (encrypted, framed…) into the queue, then
        // out as far as the socket takes it.
        if let Err(reason) = layers.send(bufs, outbound, &mut io.pool) {
            let e = io::Error::other(reason.to_string());
            cold.get_or_insert_with(|| Cold::new(now, false)).failed = Some(Box::new(reason));
            return Err(e);
        }
        if outbound.len() > io.flow.max_out {
            return fail(cold, WriteError::Overflow);
        }
        return match flush_queue(fd, outbound, cold, io) {
            Ok(()) => Ok(()),
            Err(e) => fail(cold, WriteError::Io(e)),
        };
    }
    for chunk in bufs.chunks(MAX_IOVECS) {
        let mut sent = 0;
        if mode == WriteMode::Inline && outbound.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let mut cnt = 0;
            for b in chunk.iter().filter(|b| !b.is_empty()) {
                iov[cnt] = IoSlice::new(b);
                cnt += 1;
            }
            if cnt == 0 {
                continue;
            }
            match transmit(fd, &iov[..cnt]) {
                Ok(n) => sent = n,
                Err(sys::Errno::AGAIN | sys::Errno::INTR) => {}
                Err(e) => return fail(cold, WriteError::Io(e.into())),
            }
            if sent > 0 {
                io.tally.bytes_out += sent as u64;
                if let Some(c) = cold.as_mut() {
                    c.last_tx = now;
                }
            }
        }
        if let Err(e) = queue_rest(outbound, chunk, sent, &mut io.pool, io.flow.max_out) {
            return fail(cold, e);
        }
    }
    Ok(())
}
