//! The cross-thread task queue of an event loop (gnet's `Trigger` queue).
//!
//! Other threads push work (async writes, wake-ups, closes, connections handed over
//! by the main reactor, stop) and wake the loop through its eventfd. There are two
//! lanes: the **urgent** lane (writes and closes) is drained completely every round;
//! the **normal** lane is drained up to a limit per round so that a flood of tasks
//! cannot starve socket I/O.
//!
//! Wake-ups are coalesced: a pusher writes the eventfd only when it flips the
//! `notified` flag from false to true, so a burst of N pushes costs one syscall. The
//! loop resets the eventfd, then clears the flag, then takes the tasks, so a push
//! racing with the drain either is taken by it or sets the flag and writes the
//! eventfd again — never lost. A waker event always leads to a `take` (which
//! resets the eventfd), even if the flag was already cleared, so a late eventfd
//! write cannot leave a level-triggered waker spinning.
//!
//! Once the loop has stopped the queue is closed: pushes fail and hand the task back,
//! so the caller can complete its callback with an error instead of leaking it.

use crate::conn::WriteCallback;
use crate::sys;
use crate::transport::LayerFactory;
use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A listener's transport layers and an accepted connection's peer, carried with
/// the connection from the main reactor to its loop (which instantiates them).
pub(crate) struct Layered {
    pub(crate) factories: Arc<[Arc<dyn LayerFactory>]>,
    pub(crate) peer: socket2::SockAddr,
}

/// A unit of work for a loop.
pub(crate) enum Task {
    /// Write bytes to a connection (identified by slot index and generation).
    Write {
        index: u32,
        gen: u32,
        data: Bytes,
        cb: Option<WriteCallback>,
    },
    /// Write several buffers with one gathered write.
    Writev {
        index: u32,
        gen: u32,
        data: Vec<Bytes>,
        cb: Option<WriteCallback>,
    },
    /// Run `on_traffic` for a connection.
    Wake { index: u32, gen: u32 },
    /// Close a connection (after flushing what is queued).
    Close { index: u32, gen: u32 },
    /// Pause (`true`) or resume reading a connection.
    PauseRead { index: u32, gen: u32, pause: bool },
    /// Serve a connection accepted by the main reactor.
    Adopt {
        fd: OwnedFd,
        /// For a listener with transport layers: its layers and the peer's address.
        layered: Option<Box<Layered>>,
    },
    /// Stop accepting (listeners out, what they queued accepted and served);
    /// connections carry on. The token counts down when the task is done with.
    StopAccepting(Countdown),
    /// Stop the loop gracefully: stop accepting, let connections drain.
    Stop,
    /// Finish connecting (or adopt) an outgoing connection and serve it.
    Connect(Box<crate::engine::dialer::Dial>),
    /// Stop the loop now (a forced stop, or the end of a drain).
    StopNow,
}

impl Task {
    /// Completes a task that will never run: its callback gets `err`.
    pub(crate) fn fail(self, err: impl Fn() -> crate::Error) {
        match self {
            Task::Write { cb: Some(cb), .. } | Task::Writev { cb: Some(cb), .. } => {
                crate::conn::run_callback(cb, Err(err()))
            }
            Task::Connect(dial) => dial.fail(err()),
            _ => {}
        }
    }
}

/// One thread's part of a wait for every thread to act on a task: dropping it
/// (the task done, failed or discarded with its queue) counts down the shared
/// latch, so the waiter never waits for a task that will not run.
pub(crate) struct Countdown(Arc<Latch>);

/// A count of threads yet to act, and a condition to wait for zero on.
#[derive(Default)]
pub(crate) struct Latch {
    left: Mutex<usize>,
    zero: Condvar,
}

impl Latch {
    /// A latch for `n` threads, and their tokens.
    pub(crate) fn new(n: usize) -> (Arc<Latch>, Vec<Countdown>) {
        let latch = Arc::new(Latch {
            left: Mutex::new(n),
            zero: Condvar::new(),
        });
        let tokens = (0..n).map(|_| Countdown(latch.clone())).collect();
        (latch, tokens)
    }

    /// Waits until every token was dropped, or `deadline`; returns whether they were.
    pub(crate) fn wait_until(&self, deadline: std::time::Instant) -> bool {
        let mut left = self.left.lock().unwrap_or_else(|p| p.into_inner());
        while *left > 0 {
            let wait = deadline.saturating_duration_since(std::time::Instant::now());
            if wait.is_zero() {
                return false;
            }
            left = self
                .zero
                .wait_timeout(left, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

impl Drop for Countdown {
    fn drop(&mut self) {
        let mut left = self.0.left.lock().unwrap_or_else(|p| p.into_inner());
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.0.zero.notify_all();
        }
    }
}

#[derive(Default)]
struct Lanes {
    urgent: Vec<Task>,
    normal: VecDeque<Task>,
    closed: bool,
}

/// The queue plus the loop's eventfd waker.
pub(crate) struct TaskQueue {
    lanes: Mutex<Lanes>,
    notified: AtomicBool,
    waker: OwnedFd,
}

impl TaskQueue {
    /// Creates a queue with a fresh eventfd.
    pub(crate) fn new() -> io::Result<TaskQueue> {
        Ok(TaskQueue {
            lanes: Mutex::default(),
            notified: AtomicBool::new(false),
            waker: sys::eventfd()?,
        })
    }

    /// The eventfd the loop polls.
    pub(crate) fn waker_fd(&self) -> RawFd {
        self.waker.as_raw_fd()
    }

    /// Queues a task and wakes the loop. Gives the task back if the loop has stopped.
    pub(crate) fn push(&self, task: Task, urgent: bool) -> Result<(), Task> {
        {
            let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
            if lanes.closed {
                return Err(task);
            }
            if urgent {
                lanes.urgent.push(task);
            } else {
                lanes.normal.push_back(task);
            }
        }
        self.wake();
        Ok(())
    }

    /// Wakes the loop (coalesced).
    pub(crate) fn wake(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            if let Err(e) = sys::eventfd_write(self.waker.as_raw_fd()) {
                tracing::error!(error = %e, "failed to wake event loop");
            }
        }
    }

    /// Has anything been pushed since the last `take`? (Cheap: one atomic load.)
    pub(crate) fn is_notified(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    /// Moves all urgent tasks and up to `normal_limit` normal ones into `out`.
    /// Returns true if normal tasks were left behind (the loop should not block).
    pub(crate) fn take(&self, out: &mut Vec<Task>, normal_limit: usize) -> bool {
        // Reset the eventfd *before* clearing the flag: a push landing in between
        // then finds the flag still set and skips its eventfd write, but its task is
        // taken below. In the other order a push between the two steps would set the
        // flag, have its eventfd write swallowed by our read, and leave the flag set
        // with nothing to wake the loop for later pushes.
        sys::eventfd_read(self.waker.as_raw_fd());
        self.notified.store(false, Ordering::Release);
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        out.append(&mut lanes.urgent);
        let n = lanes.normal.len().min(normal_limit);
        out.extend(lanes.normal.drain(..n));
        let left = !lanes.normal.is_empty();
        if left {
            // Keep the flag set so the next round looks again without a syscall.
            self.notified.store(true, Ordering::Release);
        }
        left
    }

    /// Has the loop stopped taking tasks?
    pub(crate) fn is_closed(&self) -> bool {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner()).closed
    }

    /// Closes the queue and returns whatever was still in it.
    pub(crate) fn close(&self) -> Vec<Task> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes.closed = true;
        let mut rest = std::mem::take(&mut lanes.urgent);
        rest.extend(lanes.normal.drain(..));
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_and_limits() {
        let q = TaskQueue::new().unwrap();
        for _ in 0..5 {
            q.push(Task::Stop, false).map_err(|_| ()).unwrap();
        }
        q.push(Task::Wake { index: 1, gen: 0 }, true)
            .map_err(|_| ())
            .unwrap();
        assert!(q.is_notified());
        let mut out = Vec::new();
        assert!(q.take(&mut out, 2));
        assert_eq!(out.len(), 3);
        assert!(matches!(out[0], Task::Wake { .. }), "urgent lane first");
        assert!(q.is_notified(), "leftovers keep the flag set");
        out.clear();
        assert!(!q.take(&mut out, 10));
        assert_eq!(out.len(), 3);
        assert!(!q.is_notified());
    }

    #[test]
    fn closed_queue_hands_tasks_back() {
        let q = TaskQueue::new().unwrap();
        q.push(Task::Stop, false).map_err(|_| ()).unwrap();
        assert_eq!(q.close().len(), 1);
        assert!(q.push(Task::Stop, true).is_err());
    }
}
