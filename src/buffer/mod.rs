//! Buffers: the elastic ring buffer (inbound), the linked block list
//! (outbound) and their per-loop pool.
//!
//! # Why three pieces
//!
//! A server may hold hundreds of thousands of connections, most of them idle
//! at any moment. Giving each connection a fixed pair of read/write buffers
//! would pin gigabytes of memory that is almost never touched. netloop
//! instead makes buffers *elastic* and *borrowed*:
//!
//! * [`BufferPool`] — one per event loop (single-threaded, so no locks).
//!   It hands out power-of-two `Box<[u8]>` blocks (at least
//!   [`pool::MIN_BLOCK`] = 4 KiB) and keeps returned blocks on per-size free
//!   lists, up to a cap on retained bytes. Busy connections recycle memory
//!   instead of calling the allocator on every read and write.
//!
//! * [`RingBuffer`] — the **inbound** buffer. Reads land in the loop's shared
//!   read buffer (or, under io_uring, in a buffer of the driver's provided ring);
//!   the handler sees them there, and only what it leaves unconsumed is copied
//!   into the connection's ring ([`RingBuffer::push`], or
//!   [`RingBuffer::reserve_write`] / [`RingBuffer::commit`] for code that fills
//!   it in place). Codecs look at the bytes through [`RingBuffer::as_slices`] or
//!   [`RingBuffer::make_contiguous`] and consume whole frames. It grows by
//!   doubling into a bigger pooled block when a large message arrives, and
//!   **the moment it becomes empty its block goes back to the pool**: an idle
//!   connection's ring is 24 bytes of bookkeeping and no heap memory.
//!
//! * [`LinkedBuffer`] — the **outbound** queue. Writes that the socket could
//!   not accept immediately (under io_uring: every write, until its send
//!   completes) are queued as a list of pooled blocks (or shared `Bytes` for
//!   large payloads, with no copy) and flushed with one `writev` (or one
//!   `sendmsg` operation) over [`LinkedBuffer::io_slices`]. Blocks never move
//!   while queued, so a send in flight may point into them. Since it never needs one contiguous
//!   region, a multi-megabyte backlog never triggers a big `realloc` + copy;
//!   sent blocks return to the pool one by one, and an empty queue holds no
//!   heap memory (it is a single null pointer).
//!
//! Neither buffer stores a reference to the pool (that would make every
//! connection bigger and tie its lifetime to the loop); instead each method
//! that may allocate or free takes `pool: &mut BufferPool`.
//!
//! # Example
//!
//! ```
//! use netloop::buffer::{BufferPool, LinkedBuffer, RingBuffer};
//!
//! let mut pool = BufferPool::default();
//! let (mut inbound, mut outbound) = (RingBuffer::new(), LinkedBuffer::new());
//!
//! // A request arrives...
//! inbound.push(b"PING\r\n", &mut pool);
//! // ...the codec parses and consumes it, and queues a reply.
//! if inbound.make_contiguous().starts_with(b"PING\r\n") {
//!     inbound.consume(6, &mut pool);
//!     outbound.push(b"PONG\r\n", &mut pool);
//! }
//! // Once the reply is written the connection holds no buffers at all.
//! outbound.consume(6, &mut pool);
//! assert_eq!(inbound.capacity(), 0);
//! assert!(!outbound.is_allocated());
//! assert_eq!(pool.pooled_bytes(), 4096 + 16384);
//! ```

pub mod linked;
pub mod pool;
pub mod ring;

pub use linked::LinkedBuffer;
pub use pool::BufferPool;
pub use ring::RingBuffer;
