//! Connections: what a handler sees ([`Conn`], [`Writer`]), what other threads
//! hold ([`ConnHandle`]), why a connection closed ([`CloseReason`]), and the
//! loop-private state behind them.

mod flow;
mod handle;
mod loop_io;
mod reason;
mod state;
mod timeouts;
mod waiters;
mod writer;

pub(crate) use flow::Flow;
pub(crate) use handle::run_callback;
pub use handle::{ConnHandle, ConnId, WriteCallback};
pub(crate) use loop_io::LoopIo;
pub use reason::{CloseReason, TimeoutKind};
pub(crate) use state::{flag, ConnInner, Drain};
pub(crate) use timeouts::Expiry;
pub use writer::Writer;
use writer::{closed_error, failure, WriteMode};
pub(crate) use writer::{WriteError, MAX_IOVECS};

use crate::addr::Addr;
use crate::buffer::RingBuffer;
use crate::transport::Layers;
use flow::ConnConfig;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

/// The unconsumed inbound bytes: fresh bytes in the loop's read buffer, or the
/// connection's ring, minus the `consumed` prefix.
#[inline]
fn view_of<'b>(
    fresh: Option<&'b [u8]>,
    consumed: usize,
    ring: &'b RingBuffer,
) -> (&'b [u8], &'b [u8]) {
    match fresh {
        Some(fresh) => (&fresh[consumed..], &[]),
        None => {
            let (a, b) = ring.as_slices();
            if consumed <= a.len() {
                (&a[consumed..], b)
            } else {
                (&b[consumed - a.len()..], &[])
            }
        }
    }
}

/// A connection, as seen by handler callbacks on its event loop.
///
/// **Inbound**: bytes read from the socket are offered to `on_traffic`; the handler
/// consumes what it handles with [`next`](Conn::next), [`discard`](Conn::discard) or
/// [`read`](Conn::read) and leaves the rest, which stays buffered for next time.
/// Fresh bytes are offered straight from the loop's shared read buffer; only the part
/// left unconsumed is copied into the connection's own (elastic, pooled) buffer.
///
/// **Outbound**: [`write`](Conn::write) goes to the socket at once when nothing is
/// queued; only what the socket does not take is queued, and write interest is
/// registered only while something is queued.
///
/// **Flow control**: past the high water mark the connection is
/// [unwritable](Conn::is_writable) (advice; the handler is told through
/// [`on_writable_changed`](crate::EventHandler::on_writable_changed)); past
/// [`Options::max_outbound_bytes`](crate::Options::max_outbound_bytes) a write fails
/// and the connection closes. Reading can be [paused](Conn::pause_read), and stops
/// by itself while [`Options::max_inbound_bytes`](crate::Options::max_inbound_bytes)
/// are buffered unconsumed.
///
/// **Timeouts**: idle, read and write timeouts default to the engine's options and
/// can be changed per connection ([`set_idle_timeout`](Conn::set_idle_timeout)…);
/// [`set_deadline`](Conn::set_deadline) closes at a fixed instant (for handshakes).
pub struct Conn<'a, S> {
    pub(crate) inner: &'a mut ConnInner<S>,
    pub(crate) io: &'a mut LoopIo,
    /// Fresh bytes in the loop's read buffer (`None`: the view is the inbound ring).
    pub(crate) fresh: Option<&'a [u8]>,
    /// Bytes of the current view already consumed by the handler.
    pub(crate) consumed: usize,
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

impl<S> std::fmt::Debug for Conn<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id())
            .field("buffered", &self.buffered())
            .field("queued", &self.inner.outbound.len())
            .field("closing", &self.inner.draining.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a, S> Conn<'a, S> {
    #[inline]
    pub(crate) fn new(
        inner: &'a mut ConnInner<S>,
        io: &'a mut LoopIo,
        index: u32,
        gen: u32,
        fresh: Option<&'a [u8]>,
    ) -> Self {
        Conn {
            inner,
            io,
            fresh,
            consumed: 0,
            index,
            gen,
        }
    }

    /// Settles inbound bookkeeping after a callback: consumed bytes leave the ring,
    /// unconsumed fresh bytes are copied into it.
    #[inline]
    pub(crate) fn finish(&mut self) {
        match self.fresh.take() {
            Some(fresh) => {
                if self.consumed < fresh.len() {
                    self.inner
                        .inbound
                        .push(&fresh[self.consumed..], &mut self.io.pool);
                }
            }
            None => {
                if self.consumed > 0 {
                    self.inner.inbound.consume(self.consumed, &mut self.io.pool);
                }
            }
        }
        self.consumed = 0;
    }

    /// The unconsumed inbound bytes as (up to) two slices, zero-copy.
    pub fn inbound(&self) -> (&[u8], &[u8]) {
        self.view()
    }

    fn view(&self) -> (&[u8], &[u8]) {
        view_of(self.fresh, self.consumed, &self.inner.inbound)
    }

    /// Number of unconsumed inbound bytes.
    #[inline]
    pub fn buffered(&self) -> usize {
        match self.fresh {
            Some(fresh) => fresh.len() - self.consumed,
            None => self.inner.inbound.len() - self.consumed,
        }
    }

    /// Makes the first `n` unconsumed bytes contiguous (no allocation: the ring is
    /// rotated in place when its contents wrap).
    fn make_contiguous(&mut self, n: usize) {
        if self.fresh.is_none() && self.inbound().0.len() < n {
            if self.consumed > 0 {
                self.inner.inbound.consume(self.consumed, &mut self.io.pool);
                self.consumed = 0;
            }
            self.inner.inbound.make_contiguous();
        }
    }

    /// The next `n` inbound bytes without consuming them, or `None` if fewer are
    /// buffered.
    pub fn peek(&mut self, n: usize) -> Option<&[u8]> {
        if self.buffered() < n {
            return None;
        }
        self.make_contiguous(n);
        Some(&self.inbound().0[..n])
    }

    /// Every unconsumed inbound byte as one slice (rotating the ring if needed).
    pub fn peek_all(&mut self) -> &[u8] {
        let n = self.buffered();
        self.make_contiguous(n);
        self.inbound().0
    }

    /// Consumes and returns the next `n` bytes, or `None` (consuming nothing) if
    /// fewer are buffered.
    pub fn next(&mut self, n: usize) -> Option<&[u8]> {
        if self.buffered() < n {
            return None;
        }
        self.make_contiguous(n);
        self.consumed += n;
        // The slice ends where the view now starts.
        let start = self.consumed - n;
        let first = match self.fresh {
            Some(fresh) => fresh,
            None => self.inner.inbound.as_slices().0,
        };
        Some(&first[start..start + n])
    }

    /// Drops up to `n` inbound bytes; returns how many were dropped.
    pub fn discard(&mut self, n: usize) -> usize {
        let n = n.min(self.buffered());
        self.consumed += n;
        n
    }

    /// Copies inbound bytes into `dst` and consumes them; returns how many.
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let (a, b) = self.inbound();
        let n1 = a.len().min(dst.len());
        dst[..n1].copy_from_slice(&a[..n1]);
        let n2 = b.len().min(dst.len() - n1);
        dst[n1..n1 + n2].copy_from_slice(&b[..n2]);
        self.consumed += n1 + n2;
        n1 + n2
    }

    /// Splits the connection into its unconsumed inbound bytes (up to two slices,
    /// zero-copy) and a [`Writer`], so the bytes can be written back or forwarded
    /// without copying them first. Consume afterwards with [`discard`](Conn::discard).
    ///
    /// ```no_run
    /// # use netloop::Conn;
    /// # fn echo(conn: &mut Conn<'_, ()>) -> std::io::Result<()> {
    /// let n = conn.buffered();
    /// let ([a, b], mut w) = conn.split();
    /// w.writev(&[a, b])?;
    /// conn.discard(n);
    /// # Ok(()) }
    /// ```
    pub fn split(&mut self) -> ([&[u8]; 2], Writer<'_>) {
        // Writes are accepted until `on_close` has run: bytes written after
        // `close()` in the same callback are sent before the connection closes.
        let mode = if self.inner.is(flag::CLOSED) {
            WriteMode::Closed
        } else if self.io.inline_sends {
            WriteMode::Inline
        } else {
            WriteMode::Queue
        };
        let (a, b) = view_of(self.fresh, self.consumed, &self.inner.inbound);
        let w = Writer {
            fd: self.inner.fd.as_fd(),
            outbound: &mut self.inner.outbound,
            cold: &mut self.inner.cold,
            io: self.io,
            mode,
        };
        ([a, b], w)
    }

    fn writer(&mut self) -> Writer<'_> {
        self.split().1
    }

    /// Writes `data`: straight to the socket when nothing is queued, the remainder
    /// into the outbound queue. An error (the peer is gone) also closes the
    /// connection once the callback returns.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.writer().write(data)
    }

    /// Writes several buffers with one gathered `writev` (then queues the rest).
    pub fn writev(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        self.writer().writev(bufs)
    }

    /// Tries to write the outbound queue now (the loop also does it when the
    /// socket becomes writable).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.inner.is(flag::CLOSED) {
            return Err(closed_error());
        }
        let res = self.inner.flush(self.io);
        if let Err(e) = &res {
            self.inner.set_failed(*failure(e), self.io.now);
        }
        res
    }

    /// Bytes queued for sending (not yet taken by the kernel).
    pub fn outbound_len(&self) -> usize {
        self.inner.outbound.len()
    }

    /// Closes the connection once the callback returns and what is queued has been
    /// sent (same as returning [`Action::Close`](crate::Action::Close)).
    pub fn close(&mut self) {
        self.inner.drain(Drain::Local);
    }

    /// Closes the connection once the callback returns and what is queued has been
    /// sent, reporting `reason` to `on_close` (and the log) instead of
    /// [`CloseReason::Local`] — for protocol layers that reject the peer's bytes,
    /// typically with [`CloseReason::Protocol`].
    pub fn close_with(&mut self, reason: CloseReason) {
        if self.inner.draining.is_none() {
            let now = self.io.now;
            self.inner.cold_mut(now).close_reason = Some(Box::new(reason));
            self.inner.drain(Drain::Custom);
        }
    }

    // ----- flow control -----

    /// Is the connection writable: is its outbound queue within the water marks?
    /// False from when more than the high mark is queued until the queue drains to
    /// the low mark. Writes still succeed while unwritable (up to
    /// [`Options::max_outbound_bytes`](crate::Options::max_outbound_bytes)).
    pub fn is_writable(&self) -> bool {
        self.inner.writable_now(&self.io.flow)
    }

    /// Sets this connection's outbound water marks (`low` is clamped to `high`).
    /// Default: [`Options::write_low_water`](crate::Options::write_low_water) and
    /// [`Options::write_high_water`](crate::Options::write_high_water).
    pub fn set_write_water_marks(&mut self, low: usize, high: usize) {
        let c = self.cfg_mut();
        c.high = high;
        c.low = low.min(high);
        self.inner.tidy_timing(&self.io.flow);
    }

    /// This connection's (low, high) outbound water marks.
    pub fn write_water_marks(&self) -> (usize, usize) {
        self.inner.water_marks(&self.io.flow)
    }

    /// What [`is_writable`](Conn::is_writable) decides from, for adapters that
    /// split the connection: the (low, high) water marks and whether the
    /// connection is marked unwritable (which mark applies).
    pub(crate) fn write_gauge(&self) -> (usize, usize, bool) {
        let (low, high) = self.inner.water_marks(&self.io.flow);
        (low, high, self.inner.is(flag::UNWRITABLE))
    }

    /// Stops reading from the socket (its read interest is dropped once the
    /// callback returns, so the loop does not spin on the unread bytes) until
    /// [`resume_read`](Conn::resume_read). Bytes already buffered stay buffered.
    pub fn pause_read(&mut self) {
        self.inner.set(flag::PAUSED, true);
    }

    /// Resumes reading after [`pause_read`](Conn::pause_read). The read timeout
    /// starts over.
    pub fn resume_read(&mut self) {
        if self.inner.is(flag::PAUSED) {
            self.inner.set(flag::PAUSED, false);
            self.inner.restart_rx(self.io.now);
        }
    }

    /// Is reading paused by the handler?
    pub fn is_read_paused(&self) -> bool {
        self.inner.is(flag::PAUSED)
    }

    fn cfg_mut(&mut self) -> &mut ConnConfig {
        self.inner.cfg_mut(&self.io.flow, self.io.now)
    }

    fn to_ticks(&self, d: Option<Duration>) -> u64 {
        d.map_or(0, |d| self.io.flow.clock.ticks(d).max(1))
    }

    /// Sets this connection's idle timeout (`None`: off): it closes with
    /// [`TimeoutKind::Idle`] after that long without traffic in either direction.
    /// Default: [`Options::idle_timeout`](crate::Options::idle_timeout).
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        let t = self.to_ticks(timeout);
        self.cfg_mut().idle = t;
        self.inner.tidy_timing(&self.io.flow);
    }

    /// Sets this connection's read timeout (`None`: off): it closes with
    /// [`TimeoutKind::Read`] after that long without receiving a byte while it
    /// wants to read. Default: [`Options::read_timeout`](crate::Options::read_timeout).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        let t = self.to_ticks(timeout);
        self.cfg_mut().read = t;
        self.inner.tidy_timing(&self.io.flow);
    }

    /// Sets this connection's write (stall) timeout (`None`: off): it closes with
    /// [`TimeoutKind::Write`] when bytes are queued and the kernel took none of them
    /// for that long. Default: [`Options::write_timeout`](crate::Options::write_timeout).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        let t = self.to_ticks(timeout);
        self.cfg_mut().write = t;
        self.inner.tidy_timing(&self.io.flow);
    }

    /// Sets an absolute deadline (`None`: clears it): at that instant the
    /// connection closes with [`TimeoutKind::Deadline`], whatever its traffic. Meant
    /// for phases that must finish in time, such as a TLS handshake or a first
    /// request; clear it when the phase is done. Fires up to two timer ticks
    /// ([`Options::timer_resolution`](crate::Options::timer_resolution)) late, never
    /// early.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        let clock = self.io.flow.clock;
        // The tick after the one the deadline falls in: never early.
        let t = deadline.map_or(0, |d| clock.tick(d) + 1);
        self.cfg_mut().deadline = t;
        if t == 0 {
            self.inner.tidy_timing(&self.io.flow);
        }
    }

    /// Sets the connection's timer (`None`: clears it): at that instant
    /// [`EventHandler::on_timer`](crate::EventHandler::on_timer) runs for this
    /// connection, once. Unlike [`set_deadline`](Conn::set_deadline) it does not
    /// close anything: the handler decides (send a keep-alive ping, warn, close).
    /// One timer per connection; setting it again replaces it. Like the timeouts it
    /// lives on the loop's timing wheel: it fires up to two ticks late, never early.
    pub fn set_timer(&mut self, at: Option<Instant>) {
        let clock = self.io.flow.clock;
        let t = at.map_or(0, |d| clock.tick(d) + 1);
        self.inner.set_timer_tick(t, self.io.now);
        if t == 0 {
            self.inner.tidy_timing(&self.io.flow);
        }
    }

    /// The per-connection state.
    pub fn state(&self) -> &S {
        &self.inner.state
    }

    /// The per-connection state, mutably.
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.inner.state
    }

    /// A dialer on this connection's engine, typed by the handler's state: dial
    /// new connections (served by the same handler) with their initial state, for
    /// example an upstream paired with this client.
    pub fn dialer(&self) -> crate::Dialer<S>
    where
        S: Send + 'static,
    {
        crate::Dialer::new(self.io.engine.clone())
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ConnHandle {
        ConnHandle {
            shared: self.io.shared.clone(),
            index: self.index,
            gen: self.gen,
        }
    }

    /// The connection's engine-wide identity (the same as its handles' [`ConnHandle::id`]).
    pub fn id(&self) -> ConnId {
        ConnId::new(self.io.shared.index, self.index, self.gen)
    }

    /// Index of the event loop serving this connection.
    pub fn loop_index(&self) -> usize {
        self.io.shared.index
    }

    /// The raw socket descriptor (for options netloop does not wrap; do not close it,
    /// and do not read or write it: on the io_uring backend it is in blocking mode,
    /// which io_uring needs to wait for room and bytes itself).
    pub fn fd(&self) -> RawFd {
        self.inner.raw_fd()
    }

    /// The socket, for options through `socket2` (`set_nodelay`, `set_keepalive`,
    /// `set_linger`, `set_send_buffer_size`, …). `socket2` is a deliberate public
    /// dependency here (and only here): it is the ecosystem's socket-options crate,
    /// and wrapping each option would add nothing.
    pub fn socket(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(&self.inner.fd)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<Addr> {
        to_addr(self.socket().local_addr()?)
    }

    /// The peer's address: the client's, as a transport layer learned it (a PROXY
    /// protocol header from a load balancer), or else the socket's peer (asked of
    /// the kernel, not stored: idle connections stay small).
    pub fn peer_addr(&self) -> io::Result<Addr> {
        peer_addr_of(self.inner.fd.as_fd(), self.layers())
    }

    /// The socket's own peer address, whatever a transport layer says (behind a
    /// load balancer: the balancer's address).
    pub fn socket_peer_addr(&self) -> io::Result<Addr> {
        to_addr(self.socket().peer_addr()?)
    }

    /// The PROXY protocol header the load balancer sent ahead of the client's
    /// bytes: the original destination, the TLVs (ALPN, authority, TLS details,
    /// unique id). `None` unless the listener takes the PROXY protocol
    /// ([`ListenConfig::proxy_protocol`](crate::ListenConfig::proxy_protocol))
    /// and this connection came from a trusted proxy.
    pub fn proxy_header(&self) -> Option<&crate::protocol::proxy::ProxyHeader> {
        self.layer::<crate::transport::ProxyLayer>()?.header()
    }

    /// The connection's transport layers, if its listener has any.
    fn layers(&self) -> Option<&Layers> {
        self.inner.cold.as_ref().and_then(|c| c.layers.as_deref())
    }

    /// The connection's transport layer of type `T`, for its accessors.
    pub(crate) fn layer<T: 'static>(&self) -> Option<&T> {
        self.layers().and_then(|l| l.get::<T>())
    }
}

/// The client's address as a transport layer learned it, else the socket's
/// peer (for [`Conn::peer_addr`] and the framed adapter's equivalent).
pub(crate) fn peer_addr_of(fd: BorrowedFd<'_>, layers: Option<&Layers>) -> io::Result<Addr> {
    if let Some(a) = layers.and_then(|l| l.peer_addr()) {
        return Ok(a);
    }
    to_addr(socket2::SockRef::from(&fd).peer_addr()?)
}

/// Converts a socket2 address into an [`Addr`].
pub(crate) fn to_addr(a: socket2::SockAddr) -> io::Result<Addr> {
    if let Some(sa) = a.as_socket() {
        return Ok(Addr::Tcp(sa));
    }
    match a.as_pathname() {
        Some(p) => Ok(Addr::Unix(p.to_path_buf())),
        None => Ok(Addr::Unix(Default::default())), // unnamed (client-side) Unix socket
    }
}
