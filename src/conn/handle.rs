//! Cross-thread connection handles.

use crate::engine::shared::LoopShared;
use crate::engine::task_queue::Task;
use crate::error::Error;
use bytes::Bytes;
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

/// A connection's identity, unique across an engine for the engine's lifetime: the
/// loop serving it, its slab slot, and the slot's generation (bumped every time
/// the slot is reused). [`Conn::id`](crate::Conn::id) and [`ConnHandle::id`] give
/// the same value for the same connection, so either can key a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    loop_index: u32,
    slot: u32,
    gen: u32,
}

impl ConnId {
    pub(crate) fn new(loop_index: usize, slot: u32, gen: u32) -> ConnId {
        ConnId {
            loop_index: loop_index as u32,
            slot,
            gen,
        }
    }

    /// The index of the loop serving the connection.
    pub fn loop_index(self) -> usize {
        self.loop_index as usize
    }

    /// The connection's slot in its loop's slab (reused by later connections).
    pub fn slot(self) -> u32 {
        self.slot
    }

    /// The slot's generation: different for every connection the slot holds.
    pub fn generation(self) -> u32 {
        self.gen
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.loop_index, self.slot, self.gen)
    }
}

/// A `Send + Clone` handle to a connection, usable from any thread.
///
/// Operations are queued to the connection's event loop and run there. A handle
/// names its connection by slot index **and generation**: once the connection
/// closes, the slot's generation changes, so a stale handle can never write to a
/// reused slot or descriptor. Every operation returns [`Error::ConnectionClosed`]
/// at once when the connection is already known to be closed, and
/// [`Error::EngineStopped`] when its loop has stopped. A connection that closes
/// after the operation was queued (a race no handle can avoid) ignores it, and an
/// async write's callback then gets the error.
///
/// Handles compare and hash by the connection they name ([`ConnHandle::id`]);
/// to key a map, [`ConnId`] (`Copy`, no shared state) is the lighter choice.
///
/// ```no_run
/// # use netloop::{Conn, ConnHandle};
/// # fn f(conn: &mut Conn<'_, ()>) {
/// let handle: ConnHandle = conn.handle();
/// std::thread::spawn(move || {
///     let _ = handle.async_write(&b"pushed from another thread\n"[..], None);
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
        f.debug_tuple("ConnHandle").field(&self.id()).finish()
    }
}

impl PartialEq for ConnHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
            && self.index == other.index
            && self.gen == other.gen
    }
}

impl Eq for ConnHandle {}

impl std::hash::Hash for ConnHandle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl ConnHandle {
    /// Queues `task` for the connection's loop, unless the connection is known to
    /// be closed or the loop has stopped. A refused task is dropped: its callback
    /// is not called (the error is returned instead).
    fn push(&self, task: Task, urgent: bool) -> Result<(), Error> {
        if !self.is_open() {
            return Err(if self.shared.queue.is_closed() {
                Error::EngineStopped
            } else {
                Error::ConnectionClosed
            });
        }
        self.shared
            .queue
            .push(task, urgent)
            .map_err(|_| Error::EngineStopped)
    }

    /// The connection's engine-wide identity.
    pub fn id(&self) -> ConnId {
        ConnId::new(self.shared.index, self.index, self.gen)
    }

    /// Is the connection still open? (It may close right after this answers.)
    pub fn is_open(&self) -> bool {
        self.shared.live.is_live(self.index, self.gen)
    }

    /// Queues `data` to be written by the loop, after everything queued before.
    /// Anything that converts into [`Bytes`] is taken without a copy (a `Vec<u8>`, a
    /// `String`, a `&'static [u8]`); a `Bytes` shared with other connections stays
    /// one buffer however many connections it is written to (a broadcast holds one
    /// copy of its message, not one per connection).
    ///
    /// `cb`, if given, is called once the bytes reached the kernel, or with the
    /// error that stopped them (the connection closed first). If this returns an
    /// error, nothing was queued and `cb` is not called.
    pub fn async_write(
        &self,
        data: impl Into<Bytes>,
        cb: Option<WriteCallback>,
    ) -> Result<(), Error> {
        let task = Task::Write {
            index: self.index,
            gen: self.gen,
            data: data.into(),
            cb,
        };
        self.push(task, true)
    }

    /// Queues several buffers, written with one gathered `writev` when possible;
    /// otherwise as [`async_write`](Self::async_write).
    pub fn async_writev<B: Into<Bytes>>(
        &self,
        bufs: impl IntoIterator<Item = B>,
        cb: Option<WriteCallback>,
    ) -> Result<(), Error> {
        let task = Task::Writev {
            index: self.index,
            gen: self.gen,
            data: bufs.into_iter().map(Into::into).collect(),
            cb,
        };
        self.push(task, true)
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
