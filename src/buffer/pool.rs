//! A per-event-loop pool of power-of-two byte blocks.
//!
//! Every connection owned by an event loop borrows its buffer storage from
//! the loop's [`BufferPool`] and gives it back as soon as it no longer needs
//! it. Because an event loop runs on a single thread, the pool needs no
//! locking: it is passed around as `&mut BufferPool`.
//!
//! Blocks are grouped into *size classes*, one per power of two starting at
//! [`MIN_BLOCK`]. Rounding every request up to a power of two keeps the
//! number of classes tiny (one per bit) and makes a returned block reusable
//! for any later request of the same class. The total number of bytes the
//! pool keeps for reuse is capped; blocks given back beyond the cap are
//! simply freed, so a burst of traffic cannot pin memory forever.

use super::linked::QueueHeader;
use std::fmt;

/// The smallest block the pool hands out, in bytes. Every block length is a
/// power of two greater than or equal to this.
pub const MIN_BLOCK: usize = 4096;

/// The default cap on retained bytes used by [`BufferPool::default`]: 64 MiB.
pub const DEFAULT_MAX_POOLED_BYTES: usize = 64 << 20;

const MIN_BLOCK_SHIFT: u32 = MIN_BLOCK.trailing_zeros();

/// Counters describing what a [`BufferPool`] has done since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Number of [`BufferPool::take`] calls.
    pub taken: u64,
    /// Number of `take` calls that had to allocate a fresh block because the
    /// matching free list was empty (`taken - allocated` is the reuse count).
    pub allocated: u64,
    /// Number of [`BufferPool::give`] calls.
    pub given: u64,
    /// Number of given blocks that were freed instead of retained, either
    /// because their length is not a valid block size or because keeping
    /// them would exceed the cap.
    pub dropped: u64,
}

/// A single-threaded pool of `Box<[u8]>` blocks whose lengths are powers of
/// two, at least [`MIN_BLOCK`] bytes.
///
/// One pool lives in each event loop. [`RingBuffer`](super::RingBuffer) and
/// [`LinkedBuffer`](super::LinkedBuffer) take their storage from it and give
/// it back when they empty, so idle connections hold no buffer memory while
/// busy ones recycle blocks instead of hitting the allocator.
///
/// # Example
///
/// ```
/// use netloop::buffer::BufferPool;
///
/// let mut pool = BufferPool::new(1 << 20); // retain at most 1 MiB
/// let block = pool.take(5000);             // rounded up to a power of two
/// assert_eq!(block.len(), 8192);
/// pool.give(block);
/// assert_eq!(pool.pooled_bytes(), 8192);
///
/// let again = pool.take(6000);             // same size class: reused
/// assert_eq!(again.len(), 8192);
/// assert_eq!(pool.stats().allocated, 1);
/// ```
pub struct BufferPool {
    /// `free[i]` holds retained blocks of length `MIN_BLOCK << i`.
    free: Vec<Vec<Box<[u8]>>>,
    pooled_bytes: usize,
    max_pooled_bytes: usize,
    /// Size of the blocks outbound queues copy small writes into.
    outbound_block: usize,
    stats: PoolStats,
    /// Headers of emptied outbound queues, reused by the next queue that fills:
    /// under a completion driver every reply is queued, and a connection's
    /// queue empties and refills once per message. Boxed: a header moves in and
    /// out of a `LinkedBuffer` (one pointer) as it is.
    #[allow(clippy::vec_box)]
    queues: Vec<Box<QueueHeader>>,
}

/// Emptied outbound-queue headers a pool keeps at most.
const MAX_QUEUES: usize = 256;

impl BufferPool {
    /// Creates an empty pool that retains at most `max_pooled_bytes` bytes of
    /// free blocks. A cap of `0` disables retention entirely (every given
    /// block is freed).
    pub const fn new(max_pooled_bytes: usize) -> Self {
        BufferPool {
            free: Vec::new(),
            pooled_bytes: 0,
            max_pooled_bytes,
            outbound_block: crate::buffer::linked::BLOCK_SIZE,
            queues: Vec::new(),
            stats: PoolStats {
                taken: 0,
                allocated: 0,
                given: 0,
                dropped: 0,
            },
        }
    }

    /// This pool with outbound blocks of `size` bytes (rounded up like every
    /// block: a power of two, at least [`MIN_BLOCK`]): the blocks a
    /// [`LinkedBuffer`](crate::buffer::LinkedBuffer) copies small writes into.
    /// Default: [`BLOCK_SIZE`](crate::buffer::linked::BLOCK_SIZE).
    pub const fn with_outbound_block(mut self, size: usize) -> Self {
        self.outbound_block = Self::block_size_for(size);
        self
    }

    /// The size of the blocks outbound queues copy into.
    pub const fn outbound_block(&self) -> usize {
        self.outbound_block
    }

    /// Returns the block length `take(min_len)` would hand out: `min_len`
    /// rounded up to a power of two, and at least [`MIN_BLOCK`].
    ///
    /// # Panics
    ///
    /// Panics if the rounded size does not fit in `usize`.
    pub const fn block_size_for(min_len: usize) -> usize {
        let len = if min_len < MIN_BLOCK {
            MIN_BLOCK
        } else {
            min_len
        };
        match len.checked_next_power_of_two() {
            Some(size) => size,
            None => panic!("BufferPool: requested block size overflows usize"),
        }
    }

    /// Hands out a block of at least `min_len` bytes.
    ///
    /// The block length is [`block_size_for(min_len)`](Self::block_size_for).
    /// A retained block of that size class is reused when available (its
    /// contents are whatever the previous user left); otherwise a fresh,
    /// zeroed block is allocated.
    ///
    /// # Panics
    ///
    /// Panics if the rounded size does not fit in `usize`, or if the
    /// allocation fails.
    pub fn take(&mut self, min_len: usize) -> Box<[u8]> {
        let size = Self::block_size_for(min_len);
        self.stats.taken += 1;
        if let Some(block) = self
            .free
            .get_mut(class_of(size))
            .and_then(|list| list.pop())
        {
            self.pooled_bytes -= size;
            return block;
        }
        self.stats.allocated += 1;
        vec![0u8; size].into_boxed_slice()
    }

    /// Gives a block back to the pool.
    ///
    /// The block is retained for reuse if its length is a power of two of at
    /// least [`MIN_BLOCK`] bytes and retaining it keeps
    /// [`pooled_bytes`](Self::pooled_bytes) within the cap; otherwise it is
    /// freed. Any `Box<[u8]>` may be given, not only ones obtained from
    /// [`take`](Self::take).
    pub fn give(&mut self, block: Box<[u8]>) {
        self.stats.given += 1;
        let size = block.len();
        let valid = size >= MIN_BLOCK && size.is_power_of_two();
        let fits = self
            .pooled_bytes
            .checked_add(size)
            .is_some_and(|total| total <= self.max_pooled_bytes);
        if !(valid && fits) {
            self.stats.dropped += 1;
            return;
        }
        let class = class_of(size);
        if self.free.len() <= class {
            self.free.resize_with(class + 1, Vec::new);
        }
        self.free[class].push(block);
        self.pooled_bytes += size;
    }

    /// Total length in bytes of the blocks currently retained for reuse.
    /// Never exceeds [`max_pooled_bytes`](Self::max_pooled_bytes).
    pub fn pooled_bytes(&self) -> usize {
        self.pooled_bytes
    }

    /// The cap on retained bytes this pool was created with.
    pub fn max_pooled_bytes(&self) -> usize {
        self.max_pooled_bytes
    }

    /// Counters of takes, allocations, gives and drops so far.
    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// Frees every retained block, returning the memory to the allocator.
    pub fn clear(&mut self) {
        self.free.clear();
        self.queues.clear();
        self.pooled_bytes = 0;
    }

    /// An emptied outbound-queue header, if one is kept.
    pub(crate) fn take_queue(&mut self) -> Option<Box<QueueHeader>> {
        self.queues.pop()
    }

    /// Keeps an emptied outbound-queue header for reuse (a few hundred at most,
    /// with short block lists; others are freed).
    pub(crate) fn give_queue(&mut self, q: Box<QueueHeader>) {
        if self.queues.len() < MAX_QUEUES && q.is_small() {
            self.queues.push(q);
        }
    }
}

impl Default for BufferPool {
    /// A pool retaining at most [`DEFAULT_MAX_POOLED_BYTES`] (64 MiB).
    fn default() -> Self {
        Self::new(DEFAULT_MAX_POOLED_BYTES)
    }
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("pooled_bytes", &self.pooled_bytes)
            .field("max_pooled_bytes", &self.max_pooled_bytes)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Index of the free list for a valid block size (a power of two ≥ MIN_BLOCK).
fn class_of(size: usize) -> usize {
    debug_assert!(size.is_power_of_two() && size >= MIN_BLOCK);
    (size.trailing_zeros() - MIN_BLOCK_SHIFT) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_to_power_of_two_min_block() {
        let mut pool = BufferPool::default();
        assert_eq!(pool.take(0).len(), MIN_BLOCK);
        assert_eq!(pool.take(1).len(), MIN_BLOCK);
        assert_eq!(pool.take(MIN_BLOCK).len(), MIN_BLOCK);
        assert_eq!(pool.take(MIN_BLOCK + 1).len(), 2 * MIN_BLOCK);
        assert_eq!(pool.take(100_000).len(), 131_072);
        assert_eq!(BufferPool::block_size_for(16 << 10), 16 << 10);
    }

    #[test]
    fn reuses_same_class_without_rezeroing() {
        let mut pool = BufferPool::default();
        let mut a = pool.take(4096);
        a[0] = 0xAB;
        pool.give(a);
        assert_eq!(pool.pooled_bytes(), 4096);
        let b = pool.take(10);
        assert_eq!(b[0], 0xAB, "reused block is not re-zeroed");
        assert_eq!(pool.pooled_bytes(), 0);
        let s = pool.stats();
        assert_eq!((s.taken, s.allocated, s.given, s.dropped), (2, 1, 1, 0));
    }

    #[test]
    fn different_classes_do_not_mix() {
        let mut pool = BufferPool::default();
        let big = pool.take(8192);
        pool.give(big);
        let small = pool.take(4096);
        assert_eq!(small.len(), 4096);
        assert_eq!(pool.stats().allocated, 2);
        assert_eq!(pool.pooled_bytes(), 8192);
    }

    #[test]
    fn drops_invalid_sizes() {
        let mut pool = BufferPool::default();
        pool.give(vec![0u8; 5000].into_boxed_slice());
        pool.give(vec![0u8; 2048].into_boxed_slice());
        pool.give(Box::default());
        assert_eq!(pool.pooled_bytes(), 0);
        assert_eq!(pool.stats().dropped, 3);
        // A foreign block of a valid size is accepted.
        pool.give(vec![0u8; 65536].into_boxed_slice());
        assert_eq!(pool.pooled_bytes(), 65536);
    }

    #[test]
    fn respects_cap() {
        let mut pool = BufferPool::new(3 * MIN_BLOCK);
        let blocks: Vec<_> = (0..5).map(|_| pool.take(1)).collect();
        for b in blocks {
            pool.give(b);
            assert!(pool.pooled_bytes() <= pool.max_pooled_bytes());
        }
        assert_eq!(pool.pooled_bytes(), 3 * MIN_BLOCK);
        assert_eq!(pool.stats().dropped, 2);
        // A block bigger than the remaining room is dropped too.
        let mut pool = BufferPool::new(MIN_BLOCK);
        pool.give(vec![0u8; 2 * MIN_BLOCK].into_boxed_slice());
        assert_eq!(pool.pooled_bytes(), 0);
    }

    #[test]
    fn zero_cap_retains_nothing() {
        let mut pool = BufferPool::new(0);
        let b = pool.take(1);
        pool.give(b);
        assert_eq!(pool.pooled_bytes(), 0);
        assert_eq!(pool.stats().dropped, 1);
    }

    #[test]
    fn clear_frees_everything() {
        let mut pool = BufferPool::default();
        let a = pool.take(1);
        let b = pool.take(100_000);
        pool.give(a);
        pool.give(b);
        pool.clear();
        assert_eq!(pool.pooled_bytes(), 0);
        assert_eq!(pool.take(1).len(), MIN_BLOCK);
        assert_eq!(pool.stats().allocated, 3);
    }

    #[test]
    #[should_panic(expected = "overflows")]
    fn huge_request_panics() {
        let _ = BufferPool::block_size_for(usize::MAX);
    }
}
