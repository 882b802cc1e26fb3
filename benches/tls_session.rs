//! Server-side cost of one 64-byte TLS echo, in memory, side by side: netloop's
//! `TlsSession` (rustls's unbuffered API, loop-owned buffers) against rustls's
//! buffered `ServerConnection` (what tokio-rustls drives). Each iteration the
//! server decrypts one client record (prepared outside the timing) and encrypts
//! the echo; the client never reads it, so only server work is timed.
//!
//! Run with `cargo bench --features tls --bench tls_session` (add `-- --quick`
//! for a fast pass). Compare the two lines of one run: the ratio is the result.

use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use netloop::tls::rustls::{ClientConfig, ClientConnection, ServerConnection};
use netloop::tls::{
    roots_from_pem, server_name, ClientConfigBuilder, Identity, ServerConfigBuilder, TlsAcceptor,
};

const MSG: [u8; 64] = [b'e'; 64];

/// A client (rustls, buffered) with the handshake done against `server`, which
/// is driven by `step`: client bytes in, server bytes out.
fn client_for(
    config: Arc<ClientConfig>,
    mut step: impl FnMut(&[u8]) -> Vec<u8>,
) -> ClientConnection {
    let mut client = ClientConnection::new(config, server_name("localhost").unwrap()).unwrap();
    for _ in 0..10 {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        let to_client = step(&to_server);
        let mut rd = &to_client[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets().unwrap();
        }
        if !client.is_handshaking() && !client.wants_write() && to_client.is_empty() {
            break;
        }
    }
    assert!(!client.is_handshaking());
    client
}

/// One client record carrying the message.
fn record(client: &mut ClientConnection) -> Vec<u8> {
    client.writer().write_all(&MSG).unwrap();
    let mut rec = Vec::new();
    client.write_tls(&mut rec).unwrap();
    rec
}

fn echo(c: &mut Criterion) {
    let pair = Identity::self_signed(&["localhost"]).unwrap();
    let roots = roots_from_pem(pair.cert_pem.as_bytes()).unwrap();
    let server_config = ServerConfigBuilder::new(pair.identity).build().unwrap();
    let client_config = ClientConfigBuilder::new(roots).build().unwrap();
    let mut group = c.benchmark_group("tls/echo_64B_server_side");

    // netloop: the loop's buffers are reused across messages, as in the engine.
    let acceptor = TlsAcceptor::new(server_config.clone());
    let mut session = acceptor.accept().unwrap();
    let (mut plain, mut out) = (Vec::with_capacity(1 << 16), Vec::with_capacity(1 << 16));
    let mut client = client_for(client_config.clone(), |input| {
        let mut wire = input.to_vec();
        let mut out = Vec::new();
        let r = session
            .receive(&mut wire, &mut Vec::new(), &mut out)
            .unwrap();
        assert_eq!(r.consumed, wire.len());
        out
    });
    group.bench_function("netloop TlsSession", |b| {
        b.iter_batched(
            || record(&mut client),
            |mut wire| {
                plain.clear();
                out.clear();
                let r = session.receive(&mut wire, &mut plain, &mut out).unwrap();
                debug_assert_eq!(r.plaintext, MSG.len());
                session.send(&mut [], black_box(&plain), &mut out).unwrap();
                black_box(out.len())
            },
            BatchSize::SmallInput,
        )
    });

    // rustls buffered: read_tls + process + read, write + write_tls.
    let mut conn = ServerConnection::new(server_config).unwrap();
    let mut client = client_for(client_config, |input| {
        let mut rd = input;
        while !rd.is_empty() {
            conn.read_tls(&mut rd).unwrap();
            conn.process_new_packets().unwrap();
        }
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    });
    let mut buf = [0u8; 4096];
    group.bench_function("rustls ServerConnection", |b| {
        b.iter_batched(
            || record(&mut client),
            |wire| {
                out.clear();
                let mut rd = &wire[..];
                conn.read_tls(&mut rd).unwrap();
                conn.process_new_packets().unwrap();
                let n = conn.reader().read(&mut buf).unwrap();
                conn.writer().write_all(black_box(&buf[..n])).unwrap();
                conn.write_tls(&mut out).unwrap();
                black_box(out.len())
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, echo);
criterion_main!(benches);
