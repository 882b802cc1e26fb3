//! Outgoing connections: dialing TCP and Unix stream sockets from an engine's
//! loops, and adopting already-connected sockets.
//!
//! # How a dial runs
//! 1. On the caller's thread, [`EngineHandle::dial`] resolves the address, creates a
//!    non-blocking socket and starts `connect(2)` (`EINPROGRESS` for TCP). Nothing
//!    here blocks except name resolution of a host name.
//! 2. The socket travels to the chosen loop as a task. The loop registers it for
//!    **writability** under a token from a reserved range (bit 31 of the low word set,
//!    which connection tokens never have; see `is_dial_token`), and files its
//!    deadline in a small per-loop min-heap.
//! 3. Writable (or error/hang-up): `SO_ERROR` says whether the connect succeeded. On
//!    success the socket leaves the pending list and becomes an **ordinary slab
//!    connection**: the loop's socket options are applied, `on_open` runs, and the
//!    [`DialCallback`] gets its [`ConnHandle`] — writes, wake-ups, handles and close
//!    behave exactly as for accepted connections. On failure the callback gets
//!    [`Error::Connect`] and the socket is closed.
//! 4. The deadline passes first: the socket is closed and the callback gets
//!    [`Error::ConnectTimeout`].
//!
//! The callback is called **exactly once** in every case, including a bad address,
//! an immediate refusal and an engine that stops with the dial pending
//! ([`Error::EngineStopped`]). It runs on the loop thread (or, for failures found
//! before the hand-off, on the caller's thread), so it must not block.
//!
//! Per-connection state for a dialed connection can be given up front with
//! [`DialOptions::state`] through a [`Dialer`] typed by the handler's `State`
//! ([`Conn::dialer`](crate::Conn::dialer), [`Client::dialer`](crate::Client::dialer));
//! `on_open` then sees it (a proxy uses this to pair the upstream connection with
//! the client it serves).
//!
//! The deadline list is deliberately minimal (a heap with lazy deletion: a
//! finished dial's entry is skipped when it surfaces) and isolated here, so it can
//! move onto the loop's general timer facility later.

use crate::addr::{Addr, ToAddr};
use crate::conn::ConnHandle;
use crate::driver::{Driver, Interest, Trigger};
use crate::engine::task_queue::Task;
use crate::engine::timer::later;
use crate::engine::{shared::IN_LOOP, EngineHandle};
use crate::error::Error;
use socket2::{Domain, SockAddr, Socket, Type};
use std::any::Any;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Completion of a dial or adopt: the new connection's handle, or why there is none.
/// Called exactly once, on the loop thread (or the caller's, for early failures).
pub type DialCallback = Box<dyn FnOnce(Result<ConnHandle, Error>) + Send + 'static>;

/// How to dial: timeout, which loop, the connection's initial state.
///
/// The state's type is part of the options' type: a [`Dialer<S>`] dials with
/// `DialOptions<S>` only, and a dialer for an engine is typed by its handler's
/// `State` ([`Conn::dialer`](crate::Conn::dialer), [`Client::dialer`](crate::Client::dialer)),
/// so a state of the wrong type does not compile.
pub struct DialOptions<S = ()> {
    pub(crate) timeout: Option<Duration>,
    pub(crate) loop_index: Option<usize>,
    pub(crate) state: Option<S>,
}

impl<S> Default for DialOptions<S> {
    fn default() -> Self {
        DialOptions {
            timeout: None,
            loop_index: None,
            state: None,
        }
    }
}

impl<S> std::fmt::Debug for DialOptions<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialOptions")
            .field("timeout", &self.timeout)
            .field("loop_index", &self.loop_index)
            .field("state", &self.state.is_some())
            .finish()
    }
}

impl<S> DialOptions<S> {
    /// No timeout, the next loop round-robin, default state.
    pub fn new() -> DialOptions<S> {
        DialOptions::default()
    }

    /// Gives up (with [`Error::ConnectTimeout`]) if the connection is not
    /// established within `timeout`. Default: none (the kernel's own limit, minutes
    /// for TCP). A timeout too long to represent means none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Serves the connection on loop `index` (modulo the loop count); for example
    /// the caller's own loop, from a handler. Default: round-robin over the loops.
    pub fn on_loop(mut self, index: usize) -> Self {
        self.loop_index = Some(index);
        self
    }
    /// The connection's initial per-connection state, seen by `on_open`; a
    /// [`Dialer`] for the handler's `State` type takes these options.
    pub fn state(mut self, state: S) -> Self {
        self.state = Some(state);
        self
    }
}

/// Dials on an engine whose handler's per-connection state is `S`: like
/// [`EngineHandle::dial`], with the new connection's initial state given in the
/// options and checked by the compiler. Cheap to clone, usable from any thread.
///
/// A state of another type is a compile error, not a failed dial:
///
/// ```compile_fail
/// # use netloop::{DialOptions, Dialer};
/// fn dial(dialer: &Dialer<u32>) {
///     dialer.dial("127.0.0.1:9000", DialOptions::new().state("not a u32"), |_| {});
/// }
/// ```
///
/// ```no_run
/// # use netloop::{DialOptions, Dialer};
/// fn dial(dialer: &Dialer<u32>) {
///     dialer.dial("127.0.0.1:9000", DialOptions::new().state(7), |res| {
///         println!("{res:?}");
///     });
/// }
/// ```
pub struct Dialer<S> {
    pub(crate) engine: EngineHandle,
    pub(crate) _state: std::marker::PhantomData<fn(S) -> S>,
}

impl<S> Clone for Dialer<S> {
    fn clone(&self) -> Self {
        Dialer {
            engine: self.engine.clone(),
            _state: std::marker::PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for Dialer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("state", &std::any::type_name::<S>())
            .finish()
    }
}

impl<S: Send + 'static> Dialer<S> {
    /// A dialer for `engine`, whose handler's state must be `S` (checked by the
    /// typed constructors, which are the only callers).
    pub(crate) fn new(engine: EngineHandle) -> Dialer<S> {
        Dialer {
            engine,
            _state: std::marker::PhantomData,
        }
    }

    /// Dials `addr` with the state in `opts` (see [`EngineHandle::dial`]).
    pub fn dial(
        &self,
        addr: impl ToAddr,
        opts: DialOptions<S>,
        cb: impl FnOnce(Result<ConnHandle, Error>) + Send + 'static,
    ) {
        let (timeout, loop_index, state) = erase(opts);
        self.engine
            .dial_erased(addr, timeout, loop_index, state, Box::new(cb))
    }

    /// Dials and waits for the outcome (see [`EngineHandle::dial_blocking`]).
    pub fn dial_blocking(
        &self,
        addr: impl ToAddr,
        opts: DialOptions<S>,
    ) -> Result<ConnHandle, Error> {
        blocking(|cb| self.dial(addr, opts, cb))
    }

    /// Serves a connected socket with the state in `opts` (see
    /// [`EngineHandle::adopt`]).
    pub fn adopt(
        &self,
        socket: impl Into<OwnedFd>,
        opts: DialOptions<S>,
        cb: impl FnOnce(Result<ConnHandle, Error>) + Send + 'static,
    ) {
        let (_, loop_index, state) = erase(opts);
        self.engine
            .adopt_erased(socket.into(), loop_index, state, Box::new(cb))
    }
}

/// Options with their state boxed for the trip to the loop.
type Erased = (Option<Duration>, Option<usize>, Option<Box<dyn Any + Send>>);

fn erase<S: Send + 'static>(opts: DialOptions<S>) -> Erased {
    let state = opts.state.map(|s| Box::new(s) as Box<dyn Any + Send>);
    (opts.timeout, opts.loop_index, state)
}

/// Runs a dial and waits for its callback; refuses on a loop thread (it would wait
/// for its own loop).
fn blocking(dial: impl FnOnce(DialCallback)) -> Result<ConnHandle, Error> {
    if IN_LOOP.with(|f| f.get()) {
        return Err(Error::Config(
            "dial_blocking called on an event-loop thread; use dial".into(),
        ));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    dial(Box::new(move |res| {
        let _ = tx.send(res);
    }));
    rx.recv().unwrap_or(Err(Error::EngineStopped))
}

/// A socket on its way to a loop.
pub(crate) struct Dial {
    pub(crate) fd: OwnedFd,
    /// `connect` is in progress (false: already connected, or adopted).
    pub(crate) connecting: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) is_tcp: bool,
    pub(crate) state: Option<Box<dyn Any + Send>>,
    pub(crate) done: Completion,
}

/// The caller's side of a dial: what was dialed and whom to tell.
pub(crate) struct Completion {
    pub(crate) addr: String,
    cb: Option<DialCallback>,
}

impl Completion {
    /// Calls the callback with `res` (once), containing a panic in it.
    pub(crate) fn complete(mut self, res: Result<ConnHandle, Error>) {
        if let Err(e) = &res {
            tracing::debug!(addr = %self.addr, error = %e, "dial failed");
        }
        if let Some(cb) = self.cb.take() {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(res))).is_err() {
                tracing::error!("dial callback panicked");
            }
        }
    }
}

impl Dial {
    /// Fails the dial; the socket closes.
    pub(crate) fn fail(self, e: Error) {
        let Dial { fd, done, .. } = self;
        drop(fd);
        done.complete(Err(e));
    }

    /// The error for a failed connect.
    pub(crate) fn connect_error(&self, e: io::Error) -> Error {
        Error::Connect {
            addr: self.done.addr.clone(),
            source: e,
        }
    }
}

/// Bit 31 of the low word marks a dial token (connection indexes stay below 2^31).
const DIAL_BIT: u64 = 1 << 31;
/// Dial generations are kept to 31 bits, so a dial token's high word is never
/// all ones (the waker's and the listeners' tokens).
const GEN_MASK: u32 = 0x7fff_ffff;
/// Pending dials per loop at most (the slot index must fit below bit 31).
const MAX_DIALS: usize = 1 << 24;

/// Is `token` one of a loop's pending-dial tokens?
pub(crate) fn is_dial_token(token: u64) -> bool {
    token & DIAL_BIT != 0 && (token >> 32) as u32 <= GEN_MASK
}

fn dial_token(index: u32, gen: u32) -> u64 {
    (u64::from(gen & GEN_MASK) << 32) | DIAL_BIT | u64::from(index)
}

struct DialSlot {
    gen: u32,
    dial: Option<Box<Dial>>,
}

/// A loop's pending connects.
#[derive(Default)]
pub(crate) struct Dials {
    slots: Vec<DialSlot>,
    free: Vec<u32>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    pending: usize,
}

impl Dials {
    /// Number of connects in progress.
    pub(crate) fn len(&self) -> usize {
        self.pending
    }

    /// Registers a connecting socket for writability. Hands it back on failure.
    pub(crate) fn start(
        &mut self,
        dial: Box<Dial>,
        poller: &mut impl Driver,
    ) -> Result<(), (Box<Dial>, io::Error)> {
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < MAX_DIALS => {
                self.slots.push(DialSlot { gen: 0, dial: None });
                (self.slots.len() - 1) as u32
            }
            None => {
                let e = io::Error::other("too many connects in progress on this loop");
                return Err((dial, e));
            }
        };
        let slot = &mut self.slots[index as usize];
        let token = dial_token(index, slot.gen);
        let write_only = Interest::NONE.with_write(true);
        if let Err(e) = poller.add(dial.fd.as_raw_fd(), token, write_only, Trigger::Level) {
            self.free.push(index);
            return Err((dial, e));
        }
        if let Some(d) = dial.deadline {
            self.deadlines.push(Reverse((d, token)));
        }
        slot.dial = Some(dial);
        self.pending += 1;
        Ok(())
    }

    /// Takes the dial behind `token` out of the poller and the list.
    fn take(&mut self, token: u64, poller: &mut impl Driver) -> Option<Box<Dial>> {
        let index = (token as u32 & !(DIAL_BIT as u32)) as usize;
        let slot = self.slots.get_mut(index)?;
        if dial_token(index as u32, slot.gen) != token {
            return None; // stale
        }
        let dial = slot.dial.take()?;
        slot.gen = slot.gen.wrapping_add(1) & GEN_MASK;
        self.free.push(index as u32);
        self.pending -= 1;
        let _ = poller.delete(dial.fd.as_raw_fd(), token);
        Some(dial)
    }

    /// A pending socket became writable (or failed): the dial and its outcome.
    pub(crate) fn ready(
        &mut self,
        token: u64,
        poller: &mut impl Driver,
    ) -> Option<(Box<Dial>, io::Result<()>)> {
        let dial = self.take(token, poller)?;
        let sock = socket2::SockRef::from(&dial.fd);
        let res = match sock.take_error() {
            Ok(Some(e)) => Err(e),
            Err(e) => Err(e),
            // No error, but not connected either would mean a spurious event; a
            // peer address proves the connect completed.
            Ok(None) => sock.peer_addr().map(|_| ()),
        };
        Some((dial, res))
    }

    /// The earliest deadline (possibly of a dial that already finished: waking for
    /// it early is harmless).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((d, _))| *d)
    }

    /// Takes every dial whose deadline has passed.
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        poller: &mut impl Driver,
        mut f: impl FnMut(Box<Dial>),
    ) {
        while let Some(Reverse((d, token))) = self.deadlines.peek().copied() {
            if d > now {
                break;
            }
            self.deadlines.pop();
            if let Some(dial) = self.take(token, poller) {
                f(dial);
            }
        }
        if self.pending == 0 {
            self.deadlines.clear();
        }
    }

    /// Takes every pending dial (the loop is stopping).
    pub(crate) fn drain(&mut self, poller: &mut impl Driver, mut f: impl FnMut(Box<Dial>)) {
        for index in 0..self.slots.len() {
            let gen = self.slots[index].gen;
            if let Some(dial) = self.take(dial_token(index as u32, gen), poller) {
                f(dial);
            }
        }
        self.deadlines.clear();
    }
}

/// Starts a non-blocking connect to `addr`.
fn connect(addr: &Addr) -> io::Result<(OwnedFd, bool, bool)> {
    let (sock, target, is_tcp) = match addr {
        Addr::Tcp(sa) => (
            Socket::new(
                Domain::for_address(*sa),
                Type::STREAM.nonblocking().cloexec(),
                None,
            )?,
            SockAddr::from(*sa),
            true,
        ),
        Addr::Unix(path) => (
            Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?,
            SockAddr::unix(path)?,
            false,
        ),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("cannot dial {other}: only tcp and unix stream addresses"),
            ))
        }
    };
    match sock.connect(&target) {
        Ok(()) => Ok((sock.into(), false, is_tcp)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((sock.into(), true, is_tcp)),
        // A Unix listener whose backlog is full: non-blocking connect cannot wait.
        Err(e) if !is_tcp && e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "the Unix listener's backlog is full",
        )),
        Err(e) => Err(e),
    }
}

impl EngineHandle {
    /// Dials `addr` (`tcp://`, `tcp4://`, `tcp6://`, `unix://`, or `HOST:PORT`) and
    /// serves the connection on one of this engine's loops with the engine's
    /// [`EventHandler`](crate::EventHandler), like an accepted one. The connection
    /// starts with the default state; to give it one, dial through a typed
    /// [`Dialer`] ([`Conn::dialer`](crate::Conn::dialer),
    /// [`Client::dialer`](crate::Client::dialer)).
    ///
    /// `cb` is called exactly once: with the connection's [`ConnHandle`] after
    /// `on_open` ran, or with the error ([`Error::Connect`] for refused/unreachable,
    /// [`Error::ConnectTimeout`], [`Error::EngineStopped`], an address error).
    /// See [`DialOptions`] for what a dial can be given.
    pub fn dial(
        &self,
        addr: impl ToAddr,
        opts: DialOptions,
        cb: impl FnOnce(Result<ConnHandle, Error>) + Send + 'static,
    ) {
        self.dial_erased(addr, opts.timeout, opts.loop_index, None, Box::new(cb))
    }

    /// Dials and waits for the outcome (see [`dial`](Self::dial)). Must not be
    /// called on a loop thread (it would wait for its own loop): returns
    /// [`Error::Config`] there.
    pub fn dial_blocking(&self, addr: impl ToAddr, opts: DialOptions) -> Result<ConnHandle, Error> {
        blocking(|cb| self.dial(addr, opts, cb))
    }

    /// Serves an already-connected socket (a `std::net::TcpStream`, a
    /// `std::os::unix::net::UnixStream`, or any stream socket as an `OwnedFd`) on one
    /// of the loops. It is made non-blocking; `cb` gets its handle after `on_open`.
    /// Only the loop field of `opts` applies.
    pub fn adopt(
        &self,
        socket: impl Into<OwnedFd>,
        opts: DialOptions,
        cb: impl FnOnce(Result<ConnHandle, Error>) + Send + 'static,
    ) {
        self.adopt_erased(socket.into(), opts.loop_index, None, Box::new(cb))
    }

    fn dial_erased(
        &self,
        addr: impl ToAddr,
        timeout: Option<Duration>,
        loop_index: Option<usize>,
        state: Option<Box<dyn Any + Send>>,
        cb: DialCallback,
    ) {
        let addr = match addr.to_addr() {
            Ok(a) => a,
            Err(e) => return cb(Err(e)),
        };
        let shown = addr.to_string();
        let (fd, connecting, is_tcp) = match connect(&addr) {
            Ok(r) => r,
            Err(e) => {
                return cb(Err(Error::Connect {
                    addr: shown,
                    source: e,
                }))
            }
        };
        let dial = Dial {
            fd,
            connecting,
            timeout,
            deadline: timeout.map(|t| later(Instant::now(), t)),
            is_tcp,
            state,
            done: Completion {
                addr: shown,
                cb: Some(cb),
            },
        };
        self.hand_over(Box::new(dial), loop_index);
    }

    fn adopt_erased(
        &self,
        fd: OwnedFd,
        loop_index: Option<usize>,
        state: Option<Box<dyn Any + Send>>,
        cb: DialCallback,
    ) {
        let sock = socket2::SockRef::from(&fd);
        if let Err(e) = sock.set_nonblocking(true) {
            return cb(Err(Error::Io(e)));
        }
        let peer = sock.peer_addr().ok();
        let is_tcp = peer.as_ref().is_some_and(|p| p.as_socket().is_some());
        let addr = peer
            .and_then(|p| p.as_socket())
            .map_or_else(|| "adopted socket".to_string(), |a| a.to_string());
        let dial = Dial {
            fd,
            connecting: false,
            timeout: None,
            deadline: None,
            is_tcp,
            state,
            done: Completion { addr, cb: Some(cb) },
        };
        self.hand_over(Box::new(dial), loop_index);
    }

    fn hand_over(&self, dial: Box<Dial>, loop_index: Option<usize>) {
        let loops = self.loop_shared();
        if loops.is_empty() || self.is_stopping() {
            return dial.fail(Error::EngineStopped);
        }
        // Round-robin by default: a burst of dials is spread at once (connection
        // counts only rise when each connect completes, too late to balance on).
        let i = loop_index.unwrap_or_else(|| self.shared.next_dial.fetch_add(1, Ordering::Relaxed));
        let target = &loops[i % loops.len()];
        if let Err(task) = target.queue.push(Task::Connect(dial), false) {
            task.fail(|| Error::EngineStopped);
        }
    }
}
