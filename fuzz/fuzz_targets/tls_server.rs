#![no_main]
//! TlsSession (server side): arbitrary bytes as a client's wire stream, fed in
//! arbitrary chunks with the pending bytes kept the way the event loop keeps
//! them. Nothing may panic; the pending bytes stay under the session's limit; a
//! failed session stays failed; plaintext never appears before the handshake.

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use netloop::tls::{Identity, ServerConfigBuilder, TlsAcceptor, TlsStatus};

#[path = "common.rs"]
mod common;

fn acceptor() -> &'static TlsAcceptor {
    static ACCEPTOR: OnceLock<TlsAcceptor> = OnceLock::new();
    ACCEPTOR.get_or_init(|| {
        let pair = Identity::self_signed(&["localhost"]).expect("self-signed pair");
        let config = ServerConfigBuilder::new(pair.identity)
            .alpn(&["http/1.1"])
            .build()
            .expect("server config");
        TlsAcceptor::new(config)
    })
}

fuzz_target!(|data: &[u8]| {
    let (_, sizes, stream) = common::split(data, 0);
    let mut session = acceptor().accept().expect("session");
    let (mut pending, mut plain, mut out) = (Vec::new(), Vec::new(), Vec::new());
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let n = match sizes.len() {
            0 => stream.len(),
            k => usize::from(sizes[i % k]) + 1,
        };
        i += 1;
        let end = stream.len().min(pos + n);
        let mut wire = std::mem::take(&mut pending);
        wire.extend_from_slice(&stream[pos..end]);
        pos = end;
        match session.receive(&mut wire, &mut plain, &mut out) {
            Ok(r) => {
                assert!(r.consumed <= wire.len());
                pending = wire[r.consumed..].to_vec();
                assert!(pending.len() <= session.pending_wire_limit());
                if session.status() == TlsStatus::Handshaking {
                    assert!(plain.is_empty());
                }
            }
            Err(_) => {
                assert_eq!(session.status(), TlsStatus::Failed);
                assert!(session.receive(&mut [0u8; 8], &mut plain, &mut out).is_err());
                return;
            }
        }
    }
    // Closing is always possible.
    let _ = session.close(&mut pending, &mut out);
});
