//! The main reactor of [`Mode::Reactor`](crate::Mode::Reactor): a thread that only
//! accepts, and hands each connection to a sub-loop picked by the load balancer.
//!
//! The hand-off is a task on the sub-loop's queue, so it costs the acceptor one
//! queue push and (coalesced) one eventfd write; the sub-loop registers the socket
//! with its own poller. The connection is counted against the chosen loop at once,
//! so a burst of accepts is balanced by the least-connections policy before the
//! sub-loops have caught up.

use crate::driver::{Driver, Epoll, Interest, Trigger};
use crate::engine::listener::{self, Accepted, ListenSocket, Listener};
use crate::engine::load_balancer::Balancer;
use crate::engine::shared::{report, LoopShared, Ready, LISTENER_TOKEN, WAKER_TOKEN};
use crate::engine::task_queue::Task;
use crate::engine::EngineHandle;
use crate::options::Options;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Accepts until stopped.
pub(crate) fn run(
    shared: Arc<LoopShared>,
    loops: Vec<Arc<LoopShared>>,
    sockets: Vec<Arc<ListenSocket>>,
    opts: Arc<Options>,
    engine: EngineHandle,
    ready: Ready,
) -> io::Result<()> {
    let setup = || -> io::Result<(Epoll, Vec<Listener>)> {
        let mut poller = Epoll::new()?;
        poller.add(
            shared.queue.waker_fd(),
            WAKER_TOKEN,
            Interest::READ,
            Trigger::Level,
        )?;
        let mut listeners = Vec::with_capacity(sockets.len());
        for (i, sock) in sockets.into_iter().enumerate() {
            listeners.push(Listener::register(
                sock,
                LISTENER_TOKEN - i as u64,
                false,
                &mut poller,
            )?);
        }
        Ok((poller, listeners))
    };
    let (mut poller, mut listeners) = report(&ready, setup())?;
    let mut balancer = Balancer::new(opts.load_balancer);
    let mut tasks = Vec::new();
    let mut woken = false;
    loop {
        if std::mem::take(&mut woken) || shared.queue.is_notified() {
            shared.queue.take(&mut tasks, usize::MAX);
            let mut stop = false;
            for task in tasks.drain(..) {
                match task {
                    Task::Stop | Task::StopNow => stop = true,
                    Task::StopAccepting(_done) => {
                        // What the listeners queued is handed out; then none is left.
                        for mut l in std::mem::take(&mut listeners) {
                            for (fd, peer) in l.close_and_sweep(&mut poller) {
                                hand_off(&l, fd, peer, &loops, &mut balancer, &opts, &engine);
                            }
                        }
                    }
                    other => other.fail(|| crate::Error::EngineStopped),
                }
            }
            if stop {
                break;
            }
        }
        let now = Instant::now();
        for l in &mut listeners {
            l.maybe_resume(now, &mut poller);
        }
        let timeout = listeners
            .iter()
            .filter_map(|l| l.paused_until)
            .min()
            .map(|t| t.saturating_duration_since(now));
        let n = poller.wait(timeout)?;
        for i in 0..n {
            let token = poller.event(i).token;
            if token == WAKER_TOKEN {
                woken = true;
                continue;
            }
            let Some(l) = listeners.get_mut((LISTENER_TOKEN - token) as usize) else {
                continue; // a listener closed by `StopAccepting` in this round
            };
            while let Accepted::Conn(fd, peer) = l.accept(&mut poller) {
                hand_off(l, fd, peer, &loops, &mut balancer, &opts, &engine);
            }
        }
    }
    for l in &mut listeners {
        l.deregister(&mut poller);
    }
    for task in shared.queue.close() {
        task.fail(|| crate::Error::EngineStopped);
    }
    Ok(())
}

/// Hands a connection `l` accepted to the sub-loop the balancer picks (or
/// closes it at once over the connection limit).
fn hand_off(
    l: &Listener,
    fd: OwnedFd,
    peer: socket2::SockAddr,
    loops: &[Arc<LoopShared>],
    balancer: &mut Balancer,
    opts: &Options,
    engine: &EngineHandle,
) {
    if let Some(max) = opts.max_connections.filter(|&m| m > 0) {
        if engine.connection_count() >= max {
            // Over the limit: accepted and closed at once (see Options).
            drop(fd);
            engine.note_rejected();
            return;
        }
    }
    listener::configure(&fd, l.sock.is_tcp(), opts);
    let target = &loops[balancer.pick(loops, &peer)];
    target.connections.fetch_add(1, Ordering::Relaxed);
    let layered = l.sock.layered(peer);
    if let Err(task) = target.queue.push(Task::Adopt { fd, layered }, false) {
        // The sub-loop has stopped: the engine is going down.
        drop(task);
        target.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
