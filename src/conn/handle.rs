//! Cross-thread connection handles.

use crate::engine::shared::LoopShared;
use crate::engine::task_queue::Task;
use crate::error::Error;
use std::sync::Arc;

/// Completion callback of an async write: `Ok(())` once every byte has been handed
/// to the kernel, `Err` if the connection closed (or the engine stopped) first.
/// Runs on the loop thread, or on the caller's thread if the loop had already stopped.
pub type WriteCallback = Box<dyn FnOnce(Result<(), Error>) + Send + 'static>;

/// Runs a user callback, containing a panic so it cannot take a loop down.
pub(crate) fn run_callback(cb: WriteCallback, result: Result<(), Error>) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(result))).is_err() {
        tracing::error!("async write callback panicked");
    }
}

/// A `Send + Clone` handle to a connection, usable from any thread.
///
/// Operations are queued to the connection's event loop and run there. A handle
/// names its connection by slot index **and generation**: once the connection
/// closes, the slot's generation changes, so a stale handle can never write to a
/// reused slot or descriptor — its callback gets [`Error::ConnectionClosed`] instead.
///
/// ```no_run
/// # use netloop::{Conn, ConnHandle};
/// # fn f(conn: &mut Conn<'_, ()>) {
/// let handle: ConnHandle = conn.handle();
/// std::thread::spawn(move || {
///     handle.async_write(b"pushed from another thread\n".to_vec(), None);
/// });
/// # }
/// ```
#[derive(Clone)]
pub struct ConnHandle {
    pub(crate) shared: Arc<LoopShared>,
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

impl std::fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnHandle")
            .field("loop", &self.shared.index)
            .field("slot", &self.index)
            .field("gen", &self.gen)
            .finish()
    }
}

impl ConnHandle {
    fn push(&self, task: Task, urgent: bool) -> Result<(), Error> {
        self.shared.queue.push(task, urgent).map_err(|t| {
            t.fail(|| Error::EngineStopped);
            Error::EngineStopped
        })
    }

    /// Queues `data` to be written by the loop. `cb`, if given, is called once the
    /// bytes reached the kernel or with the error that prevented it.
    pub fn async_write(&self, data: impl Into<Vec<u8>>, cb: Option<WriteCallback>) {
        let task = Task::Write {
            index: self.index,
            gen: self.gen,
            data: data.into(),
            cb,
        };
        let _ = self.push(task, true);
    }

    /// Queues several buffers, written with one gathered `writev` when possible.
    pub fn async_writev(&self, bufs: Vec<Vec<u8>>, cb: Option<WriteCallback>) {
        let task = Task::Writev {
            index: self.index,
            gen: self.gen,
            data: bufs,
            cb,
        };
        let _ = self.push(task, true);
    }

    /// Asks the loop to run `on_traffic` for this connection (for example after a
    /// worker produced something the handler should act on).
    pub fn wake(&self) -> Result<(), Error> {
        self.push(
            Task::Wake {
                index: self.index,
                gen: self.gen,
            },
            false,
        )
    }

    /// Closes the connection after what is queued for it has been sent.
    pub fn close(&self) -> Result<(), Error> {
        self.push(
            Task::Close {
                index: self.index,
                gen: self.gen,
            },
            true,
        )
    }

    /// Pauses reading the connection, like [`Conn::pause_read`](crate::Conn::pause_read).
    pub fn pause_read(&self) -> Result<(), Error> {
        self.push(
            Task::PauseRead {
                index: self.index,
                gen: self.gen,
                pause: true,
            },
            true,
        )
    }

    /// Resumes reading the connection, like [`Conn::resume_read`](crate::Conn::resume_read).
    pub fn resume_read(&self) -> Result<(), Error> {
        self.push(
            Task::PauseRead {
                index: self.index,
                gen: self.gen,
                pause: false,
            },
            true,
        )
    }

    /// Index of the event loop serving this connection.
    pub fn loop_index(&self) -> usize {
        self.shared.index
    }
}
