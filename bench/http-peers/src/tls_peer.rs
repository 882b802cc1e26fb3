//! What the TLS peers share: their command line and runtime, and the rustls
//! server config — built with netloop's own helper, so a peer and netloop serve
//! with the same config (ring provider, the same ECDSA P-256 certificate,
//! resumption with tickets and a session cache).
//!
//! ```text
//! PEER --addr 127.0.0.1:8443 --tls-cert cert.pem --tls-key key.pem [--threads 1]
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use netloop::tls::{rustls, ServerConfigBuilder};

pub struct Args {
    pub addr: SocketAddr,
    pub threads: usize,
    pub config: Arc<rustls::ServerConfig>,
}

/// Parses the command line (`alpn`: the protocols offered); exits with a message
/// on a bad one.
pub fn args(name: &str, alpn: &[&str]) -> Args {
    parse(alpn).unwrap_or_else(|e| {
        eprintln!("{name}: {e}");
        eprintln!("usage: {name} --addr HOST:PORT --tls-cert PEM --tls-key PEM [--threads N]");
        std::process::exit(2);
    })
}

fn parse(alpn: &[&str]) -> Result<Args, String> {
    let mut addr = "127.0.0.1:8443".to_string();
    let mut threads = 1usize;
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--addr" => addr = value("--addr")?,
            "--threads" => {
                threads = value("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?
            }
            "--tls-cert" => cert = Some(value("--tls-cert")?),
            "--tls-key" => key = Some(value("--tls-key")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        return Err("--tls-cert and --tls-key are required".into());
    };
    let config = ServerConfigBuilder::from_pem_files(cert, key)
        .and_then(|b| b.alpn(alpn).build())
        .map_err(|e| e.to_string())?;
    let addr = addr
        .trim_start_matches("tls://")
        .trim_start_matches("tcp://")
        .parse()
        .map_err(|e| format!("--addr: {e}"))?;
    Ok(Args {
        addr,
        threads: threads.max(1),
        config,
    })
}

/// A current-thread runtime for one thread, a multi-thread one for more.
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_io()
            .build()
    }
    .expect("tokio runtime")
}

/// Binds, prints `listening on ADDR`, or exits.
pub async fn listen(name: &str, addr: SocketAddr) -> tokio::net::TcpListener {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| {
            eprintln!("{name}: bind {addr}: {e}");
            std::process::exit(1);
        });
    println!(
        "listening on {}",
        listener.local_addr().expect("local addr")
    );
    listener
}
