//! The RESP server against hostile (or just demanding) clients: commands
//! larger than the engine's inbound cap, replies larger than any buffer the
//! server should hold, commands that never finish.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;

use netloop::protocol::resp::{
    RedisServer, RespLimits, RespTimeouts, StoreMode, Value, COMMAND_TIMEOUT_REPLY,
};
use netloop::Engine;

fn start(timeouts: RespTimeouts) -> (Engine, SocketAddr) {
    let factory = RedisServer::factory(StoreMode::Shared);
    let engine = engine_builder()
        .loops(1)
        .listen("127.0.0.1:0")
        .start(move |i| factory(i).with_timeouts(timeouts))
        .expect("engine starts");
    let addr = tcp_addr(&engine);
    (engine, addr)
}

fn cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// Reads one reply (whole) from `c`, with `buf` holding bytes read ahead.
fn reply(c: &mut std::net::TcpStream, buf: &mut Vec<u8>) -> Value {
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        if let Some((v, n)) = Value::parse(buf).expect("valid RESP") {
            buf.drain(..n);
            return v;
        }
        let n = c.read(&mut chunk).expect("a reply, not silence");
        assert!(n > 0, "closed without a reply");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Before: `SET k <5 MiB>` got no reply — the command sat under the
/// engine's 4 MiB inbound cap while the parser waited for all of it.
#[test]
fn set_of_a_5_mib_value_is_answered_and_read_back() {
    let (engine, addr) = start(RespTimeouts::default());
    let value: Vec<u8> = (0..5 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut c = connect(addr);
    let mut w = c.try_clone().unwrap();
    let req = cmd(&[b"SET", b"k", &value]);
    let writer = std::thread::spawn(move || w.write_all(&req).unwrap());
    let mut buf = Vec::new();
    let got = deadline(60, move || {
        let set = reply(&mut c, &mut buf);
        c.write_all(&cmd(&[b"GET", b"k"])).unwrap();
        (set, reply(&mut c, &mut buf))
    });
    writer.join().unwrap();
    assert_eq!(got.0, Value::Simple(b"OK".to_vec()));
    assert_eq!(got.1, Value::Bulk(value));
    engine.stop();
}

/// Before: `MGET` of 100 x 1 MiB values built the whole 100 MiB reply
/// before sending it. Now it goes out as the client reads: the server's
/// outbound queue stays near the water marks while the client dawdles.
#[test]
fn large_mget_streams_within_the_water_marks() {
    let (engine, addr) = start(RespTimeouts::default());
    let mut c = connect(addr);
    let mut buf = Vec::new();
    let value = vec![b'v'; 1 << 20];
    let keys: Vec<String> = (0..100).map(|i| format!("key:{i}")).collect();
    for k in &keys {
        c.write_all(&cmd(&[b"SET", k.as_bytes(), &value])).unwrap();
        assert_eq!(reply(&mut c, &mut buf), Value::Simple(b"OK".to_vec()));
    }
    let sock = socket2::SockRef::from(&c);
    sock.set_recv_buffer_size(64 * 1024).unwrap();
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(keys.iter().map(|k| k.as_bytes()));
    c.write_all(&cmd(&mget)).unwrap();
    // Read slowly for a while, watching the server's queue.
    let h = engine.handle();
    let mut peak = 0;
    let mut total = 0usize;
    let mut chunk = vec![0u8; 64 * 1024];
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        total += c.read(&mut chunk).unwrap();
        peak = peak.max(h.stats().total.queued_out_bytes);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(peak < 4 << 20, "outbound queue peaked at {peak} bytes");
    assert!(total < 50 << 20, "the test read too fast to see anything");
    // Then read the rest: the whole reply, intact.
    let rest = deadline(60, move || {
        let mut all = chunk[..0].to_vec();
        let mut b = vec![0u8; 1 << 20];
        let want = 100 * ((1 << 20) + 12) + 6 - total;
        while all.len() < want {
            let n = c.read(&mut b).unwrap();
            assert!(n > 0);
            all.extend_from_slice(&b[..n]);
        }
        all.len()
    });
    assert_eq!(total + rest, 100 * ((1 << 20) + 12) + 6);
    engine.stop();
}

/// A command that never completes is answered an error and closed by the
/// command deadline; an idle connection is closed by the idle timeout.
#[test]
fn stalled_command_and_idle_connection_are_closed() {
    let (engine, addr) = start(RespTimeouts {
        command: Some(Duration::from_millis(300)),
        idle: Some(Duration::from_millis(800)),
    });
    let mut slow = connect(addr);
    slow.write_all(b"*2\r\n$3\r\nGET").unwrap();
    let mut idle = connect(addr);
    idle.write_all(b"PING\r\n").unwrap();
    let t = Instant::now();
    let (got, _) = read_to_end(&mut slow);
    assert_eq!(got, COMMAND_TIMEOUT_REPLY);
    let slow_closed = t.elapsed();
    let (got, _) = read_to_end(&mut idle);
    assert_eq!(got, b"+PONG\r\n");
    assert!(slow_closed < Duration::from_millis(700), "{slow_closed:?}");
    assert!(t.elapsed() >= Duration::from_millis(700));
    // The server lingers for our end of stream after its error reply.
    drop((slow, idle));
    assert!(wait_no_connections(
        &engine.handle(),
        Duration::from_secs(5)
    ));
    assert!(engine.handle().stats().total.closed.timeout >= 2);
    engine.stop();
}

/// A client that pipelines GETs and never reads is paused, not buffered for.
#[test]
fn pipelining_without_reading_is_bounded() {
    let (engine, addr) = start(RespTimeouts::default());
    let mut c = connect(addr);
    c.write_all(&cmd(&[b"SET", b"k", &[b'x'; 1000]])).unwrap();
    let mut buf = Vec::new();
    assert_eq!(reply(&mut c, &mut buf), Value::Simple(b"OK".to_vec()));
    let sock = socket2::SockRef::from(&c);
    sock.set_send_buffer_size(64 * 1024).unwrap();
    sock.set_recv_buffer_size(64 * 1024).unwrap();
    c.set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let batch = cmd(&[b"GET", b"k"]).repeat(1000);
    let cap = 32 << 20;
    let mut sent = 0;
    while sent < cap {
        match c.write(&batch[sent % batch.len()..]) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(sent < cap, "the server kept reading {sent} bytes");
    std::thread::sleep(Duration::from_millis(200));
    let queued = engine.handle().stats().total.queued_out_bytes;
    assert!(queued < 1 << 20, "outbound {queued} bytes");
    engine.stop();
}

/// A command past the server's own limit — and past the engine's 4 MiB
/// inbound cap — is refused with an error the client reads (the server
/// lingers, reading and discarding the rest of the upload, rather than
/// resetting the connection under it), never with silence.
#[test]
fn a_command_past_the_limit_is_refused_with_an_error() {
    let factory = RedisServer::factory(StoreMode::Shared);
    let limits = RespLimits {
        max_command_bytes: 2 << 20,
        ..RespLimits::default()
    };
    let engine = engine_builder()
        .loops(1)
        .listen("127.0.0.1:0")
        .start(move |i| factory(i).with_limits(limits.clone()))
        .expect("engine starts");
    let addr = tcp_addr(&engine);
    let mut c = connect(addr);
    let mut w = c.try_clone().unwrap();
    let req = cmd(&[b"SET", b"k", &vec![b'x'; 6 << 20]]);
    // The whole upload goes through: the server reads it to the end.
    let writer = std::thread::spawn(move || w.write_all(&req).is_ok());
    let (got, eof) = deadline(30, move || read_to_end(&mut c));
    assert_eq!(got, b"-ERR Protocol error: command too big\r\n");
    assert!(eof, "reset instead of a clean end of stream");
    assert!(writer.join().unwrap(), "the upload was cut off");
    let mut c = connect(addr);
    c.write_all(&cmd(&[b"EXISTS", b"k"])).unwrap();
    assert_eq!(reply(&mut c, &mut Vec::new()), Value::Integer(0));
    drop(c);
    engine.stop();
}
