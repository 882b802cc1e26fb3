//! TCP proxy: accepts on `--addr`, dials `--upstream` for each client **on the same
//! loop** that accepted it, and forwards both directions.
//!
//! The two connections of a pair live on one loop, so pairing them needs no lock:
//! the downstream (accepted) connection dials with [`DialOptions::state`] naming
//! itself, the upstream connection's `on_open` records its handle in the loop's
//! handler, and wakes the downstream, which picks the handle up and forwards what
//! it buffered meanwhile. A close on either side closes the other.
//!
//! Backpressure: bytes are forwarded as they arrive, whatever the other side's
//! outbound queue holds. Once the flow-control work lands (write water marks and
//! pause/resume of reading), a side whose peer's queue is above its high mark will
//! pause reading until the peer drains; until then a fast sender facing a slow
//! receiver grows the receiver's outbound queue.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:9001 &
//! cargo run --release --example proxy -- --addr 127.0.0.1:9000 --upstream 127.0.0.1:9001 --loops 2
//! # self-test: an in-process upstream echo server, clients through the proxy
//! cargo run --example proxy -- --addr 127.0.0.1:0 --self-test
//! ```
mod common;

use clap::Parser;
use netloop::{
    Action, CloseReason, Conn, ConnHandle, ConnId, DialOptions, Engine, EngineHandle, EventHandler,
    LoopInfo,
};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "netloop TCP proxy")]
struct Args {
    /// Listening address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: String,
    /// Upstream HOST:PORT (or tcp:// / unix:// URL). Required unless --self-test.
    #[arg(long)]
    upstream: Option<String>,
    /// Event loops.
    #[arg(long, default_value_t = 1)]
    loops: usize,
    /// I/O backend: epoll | uring | auto (io_uring where the kernel allows it).
    #[arg(long, default_value = "epoll")]
    backend: netloop::Backend,
    /// Upstream connect timeout in milliseconds.
    #[arg(long, default_value_t = 3000)]
    connect_timeout_ms: u64,
    /// Start an in-process upstream (unless --upstream), push data through, exit.
    #[arg(long)]
    self_test: bool,
}

/// Which side of a pair a connection is.
enum Side {
    /// Accepted from a client; the upstream handle once known.
    Down(Option<ConnHandle>),
    /// Dialed to the upstream for the downstream connection `down_id`.
    Up { down: ConnHandle, down_id: ConnId },
}

impl Default for Side {
    fn default() -> Side {
        Side::Down(None)
    }
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    timeout: Duration,
    engine: Option<EngineHandle>,
    /// Upstream handles whose downstream has not picked them up yet (by downstream id).
    ready: HashMap<ConnId, ConnHandle>,
    /// Downstream connections that closed before their upstream opened.
    orphaned: HashSet<ConnId>,
}

impl Proxy {
    fn forward(conn: &mut Conn<'_, Side>, to: &ConnHandle) -> Action {
        let n = conn.buffered();
        if n == 0 {
            return Action::None;
        }
        let data = conn.peek_all().to_vec();
        conn.discard(n);
        match to.async_write(data, None) {
            Ok(()) => Action::None,
            Err(_) => Action::Close, // the other side is gone: so is this one
        }
    }
}

impl EventHandler for Proxy {
    type State = Side;

    fn on_boot(&mut self, info: &LoopInfo<'_>) -> Action {
        self.engine = Some(info.engine().clone());
        Action::None
    }

    fn on_open(&mut self, conn: &mut Conn<'_, Side>) -> Action {
        match conn.state() {
            Side::Down(_) => {
                let down = conn.handle();
                let opts = DialOptions::new()
                    .timeout(self.timeout)
                    .on_loop(conn.loop_index())
                    .state(Side::Up {
                        down: down.clone(),
                        down_id: conn.id(),
                    });
                conn.dialer()
                    .dial(self.upstream.as_str(), opts, move |res| {
                        if let Err(e) = res {
                            tracing::warn!(error = %e, "upstream dial failed; closing the client");
                            let _ = down.close();
                        }
                    });
                Action::None
            }
            Side::Up { down, down_id } => {
                if self.orphaned.remove(down_id) {
                    return Action::Close; // the client left while we were dialing
                }
                self.ready.insert(*down_id, conn.handle());
                let _ = down.wake(); // forward what the client sent meanwhile
                Action::None
            }
        }
    }

    fn on_traffic(&mut self, conn: &mut Conn<'_, Side>) -> Action {
        if let Side::Down(None) = conn.state() {
            match self.ready.remove(&conn.id()) {
                Some(up) => *conn.state_mut() = Side::Down(Some(up)),
                None => return Action::None, // keep it buffered until the upstream is up
            }
        }
        let to = match conn.state() {
            Side::Down(Some(up)) => up.clone(),
            Side::Up { down, .. } => down.clone(),
            Side::Down(None) => return Action::None,
        };
        Self::forward(conn, &to)
    }

    fn on_close(&mut self, conn: &mut Conn<'_, Side>, _reason: &CloseReason) {
        match conn.state() {
            Side::Down(Some(up)) => {
                let _ = up.close();
            }
            Side::Down(None) => match self.ready.remove(&conn.id()) {
                Some(up) => {
                    let _ = up.close();
                }
                None => {
                    self.orphaned.insert(conn.id());
                }
            },
            Side::Up { down, .. } => {
                let _ = down.close();
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    if args.upstream.is_none() && !args.self_test {
        return Err("--upstream is required (or use --self-test)".into());
    }
    // Kept alive until `main` returns.
    let (upstream, _local_upstream) = common::addr_or_local_echo(args.upstream.as_deref())?;
    let proxy = Proxy {
        upstream: upstream.clone(),
        timeout: Duration::from_millis(args.connect_timeout_ms),
        engine: None,
        ready: HashMap::new(),
        orphaned: HashSet::new(),
    };
    let engine = Engine::builder()
        .backend(args.backend)
        .loops(args.loops)
        .mode(common::parse_mode("auto", args.loops)?)
        .listen(args.addr.as_str())
        .start_with(proxy)?;
    let addr = engine.local_addr().clone();
    println!(
        "listening on {} -> {upstream}",
        addr.to_string().trim_start_matches("tcp://")
    );
    if args.self_test {
        let res = self_test(&engine, addr.as_tcp().ok_or("self-test needs TCP")?);
        engine.stop();
        return res;
    }
    common::stop_on_signals(engine.handle());
    engine.wait();
    Ok(())
}

/// 32 clients, each sending 20 messages of up to ~200 KB through the proxy to
/// the echo upstream, checking every byte; then every pair must be torn down.
fn self_test(
    engine: &Engine,
    addr: std::net::SocketAddr,
) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::{Read, Write};
    let clients: Vec<_> = (0..32usize)
        .map(|c| {
            std::thread::spawn(move || -> Result<usize, String> {
                let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| e.to_string())?;
                let mut total = 0;
                for i in 0..20usize {
                    let len = 1 + (c * 7919 + i * 104_729) % 200_000;
                    let msg: Vec<u8> = (0..len).map(|k| (k * 31 + c + i) as u8).collect();
                    let mut w = s.try_clone().map_err(|e| e.to_string())?;
                    let m2 = msg.clone();
                    let writer = std::thread::spawn(move || w.write_all(&m2));
                    let mut back = vec![0u8; len];
                    s.read_exact(&mut back)
                        .map_err(|e| format!("client {c}: {e}"))?;
                    writer
                        .join()
                        .map_err(|_| "writer panicked")?
                        .map_err(|e| e.to_string())?;
                    if back != msg {
                        return Err(format!("client {c} message {i}: corrupted"));
                    }
                    total += len;
                }
                Ok(total)
            })
        })
        .collect();
    let mut bytes = 0;
    for c in clients {
        bytes += c.join().map_err(|_| "client panicked")??;
    }
    let h = engine.handle();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while h.connection_count() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if h.connection_count() != 0 {
        return Err(format!("{} connections left open", h.connection_count()).into());
    }
    println!("ok: 32 clients, {bytes} bytes each way through the proxy, all pairs closed");
    Ok(())
}
