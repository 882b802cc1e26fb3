//! Property tests: random operation sequences on `RingBuffer` and
//! `LinkedBuffer`, checked against a `VecDeque<u8>` model after every step.

use std::collections::VecDeque;
use std::io::IoSlice;

use netloop::buffer::{BufferPool, LinkedBuffer, RingBuffer};
use proptest::prelude::*;

/// Cap small enough that the pool frequently has to drop blocks.
const POOL_CAP: usize = 48 << 10;

/// Payload lengths: mostly small, sometimes crossing several 4 KiB / 16 KiB
/// boundaries.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..64),
        3 => prop::collection::vec(any::<u8>(), 0..5000),
        1 => prop::collection::vec(any::<u8>(), 0..40_000),
    ]
}

#[derive(Debug, Clone)]
enum RingOp {
    Push(Vec<u8>),
    /// Consume a fraction (in 1/256ths, may exceed 1) of the current length.
    Consume(u16),
    ReadTo(usize),
    MakeContiguous,
    /// `reserve_write(min)` then fill and commit `fill/256` of the returned slice.
    ReserveCommit {
        min: usize,
        fill: u8,
        byte: u8,
    },
    /// `fill_with`, where the closure writes `n` bytes (clamped) or fails.
    FillWith {
        min: usize,
        n: Option<usize>,
    },
    CopyTo {
        offset: usize,
        len: usize,
    },
    Release,
}

fn ring_op() -> impl Strategy<Value = RingOp> {
    prop_oneof![
        6 => payload().prop_map(RingOp::Push),
        4 => (0u16..300).prop_map(RingOp::Consume),
        2 => (0usize..6000).prop_map(RingOp::ReadTo),
        2 => Just(RingOp::MakeContiguous),
        3 => (0usize..9000, any::<u8>(), any::<u8>())
            .prop_map(|(min, fill, byte)| RingOp::ReserveCommit { min, fill, byte }),
        1 => (0usize..5000, prop::option::of(0usize..5000))
            .prop_map(|(min, n)| RingOp::FillWith { min, n }),
        2 => (0usize..20_000, 0usize..6000)
            .prop_map(|(offset, len)| RingOp::CopyTo { offset, len }),
        1 => Just(RingOp::Release),
    ]
}

fn ring_contents(ring: &RingBuffer) -> Vec<u8> {
    let (a, b) = ring.as_slices();
    [a, b].concat()
}

fn check_ring(ring: &RingBuffer, model: &VecDeque<u8>, pool: &BufferPool) {
    assert_eq!(ring.len(), model.len());
    assert_eq!(ring.is_empty(), model.is_empty());
    let (a, b) = ring.as_slices();
    assert!(a.len() + b.len() == model.len());
    assert!(
        b.is_empty() || !a.is_empty(),
        "second slice only when wrapped"
    );
    assert_eq!(
        ring_contents(ring),
        model.iter().copied().collect::<Vec<_>>()
    );
    if model.is_empty() {
        assert_eq!(ring.capacity(), 0, "empty ring must hold no storage");
    } else {
        let cap = ring.capacity();
        assert!(cap.is_power_of_two() && cap >= 4096 && cap >= model.len());
    }
    assert!(pool.pooled_bytes() <= pool.max_pooled_bytes());
}

fn run_ring(ops: Vec<RingOp>) {
    let mut pool = BufferPool::new(POOL_CAP);
    let mut ring = RingBuffer::new();
    let mut model: VecDeque<u8> = VecDeque::new();
    for op in ops {
        match op {
            RingOp::Push(data) => {
                ring.push(&data, &mut pool);
                model.extend(&data);
            }
            RingOp::Consume(frac) => {
                let n = model.len() * frac as usize / 256;
                ring.consume(n, &mut pool);
                model.drain(..n.min(model.len()));
            }
            RingOp::ReadTo(len) => {
                let mut dst = vec![0u8; len];
                let n = ring.read_to(&mut dst, &mut pool);
                assert_eq!(n, len.min(model.len()));
                let expect: Vec<u8> = model.drain(..n).collect();
                assert_eq!(&dst[..n], &expect[..]);
            }
            RingOp::MakeContiguous => {
                let cap = ring.capacity();
                let expect: Vec<u8> = model.iter().copied().collect();
                assert_eq!(ring.make_contiguous(), &expect[..]);
                assert!(ring.as_slices().1.is_empty());
                assert_eq!(ring.capacity(), cap, "make_contiguous never reallocates");
            }
            RingOp::ReserveCommit { min, fill, byte } => {
                let space = ring.reserve_write(min, &mut pool);
                assert!(space.len() >= min);
                let n = space.len() * fill as usize / 255;
                space[..n].fill(byte);
                ring.commit(n);
                model.extend(vec![byte; n]);
                if ring.is_empty() {
                    // Documented contract: release if nothing was committed.
                    ring.release(&mut pool);
                }
            }
            RingOp::FillWith { min, n } => {
                let res = ring.fill_with(min, &mut pool, |buf| {
                    assert!(buf.len() >= min);
                    match n {
                        Some(n) => {
                            let n = n.min(buf.len());
                            for (i, b) in buf[..n].iter_mut().enumerate() {
                                *b = i as u8;
                            }
                            Ok(n)
                        }
                        None => Err(()),
                    }
                });
                if let Ok(n) = res {
                    model.extend((0..n).map(|i| i as u8));
                }
            }
            RingOp::CopyTo { offset, len } => {
                let mut dst = vec![0u8; len];
                let n = ring.copy_to(offset, &mut dst);
                let expect: Vec<u8> = model.iter().skip(offset).take(len).copied().collect();
                assert_eq!(&dst[..n], &expect[..]);
            }
            RingOp::Release => {
                ring.release(&mut pool);
                model.clear();
            }
        }
        check_ring(&ring, &model, &pool);
    }
    ring.release(&mut pool);
    assert!(pool.pooled_bytes() <= pool.max_pooled_bytes());
}

#[derive(Debug, Clone)]
enum LinkedOp {
    Push(Vec<u8>),
    PushOwned(Vec<u8>),
    /// Consume a fraction (in 1/256ths, may exceed 1) of the current length.
    Consume(u16),
    /// Consume exactly the length of the front chunk (like a short write).
    ConsumeFront,
    /// Check `io_slices` with an output array of this many entries.
    IoSlices(usize),
    Clear,
}

fn linked_op() -> impl Strategy<Value = LinkedOp> {
    prop_oneof![
        6 => payload().prop_map(LinkedOp::Push),
        2 => payload().prop_map(LinkedOp::PushOwned),
        4 => (0u16..300).prop_map(LinkedOp::Consume),
        1 => Just(LinkedOp::ConsumeFront),
        3 => (0usize..8).prop_map(LinkedOp::IoSlices),
        1 => Just(LinkedOp::Clear),
    ]
}

fn check_linked(buf: &LinkedBuffer, model: &VecDeque<u8>, pool: &BufferPool) {
    assert_eq!(buf.len(), model.len());
    assert_eq!(buf.is_empty(), model.is_empty());
    assert_eq!(
        buf.is_allocated(),
        !model.is_empty(),
        "empty buffer must hold no storage"
    );

    // One writev's worth of iovecs covers the whole queue, in order.
    let mut iov = vec![IoSlice::new(&[]); buf.block_count()];
    let n = buf.io_slices(&mut iov);
    assert_eq!(n, buf.block_count());
    assert!(iov[..n].iter().all(|s| !s.is_empty()), "no empty chunks");
    let flat: Vec<u8> = iov[..n].iter().flat_map(|s| s.iter().copied()).collect();
    assert_eq!(flat, model.iter().copied().collect::<Vec<_>>());

    let front = buf.front();
    assert_eq!(front, iov.first().map_or(&[][..], |s| &s[..]));
    assert!(pool.pooled_bytes() <= pool.max_pooled_bytes());
}

fn run_linked(ops: Vec<LinkedOp>) {
    let mut pool = BufferPool::new(POOL_CAP);
    let mut buf = LinkedBuffer::new();
    let mut model: VecDeque<u8> = VecDeque::new();
    for op in ops {
        match op {
            LinkedOp::Push(data) => {
                buf.push(&data, &mut pool);
                model.extend(&data);
            }
            LinkedOp::PushOwned(data) => {
                model.extend(&data);
                buf.push_owned(data);
            }
            LinkedOp::Consume(frac) => {
                let n = model.len() * frac as usize / 256;
                buf.consume(n, &mut pool);
                model.drain(..n.min(model.len()));
            }
            LinkedOp::ConsumeFront => {
                let n = buf.front().len();
                buf.consume(n, &mut pool);
                model.drain(..n);
            }
            LinkedOp::IoSlices(k) => {
                let mut iov = vec![IoSlice::new(&[]); k];
                let n = buf.io_slices(&mut iov);
                assert_eq!(n, k.min(buf.block_count()));
                let flat: Vec<u8> = iov[..n].iter().flat_map(|s| s.iter().copied()).collect();
                let prefix: Vec<u8> = model.iter().take(flat.len()).copied().collect();
                assert_eq!(flat, prefix);
            }
            LinkedOp::Clear => {
                buf.clear(&mut pool);
                model.clear();
            }
        }
        check_linked(&buf, &model, &pool);
    }
    buf.clear(&mut pool);
    assert!(pool.pooled_bytes() <= pool.max_pooled_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ring_matches_model(ops in prop::collection::vec(ring_op(), 1..60)) {
        run_ring(ops);
    }

    #[test]
    fn linked_matches_model(ops in prop::collection::vec(linked_op(), 1..60)) {
        run_linked(ops);
    }

    /// The pool never retains more than its cap, whatever is given to it.
    #[test]
    fn pool_respects_cap(
        cap in 0usize..200_000,
        ops in prop::collection::vec((any::<bool>(), 0usize..70_000), 1..100),
    ) {
        let mut pool = BufferPool::new(cap);
        let mut held = Vec::new();
        for (take, size) in ops {
            if take {
                let block = pool.take(size);
                prop_assert!(block.len().is_power_of_two());
                prop_assert!(block.len() >= size.max(4096));
                held.push(block);
            } else if let Some(block) = held.pop() {
                pool.give(block);
            } else {
                // Arbitrary foreign (often invalid) block sizes.
                pool.give(vec![0u8; size].into_boxed_slice());
            }
            prop_assert!(pool.pooled_bytes() <= cap);
        }
        let stats = pool.stats();
        prop_assert!(stats.allocated <= stats.taken);
        prop_assert!(stats.dropped <= stats.given);
    }
}
