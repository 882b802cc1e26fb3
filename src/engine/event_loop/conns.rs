//! Accepting, opening and closing connections; running handler callbacks and
//! settling a connection after each one.

use super::*;

impl<H: EventHandler, D: Driver> EventLoop<H, D> {
    pub(super) fn accept(&mut self, li: usize) {
        for _ in 0..ACCEPTS_PER_EVENT {
            let Some(l) = self.listeners.get_mut(li) else {
                return;
            };
            match l.accept(&mut self.driver) {
                Accepted::Conn(fd, peer) => self.admit(li, fd, Some(peer)),
                Accepted::Done => return,
            }
        }
    }

    /// Serves a socket listener `li` accepted, within `max_connections`. The
    /// peer's address is looked up if it is needed and not given (a completion
    /// driver's multishot accept returns none).
    pub(super) fn admit(&mut self, li: usize, fd: OwnedFd, peer: Option<socket2::SockAddr>) {
        let Some(l) = self.listeners.get(li) else {
            return;
        };
        if let Some(max) = self.opts.max_connections.filter(|&m| m > 0) {
            if self.engine.connection_count() >= max {
                // Over the limit: accepted and closed at once (see Options).
                drop(fd);
                self.engine.note_rejected();
                return;
            }
        }
        let is_tcp = l.sock.is_tcp();
        listener::configure(&fd, is_tcp, &self.opts);
        let layered = if l.sock.layers.is_empty() {
            None
        } else {
            match peer.map_or_else(|| socket2::SockRef::from(&fd).peer_addr(), Ok) {
                Ok(peer) => l.sock.layered(peer),
                Err(e) => {
                    // Gone before it was served (reset in the backlog).
                    tracing::debug!(error = %e, "accepted connection has no peer address");
                    return;
                }
            }
        };
        self.io.shared.connections.fetch_add(1, Ordering::Relaxed);
        self.open(fd, None, layered);
    }

    /// Puts a socket that did not come from the driver's own accept (a dialed or
    /// handed-over one) in the mode the driver needs: blocking under a completion
    /// driver (see `sys::uring::Ring::accept_multi` for why); under a readiness
    /// driver it stays non-blocking.
    pub(super) fn prepare_socket(&self, fd: &OwnedFd) {
        if D::COMPLETION {
            if let Err(e) = socket2::SockRef::from(fd).set_nonblocking(false) {
                tracing::debug!(error = %e, "could not put a socket in blocking mode");
            }
        }
    }

    /// Stops accepting: every listener leaves the driver, and the connections
    /// already queued on it are accepted and served (see
    /// [`Listener::close_and_sweep`]). Open connections carry on. The listeners
    /// stay in `self.listeners` (retired, never resumed) so that a completion
    /// driver's accepts still in flight find theirs and are served too.
    pub(super) fn stop_accepting(&mut self) {
        for li in 0..self.listeners.len() {
            for (fd, peer) in self.listeners[li].close_and_sweep(&mut self.driver) {
                // Accepted with `accept4` here, not by the driver.
                self.prepare_socket(&fd);
                self.admit(li, fd, Some(peer));
            }
        }
    }

    /// Starts serving an accepted socket, with the transport layers of its
    /// listener if it has any. The connection count was already raised. Returns the
    /// new connection's slot index and generation.
    pub(super) fn open(
        &mut self,
        fd: OwnedFd,
        state: Option<H::State>,
        layered: Option<Box<Layered>>,
    ) -> Option<(u32, u32)> {
        let layers = match layered.map(|l| Layers::open(&l.factories, &l.peer)) {
            None => None,
            Some(Ok(layers)) => Some(layers),
            Some(Err(reason)) => {
                tracing::info!(%reason, "connection refused by its listener's transport layer");
                self.io.shared.stats.note_close(&reason);
                self.io.shared.connections.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
        };
        let (index, gen) = match self.free.pop() {
            Some(free) => free,
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(Slot { conn: None });
                ((self.slots.len() - 1) as u32, 0)
            }
            None => {
                tracing::error!("connection slab is full; dropping connection");
                self.io.shared.connections.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
        };
        let slot = &mut self.slots[index as usize];
        let mut inner = ConnInner::new(fd, self.io.now, self.io.flow.timeouts());
        inner.gen = gen;
        if let Some(s) = state {
            inner.state = s;
        }
        if let Err(e) = self.driver.add(
            inner.raw_fd(),
            token(index, gen),
            Interest::READ,
            self.trigger,
        ) {
            tracing::error!(error = %e, "could not register connection; dropping it");
            self.free.push((index, gen));
            self.io.shared.connections.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        self.io.shared.stats.accepted.add(1);
        self.io.shared.live.set(index, gen);
        if let Some(layers) = layers {
            // The handler hears of the connection once its layers are past their
            // preamble (a handshake, a header), which must end in time.
            let established = layers.established();
            let timeout = layers.preamble_timeout();
            inner.set_layers(layers, self.io.now);
            if !established {
                if let Some(t) = timeout {
                    let at = self.io.flow.clock.tick(later(Instant::now(), t)) + 1;
                    inner.set_deadline_tick(at, &self.io.flow, self.io.now);
                }
                slot.conn = Some(inner);
                self.settle(index);
                return Some((index, gen));
            }
        }
        slot.conn = Some(inner);
        self.opened(index, gen);
        Some((index, gen))
    }

    /// A draining connection's transport layers queue their last words (once) and
    /// they are sent; returns whether some are still queued (the close waits).
    #[inline]
    fn goodbye(c: &mut ConnInner<H::State>, io: &mut LoopIo) -> bool {
        if !c.is(flag::LAYERED) {
            return false;
        }
        let queued = match c.cold.as_mut().and_then(|k| k.layers.as_deref_mut()) {
            Some(layers) => layers.goodbye(&mut c.outbound, &mut io.pool),
            None => false,
        };
        if queued && c.flush(io).is_err() {
            c.outbound.clear(&mut io.pool); // the peer is gone: nothing to wait for
        }
        !c.outbound.is_empty()
    }

    /// Lingering close, first half: a connection closed on this side (by the
    /// handler or a handle) while the peer has not finished sending keeps reading —
    /// and dropping — what arrives, so the peer is not left blocked on a full
    /// window and its bytes do not pile up unread (closing with unread bytes makes
    /// the kernel reset the connection and discard the reply not yet delivered).
    /// See [`Options::linger_timeout`](crate::Options::linger_timeout).
    fn start_lingering(c: &mut ConnInner<H::State>, d: Drain, io: &mut LoopIo) {
        let asked = matches!(d, Drain::Local | Drain::Custom | Drain::Handle);
        if asked && io.flow.linger != 0 && !c.is(flag::READ_CLOSED | flag::LINGERING) {
            c.set(flag::LINGERING, true);
            c.release_inbound(&mut io.pool);
        }
    }

    /// Lingering close, second half, once everything queued has been sent: the
    /// sending side is shut down (the peer reads the reply, then end of stream)
    /// and the connection waits for the peer's end of stream, at most
    /// `linger_timeout`. Returns whether it still waits (false: close now).
    fn shut_write(c: &mut ConnInner<H::State>, io: &mut LoopIo) -> bool {
        if c.write_shut() {
            return true;
        }
        if socket2::SockRef::from(&c.fd)
            .shutdown(std::net::Shutdown::Write)
            .is_err()
        {
            return false; // already gone: nothing to wait for
        }
        c.set_write_shut(io.now);
        let at = io.now + io.flow.linger + 1;
        c.set_deadline_tick(at, &io.flow, io.now);
        true
    }

    /// The connection is ready for the handler: `on_open`, then `on_traffic` if
    /// its layers already passed bytes up.
    pub(super) fn opened(&mut self, index: u32, gen: u32) {
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return;
        };
        let mut pending = false;
        if let Some(l) = c.layers_mut() {
            l.opened = true;
            // The preamble's deadline is over; the handler may set its own.
            c.set_deadline_tick(0, &self.io.flow, self.io.now);
            pending = !c.inbound.is_empty();
        }
        self.callback(index, gen, |h, c| h.on_open(c));
        if pending && self.is_live(index, gen) {
            self.callback(index, gen, |h, c| h.on_traffic(c));
        }
    }

    /// Runs one handler callback on a connection, then applies its outcome.
    pub(super) fn callback(
        &mut self,
        index: u32,
        gen: u32,
        f: impl FnOnce(&mut H, &mut Conn<'_, H::State>) -> Action,
    ) {
        let Some(result) = self.invoke(index, gen, f) else {
            return;
        };
        self.after_callback(index, result);
    }

    /// Runs one handler callback on a connection (panics caught), without acting
    /// on its outcome.
    pub(super) fn invoke(
        &mut self,
        index: u32,
        gen: u32,
        f: impl FnOnce(&mut H, &mut Conn<'_, H::State>) -> Action,
    ) -> Option<std::thread::Result<Action>> {
        let inner = self.slots[index as usize].conn.as_mut()?;
        let mut conn = Conn::new(inner, &mut self.io, index, gen, None);
        let handler = &mut self.handler;
        let result = catch_unwind(AssertUnwindSafe(|| f(handler, &mut conn)));
        conn.finish();
        Some(result)
    }

    #[inline]
    pub(super) fn after_callback(&mut self, index: u32, result: std::thread::Result<Action>) {
        match result {
            Ok(Action::None) => self.settle(index),
            other => self.after_callback_slow(index, other),
        }
    }

    #[cold]
    pub(super) fn after_callback_slow(&mut self, index: u32, result: std::thread::Result<Action>) {
        match result {
            Err(p) => {
                tracing::error!(
                    panic = panic_message(&*p),
                    "handler panicked; closing its connection"
                );
                self.close(index, CloseReason::Panicked);
                return;
            }
            Ok(Action::Shutdown) => self.engine.signal_stop(),
            Ok(Action::Close) => {
                if let Some(c) = self.slots[index as usize].conn.as_mut() {
                    c.drain(Drain::Local);
                }
            }
            Ok(Action::None) => {}
        }
        self.settle(index);
    }

    /// After anything touched a connection: close it if it failed or finished
    /// draining; otherwise update the loop's gauges, tell the handler about a
    /// water-mark crossing, arm its timer if a deadline came nearer, and bring its
    /// poller interest up to date.
    #[inline]
    pub(super) fn settle(&mut self, index: u32) {
        // The common case after a callback (nothing failed or queued, no timers,
        // interest unchanged) costs a few compares and no call.
        if let Some(c) = self.slots[index as usize].conn.as_ref() {
            if c.is_quiet(&self.io.flow) {
                return;
            }
        }
        self.settle_slow(index);
    }

    #[inline(never)]
    pub(super) fn settle_slow(&mut self, index: u32) {
        let Some(gen) = self.slots[index as usize].conn.as_ref().map(|c| c.gen) else {
            return;
        };
        let mut notified = 0;
        loop {
            let Some(c) = self.slots[index as usize].conn.as_mut() else {
                return;
            };
            if let Some(reason) = c.take_failed() {
                self.close(index, reason);
                return;
            }
            if let Some(d) = c.draining {
                Self::start_lingering(c, d, &mut self.io);
                if c.outbound.is_empty()
                    && !Self::goodbye(c, &mut self.io)
                    && !(c.is(flag::LINGERING) && Self::shut_write(c, &mut self.io))
                {
                    let reason = c.drain_reason(d);
                    self.close(index, reason);
                    return;
                }
            }
            c.account(&mut self.io.tally, self.io.now);
            if c.draining.is_some() || notified == MAX_NOTIFY {
                break;
            }
            let writable = c.writable_now(&self.io.flow);
            if writable != c.is(flag::UNWRITABLE) {
                break; // no crossing
            }
            c.set(flag::UNWRITABLE, !writable);
            if writable && self.io.flow.no_read & flag::UNWRITABLE != 0 {
                // Read backpressure ends: the read timeout starts over.
                c.restart_rx(self.io.now);
            }
            notified += 1;
            let res = self.invoke(index, gen, |h, c| {
                h.on_writable_changed(c, writable);
                Action::None
            });
            if let Some(Err(p)) = res {
                tracing::error!(
                    panic = panic_message(&*p),
                    "handler panicked; closing its connection"
                );
                self.close(index, CloseReason::Panicked);
                return;
            }
        }
        let Some(c) = self.slots[index as usize].conn.as_mut() else {
            return;
        };
        if c.has_timers(&self.io.flow) {
            if let Some((at, _)) = c.next_expiry(&self.io.flow) {
                let armed = c.armed();
                if armed == 0 || at < armed {
                    c.set_armed(at, self.io.now);
                    self.wheel.insert(token(index, gen), at);
                }
            }
        }
        if D::COMPLETION {
            return self.settle_ops(index);
        }
        let wanted = c.wanted_interest(&self.io.flow);
        if wanted != c.interest {
            match self
                .driver
                .modify(c.raw_fd(), token(index, gen), wanted, self.trigger)
            {
                Ok(()) => c.interest = wanted,
                Err(e) => self.close(index, CloseReason::Io(e)),
            }
        }
    }

    /// Closes a connection now: `on_close` once, callbacks failed, buffers back to
    /// the pool, slot freed (its generation bumped), descriptor closed.
    pub(crate) fn close(&mut self, index: u32, reason: CloseReason) {
        let slot = &mut self.slots[index as usize];
        let Some(mut inner) = slot.conn.take() else {
            return;
        };
        let gen = inner.gen;
        inner.set(flag::CLOSED, true);
        // Handles see it closed from now on.
        self.io.shared.live.set(index, gen.wrapping_add(1));
        match &reason {
            CloseReason::Panicked | CloseReason::Io(_) => {
                tracing::warn!(%reason, "connection closed")
            }
            CloseReason::Protocol(_) => tracing::info!(%reason, "connection closed"),
            _ => tracing::trace!(%reason, "connection closed"),
        }
        self.io.shared.stats.note_close(&reason);
        inner.unaccount(&mut self.io.tally);
        // Whoever sees the connection closed (in `on_close` or by its count) also
        // sees the gauges without it.
        self.io.shared.stats.publish(&self.io.tally);
        // A connection whose transport layers never got past their preamble was
        // never opened for the handler: it hears nothing of it.
        let opened = inner.layers_mut().is_none_or(|l| l.opened);
        if opened {
            let mut conn = Conn::new(&mut inner, &mut self.io, index, gen, None);
            let handler = &mut self.handler;
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| handler.on_close(&mut conn, &reason)))
            {
                tracing::error!(panic = panic_message(&*p), "on_close panicked");
            }
        }
        inner.fail_waiters();
        inner.release_inbound(&mut self.io.pool);
        // The driver closes the descriptor (a readiness driver at once; a completion
        // driver once what the connection has in flight is cancelled) and takes the
        // outbound blocks, which an in-flight send may still point at.
        let ConnInner {
            fd,
            outbound,
            interest,
            ..
        } = inner;
        let t = token(index, gen);
        self.driver
            .release(fd, t, interest, outbound, &mut self.io.pool);
        // The slot's next connection gets the next generation, so stale tokens and
        // handles of this one never match it.
        self.free.push((index, gen.wrapping_add(1)));
        self.io.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
