//! The completion driver: Linux io_uring.
//!
//! One ring per loop. What the loop asks for becomes submissions, queued in the
//! ring's submission queue and handed to the kernel together with the next wait,
//! in one `io_uring_enter` (submit-and-wait):
//!
//! | the loop asks | submitted | its completions |
//! |---|---|---|
//! | a connection, to read | one multishot `RECV` selecting from the loop's provided-buffer ring | one per arrival of bytes, naming the buffer; 0 at end of stream |
//! | a send | `SEND` (one block) or `SENDMSG` (several), at most one per connection | bytes taken |
//! | a listener | one multishot `ACCEPT` | one per connection |
//! | the waker, a dial | a `POLL_ADD` (multishot for the waker, one-shot for a dial) | the readiness bits |
//! | stop reading, close | `ASYNC_CANCEL` by user data | `-ECANCELED` for the cancelled operation |
//!
//! # User data
//! Each submission's 64-bit user data is the loop's token (slab index and
//! generation, see `crate::engine::shared`) with the kind of operation in bits
//! 28–30, which tokens leave clear. A completion for a connection that closed in
//! the meantime carries the old generation, so the loop recognises it and only
//! gives back what it holds (a receive buffer, an outbound queue).
//!
//! # Buffers
//! Receives fill buffers of the loop's provided-buffer ring
//! ([`Options::uring_buffers`](crate::Options::uring_buffers) ×
//! [`Options::uring_buffer_size`](crate::Options::uring_buffer_size)); the loop
//! lends each to the handler and gives it back at once. When the ring runs dry a
//! receive ends with `ENOBUFS`; the loop re-arms it after the round, by which time
//! the buffers are back. An idle connection holds no buffer.
//!
//! # Registrations that are not connections
//! The waker, listeners and dials are few; the driver remembers their descriptors
//! and re-arms a multishot operation that ended (the kernel ends one on an error
//! or under memory pressure) before the next submission — unless the loop deleted
//! the registration in between (a listener pausing on `EMFILE`).

use super::{op, Driver, Event, Interest, Trigger};
use crate::buffer::{BufferPool, LinkedBuffer};
use crate::conn::MAX_IOVECS;
use crate::engine::shared::{OP_MASK, OP_SHIFT};
use crate::options::Options;
use crate::sys::uring::{self as sys, Cqe, Ring};
use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

/// Submission-queue slots (a full queue is submitted early, never lost).
const SQ_ENTRIES: u32 = 1024;
/// Completion-queue slots: room for a burst of multishot completions (overflow
/// is kept by the kernel and flushed on the next enter, but costs a slow path).
const CQ_ENTRIES: u32 = 8192;
/// Completions handed to the loop per wait at most. Larger than epoll's 256: a
/// completion is a finished operation, cheap to look at, and every wait costs an
/// `io_uring_enter`, so one round serving a thousand connections should not be
/// split into four.
const EVENTS: usize = 1024;
/// User data of cancellations (their completions are ignored).
const IGNORED: u64 = 7 << OP_SHIFT;

/// The user data of operation `op` for `token`.
#[inline]
fn user_data(token: u64, op: u8) -> u64 {
    token | (u64::from(op) << OP_SHIFT)
}

/// A registration that is not a connection.
struct Reg {
    fd: RawFd,
    kind: Kind,
    /// An operation is in flight for it.
    armed: bool,
    /// A listener that stopped accepting for good (`unlisten`): never re-armed;
    /// what its cancelled accept still delivers goes to the loop, and its final
    /// completion removes it.
    retired: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A listener: multishot accept.
    Accept,
    /// Readable, multishot poll (the waker).
    PollIn,
    /// Writable, one-shot poll (a dial).
    PollOut,
}

impl Kind {
    fn op(self) -> u8 {
        match self {
            Kind::Accept => op::ACCEPT,
            Kind::PollIn | Kind::PollOut => op::POLL,
        }
    }
}

/// An io_uring instance, its provided-buffer ring and the completions of the
/// last wait.
pub(crate) struct Uring {
    ring: Ring,
    cqes: Vec<Cqe>,
    /// Sockets accepted in the last wait, by event index, until the loop takes
    /// them (the rest are closed by the next wait).
    accepted: Vec<Option<OwnedFd>>,
    regs: HashMap<u64, Reg>,
    /// Outbound queues of closed connections whose send is still in flight.
    graveyard: HashMap<u64, LinkedBuffer>,
    /// Completions dropped by the kernel so far (reported once).
    dropped: u32,
    /// A multishot registration's operation ended since the last re-arm.
    ended: bool,
    /// Descriptors of released connections, closed once the next wait has
    /// submitted what still names them: a receive armed in the same round as the
    /// close must not find the number free (or reused by a new connection).
    closing: Vec<OwnedFd>,
}

/// Checks that this kernel offers what the io_uring backend needs (see
/// [`Backend::Auto`](crate::Backend::Auto)); `Err` says what is missing.
///
/// `NETLOOP_REFUSE_IO_URING=1` in the environment makes the probe fail, as a
/// kernel with `kernel.io_uring_disabled` or a seccomp profile would: for tests of
/// the fallback and for operators who want epoll without a rebuild.
///
/// The probe ring is created on a thread of its own: a thread that used a ring
/// is later sent task work (with a signal notification) when the ring is torn
/// down, which interrupts its blocking socket calls that have a timeout
/// (`EINTR`). The caller's thread — the application's — is left alone.
pub(crate) fn probe() -> Result<(), String> {
    if std::env::var_os("NETLOOP_REFUSE_IO_URING").is_some_and(|v| v != "0" && !v.is_empty()) {
        return Err("refused by NETLOOP_REFUSE_IO_URING".into());
    }
    std::thread::Builder::new()
        .name("netloop-uring-probe".into())
        .spawn(Ring::probe)
        .map_err(|e| format!("could not start the probe thread: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("the io_uring probe panicked".into()))
}

impl Uring {
    /// Creates a ring and its provided-buffer ring, sized by `opts`.
    pub(crate) fn new(opts: &Options) -> io::Result<Uring> {
        let mut ring = Ring::new(SQ_ENTRIES, CQ_ENTRIES)?;
        ring.setup_buffers(opts.uring_buffers as u16, opts.uring_buffer_size as u32)?;
        Ok(Uring {
            ring,
            cqes: Vec::with_capacity(EVENTS),
            accepted: Vec::new(),
            regs: HashMap::new(),
            graveyard: HashMap::new(),
            dropped: 0,
            ended: false,
            closing: Vec::new(),
        })
    }

    /// Arms registration `token` again if its operation ended.
    fn arm(&mut self, token: u64) -> io::Result<()> {
        let Some(reg) = self.regs.get_mut(&token) else {
            return Ok(());
        };
        if reg.armed || reg.retired {
            return Ok(());
        }
        let ud = user_data(token, reg.kind.op());
        match reg.kind {
            Kind::Accept => self.ring.accept_multi(reg.fd, ud)?,
            Kind::PollIn => self.ring.poll(reg.fd, libc::POLLIN as u32, true, ud)?,
            Kind::PollOut => self.ring.poll(reg.fd, libc::POLLOUT as u32, false, ud)?,
        }
        reg.armed = true;
        Ok(())
    }

    fn register(&mut self, fd: RawFd, token: u64, kind: Kind) -> io::Result<()> {
        self.regs.insert(
            token,
            Reg {
                fd,
                kind,
                armed: false,
                retired: false,
            },
        );
        self.arm(token).inspect_err(|_| {
            self.regs.remove(&token);
        })
    }

    /// Multishot registrations whose operation ended are armed again.
    fn rearm(&mut self) {
        if !std::mem::take(&mut self.ended) {
            return;
        }
        let ended: Vec<u64> = self
            .regs
            .iter()
            .filter(|(_, r)| !r.armed && !r.retired && r.kind != Kind::PollOut)
            .map(|(t, _)| *t)
            .collect();
        for t in ended {
            if let Err(e) = self.arm(t) {
                tracing::error!(error = %e, "io_uring: could not re-arm a listener or waker");
                self.ended = true; // tried again next round
            }
        }
    }

    /// Bookkeeping for one reaped completion; `false` when the loop need not see it.
    fn note(&mut self, c: &Cqe) -> bool {
        if c.user_data == IGNORED {
            return false;
        }
        let kind = ((c.user_data & OP_MASK) >> OP_SHIFT) as u8;
        if kind == op::ACCEPT || kind == op::POLL {
            let token = c.user_data & !OP_MASK;
            match self.regs.get_mut(&token) {
                // A retired listener: accepted sockets go on to the loop, the
                // rest (the cancellation's -ECANCELED) is its end.
                Some(r) if r.retired => {
                    if !c.more() {
                        self.regs.remove(&token);
                    }
                    return c.res >= 0;
                }
                Some(r) if !c.more() => {
                    r.armed = false;
                    self.ended = true;
                }
                Some(_) => {}
                // Deleted since: a cancelled operation's last word, or a socket
                // accepted just before the cancellation, closed here.
                None => {
                    if kind == op::ACCEPT && c.res >= 0 {
                        drop(sys::accepted(c.res));
                    }
                    return false;
                }
            }
        }
        true
    }
}

impl Driver for Uring {
    const COMPLETION: bool = true;

    fn add(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Interest,
        _trigger: Trigger,
    ) -> io::Result<()> {
        if token & crate::engine::shared::NOT_CONN_BIT == 0 {
            // A connection: ConnInner starts with a receive armed (tag 0).
            return if interest.readable() {
                self.receive(fd, token, false, None)
            } else {
                Ok(())
            };
        }
        let kind = if interest.writable() {
            Kind::PollOut
        } else {
            Kind::PollIn
        };
        self.register(fd, token, kind)
    }

    fn listen(&mut self, fd: RawFd, token: u64, _trigger: Trigger) -> io::Result<()> {
        self.register(fd, token, Kind::Accept)
    }

    fn modify(
        &mut self,
        _fd: RawFd,
        _token: u64,
        _interest: Interest,
        _trigger: Trigger,
    ) -> io::Result<()> {
        // Connections change what they have in flight through `receive`,
        // `cancel_receive` and `send` (see `EventLoop::settle_ops`).
        Ok(())
    }

    fn delete(&mut self, _fd: RawFd, token: u64) -> io::Result<()> {
        if let Some(reg) = self.regs.remove(&token) {
            if reg.armed {
                self.ring.cancel(user_data(token, reg.kind.op()), IGNORED)?;
            }
        }
        Ok(())
    }

    fn unlisten(&mut self, _fd: RawFd, token: u64) -> io::Result<()> {
        match self.regs.get_mut(&token) {
            Some(reg) if reg.armed && !reg.retired => {
                reg.retired = true;
                self.ring.cancel(user_data(token, reg.kind.op()), IGNORED)
            }
            Some(_) => {
                self.regs.remove(&token);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        self.cqes.clear();
        // Sockets accepted last round that no listener took are closed here.
        self.accepted.clear();
        self.rearm();
        if !self.closing.is_empty() {
            // Submitted first, so operations on released sockets hold their own
            // references; then the descriptors close before the loop blocks.
            self.ring.submit()?;
            if self.ring.unsubmitted() == 0 {
                self.closing.clear();
            }
        }
        self.ring.submit_and_wait(timeout)?;
        let mut raw = std::mem::take(&mut self.cqes);
        self.ring.reap(&mut raw, EVENTS);
        raw.retain(|c| self.note(c));
        self.cqes = raw;
        // Accepted sockets are owned from here on: closed if no listener takes them.
        self.accepted.extend(self.cqes.iter().map(|c| {
            let accept = (c.user_data & OP_MASK) >> OP_SHIFT == u64::from(op::ACCEPT);
            (accept && c.res >= 0).then(|| sys::accepted(c.res))
        }));
        let dropped = self.ring.dropped();
        if dropped != self.dropped {
            tracing::error!(
                dropped,
                "io_uring dropped completions (completion queue overflow without NODROP)"
            );
            self.dropped = dropped;
        }
        Ok(self.cqes.len())
    }

    fn capacity(&self) -> usize {
        EVENTS
    }

    #[inline]
    fn event(&self, i: usize) -> Event {
        let c = self.cqes[i];
        let mut kind = ((c.user_data & OP_MASK) >> OP_SHIFT) as u8;
        let mut bits = 0;
        match kind {
            op::POLL => bits = c.res.max(0) as u32,
            op::ACCEPT => bits = i as u32,
            op::RECV | op::SEND | op::RECV_ALT => {}
            _ => kind = op::NONE,
        }
        Event {
            token: c.user_data & !OP_MASK,
            bits,
            res: c.res,
            aux: c.flags,
            op: kind,
        }
    }

    fn receive(&mut self, fd: RawFd, token: u64, alt: bool, limit: Option<u32>) -> io::Result<()> {
        let kind = if alt { op::RECV_ALT } else { op::RECV };
        match limit {
            None => self.ring.recv_multi(fd, user_data(token, kind)),
            Some(len) => self.ring.recv_one(fd, len, user_data(token, kind)),
        }
    }

    fn cancel_receive(&mut self, token: u64, alt: bool) {
        let kind = if alt { op::RECV_ALT } else { op::RECV };
        if let Err(e) = self.ring.cancel(user_data(token, kind), IGNORED) {
            tracing::error!(error = %e, "io_uring: could not cancel a receive");
        }
    }

    #[inline]
    fn received(&self, ev: &Event) -> &[u8] {
        match io_uring::cqueue::buffer_select(ev.aux) {
            Some(bid) if ev.res > 0 => self.ring.buffer(bid, ev.res as usize),
            _ => &[],
        }
    }

    fn received_mut(&mut self, ev: &Event) -> &mut [u8] {
        match io_uring::cqueue::buffer_select(ev.aux) {
            Some(bid) if ev.res > 0 => self.ring.buffer_mut(bid, ev.res as usize),
            _ => &mut [],
        }
    }

    #[inline]
    fn recycle(&mut self, ev: &Event) {
        if let Some(bid) = io_uring::cqueue::buffer_select(ev.aux) {
            self.ring.recycle(bid);
        }
    }

    fn send(&mut self, fd: RawFd, token: u64, outbound: &LinkedBuffer) -> io::Result<()> {
        if outbound.block_count() == 1 {
            // The common case: one block, one `send`.
            let one = [IoSlice::new(outbound.front())];
            return self.ring.send(fd, &one, user_data(token, op::SEND));
        }
        let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
        let n = outbound.io_slices(&mut iov);
        if n == 0 {
            return Ok(());
        }
        self.ring.send(fd, &iov[..n], user_data(token, op::SEND))
    }

    fn take_accepted(&mut self, ev: &Event) -> Option<OwnedFd> {
        if ev.op != op::ACCEPT {
            return None;
        }
        self.accepted.get_mut(ev.bits as usize)?.take()
    }

    fn reclaim(&mut self, token: u64) -> Option<LinkedBuffer> {
        if self.graveyard.is_empty() {
            return None;
        }
        self.graveyard.remove(&token)
    }

    fn submit(&mut self) -> io::Result<()> {
        self.ring.submit()?;
        if self.ring.unsubmitted() == 0 {
            self.closing.clear();
        }
        Ok(())
    }

    fn release(
        &mut self,
        fd: OwnedFd,
        token: u64,
        ops: Interest,
        mut outbound: LinkedBuffer,
        pool: &mut BufferPool,
    ) {
        if ops.readable() {
            self.cancel_receive(token, ops.recv_parity());
        }
        if ops.writable() {
            // The send points into these blocks: they wait for its completion.
            if let Err(e) = self.ring.cancel(user_data(token, op::SEND), IGNORED) {
                tracing::error!(error = %e, "io_uring: could not cancel a send");
            }
            self.graveyard.insert(token, outbound);
        } else {
            outbound.clear(pool);
        }
        // Closed after the next submission (see `closing`); in-flight operations
        // hold their own reference to the socket, which closes once they end.
        self.closing.push(fd);
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // Every operation ends before the buffers and queues it points at go.
        self.ring.cancel_all(|c| {
            let kind = ((c.user_data & OP_MASK) >> OP_SHIFT) as u8;
            if kind == op::ACCEPT && c.res >= 0 && c.user_data != IGNORED {
                drop(sys::accepted(c.res));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    const CONN: u64 = 5; // slab index 5, generation 0

    fn driver(buffers: usize) -> Option<Uring> {
        if let Err(why) = probe() {
            eprintln!("note: io_uring unavailable ({why}); skipped");
            return None;
        }
        let opts = Options {
            uring_buffers: buffers,
            uring_buffer_size: 512,
            ..Options::default()
        };
        Some(Uring::new(&opts).unwrap())
    }

    /// Waits until at least one event arrives (bounded).
    fn events(d: &mut Uring) -> Vec<Event> {
        for _ in 0..50 {
            let n = d.wait(Some(Duration::from_millis(100))).unwrap();
            if n > 0 {
                return (0..n).map(|i| d.event(i)).collect();
            }
        }
        panic!("no completion within 5 s");
    }

    #[test]
    fn multishot_receive_lends_buffers_until_recycled_then_reports_end_of_stream() {
        let Some(mut d) = driver(4) else { return };
        let (mut peer, sock) = UnixStream::pair().unwrap();
        d.add(sock.as_raw_fd(), CONN, Interest::READ, Trigger::Level)
            .unwrap();
        for msg in [&b"first"[..], b"second"] {
            peer.write_all(msg).unwrap();
            let ev = events(&mut d)[0];
            assert_eq!(
                (ev.op, ev.token, ev.res as usize),
                (op::RECV, CONN, msg.len())
            );
            assert!(ev.more(), "the receive stays armed");
            assert_eq!(d.received(&ev), msg);
            d.recycle(&ev);
        }
        drop(peer);
        let ev = events(&mut d)[0];
        assert_eq!((ev.op, ev.res), (op::RECV, 0));
        assert!(!ev.more());
    }

    #[test]
    fn a_dry_buffer_ring_ends_the_receive_with_enobufs_and_a_rearm_resumes() {
        let Some(mut d) = driver(2) else { return };
        let (mut peer, sock) = UnixStream::pair().unwrap();
        d.add(sock.as_raw_fd(), CONN, Interest::READ, Trigger::Level)
            .unwrap();
        // Three buffers' worth while the loop holds on to what it was lent.
        let data: Vec<u8> = (0..1536u32).map(|i| i as u8).collect();
        peer.write_all(&data).unwrap();
        let mut held = Vec::new();
        let mut got = Vec::new();
        let mut ended = None;
        while ended.is_none() {
            for ev in events(&mut d) {
                if ev.res > 0 {
                    got.extend_from_slice(d.received(&ev));
                    held.push(ev);
                } else {
                    ended = Some(ev.res);
                }
            }
        }
        assert_eq!(ended, Some(-libc::ENOBUFS));
        assert_eq!(
            got.len(),
            1024,
            "both buffers filled, then the ring ran dry"
        );
        for ev in &held {
            d.recycle(ev);
        }
        d.receive(sock.as_raw_fd(), CONN, true, None).unwrap();
        let ev = events(&mut d)[0];
        assert_eq!(ev.op, op::RECV_ALT);
        got.extend_from_slice(d.received(&ev));
        d.recycle(&ev);
        assert_eq!(got, data, "nothing lost, in order");
    }

    #[test]
    fn a_bounded_receive_takes_at_most_its_limit() {
        let Some(mut d) = driver(4) else { return };
        let (mut peer, sock) = UnixStream::pair().unwrap();
        d.receive(sock.as_raw_fd(), CONN, false, Some(3)).unwrap();
        peer.write_all(b"abcdef").unwrap();
        let ev = events(&mut d)[0];
        assert_eq!(d.received(&ev), b"abc");
        assert!(!ev.more(), "a single receive");
        d.recycle(&ev);
    }

    #[test]
    fn a_send_in_flight_at_release_keeps_its_blocks_until_its_completion() {
        let Some(mut d) = driver(4) else { return };
        let (mut peer, sock) = UnixStream::pair().unwrap();
        let mut pool = BufferPool::default();
        let mut out = LinkedBuffer::new();
        out.push(b"queued ", &mut pool);
        out.push_owned(b"and owned".to_vec());
        d.send(sock.as_raw_fd(), CONN, &out).unwrap();
        // Closed before the wait that submits the send.
        d.release(
            sock.into(),
            CONN,
            Interest::NONE.with_write(true),
            out,
            &mut pool,
        );
        assert!(d.reclaim(CONN + 1).is_none());
        let ev = events(&mut d)[0];
        assert_eq!(ev.op, op::SEND);
        let mut back = d.reclaim(ev.token).expect("kept until the completion");
        assert!(d.reclaim(ev.token).is_none());
        back.clear(&mut pool);
        if ev.res > 0 {
            let mut buf = vec![0u8; ev.res as usize];
            peer.read_exact(&mut buf).unwrap();
            assert_eq!(&b"queued and owned"[..buf.len()], &buf[..]);
        }
    }

    #[test]
    fn multishot_accept_hands_over_each_connection_once() {
        let Some(mut d) = driver(4) else { return };
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let token = crate::engine::shared::LISTENER_TOKEN;
        d.listen(l.as_raw_fd(), token, Trigger::Level).unwrap();
        let addr = l.local_addr().unwrap();
        let _a = std::net::TcpStream::connect(addr).unwrap();
        let _b = std::net::TcpStream::connect(addr).unwrap();
        let mut fds = Vec::new();
        while fds.len() < 2 {
            let evs = events(&mut d);
            for ev in evs {
                assert_eq!((ev.op, ev.token), (op::ACCEPT, token));
                assert!(ev.more());
                fds.push(d.take_accepted(&ev).expect("a socket"));
                assert!(d.take_accepted(&ev).is_none(), "taken once");
            }
        }
        d.delete(l.as_raw_fd(), token).unwrap();
    }
}
