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
                return self.read_lingering(index, gen);
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
    /// through the layers; bytes the layers answer with (a handshake flight, an
    /// alert) are sent at once; then the handler hears what changed (see
    /// [`layers_advanced`](Self::layers_advanced)).
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
    /// bytes may be the loop's read buffer or a completion driver's ring buffer);
    /// what the layers answer (a handshake flight, an alert — also the one
    /// explaining a failure) leaves at once under a readiness driver, and is
    /// queued for the next send under a completion driver. Returns the verdict
    /// (an error is the reason to close with) and how many bytes the connection
    /// held before.
    pub(super) fn through_layers(
        c: &mut ConnInner<H::State>,
        io: &mut LoopIo,
        wire_in: &mut [u8],
    ) -> (Result<(), CloseReason>, usize) {
        io.tally.bytes_in += wire_in.len() as u64;
        c.stamp_rx(io.now);
        let before = c.inbound.len();
        let Some(layers) = c.cold.as_mut().and_then(|k| k.layers.as_deref_mut()) else {
            return (Ok(()), before);
        };
        let mut wire = std::mem::take(&mut io.wire);
        let res = layers.receive(
            wire_in,
            &mut c.inbound,
            &mut c.outbound,
            &mut wire,
            &mut io.pool,
        );
        io.wire = wire;
        let sent = c.send_wire(io);
        (res.and(sent.map_err(|e| e.close_reason())), before)
    }

    /// After bytes went up through a connection's layers: a failure closes, and
    /// the handler hears what changed (see [`layers_advanced`](Self::layers_advanced)).
    /// Returns false once the connection closed or its stream ended.
    pub(super) fn after_layers(
        &mut self,
        index: u32,
        gen: u32,
        res: Result<(), CloseReason>,
        before: usize,
    ) -> bool {
        if let Err(reason) = res {
            self.close(index, reason);
            return false;
        }
        self.layers_advanced(index, gen, before)
    }

    /// After a layered connection's layers took bytes: `on_open` once they are
    /// past their preamble, `on_handshake` once a handshake completed, then
    /// `on_traffic` for the bytes that came up; end of stream if the peer closed
    /// the stream inside a layer (a TLS `close_notify`). Returns false once the
    /// connection closed or its stream ended.
    fn layers_advanced(&mut self, index: u32, gen: u32, before: usize) -> bool {
        let Some(l) = self.slots[index as usize]
            .conn
            .as_mut()
            .and_then(|c| c.layers_mut())
        else {
            return false;
        };
        let newly_open = !l.opened && l.established();
        if !l.opened && !newly_open {
            self.settle(index); // still in the preamble
            return true;
        }
        let handshake_done = l.take_handshake_done();
        let peer_closed = l.peer_closed();
        if newly_open {
            self.opened(index, gen);
        }
        if handshake_done && self.is_live(index, gen) {
            self.handshake_done(index, gen);
        }
        let fresh = self.slots[index as usize]
            .conn
            .as_ref()
            .filter(|c| c.gen == gen)
            .is_some_and(|c| c.inbound.len() > before || newly_open && !c.inbound.is_empty());
        if fresh {
            self.callback(index, gen, |h, c| h.on_traffic(c));
        } else {
            self.settle(index);
        }
        if peer_closed && self.is_live(index, gen) {
            // The peer ended the stream inside a layer (a TLS close_notify).
            self.on_eof(index);
            return false;
        }
        self.is_live(index, gen)
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
    /// was asked for. A layered connection's bytes still go through its layers
    /// (their plaintext dropped), so the peer ending the stream inside a layer (a
    /// TLS `close_notify`) counts as its end of stream too.
    #[cold]
    #[inline(never)]
    fn read_lingering(&mut self, index: u32, gen: u32) -> bool {
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return false;
        };
        match crate::sys::read(c.fd.as_fd(), &mut self.read_buf) {
            Ok(n) if n > 0 => {
                let more = n == self.read_buf.len();
                if c.is(flag::LAYERED) {
                    let (res, _) = Self::through_layers(c, &mut self.io, &mut self.read_buf[..n]);
                    self.lingered_through_layers(index, gen, res);
                }
                more
            }
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

    /// Lingering on a layered connection: bytes read went through its layers
    /// (verdict `res`) and their plaintext is dropped. A layer that refused them
    /// ends the linger; one that saw the peer end the stream ends the reading: the
    /// connection closes once what it still sends has left.
    pub(super) fn lingered_through_layers(
        &mut self,
        index: u32,
        gen: u32,
        res: Result<(), CloseReason>,
    ) {
        let Some(c) = self.slots[index as usize]
            .conn
            .as_mut()
            .filter(|c| c.gen == gen)
        else {
            return;
        };
        c.release_inbound(&mut self.io.pool);
        if res.is_err() {
            // Closing was asked for already: that is the reason reported.
            let d = c.draining.unwrap_or(Drain::Local);
            let reason = c.drain_reason(d);
            self.close(index, reason);
            return;
        }
        if c.layers_mut().is_some_and(|l| l.peer_closed()) {
            c.set(flag::LINGERING, false);
            c.set(flag::READ_CLOSED, true);
        }
        self.settle(index);
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
