//! Scale and descriptor exhaustion, with the server in a child process (so that
//! client and server sockets do not share one process's descriptor limit).
//!
//! The server is the `echo` example, run on the suite's backend; its connection
//! count is read from its descriptor table (`/proc/PID/fd`).
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// The `echo` example serving in a child process.
struct ChildServer {
    served: Served,
    addr: SocketAddr,
    /// Descriptors the server holds with no connection open.
    base_fds: usize,
}

impl ChildServer {
    /// Starts the echo example with `loops` loops in `mode`, optionally under a
    /// lower descriptor limit.
    fn spawn(mode: &str, loops: usize, nofile: Option<u32>) -> ChildServer {
        let exe = example_binary("echo");
        let limit = nofile
            .map(|n| format!("ulimit -n {n}; "))
            .unwrap_or_default();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{limit}exec \"$0\" \"$@\""))
            .arg(exe)
            .args(["--addr", "127.0.0.1:0", "--mode", mode])
            .args(["--loops", &loops.to_string()])
            .args(backend_flag(&[]));
        let served = Served::spawn(cmd);
        let addr = served.listening_addr();
        // The loops have registered everything they hold at rest by now.
        std::thread::sleep(Duration::from_millis(100));
        let base_fds = fd_count_of(served.pid());
        ChildServer {
            served,
            addr,
            base_fds,
        }
    }

    /// Connections the server holds open (descriptors above its resting count).
    fn connections(&self) -> usize {
        fd_count_of(self.served.pid()).saturating_sub(self.base_fds)
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

    /// CPU time (user + system) the server has used, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.served.pid())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }
}

#[test]
fn ten_thousand_connections() {
    let server = ChildServer::spawn("reactor", 2, None);
    let n = 10_000;
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        clients.push(server.connect_spread(i));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let b = [(i % 251) as u8];
        assert_eq!(round_trip(c, &b), b, "client {i}");
    }
    assert!(
        wait_until(Duration::from_secs(10), || server.connections() == n),
        "server holds {} connections, expected {n}",
        server.connections()
    );
    drop(clients);
    assert!(
        wait_until(Duration::from_secs(20), || server.connections() == 0),
        "server still holds {} connections",
        server.connections()
    );
}

#[test]
fn running_out_of_descriptors_pauses_accepting_without_spinning() {
    let server = ChildServer::spawn("single", 1, Some(64));
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
