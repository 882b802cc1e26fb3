//! The driver: the seam between an event loop and the kernel's I/O interface.
//!
//! An event loop never calls `epoll_*` (or `io_uring_enter`) itself. It asks its
//! [`Driver`] to watch a descriptor, to start an operation, to wait, and then it is
//! told what happened — as a list of [`Event`]s, each carrying the token the loop
//! chose when it asked. Tokens name a slab slot *and its generation* (see
//! `crate::engine::shared`), so an event for a connection that closed in the
//! meantime is recognised as stale and never touches a reused slot.
//!
//! # Two models behind one seam
//!
//! Kernels offer two shapes of asynchronous I/O, and the seam is cut one level above
//! both so that handlers, codecs and protocols never see which one runs:
//!
//! | operation | readiness driver (epoll) | completion driver (io_uring) |
//! |---|---|---|
//! | accept | listener readable → the loop calls `accept4` until `EAGAIN` | a multishot accept: each event carries the new descriptor |
//! | receive | connection readable → the loop `read`s into its **own** shared read buffer | a multishot receive into a **driver-owned** provided-buffer ring: the event names the buffer |
//! | send | the loop `send`s at once from the handler's slices; only what the socket refuses is queued, and write interest waits for room | bytes are queued; the driver submits one send per connection per round, with the wait, and reports how much the kernel took |
//! | wake-up, dials | readiness of an eventfd / a connecting socket | the same readiness, as polls (multishot for the waker, one-shot for a dial) |
//! | close | closing the descriptor removes it | in-flight operations are cancelled; buffers they point at are kept alive until their completions arrive |
//!
//! What the loop does with the *result* is shared: received bytes are lent to the
//! handler in place and only what it leaves unconsumed is copied into the
//! connection's own buffer; sent bytes are consumed from the outbound queue and
//! complete their write callbacks; end-of-stream, errors, water marks, timeouts and
//! close are the same code for both. [`Driver::COMPLETION`] is a constant, so the
//! loop's branches on the model are resolved at compile time: the epoll loop is
//! exactly the readiness loop, at no cost for the seam.
//!
//! # Who owns which bytes
//!
//! - **Inbound.** A readiness driver reads into the loop's shared read buffer
//!   ([`Options::read_buffer_size`](crate::Options::read_buffer_size)); a completion
//!   driver lends a buffer of its ring ([`Driver::received`]) and gets it back with
//!   [`Driver::recycle`] as soon as the handler has seen it. Either way an idle
//!   connection holds no buffer.
//! - **Outbound.** Bytes that are not sent at once live in the connection's
//!   [`LinkedBuffer`](crate::buffer::LinkedBuffer), whose blocks never move. A
//!   completion driver's send points into those blocks, so the loop consumes them
//!   only when the send completes, appends behind them meanwhile, and on close hands
//!   the queue to [`Driver::release`], which keeps it until the kernel is done.
//!
//! # Interest
//!
//! The loop keeps one [`Interest`] per connection, recomputed after every callback:
//! *read* while it wants bytes (not paused, not past the inbound cap, not closing),
//! *write* while something is queued. A readiness driver turns it into an epoll
//! registration, and the loop calls [`Driver::modify`] only when the interest
//! changes. Under a completion driver the same field records what is in flight —
//! "a receive is armed" (and whether it is multishot, and its tag), "a send is in
//! flight" — and the loop arms, cancels and sends through [`Driver::receive`],
//! [`Driver::cancel_receive`] and [`Driver::send`] (see
//! `crate::engine::event_loop`'s completion module).
//!
//! # Where a transport layer sits
//!
//! Between the driver and the handler there is room for one per-listener transport
//! layer (`crate::transport`: TLS records, a PROXY protocol header): received bytes
//! pass through it before `on_traffic`, and what the handler writes passes through
//! it before it is queued or sent. The driver only ever sees wire bytes.
//!
//! # Semantics worth knowing
//! - **Level-triggered** registrations (the default) repeat an event on every wait
//!   while the condition holds, so a loop may read part of what is available and be
//!   told again. **Edge-triggered** ones report each change once: the loop bounds
//!   its reads per wake-up and remembers connections it left with data.
//! - **Spurious events** happen (a readable event whose read says `EAGAIN`); every
//!   consumer treats `EAGAIN` as "nothing to do".
//! - Peer half-close is `read_closed` (`EPOLLRDHUP`); errors and hang-ups arrive
//!   even when not asked for.

mod epoll;
mod uring;

pub(crate) use epoll::Epoll;
pub(crate) use uring::{probe, Uring};

use crate::buffer::{BufferPool, LinkedBuffer};
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

/// What a registration asks for: reading, writing, both or neither.
///
/// Equality compares reading and writing only: the bits a completion driver's
/// connection keeps beside them (see below) never make a connection look changed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Interest(u8);

impl PartialEq for Interest {
    #[inline]
    fn eq(&self, other: &Interest) -> bool {
        (self.0 ^ other.0) & 3 == 0
    }
}
impl Eq for Interest {}

impl Interest {
    /// Readable (and peer half-close).
    pub(crate) const READ: Interest = Interest(1);
    /// Neither: the descriptor stays registered (errors and hang-ups still arrive)
    /// but produces no readiness events.
    pub(crate) const NONE: Interest = Interest(0);

    /// Does this interest include reading?
    pub(crate) fn readable(self) -> bool {
        self.0 & 1 != 0
    }
    /// Does this interest include writing?
    pub(crate) fn writable(self) -> bool {
        self.0 & 2 != 0
    }
    /// This interest with writing added or removed.
    pub(crate) fn with_write(self, on: bool) -> Interest {
        if on {
            Interest(self.0 | 2)
        } else {
            Interest(self.0 & !2)
        }
    }
    /// This interest with reading added or removed.
    pub(crate) fn with_read(self, on: bool) -> Interest {
        if on {
            Interest(self.0 | 1)
        } else {
            Interest(self.0 & !1)
        }
    }

    // A completion driver's connection keeps what it has in flight here: *read* is
    // "a multishot receive is armed", *write* is "a send is in flight", and two
    // more bits follow.

    /// Completion drivers: a send is scheduled for the end of the round.
    pub(crate) fn send_queued(self) -> bool {
        self.0 & 4 != 0
    }
    /// This interest with the scheduled-send bit set or cleared.
    pub(crate) fn with_send_queued(self, on: bool) -> Interest {
        Interest(if on { self.0 | 4 } else { self.0 & !4 })
    }
    /// Completion drivers: which of two alternating tags the armed receive
    /// carries, so the last completions of a cancelled receive are told from those
    /// of its successor.
    pub(crate) fn recv_parity(self) -> bool {
        self.0 & 8 != 0
    }
    /// This interest with the receive tag flipped.
    pub(crate) fn flip_recv_parity(self) -> Interest {
        Interest(self.0 ^ 8)
    }
    /// Completion drivers: the armed receive is a single, bounded one (not
    /// multishot).
    pub(crate) fn recv_bounded(self) -> bool {
        self.0 & 16 != 0
    }
    /// Completion drivers: bytes arrived while the connection was not reading (a
    /// receive's last completions before its cancellation); the handler hears of
    /// them when reading resumes, as it would of bytes waiting in the socket.
    pub(crate) fn unseen(self) -> bool {
        self.0 & 32 != 0
    }
    /// This interest with the unseen-bytes bit set or cleared.
    pub(crate) fn with_unseen(self, on: bool) -> Interest {
        Interest(if on { self.0 | 32 } else { self.0 & !32 })
    }
    /// This interest marking the armed receive bounded or multishot.
    pub(crate) fn with_recv_bounded(self, on: bool) -> Interest {
        Interest(if on { self.0 | 16 } else { self.0 & !16 })
    }
}

/// Kinds of completion events (a completion driver's [`Event::op`]).
pub(crate) mod op {
    /// Not a completion (a readiness event), or one the loop ignores.
    pub(crate) const NONE: u8 = 0;
    /// A multishot receive delivered bytes, reached end of stream or ended.
    pub(crate) const RECV: u8 = 1;
    /// A send completed.
    pub(crate) const SEND: u8 = 2;
    /// A multishot accept produced a connection (or failed).
    pub(crate) const ACCEPT: u8 = 3;
    /// A poll fired: `bits` holds the readiness (the waker, a dial).
    pub(crate) const POLL: u8 = 4;
    /// A receive armed with the alternate tag (see [`super::Interest::recv_parity`]).
    pub(crate) const RECV_ALT: u8 = 5;
}

/// How a registration is triggered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Level-triggered.
    Level,
    /// Edge-triggered.
    Edge,
    /// Level-triggered, and only one of the loops sharing this descriptor is woken
    /// per event (`EPOLLEXCLUSIVE`): for a listener shared by several loops.
    Exclusive,
}

/// What happened, for one token.
///
/// Readiness is in `bits`, in the `poll(2)` encoding (`POLLIN`, `POLLOUT`,
/// `POLLRDHUP`, …), which epoll shares and io_uring's poll operations return as
/// well: a driver hands them over untranslated and the loop tests one mask per
/// question. A completion driver also fills `res` (the operation's result: bytes,
/// a descriptor, or a negative errno), `aux` (its flags: more to come, the buffer
/// a receive filled) and `op` (which operation, see [`op`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    pub(crate) token: u64,
    /// Readiness (poll bits); for an accept completion, the index of the accepted
    /// socket in the driver's list.
    pub(crate) bits: u32,
    /// A completion's result (bytes, a descriptor, `-errno`); 0 for readiness.
    pub(crate) res: i32,
    /// A completion's flags (`IORING_CQE_F_*`); 0 for readiness.
    pub(crate) aux: u32,
    /// The kind of completion ([`op`]); [`op::NONE`] for readiness.
    pub(crate) op: u8,
}

const IN: u32 = libc::EPOLLIN as u32 | libc::EPOLLPRI as u32;
const OUT: u32 = libc::EPOLLOUT as u32;
const RDHUP: u32 = libc::EPOLLRDHUP as u32;
const ERR: u32 = libc::EPOLLERR as u32 | libc::EPOLLHUP as u32;

impl Event {
    /// Bytes can be read — or reading will report why not: set for readable data,
    /// peer half-close, errors and hang-ups alike.
    #[inline]
    pub(crate) fn wants_read(self) -> bool {
        self.bits & (IN | RDHUP | ERR) != 0
    }
    /// The socket can take more bytes.
    #[inline]
    pub(crate) fn writable(self) -> bool {
        self.bits & OUT != 0
    }
    /// The peer shut down its sending side (or the connection is gone).
    #[inline]
    pub(crate) fn read_closed(self) -> bool {
        self.bits & RDHUP != 0
    }
    /// An error is pending on the descriptor (`EPOLLERR`) or it hung up (`EPOLLHUP`).
    #[inline]
    pub(crate) fn error(self) -> bool {
        self.bits & ERR != 0
    }
    /// Completions: more will follow for this multishot operation.
    #[inline]
    pub(crate) fn more(self) -> bool {
        io_uring::cqueue::more(self.aux)
    }
}

/// The kernel I/O interface one event loop runs on. See the [module docs](self).
///
/// Every method runs on the loop's own thread; a driver is never shared.
pub(crate) trait Driver: Sized + 'static {
    /// `false` for readiness drivers (the loop performs reads and sends itself when
    /// told a descriptor is ready); `true` for completion drivers (events report
    /// finished operations). A constant, so the loop's branches on it compile away.
    const COMPLETION: bool;

    /// Starts watching `fd` for `interest` (a completion driver arms the matching
    /// operations: a connection's multishot receive, a poll for a waker or a dial).
    fn add(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Interest,
        trigger: Trigger,
    ) -> io::Result<()>;
    /// Starts accepting on listening socket `fd` (a readiness driver watches it
    /// for readability; a completion driver arms a multishot accept).
    fn listen(&mut self, fd: RawFd, token: u64, trigger: Trigger) -> io::Result<()> {
        self.add(fd, token, Interest::READ, trigger)
    }
    /// Changes what `fd` is watched for.
    fn modify(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Interest,
        trigger: Trigger,
    ) -> io::Result<()>;
    /// Stops watching `fd`, registered under `token` (a completion driver cancels
    /// what it armed). Closing a connection goes through [`release`](Driver::release).
    fn delete(&mut self, fd: RawFd, token: u64) -> io::Result<()>;
    /// Stops accepting on listening socket `fd` for good (the engine retiring,
    /// see `EngineHandle::stop_accepting`). Unlike [`delete`](Driver::delete),
    /// a completion driver still delivers the sockets its accept took before
    /// the cancellation landed — they were accepted, so dropping them would
    /// reset a client that another process would otherwise have served.
    fn unlisten(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        self.delete(fd, token)
    }
    /// Waits for events (`None` = until one arrives), at most [`capacity`] at a
    /// time; a completion driver submits what the round queued in the same call.
    ///
    /// [`capacity`]: Driver::capacity
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize>;
    /// How many events one wait can return at most.
    fn capacity(&self) -> usize;
    /// The `i`th event of the last wait.
    fn event(&self, i: usize) -> Event;

    /// Completion drivers: arms a receive for the connection behind `token` — a
    /// multishot one, or with `limit` a single one of at most that many bytes; its
    /// completions carry the tag `alt` selects (see [`Interest::recv_parity`]).
    fn receive(
        &mut self,
        _fd: RawFd,
        _token: u64,
        _alt: bool,
        _limit: Option<u32>,
    ) -> io::Result<()> {
        Ok(())
    }
    /// Completions drivers: cancels the receive armed with tag `alt`; completions
    /// it already produced still arrive.
    fn cancel_receive(&mut self, _token: u64, _alt: bool) {}
    /// Completion drivers: the bytes a receive event delivered, lent to the loop
    /// until it calls [`recycle`](Driver::recycle). Readiness drivers never deliver
    /// bytes in events (the loop reads into its own buffer).
    fn received(&self, _ev: &Event) -> &[u8] {
        &[]
    }
    /// The same bytes, writable (a transport layer decrypts in place).
    fn received_mut(&mut self, _ev: &Event) -> &mut [u8] {
        &mut []
    }
    /// Completion drivers: takes back the buffer of a receive event (live or stale).
    fn recycle(&mut self, _ev: &Event) {}
    /// Completion drivers: sends what `outbound` holds for the connection behind
    /// `token`, with the next wait. At most one send per connection is in flight;
    /// its completion tells the loop how many bytes to consume. Readiness drivers
    /// never get here: the loop sends itself (see `crate::conn`'s write path).
    fn send(&mut self, _fd: RawFd, _token: u64, _outbound: &LinkedBuffer) -> io::Result<()> {
        Ok(())
    }
    /// Completion drivers: the socket an accept event produced (taken once).
    fn take_accepted(&mut self, _ev: &Event) -> Option<OwnedFd> {
        None
    }
    /// Completion drivers: the outbound queue of a connection that closed with a
    /// send in flight, once that send's (stale) completion has arrived.
    fn reclaim(&mut self, _token: u64) -> Option<LinkedBuffer> {
        None
    }
    /// Completion drivers: submits what is queued without waiting (the last
    /// attempt to send at shutdown).
    fn submit(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// A connection closed: its descriptor and whatever is left of its outbound
    /// queue are handed over, with what it had in flight (`ops`, see
    /// [`Interest`]). A readiness driver closes the descriptor and returns the
    /// blocks to the pool at once; a completion driver first cancels what the
    /// connection has in flight and keeps the blocks until the kernel is done.
    fn release(
        &mut self,
        fd: OwnedFd,
        _token: u64,
        _ops: Interest,
        mut outbound: LinkedBuffer,
        pool: &mut BufferPool,
    ) {
        outbound.clear(pool);
        drop(fd);
    }
}
