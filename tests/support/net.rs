//! Loopback clients.

use netloop::{Addr, Engine};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Anything a test connects to: a socket address, a netloop [`Addr`] or an engine
/// (its first address).
pub trait Target {
    /// The TCP address to connect to.
    fn socket_addr(&self) -> SocketAddr;
}

impl Target for SocketAddr {
    fn socket_addr(&self) -> SocketAddr {
        *self
    }
}

impl Target for Addr {
    fn socket_addr(&self) -> SocketAddr {
        self.as_tcp()
            .unwrap_or_else(|| panic!("not a TCP address: {self}"))
    }
}

impl Target for Engine {
    fn socket_addr(&self) -> SocketAddr {
        self.local_addr().socket_addr()
    }
}

impl<T: Target + ?Sized> Target for &T {
    fn socket_addr(&self) -> SocketAddr {
        (**self).socket_addr()
    }
}

/// The engine's TCP address.
pub fn tcp_addr(engine: &Engine) -> SocketAddr {
    engine.socket_addr()
}

/// A blocking loopback client with a 10 s read timeout (a broken server fails the
/// test instead of hanging it) and `TCP_NODELAY`.
pub fn connect(to: impl Target) -> TcpStream {
    let s = TcpStream::connect(to.socket_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends `msg` and reads the same number of bytes back.
pub fn round_trip<S: Read + Write>(s: &mut S, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    back
}

/// Connects, sends `msg`, checks that it comes back (an echo round trip) and
/// returns how long that took.
pub fn timed_round_trip(to: impl Target, msg: &[u8]) -> Duration {
    let t = Instant::now();
    let mut s = connect(to);
    let back = round_trip(&mut s, msg);
    assert_eq!(back, msg);
    t.elapsed()
}

/// Reads until end-of-file or an error; returns the bytes and whether it ended
/// with a clean end-of-file.
pub fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// Waits until the engine reports no open connection.
pub fn wait_no_connections(h: &netloop::EngineHandle, timeout: Duration) -> bool {
    crate::support::wait_until(timeout, || h.connection_count() == 0)
}
