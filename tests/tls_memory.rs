//! What an idle, established TLS server session costs in user-space memory: its
//! own size plus the heap rustls keeps for it (keys, state machine), counted by a
//! per-thread counting allocator around the server's calls only. Compared side
//! by side with rustls's buffered `ServerConnection` (what tokio-rustls keeps per
//! connection) after the same handshake and request.
//!
//! The goal (issue 13) is ≤ 4 KiB per idle TLS connection; this test holds the
//! session to it, so a change that makes sessions keep a buffer fails here.
#![cfg(feature = "tls")]

mod support;
use support::*;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};

use netloop::tls::rustls::ServerConnection;
use netloop::tls::{ClientConfigBuilder, ServerConfigBuilder, TlsAcceptor, TlsSession};

/// Counts the live bytes allocated on this thread while counting is on.
struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static BLOCKS: Cell<isize> = const { Cell::new(0) };
}

fn add_block(delta: isize) {
    if ON.with(|on| on.get()) {
        BLOCKS.with(|b| b.set(b.get() + delta));
    }
}

fn add(delta: isize) {
    if ON.with(|on| on.get()) {
        LIVE.with(|l| {
            let v = l.get() + delta;
            l.set(v);
            PEAK.with(|p| p.set(p.get().max(v)));
        });
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are const-initialized thread-locals without destructors, so touching
// them never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        add_block(1);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        add_block(-1);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` with counting on; returns its result.
fn counted<T>(f: impl FnOnce() -> T) -> T {
    ON.with(|on| on.set(true));
    let r = f();
    ON.with(|on| on.set(false));
    r
}

fn live() -> isize {
    LIVE.with(|l| l.get())
}

fn blocks() -> isize {
    BLOCKS.with(|b| b.get())
}

/// What malloc adds per block on 64-bit glibc (the chunk header, and rounding to
/// 16 bytes on average): counted so the figure is what the process pays.
const MALLOC_OVERHEAD: isize = 16;

fn reset() {
    BLOCKS.with(|b| b.set(0));
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
}

/// Heap bytes (live, peak) of one server connection after a handshake, one
/// 100-byte request and its 100-byte answer; `server` runs one step of the
/// server: given the client's bytes, it returns the bytes for the client and the
/// plaintext received.
fn measure(
    client_config: std::sync::Arc<netloop::tls::rustls::ClientConfig>,
    mut server: impl FnMut(&[u8], Option<&[u8]>) -> (Vec<u8>, Vec<u8>),
) -> (isize, isize) {
    let mut client = RustlsClient::new(client_config, "localhost");
    for _ in 0..10 {
        let to_server = client.outgoing();
        let (to_client, _) = server(&to_server, None);
        client.incoming(&to_client).unwrap();
        if !client.conn.is_handshaking() && !client.conn.wants_write() && to_client.is_empty() {
            break;
        }
    }
    assert!(!client.conn.is_handshaking());
    let request = client.send(&[b'q'; 100]);
    let (to_client, plain) = server(&request, Some(&[b'a'; 100]));
    assert_eq!(plain, [b'q'; 100]);
    client.incoming(&to_client).unwrap();
    assert_eq!(client.plain, [b'a'; 100]);
    (live(), PEAK.with(|p| p.get()))
}

#[test]
fn idle_tls_session_memory() {
    let _serial = serial();
    let pair = netloop::tls::Identity::self_signed(&["localhost"]).unwrap();
    let roots = netloop::tls::roots_from_pem(pair.cert_pem.as_bytes()).unwrap();
    let server_config = ServerConfigBuilder::new(pair.identity).build().unwrap();
    let acceptor = TlsAcceptor::new(server_config.clone());
    let client_config = ClientConfigBuilder::new(roots)
        .resumption(false)
        .build()
        .unwrap();
    // Warm up lazily initialized globals (ticket keys, thread-locals) so they are
    // not charged to the measured session.
    let mut warm = acceptor.accept().unwrap();
    measure(client_config.clone(), |input, reply| {
        netloop_step(&mut warm, input, reply)
    });
    drop(warm);

    // netloop: the session, with buffers the loop owns (reserved up front, so
    // they are not counted: they are per loop, not per connection).
    reset();
    let mut session: TlsSession = counted(|| acceptor.accept().unwrap());
    let (heap, peak) = measure(client_config.clone(), |input, reply| {
        netloop_step(&mut session, input, reply)
    });
    assert_eq!(session.pending_wire(), 0);
    let size = std::mem::size_of::<TlsSession>();
    let nblocks = blocks();
    let ours = size as isize + heap + nblocks * MALLOC_OVERHEAD;
    println!(
        "netloop TlsSession: {size} B inline + {heap} B heap in {nblocks} blocks (+{} B malloc \
         overhead) = {ours} B per idle connection (heap peak during the handshake {peak} B)",
        nblocks * MALLOC_OVERHEAD
    );
    counted(|| drop(session));
    assert_eq!(live(), 0, "dropping the session frees all it held");

    // rustls's buffered connection, as tokio-rustls holds it.
    reset();
    let mut buffered = counted(|| ServerConnection::new(server_config.clone()).unwrap());
    let (bheap, bpeak) = measure(client_config, |input, reply| {
        let mut plain = Vec::with_capacity(1 << 16);
        let mut out = Vec::with_capacity(1 << 16);
        counted(|| {
            let mut rd = input;
            while !rd.is_empty() {
                buffered.read_tls(&mut rd).unwrap();
                buffered.process_new_packets().unwrap();
            }
            let mut buf = [0u8; 512];
            while let Ok(n) = buffered.reader().read(&mut buf) {
                if n == 0 {
                    break;
                }
                plain.extend_from_slice(&buf[..n]);
            }
            if let Some(reply) = reply {
                buffered.writer().write_all(reply).unwrap();
            }
            while buffered.wants_write() {
                buffered.write_tls(&mut out).unwrap();
            }
        });
        (out, plain)
    });
    let bsize = std::mem::size_of::<ServerConnection>();
    let bblocks = blocks();
    let theirs = bsize as isize + bheap + bblocks * MALLOC_OVERHEAD;
    println!(
        "rustls ServerConnection (tokio-rustls): {bsize} B inline + {bheap} B heap in {bblocks} \
         blocks = {theirs} B (heap peak {bpeak} B); netloop is {:.1}x leaner",
        theirs as f64 / ours as f64
    );
    drop(buffered);

    assert!(
        ours <= 4096,
        "an idle TLS session costs {ours} B, over the 4 KiB goal"
    );
    assert!(ours < theirs, "{ours} B vs rustls buffered {theirs} B");
}

/// One server step with netloop's session: all buffers are allocated before
/// counting starts and large enough never to grow.
fn netloop_step(
    session: &mut TlsSession,
    input: &[u8],
    reply: Option<&[u8]>,
) -> (Vec<u8>, Vec<u8>) {
    let mut wire = Vec::with_capacity(1 << 16);
    wire.extend_from_slice(input);
    let mut plain = Vec::with_capacity(1 << 16);
    let mut out = Vec::with_capacity(1 << 16);
    counted(|| {
        let r = session.receive(&mut wire, &mut plain, &mut out).unwrap();
        assert_eq!(r.consumed, wire.len());
        if let Some(reply) = reply {
            session.send(&mut [], reply, &mut out).unwrap();
        }
    });
    (out, plain)
}
