//! The write path: [`Writer`], the one send-or-queue path every write takes,
//! and flushing the outbound queue.

use super::loop_io::LoopIo;
use super::state::{Cold, ConnInner};
use crate::buffer::{BufferPool, LinkedBuffer};
use crate::conn::CloseReason;
use crate::error::Error;
use crate::sys;
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
    /// Writes as much of the outbound queue as the socket takes.
    pub(crate) fn flush(&mut self, io: &mut LoopIo) -> io::Result<()> {
        while !self.outbound.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let cnt = self.outbound.io_slices(&mut iov);
            let want: usize = iov[..cnt].iter().map(|s| s.len()).sum();
            let res = if cnt == 1 {
                sys::send(self.fd.as_fd(), &iov[0])
            } else {
                sys::sendv(self.fd.as_fd(), &iov[..cnt])
            };
            match res {
                Ok(n) => {
                    self.outbound.consume(n, &mut io.pool);
                    if n > 0 {
                        io.tally.bytes_out += n as u64;
                        self.stamp_tx(io.now);
                    }
                    self.note_sent(n);
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

    /// Queues an owned buffer without copying it (an async write; the loop
    /// flushes after the task batch), unless that would pass `max_out`.
    pub(crate) fn queue_owned(&mut self, data: Vec<u8>, io: &mut LoopIo) -> Result<(), WriteError> {
        if data.is_empty() {
            return Ok(());
        }
        if self.outbound.len() + data.len() > io.flow.max_out {
            return Err(WriteError::Overflow);
        }
        self.outbound.push_owned(data);
        Ok(())
    }
}

/// Writes `bufs` (at most `MAX_IOVECS`) straight to the socket when nothing is
/// queued, and queues whatever the socket did not take. Returns how many bytes
/// went straight to the socket. Refuses (queuing nothing more) when the queue
/// would pass `max_out`.
fn write_or_queue(
    fd: BorrowedFd<'_>,
    outbound: &mut LinkedBuffer,
    bufs: &[&[u8]],
    pool: &mut BufferPool,
    max_out: usize,
) -> Result<usize, WriteError> {
    let mut sent = 0usize;
    if outbound.is_empty() {
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        let Some(first) = nonempty.next() else {
            return Ok(0);
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
            Ok(n) => sent = n,
            Err(sys::Errno::AGAIN | sys::Errno::INTR) => {}
            Err(e) => return Err(WriteError::Io(e.into())),
        }
    }
    queue_rest(outbound, bufs, sent, pool, max_out)
}

/// Queues what is left of `bufs` after the first `sent` bytes went to the socket,
/// unless that would take the queue past `max_out`. Returns `sent`.
#[cold]
fn queue_rest(
    outbound: &mut LinkedBuffer,
    bufs: &[&[u8]],
    sent: usize,
    pool: &mut BufferPool,
    max_out: usize,
) -> Result<usize, WriteError> {
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
    Ok(sent)
}

/// Turns a write error into the reason the connection will close with.
pub(super) fn failure(e: &io::Error) -> Box<CloseReason> {
    let copy = match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    };
    Box::new(CloseReason::from_io(copy))
}

pub(super) fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, Error::ConnectionClosed)
}

/// The writing half of a [`Conn`] split with [`Conn::split`]: writes while the
/// inbound bytes stay borrowed (echoing or forwarding them without a copy).
pub struct Writer<'c> {
    pub(super) fd: BorrowedFd<'c>,
    pub(super) outbound: &'c mut LinkedBuffer,
    pub(super) cold: &'c mut Option<Box<Cold>>,
    pub(super) io: &'c mut LoopIo,
    pub(super) open: bool,
}

impl Writer<'_> {
    /// Same as [`Conn::write`].
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.writev(&[data])
    }

    /// Same as [`Conn::writev`] (at most 64 buffers per call are gathered).
    #[inline]
    pub fn writev(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        // The hot path: open, nothing queued, no cold state (no failure, no
        // timeout stamps), one non-empty buffer (possibly followed by an empty
        // one, as `split()` gives) that the kernel takes whole. Everything else,
        // including a partial send, continues out of line.
        let mut sent = 0;
        if self.open && self.outbound.is_empty() && self.cold.is_none() {
            if let [a] | [a, []] = bufs {
                if !a.is_empty() {
                    if let Ok(n) = sys::send(self.fd, a) {
                        self.io.tally.bytes_out += n as u64;
                        if n == a.len() {
                            return Ok(());
                        }
                        sent = n;
                    }
                }
            }
        }
        writev_slow(
            self.fd,
            self.outbound,
            self.cold,
            self.io,
            self.open,
            bufs,
            sent,
        )
    }

    /// Bytes queued for sending.
    pub fn outbound_len(&self) -> usize {
        self.outbound.len()
    }
}

/// [`Writer::writev`] past its hot path; `sent` bytes of `bufs` already went to
/// the socket. Takes the writer's parts one by one, so the hot path keeps them in
/// registers.
#[cold]
#[inline(never)]
fn writev_slow(
    fd: BorrowedFd<'_>,
    outbound: &mut LinkedBuffer,
    cold: &mut Option<Box<Cold>>,
    io: &mut LoopIo,
    open: bool,
    bufs: &[&[u8]],
    sent: usize,
) -> io::Result<()> {
    let now = io.now;
    let fail = |cold: &mut Option<Box<Cold>>, e: WriteError| {
        cold.get_or_insert_with(|| Cold::new(now, false)).failed = Some(e.close_reason());
        Err(e.into_io())
    };
    if sent > 0 {
        // The hot path's send was partial: queue the rest.
        if let Some(c) = cold.as_mut() {
            c.last_tx = now;
        }
        return match queue_rest(outbound, bufs, sent, &mut io.pool, io.flow.max_out) {
            Ok(_) => Ok(()),
            Err(e) => fail(cold, e),
        };
    }
    if !open || cold.as_ref().is_some_and(|c| c.failed.is_some()) {
        return Err(closed_error());
    }
    for chunk in bufs.chunks(MAX_IOVECS) {
        match write_or_queue(fd, outbound, chunk, &mut io.pool, io.flow.max_out) {
            Ok(0) => {}
            Ok(n) => {
                io.tally.bytes_out += n as u64;
                if let Some(c) = cold.as_mut() {
                    c.last_tx = now;
                }
            }
            Err(e) => return fail(cold, e),
        }
    }
    Ok(())
}
