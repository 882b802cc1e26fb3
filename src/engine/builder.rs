//! [`EngineBuilder`]: configuring and starting an engine.
//!
//! Starting is three steps, each of which can fail with a typed error and leaves
//! nothing behind when it does:
//!
//! 1. **bind** — every listener is bound (or adopted) and split among the loops
//!    and the main reactor according to the [`Mode`];
//! 2. **spawn** — one thread per loop (and one for the main reactor), each of
//!    which creates its driver, registers its listeners, allocates its read
//!    buffer and builds its handler;
//! 3. **wait until ready** — every thread reports that it is serving, or why it
//!    could not; the first failure stops the rest and is returned.

use super::acceptor;
use super::event_loop::{EventLoop, LoopSetup};
use super::handle::{EngineHandle, EngineShared};
use super::listener::{self, ListenSocket};
use super::shared::LoopShared;
use super::threads;
use super::Engine;
use crate::addr::{Addr, ToAddr};
use crate::error::{Error, Result};
use crate::handler::EventHandler;
use crate::options::{Backend, LoadBalancer, Mode, Options};
use crate::transport::{ListenConfig, Source};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long `start` waits for a thread to report that it is serving.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Configures and starts an [`Engine`].
///
/// Every [`Options`] field has a method of the same name here. [`options`] replaces
/// the whole set at once; fields set with the methods are applied on top of it,
/// whichever was called first.
///
/// [`options`]: EngineBuilder::options
///
/// ```no_run
/// use netloop::{Action, Conn, Engine, EventHandler, Mode};
/// use std::time::Duration;
///
/// #[derive(Clone)]
/// struct Echo;
/// impl EventHandler for Echo {
///     type State = ();
///     fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
///         let n = conn.buffered();
///         let data = conn.next(n).unwrap().to_vec();
///         let _ = conn.write(&data);
///         Action::None
///     }
/// }
///
/// let engine = Engine::builder()
///     .loops(4)
///     .mode(Mode::Reactor)
///     .idle_timeout(Some(Duration::from_secs(60)))
///     .listen("tcp://127.0.0.1:9000")
///     .listen("unix:///tmp/echo.sock")
///     .start(|_loop_index| Echo)
///     .unwrap();
/// println!("listening on {}", engine.local_addr());
/// engine.wait();
/// ```
#[must_use = "an engine builder does nothing until started"]
pub struct EngineBuilder {
    opts: Options,
    /// Fields set through the builder's methods, re-applied when
    /// [`options`](Self::options) replaces the base.
    fields: Vec<FieldSetter>,
    listeners: Vec<ListenConfig>,
    err: Option<Error>,
    /// Started as a [`Client`](crate::Client): no listening address needed.
    pub(crate) client: bool,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("options", &self.opts)
            .field("listeners", &self.listeners)
            .finish()
    }
}

/// Sets one option field (recorded so it can be re-applied).
type FieldSetter = Box<dyn Fn(&mut Options) + Send>;

/// Generates one builder method per option field.
macro_rules! option_setters {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty ),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $field(self, value: $ty) -> Self {
                self.set(move |o| o.$field = value.clone())
            }
        )*
    };
}

impl EngineBuilder {
    pub(super) fn new() -> EngineBuilder {
        EngineBuilder {
            opts: Options::default(),
            fields: Vec::new(),
            listeners: Vec::new(),
            err: None,
            client: false,
        }
    }

    /// Sets one field now, and again whenever [`options`](Self::options) replaces
    /// the base.
    fn set(mut self, f: impl Fn(&mut Options) + Send + 'static) -> Self {
        f(&mut self.opts);
        self.fields.push(Box::new(f));
        self
    }

    /// Replaces all options. Fields set with this builder's own methods (before
    /// or after this call) still apply on top; changes made through
    /// [`options_mut`](Self::options_mut) before this call do not.
    pub fn options(mut self, opts: Options) -> Self {
        self.opts = opts;
        for f in &self.fields {
            f(&mut self.opts);
        }
        self
    }

    /// The options as configured so far.
    pub fn options_mut(&mut self) -> &mut Options {
        &mut self.opts
    }

    /// Adds a listening address (several are allowed). A bad address is reported
    /// by [`start`](Self::start).
    pub fn listen(self, addr: impl ToAddr) -> Self {
        self.listen_with(ListenConfig::new(addr))
    }

    /// Adds a listener with its own configuration (transport layers such as TLS or
    /// the PROXY protocol, an inherited socket).
    pub fn listen_with(mut self, config: ListenConfig) -> Self {
        self.listeners.push(config);
        self
    }

    /// Serves an already-bound, listening stream socket (inherited from a parent
    /// process or a service manager): shorthand for
    /// `listen_with(ListenConfig::inherited(socket))`. It is made non-blocking;
    /// [`Mode::ReusePort`] serves it like [`Mode::Shared`].
    pub fn listener(self, socket: impl Into<std::os::fd::OwnedFd>) -> Self {
        self.listen_with(ListenConfig::inherited(socket))
    }

    /// Limits open connections across the engine ([`Options::max_connections`]).
    pub fn max_connections(self, n: usize) -> Self {
        self.set(move |o| o.max_connections = Some(n))
    }

    option_setters! {
        /// Number of event loops ([`Options::loops`]).
        loops: usize,
        /// How connections are spread over the loops ([`Options::mode`]).
        mode: Mode,
        /// The main reactor's load balancer ([`Options::load_balancer`]).
        load_balancer: LoadBalancer,
        /// `SO_REUSEADDR` on listeners ([`Options::reuse_addr`]).
        reuse_addr: bool,
        /// `SO_REUSEPORT` on listeners ([`Options::reuse_port`]).
        reuse_port: bool,
        /// IPv6 listeners accept only IPv6 ([`Options::ipv6_only`]).
        ipv6_only: bool,
        /// Size of each loop's shared read buffer ([`Options::read_buffer_size`]).
        read_buffer_size: usize,
        /// Size of the pooled outbound blocks ([`Options::write_buffer_size`]).
        write_buffer_size: usize,
        /// Free buffer memory each loop keeps ([`Options::buffer_pool_bytes`]).
        buffer_pool_bytes: usize,
        /// `TCP_NODELAY` on connections ([`Options::tcp_nodelay`]).
        tcp_nodelay: bool,
        /// TCP keepalive idle time ([`Options::tcp_keepalive`]).
        tcp_keepalive: Option<Duration>,
        /// `SO_RCVBUF` on connections ([`Options::socket_recv_buffer`]).
        socket_recv_buffer: Option<usize>,
        /// `SO_SNDBUF` on connections ([`Options::socket_send_buffer`]).
        socket_send_buffer: Option<usize>,
        /// Edge-triggered registration ([`Options::edge_triggered`]).
        edge_triggered: bool,
        /// Reads per connection per wake-up when edge-triggered ([`Options::read_budget`]).
        read_budget: usize,
        /// Calls `on_tick` on every loop ([`Options::ticker`]).
        ticker: bool,
        /// Pins loops to CPUs ([`Options::cpu_affinity`]).
        cpu_affinity: bool,
        /// `listen(2)` backlog ([`Options::backlog`]).
        backlog: i32,
        /// How long `stop` waits for the loops after the drain ([`Options::stop_timeout`]).
        stop_timeout: Duration,
        /// The kernel interface the loops run on ([`Options::backend`]).
        backend: Backend,
        /// io_uring: buffers in each loop's receive ring ([`Options::uring_buffers`]).
        uring_buffers: usize,
        /// io_uring: bytes per receive buffer ([`Options::uring_buffer_size`]).
        uring_buffer_size: usize,
        /// Outbound high water mark ([`Options::write_high_water`]).
        write_high_water: usize,
        /// Outbound low water mark ([`Options::write_low_water`]).
        write_low_water: usize,
        /// Hard cap on a connection's outbound queue ([`Options::max_outbound_bytes`]).
        max_outbound_bytes: usize,
        /// Cap on a connection's unconsumed inbound bytes ([`Options::max_inbound_bytes`]).
        max_inbound_bytes: usize,
        /// Stop reading while unwritable ([`Options::read_backpressure`]).
        read_backpressure: bool,
        /// Keep a half-closed connection open for the handler ([`Options::allow_half_closure`]).
        allow_half_closure: bool,
        /// Linger after a local close while the peer still sends ([`Options::linger_timeout`]).
        linger_timeout: Duration,
        /// Idle timeout ([`Options::idle_timeout`]).
        idle_timeout: Option<Duration>,
        /// Read timeout ([`Options::read_timeout`]).
        read_timeout: Option<Duration>,
        /// Write (stall) timeout ([`Options::write_timeout`]).
        write_timeout: Option<Duration>,
        /// Tick of the timing wheel ([`Options::timer_resolution`]).
        timer_resolution: Duration,
        /// How long a graceful stop drains ([`Options::drain_timeout`]).
        drain_timeout: Duration,
    }

    /// Starts the engine with one handler per loop made by `factory(loop_index)`
    /// (called on the loop's own thread). Listeners are bound before this returns,
    /// so clients may connect as soon as it does; an error from any step — a bad
    /// option or address, a bind failure, a loop that could not set up, a factory
    /// that panicked — is returned, with every thread already stopped.
    pub fn start<H, F>(self, factory: F) -> Result<Engine>
    where
        H: EventHandler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        if let Some(e) = self.err {
            return Err(e);
        }
        let opts = Arc::new(self.opts);
        opts.validate()?;
        if self.listeners.is_empty() && !self.client {
            return Err(Error::Config("no listening address given".into()));
        }
        let backend = resolve_backend(opts.backend)?;
        let bound = bind(self.listeners, &opts)?;
        let (engine, started) = spawn(bound, opts, backend, Arc::new(factory))?;
        wait_ready(engine, started)
    }

    /// Starts the engine with a clone of `handler` on each loop.
    pub fn start_with<H>(self, handler: H) -> Result<Engine>
    where
        H: EventHandler + Clone + Send,
    {
        let proto = Mutex::new(handler);
        self.start(move |_| proto.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// Step 0: the backend the loops run on. `IoUring` and `Auto` probe the kernel
/// first; `Auto` falls back to epoll with one log line saying why.
fn resolve_backend(asked: Backend) -> Result<Backend> {
    match asked {
        Backend::Epoll => Ok(Backend::Epoll),
        Backend::IoUring => crate::driver::probe()
            .map(|()| Backend::IoUring)
            .map_err(|reason| Error::BackendUnavailable { reason }),
        Backend::Auto => match crate::driver::probe() {
            Ok(()) => Ok(Backend::IoUring),
            Err(reason) => {
                tracing::warn!(%reason, "io_uring unavailable; the event loops run on epoll");
                Ok(Backend::Epoll)
            }
        },
    }
}

/// The listeners of an engine, bound and assigned.
struct Bound {
    /// Per loop: its listeners, and whether each is shared with other loops.
    per_loop: Vec<Vec<(Arc<ListenSocket>, bool)>>,
    /// The main reactor's listeners ([`Mode::Reactor`]).
    for_acceptor: Vec<Arc<ListenSocket>>,
    /// The addresses actually bound, in the order given.
    addrs: Vec<Addr>,
    /// The first socket of each listener, in the order given.
    sockets: Vec<Arc<ListenSocket>>,
}

/// Step 1: binds (or adopts) every listener and assigns it to the loops or the
/// main reactor according to the mode.
fn bind(configs: Vec<ListenConfig>, opts: &Options) -> Result<Bound> {
    let n = opts.loop_count();
    let mut b = Bound {
        per_loop: vec![Vec::new(); n],
        for_acceptor: Vec::new(),
        addrs: Vec::new(),
        sockets: Vec::new(),
    };
    for config in configs {
        let layers: Arc<[_]> = config.layers.into();
        let (first, inherited) = match config.source {
            Source::Addr(Ok(addr)) => (
                listener::bind(&addr, opts, opts.mode == Mode::ReusePort)?,
                false,
            ),
            Source::Addr(Err(e)) => return Err(e),
            Source::Inherited(fd) => (listener::adopt(fd, opts)?, true),
        };
        let first = Arc::new(first.with_layers(layers.clone()));
        b.addrs.push(first.addr.clone());
        b.sockets.push(first.clone());
        let mode = match (opts.mode, &first.addr) {
            // No SO_REUSEPORT for Unix sockets, nor a way to bind more sockets to an
            // inherited one's port that the parent would know of.
            (Mode::ReusePort, Addr::Unix(_)) => Mode::Shared,
            (Mode::ReusePort, _) if inherited => Mode::Shared,
            (m, _) => m,
        };
        match mode {
            Mode::Single => b.per_loop[0].push((first, false)),
            Mode::Shared => {
                for l in b.per_loop.iter_mut() {
                    l.push((first.clone(), n > 1));
                }
            }
            Mode::ReusePort => {
                // The first socket fixed the port (when 0 was asked); the rest bind to it.
                let actual = first.addr.clone();
                b.per_loop[0].push((first, false));
                for l in b.per_loop.iter_mut().skip(1) {
                    let s = listener::bind(&actual, opts, true)?.with_layers(layers.clone());
                    l.push((Arc::new(s), false));
                }
            }
            Mode::Reactor => b.for_acceptor.push(first),
        }
    }
    Ok(b)
}

/// Step 2: starts one thread per loop, and the main reactor's if it has listeners.
/// Each thread reports on the returned channel once it serves (or why it cannot).
fn spawn<H, F>(
    bound: Bound,
    opts: Arc<Options>,
    backend: Backend,
    factory: Arc<F>,
) -> Result<(Engine, Receiver<std::io::Result<()>>)>
where
    H: EventHandler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    let n = opts.loop_count();
    let loops: Vec<Arc<LoopShared>> = (0..n)
        .map(LoopShared::new)
        .collect::<std::io::Result<_>>()?;
    let acceptor = if bound.for_acceptor.is_empty() {
        None
    } else {
        Some(LoopShared::new(usize::MAX)?)
    };
    let handle = EngineHandle {
        shared: Arc::new(EngineShared {
            loops: loops.clone(),
            acceptor: acceptor.clone(),
            stopping: AtomicBool::new(false),
            closing: std::sync::OnceLock::new(),
            stop_requests: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            running: Arc::default(),
            stop_timeout: opts.stop_timeout,
            drain_timeout: opts.drain_timeout,
            next_dial: AtomicUsize::new(0),
        }),
    };
    let (ready, started) = std::sync::mpsc::channel();
    // From here on, dropping `engine` (on an error) stops and joins what started.
    let mut engine = Engine {
        handle: handle.clone(),
        threads: Vec::new(),
        addrs: bound.addrs,
        sockets: bound.sockets.iter().map(Arc::downgrade).collect(),
        backend,
    };
    for (shared_loop, listeners) in loops.iter().cloned().zip(bound.per_loop) {
        let setup = LoopSetup {
            shared: shared_loop,
            engine: handle.clone(),
            opts: opts.clone(),
            listeners,
            ready: ready.clone(),
        };
        let factory = factory.clone();
        let name = format!("netloop-loop-{}", setup.shared.index);
        engine
            .threads
            .push(spawn_thread(&handle, name, move || match backend {
                Backend::IoUring => EventLoop::run_uring(setup, |i| factory(i)),
                _ => EventLoop::run_epoll(setup, |i| factory(i)),
            })?);
    }
    if let Some(acc) = acceptor {
        let (loops, opts, h, ready) = (loops, opts.clone(), handle.clone(), ready.clone());
        let sockets = bound.for_acceptor;
        engine.threads.push(spawn_thread(
            &handle,
            "netloop-acceptor".into(),
            move || acceptor::run(acc, loops, sockets, opts, h, ready),
        )?);
    }
    Ok((engine, started))
}

/// Step 3: waits until every thread serves. The first failure is returned (and
/// dropping the engine stops the threads that did start).
fn wait_ready(engine: Engine, started: Receiver<std::io::Result<()>>) -> Result<Engine> {
    for _ in 0..engine.threads.len() {
        match started.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Io(e)),
            Err(_) => {
                return Err(Error::Io(std::io::Error::other(
                    "an engine thread exited during start-up",
                )))
            }
        }
    }
    Ok(engine)
}

/// Spawns an engine thread (see [`threads::spawn`]); a failure stops the engine.
fn spawn_thread(
    handle: &EngineHandle,
    name: String,
    body: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> Result<JoinHandle<()>> {
    let h = handle.clone();
    threads::spawn(&handle.shared.running, name, move || h.signal_stop(), body).map_err(Error::Io)
}

/// Serves `handler` (cloned onto each loop) on `addr` until the engine is stopped
/// by a handler returning [`Action::Shutdown`](crate::Action::Shutdown).
///
/// The one-call form of [`Engine::builder`], like gnet's `Run`.
pub fn serve<H>(handler: H, addr: impl ToAddr, opts: Options) -> Result<()>
where
    H: EventHandler + Clone + Send,
{
    let engine = super::Engine::builder()
        .options(opts)
        .listen(addr)
        .start_with(handler)?;
    engine.wait();
    Ok(())
}
