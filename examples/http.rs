//! HTTP/1.1 server with the TechEmpower plaintext and JSON endpoints, and
//! `/ip`: the client's address as the server sees it (behind a load balancer
//! speaking the PROXY protocol, the original client's).
//!
//! ```text
//! cargo run --release --example http -- --addr 127.0.0.1:8080 --loops 2
//! curl http://127.0.0.1:8080/plaintext   # Hello, World!
//! curl http://127.0.0.1:8080/json        # {"message":"Hello, World!"}
//! curl http://127.0.0.1:8080/ip          # 127.0.0.1:54321
//! # prefork: 2 worker processes; `kill -HUP <supervisor>` restarts them
//! # without refusing a connection (an upgraded binary on disk takes over)
//! cargo run --release --example http -- --addr 127.0.0.1:8080 --workers 2
//! # behind HAProxy (`server s1 127.0.0.1:8080 send-proxy-v2`)
//! cargo run --release --example http -- --addr 127.0.0.1:8080 --proxy-protocol 127.0.0.1
//! ```
//!
//! The deployment flags (`--workers`, `--sharing`, `--drain-ms`,
//! `--proxy-protocol`, SIGHUP, socket activation) are those of
//! `examples/common/deploy.rs`. A retiring process answers every further
//! request with `Connection: close`, so keep-alive clients move to the new
//! generation between requests instead of being cut.
//!
//! Slow clients are timed out: a request head must be complete within
//! `--head-timeout` seconds, a body must not stall for `--body-timeout`, and an
//! idle keep-alive connection closes after `--keep-alive` (0 turns one off).
mod common;

use clap::Parser;
use common::deploy::{self, DeployArgs};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use netloop::protocol::http::{techempower, HttpConn, HttpServer, HttpTimeouts, Request, Response};
use netloop::{Action, Addr, CloseReason, Conn, ConnId, Engine, EventHandler, LoopInfo};

#[derive(Parser)]
#[command(about = "netloop HTTP server (TechEmpower /plaintext and /json)")]
struct Args {
    /// HOST:PORT, or a tcp://, tcp4://, tcp6:// or unix:// URL.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Number of event loops.
    #[arg(long, default_value_t = 1)]
    loops: usize,
    /// I/O backend: epoll | uring | auto (io_uring where the kernel allows it).
    #[arg(long, default_value = "epoll")]
    backend: netloop::Backend,
    /// single | reactor | reuseport | shared (auto: single for one loop, else reactor).
    #[arg(long, default_value = "auto")]
    mode: String,
    /// Pin loops to CPUs.
    #[arg(long)]
    pin: bool,
    /// Seconds a request head may take to arrive (slowloris defence; 0: off).
    #[arg(long, default_value_t = 10)]
    head_timeout: u64,
    /// Seconds a request body may go without a byte (0: off).
    #[arg(long, default_value_t = 30)]
    body_timeout: u64,
    /// Seconds an idle keep-alive connection stays open (0: off).
    #[arg(long, default_value_t = 60)]
    keep_alive: u64,
    #[command(flatten)]
    deploy: DeployArgs,
}

/// The client addresses of one loop's open connections (taken once, when the
/// connection opens: after a PROXY header, so the original client's), and the
/// connection whose requests are being answered.
#[derive(Default)]
struct Clients {
    addrs: RefCell<HashMap<ConnId, Addr>>,
    current: Cell<Option<ConnId>>,
}

/// An [`HttpServer`] that tells its application who the client is: it notes
/// each connection's address and which connection is being served.
struct WithClients<F> {
    http: HttpServer<F>,
    clients: Rc<Clients>,
}

impl<F: FnMut(&Request<'_>, &mut Response) + 'static> EventHandler for WithClients<F> {
    type State = HttpConn;

    fn on_open(&mut self, conn: &mut Conn<'_, HttpConn>) -> Action {
        if let Ok(addr) = conn.peer_addr() {
            self.clients.addrs.borrow_mut().insert(conn.id(), addr);
        }
        self.http.on_open(conn)
    }

    fn on_traffic(&mut self, conn: &mut Conn<'_, HttpConn>) -> Action {
        self.clients.current.set(Some(conn.id()));
        self.http.on_traffic(conn)
    }

    fn on_writable_changed(&mut self, conn: &mut Conn<'_, HttpConn>, writable: bool) {
        self.clients.current.set(Some(conn.id()));
        self.http.on_writable_changed(conn, writable)
    }

    fn on_close(&mut self, conn: &mut Conn<'_, HttpConn>, reason: &CloseReason) {
        self.clients.addrs.borrow_mut().remove(&conn.id());
        self.http.on_close(conn, reason)
    }

    fn on_tick(&mut self, info: &LoopInfo<'_>) -> (Duration, Action) {
        self.http.on_tick(info)
    }
}

/// The application: `/ip`, then the TechEmpower routes; `Connection: close`
/// once this process retires.
fn app(clients: &Clients, req: &Request<'_>, resp: &mut Response) {
    if req.path_only() == "/ip" {
        let addrs = clients.addrs.borrow();
        match clients.current.get().and_then(|id| addrs.get(&id)) {
            Some(addr) => {
                let body = format!("{}\n", addr.to_string().trim_start_matches("tcp://"));
                resp.header("Content-Type", "text/plain")
                    .set_body(body.as_bytes());
            }
            None => {
                resp.set_status(500)
                    .header("Content-Type", "text/plain")
                    .set_body(b"client address unknown");
            }
        }
    } else {
        techempower(req, resp);
    }
    if deploy::is_retiring() {
        resp.close();
    }
}

/// `secs` as a timeout, 0 meaning none.
fn secs(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    let mode = common::parse_mode(&args.mode, args.loops)?;
    let timeouts = HttpTimeouts {
        head: secs(args.head_timeout),
        body_progress: secs(args.body_timeout),
        keep_alive: secs(args.keep_alive),
    };
    let builder = Engine::builder()
        .backend(args.backend)
        .loops(args.loops)
        .mode(mode)
        .cpu_affinity(args.pin)
        .ticker(true)
        .drain_timeout(Duration::from_millis(args.deploy.drain_ms));
    deploy::serve(&args.deploy, &args.addr, builder, move |b| {
        b.start(move |_| {
            let clients = Rc::new(Clients::default());
            let seen = clients.clone();
            WithClients {
                http: HttpServer::new(move |req: &Request<'_>, resp: &mut Response| {
                    app(&seen, req, resp)
                })
                .with_timeouts(timeouts),
                clients,
            }
        })
    })
}
