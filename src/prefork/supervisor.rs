//! The prefork supervisor: owns the listening sockets, runs N workers of the
//! same program on them, replaces crashed ones, restarts every worker without
//! refusing a connection on SIGHUP, drains them all on SIGTERM/SIGINT.

use super::activation::{self, WorkerId};
use super::launch::{fd_name, Launch};
use super::notify::{Notification, NotifySocket};
use crate::addr::{Addr, ToAddr};
use crate::engine::listener::{self, ListenSocket};
use crate::error::Error;
use crate::options::Options;
use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, Signal};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the workers share the listening sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    /// One socket per address, inherited by every worker (the default). The
    /// workers' accept calls compete on one queue: a busy or crashed worker
    /// leaves its share to the others, and a restart never strands a queued
    /// connection. Workers should wait on it with exclusive wake-ups
    /// (`EPOLLEXCLUSIVE`) so one connection wakes one worker.
    #[default]
    Shared,
    /// One `SO_REUSEPORT` socket per address *per worker slot*: the kernel
    /// spreads connections evenly over the slots by a hash of the 4-tuple. The
    /// supervisor keeps every socket open, and slot *i* of each new generation
    /// inherits slot *i*'s sockets, so a restart drops nothing (closing a
    /// reuseport socket would reset the connections queued on it). A slot whose
    /// worker crashed keeps its connections queued until the replacement
    /// starts (the back-off delay).
    ReusePort,
}

/// A listening socket the supervisor holds for the whole run.
enum Held {
    Bound(ListenSocket),
    Adopted(OwnedFd),
}

impl Held {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Held::Bound(s) => s.fd.as_fd(),
            Held::Adopted(fd) => fd.as_fd(),
        }
    }
}

/// The sockets one worker gets, with their `LISTEN_FDNAMES` names.
type ListenerSet = Vec<(Held, String)>;

/// Configures and builds a [`Supervisor`].
pub struct SupervisorBuilder {
    workers: usize,
    addrs: Vec<Addr>,
    err: Option<Error>,
    sharing: Sharing,
    opts: Options,
    ready_timeout: Duration,
    stop_timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    launch: Option<Launch>,
}

impl std::fmt::Debug for SupervisorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorBuilder")
            .field("workers", &self.workers)
            .field("addrs", &self.addrs)
            .field("sharing", &self.sharing)
            .finish_non_exhaustive()
    }
}

impl Default for SupervisorBuilder {
    fn default() -> Self {
        SupervisorBuilder {
            workers: 1,
            addrs: Vec::new(),
            err: None,
            sharing: Sharing::Shared,
            opts: Options::default(),
            ready_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            launch: None,
        }
    }
}

impl SupervisorBuilder {
    /// Worker processes per generation (default 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }
    /// An address to bind — unless the supervisor itself was socket-activated,
    /// in which case it serves the sockets it was given instead.
    pub fn listen(mut self, addr: impl ToAddr) -> Self {
        match addr.to_addr() {
            Ok(a) => self.addrs.push(a),
            Err(e) => {
                self.err.get_or_insert(e);
            }
        }
        self
    }
    /// How workers share the sockets (default [`Sharing::Shared`]).
    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.sharing = sharing;
        self
    }
    /// `listen(2)` backlog of the sockets the supervisor binds (default 1024).
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.opts.backlog = backlog;
        self
    }
    /// How long a new worker may take to report `READY=1` (default 30 s). A
    /// new generation that is not ready by then is stopped; the old one serves on.
    pub fn ready_timeout(mut self, d: Duration) -> Self {
        self.ready_timeout = d;
        self
    }
    /// How long a worker told to stop may drain before it is killed (default
    /// 10 s; keep it above the workers' own drain timeout).
    pub fn stop_timeout(mut self, d: Duration) -> Self {
        self.stop_timeout = d;
        self
    }
    /// Delay before replacing a crashed worker: `min`, doubling per crash of the
    /// same slot up to `max`, back to `min` once a worker has run for `max`
    /// (default 100 ms to 10 s).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }
    /// Runs `program` with `args` (argv\[0\] first) as the workers, instead of
    /// this program with its own arguments. The file is executed afresh for
    /// each worker, so replacing it on disk upgrades the next generation.
    pub fn program(
        mut self,
        program: impl Into<std::path::PathBuf>,
        args: Vec<std::ffi::OsString>,
    ) -> Self {
        self.launch = Some(Launch::program(program.into(), args));
        self
    }

    /// Binds (or adopts) the listeners, the notify socket and the signal
    /// handlers; no worker runs yet. Clients may connect as soon as this
    /// returns: they queue until the first workers accept.
    pub fn build(self) -> Result<Supervisor, Error> {
        if let Some(e) = self.err {
            return Err(e);
        }
        if self.workers == 0 {
            return Err(Error::Config(
                "a supervisor needs at least one worker".into(),
            ));
        }
        let launch = match self.launch {
            Some(l) => l,
            None => Launch::current()?,
        };
        let adopted = activation::inherited_listeners()?;
        let mut sharing = self.sharing;
        let (sets, addrs): (Vec<ListenerSet>, Vec<Addr>) = if !adopted.is_empty() {
            if sharing == Sharing::ReusePort {
                tracing::warn!("socket-activated: one socket per address, shared by all workers");
                sharing = Sharing::Shared;
            }
            let addrs = adopted.iter().map(|l| l.addr().clone()).collect();
            let set = adopted
                .into_iter()
                .map(|l| {
                    let name = fd_name(l.name());
                    (Held::Adopted(l.into_fd()), name)
                })
                .collect();
            (vec![set], addrs)
        } else if self.addrs.is_empty() {
            return Err(Error::Config(
                "no listening address given and none inherited".into(),
            ));
        } else {
            bind_all(&self.addrs, &self.opts, sharing, self.workers)?
        };
        let (wake, signals) = Signals::install()?;
        Ok(Supervisor {
            slots: vec![Slot::new(self.backoff_min); self.workers],
            workers: Vec::new(),
            sets,
            addrs,
            notify: NotifySocket::bind()?,
            launch,
            current: 0,
            next_generation: 1,
            pending: None,
            stopping: None,
            failure: None,
            wake,
            signals,
            cfg: Timing {
                ready: self.ready_timeout,
                stop: self.stop_timeout,
                backoff_min: self.backoff_min,
                backoff_max: self.backoff_max,
            },
            sharing,
        })
    }
}

/// Binds every address: once for [`Sharing::Shared`], once per worker slot
/// (`SO_REUSEPORT`, the first binding fixing an ephemeral port) for
/// [`Sharing::ReusePort`].
fn bind_all(
    addrs: &[Addr],
    opts: &Options,
    sharing: Sharing,
    workers: usize,
) -> Result<(Vec<ListenerSet>, Vec<Addr>), Error> {
    let reuse = sharing == Sharing::ReusePort;
    let n_sets = if reuse { workers } else { 1 };
    let mut sets: Vec<ListenerSet> = (0..n_sets).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for addr in addrs {
        let first = listener::bind(addr, opts, reuse)?;
        let actual = first.addr.clone();
        let name = fd_name(&actual.to_string());
        sets[0].push((Held::Bound(first), name.clone()));
        for set in sets.iter_mut().skip(1) {
            set.push((
                Held::Bound(listener::bind(&actual, opts, true)?),
                name.clone(),
            ));
        }
        bound.push(actual);
    }
    Ok((sets, bound))
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    ready: Duration,
    stop: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
}

/// Restart bookkeeping of one worker slot of the serving generation.
#[derive(Debug, Clone, Copy)]
struct Slot {
    backoff: Duration,
    restart_at: Option<Instant>,
}

impl Slot {
    fn new(backoff: Duration) -> Slot {
        Slot {
            backoff,
            restart_at: None,
        }
    }
}

struct Worker {
    child: Child,
    pid: u32,
    id: WorkerId,
    started: Instant,
    ready: bool,
    stop_sent: Option<Instant>,
    killed: bool,
}

/// SIGTERM/SIGINT, SIGHUP and SIGCHLD as flags, each also writing a byte to a
/// wake-up socket the supervisor polls (signal-hook's self-pipe).
struct Signals {
    term: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Signals {
    fn install() -> io::Result<(UnixStream, Signals)> {
        use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        let term = Arc::new(AtomicBool::new(false));
        let hup = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for sig in [SIGTERM, SIGINT] {
            ids.push(signal_hook::flag::register(sig, term.clone())?);
        }
        ids.push(signal_hook::flag::register(SIGHUP, hup.clone())?);
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGCHLD] {
            ids.push(signal_hook::low_level::pipe::register(
                sig,
                tx.try_clone()?,
            )?);
        }
        Ok((rx, Signals { term, hup, ids }))
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The prefork supervisor (see the [module docs](super)). Build it with
/// [`Supervisor::builder`], then [`run`](Supervisor::run) it.
pub struct Supervisor {
    cfg: Timing,
    sharing: Sharing,
    /// Listener sets: one (shared) or one per slot (reuseport); with names.
    sets: Vec<ListenerSet>,
    addrs: Vec<Addr>,
    notify: NotifySocket,
    launch: Launch,
    workers: Vec<Worker>,
    slots: Vec<Slot>,
    /// The serving generation (0 before the first is ready).
    current: u64,
    next_generation: u64,
    /// The generation starting up, and since when.
    pending: Option<(u64, Instant)>,
    /// Set once shutdown began.
    stopping: Option<Instant>,
    /// Why the first generation could not start.
    failure: Option<String>,
    wake: UnixStream,
    signals: Signals,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("addrs", &self.addrs)
            .field("sharing", &self.sharing)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A builder with the defaults.
    pub fn builder() -> SupervisorBuilder {
        SupervisorBuilder::default()
    }

    /// The addresses served (ephemeral ports resolved).
    pub fn local_addrs(&self) -> &[Addr] {
        &self.addrs
    }

    /// How the workers share the sockets (a socket-activated supervisor
    /// always shares).
    pub fn sharing(&self) -> Sharing {
        self.sharing
    }

    /// Starts the first generation and supervises until SIGTERM or SIGINT has
    /// drained every worker (a second signal kills them at once). Fails if the
    /// first generation cannot start (a worker exits or is not ready in time).
    pub fn run(mut self) -> Result<(), Error> {
        self.start_generation();
        loop {
            let now = Instant::now();
            self.wait(
                self.next_deadline(now)
                    .map(|d| d.saturating_duration_since(now)),
            )?;
            let mut buf = [0u8; 64];
            while matches!((&self.wake).read(&mut buf), Ok(n) if n > 0) {}
            if self.signals.term.swap(false, Ordering::AcqRel) {
                self.begin_shutdown("signal");
            }
            if self.signals.hup.swap(false, Ordering::AcqRel) {
                self.begin_reload();
            }
            while let Some((pid, n)) = self.notify.recv()? {
                self.on_notification(pid, n);
            }
            self.reap();
            self.on_timers(Instant::now());
            if self.stopping.is_some() && self.workers.is_empty() {
                break;
            }
        }
        match self.failure.take() {
            Some(why) => Err(Error::Io(io::Error::other(why))),
            None => Ok(()),
        }
    }

    /// Waits for a signal, a notification or the timeout.
    fn wait(&self, timeout: Option<Duration>) -> Result<(), Error> {
        let timeout = timeout
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        let ts = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [
            PollFd::new(&self.wake, PollFlags::IN),
            PollFd::new(&self.notify, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
            Err(e) => Err(Error::Io(e.into())),
        }
    }

    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let restarts = self.slots.iter().filter_map(|s| s.restart_at);
        let pending = self.pending.map(|(_, since)| since + self.cfg.ready);
        let stops = self
            .workers
            .iter()
            .filter(|w| !w.killed)
            .filter_map(|w| w.stop_sent.map(|t| t + self.cfg.stop));
        restarts
            .chain(pending)
            .chain(stops)
            .min()
            .map(|d| d.max(now))
    }

    fn start_generation(&mut self) {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.pending = Some((generation, Instant::now()));
        tracing::info!(generation, workers = self.slots.len(), program = %self.launch.path().display(), "starting generation");
        for slot in 0..self.slots.len() {
            if let Err(e) = self.spawn(WorkerId { generation, slot }) {
                self.abort_pending(&format!("worker {slot} could not start: {e}"));
                return;
            }
        }
    }

    fn spawn(&mut self, id: WorkerId) -> io::Result<()> {
        let set = &self.sets[id.slot % self.sets.len()];
        let listeners: Vec<(BorrowedFd<'_>, &str)> =
            set.iter().map(|(h, n)| (h.fd(), n.as_str())).collect();
        let child = self
            .launch
            .spawn(&listeners, self.notify.path(), Some(id))?;
        let pid = child.id();
        tracing::debug!(
            pid,
            generation = id.generation,
            slot = id.slot,
            "worker started"
        );
        self.workers.push(Worker {
            child,
            pid,
            id,
            started: Instant::now(),
            ready: false,
            stop_sent: None,
            killed: false,
        });
        Ok(())
    }

    fn on_notification(&mut self, pid: u32, n: Notification) {
        let Some(w) = self.workers.iter_mut().find(|w| w.pid == pid) else {
            tracing::debug!(
                pid,
                "notification from a process that is not a worker ignored"
            );
            return;
        };
        if let Some(status) = &n.status {
            tracing::debug!(pid, status = %status, "worker status");
        }
        if n.stopping {
            tracing::debug!(pid, "worker stopping");
        }
        if !n.ready || w.ready {
            return;
        }
        w.ready = true;
        let generation = w.id.generation;
        tracing::debug!(pid, generation, slot = w.id.slot, "worker ready");
        if let Some((pending, _)) = self.pending {
            let ready = self
                .workers
                .iter()
                .filter(|w| w.id.generation == pending && w.ready && w.stop_sent.is_none())
                .count();
            if generation == pending && ready == self.slots.len() {
                self.promote(pending);
            }
        }
    }

    /// The pending generation is ready: it becomes the serving one and the
    /// previous one is told to stop accepting and drain.
    fn promote(&mut self, generation: u64) {
        let old = self.current;
        self.current = generation;
        self.pending = None;
        for slot in &mut self.slots {
            *slot = Slot::new(self.cfg.backoff_min);
        }
        for w in &mut self.workers {
            if w.id.generation != generation && w.stop_sent.is_none() {
                stop(w, Signal::TERM);
            }
        }
        let pids: Vec<u32> = self
            .workers
            .iter()
            .filter(|w| w.id.generation == generation)
            .map(|w| w.pid)
            .collect();
        tracing::info!(generation, ?pids, replaced = old, "generation serving");
        let status = format!(
            "generation {generation} serving with {} workers",
            pids.len()
        );
        notify_manager(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ]);
    }

    /// The pending generation failed: stop what started of it. The serving
    /// generation, if any, carries on; without one, the supervisor gives up.
    fn abort_pending(&mut self, why: &str) {
        let Some((generation, _)) = self.pending.take() else {
            return;
        };
        for w in &mut self.workers {
            if w.id.generation == generation && w.stop_sent.is_none() {
                stop(w, Signal::TERM);
            }
        }
        if self.current == 0 {
            tracing::error!(generation, "first generation failed: {why}");
            self.failure = Some(format!("the first generation failed: {why}"));
            self.begin_shutdown("start-up failure");
        } else {
            tracing::error!(
                generation,
                serving = self.current,
                "new generation failed, the old one serves on: {why}"
            );
            let status = format!(
                "restart failed ({why}); generation {} serving",
                self.current
            );
            notify_manager(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(&status),
            ]);
        }
    }

    fn begin_reload(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        if let Some((generation, _)) = self.pending {
            tracing::warn!(
                generation,
                "SIGHUP while generation {generation} is starting: ignored"
            );
            return;
        }
        let mut states = vec![sd_notify::NotifyState::Reloading];
        if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        notify_manager(&states);
        self.start_generation();
    }

    fn begin_shutdown(&mut self, why: &str) {
        if self.stopping.is_some() {
            // A second signal: no more draining.
            tracing::warn!("second stop request: killing the workers");
            for w in &mut self.workers {
                if !w.killed {
                    stop(w, Signal::KILL);
                }
            }
            return;
        }
        tracing::info!(
            workers = self.workers.len(),
            "stopping ({why}): draining the workers"
        );
        notify_manager(&[sd_notify::NotifyState::Stopping]);
        self.stopping = Some(Instant::now());
        self.pending = None;
        for slot in &mut self.slots {
            slot.restart_at = None;
        }
        for w in &mut self.workers {
            if w.stop_sent.is_none() {
                stop(w, Signal::TERM);
            }
        }
    }

    fn reap(&mut self) {
        let mut i = 0;
        while i < self.workers.len() {
            match self.workers[i].child.try_wait() {
                Ok(Some(status)) => {
                    let w = self.workers.swap_remove(i);
                    self.on_exit(w, status);
                }
                Ok(None) => i += 1,
                Err(e) => {
                    tracing::warn!(pid = self.workers[i].pid, error = %e, "waiting for a worker failed");
                    i += 1;
                }
            }
        }
    }

    fn on_exit(&mut self, w: Worker, status: ExitStatus) {
        let (pid, id) = (w.pid, w.id);
        if w.stop_sent.is_some() || self.stopping.is_some() {
            tracing::debug!(pid, generation = id.generation, %status, "worker exited");
            return;
        }
        if self.pending.is_some_and(|(g, _)| g == id.generation) {
            self.abort_pending(&format!(
                "worker {pid} (slot {}) exited during start-up: {status}",
                id.slot
            ));
            return;
        }
        if id.generation != self.current {
            return;
        }
        let now = Instant::now();
        let slot = &mut self.slots[id.slot];
        if now.duration_since(w.started) >= self.cfg.backoff_max {
            slot.backoff = self.cfg.backoff_min;
        }
        slot.restart_at = Some(now + slot.backoff);
        tracing::warn!(pid, slot = id.slot, %status, delay = ?slot.backoff, "worker died; replacing it");
        slot.backoff = (slot.backoff * 2).min(self.cfg.backoff_max);
    }

    fn on_timers(&mut self, now: Instant) {
        for slot in 0..self.slots.len() {
            if self.stopping.is_some() {
                break;
            }
            if self.slots[slot].restart_at.is_some_and(|t| t <= now) {
                self.slots[slot].restart_at = None;
                let id = WorkerId {
                    generation: self.current,
                    slot,
                };
                if let Err(e) = self.spawn(id) {
                    tracing::warn!(slot, error = %e, "replacing a worker failed; retrying");
                    let s = &mut self.slots[slot];
                    s.restart_at = Some(now + s.backoff);
                    s.backoff = (s.backoff * 2).min(self.cfg.backoff_max);
                }
            }
        }
        if let Some((generation, since)) = self.pending {
            if now.duration_since(since) >= self.cfg.ready {
                self.abort_pending(&format!(
                    "generation {generation} not ready within {:?}",
                    self.cfg.ready
                ));
            }
        }
        for w in &mut self.workers {
            if let Some(t) = w.stop_sent {
                if !w.killed && now.duration_since(t) >= self.cfg.stop {
                    tracing::warn!(
                        pid = w.pid,
                        "worker still running {:?} after SIGTERM: killing it",
                        self.cfg.stop
                    );
                    stop(w, Signal::KILL);
                }
            }
        }
    }
}

impl Drop for Supervisor {
    /// Leaves no worker behind if `run` is abandoned (an error): kill and reap.
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

/// Sends `sig` to a worker and records it.
fn stop(w: &mut Worker, sig: Signal) {
    if let Some(pid) = Pid::from_raw(w.pid as i32) {
        // The worker may have exited already (it is reaped later): ignore ESRCH.
        let _ = rustix::process::kill_process(pid, sig);
    }
    if sig == Signal::KILL {
        w.killed = true;
    }
    w.stop_sent.get_or_insert_with(Instant::now);
}

/// Tells this process's own service manager (if it has one) what happens.
fn notify_manager(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "notifying the service manager failed");
    }
}
