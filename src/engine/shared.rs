//! What every part of a running engine shares: each loop's reachable part
//! ([`LoopShared`]), the token layout, and "am I on a loop thread".

use super::stats::LoopCounters;
use super::task_queue::TaskQueue;
use std::cell::Cell;
use std::io;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

thread_local! {
    /// Set on event-loop threads, so `stop()` called from a handler does not wait
    /// for its own loop to exit.
    pub(crate) static IN_LOOP: Cell<bool> = const { Cell::new(false) };
}

/// Token of the loop's waker (eventfd).
pub(crate) const WAKER_TOKEN: u64 = 0xFFFF_FFFF_8FFF_FFFF;
/// Listener `i` uses token `LISTENER_TOKEN - i`.
pub(crate) const LISTENER_TOKEN: u64 = WAKER_TOKEN - 1;
/// Slab indexes stay below this, so connection tokens never collide with the above.
pub(crate) const MAX_SLOTS: usize = 1 << 28;
/// Set in every token that is not a connection's: the waker's and the listeners'
/// (whose high 32 bits are all ones) and dials' (see `crate::engine::dialer`); clear in a
/// connection's, whose low 32 bits are a slab index below `MAX_SLOTS`. One test
/// sends the common event to its connection.
pub(crate) const NOT_CONN_BIT: u64 = 1 << 31;
/// Bits 28–30 are clear in every token (slab and dial indexes stay below 2^28, the
/// waker's and listeners' low words are `0x8FFF_FFFx`): a completion driver puts
/// the kind of operation there, so one 64-bit user-data word names the connection,
/// its generation and the operation (see `crate::driver::uring`).
pub(crate) const OP_SHIFT: u32 = 28;
/// The operation bits of a completion driver's user data.
pub(crate) const OP_MASK: u64 = 7 << OP_SHIFT;

/// The token of connection `index` with generation `gen`.
#[inline]
pub(crate) fn token(index: u32, gen: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(index)
}

/// The part of a loop other threads can reach.
pub(crate) struct LoopShared {
    pub(crate) index: usize,
    pub(crate) queue: TaskQueue,
    pub(crate) connections: AtomicUsize,
    pub(crate) stats: LoopCounters,
}

impl LoopShared {
    pub(crate) fn new(index: usize) -> io::Result<Arc<LoopShared>> {
        Ok(Arc::new(LoopShared {
            index,
            queue: TaskQueue::new()?,
            connections: AtomicUsize::new(0),
            stats: LoopCounters::default(),
        }))
    }
}

/// How an engine thread reports the outcome of its set-up to `Engine::start`.
pub(crate) type Ready = std::sync::mpsc::Sender<io::Result<()>>;

/// Reports a set-up result to `start`, passing errors through.
pub(crate) fn report<T>(ready: &Ready, res: io::Result<T>) -> io::Result<T> {
    match &res {
        Ok(_) => {
            let _ = ready.send(Ok(()));
        }
        Err(e) => {
            let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
        }
    }
    res
}

/// Extracts a panic payload's message.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(|s| s.as_str()))
        .unwrap_or("(non-string panic)")
}
