//! The poller: the OS readiness interface behind one small trait.
//!
//! An event loop asks its poller to watch descriptors for *interest* (readable,
//! writable or both) and then to *wait* for events. Each registration carries a
//! 64-bit token that comes back with every event, so the loop finds the connection
//! in its slab by index: no map lookup per event.
//!
//! # Semantics worth knowing
//! - **Level-triggered** (the default): an event repeats on every wait while the
//!   condition holds, so a loop may read only part of what is available and be told
//!   again. Simple and fair.
//! - **Edge-triggered** (optional): an event is reported once per change; the loop
//!   must drain readiness (read until `WouldBlock`) or remember that it did not. The
//!   loop bounds each wake-up's reads with a budget and keeps a list of connections
//!   that still have data, so one busy peer cannot starve the others.
//! - **Spurious events** happen (a readable event whose read then says
//!   `WouldBlock`); every consumer treats `WouldBlock` as "nothing to do".
//! - Peer half-close is reported as `read_closed` (`EPOLLRDHUP`), errors and hang-ups
//!   as `error`/`hup`; they are delivered even when not asked for.
//!
//! The trait is shaped so that a completion-based backend (io_uring) can sit
//! beside epoll later: it registers the same tokens, and the loop above speaks of
//! bytes available and bytes queued, never of raw readiness.

mod epoll;

pub(crate) use epoll::Epoll;

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Which readiness a registration asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interest(u8);

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
}

/// How a registration is triggered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Level-triggered.
    Level,
    /// Edge-triggered.
    Edge,
    /// Level-triggered, and only one of the pollers sharing this descriptor is woken
    /// per event (`EPOLLEXCLUSIVE`): for a listener shared by several loops.
    Exclusive,
}

/// One readiness event: the registration's token and the readiness bits.
///
/// The bits use the `poll(2)` encoding (`POLLIN`, `POLLOUT`, `POLLRDHUP`, …), which
/// epoll shares and io_uring's poll operations return as well, so a backend hands
/// them over untranslated and the loop tests one mask per question.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    pub(crate) token: u64,
    pub(crate) bits: u32,
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
}

/// The readiness interface every backend implements.
pub(crate) trait Poller {
    /// Starts watching `fd`.
    fn add(&self, fd: RawFd, token: u64, interest: Interest, trigger: Trigger) -> io::Result<()>;
    /// Changes what `fd` is watched for.
    fn modify(&self, fd: RawFd, token: u64, interest: Interest, trigger: Trigger)
        -> io::Result<()>;
    /// Stops watching `fd`. Closing a descriptor also removes it.
    fn delete(&self, fd: RawFd) -> io::Result<()>;
    /// Waits for events (`None` = until one arrives), at most [`capacity`] at a
    /// time.
    ///
    /// [`capacity`]: Poller::capacity
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize>;
    /// How many events one wait can return at most right now.
    fn capacity(&self) -> usize;
    /// The `i`th event of the last wait.
    fn event(&self, i: usize) -> Event;
}
