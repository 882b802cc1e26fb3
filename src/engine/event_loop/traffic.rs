//! The per-message path: events, reads, `on_traffic`, writability.

use super::*;
use crate::driver::Event;

impl<H: EventHandler, D: Driver> EventLoop<H, D> {
    /// A readiness event for a connection.
    #[inline(always)]
    pub(super) fn on_conn_event(&mut self, ev: Event) {
        let (index, gen) = (ev.token as u32, (ev.token >> 32) as u32);
        // Stale events (the connection closed earlier this round) are dropped by
        // the generation checks of `read_once` and of `is_live`.
        if ev.wants_read() {
            self.on_readable(index, gen, ev.read_closed(), ev.error());
        }
        if ev.writable() && self.is_live(index, gen) {
            self.on_writable(index);
        }
    }

    #[inline(always)]
    pub(super) fn on_readable(&mut self, index: u32, gen: u32, read_closed: bool, error: bool) {
        if self.trigger != Trigger::Edge {
            // Level-triggered: one read per event; a socket with more to read is
            // reported again by the next wait, after every other ready connection.
            self.read_once(index, gen, read_closed, error);
            return;
        }
        for _ in 0..self.opts.read_budget {
            if !self.read_once(index, gen, read_closed, error) {
                return;
            }
        }
        // Edge-triggered and out of budget with data left: no new edge will come,
        // so the loop remembers to read it next round.
        if self.is_live(index, gen) {
            self.et_pending.push(token(index, gen));
        }
    }

    /// One read and the `on_traffic` it feeds. Returns whether the socket may have
    /// more to read (the read filled its buffer, or the peer half-closed and the
    /// end of stream is still to be read).
    ///
    /// This is the hot path of every server; it borrows the loop's fields one by
    /// one (slot, read buffer, `io`, handler) so the connection is looked up once
    /// and a callback that leaves nothing to do costs a few compares afterwards.
    #[inline(always)]
    pub(super) fn read_once(
        &mut self,
        index: u32,
        gen: u32,
        read_closed: bool,
        error: bool,
    ) -> bool {
        let Some(c) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())
            .filter(|c| c.gen == gen)
        else {
            return false;
        };
        if !c.reads_plain(&self.io.flow) {
            if c.is(flag::LINGERING) {
                return self.read_lingering(index);
            }
            if c.is(flag::LAYERED) && c.wants_read(&self.io.flow) {
                return self.read_layered(index, gen, read_closed);
            }
            // Not reading (closing, half-closed, paused, unwritable or at the
            // inbound cap): only a hang-up or error matters.
            if error {
                self.on_hangup(index);
            }
            return false;
        }
        // Never buffer past the inbound cap.
        let want = (self.io.flow.max_in - c.inbound.len()).min(self.read_buf.len());
        match crate::sys::read(c.fd.as_fd(), &mut self.read_buf[..want]) {
            Ok(0) => {
                self.on_eof(index);
                false
            }
            Ok(n) => {
                if let Some(res) = Self::deliver(
                    c,
                    &mut self.io,
                    &mut self.handler,
                    index,
                    gen,
                    &self.read_buf[..n],
                ) {
                    self.after_callback_slow(index, res);
                }
                n == want || read_closed
            }
            Err(crate::sys::Errno::AGAIN) => false,
            Err(crate::sys::Errno::INTR) => true,
            Err(e) => {
                self.close(index, CloseReason::from_io(e.into()));
                false
            }
        }
    }

    /// Lends `data`, bytes just received for connection `c`, to the handler's
    /// `on_traffic`: in place when the connection holds nothing else, after its
    /// buffered bytes otherwise; only what the handler leaves unconsumed is kept.
    /// Returns the callback's outcome when the connection needs settling, `None`
    /// when the callback left nothing to do (the common case: a few compares).
    ///
    /// The bytes may be the loop's read buffer (a readiness driver) or a buffer a
    /// completion driver lent: the handler cannot tell.
    #[inline(always)]
    pub(super) fn deliver(
        c: &mut ConnInner<H::State>,
        io: &mut LoopIo,
        handler: &mut H,
        index: u32,
        gen: u32,
        data: &[u8],
    ) -> Option<std::thread::Result<Action>> {
        io.tally.bytes_in += data.len() as u64;
        c.stamp_rx(io.now);
        // Fresh bytes are offered in place; only a connection that already holds a
        // partial message gets them appended to its ring first.
        let fresh = if c.inbound.is_empty() {
            Some(data)
        } else {
            c.inbound.push(data, &mut io.pool);
            None
        };
        let mut conn = Conn::new(c, io, index, gen, fresh);
        let res = catch_unwind(AssertUnwindSafe(|| handler.on_traffic(&mut conn)));
        conn.finish();
        let quiet = matches!(res, Ok(Action::None)) && conn.inner.is_quiet(&conn.io.flow);
        (!quiet).then_some(res)
    }

    /// One read for a connection with transport layers: the wire bytes go up
    /// through the layers; bytes the layers answer with (a handshake) are sent at
    /// once; once the layers are past their preamble the handler hears of the
    /// connection (`on_open`), and of the bytes that came up (`on_traffic`).
    #[cold]
    #[inline(never)]
    fn read_layered(&mut self, index: u32, gen: u32, read_closed: bool) -> bool {
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return false;
        };
        let want = (self.io.flow.max_in - c.inbound.len()).min(self.read_buf.len());
        let n = match crate::sys::read(c.fd.as_fd(), &mut self.read_buf[..want]) {
            Ok(0) => {
                self.on_eof(index);
                return false;
            }
            Ok(n) => n,
            Err(crate::sys::Errno::AGAIN) => return false,
            Err(crate::sys::Errno::INTR) => return true,
            Err(e) => {
                self.close(index, CloseReason::from_io(e.into()));
                return false;
            }
        };
        let (res, before) = Self::through_layers(c, &mut self.io, &mut self.read_buf[..n]);
        self.after_layers(index, gen, res, before) && (n == want || read_closed)
    }

    /// Wire bytes received for a layered connection go up through its layers (the
    /// bytes may be the loop's read buffer or a completion driver's ring buffer).
    /// Returns the layers' verdict and how many bytes the connection held before.
    pub(super) fn through_layers(
        c: &mut ConnInner<H::State>,
        io: &mut LoopIo,
        wire: &mut [u8],
    ) -> (Result<(), CloseReason>, usize) {
        io.tally.bytes_in += wire.len() as u64;
        c.stamp_rx(io.now);
        let before = c.inbound.len();
        let res = match c.cold.as_mut().and_then(|k| k.layers.as_deref_mut()) {
            Some(layers) => layers.receive(wire, &mut c.inbound, &mut c.outbound, &mut io.pool),
            None => Ok(()),
        };
        (res, before)
    }

    /// After bytes went up through a connection's layers: what the layers
    /// answered is sent, a failure closes, the handler hears of the connection
    /// once the layers are past their preamble (`on_open`) and of the bytes that
    /// came up (`on_traffic`). Returns false once the connection closed or its
    /// stream ended.
    pub(super) fn after_layers(
        &mut self,
        index: u32,
        gen: u32,
        res: Result<(), CloseReason>,
        before: usize,
    ) -> bool {
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return false;
        };
        // What the layers answered (a handshake message, an alert) leaves now.
        if let Err(e) = c.flush(&mut self.io) {
            self.close(index, CloseReason::from_io(e));
            return false;
        }
        if let Err(reason) = res {
            self.close(index, reason);
            return false;
        }
        let (opened, established, peer_closed) = match c.layers_mut() {
            Some(l) => (l.opened, l.established(), l.peer_closed()),
            None => (true, true, false),
        };
        if !opened {
            if !established {
                self.settle(index);
                return true;
            }
            self.opened(index, gen);
        } else if c.inbound.len() > before {
            self.callback(index, gen, |h, c| h.on_traffic(c));
        } else {
            self.settle(index);
        }
        if peer_closed && self.is_live(index, gen) {
            // The peer ended the stream inside a layer (a TLS close_notify).
            self.on_eof(index);
            return false;
        }
        true
    }

    /// The peer shut down its sending side. By default the connection closes
    /// once everything queued has been sent; with `allow_half_closure` the handler
    /// is told (`on_read_closed`) and decides.
    pub(super) fn on_eof(&mut self, index: u32) {
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return;
        };
        c.set(flag::READ_CLOSED, true);
        if self.io.flow.half_closure && !c.is(flag::DRAINING) {
            let gen = c.gen;
            match self.invoke(index, gen, |h, c| h.on_read_closed(c)) {
                Some(Ok(Action::None)) => {}
                Some(Ok(Action::Shutdown)) => self.engine.signal_stop(),
                Some(Ok(Action::Close)) => {
                    if let Some(c) = self.slots[index as usize].conn.as_mut() {
                        c.drain(Drain::PeerClosed);
                    }
                }
                Some(Err(p)) => {
                    tracing::error!(
                        panic = panic_message(&*p),
                        "handler panicked; closing its connection"
                    );
                    self.close(index, CloseReason::Panicked);
                    return;
                }
                None => return,
            }
        } else {
            c.drain(Drain::PeerClosed);
        }
        // Whatever was written or queued is still delivered before the close.
        self.settle(index);
    }

    /// A read while lingering after a local close: what arrives is dropped; end of
    /// stream (or an error) ends the linger and closes with the reason the close
    /// was asked for.
    #[cold]
    #[inline(never)]
    fn read_lingering(&mut self, index: u32) -> bool {
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return false;
        };
        match crate::sys::read(c.fd.as_fd(), &mut self.read_buf) {
            Ok(n) if n > 0 => n == self.read_buf.len(),
            Err(crate::sys::Errno::AGAIN) => false,
            Err(crate::sys::Errno::INTR) => true,
            _ => {
                // End of stream, or an error: the peer is done.
                let d = c.draining.unwrap_or(Drain::Local);
                let reason = c.drain_reason(d);
                self.close(index, reason);
                false
            }
        }
    }

    pub(super) fn on_hangup(&mut self, index: u32) {
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return;
        };
        let reason = match c.fd_error() {
            Some(e) => CloseReason::from_io(e),
            None => CloseReason::PeerClosed,
        };
        self.close(index, reason);
    }

    pub(super) fn on_writable(&mut self, index: u32) {
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return;
        };
        if let Err(e) = c.flush(&mut self.io) {
            self.close(index, CloseReason::from_io(e));
            return;
        }
        self.settle(index);
    }
}
