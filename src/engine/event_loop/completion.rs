//! The loop under a completion driver (io_uring): what it does with each
//! completion, and how it keeps each connection's operations in flight.
//!
//! The readiness loop asks "can I read?" and then reads; here the kernel has
//! already read, accepted or sent when the loop hears of it. Everything after
//! that is the readiness loop's own code: received bytes go through
//! [`deliver`](EventLoop::deliver) (or the transport layers), sent bytes through
//! `ConnInner::note_transmitted`, and `settle` decides what the connection wants
//! next — which [`settle_ops`](EventLoop::settle_ops) turns into operations:
//!
//! - **Receive.** One multishot receive is armed while the connection wants bytes.
//!   Pausing, the inbound cap and closing cancel it; bytes it delivered before the
//!   cancellation took effect are buffered, never dropped. A receive the kernel
//!   ended (`ENOBUFS` when the buffer ring ran dry, memory pressure) is re-armed.
//!   Receives alternate between two tags, so the last completions of a cancelled
//!   one are never mistaken for its successor's. Under pressure (near the
//!   inbound cap, or more queued outbound than the low water mark) the
//!   multishot receive gives way to single receives bounded by the room left, one
//!   at a time, so the cap and the water marks hold as they do under epoll; bytes
//!   the multishot receive had already taken are kept.
//! - **Send.** A connection with bytes queued and no send in flight is listed;
//!   just before the wait the loop submits one send per listed connection, so the
//!   writes of a whole round leave with the wait's `io_uring_enter`. The send
//!   points into the outbound queue, which is consumed only when it completes (a
//!   partial send continues with the next); ordering holds because at most one is
//!   in flight.

use super::*;
use crate::driver::{op, Event, Uring};
use crate::engine::dialer::is_dial_token;

/// Below this much room under the inbound cap a connection reads with bounded
/// single receives: what a multishot receive delivers before its cancellation
/// takes effect (one round's worth, a few buffers) must fit.
const PRESSURE_ROOM: usize = 256 * 1024;

impl<H: EventHandler> EventLoop<H, Uring> {
    /// Runs a loop on io_uring on the current thread until it is stopped.
    pub(crate) fn run_uring(
        setup: LoopSetup,
        make_handler: impl FnOnce(usize) -> H,
    ) -> io::Result<()> {
        let opts = setup.opts.clone();
        EventLoop::<H, Uring>::run(setup, move || Uring::new(&opts), make_handler)
    }
}

impl<H: EventHandler, D: Driver> EventLoop<H, D> {
    /// One completion. Returns whether it was the waker's.
    #[inline]
    pub(super) fn on_completion(&mut self, ev: Event) -> bool {
        match ev.op {
            op::RECV | op::RECV_ALT => self.on_received(ev),
            op::SEND => self.on_sent(ev),
            op::ACCEPT => self.on_accepted(ev),
            op::POLL if ev.token == WAKER_TOKEN => return true,
            op::POLL if is_dial_token(ev.token) => self.on_dial_ready(ev.token),
            _ => {}
        }
        false
    }

    /// A receive completion: bytes, end of stream, or the end of the receive.
    #[inline]
    fn on_received(&mut self, ev: Event) {
        let (index, gen) = (ev.token as u32, (ev.token >> 32) as u32);
        let Some(c) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())
            .filter(|c| c.gen == gen)
        else {
            self.driver.recycle(&ev); // closed since: only the buffer matters
            return;
        };
        // The receive armed now (not a cancelled one's late word) ended: the
        // next settle re-arms it if the connection still wants bytes.
        let current = c.interest.readable() && (ev.op == op::RECV_ALT) == c.interest.recv_parity();
        if current && !ev.more() {
            c.interest = c.interest.with_read(false);
        }
        if ev.res > 0 {
            if c.reads_plain(&self.io.flow) {
                let res = Self::deliver(
                    c,
                    &mut self.io,
                    &mut self.handler,
                    index,
                    gen,
                    self.driver.received(&ev),
                );
                self.driver.recycle(&ev);
                if let Some(res) = res {
                    self.after_callback_slow(index, res);
                }
            } else {
                self.received_slow(index, gen, ev);
            }
            return;
        }
        match ev.res {
            0 => self.on_received_eof(index, gen),
            e if e == -libc::ECANCELED => {}
            e if e == -libc::ENOBUFS => {
                // The buffer ring ran dry; the buffers are back by the time the
                // re-armed receive is submitted.
                tracing::trace!("receive ended for want of buffers; re-arming");
                self.settle(index);
            }
            e if e == -libc::EINTR || e == -libc::EAGAIN => self.settle(index),
            e => self.close(
                index,
                CloseReason::from_io(io::Error::from_raw_os_error(-e)),
            ),
        }
    }

    /// End of stream. A completion batch can carry a connection's last bytes and
    /// its end together, where epoll sees the end one round later — after the
    /// tasks queued meanwhile (an async write from `on_traffic`, say) have run.
    /// Those tasks run first here too, so they meet the connection as they would
    /// under epoll, before it starts closing.
    #[cold]
    fn on_received_eof(&mut self, index: u32, gen: u32) {
        if self.io.shared.queue.is_notified() {
            self.run_tasks();
        }
        if !self.is_live(index, gen) {
            return;
        }
        let lingering = self.slots[index as usize]
            .conn
            .as_mut()
            .filter(|c| c.is(flag::LINGERING));
        if let Some(c) = lingering {
            // The peer's end of stream ends a lingering close.
            let d = c.draining.unwrap_or(Drain::Local);
            let reason = c.drain_reason(d);
            return self.close(index, reason);
        }
        let flow = &self.io.flow;
        if let Some(c) = self.slots[index as usize].conn.as_mut() {
            if !c.wants_read(flow) || c.interest.unseen() {
                // Reading is off (paused, or replies backed up) or bytes it kept
                // are still unseen by the handler: the end waits behind them, as
                // under epoll, which does not read a paused socket. A socket's end
                // of stream is sticky, so the receive armed when reading resumes
                // (after the kept bytes are delivered) reports it again.
                tracing::trace!("end of stream deferred until reading resumes");
                return self.settle(index);
            }
        }
        self.on_eof(index);
    }

    /// Received bytes for a connection that is layered, or not reading any more.
    #[cold]
    #[inline(never)]
    fn received_slow(&mut self, index: u32, gen: u32, ev: Event) {
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return self.driver.recycle(&ev);
        };
        if c.is(flag::LINGERING) {
            // Lingering after a local close: what still arrives is dropped.
            return self.driver.recycle(&ev);
        }
        if c.is(flag::LAYERED) && c.wants_read(&self.io.flow) {
            let (res, before) =
                Self::through_layers(c, &mut self.io, self.driver.received_mut(&ev));
            self.driver.recycle(&ev);
            self.after_layers(index, gen, res, before);
            return;
        }
        // Paused or at the inbound cap: the bytes arrived before the receive's
        // cancellation took effect. They are the connection's (and are kept);
        // a closing connection reads nothing more, as under epoll.
        if c.draining.is_none() && !c.is(flag::READ_CLOSED) {
            let data = self.driver.received_mut(&ev);
            if c.is(flag::LAYERED) {
                let (res, _) = Self::through_layers(c, &mut self.io, data);
                if let Err(reason) = res {
                    self.driver.recycle(&ev);
                    return self.close(index, reason);
                }
            } else {
                self.io.tally.bytes_in += data.len() as u64;
                c.stamp_rx(self.io.now);
                c.inbound.push(data, &mut self.io.pool);
            }
            c.interest = c.interest.with_unseen(true);
        }
        self.driver.recycle(&ev);
        self.settle(index);
    }

    /// A send completion: the bytes the kernel took leave the outbound queue.
    #[inline]
    fn on_sent(&mut self, ev: Event) {
        let (index, gen) = (ev.token as u32, (ev.token >> 32) as u32);
        let Some(c) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())
            .filter(|c| c.gen == gen)
        else {
            // Closed with this send in flight: its blocks can go now.
            if let Some(mut out) = self.driver.reclaim(ev.token) {
                out.clear(&mut self.io.pool);
            }
            return;
        };
        c.interest = c.interest.with_write(false);
        match ev.res {
            n if n >= 0 => c.note_transmitted(n as usize, &mut self.io),
            e if e == -libc::EINTR || e == -libc::EAGAIN => {}
            e => {
                let err = io::Error::from_raw_os_error(-e);
                return self.close(index, CloseReason::from_io(err));
            }
        }
        self.settle(index);
    }

    /// An accept completion: a new connection for listener `li`, or an error.
    fn on_accepted(&mut self, ev: Event) {
        let fd = self.driver.take_accepted(&ev);
        let li = LISTENER_TOKEN.wrapping_sub(ev.token) as usize;
        if self.listeners.get(li).is_none_or(|l| l.token != ev.token) {
            return; // stopped listening since: `fd` closes here
        }
        match fd {
            Some(fd) => self.admit(li, fd, None),
            None => {
                let e = io::Error::from_raw_os_error(-ev.res);
                tracing::debug!(error = %e, "accept completion failed");
                self.listeners[li].accept_failed(e, &mut self.driver);
            }
        }
    }

    /// After `settle`: arms or cancels the connection's receive as it wants bytes
    /// or not, and lists it for a send if bytes are queued and none is in flight.
    pub(super) fn settle_ops(&mut self, index: u32) {
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return;
        };
        let t = token(index, c.gen);
        let max_in = self.io.flow.max_in;
        // A lingering connection reads (and drops) until the peer's end of stream.
        let want = c.wants_read(&self.io.flow) || c.is(flag::LINGERING);
        // Under pressure — near the inbound cap, or replies piling up past the low
        // water mark — a connection reads one bounded receive at a time, so the
        // cap and the water marks hold as under epoll; otherwise one multishot
        // receive stays armed.
        let room = max_in.saturating_sub(c.inbound.len());
        let (low, _) = c.water_marks(&self.io.flow);
        let pressed = room < PRESSURE_ROOM || c.outbound.len() > low;
        let armed = c.interest.readable();
        if want && (!armed || (pressed && !c.interest.recv_bounded())) {
            if armed {
                self.driver.cancel_receive(t, c.interest.recv_parity());
            }
            // A fresh tag for the new receive (see the module docs).
            let ops = c.interest.flip_recv_parity();
            let limit = pressed.then(|| room.min(u32::MAX as usize) as u32);
            if let Err(e) = self.driver.receive(c.raw_fd(), t, ops.recv_parity(), limit) {
                return self.close(index, CloseReason::Io(e));
            }
            c.interest = ops.with_read(true).with_recv_bounded(pressed);
            if c.interest.unseen() {
                // Bytes came in while reading was off: the handler hears of them
                // now, as it would of bytes that had waited in the socket.
                c.interest = c.interest.with_unseen(false);
                let gen = c.gen;
                self.callback(index, gen, |h, c| h.on_traffic(c));
                return;
            }
        } else if !want && armed {
            self.driver.cancel_receive(t, c.interest.recv_parity());
            c.interest = c.interest.with_read(false);
        }
        if !c.outbound.is_empty() && !c.interest.writable() && !c.interest.send_queued() {
            c.interest = c.interest.with_send_queued(true);
            self.sends.push(t);
        }
    }

    /// Submits one send per listed connection (at most one in flight each): the
    /// round's writes go to the kernel with the wait that follows.
    pub(super) fn queue_sends(&mut self) {
        if self.sends.is_empty() {
            return;
        }
        let mut list = std::mem::take(&mut self.sends);
        for &t in &list {
            let index = t as u32;
            let Some(c) = self
                .slots
                .get_mut(index as usize)
                .and_then(|s| s.conn.as_mut())
                .filter(|c| c.gen == (t >> 32) as u32)
            else {
                continue;
            };
            c.interest = c.interest.with_send_queued(false);
            if c.outbound.is_empty() || c.interest.writable() {
                continue;
            }
            match self.driver.send(c.raw_fd(), t, &c.outbound) {
                Ok(()) => c.interest = c.interest.with_write(true),
                Err(e) => self.close(index, CloseReason::Io(e)),
            }
        }
        list.clear();
        self.sends = list;
    }
}
