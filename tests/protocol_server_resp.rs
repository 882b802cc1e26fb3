//! End-to-end tests of `protocol::resp::RedisServer` on a real engine, over
//! raw TCP (and through `redis-cli` when it is installed).

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{engine_builder, mutated, Rng, Watch};

use netloop::protocol::resp::{RedisServer, StoreMode, Value};
use netloop::{Addr, Engine};

struct Server {
    engine: Engine,
    addr: SocketAddr,
    panics: Arc<AtomicUsize>,
}

impl Server {
    fn start(mode: StoreMode) -> Server {
        let panics = Arc::new(AtomicUsize::new(0));
        let p = panics.clone();
        let factory = RedisServer::factory(mode);
        let engine = engine_builder()
            .loops(2)
            .ticker(true)
            .listen("127.0.0.1:0")
            .start(move |i| Watch {
                inner: factory(i),
                panics: p.clone(),
            })
            .expect("engine starts");
        let addr = match engine.local_addr() {
            Addr::Tcp(a) => *a,
            other => panic!("unexpected address {other}"),
        };
        Server {
            engine,
            addr,
            panics,
        }
    }

    fn connect(&self) -> Client {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Client { s, buf: Vec::new() }
    }

    fn finish(self) {
        assert_eq!(self.panics.load(Ordering::SeqCst), 0, "a handler panicked");
        self.engine.stop();
    }
}

struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write");
    }

    /// Sends a command as a multibulk array.
    fn cmd(&mut self, args: &[&str]) -> Value {
        let mut out = Vec::new();
        Value::Array(args.iter().map(Value::bulk).collect()).write(&mut out);
        self.send(&out);
        self.reply()
    }

    fn reply(&mut self) -> Value {
        loop {
            if let Some((v, n)) = Value::parse(&self.buf).expect("valid RESP") {
                self.buf.drain(..n);
                return v;
            }
            let mut tmp = [0u8; 4096];
            let n = self
                .s
                .read(&mut tmp)
                .unwrap_or_else(|e| panic!("read: {e}; {} bytes buffered", self.buf.len()));
            assert!(n > 0, "connection closed while waiting for a reply");
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    fn assert_closed(&mut self) {
        assert!(self.buf.is_empty(), "unread bytes {:?}", self.buf);
        let mut rest = Vec::new();
        match self.s.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "unexpected bytes {rest:?}"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
}

fn simple(s: &str) -> Value {
    Value::Simple(s.as_bytes().to_vec())
}
fn bulk(s: &str) -> Value {
    Value::bulk(s)
}

#[test]
fn basic_commands() {
    let srv = Server::start(StoreMode::Shared);
    let mut c = srv.connect();
    assert_eq!(c.cmd(&["PING"]), simple("PONG"));
    assert_eq!(c.cmd(&["SET", "k", "v"]), simple("OK"));
    assert_eq!(c.cmd(&["GET", "k"]), bulk("v"));
    assert_eq!(c.cmd(&["GET", "nope"]), Value::Null);
    assert_eq!(c.cmd(&["INCR", "n"]), Value::Integer(1));
    assert_eq!(c.cmd(&["INCRBY", "n", "41"]), Value::Integer(42));
    assert_eq!(c.cmd(&["MSET", "a", "1", "b", "2"]), simple("OK"));
    assert_eq!(
        c.cmd(&["MGET", "a", "b", "zz"]),
        Value::Array(vec![bulk("1"), bulk("2"), Value::Null])
    );
    assert_eq!(c.cmd(&["DBSIZE"]), Value::Integer(4));
    assert_eq!(c.cmd(&["DEL", "a", "b", "zz"]), Value::Integer(2));
    assert!(matches!(c.cmd(&["NOSUCH"]), Value::Error(_)));
    // Inline commands too.
    c.send(b"ECHO hi\r\n");
    assert_eq!(c.reply(), bulk("hi"));
    srv.finish();
}

#[test]
fn pipelined_16_answered_in_order() {
    let srv = Server::start(StoreMode::Shared);
    let mut c = srv.connect();
    let mut batch = Vec::new();
    for i in 0..16 {
        let args = match i % 4 {
            0 => vec!["SET".to_string(), format!("key{i}"), format!("val{i}")],
            1 => vec!["GET".to_string(), format!("key{}", i - 1)],
            2 => vec!["INCR".to_string(), "counter".to_string()],
            _ => vec!["PING".to_string()],
        };
        Value::Array(args.iter().map(Value::bulk).collect()).write(&mut batch);
    }
    let check = |c: &mut Client, round: i64| {
        for i in 0..16 {
            let want = match i % 4 {
                0 => simple("OK"),
                1 => Value::bulk(format!("val{}", i - 1)),
                2 => Value::Integer(round * 4 + i / 4 + 1),
                _ => simple("PONG"),
            };
            assert_eq!(c.reply(), want, "round {round} reply {i}");
        }
    };
    c.send(&batch);
    check(&mut c, 0);
    // Byte-split at awkward places.
    for piece in batch.chunks(11) {
        c.send(piece);
        std::thread::sleep(Duration::from_millis(1));
    }
    check(&mut c, 1);
    srv.finish();
}

/// Far more pipelined commands than the water marks hold, sent before any
/// reply is read: the server stops while its output backs up and — through
/// the `Watch` wrapper, which must forward `on_writable_changed` — resumes
/// once it drains, so every command is answered.
#[test]
fn pipelined_past_the_water_marks_all_answered() {
    let srv = Server::start(StoreMode::Shared);
    let mut c = srv.connect();
    let value = "v".repeat(1000);
    assert_eq!(c.cmd(&["SET", "k", &value]), simple("OK"));
    let n = 10_000;
    let mut w = c.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".repeat(n))
            .expect("write");
    });
    // Nothing is read until the server's output has backed up.
    let backed_up = || srv.engine.handle().stats().total.queued_out_bytes > 0;
    assert!(support::wait_until(Duration::from_secs(10), backed_up));
    for i in 0..n {
        assert_eq!(c.reply(), bulk(&value), "reply {i}");
    }
    writer.join().unwrap();
    srv.finish();
}

#[test]
fn quit_closes_after_reply() {
    let srv = Server::start(StoreMode::Shared);
    let mut c = srv.connect();
    c.send(b"PING\r\nQUIT\r\nPING\r\n");
    assert_eq!(c.reply(), simple("PONG"));
    assert_eq!(c.reply(), simple("OK"));
    c.assert_closed();
    srv.finish();
}

#[test]
fn protocol_error_then_close() {
    let srv = Server::start(StoreMode::Shared);
    for bad in [
        &b"*1\r\n$x\r\n"[..],
        b"*2\r\n$3\r\nGET\r\n:1\r\n",
        b"*abc\r\n",
        b"SET \"unbalanced\r\n",
        b"*1\r\n$4\r\nPINGxx",
    ] {
        let mut c = srv.connect();
        c.send(b"PING\r\n");
        c.send(bad);
        assert_eq!(c.reply(), simple("PONG"));
        match c.reply() {
            Value::Error(e) => assert!(
                e.starts_with(b"ERR Protocol error"),
                "{}",
                String::from_utf8_lossy(&e)
            ),
            other => panic!("expected a protocol error for {bad:?}, got {other:?}"),
        }
        c.assert_closed();
    }
    srv.finish();
}

#[test]
fn shared_store_is_seen_by_every_loop() {
    let srv = Server::start(StoreMode::Shared);
    let mut clients: Vec<Client> = (0..4).map(|_| srv.connect()).collect();
    assert_eq!(clients[0].cmd(&["SET", "shared", "yes"]), simple("OK"));
    for c in &mut clients {
        assert_eq!(c.cmd(&["GET", "shared"]), bulk("yes"));
    }
    srv.finish();
}

#[test]
fn per_loop_store_serves_each_connection() {
    let srv = Server::start(StoreMode::PerLoop);
    let mut c = srv.connect();
    assert_eq!(c.cmd(&["SET", "k", "v"]), simple("OK"));
    assert_eq!(c.cmd(&["GET", "k"]), bulk("v"));
    srv.finish();
}

#[test]
fn expired_keys_are_purged_by_ticks() {
    let srv = Server::start(StoreMode::Shared);
    let mut c = srv.connect();
    for i in 0..50 {
        assert_eq!(
            c.cmd(&["SET", &format!("t{i}"), "v", "PX", "50"]),
            simple("OK")
        );
    }
    assert_eq!(c.cmd(&["SET", "keep", "v"]), simple("OK"));
    assert_eq!(c.cmd(&["EXPIRE", "keep", "100"]), Value::Integer(1));
    assert!(matches!(c.cmd(&["TTL", "keep"]), Value::Integer(99 | 100)));
    // DBSIZE counts expired keys until they are purged, so this sees the tick.
    let mut size = Value::Null;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(20));
        size = c.cmd(&["DBSIZE"]);
        if size == Value::Integer(1) {
            break;
        }
    }
    assert_eq!(size, Value::Integer(1));
    srv.finish();
}

/// A small deterministic generator (xorshift64*).

#[test]
fn malformed_input_never_panics() {
    let srv = Server::start(StoreMode::Shared);
    let seeds: &[&[u8]] = &[
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"SET a 1 EX 100\r\n",
        b"*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n10\r\n",
        b"*2\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n",
        b"MGET a b c\r\n",
        b"PING\r\n",
    ];
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for round in 0..200 {
        let input = mutated(&mut rng, round, seeds, 4, 6, b"\r\n*$:-+0 9\"'");
        let mut c = srv.connect();
        c.s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let _ = c.s.write_all(&input);
        let _ = c.s.shutdown(Shutdown::Write);
        let mut sink = Vec::new();
        let _ = c.s.read_to_end(&mut sink);
    }
    let mut c = srv.connect();
    assert_eq!(c.cmd(&["PING"]), simple("PONG"));
    srv.finish();
}

#[test]
fn redis_cli_session() {
    let have = std::process::Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        println!("note: redis-cli not on PATH, skipping (apt-get install redis-tools)");
        return;
    }
    let srv = Server::start(StoreMode::Shared);
    let script = "PING\nSET greeting hello\nGET greeting\nINCR hits\nINCR hits\n\
                  MSET a 1 b 2\nMGET a b nope\nEXPIRE greeting 100\nTTL greeting\n\
                  DEL a b\nDBSIZE\nCOMMAND COUNT\n";
    let mut child = std::process::Command::new("redis-cli")
        .args([
            "-h",
            &srv.addr.ip().to_string(),
            "-p",
            &srv.addr.port().to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("redis-cli finishes");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // TTL may read 99 if a second boundary passed.
    let lines: Vec<&str> = text
        .lines()
        .map(|l| if l == "99" { "100" } else { l })
        .collect();
    // Without a TTY redis-cli prints raw values, one per line.
    let want_prefix = [
        "PONG", "OK", "hello", "1", "2", "OK", "1", "2", "", "1", "100", "2", "2",
    ];
    assert_eq!(&lines[..want_prefix.len()], &want_prefix[..], "{text}");
    let count: i64 = lines[want_prefix.len()].parse().expect("COMMAND COUNT");
    assert!(count > 10, "{text}");
    srv.finish();
}
