//! hyper 1.x + tokio-rustls peer for the TLS benchmark: `/plaintext` and `/json`
//! over HTTPS (ALPN `http/1.1`), HTTP/1.1 keep-alive, pipelined responses flushed
//! together — `peer-hyper` behind TLS.
//!
//! ```text
//! peer-hyper-tls --addr 127.0.0.1:8443 --tls-cert cert.pem --tls-key key.pem [--threads 1]
//! ```

#[path = "../tls_peer.rs"]
mod tls_peer;

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

async fn route(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, ctype, body): (_, _, &'static [u8]) = match req.uri().path() {
        "/plaintext" => (StatusCode::OK, "text/plain", b"Hello, World!"),
        "/json" => (
            StatusCode::OK,
            "application/json",
            br#"{"message":"Hello, World!"}"#,
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", b"Not Found"),
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(SERVER, HeaderValue::from_static("hyper"));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok(resp)
}

fn main() {
    tls_peer::run("peer-hyper-tls", &["http/1.1"], |tls| async move {
        let _ = http1::Builder::new()
            .pipeline_flush(true)
            .serve_connection(TokioIo::new(tls), service_fn(route))
            .await;
    });
}
