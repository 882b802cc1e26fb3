//! Engine options and their defaults.

use std::time::Duration;

/// The kernel interface an engine's event loops run on.
///
/// | backend | accept | receive | send | per message |
/// |---|---|---|---|---|
/// | `Epoll` | `accept4` when the listener is readable | `read` into the loop's shared buffer when readable | `send` at once; the rest queued until writable | 2 syscalls (a read, a send) |
/// | `IoUring` | one multishot accept | one multishot receive per connection into the loop's provided-buffer ring | queued; one send per connection per round, submitted with the wait | a fraction of one `io_uring_enter` |
///
/// Handlers, codecs, protocols and transport layers behave the same on both:
/// received bytes are lent in place and only what a handler leaves is copied;
/// an idle connection holds no buffer on either. Under io_uring a write inside a
/// callback is always queued (it leaves with the round's submission), so
/// [`Conn::outbound_len`](crate::Conn::outbound_len) counts it until its send
/// completes. Flow control holds on both, with one difference in degree: when
/// reading stops (a pause, the inbound cap, a handler pausing at the high water
/// mark) io_uring may already have received a round's worth of bytes for the
/// connection; they are kept, never dropped, and the handler sees them when
/// reading resumes. Near the cap and past the low water mark a connection reads
/// with single bounded receives, so the overshoot stays small.
///
/// What stays on epoll under `IoUring`: the main reactor of [`Mode::Reactor`]
/// (it only accepts and hands sockets over; the sub-loops run io_uring) and
/// [`UdpEngine`](crate::udp::UdpEngine) (datagrams are batched with
/// `recvmmsg`/`sendmmsg` already).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// epoll(7): readiness, on every Linux kernel (the default).
    #[default]
    Epoll,
    /// io_uring(7): completions, multishot accept and receive into a provided
    /// buffer ring, sends batched per round. Needs Linux 6.0 or later (6.1 for
    /// deferred task work); starting fails if the kernel refuses io_uring.
    IoUring,
    /// io_uring when the kernel offers what it needs (probed at start: ring
    /// creation, the opcodes, a provided-buffer ring), else epoll with one log line
    /// saying why. io_uring is often refused — by container seccomp profiles or
    /// `kernel.io_uring_disabled` — and `NETLOOP_REFUSE_IO_URING=1` in the
    /// environment refuses it on purpose. [`Engine::backend`](crate::Engine::backend)
    /// tells which one runs.
    Auto,
}

impl std::str::FromStr for Backend {
    type Err = String;
    /// `epoll`, `uring` (or `io_uring`, `io-uring`) or `auto`.
    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "epoll" => Ok(Backend::Epoll),
            "uring" | "io_uring" | "io-uring" | "iouring" => Ok(Backend::IoUring),
            "auto" => Ok(Backend::Auto),
            _ => Err(format!("unknown backend {s:?} (epoll|uring|auto)")),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Epoll => "epoll",
            Backend::IoUring => "io_uring",
            Backend::Auto => "auto",
        })
    }
}

/// How an engine spreads connections over its event loops.
///
/// | mode | who accepts | balancing |
/// |---|---|---|
/// | `Single` | the one loop | none |
/// | `Reactor` | a main reactor thread | a [`LoadBalancer`] picks a sub-loop per connection |
/// | `ReusePort` | every loop, on its own `SO_REUSEPORT` listener | the kernel (hash of the 4-tuple) |
/// | `Shared` | every loop, on one listener registered with `EPOLLEXCLUSIVE` | whichever loop is woken |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// One event loop that accepts and serves: the classic single reactor.
    /// `loops` is ignored (always 1).
    Single,
    /// A main reactor thread accepts and hands each connection to one of the
    /// sub-loops chosen by the load balancer (the default).
    #[default]
    Reactor,
    /// Every loop has its own listener bound with `SO_REUSEPORT`; the kernel
    /// balances. Unix sockets have no `SO_REUSEPORT`: they fall back to `Shared`.
    ReusePort,
    /// Every loop competes for accepts on one shared listener, registered with
    /// `EPOLLEXCLUSIVE` so one connection wakes one loop (no thundering herd).
    Shared,
}

/// How the main reactor ([`Mode::Reactor`]) picks a sub-loop for a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LoadBalancer {
    /// Each loop in turn (the default).
    #[default]
    RoundRobin,
    /// The loop with the fewest open connections at that moment.
    LeastConnections,
    /// A hash of the peer's IP address (not the port), so one client host always
    /// lands on the same loop. Unix-socket peers go round-robin.
    SourceAddrHash,
}

/// Engine options. Every field has a documented default ([`Options::default`]);
/// set fields directly or through [`EngineBuilder`](crate::EngineBuilder)'s methods.
#[derive(Clone, Debug)]
pub struct Options {
    /// Number of event loops (threads serving connections). Default: the number of
    /// CPUs available to the process.
    pub loops: usize,
    /// How connections are spread over the loops. Default: [`Mode::Reactor`].
    pub mode: Mode,
    /// Balancer for [`Mode::Reactor`]. Default: round-robin.
    pub load_balancer: LoadBalancer,
    /// `SO_REUSEADDR` on listeners. Default: on.
    pub reuse_addr: bool,
    /// `SO_REUSEPORT` on listeners (always on in [`Mode::ReusePort`]). Default: off.
    pub reuse_port: bool,
    /// An IPv6 listener (`[::]:port`) accepts IPv6 connections only
    /// (`IPV6_V6ONLY`). Off, like Go's and the kernel's default: a listener on `[::]`
    /// also accepts IPv4 clients (as IPv4-mapped addresses). Default: off.
    pub ipv6_only: bool,
    /// Size of each loop's shared read buffer: sockets are read into it first and
    /// only bytes a handler leaves unconsumed are copied to the connection.
    /// Default: 64 KiB.
    pub read_buffer_size: usize,
    /// Size of the pooled blocks that hold outbound bytes the socket could not take
    /// at once (rounded up to a power of two, at least 4 KiB): larger blocks mean
    /// fewer iovecs per flush for big backlogs, smaller ones less memory per
    /// slightly backed-up connection. Default: 16 KiB.
    pub write_buffer_size: usize,
    /// Bytes of free buffer blocks each loop keeps for reuse. Default: 16 MiB.
    pub buffer_pool_bytes: usize,
    /// `TCP_NODELAY` on accepted TCP connections. Default: on.
    pub tcp_nodelay: bool,
    /// TCP keepalive idle time on accepted connections. Default: none (off).
    pub tcp_keepalive: Option<Duration>,
    /// `SO_RCVBUF` on accepted connections. Default: the kernel's.
    pub socket_recv_buffer: Option<usize>,
    /// `SO_SNDBUF` on accepted connections. Default: the kernel's.
    pub socket_send_buffer: Option<usize>,
    /// Register connections edge-triggered (`EPOLLET`) instead of level-triggered.
    /// Default: off.
    pub edge_triggered: bool,
    /// With edge triggering: reads per connection per wake-up before the loop moves
    /// on to others (the rest is read on the next round). Default: 16.
    pub read_budget: usize,
    /// Call [`EventHandler::on_tick`](crate::EventHandler::on_tick) on every loop.
    /// Default: off.
    pub ticker: bool,
    /// Pin loop `i` to CPU `i % cpus`. Default: off.
    pub cpu_affinity: bool,
    /// `listen(2)` backlog. Default: 1024.
    pub backlog: i32,
    /// The kernel interface the event loops run on ([`Backend`]). Default:
    /// [`Backend::Epoll`].
    pub backend: Backend,
    /// io_uring only: buffers in each loop's provided-buffer ring, the loop's
    /// shared receive buffer (a power of two, at most 32,768). Every connection
    /// whose bytes arrive in the same round takes one until the loop has lent it
    /// to the handler; more than this many at once make receives end with
    /// `ENOBUFS` and be re-armed (correct, but slower). Default: 1,024.
    pub uring_buffers: usize,
    /// io_uring only: bytes per buffer of the ring — the most one receive
    /// completion delivers. Default: 4 KiB (the ring takes `uring_buffers ×
    /// uring_buffer_size` = 4 MiB of address space per loop, resident as used).
    pub uring_buffer_size: usize,
    /// How long [`EngineHandle::stop`](crate::EngineHandle::stop) waits, after the
    /// drain period ([`drain_timeout`](Self::drain_timeout)), for the loops to close
    /// their connections and exit. Default: 5 s.
    pub stop_timeout: Duration,

    // ----- flow control -----
    /// Outbound high water mark (Netty's `WriteBufferWaterMark`): once more than this
    /// many bytes are queued on a connection it becomes *unwritable*
    /// ([`Conn::is_writable`](crate::Conn::is_writable) is false) and the handler's
    /// [`on_writable_changed`](crate::EventHandler::on_writable_changed) is told.
    /// Writes still succeed; the mark is advice to stop producing. Per connection:
    /// [`Conn::set_write_water_marks`](crate::Conn::set_write_water_marks).
    /// Default: 64 KiB.
    pub write_high_water: usize,
    /// Outbound low water mark: an unwritable connection becomes writable again once
    /// its queue has drained to this many bytes or fewer. Default: 32 KiB.
    pub write_low_water: usize,
    /// Hard cap on bytes queued outbound per connection (async writes included): a
    /// write that would queue more closes the connection with
    /// [`CloseReason::OutboundOverflow`](crate::CloseReason::OutboundOverflow) (the
    /// write returns an error; the queue is freed) instead of growing memory without
    /// bound. Default: 64 MiB.
    pub max_outbound_bytes: usize,
    /// Cap on bytes buffered inbound per connection (received but not consumed by
    /// the handler). At the cap the loop stops reading the connection (drops its
    /// read interest, so a level-triggered loop does not spin) until the handler
    /// consumes below it — typically in a later `on_traffic` run by
    /// [`ConnHandle::wake`](crate::ConnHandle::wake). It must stay above the largest
    /// frame a codec or protocol layer accepts (their limits default to 1 MiB), so
    /// that an over-long frame is rejected by the codec rather than stalling at the
    /// cap. Under io_uring, receives the kernel had already completed when the cap
    /// was reached are kept, not dropped (they are the stream's bytes): the cap can
    /// be passed by one round of receives, itself bounded by the socket's receive
    /// buffer. Default: 4 MiB.
    pub max_inbound_bytes: usize,
    /// Stop reading a connection while it is unwritable — while more than
    /// [`write_high_water`](Self::write_high_water) bytes are queued for it — and
    /// resume once the queue drains to [`write_low_water`](Self::write_low_water)
    /// (Netty's auto-read pattern). A peer that sends requests and never reads the
    /// replies then costs the water marks plus its socket buffers, not the
    /// outbound cap: its own sends stall in TCP flow control. Turn off for handlers
    /// that must keep reading whatever the backlog (they then rely on
    /// `max_outbound_bytes`). Default: on.
    pub read_backpressure: bool,
    /// When the peer half-closes (shuts down its sending side), keep the connection
    /// open for the handler instead of closing it once the outbound queue drains:
    /// [`EventHandler::on_read_closed`](crate::EventHandler::on_read_closed) is
    /// called and the handler closes when it is done writing (replies computed on
    /// a worker can still be sent). Netty's `ALLOW_HALF_CLOSURE`. Default: off (a
    /// half-closed connection closes as soon as everything queued has been sent).
    pub allow_half_closure: bool,
    /// Lingering close: when a connection is closed on this side while the peer may
    /// still be sending (it has not half-closed), netloop sends what is queued,
    /// shuts down its sending side, and reads and discards what still arrives until
    /// the peer closes or this much time passes, then closes. Closing a socket with
    /// unread bytes makes the kernel send a reset that can destroy the last
    /// response before the peer reads it (a client uploading a rejected body would
    /// see "connection reset" instead of the error status). Zero turns it off.
    /// Default: 2 s.
    pub linger_timeout: Duration,

    // ----- timeouts -----
    /// Close a connection after this long without traffic in either direction
    /// ([`TimeoutKind::Idle`](crate::TimeoutKind::Idle)). Per connection:
    /// [`Conn::set_idle_timeout`](crate::Conn::set_idle_timeout). Default: none.
    pub idle_timeout: Option<Duration>,
    /// Close a connection that wants to read and received nothing for this long
    /// ([`TimeoutKind::Read`](crate::TimeoutKind::Read)); time with reading paused
    /// does not count. Default: none.
    pub read_timeout: Option<Duration>,
    /// Close a connection with bytes queued outbound of which the kernel took none
    /// for this long ([`TimeoutKind::Write`](crate::TimeoutKind::Write)): a stall
    /// timeout, so a slow but progressing reader is not cut off. Default: none.
    pub write_timeout: Option<Duration>,
    /// Tick of each loop's timing wheel: timeouts fire between their duration and
    /// that plus two ticks. A loop with no timer armed never wakes for timers.
    /// Default: 10 ms.
    pub timer_resolution: Duration,

    // ----- limits and shutdown -----
    /// Maximum connections open across the engine. Past it, new connections are
    /// accepted and closed at once (the client sees end-of-file; counted in
    /// [`Stats::rejected`](crate::Stats::rejected)) rather than left in the backlog,
    /// so the listener never stays readable and the loop never spins. `None` or
    /// `Some(0)`: unlimited. Default: unlimited.
    ///
    /// Exact with one accepting thread ([`Mode::Single`], [`Mode::Reactor`]); in
    /// [`Mode::Shared`] and [`Mode::ReusePort`] loops accept concurrently, so the
    /// count can pass the limit by up to `loops - 1` for a moment.
    pub max_connections: Option<usize>,
    /// After [`EngineHandle::stop`](crate::EngineHandle::stop): how long connections
    /// get to send what is queued for them before the rest are closed. A second
    /// `stop` (or [`EngineHandle::stop_now`](crate::EngineHandle::stop_now)) ends the
    /// drain at once. Default: 5 s.
    pub drain_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            loops: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            mode: Mode::default(),
            load_balancer: LoadBalancer::default(),
            reuse_addr: true,
            reuse_port: false,
            ipv6_only: false,
            read_buffer_size: 64 * 1024,
            write_buffer_size: 16 * 1024,
            buffer_pool_bytes: 16 * 1024 * 1024,
            tcp_nodelay: true,
            tcp_keepalive: None,
            socket_recv_buffer: None,
            socket_send_buffer: None,
            edge_triggered: false,
            read_budget: 16,
            ticker: false,
            cpu_affinity: false,
            backlog: 1024,
            stop_timeout: Duration::from_secs(5),
            backend: Backend::default(),
            uring_buffers: 1024,
            uring_buffer_size: 4096,
            write_high_water: 64 * 1024,
            write_low_water: 32 * 1024,
            max_outbound_bytes: 64 * 1024 * 1024,
            max_inbound_bytes: 4 * 1024 * 1024,
            read_backpressure: true,
            allow_half_closure: false,
            linger_timeout: Duration::from_secs(2),
            idle_timeout: None,
            read_timeout: None,
            write_timeout: None,
            timer_resolution: Duration::from_millis(10),
            max_connections: None,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

impl Options {
    /// Checks every option against its bounds and the options against each other.
    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
        use crate::Error;
        const MIB: usize = 1 << 20;
        const TIB: usize = 1 << 40;
        fn range<T: PartialOrd + std::fmt::Debug>(
            name: &'static str,
            v: T,
            lo: T,
            hi: T,
            unit: &str,
        ) -> Result<(), Error> {
            if v < lo || v > hi {
                return Err(Error::InvalidOption {
                    name,
                    reason: format!("{v:?} is outside {lo:?}..={hi:?}{unit}"),
                });
            }
            Ok(())
        }
        let bad = |name: &'static str, reason: &str| {
            Err(Error::InvalidOption {
                name,
                reason: reason.to_string(),
            })
        };
        range("loops", self.loops, 1, 1024, "")?;
        // The read buffer is allocated per loop at start; a block of the outbound
        // queue per write that does not fit the socket.
        range(
            "read_buffer_size",
            self.read_buffer_size,
            512,
            64 * MIB,
            " bytes",
        )?;
        range(
            "write_buffer_size",
            self.write_buffer_size,
            512,
            64 * MIB,
            " bytes",
        )?;
        range(
            "buffer_pool_bytes",
            self.buffer_pool_bytes,
            0,
            TIB,
            " bytes",
        )?;
        range("read_budget", self.read_budget, 1, 1 << 16, "")?;
        range("uring_buffers", self.uring_buffers, 1, 32_768, "")?;
        if !self.uring_buffers.is_power_of_two() {
            return bad("uring_buffers", "must be a power of two");
        }
        range(
            "uring_buffer_size",
            self.uring_buffer_size,
            512,
            MIB,
            " bytes",
        )?;
        range("backlog", self.backlog, 1, 1 << 20, "")?;
        range(
            "max_outbound_bytes",
            self.max_outbound_bytes,
            1,
            TIB,
            " bytes",
        )?;
        range(
            "max_inbound_bytes",
            self.max_inbound_bytes,
            1,
            TIB,
            " bytes",
        )?;
        range("write_high_water", self.write_high_water, 0, TIB, " bytes")?;
        for (name, v) in [
            ("socket_recv_buffer", self.socket_recv_buffer),
            ("socket_send_buffer", self.socket_send_buffer),
        ] {
            if let Some(v) = v {
                range(name, v, 1, i32::MAX as usize / 2, " bytes")?;
            }
        }
        if let Some(k) = self.tcp_keepalive {
            // TCP_KEEPIDLE is at most 32,767 s on Linux.
            range(
                "tcp_keepalive",
                k,
                Duration::from_secs(1),
                Duration::from_secs(32_767),
                "",
            )?;
        }
        range(
            "timer_resolution",
            self.timer_resolution,
            Duration::from_millis(1),
            Duration::from_secs(60),
            "",
        )?;
        if self.write_low_water > self.write_high_water {
            return bad("write_low_water", "must not exceed write_high_water");
        }
        if self.write_high_water > self.max_outbound_bytes {
            return bad("write_high_water", "must not exceed max_outbound_bytes");
        }
        // Durations (timeouts, drain and stop times) take any value: deadlines past
        // the far future saturate instead of overflowing.
        Ok(())
    }

    /// The number of loops this configuration actually runs.
    pub(crate) fn loop_count(&self) -> usize {
        if self.mode == Mode::Single {
            1
        } else {
            self.loops
        }
    }
}
