//! may_minihttp peer for the protocol benchmark: serves `/plaintext` and
//! `/json` like netloop's `http` example (same bodies and content types;
//! may_minihttp adds `Server`, `Date` and `Content-Length` itself).
//!
//! ```text
//! peer-minihttp --addr 127.0.0.1:8082 [--threads 1]
//! ```

use std::io;
use std::net::SocketAddr;

use may_minihttp::{HttpServer, HttpService, Request, Response};

#[derive(Clone)]
struct TechEmpower;

impl HttpService for TechEmpower {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()> {
        match req.path() {
            "/plaintext" => {
                rsp.header("Content-Type: text/plain").body("Hello, World!");
            }
            "/json" => {
                rsp.header("Content-Type: application/json")
                    .body(r#"{"message":"Hello, World!"}"#);
            }
            _ => {
                rsp.status_code(404, "Not Found")
                    .header("Content-Type: text/plain")
                    .body("Not Found");
            }
        }
        Ok(())
    }
}

fn parse_args() -> Result<(SocketAddr, usize), String> {
    let mut addr = "127.0.0.1:8082".to_string();
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
                println!("usage: peer-minihttp [--addr HOST:PORT] [--threads N]");
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
        eprintln!("peer-minihttp: {e}");
        std::process::exit(2);
    });
    may::config().set_workers(threads);
    // Port 0 is resolved by binding a probe socket first (may_minihttp does
    // not report the address it bound).
    let addr = if addr.port() == 0 {
        let probe = std::net::TcpListener::bind(addr).expect("probe bind");
        probe.local_addr().expect("probe addr")
    } else {
        addr
    };
    let server = HttpServer(TechEmpower).start(addr).unwrap_or_else(|e| {
        eprintln!("peer-minihttp: bind {addr}: {e}");
        std::process::exit(1);
    });
    println!("listening on {addr}");
    server.join().ok();
}
