//! hyper 1.x peer for the protocol benchmark: serves `/plaintext` and `/json`
//! like netloop's `http` example (same bodies and content types; hyper adds
//! `Date` itself), HTTP/1.1 only, keep-alive, pipelined responses flushed
//! together.
//!
//! ```text
//! peer-hyper --addr 127.0.0.1:8081 [--threads 1]
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const PLAINTEXT: &[u8] = b"Hello, World!";
const JSON: &[u8] = br#"{"message":"Hello, World!"}"#;

async fn route(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, ctype, body): (_, _, &'static [u8]) = match req.uri().path() {
        "/plaintext" => (StatusCode::OK, "text/plain", PLAINTEXT),
        "/json" => (StatusCode::OK, "application/json", JSON),
        _ => (StatusCode::NOT_FOUND, "text/plain", b"Not Found"),
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(SERVER, HeaderValue::from_static("hyper"));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok(resp)
}

fn parse_args() -> Result<(SocketAddr, usize), String> {
    let mut addr = "127.0.0.1:8081".to_string();
    let mut threads = 1usize;
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
            "-h" | "--help" => {
                println!("usage: peer-hyper [--addr HOST:PORT] [--threads N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let addr = addr
        .trim_start_matches("tcp://")
        .parse()
        .map_err(|e| format!("--addr: {e}"))?;
    Ok((addr, threads.max(1)))
}

fn main() {
    let (addr, threads) = parse_args().unwrap_or_else(|e| {
        eprintln!("peer-hyper: {e}");
        std::process::exit(2);
    });
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_io()
            .build()
    }
    .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| {
            eprintln!("peer-hyper: bind {addr}: {e}");
            std::process::exit(1);
        });
        println!(
            "listening on {}",
            listener.local_addr().expect("local addr")
        );
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .pipeline_flush(true)
                    .serve_connection(TokioIo::new(stream), service_fn(route))
                    .await;
            });
        }
    });
}
