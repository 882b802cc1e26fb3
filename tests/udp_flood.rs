//! A UDP flood from many source ports: bounded memory, no stall. In its own test
//! binary so the process's resident memory is this test's alone.
mod support;

use netloop::udp::{Datagram, DatagramHandler, UdpEngine};
use netloop::{Action, Mode};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// Echoes with a flag byte (`T` truncated, `-` whole) and keeps no record.
struct PlainEcho;
impl DatagramHandler for PlainEcho {
    fn on_datagram(&mut self, d: &mut Datagram<'_>) -> Action {
        let mut reply = [0u8; 65];
        let len = d.data().len().min(64);
        reply[0] = if d.truncated() { b'T' } else { b'-' };
        reply[1..=len].copy_from_slice(&d.data()[..len]);
        let _ = d.reply(&reply[..=len]);
        Action::None
    }
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A flood from many source ports: memory stays bounded (fixed batches; the kernel
/// drops what the socket buffer cannot hold), and neither a TCP engine nor the
/// datagram loops stall.
#[test]
fn flood_from_many_ports_is_bounded_and_does_not_stall() {
    let udp = UdpEngine::builder()
        .mode(Mode::ReusePort)
        .loops(2)
        .batch(32)
        .datagram_size(2048)
        .recv_buffer(256 * 1024)
        .listen("udp://127.0.0.1:0")
        .start(|_| PlainEcho)
        .unwrap();
    let server = udp.local_addr().as_udp().unwrap();
    let tcp = engine_builder()
        .loops(1)
        .mode(Mode::Single)
        .listen("127.0.0.1:0")
        .start_with(Recorder::default())
        .unwrap();
    let rss_before = rss_kib();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let flooders: Vec<_> = (0..3)
        .map(|_| {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let socks: Vec<UdpSocket> = (0..32)
                    .map(|_| {
                        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                        s.set_nonblocking(true).unwrap();
                        s
                    })
                    .collect();
                let payload = [0xabu8; 1000];
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    for s in &socks {
                        if s.send_to(&payload, server).is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        while s.recv(&mut buf).is_ok() {} // never let replies pile up
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // The TCP engine stays responsive throughout.
    let mut c = connect(tcp.local_addr());
    let mut worst = Duration::ZERO;
    let mut probes_ok = 0;
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        let t = Instant::now();
        assert_eq!(round_trip(&mut c, b"still here"), b"still here");
        worst = worst.max(t.elapsed());
        probe.send_to(b"probe", server).unwrap();
        let mut buf = [0u8; 64];
        if let Ok(n) = probe.recv(&mut buf) {
            if &buf[..n] == b"-probe" {
                probes_ok += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    let st = udp.stats();
    let rss_after = rss_kib();
    eprintln!(
        "flood: sent {} received {} replies {} dropped replies {} probes ok {probes_ok} worst tcp rtt {worst:?} rss {rss_before} -> {rss_after} KiB",
        sent.load(Ordering::Relaxed),
        st.received,
        st.sent,
        st.send_dropped
    );
    assert!(st.received > 1000, "the loops kept receiving: {st:?}");
    assert!(worst < Duration::from_millis(500), "tcp stalled: {worst:?}");
    assert!(probes_ok > 0, "a datagram loop answered during the flood");
    assert!(
        rss_after < rss_before + 32 * 1024,
        "memory grew: {rss_before} -> {rss_after} KiB"
    );
    // After the flood the datagram loops answer promptly again.
    let c2 = UdpSocket::bind("127.0.0.1:0").unwrap();
    c2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c2.send_to(b"after flood", server).unwrap();
    let mut buf = [0u8; 64];
    let n = c2.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"-after flood");
    udp.stop();
    tcp.stop();
}
