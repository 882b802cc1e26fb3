//! [`EngineHandle`]: a running engine as other threads see it.

use super::shared::{LoopShared, IN_LOOP};
use super::stats::Stats;
use super::task_queue::{Latch, Task};
use super::threads::Running;
use super::timer::later;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct EngineShared {
    pub(super) loops: Vec<Arc<LoopShared>>,
    pub(super) acceptor: Option<Arc<LoopShared>>,
    pub(super) stopping: AtomicBool,
    /// Set by the first [`EngineHandle::stop_accepting`]: the threads yet to
    /// close their listeners.
    pub(super) closing: std::sync::OnceLock<Arc<Latch>>,
    /// Calls of [`EngineHandle::stop`]; the second one forces the stop.
    pub(super) stop_requests: AtomicUsize,
    /// Connections refused by `max_connections`.
    pub(super) rejected: AtomicU64,
    /// Threads still running.
    pub(super) running: Arc<Running>,
    pub(super) stop_timeout: Duration,
    pub(super) drain_timeout: Duration,
    /// Round-robin cursor of this engine's dials that name no loop.
    pub(crate) next_dial: AtomicUsize,
}

/// A handle to a running engine, usable from any thread (`Send + Sync + Clone`).
#[derive(Clone)]
pub struct EngineHandle {
    pub(crate) shared: Arc<EngineShared>,
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
    ///    for up to [`Options::drain_timeout`](crate::Options::drain_timeout);
    /// 3. then the rest are closed; every connection gets `on_close` with
    ///    [`CloseReason::EngineStopped`](crate::CloseReason::EngineStopped) (unless it
    ///    was already closing for another reason), queued async writes complete their
    ///    callbacks (with an error if their bytes were not sent), `on_shutdown`
    ///    runs, and the loops exit.
    ///
    /// A second call ends the drain at once, like [`stop_now`](Self::stop_now).
    ///
    /// Waits up to [`Options::drain_timeout`](crate::Options::drain_timeout) + [`Options::stop_timeout`](crate::Options::stop_timeout) for the
    /// loops to finish and returns whether they did. Called from a handler (on a
    /// loop thread) it only starts the stop and returns `false` at once.
    pub fn stop(&self) -> bool {
        if self.shared.stop_requests.fetch_add(1, Ordering::AcqRel) > 0 {
            self.force_stop();
        } else {
            self.signal_stop();
        }
        self.wait_stopped(
            self.shared
                .drain_timeout
                .saturating_add(self.shared.stop_timeout),
        )
    }

    /// Stops the engine without draining: connections get one last non-blocking
    /// attempt to send what is queued and are closed with
    /// [`CloseReason::EngineStopped`](crate::CloseReason::EngineStopped). Waits up to
    /// [`Options::stop_timeout`](crate::Options::stop_timeout) (not at all on a loop thread) and returns whether
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
        self.shared
            .running
            .wait_until(later(Instant::now(), timeout))
    }

    /// Stops accepting new connections and serves the open ones as before:
    /// the first half of retiring a process that another one takes over from
    /// (a prefork worker's old generation, a process handing its listeners to
    /// a successor; see [`prefork`](crate::prefork)).
    ///
    /// Every listener leaves its loop's poller; connections the kernel had
    /// already queued on it are accepted and served (with exclusive wake-ups
    /// their wake-up may have come to this engine alone). The listening
    /// sockets themselves stay open (see [`Engine::listener_fds`](crate::Engine::listener_fds)),
    /// so whoever else holds them keeps accepting — nothing is refused. Then
    /// wait for the open connections to finish ([`connection_count`](Self::connection_count)),
    /// within a deadline of your choosing, and [`stop`](Self::stop).
    ///
    /// Handlers can tell ([`is_accepting`](Self::is_accepting)) and wind
    /// connections down — a request/response protocol closes each connection
    /// after its next response (the `http` example answers with
    /// `Connection: close`), so keep-alive clients move to the successor.
    ///
    /// Waits up to [`Options::stop_timeout`] for every loop to have closed its
    /// listeners and returns whether they did (called from a handler: starts it
    /// and returns `false` at once). Idempotent.
    pub fn stop_accepting(&self) -> bool {
        let threads: Vec<&Arc<LoopShared>> = self
            .shared
            .acceptor
            .iter()
            .chain(self.shared.loops.iter())
            .collect();
        let mut tokens = None;
        let latch = self.shared.closing.get_or_init(|| {
            let (latch, t) = Latch::new(threads.len());
            tokens = Some(t);
            latch
        });
        if let Some(tokens) = tokens {
            tracing::info!("engine stops accepting");
            for (l, done) in threads.into_iter().zip(tokens) {
                // A stopped loop hands the task back: dropping it counts it done.
                let _ = l.queue.push(Task::StopAccepting(done), true);
            }
        }
        if IN_LOOP.with(|f| f.get()) {
            return false;
        }
        latch.wait_until(later(Instant::now(), self.shared.stop_timeout))
    }

    /// Whether the engine still accepts new connections: `false` once
    /// [`stop_accepting`](Self::stop_accepting) or [`stop`](Self::stop) has
    /// been called.
    pub fn is_accepting(&self) -> bool {
        self.shared.closing.get().is_none() && !self.is_stopping()
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
    ///
    /// A connection counts from the moment its loop takes it (before `on_open`)
    /// until its descriptor is closed, which is *after* `on_close` has returned: a
    /// handler reading the count from `on_close` still sees its own connection, and
    /// another thread may see it for a moment after `on_close` ran.
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
