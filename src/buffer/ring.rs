//! An elastic ring buffer for inbound bytes.
//!
//! A [`RingBuffer`] is the read side of a connection: the event loop reads
//! socket data into it and the codec consumes complete frames from its front.
//! Its storage is a single power-of-two block borrowed from the loop's
//! [`BufferPool`]; positions are kept as `u32` offsets masked by
//! `capacity - 1`, so wrapping around costs a bitwise AND. The ring grows by
//! swapping to a bigger pooled block when a write does not fit, and gives its
//! block back to the pool the moment it becomes empty: an idle connection
//! costs one pointer and no heap memory.

use std::fmt;

use super::pool::BufferPool;

/// The largest capacity a [`RingBuffer`] can grow to: 2 GiB. Offsets are
/// stored as `u32`, so the buffered length must stay below 2³².
pub const MAX_CAPACITY: usize = 1 << 31;

/// An elastic ring buffer of inbound bytes, backed by one pooled block.
///
/// * Holds no heap memory while empty; `size_of::<RingBuffer>()` is one pointer
///   (the ring's state is boxed together with its storage only while in use).
/// * Methods that may allocate or free take the event loop's
///   [`BufferPool`] as an argument, so the ring need not store a reference
///   to it.
/// * [`as_slices`](Self::as_slices) gives zero-copy access to the buffered
///   bytes; [`make_contiguous`](Self::make_contiguous) rotates them into a
///   single slice in place when a parser needs one.
/// * [`reserve_write`](Self::reserve_write) + [`commit`](Self::commit) (or
///   [`fill_with`](Self::fill_with)) let a socket `read()` straight into the
///   ring without an intermediate copy.
///
/// Dropping a non-empty ring frees its block instead of returning it to the
/// pool; call [`release`](Self::release) first to recycle it.
///
/// # Example
///
/// ```
/// use netloop::buffer::{BufferPool, RingBuffer};
///
/// let mut pool = BufferPool::default();
/// let mut ring = RingBuffer::new();
/// assert_eq!(ring.capacity(), 0); // no storage until the first write
///
/// ring.push(b"hello ", &mut pool);
/// // Read "from a socket" directly into the free space.
/// let space = ring.reserve_write(5, &mut pool);
/// space[..5].copy_from_slice(b"world");
/// ring.commit(5);
/// assert_eq!(ring.make_contiguous(), b"hello world");
///
/// let mut word = [0u8; 6];
/// assert_eq!(ring.read_to(&mut word, &mut pool), 6);
/// assert_eq!(&word, b"hello ");
/// ring.consume(5, &mut pool);
/// assert!(ring.is_empty());
/// assert_eq!(ring.capacity(), 0); // storage went back to the pool
/// assert_eq!(pool.pooled_bytes(), 4096);
/// ```
pub struct RingBuffer {
    inner: Option<Box<Ring>>,
}

impl RingBuffer {
    /// Creates an empty ring. Does not allocate.
    pub const fn new() -> Self {
        RingBuffer { inner: None }
    }

    /// Number of buffered bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |r| r.len())
    }

    /// Whether no bytes are buffered.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.inner.is_none() || self.len() == 0
    }

    /// Length of the current storage block; `0` when no storage is held.
    pub fn capacity(&self) -> usize {
        self.inner.as_ref().map_or(0, |r| r.capacity())
    }

    /// The buffered bytes in order, as two slices: the second is empty unless
    /// the data wraps around the end of the storage block. Zero-copy.
    pub fn as_slices(&self) -> (&[u8], &[u8]) {
        match &self.inner {
            Some(r) => r.as_slices(),
            None => (&[], &[]),
        }
    }

    /// Appends `data`, growing the storage if needed (a block of the next
    /// sufficient power of two from `pool`; the old block goes back).
    ///
    /// # Panics
    ///
    /// Panics if the buffered length would exceed [`MAX_CAPACITY`].
    pub fn push(&mut self, data: &[u8], pool: &mut BufferPool) {
        if !data.is_empty() {
            self.state().push(data, pool);
        }
    }

    /// Discards the first `n` bytes. `n` is clamped to [`len`](Self::len),
    /// so consuming more than is buffered simply empties the ring. When the
    /// ring becomes empty its storage is given back to `pool`.
    pub fn consume(&mut self, n: usize, pool: &mut BufferPool) {
        if let Some(r) = self.inner.as_mut() {
            r.consume(n, pool);
        }
        self.tidy();
    }

    /// Copies buffered bytes starting at `offset` into `dst` without
    /// consuming them; returns how many were copied.
    pub fn copy_to(&self, offset: usize, dst: &mut [u8]) -> usize {
        self.inner.as_ref().map_or(0, |r| r.copy_to(offset, dst))
    }

    /// Copies bytes into `dst` and consumes them; returns how many.
    pub fn read_to(&mut self, dst: &mut [u8], pool: &mut BufferPool) -> usize {
        let n = self.inner.as_mut().map_or(0, |r| r.read_to(dst, pool));
        self.tidy();
        n
    }

    /// Rotates the buffered bytes in place so they form one slice, and
    /// returns it. Never allocates.
    pub fn make_contiguous(&mut self) -> &[u8] {
        match self.inner.as_mut() {
            Some(r) => r.make_contiguous(),
            None => &[],
        }
    }

    /// Returns at least `min` bytes of contiguous free space right after the
    /// buffered bytes, growing (or sliding the data) as needed; its contents
    /// are unspecified. With `min == 0` and no storage, the slice is empty and
    /// nothing is allocated.
    ///
    /// Storage taken here stays with the ring even if nothing is committed:
    /// if the ring is still empty afterwards, call [`release`](Self::release)
    /// — or use [`fill_with`](Self::fill_with), which does that for you.
    ///
    /// # Panics
    ///
    /// Panics if `len + min` exceeds [`MAX_CAPACITY`].
    pub fn reserve_write(&mut self, min: usize, pool: &mut BufferPool) -> &mut [u8] {
        if min == 0 && self.inner.is_none() {
            return &mut [];
        }
        self.state().reserve_write(min, pool)
    }

    /// Marks `n` bytes written into the slice last returned by
    /// [`reserve_write`](Self::reserve_write) as buffered data.
    ///
    /// # Panics
    ///
    /// Panics if `n` is larger than the reserved slice.
    pub fn commit(&mut self, n: usize) {
        match self.inner.as_mut() {
            Some(r) => r.commit(n),
            None => assert!(
                n == 0,
                "RingBuffer::commit({n}) exceeds the 0 reserved bytes"
            ),
        }
    }

    /// Reserves at least `min` bytes of contiguous free space, lets `fill`
    /// write into it, and commits the number of bytes it reports. If `fill`
    /// fails or writes nothing while the ring is empty, the storage goes
    /// straight back to `pool`. Returns `fill`'s result.
    ///
    /// ```
    /// use std::io::Read;
    /// use netloop::buffer::{BufferPool, RingBuffer};
    ///
    /// let mut pool = BufferPool::default();
    /// let mut ring = RingBuffer::new();
    /// let mut socket: &[u8] = b"GET / HTTP/1.1\r\n";
    /// let n = ring.fill_with(4096, &mut pool, |buf| socket.read(buf)).unwrap();
    /// assert_eq!(n, 16);
    /// assert_eq!(ring.len(), 16);
    /// ring.release(&mut pool);
    /// // End of stream: nothing committed, and no storage is kept.
    /// assert_eq!(ring.fill_with(4096, &mut pool, |buf| socket.read(buf)).unwrap(), 0);
    /// assert_eq!(ring.capacity(), 0);
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if `fill` reports more bytes than the slice it was given, or
    /// as [`reserve_write`](Self::reserve_write) does.
    pub fn fill_with<E>(
        &mut self,
        min: usize,
        pool: &mut BufferPool,
        fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let result = fill(self.reserve_write(min, pool));
        if let Ok(n) = result {
            self.commit(n);
        }
        if self.is_empty() {
            self.release(pool);
        }
        result
    }

    /// Discards all buffered bytes and gives the storage back to `pool`.
    pub fn release(&mut self, pool: &mut BufferPool) {
        if let Some(mut r) = self.inner.take() {
            r.release(pool);
        }
    }

    fn state(&mut self) -> &mut Ring {
        self.inner.get_or_insert_with(|| Box::new(Ring::new()))
    }

    /// Drops the boxed state once its storage is gone.
    fn tidy(&mut self) {
        if self.inner.as_ref().is_some_and(|r| r.capacity() == 0) {
            self.inner = None;
        }
    }
}

impl Default for RingBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RingBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (head, len) = self.inner.as_ref().map_or((0, 0), |r| (r.head, r.len));
        f.debug_struct("RingBuffer")
            .field("len", &len)
            .field("head", &head)
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// The ring proper; [`RingBuffer`] boxes it so an idle connection pays one pointer.
struct Ring {
    /// Storage; `None` exactly when nothing is allocated. Its length is a
    /// power of two no larger than `MAX_CAPACITY`.
    buf: Option<Box<[u8]>>,
    /// Offset of the first buffered byte; always `0` when `len == 0`.
    head: u32,
    /// Number of buffered bytes.
    len: u32,
}

impl Ring {
    /// Creates an empty ring. Does not allocate.
    const fn new() -> Self {
        Ring {
            buf: None,
            head: 0,
            len: 0,
        }
    }

    /// Number of buffered bytes.
    fn len(&self) -> usize {
        self.len as usize
    }

    /// Length of the current storage block; `0` when no storage is held.
    fn capacity(&self) -> usize {
        self.buf.as_ref().map_or(0, |b| b.len())
    }

    /// The buffered bytes in order, as two slices: the second is empty unless
    /// the data wraps around the end of the storage block. Zero-copy.
    fn as_slices(&self) -> (&[u8], &[u8]) {
        let Some(buf) = self.buf.as_deref() else {
            return (&[], &[]);
        };
        let (head, len) = (self.head as usize, self.len as usize);
        let end = head + len;
        if end <= buf.len() {
            (&buf[head..end], &[])
        } else {
            (&buf[head..], &buf[..end - buf.len()])
        }
    }

    /// Appends `data`, growing the storage if needed.
    ///
    /// Growth takes a block of the next sufficient power of two from `pool`,
    /// copies the buffered bytes to its start and gives the old block back.
    ///
    /// # Panics
    ///
    /// Panics if the buffered length would exceed [`MAX_CAPACITY`].
    fn push(&mut self, data: &[u8], pool: &mut BufferPool) {
        if data.is_empty() {
            return;
        }
        self.grow_to(self.len() + data.len(), pool);
        let buf = self.buf.as_deref_mut().expect("storage after grow");
        let cap = buf.len();
        let tail = (self.head as usize + self.len as usize) & (cap - 1);
        let first = data.len().min(cap - tail);
        buf[tail..tail + first].copy_from_slice(&data[..first]);
        buf[..data.len() - first].copy_from_slice(&data[first..]);
        self.len += data.len() as u32;
    }

    /// Discards the first `n` bytes. `n` is clamped to [`len`](Self::len),
    /// so consuming more than is buffered simply empties the ring. When the
    /// ring becomes empty its storage is given back to `pool`.
    fn consume(&mut self, n: usize, pool: &mut BufferPool) {
        let n = n.min(self.len());
        if n == self.len() {
            self.release(pool);
            return;
        }
        let mask = self.capacity() - 1;
        self.head = ((self.head as usize + n) & mask) as u32;
        self.len -= n as u32;
    }

    /// Copies buffered bytes starting `offset` bytes from the front into
    /// `dst`, without consuming them. Returns the number of bytes copied:
    /// `min(dst.len(), len - offset)`, or `0` if `offset >= len`.
    fn copy_to(&self, offset: usize, dst: &mut [u8]) -> usize {
        let (a, b) = self.as_slices();
        let mut copied = 0;
        let mut offset = offset;
        for part in [a, b] {
            if offset >= part.len() {
                offset -= part.len();
                continue;
            }
            let src = &part[offset..];
            offset = 0;
            let n = src.len().min(dst.len() - copied);
            dst[copied..copied + n].copy_from_slice(&src[..n]);
            copied += n;
        }
        copied
    }

    /// Copies up to `dst.len()` bytes from the front into `dst` and consumes
    /// them. Returns the number of bytes read.
    fn read_to(&mut self, dst: &mut [u8], pool: &mut BufferPool) -> usize {
        let n = self.copy_to(0, dst);
        self.consume(n, pool);
        n
    }

    /// Rearranges the storage so that all buffered bytes form one slice, and
    /// returns it. Works in place: never allocates. A no-op when the data
    /// does not wrap.
    ///
    /// Cost is at most one pass over the buffered bytes when the free gap is
    /// at least as large as one of the two wrapped parts; otherwise an
    /// in-place rotation of the whole block.
    fn make_contiguous(&mut self) -> &[u8] {
        let (head, len) = (self.head as usize, self.len as usize);
        let Some(buf) = self.buf.as_deref_mut() else {
            return &[];
        };
        let cap = buf.len();
        if head + len > cap {
            // Wrapped: front part `head..cap` (length a), back part `0..b`.
            let a = cap - head;
            let b = len - a;
            let free = cap - len;
            if free >= a {
                // Shift the back part right by `a`, then move the front part
                // into the hole at the start.
                buf.copy_within(..b, a);
                buf.copy_within(head.., 0);
                self.head = 0;
            } else if free >= b {
                // Slide the front part left by `b`, then append the back part
                // at the very end of the block.
                buf.copy_within(head.., head - b);
                buf.copy_within(..b, cap - b);
                self.head = (head - b) as u32;
            } else {
                buf.rotate_left(head);
                self.head = 0;
            }
        }
        let head = self.head as usize;
        match self.buf.as_deref() {
            Some(buf) => &buf[head..head + len],
            None => &[],
        }
    }

    /// Returns the contiguous free space right after the buffered bytes, at
    /// least `min` bytes long, so data can be written (e.g. by a socket
    /// `read()`) directly into the ring. Call [`commit`](Self::commit) with
    /// the number of bytes actually written.
    ///
    /// If the free space is too small the ring first moves its bytes to the
    /// start of the block, and grows (via `pool`) only if the total free
    /// space is insufficient. The returned slice may be longer than `min`;
    /// its contents are unspecified. With `min == 0` and no storage, the
    /// slice is empty and nothing is allocated.
    ///
    /// Storage taken here stays with the ring even if nothing is committed:
    /// if the ring is still empty afterwards (e.g. the read returned
    /// `WouldBlock`), call [`release`](Self::release) to keep idle
    /// connections free of buffers — or use [`fill_with`](Self::fill_with),
    /// which does that for you.
    ///
    /// # Panics
    ///
    /// Panics if `len + min` exceeds [`MAX_CAPACITY`].
    fn reserve_write(&mut self, min: usize, pool: &mut BufferPool) -> &mut [u8] {
        self.grow_to(self.len() + min, pool);
        let (head, len) = (self.head as usize, self.len as usize);
        let Some(buf) = self.buf.as_deref_mut() else {
            return &mut [];
        };
        let cap = buf.len();
        let end = head + len;
        if end < cap && cap - end < min {
            // Not wrapped, free space split between `..head` and `end..`:
            // slide the data to the start so it is all after the tail.
            buf.copy_within(head..end, 0);
            self.head = 0;
        }
        let (start, stop) = free_range(self.head as usize, len, cap);
        &mut buf[start..stop]
    }

    /// Marks `n` bytes written into the slice last returned by
    /// [`reserve_write`](Self::reserve_write) as buffered data.
    ///
    /// # Panics
    ///
    /// Panics if `n` is larger than the contiguous free space after the
    /// buffered bytes (i.e. longer than the reserved slice).
    fn commit(&mut self, n: usize) {
        let cap = self.capacity();
        let (start, stop) = free_range(self.head as usize, self.len(), cap);
        assert!(
            n <= stop - start,
            "RingBuffer::commit({n}) exceeds the {} reserved bytes",
            stop - start
        );
        self.len += n as u32;
    }

    /// Discards all buffered bytes and gives the storage back to `pool`.
    fn release(&mut self, pool: &mut BufferPool) {
        if let Some(buf) = self.buf.take() {
            pool.give(buf);
        }
        self.head = 0;
        self.len = 0;
    }

    /// Ensures the capacity is at least `needed`, moving the buffered bytes
    /// (unwrapped, starting at offset 0) into a bigger pooled block if not.
    fn grow_to(&mut self, needed: usize, pool: &mut BufferPool) {
        if needed <= self.capacity() {
            return;
        }
        assert!(
            needed <= MAX_CAPACITY,
            "RingBuffer capacity overflow: {needed} bytes requested, max is {MAX_CAPACITY}"
        );
        let mut block = pool.take(needed);
        debug_assert!(block.len().is_power_of_two() && block.len() >= needed);
        let copied = self.copy_to(0, &mut block);
        debug_assert_eq!(copied, self.len());
        if let Some(old) = self.buf.replace(block) {
            pool.give(old);
        }
        self.head = 0;
    }
}

/// The contiguous free range `start..stop` right after the tail.
fn free_range(head: usize, len: usize, cap: usize) -> (usize, usize) {
    let end = head + len;
    if end < cap {
        (end, cap)
    } else {
        // Wrapped (or ending exactly at the block end): the free space is the
        // gap between the wrapped tail and the head.
        (end - cap, head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::pool::MIN_BLOCK;

    fn contents(ring: &RingBuffer) -> Vec<u8> {
        let (a, b) = ring.as_slices();
        [a, b].concat()
    }

    /// A ring of capacity MIN_BLOCK whose data wraps: `front` bytes at the
    /// end of the block followed by `back` bytes at its start.
    fn wrapped(pool: &mut BufferPool, front: usize, back: usize) -> (RingBuffer, Vec<u8>) {
        let mut ring = RingBuffer::new();
        let pad = MIN_BLOCK - front;
        ring.push(&vec![0xEE; pad], pool);
        let data: Vec<u8> = (0..front + back).map(|i| (i % 251) as u8).collect();
        ring.push(&data[..front], pool);
        ring.consume(pad, pool);
        ring.push(&data[front..], pool);
        assert_eq!(ring.capacity(), MIN_BLOCK);
        assert_eq!(ring.as_slices().1.len(), back);
        (ring, data)
    }

    #[test]
    fn is_small_and_unallocated_when_new() {
        assert!(std::mem::size_of::<RingBuffer>() <= 8);
        let ring = RingBuffer::new();
        assert_eq!(ring.capacity(), 0);
        assert!(ring.is_empty());
        assert_eq!(ring.as_slices(), (&[][..], &[][..]));
    }

    #[test]
    fn push_consume_releases_storage() {
        let mut pool = BufferPool::default();
        let mut ring = RingBuffer::new();
        ring.push(b"abc", &mut pool);
        assert_eq!(ring.capacity(), MIN_BLOCK);
        ring.consume(1, &mut pool);
        assert_eq!(contents(&ring), b"bc");
        ring.consume(100, &mut pool); // clamped
        assert_eq!(ring.capacity(), 0);
        assert_eq!(pool.pooled_bytes(), MIN_BLOCK);
        ring.push(b"x", &mut pool);
        assert_eq!(pool.stats().allocated, 1, "block reused");
    }

    #[test]
    fn grows_by_power_of_two_preserving_order() {
        let mut pool = BufferPool::default();
        let (mut ring, mut model) = wrapped(&mut pool, 100, 50);
        let more: Vec<u8> = (0..MIN_BLOCK).map(|i| (i * 7) as u8).collect();
        ring.push(&more, &mut pool);
        model.extend_from_slice(&more);
        assert_eq!(ring.capacity(), 2 * MIN_BLOCK);
        assert_eq!(contents(&ring), model);
        // The small block went back to the pool.
        assert_eq!(pool.pooled_bytes(), MIN_BLOCK);
    }

    #[test]
    fn copy_to_and_read_to() {
        let mut pool = BufferPool::default();
        let (mut ring, model) = wrapped(&mut pool, 10, 10);
        let mut dst = [0u8; 8];
        assert_eq!(ring.copy_to(6, &mut dst), 8);
        assert_eq!(&dst, &model[6..14]);
        assert_eq!(ring.copy_to(15, &mut dst), 5);
        assert_eq!(&dst[..5], &model[15..]);
        assert_eq!(ring.copy_to(20, &mut dst), 0);
        assert_eq!(ring.copy_to(99, &mut dst), 0);
        assert_eq!(ring.read_to(&mut dst, &mut pool), 8);
        assert_eq!(&dst, &model[..8]);
        assert_eq!(contents(&ring), &model[8..]);
        let mut big = [0u8; 64];
        assert_eq!(ring.read_to(&mut big, &mut pool), 12);
        assert_eq!(ring.capacity(), 0);
    }

    #[test]
    fn make_contiguous_all_strategies() {
        // (front, back): big gap; gap fits only the back part; no gap.
        let cases = [
            (10, 20),
            (3000, 500),
            (500, 3000),
            (2048, 2048),
            (2000, 2000),
            (4000, 96),
            (1, 4095),
            (4095, 1),
        ];
        for (front, back) in cases {
            let mut pool = BufferPool::default();
            let (mut ring, model) = wrapped(&mut pool, front, back);
            assert_eq!(ring.make_contiguous(), &model[..], "case {front}/{back}");
            assert_eq!(ring.as_slices().1.len(), 0);
            assert_eq!(contents(&ring), model);
            // Still a working ring afterwards.
            ring.push(b"z", &mut pool);
            assert_eq!(*contents(&ring).last().unwrap(), b'z');
            assert_eq!(
                pool.stats().allocated,
                1 + usize::from(front + back == MIN_BLOCK) as u64
            );
        }
    }

    #[test]
    fn make_contiguous_empty_and_unwrapped() {
        let mut pool = BufferPool::default();
        let mut ring = RingBuffer::new();
        assert_eq!(ring.make_contiguous(), b"");
        ring.push(b"abc", &mut pool);
        assert_eq!(ring.make_contiguous(), b"abc");
    }

    #[test]
    fn reserve_write_commit() {
        let mut pool = BufferPool::default();
        let mut ring = RingBuffer::new();
        assert_eq!(ring.reserve_write(0, &mut pool).len(), 0);
        assert_eq!(ring.capacity(), 0);

        let space = ring.reserve_write(3, &mut pool);
        assert_eq!(space.len(), MIN_BLOCK);
        space[..3].copy_from_slice(b"abc");
        ring.commit(3);
        assert_eq!(contents(&ring), b"abc");
        assert_eq!(ring.reserve_write(1, &mut pool).len(), MIN_BLOCK - 3);
    }

    #[test]
    fn reserve_write_slides_unwrapped_data() {
        let mut pool = BufferPool::default();
        let mut ring = RingBuffer::new();
        ring.push(&[1u8; 4000], &mut pool);
        ring.consume(3000, &mut pool); // data at 3000..4000, 96 free at end
        let space = ring.reserve_write(1000, &mut pool);
        assert_eq!(space.len(), MIN_BLOCK - 1000);
        space[..2].copy_from_slice(&[2, 3]);
        ring.commit(2);
        assert_eq!(ring.capacity(), MIN_BLOCK, "no growth needed");
        let mut expect = vec![1u8; 1000];
        expect.extend([2, 3]);
        assert_eq!(contents(&ring), expect);
    }

    #[test]
    fn reserve_write_wrapped_and_growing() {
        let mut pool = BufferPool::default();
        let (mut ring, mut model) = wrapped(&mut pool, 100, 100);
        // Wrapped: free gap between tail and head is contiguous.
        assert_eq!(ring.reserve_write(10, &mut pool).len(), MIN_BLOCK - 200);
        // Needs more than total free space: grows.
        let space = ring.reserve_write(MIN_BLOCK, &mut pool);
        assert!(space.len() >= MIN_BLOCK);
        space[0] = 42;
        ring.commit(1);
        model.push(42);
        assert_eq!(ring.capacity(), 2 * MIN_BLOCK);
        assert_eq!(contents(&ring), model);
    }

    #[test]
    fn data_ending_at_block_end() {
        let mut pool = BufferPool::default();
        let mut ring = RingBuffer::new();
        ring.push(&[7u8; MIN_BLOCK], &mut pool);
        ring.consume(100, &mut pool);
        // Tail is exactly at the block end; free space is 0..100.
        let space = ring.reserve_write(100, &mut pool);
        assert_eq!(space.len(), 100);
        space.fill(8);
        ring.commit(100);
        assert_eq!(ring.len(), MIN_BLOCK);
        let (a, b) = ring.as_slices();
        assert!(a.iter().all(|&x| x == 7) && b.iter().all(|&x| x == 8));
        assert_eq!(b.len(), 100);
    }

    #[test]
    #[should_panic(expected = "exceeds")]
    fn commit_too_much_panics() {
        let mut pool = BufferPool::default();
        let mut ring = RingBuffer::new();
        let n = ring.reserve_write(1, &mut pool).len();
        ring.commit(n + 1);
    }

    #[test]
    fn fill_with_releases_on_nothing() {
        let mut pool = BufferPool::default();
        let mut ring = RingBuffer::new();
        let r: Result<usize, ()> = ring.fill_with(10, &mut pool, |_| Err(()));
        assert!(r.is_err());
        assert_eq!(ring.capacity(), 0);
        let r: Result<usize, ()> = ring.fill_with(10, &mut pool, |b| {
            b[..2].copy_from_slice(b"hi");
            Ok(2)
        });
        assert_eq!(r, Ok(2));
        assert_eq!(contents(&ring), b"hi");
        // With data present, an empty fill keeps the storage.
        let _ = ring.fill_with(10, &mut pool, |_| Ok::<_, ()>(0));
        assert_eq!(ring.capacity(), MIN_BLOCK);
    }

    #[test]
    fn release_resets() {
        let mut pool = BufferPool::default();
        let mut ring = RingBuffer::new();
        ring.push(b"data", &mut pool);
        ring.release(&mut pool);
        assert!(ring.is_empty());
        assert_eq!(ring.capacity(), 0);
        assert_eq!(pool.pooled_bytes(), MIN_BLOCK);
        ring.release(&mut pool); // idempotent
    }
}
