//! [`EngineBuilder`]: configuring and starting an engine.

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
use crate::options::{LoadBalancer, Mode, Options};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Configures and starts an [`Engine`].
///
/// ```no_run
/// use netloop::{Action, Conn, Engine, EventHandler, Mode};
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
    addrs: Vec<Addr>,
    err: Option<Error>,
    /// Started as a [`Client`](crate::Client): no listening address needed.
    pub(crate) client: bool,
}

impl EngineBuilder {
    pub(super) fn new() -> EngineBuilder {
        EngineBuilder {
            opts: Options::default(),
            addrs: Vec::new(),
            err: None,
            client: false,
        }
    }

    /// Replaces all options.
    pub fn options(mut self, opts: Options) -> Self {
        self.opts = opts;
        self
    }
    /// Adds a listening address (several are allowed). A bad address is reported
    /// by [`start`](Self::start).
    pub fn listen(mut self, addr: impl ToAddr) -> Self {
        match addr.to_addr() {
            Ok(a) => self.addrs.push(a),
            Err(e) => {
                self.err.get_or_insert(e);
            }
        }
        self
    }
    /// Number of event loops.
    pub fn loops(mut self, n: usize) -> Self {
        self.opts.loops = n;
        self
    }
    /// How connections are spread over the loops.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.opts.mode = mode;
        self
    }
    /// The main reactor's load balancer.
    pub fn load_balancer(mut self, lb: LoadBalancer) -> Self {
        self.opts.load_balancer = lb;
        self
    }
    /// Edge-triggered registration.
    pub fn edge_triggered(mut self, on: bool) -> Self {
        self.opts.edge_triggered = on;
        self
    }
    /// Enables `on_tick`.
    pub fn ticker(mut self, on: bool) -> Self {
        self.opts.ticker = on;
        self
    }
    /// Pins loops to CPUs.
    pub fn cpu_affinity(mut self, on: bool) -> Self {
        self.opts.cpu_affinity = on;
        self
    }
    /// Limits open connections across the engine ([`Options::max_connections`]).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.opts.max_connections = Some(n);
        self
    }
    /// Closes connections idle this long ([`Options::idle_timeout`]).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.opts.idle_timeout = Some(d);
        self
    }
    /// How long a graceful stop drains ([`Options::drain_timeout`]).
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.opts.drain_timeout = d;
        self
    }
    /// The options as configured so far, to change any other field.
    pub fn options_mut(&mut self) -> &mut Options {
        &mut self.opts
    }

    /// Starts the engine with one handler per loop made by `factory(loop_index)`
    /// (called on the loop's own thread). Listeners are bound before this returns,
    /// so clients may connect as soon as it does.
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
        if self.addrs.is_empty() && !self.client {
            return Err(Error::Config("no listening address given".into()));
        }
        let n = opts.loop_count();
        let loops: Vec<Arc<LoopShared>> = (0..n)
            .map(LoopShared::new)
            .collect::<std::io::Result<_>>()?;
        let mut per_loop: Vec<Vec<(Arc<ListenSocket>, bool)>> = vec![Vec::new(); n];
        let mut for_acceptor = Vec::new();
        let mut bound = Vec::new();
        for addr in &self.addrs {
            let mode = match (opts.mode, addr) {
                (Mode::ReusePort, Addr::Unix(_)) => Mode::Shared,
                (m, _) => m,
            };
            match mode {
                Mode::Single => {
                    let s = Arc::new(listener::bind(addr, &opts, false)?);
                    bound.push(s.addr.clone());
                    per_loop[0].push((s, false));
                }
                Mode::Shared => {
                    let s = Arc::new(listener::bind(addr, &opts, false)?);
                    bound.push(s.addr.clone());
                    for l in per_loop.iter_mut() {
                        l.push((s.clone(), n > 1));
                    }
                }
                Mode::ReusePort => {
                    // Bind the first to learn the port (when 0 was asked), then the rest
                    // to that port.
                    let first = Arc::new(listener::bind(addr, &opts, true)?);
                    let actual = first.addr.clone();
                    bound.push(actual.clone());
                    per_loop[0].push((first, false));
                    for l in per_loop.iter_mut().skip(1) {
                        l.push((Arc::new(listener::bind(&actual, &opts, true)?), false));
                    }
                }
                Mode::Reactor => {
                    let s = Arc::new(listener::bind(addr, &opts, false)?);
                    bound.push(s.addr.clone());
                    for_acceptor.push(s);
                }
            }
        }
        let acceptor = if for_acceptor.is_empty() {
            None
        } else {
            Some(LoopShared::new(usize::MAX)?)
        };
        let shared = Arc::new(EngineShared {
            loops: loops.clone(),
            acceptor: acceptor.clone(),
            stopping: AtomicBool::new(false),
            stop_requests: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            running: Arc::default(),
            stop_timeout: opts.stop_timeout,
            drain_timeout: opts.drain_timeout,
        });
        let handle = EngineHandle {
            shared: shared.clone(),
        };
        let factory = Arc::new(factory);
        let mut threads = Vec::new();
        let (ready, started) = std::sync::mpsc::channel();
        for (shared_loop, listeners) in loops.iter().cloned().zip(per_loop) {
            let setup = LoopSetup {
                shared: shared_loop,
                engine: handle.clone(),
                opts: opts.clone(),
                listeners,
                ready: ready.clone(),
            };
            let factory = factory.clone();
            let name = format!("netloop-loop-{}", setup.shared.index);
            threads.push(spawn(&handle, name, move || {
                EventLoop::run(setup, |i| factory(i))
            })?);
        }
        if let Some(acc) = acceptor {
            let (loops, opts, h, ready) =
                (loops.clone(), opts.clone(), handle.clone(), ready.clone());
            threads.push(spawn(&handle, "netloop-acceptor".into(), move || {
                acceptor::run(acc, loops, for_acceptor, opts, h, ready)
            })?);
        }
        drop(ready);
        let expected = threads.len();
        let engine = Engine {
            handle,
            threads,
            addrs: bound,
        };
        // Wait until every thread has its poller and listeners set up, so that a
        // failure there is an error here rather than a silently dead engine.
        for _ in 0..expected {
            match started.recv_timeout(Duration::from_secs(30)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Error::Io(e)), // dropping `engine` stops and joins
                Err(_) => {
                    return Err(Error::Io(std::io::Error::other(
                        "an engine thread exited during start-up",
                    )))
                }
            }
        }
        Ok(engine)
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

/// Spawns an engine thread (see [`threads::spawn`]); a failure stops the engine.
fn spawn(
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
    let engine = Engine::builder()
        .options(opts)
        .listen(addr)
        .start_with(handler)?;
    engine.wait();
    Ok(())
}
