//! What every part of a running engine shares: each loop's reachable part
//! ([`LoopShared`]), the token layout, and "am I on a loop thread".

use super::stats::LoopCounters;
use super::task_queue::TaskQueue;
use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;

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
    /// Which connections are open, for handles on other threads.
    pub(crate) live: Liveness,
}

/// Slots per leaf of a [`Liveness`] table, and leaves per branch.
const LEAF: usize = 1024;
const BRANCH: usize = 1024;
/// Branches: enough for `MAX_SLOTS`.
const BRANCHES: usize = MAX_SLOTS / (LEAF * BRANCH);

type Leaf = [AtomicU32; LEAF];
type Branch = [OnceLock<Box<Leaf>>; BRANCH];

/// The generation of the connection open in each slot of a loop, readable from
/// any thread without a lock, so that a [`ConnHandle`](crate::ConnHandle) can
/// tell at once that its connection has closed.
///
/// The loop stores a slot's generation when a connection opens there and the
/// *next* generation when it closes, so a handle matches only while its
/// connection is open. A three-level table of 4-byte entries, grown in 4 KiB
/// leaves as the slab grows: lookups are two atomic loads of `OnceLock`s and one
/// of the entry.
pub(crate) struct Liveness {
    branches: Box<[OnceLock<Box<Branch>>]>,
}

impl Liveness {
    fn new() -> Liveness {
        Liveness {
            branches: (0..BRANCHES).map(|_| OnceLock::new()).collect(),
        }
    }

    fn split(index: u32) -> (usize, usize, usize) {
        let i = index as usize;
        (i / (LEAF * BRANCH), i / LEAF % BRANCH, i % LEAF)
    }

    /// Records (loop thread only) that slot `index` now holds generation `gen`.
    pub(crate) fn set(&self, index: u32, gen: u32) {
        let (b, l, e) = Self::split(index);
        let branch =
            self.branches[b].get_or_init(|| Box::new(std::array::from_fn(|_| OnceLock::new())));
        let leaf = branch[l].get_or_init(|| Box::new(std::array::from_fn(|_| AtomicU32::new(0))));
        leaf[e].store(gen, Ordering::Release);
    }

    /// Is the connection in slot `index` with generation `gen` open?
    pub(crate) fn is_live(&self, index: u32, gen: u32) -> bool {
        let (b, l, e) = Self::split(index);
        self.branches
            .get(b)
            .and_then(|b| b.get())
            .and_then(|branch| branch[l].get())
            .is_some_and(|leaf| leaf[e].load(Ordering::Acquire) == gen)
    }
}

impl LoopShared {
    pub(crate) fn new(index: usize) -> io::Result<Arc<LoopShared>> {
        Ok(Arc::new(LoopShared {
            index,
            queue: TaskQueue::new()?,
            connections: AtomicUsize::new(0),
            stats: LoopCounters::default(),
            live: Liveness::new(),
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
