//! Datagram servers: echo with peer addresses, send_to, ReusePort spreading,
//! truncation, Unix datagram sockets. (The flood test is `udp_flood.rs`.)
mod support;

use netloop::udp::{Datagram, DatagramHandler, UdpEngine};
use netloop::{Action, Mode};
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// Echoes every datagram to its sender, prefixed with a flag byte: `T` if the
/// datagram arrived truncated, `-` otherwise. `fwd:ADDR` forwards the rest to ADDR.
#[derive(Clone, Default)]
struct Echo {
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    loops_seen: Arc<Mutex<Vec<usize>>>,
}

impl DatagramHandler for Echo {
    fn on_datagram(&mut self, d: &mut Datagram<'_>) -> Action {
        if let Some(p) = d.peer() {
            self.peers.lock().unwrap().push(p);
        }
        self.loops_seen.lock().unwrap().push(d.loop_index());
        if let Some(rest) = d.data().strip_prefix(b"fwd:") {
            let to: SocketAddr = std::str::from_utf8(rest).unwrap().parse().unwrap();
            d.send_to(to, b"forwarded").unwrap();
            return Action::None;
        }
        if d.data() == b"boom" {
            panic!("boom requested");
        }
        let mut out = [0u8; 1];
        out[0] = if d.truncated() { b'T' } else { b'-' };
        let len = d.data().len().min(64);
        let mut reply = Vec::with_capacity(1 + len);
        reply.extend_from_slice(&out);
        reply.extend_from_slice(&d.data()[..len]);
        d.reply(&reply).unwrap();
        Action::None
    }
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 70_000];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    buf.truncate(n);
    (buf, from)
}

#[test]
fn echo_with_peer_address_and_send_to() {
    let h = Echo::default();
    let h2 = h.clone();
    let engine = UdpEngine::builder()
        .listen("udp://127.0.0.1:0")
        .start(move |_| h2.clone())
        .unwrap();
    let server = engine.local_addr().as_udp().unwrap();
    let c = client();
    c.send_to(b"hello", server).unwrap();
    let (data, from) = recv(&c);
    assert_eq!((data.as_slice(), from), (&b"-hello"[..], server));
    assert_eq!(h.peers.lock().unwrap()[0], c.local_addr().unwrap());

    // send_to a third party.
    let other = client();
    let msg = format!("fwd:{}", other.local_addr().unwrap());
    c.send_to(msg.as_bytes(), server).unwrap();
    let (data, from) = recv(&other);
    assert_eq!((data.as_slice(), from), (&b"forwarded"[..], server));

    // A panicking handler does not take the loop down.
    c.send_to(b"boom", server).unwrap();
    c.send_to(b"after", server).unwrap();
    assert_eq!(recv(&c).0, b"-after");
    // Counters are published after each batch's replies are sent.
    assert!(wait_until(Duration::from_secs(2), || {
        let st = engine.stats();
        (st.received, st.truncated, st.sent) == (4, 0, 3)
    }));
    engine.stop();
}

#[test]
fn udp6_and_bare_host_port() {
    let engine = UdpEngine::builder()
        .listen("127.0.0.1:0")
        .start(|_| Echo::default())
        .unwrap();
    assert!(engine.local_addr().as_udp().is_some());
    engine.stop();
    let Ok(engine) = UdpEngine::builder()
        .listen("udp6://[::1]:0")
        .start(|_| Echo::default())
    else {
        return; // no IPv6 loopback here
    };
    let server = engine.local_addr().as_udp().unwrap();
    let c = UdpSocket::bind("[::1]:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_to(b"six", server).unwrap();
    assert_eq!(recv(&c).0, b"-six");
    engine.stop();
}

#[test]
fn stream_addresses_are_rejected() {
    assert!(UdpEngine::builder()
        .listen("unix:///tmp/x.sock")
        .start(|_| Echo::default())
        .is_err());
    assert!(engine_builder()
        .listen("udp://127.0.0.1:0")
        .start_with(Recorder::default())
        .is_err());
}

#[test]
fn reuseport_spreads_over_loops() {
    let h = Echo::default();
    let h2 = h.clone();
    let engine = UdpEngine::builder()
        .mode(Mode::ReusePort)
        .loops(2)
        .listen("udp://127.0.0.1:0")
        .start(move |_| h2.clone())
        .unwrap();
    assert_eq!(engine.handle().loop_count(), 2);
    let server = engine.local_addr().as_udp().unwrap();
    let clients: Vec<UdpSocket> = (0..64).map(|_| client()).collect();
    for (i, c) in clients.iter().enumerate() {
        c.send_to(format!("m{i}").as_bytes(), server).unwrap();
    }
    for (i, c) in clients.iter().enumerate() {
        let (data, from) = recv(c);
        assert_eq!(data, format!("-m{i}").into_bytes());
        assert_eq!(from, server);
    }
    let per_loop = engine.handle().loop_stats();
    assert_eq!(per_loop.iter().map(|s| s.received).sum::<u64>(), 64);
    assert!(
        per_loop.iter().all(|s| s.received > 0),
        "both loops served: {per_loop:?}"
    );
    engine.stop();
}

#[test]
fn oversized_datagram_is_reported_truncated() {
    let engine = UdpEngine::builder()
        .datagram_size(512)
        .listen("udp://127.0.0.1:0")
        .start(|_| Echo::default())
        .unwrap();
    let server = engine.local_addr().as_udp().unwrap();
    let c = client();
    c.send_to(&[7u8; 2000], server).unwrap();
    let (data, _) = recv(&c);
    assert_eq!(data[0], b'T', "the handler saw truncated()");
    c.send_to(&[7u8; 512], server).unwrap();
    assert_eq!(
        recv(&c).0[0],
        b'-',
        "exactly the slot size is not truncated"
    );
    assert!(wait_until(Duration::from_secs(2), || {
        let st = engine.stats();
        (st.received, st.truncated) == (2, 1)
    }));
    engine.stop();
}

#[test]
fn unixgram_echo() {
    use std::os::unix::net::UnixDatagram;
    let dir = std::env::temp_dir().join(format!("netloop-ug-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("srv.sock");
    let engine = UdpEngine::builder()
        .listen(format!("unixgram://{}", path.display()))
        .start(|_| Echo::default())
        .unwrap();
    let cpath = dir.join("cli.sock");
    let _ = std::fs::remove_file(&cpath);
    let c = UnixDatagram::bind(&cpath).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_to(b"over unix", &path).unwrap();
    let mut buf = [0u8; 64];
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"-over unix");
    engine.stop();
    assert!(!path.exists(), "socket file removed on stop");
    let _ = std::fs::remove_dir_all(&dir);
}
