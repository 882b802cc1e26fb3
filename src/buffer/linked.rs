//! A linked list of blocks for outbound bytes.
//!
//! A [`LinkedBuffer`] is the write side of a connection: bytes the
//! application wants to send are queued here while the socket is not
//! writable, then flushed with one `writev` over [`io_slices`]. Small writes
//! are copied into fixed-size pooled blocks (the pool's outbound block size,
//! [`BLOCK_SIZE`] by default); large payloads
//! can be handed over as an owned `Vec<u8>` with no copy at all. Because the
//! queue is a list of independent blocks, a backlog of many megabytes never
//! needs one big contiguous reallocation, and consumed blocks go straight
//! back to the pool.
//!
//! [`io_slices`]: LinkedBuffer::io_slices

use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;
use std::io::IoSlice;

use super::pool::BufferPool;

/// Size of the pooled blocks [`LinkedBuffer::push`] copies into: 16 KiB.
pub const BLOCK_SIZE: usize = 16 << 10;

/// An outbound byte queue made of pooled (or owned) blocks.
///
/// * Holds no heap memory while empty; `size_of::<LinkedBuffer>()` is one
///   pointer.
/// * [`push`](Self::push) copies into pooled [`BLOCK_SIZE`] blocks, filling
///   the last block before taking a new one.
/// * [`push_bytes`](Self::push_bytes) queues a [`Bytes`] (one buffer shared by
///   many connections, as a broadcast has) and [`push_owned`](Self::push_owned)
///   a `Vec<u8>`, both without copying;
///   it is freed (not pooled) once sent.
/// * [`io_slices`](Self::io_slices) exposes the queue as `IoSlice`s for a
///   single vectored write; [`consume`](Self::consume) then drops what the
///   kernel accepted.
///
/// Dropping a non-empty buffer frees its blocks instead of returning them to
/// the pool; call [`clear`](Self::clear) first to recycle them.
///
/// # Example
///
/// ```
/// use std::io::{IoSlice, Write};
/// use netloop::buffer::{BufferPool, LinkedBuffer};
///
/// let mut pool = BufferPool::default();
/// let mut out = LinkedBuffer::new();
/// assert!(!out.is_allocated());
///
/// out.push(b"HTTP/1.1 200 OK\r\n\r\n", &mut pool);
/// out.push_owned(vec![b'x'; 100_000]); // large body: queued without a copy
/// assert_eq!(out.len(), 100_019);
///
/// // Flush with one vectored write (here into a Vec standing in for a socket).
/// let mut socket = Vec::new();
/// let mut iov = [IoSlice::new(&[]); 64];
/// let n = out.io_slices(&mut iov);
/// let written = socket.write_vectored(&iov[..n]).unwrap();
/// out.consume(written, &mut pool);
/// assert!(socket.starts_with(b"HTTP/1.1 200 OK"));
///
/// out.clear(&mut pool);
/// assert!(out.is_empty() && !out.is_allocated());
/// ```
#[derive(Default)]
pub struct LinkedBuffer {
    /// `None` exactly when the buffer is empty.
    inner: Option<Box<Inner>>,
}

pub(crate) struct Inner {
    /// Queued blocks, front first. Every block holds at least one byte.
    blocks: VecDeque<Block>,
    /// Sum of the queued bytes over all blocks.
    len: usize,
}

/// An emptied queue's header, kept by a [`BufferPool`] for the next queue.
pub(crate) type QueueHeader = Inner;

impl Inner {
    /// Small enough to keep for reuse.
    pub(crate) fn is_small(&self) -> bool {
        self.blocks.capacity() <= 16
    }
}

struct Block {
    storage: Storage,
    /// Queued bytes are `storage[start..end]`.
    start: usize,
    end: usize,
}

enum Storage {
    /// Taken from the pool; given back when consumed.
    Pooled(Box<[u8]>),
    /// Handed over by `push_bytes` or `push_owned`; released (its reference
    /// dropped) when consumed.
    Shared(Bytes),
}

impl Block {
    fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Pooled(b) => &b[self.start..self.end],
            Storage::Shared(v) => &v[self.start..self.end],
        }
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn release(self, pool: &mut BufferPool) {
        if let Storage::Pooled(b) = self.storage {
            pool.give(b);
        }
    }
}

impl LinkedBuffer {
    /// Creates an empty buffer. Does not allocate.
    pub const fn new() -> Self {
        LinkedBuffer { inner: None }
    }

    /// Total number of queued bytes.
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.len)
    }

    /// Whether no bytes are queued.
    pub fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// Whether the buffer currently holds any heap memory. Always equal to
    /// `!is_empty()`: storage is released as soon as the buffer empties.
    pub fn is_allocated(&self) -> bool {
        self.inner.is_some()
    }

    /// Number of blocks (and thus of non-empty chunks) queued; an upper bound
    /// on the `IoSlice`s [`io_slices`](Self::io_slices) can produce.
    pub fn block_count(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.blocks.len())
    }

    /// Copies `data` to the back of the queue: first into the spare room of
    /// the last block if it is pooled, then into new pooled blocks of the pool's
    /// [outbound block size](BufferPool::outbound_block) ([`BLOCK_SIZE`] unless
    /// configured).
    pub fn push(&mut self, mut data: &[u8], pool: &mut BufferPool) {
        if data.is_empty() {
            return;
        }
        let inner = self.inner.get_or_insert_with(|| {
            pool.take_queue().unwrap_or_else(|| {
                Box::new(Inner {
                    blocks: VecDeque::new(),
                    len: 0,
                })
            })
        });
        inner.len += data.len();
        if let Some(Block {
            storage: Storage::Pooled(buf),
            end,
            ..
        }) = inner.blocks.back_mut()
        {
            let n = data.len().min(buf.len() - *end);
            buf[*end..*end + n].copy_from_slice(&data[..n]);
            *end += n;
            data = &data[n..];
        }
        while !data.is_empty() {
            let mut buf = pool.take(pool.outbound_block());
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            data = &data[n..];
            inner.blocks.push_back(Block {
                storage: Storage::Pooled(buf),
                start: 0,
                end: n,
            });
        }
    }

    /// Queues `data` without copying it. The vector is freed, not pooled,
    /// once all of its bytes have been consumed. An empty vector is ignored.
    pub fn push_owned(&mut self, data: Vec<u8>) {
        self.push_bytes(Bytes::from(data));
    }

    /// Queues a shared buffer without copying it: the queue holds a reference,
    /// dropped once all of its bytes have been consumed. The same [`Bytes`] can be
    /// queued on any number of connections (a broadcast holds one copy of the
    /// message, not one per connection). An empty buffer is ignored.
    pub fn push_bytes(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let inner = self.inner_mut();
        inner.len += data.len();
        inner.blocks.push_back(Block {
            start: 0,
            end: data.len(),
            storage: Storage::Shared(data),
        });
    }

    /// Fills `out` with the queued chunks in order, one per block, for a
    /// single vectored write. Returns how many entries were filled: at most
    /// `min(out.len(), block_count())`. Entries past the returned count are
    /// left untouched.
    pub fn io_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let Some(inner) = self.inner.as_deref() else {
            return 0;
        };
        let mut n = 0;
        for (slot, block) in out.iter_mut().zip(&inner.blocks) {
            *slot = IoSlice::new(block.bytes());
            n += 1;
        }
        n
    }

    /// Iterates over the queued chunks in order.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.inner
            .as_deref()
            .into_iter()
            .flat_map(|i| i.blocks.iter().map(Block::bytes))
    }

    /// The first contiguous chunk of queued bytes; empty if the buffer is.
    pub fn front(&self) -> &[u8] {
        self.inner
            .as_deref()
            .and_then(|i| i.blocks.front())
            .map_or(&[], Block::bytes)
    }

    /// Removes the first `n` bytes (clamped to [`len`](Self::len)), possibly
    /// spanning several blocks. Fully consumed pooled blocks are given back to
    /// `pool`; when the buffer empties, all its heap memory is released.
    pub fn consume(&mut self, mut n: usize, pool: &mut BufferPool) {
        let Some(inner) = self.inner.as_deref_mut() else {
            return;
        };
        if n >= inner.len {
            self.clear(pool);
            return;
        }
        inner.len -= n;
        while n > 0 {
            let front = inner.blocks.front_mut().expect("len > n implies a block");
            if front.len() > n {
                front.start += n;
                break;
            }
            n -= front.len();
            if let Some(block) = inner.blocks.pop_front() {
                block.release(pool);
            }
        }
    }

    /// Drops all queued bytes, giving pooled blocks back to `pool` and
    /// releasing all heap memory.
    pub fn clear(&mut self, pool: &mut BufferPool) {
        if let Some(mut inner) = self.inner.take() {
            for block in inner.blocks.drain(..) {
                block.release(pool);
            }
            inner.len = 0;
            pool.give_queue(inner);
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        self.inner.get_or_insert_with(|| {
            Box::new(Inner {
                blocks: VecDeque::new(),
                len: 0,
            })
        })
    }
}

impl fmt::Debug for LinkedBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkedBuffer")
            .field("len", &self.len())
            .field("blocks", &self.block_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(buf: &LinkedBuffer) -> Vec<u8> {
        buf.chunks().collect::<Vec<_>>().concat()
    }

    #[test]
    fn is_small_and_unallocated_when_new() {
        assert!(std::mem::size_of::<LinkedBuffer>() <= 16);
        let buf = LinkedBuffer::new();
        assert!(buf.is_empty() && !buf.is_allocated());
        assert_eq!(buf.len(), 0);
        assert_eq!(buf.front(), b"");
        assert_eq!(buf.io_slices(&mut [IoSlice::new(&[]); 4]), 0);
    }

    #[test]
    fn push_fills_last_block_first() {
        let mut pool = BufferPool::default();
        let mut buf = LinkedBuffer::new();
        buf.push(b"abc", &mut pool);
        buf.push(b"def", &mut pool);
        assert_eq!(buf.block_count(), 1);
        assert_eq!(buf.front(), b"abcdef");
        buf.push(&vec![1u8; BLOCK_SIZE], &mut pool);
        assert_eq!(buf.block_count(), 2);
        assert_eq!(buf.front().len(), BLOCK_SIZE);
        assert_eq!(buf.len(), BLOCK_SIZE + 6);
        assert_eq!(pool.stats().allocated, 2);
    }

    #[test]
    fn large_push_spans_blocks() {
        let mut pool = BufferPool::default();
        let mut buf = LinkedBuffer::new();
        let data: Vec<u8> = (0..(1 << 20) + 5).map(|i| (i % 253) as u8).collect();
        buf.push(&data, &mut pool);
        assert_eq!(buf.block_count(), (1 << 20) / BLOCK_SIZE + 1);
        assert_eq!(contents(&buf), data);
        buf.consume(data.len(), &mut pool);
        assert!(!buf.is_allocated());
        assert_eq!(
            pool.pooled_bytes(),
            ((1 << 20) / BLOCK_SIZE + 1) * BLOCK_SIZE
        );
    }

    #[test]
    fn push_owned_is_not_appended_to_or_pooled() {
        let mut pool = BufferPool::default();
        let mut buf = LinkedBuffer::new();
        buf.push(b"head", &mut pool);
        buf.push_owned(b"body".to_vec());
        buf.push_owned(Vec::new());
        buf.push(b"tail", &mut pool);
        assert_eq!(buf.block_count(), 3);
        assert_eq!(contents(&buf), b"headbodytail");
        buf.consume(8, &mut pool);
        assert_eq!(
            pool.pooled_bytes(),
            BLOCK_SIZE,
            "only the pooled block returned"
        );
        assert_eq!(buf.front(), b"tail");
    }

    #[test]
    fn consume_across_blocks_and_partial() {
        let mut pool = BufferPool::default();
        let mut buf = LinkedBuffer::new();
        buf.push_owned(b"0123".to_vec());
        buf.push_owned(b"4567".to_vec());
        buf.push_owned(b"89".to_vec());
        buf.consume(2, &mut pool);
        assert_eq!(buf.front(), b"23");
        buf.consume(3, &mut pool);
        assert_eq!(buf.front(), b"567");
        assert_eq!(buf.len(), 5);
        buf.consume(0, &mut pool);
        assert_eq!(buf.len(), 5);
        buf.consume(1000, &mut pool); // clamped
        assert!(buf.is_empty() && !buf.is_allocated());
    }

    #[test]
    fn io_slices_respects_out_len() {
        let mut pool = BufferPool::default();
        let mut buf = LinkedBuffer::new();
        buf.push_owned(b"a".to_vec());
        buf.push_owned(b"bc".to_vec());
        buf.push(b"def", &mut pool);
        let mut iov = [IoSlice::new(&[]); 2];
        assert_eq!(buf.io_slices(&mut iov), 2);
        assert_eq!((&*iov[0], &*iov[1]), (&b"a"[..], &b"bc"[..]));
        let mut iov = [IoSlice::new(&[]); 8];
        assert_eq!(buf.io_slices(&mut iov), 3);
        assert_eq!(&*iov[2], b"def");
    }

    #[test]
    fn clear_returns_pooled_blocks() {
        let mut pool = BufferPool::default();
        let mut buf = LinkedBuffer::new();
        buf.push(&[0u8; 40_000], &mut pool);
        buf.push_owned(vec![1; 10]);
        buf.clear(&mut pool);
        assert!(!buf.is_allocated());
        assert_eq!(pool.pooled_bytes(), 3 * BLOCK_SIZE);
        buf.push(b"x", &mut pool);
        assert_eq!(pool.stats().allocated, 3, "reused a pooled block");
    }

    #[test]
    fn blocks_follow_the_pools_outbound_block_size() {
        let mut pool = BufferPool::default().with_outbound_block(64 << 10);
        let mut buf = LinkedBuffer::new();
        buf.push(&[7u8; 10 << 10], &mut pool);
        buf.push(&[8u8; 30 << 10], &mut pool);
        assert_eq!(buf.block_count(), 1, "40 KiB fit one 64 KiB block");
        assert_eq!(buf.front().len(), 40 << 10);
        buf.clear(&mut pool);
        let mut small = BufferPool::default();
        buf.push(&[7u8; 40 << 10], &mut small);
        assert_eq!(buf.block_count(), 3, "16 KiB blocks by default");
        buf.clear(&mut small);
    }
}
