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

struct Args {
    addr: SocketAddr,
    threads: usize,
    config: Arc<rustls::ServerConfig>,
}

/// Parses the command line (`alpn`: the protocols offered); exits with a message
/// on a bad one.
fn args(name: &str, alpn: &[&str]) -> Args {
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
fn runtime(threads: usize) -> tokio::runtime::Runtime {
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

/// A TLS stream of the peers.
pub type Stream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// Parses the command line, binds, prints `listening on ADDR`, then accepts
/// forever: a task per connection completes the handshake and runs `serve`.
pub fn run<F, Fut>(name: &'static str, alpn: &[&str], serve: F)
where
    F: Fn(Stream) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let args = args(name, alpn);
    let acceptor = tokio_rustls::TlsAcceptor::from(args.config);
    runtime(args.threads).block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .unwrap_or_else(|e| {
                eprintln!("{name}: bind {}: {e}", args.addr);
                std::process::exit(1);
            });
        println!(
            "listening on {}",
            listener.local_addr().expect("local addr")
        );
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls).await;
                }
            });
        }
    });
}
