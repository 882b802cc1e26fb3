//! A bounded pool of threads for blocking business logic.
//!
//! The seed's workflow: the event loop reads and decodes, a worker computes (a
//! database call, a slow computation — anything that must not block the loop), and
//! the result goes back through the connection's [`ConnHandle`](crate::ConnHandle),
//! which the loop writes to the socket.
//!
//! The queue is bounded: when it is full, [`WorkerPool::try_execute`] refuses the job
//! (the loop must never block), and the handler decides — reply "busy", close, or
//! pause reading.
//!
//! ```
//! use netloop::WorkerPool;
//! use std::sync::mpsc;
//! let pool = WorkerPool::new(2, 64);
//! let (tx, rx) = mpsc::channel();
//! pool.try_execute(move || tx.send(6 * 7).unwrap()).unwrap();
//! assert_eq!(rx.recv().unwrap(), 42);
//! ```

use crate::error::Error;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of worker threads fed by a bounded queue.
pub struct WorkerPool {
    tx: Option<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("threads", &self.threads.len())
            .field("running", &self.tx.is_some())
            .finish()
    }
}

impl WorkerPool {
    /// Starts `threads` workers (at least 1) sharing a queue of `capacity` jobs.
    pub fn new(threads: usize, capacity: usize) -> WorkerPool {
        let (tx, rx) = sync_channel::<Job>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..threads.max(1))
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("netloop-worker-{i}"))
                    .spawn(move || worker(rx))
                    .expect("spawning a worker thread")
            })
            .collect();
        WorkerPool {
            tx: Some(tx),
            threads,
        }
    }

    /// Queues a job, or returns [`Error::PoolFull`] at once if the queue is full.
    pub fn try_execute(&self, job: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        let tx = self.tx.as_ref().expect("the sender lives until drop");
        match tx.try_send(Box::new(job)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::PoolFull),
            Err(TrySendError::Disconnected(_)) => Err(Error::EngineStopped),
        }
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }
}

fn worker(rx: Arc<Mutex<Receiver<Job>>>) {
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            guard.recv()
        };
        match job {
            Ok(job) => {
                if let Err(p) = catch_unwind(AssertUnwindSafe(job)) {
                    tracing::error!(
                        panic = crate::engine::shared::panic_message(&*p),
                        "worker job panicked"
                    );
                }
            }
            Err(_) => return, // the pool was dropped
        }
    }
}

impl Drop for WorkerPool {
    /// Finishes the queued jobs, then joins the workers.
    fn drop(&mut self) {
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn bounded_queue_refuses_when_full() {
        let pool = WorkerPool::new(1, 1);
        let (block_tx, block_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        pool.try_execute(move || {
            started_tx.send(()).unwrap();
            block_rx.recv().unwrap();
        })
        .unwrap();
        started_rx.recv().unwrap(); // the worker is busy now
        pool.try_execute(|| {}).unwrap(); // fills the one queue place
        assert!(matches!(pool.try_execute(|| {}), Err(Error::PoolFull)));
        block_tx.send(()).unwrap();
    }

    #[test]
    fn panicking_job_does_not_kill_the_worker() {
        let pool = WorkerPool::new(1, 4);
        pool.try_execute(|| panic!("boom")).unwrap();
        let (tx, rx) = mpsc::channel();
        pool.try_execute(move || tx.send(1).unwrap()).unwrap();
        assert_eq!(rx.recv().unwrap(), 1);
    }
}
