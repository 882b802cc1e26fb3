//! The engine: listeners, loops and the threads that run them.

use crate::acceptor;
use crate::addr::{Addr, ToAddr};
use crate::error::{Error, Result};
use crate::event_loop::{EventLoop, LoopSetup, LoopShared};
use crate::handler::EventHandler;
use crate::listener::{self, ListenSocket};
use crate::options::{LoadBalancer, Mode, Options};
use crate::stats::Stats;
use crate::task_queue::Task;
use crate::threads::{self, join_all, Running};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

thread_local! {
    /// Set on event-loop threads, so `stop()` called from a handler does not wait
    /// for its own loop to exit.
    pub(crate) static IN_LOOP: Cell<bool> = const { Cell::new(false) };
}

struct EngineShared {
    loops: Vec<Arc<LoopShared>>,
    acceptor: Option<Arc<LoopShared>>,
    stopping: AtomicBool,
    /// Calls of [`EngineHandle::stop`]; the second one forces the stop.
    stop_requests: AtomicUsize,
    /// Connections refused by `max_connections`.
    rejected: AtomicU64,
    /// Threads still running.
    running: Arc<Running>,
    stop_timeout: Duration,
    drain_timeout: Duration,
}

/// A handle to a running engine, usable from any thread (`Send + Sync + Clone`).
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<EngineShared>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle")
            .field("loops", &self.shared.loops.len())
            .field("stopping", &self.is_stopping())
            .finish()
    }
}

impl EngineHandle {
    /// Stops the engine gracefully, draining:
    ///
    /// 1. listeners close (nothing new is accepted) and connections stop reading;
    /// 2. each connection closes as soon as everything queued for it has been sent,
    ///    for up to [`Options::drain_timeout`];
    /// 3. then the rest are closed; every connection gets `on_close` with
    ///    [`CloseReason::EngineStopped`](crate::CloseReason::EngineStopped) (unless it
    ///    was already closing for another reason), queued async writes complete their
    ///    callbacks (with an error if their bytes were not sent), `on_shutdown`
    ///    runs, and the loops exit.
    ///
    /// A second call ends the drain at once, like [`stop_now`](Self::stop_now).
    ///
    /// Waits up to [`Options::drain_timeout`] + [`Options::stop_timeout`] for the
    /// loops to finish and returns whether they did. Called from a handler (on a
    /// loop thread) it only starts the stop and returns `false` at once.
    pub fn stop(&self) -> bool {
        if self.shared.stop_requests.fetch_add(1, Ordering::AcqRel) > 0 {
            self.force_stop();
        } else {
            self.signal_stop();
        }
        self.wait_stopped(self.shared.drain_timeout + self.shared.stop_timeout)
    }

    /// Stops the engine without draining: connections get one last non-blocking
    /// attempt to send what is queued and are closed with
    /// [`CloseReason::EngineStopped`](crate::CloseReason::EngineStopped). Waits up to
    /// [`Options::stop_timeout`] (not at all on a loop thread) and returns whether
    /// the loops finished.
    pub fn stop_now(&self) -> bool {
        self.shared.stop_requests.fetch_add(1, Ordering::AcqRel);
        self.force_stop();
        self.wait_stopped(self.shared.stop_timeout)
    }

    fn force_stop(&self) {
        self.signal_stop();
        for l in self.shared.acceptor.iter().chain(self.shared.loops.iter()) {
            let _ = l.queue.push(Task::StopNow, true);
        }
    }

    fn wait_stopped(&self, timeout: Duration) -> bool {
        if IN_LOOP.with(|f| f.get()) {
            return false;
        }
        self.shared.running.wait_until(Instant::now() + timeout)
    }

    /// Starts stopping without waiting.
    pub(crate) fn signal_stop(&self) {
        if self.shared.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!("engine stopping");
        // The acceptor first, so no new connection is handed to a stopping loop.
        for l in self.shared.acceptor.iter().chain(self.shared.loops.iter()) {
            let _ = l.queue.push(Task::Stop, true);
        }
    }

    /// Has a stop been requested?
    pub fn is_stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
    }

    /// Connections open across all loops.
    pub fn connection_count(&self) -> usize {
        self.shared
            .loops
            .iter()
            .map(|l| l.connections.load(Ordering::Relaxed))
            .sum()
    }

    /// Connections open on each loop.
    pub fn loop_connection_counts(&self) -> Vec<usize> {
        self.shared
            .loops
            .iter()
            .map(|l| l.connections.load(Ordering::Relaxed))
            .collect()
    }

    /// Number of event loops.
    pub fn loop_count(&self) -> usize {
        self.shared.loops.len()
    }

    /// The loops' shared parts (task queues, counters), for the dialer.
    pub(crate) fn loop_shared(&self) -> &[Arc<LoopShared>] {
        &self.shared.loops
    }

    /// The engine's counters: per loop and in total (see [`Stats`]). Lock-free: each
    /// loop publishes its counters with relaxed atomic stores, so this can be polled
    /// from any thread at any rate without slowing the loops. Byte, event and queue
    /// figures are published once per loop round (before the loop waits, and when a
    /// connection closes), so a busy loop's figures may lag by one round.
    pub fn stats(&self) -> Stats {
        let loops = self
            .shared
            .loops
            .iter()
            .map(|l| l.stats.snapshot(l.connections.load(Ordering::Relaxed)))
            .collect();
        Stats::from_loops(loops, self.shared.rejected.load(Ordering::Relaxed))
    }

    /// Counts a connection refused by `max_connections`.
    pub(crate) fn note_rejected(&self) {
        self.shared.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running engine. Dropping it stops it (see [`EngineHandle::stop`]).
pub struct Engine {
    handle: EngineHandle,
    threads: Vec<JoinHandle<()>>,
    addrs: Vec<Addr>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("addrs", &self.addrs)
            .field("handle", &self.handle)
            .finish()
    }
}

impl Engine {
    /// Starts configuring an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            opts: Options::default(),
            addrs: Vec::new(),
            err: None,
            client: false,
        }
    }

    /// The addresses actually bound (port 0 resolved), in the order given.
    pub fn local_addrs(&self) -> &[Addr] {
        &self.addrs
    }

    /// The first bound address.
    pub fn local_addr(&self) -> &Addr {
        &self.addrs[0]
    }

    /// A handle for other threads.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Blocks until the engine has stopped (through a handle, a handler's
    /// [`Action::Shutdown`](crate::Action::Shutdown), or a signal the application
    /// turns into [`EngineHandle::stop`]).
    pub fn wait(mut self) {
        join_all(&mut self.threads);
    }

    /// Stops the engine and waits for its threads.
    pub fn stop(self) {
        self.handle.stop();
        self.wait();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.handle.stop();
            join_all(&mut self.threads);
        }
    }
}

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
