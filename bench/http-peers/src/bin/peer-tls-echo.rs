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

fn main() {
    tls_peer::run("peer-tls-echo", &[], |mut tls| async move {
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
