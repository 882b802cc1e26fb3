//! Benchmarks for the buffers module: ring push/consume, ring
//! make_contiguous on a wrapped buffer, and the outbound linked buffer's
//! push + io_slices + consume cycle.
//!
//! Run with `cargo bench --bench buffers` (add `-- --quick` for a fast pass).

use std::hint::black_box;
use std::io::IoSlice;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use netloop::buffer::{BufferPool, LinkedBuffer, RingBuffer};

fn ring_push_consume(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/push_consume");
    for size in [64usize, 4096] {
        let data = vec![0xA5u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, data| {
            let mut pool = BufferPool::default();
            let mut ring = RingBuffer::new();
            // Keep a little data buffered so the ring stays allocated and the
            // head walks around the block (exercising wrap-around), rather
            // than measuring only take/give on every iteration.
            ring.push(&[0u8; 100], &mut pool);
            b.iter(|| {
                ring.push(black_box(data), &mut pool);
                ring.consume(black_box(data.len()), &mut pool);
            });
            ring.release(&mut pool);
        });
    }
    group.finish();

    // The idle-connection path: an empty ring takes a block, then gives it
    // back to the pool when drained.
    c.bench_function("ring/push_consume_from_empty/64", |b| {
        let mut pool = BufferPool::default();
        let mut ring = RingBuffer::new();
        let data = [0x5Au8; 64];
        b.iter(|| {
            ring.push(black_box(&data), &mut pool);
            ring.consume(64, &mut pool);
        });
    });
}

fn ring_make_contiguous(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/make_contiguous_wrapped");
    // (front, back): bytes at the end of the 16 KiB block / wrapped to its
    // start. The first fits the free gap (two memmoves); the last leaves no
    // gap (in-place rotation).
    for (front, back) in [(1024usize, 1024usize), (12_288, 2048), (8192, 8192)] {
        let total = front + back;
        group.throughput(Throughput::Bytes(total as u64));
        group.bench_function(
            BenchmarkId::from_parameter(format!("{front}+{back}")),
            |b| {
                let mut pool = BufferPool::default();
                let cap = 16 << 10;
                b.iter_batched_ref(
                    || {
                        let mut r = RingBuffer::new();
                        let pad = cap - front;
                        r.push(&vec![1u8; pad], &mut pool);
                        r.push(&vec![2u8; front], &mut pool);
                        r.consume(pad, &mut pool);
                        r.push(&vec![3u8; back], &mut pool);
                        debug_assert_eq!(r.capacity(), cap);
                        r
                    },
                    |r| {
                        black_box(r.make_contiguous().len());
                    },
                    criterion::BatchSize::SmallInput,
                );
            },
        );
    }
    group.finish();
}

fn linked_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("linked/push_io_slices_consume");
    for size in [64usize, 16 << 10, 1 << 20] {
        let data = vec![0x3Cu8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, data| {
            let mut pool = BufferPool::default();
            let mut buf = LinkedBuffer::new();
            b.iter(|| {
                buf.push(black_box(data), &mut pool);
                let mut total = 0;
                while !buf.is_empty() {
                    let mut iov = [IoSlice::new(&[]); 128];
                    let n = buf.io_slices(&mut iov);
                    let bytes: usize = iov[..n].iter().map(|s| s.len()).sum();
                    total += black_box(bytes);
                    buf.consume(bytes, &mut pool);
                }
                total
            });
        });
    }
    group.finish();

    c.bench_function("linked/push_owned_consume/1MiB", |b| {
        let mut pool = BufferPool::default();
        let mut buf = LinkedBuffer::new();
        b.iter_batched(
            || vec![0x77u8; 1 << 20],
            |v| {
                buf.push_owned(v);
                let mut iov = [IoSlice::new(&[]); 4];
                let n = buf.io_slices(&mut iov);
                black_box(n);
                buf.consume(1 << 20, &mut pool);
            },
            criterion::BatchSize::LargeInput,
        );
    });
}

criterion_group!(
    benches,
    ring_push_consume,
    ring_make_contiguous,
    linked_cycle
);
criterion_main!(benches);
