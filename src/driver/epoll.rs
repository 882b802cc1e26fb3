//! The readiness driver: Linux epoll.

use super::{Driver, Event, Interest, Trigger};
use crate::sys;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Events one wait returns at most. Fixed on purpose: this driver used to double
/// the array whenever a wait filled it, and with 1,000 busy connections it grew to
/// 1,024, so one round touched the kernel state of a thousand sockets before the
/// first was answered. In `netloop-bench compare`'s 64 B ping-pong cell with 1,000
/// connections that loop ran at 0.86× the floor's msgs/s; capped at 256 it runs at
/// 1.03–1.05× (bench/results/BENCHMARKS.md, BENCHMARKS-h2h.md). A full array makes
/// the loop poll again without blocking.
const EVENTS: usize = 256;

/// An epoll instance plus its event array.
pub(crate) struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// Creates an epoll instance.
    pub(crate) fn new() -> io::Result<Epoll> {
        Ok(Epoll {
            fd: sys::epoll_create()?,
            events: Vec::with_capacity(EVENTS),
        })
    }

    fn flags(interest: Interest, trigger: Trigger) -> u32 {
        let mut f = 0u32;
        if interest.readable() {
            f |= libc::EPOLLIN as u32;
            // EPOLLEXCLUSIVE accepts only IN/OUT/ET/WAKEUP; it is used for listeners,
            // where half-close means nothing anyway.
            if trigger != Trigger::Exclusive {
                f |= libc::EPOLLRDHUP as u32;
            }
        }
        if interest.writable() {
            f |= libc::EPOLLOUT as u32;
        }
        match trigger {
            Trigger::Level => {}
            Trigger::Edge => f |= libc::EPOLLET as u32,
            Trigger::Exclusive => f |= libc::EPOLLEXCLUSIVE as u32,
        }
        f
    }
}

impl Epoll {
    /// `epoll_ctl(op)` for `fd` with the flags of `interest` and `trigger`.
    #[inline]
    fn ctl(
        &self,
        op: libc::c_int,
        fd: RawFd,
        token: u64,
        interest: Interest,
        trigger: Trigger,
    ) -> io::Result<()> {
        sys::epoll_ctl(
            self.fd.as_raw_fd(),
            op,
            fd,
            Self::flags(interest, trigger),
            token,
        )
    }
}

impl Driver for Epoll {
    const COMPLETION: bool = false;

    fn add(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Interest,
        trigger: Trigger,
    ) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest, trigger)
    }

    fn modify(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Interest,
        trigger: Trigger,
    ) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest, trigger)
    }

    fn delete(&mut self, fd: RawFd, _token: u64) -> io::Result<()> {
        sys::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let ms = match timeout {
            None => -1,
            // Round up so a 0.4 ms timer does not turn into a busy zero-timeout poll.
            Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
        };
        match sys::epoll_wait(self.fd.as_raw_fd(), &mut self.events, ms) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn capacity(&self) -> usize {
        self.events.capacity()
    }

    #[inline]
    fn event(&self, i: usize) -> Event {
        let ev = self.events[i];
        Event {
            token: ev.u64,
            bits: ev.events,
            res: 0,
            aux: 0,
            op: super::op::NONE,
        }
    }
}
