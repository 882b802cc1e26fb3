//! Scale and descriptor exhaustion, with the server in a child process (so that
//! client and server sockets do not share one process's descriptor limit).
//!
//! The child is this same test binary running the ignored `child_server` test.
mod support;

use netloop::{Action, Conn, EngineHandle, EventHandler, LoopInfo, Mode};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Echo, except that `count?` is answered with the engine's connection count.
#[derive(Clone, Default)]
struct CountingEcho {
    engine: Option<EngineHandle>,
}

impl EventHandler for CountingEcho {
    type State = ();
    fn on_boot(&mut self, info: &LoopInfo<'_>) -> Action {
        self.engine = Some(info.engine().clone());
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        if conn.peek_all() == b"count?" {
            conn.discard(6);
            let n = self.engine.as_ref().map_or(0, |e| e.connection_count());
            let _ = conn.write(format!("{n:>8}").as_bytes());
            return Action::None;
        }
        let n = conn.buffered();
        let ([a, b], mut w) = conn.split();
        let _ = w.writev(&[a, b]);
        conn.discard(n);
        Action::None
    }
}

#[test]
#[ignore = "runs as the server process of the other tests"]
fn child_server() {
    let Ok(mode) = std::env::var("NETLOOP_CHILD") else {
        return;
    };
    let (loops, mode) = match mode.as_str() {
        "single" => (1, Mode::Single),
        _ => (2, Mode::Reactor),
    };
    let engine = engine_builder()
        .loops(loops)
        .mode(mode)
        .listen("127.0.0.1:0")
        .start_with(CountingEcho::default())
        .unwrap();
    println!("port {}", engine.local_addr().as_tcp().unwrap().port());
    std::io::stdout().flush().unwrap();
    // Serve until the parent closes our stdin (or 120 s pass).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(Duration::from_secs(120));
    engine.stop();
}

struct ChildServer {
    child: Child,
    addr: SocketAddr,
}

impl ChildServer {
    /// Starts the child server, optionally with a lower descriptor limit.
    fn spawn(mode: &str, nofile: Option<u32>) -> ChildServer {
        let exe = std::env::current_exe().unwrap();
        let cmd = format!(
            "{} exec \"$0\" child_server --exact --ignored --nocapture --test-threads=1",
            nofile
                .map(|n| format!("ulimit -n {n};"))
                .unwrap_or_default()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .arg(exe)
            .env("NETLOOP_CHILD", mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("child exited before listening")
                .unwrap();
            // libtest may print "test child_server ... " on the same line first.
            if let Some(i) = line.find("port ") {
                break line[i + 5..].trim().parse::<u16>().unwrap();
            }
        };
        // Keep reading the child's output so its writes never fail.
        std::thread::spawn(move || for _ in lines {});
        ChildServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Connects from source address 127.0.0.`2 + i % 50`, so that many connections
    /// (and the TIME_WAIT entries earlier runs left) never exhaust one address's
    /// ephemeral ports.
    fn connect_spread(&self, i: usize) -> TcpStream {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let src = SocketAddr::from(([127, 0, 0, 2 + (i % 50) as u8], 0));
        s.bind(&src.into()).unwrap();
        s.connect(&self.addr.into()).unwrap();
        let s: TcpStream = s.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// The server's connection count, asked over a fresh connection (counted too).
    fn count(&self) -> usize {
        let mut s = self.connect();
        s.write_all(b"count?").unwrap();
        let mut b = [0u8; 8];
        s.read_exact(&mut b).unwrap();
        std::str::from_utf8(&b).unwrap().trim().parse().unwrap()
    }

    /// CPU time (user + system) the child has used, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // asks the child to stop
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ten_thousand_connections() {
    let server = ChildServer::spawn("reactor", None);
    let n = 10_000;
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        clients.push(server.connect_spread(i));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let b = [(i % 251) as u8];
        assert_eq!(round_trip(c, &b), b, "client {i}");
    }
    assert_eq!(server.count(), n + 1);
    drop(clients);
    assert!(wait_until(Duration::from_secs(20), || server.count() == 1));
}

#[test]
fn running_out_of_descriptors_pauses_accepting_without_spinning() {
    let server = ChildServer::spawn("single", Some(64));
    // More connections than the child has descriptors: the kernel completes the
    // handshakes (backlog), the child accepts until EMFILE, then backs off.
    let mut clients: Vec<TcpStream> = (0..100).map(|i| server.connect_spread(i)).collect();
    for c in clients.iter_mut().take(30) {
        assert_eq!(round_trip(c, b"early"), b"early");
    }
    let last = clients.last_mut().unwrap();
    last.write_all(b"late").unwrap();
    last.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        last.read(&mut [0u8; 4]).is_err(),
        "the 100th connection cannot be served yet"
    );
    // Out of descriptors, yet not spinning: well under the wall time in CPU.
    let (t0, c0) = (Instant::now(), server.cpu_ticks());
    std::thread::sleep(Duration::from_secs(1));
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu = (server.cpu_ticks() - c0) as f64 / ticks_per_sec;
    assert!(
        cpu < 0.3 * t0.elapsed().as_secs_f64(),
        "child used {cpu:.2}s of CPU in ~1s: spinning?"
    );
    // Existing connections are still served.
    assert_eq!(round_trip(&mut clients[1], b"still"), b"still");
    // Free descriptors: the pending connections are accepted and served.
    clients.drain(..60);
    let last = clients.last_mut().unwrap();
    last.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut b = [0u8; 4];
    last.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"late");
    for c in clients.iter_mut() {
        assert_eq!(round_trip(c, b"x"), b"x");
    }
}
