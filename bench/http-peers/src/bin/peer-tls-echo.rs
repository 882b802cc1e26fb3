//! tokio + tokio-rustls echo peer for the TLS benchmark: a task per connection
//! reading into a 4 KiB buffer and writing it back, as a tokio-rustls server is
//! usually written.
//!
//! ```text
//! peer-tls-echo --addr 127.0.0.1:8443 --tls-cert cert.pem --tls-key key.pem [--threads 1]
//! ```

#[path = "../tls_peer.rs"]
mod tls_peer;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

fn main() {
    let args = tls_peer::args("peer-tls-echo", &[]);
    let acceptor = TlsAcceptor::from(args.config);
    tls_peer::runtime(args.threads).block_on(async move {
        let listener = tls_peer::listen("peer-tls-echo", args.addr).await;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                loop {
                    let n = match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if tls.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    });
}
