//! The PROXY protocol layer end to end through the engine
//! (`ListenConfig::proxy_protocol`): v1 and v2 headers whole, split and one byte
//! at a time, the bytes after the header delivered to `on_traffic`, the
//! client's address as `Conn::peer_addr` (the proxy's as `socket_peer_addr`),
//! TLVs through `Conn::proxy_header`, LOCAL, and the refusals — untrusted
//! source, missing, malformed and over-long headers (closed with a logged
//! `CloseReason::Protocol`), a stalled header (the header timeout) — none of
//! which the handler ever hears of.

mod support;
use support::*;

use netloop::codec::{FrameConn, FrameHandler, Framed, LineCodec};
use netloop::protocol::proxy::{
    Command, ProxyHeader, ProxyPolicy, Untrusted, Version, PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY,
    V2_SIGNATURE,
};
use netloop::{Action, CloseReason, Conn, Engine, EventHandler, ListenConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Log lines of every engine in this test binary (a global subscriber: the
/// loops log from their own threads).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .try_init();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits for a log line containing every one of `needles`.
fn logged(needles: &[&str]) -> bool {
    wait_until(Duration::from_secs(5), || {
        String::from_utf8_lossy(&logs().lock().unwrap())
            .lines()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    })
}

/// What the handler saw of one connection.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Open {
        peer: String,
        socket_peer: String,
        header: Option<String>,
    },
    Data(Vec<u8>),
    Close(String),
}

/// Echoes, and records opens (with the addresses and header), data and closes.
#[derive(Clone, Default)]
struct Recording {
    events: Arc<Mutex<Vec<Event>>>,
}

/// A header summarised for assertions.
fn describe(h: &ProxyHeader) -> String {
    let alpn = h.alpn().map(|a| String::from_utf8_lossy(a).into_owned());
    format!(
        "{} {:?} dst={:?} alpn={:?} authority={:?}",
        h.version(),
        h.command(),
        h.destination(),
        alpn,
        h.authority()
    )
}

impl EventHandler for Recording {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let ev = Event::Open {
            peer: conn.peer_addr().unwrap().to_string(),
            socket_peer: conn.socket_peer_addr().unwrap().to_string(),
            header: conn.proxy_header().map(describe),
        };
        self.events.lock().unwrap().push(ev);
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let data = conn.peek_all().to_vec();
        conn.discard(data.len());
        // Recorded before the echo, which the test may be waiting for.
        self.events.lock().unwrap().push(Event::Data(data.clone()));
        let _ = conn.write(&data);
        Action::None
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        self.events
            .lock()
            .unwrap()
            .push(Event::Close(reason.to_string()));
    }
}

impl Recording {
    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
    fn opens(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Open { .. }))
            .count()
    }
    fn data(&self) -> Vec<u8> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                Event::Data(d) => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

fn start(policy: ProxyPolicy) -> (Engine, Recording) {
    logs();
    let rec = Recording::default();
    let engine = engine_builder()
        .loops(1)
        .listen_with(ListenConfig::new("127.0.0.1:0").proxy_protocol(policy))
        .start_with(rec.clone())
        .unwrap();
    (engine, rec)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn header(version: Version) -> Vec<u8> {
    let mut v = Vec::new();
    ProxyHeader::tcp(version, sa("203.0.113.7:51234"), sa("192.0.2.1:443"))
        .encode(&mut v)
        .unwrap();
    v
}

/// Reads exactly `n` bytes (10 s timeout).
fn read_n(c: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    c.read_exact(&mut v).unwrap();
    v
}

/// The server closed the connection without sending anything.
fn closed_silently(c: &mut TcpStream) {
    let (got, _) = read_to_end(c);
    assert!(got.is_empty(), "the server answered {got:?}");
}

#[test]
fn v1_header_then_data_in_one_segment() {
    let (engine, rec) = start(ProxyPolicy::new());
    let mut c = connect(&engine);
    let mut wire = header(Version::V1);
    wire.extend_from_slice(b"hello");
    c.write_all(&wire).unwrap();
    assert_eq!(read_n(&mut c, 5), b"hello");
    let me = c.local_addr().unwrap().to_string();
    assert_eq!(
        rec.events()[0],
        Event::Open {
            peer: "tcp://203.0.113.7:51234".into(),
            socket_peer: format!("tcp://{me}"),
            header: Some("v1 Proxy dst=Some(192.0.2.1:443) alpn=None authority=None".into()),
        }
    );
    // Later bytes pass straight through: the layer retired.
    assert_eq!(round_trip(&mut c, b" again"), b" again");
    assert_eq!(rec.data(), b"hello again");
    drop(c);
    assert!(wait_until(Duration::from_secs(5), || rec
        .events()
        .contains(&Event::Close("closed by peer".into()))));
    engine.stop();
}

#[test]
fn v2_header_with_tlvs_one_byte_at_a_time() {
    let (engine, rec) = start(ProxyPolicy::new());
    let mut wire = Vec::new();
    ProxyHeader::tcp(
        Version::V2,
        sa("[2001:db8::7]:40000"),
        sa("[2001:db8::1]:8443"),
    )
    .with_tlv(PP2_TYPE_ALPN, b"http/1.1")
    .unwrap()
    .with_tlv(PP2_TYPE_AUTHORITY, b"example.com")
    .unwrap()
    .encode(&mut wire)
    .unwrap();
    let mut c = connect(&engine);
    // Every byte in its own segment (TCP_NODELAY, a pause between writes); the
    // handler hears nothing until the last one.
    for (i, b) in wire.iter().enumerate() {
        c.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
        if i + 1 < wire.len() && i % 16 == 0 {
            assert_eq!(
                rec.opens(),
                0,
                "on_open after {} of {} bytes",
                i + 1,
                wire.len()
            );
        }
    }
    c.write_all(b"x").unwrap();
    assert_eq!(read_n(&mut c, 1), b"x");
    assert_eq!(
        rec.events()[0],
        Event::Open {
            peer: "tcp://[2001:db8::7]:40000".into(),
            socket_peer: format!("tcp://{}", c.local_addr().unwrap()),
            header: Some(
                "v2 Proxy dst=Some([2001:db8::1]:8443) alpn=Some(\"http/1.1\") \
                 authority=Some(\"example.com\")"
                    .into()
            ),
        }
    );
    engine.stop();
}

#[test]
fn split_headers_of_both_versions_deliver_the_bytes_after_them() {
    let (engine, rec) = start(ProxyPolicy::new());
    for version in [Version::V1, Version::V2] {
        let wire = header(version);
        // Every split point: the header's first part alone, then its rest with
        // the client's first bytes.
        for cut in 1..wire.len() {
            let mut c = connect(&engine);
            c.write_all(&wire[..cut]).unwrap();
            std::thread::sleep(Duration::from_millis(2));
            let mut rest = wire[cut..].to_vec();
            rest.extend_from_slice(format!("{version}/{cut}").as_bytes());
            c.write_all(&rest).unwrap();
            let want = format!("{version}/{cut}");
            assert_eq!(read_n(&mut c, want.len()), want.as_bytes());
        }
    }
    let opens = rec.events();
    let peers: Vec<&Event> = opens
        .iter()
        .filter(|e| matches!(e, Event::Open { peer, .. } if peer == "tcp://203.0.113.7:51234"))
        .collect();
    let splits = header(Version::V1).len() - 1 + header(Version::V2).len() - 1;
    assert_eq!(peers.len(), splits, "{opens:?}");
    engine.stop();
}

/// The open of a connection whose peer address is its socket's own (client
/// `c`), with `header` as [`describe`] gives it.
fn opened_as_itself(c: &TcpStream, header: Option<&str>) -> Event {
    let me = format!("tcp://{}", c.local_addr().unwrap());
    Event::Open {
        peer: me.clone(),
        socket_peer: me,
        header: header.map(Into::into),
    }
}

#[test]
fn local_command_keeps_the_socket_peer() {
    let (engine, rec) = start(ProxyPolicy::new());
    let mut c = connect(&engine);
    let mut wire = Vec::new();
    ProxyHeader::local().encode(&mut wire).unwrap();
    wire.extend_from_slice(b"ping");
    c.write_all(&wire).unwrap();
    assert_eq!(read_n(&mut c, 4), b"ping");
    assert_eq!(
        rec.events()[0],
        opened_as_itself(&c, Some("v2 Local dst=None alpn=None authority=None"))
    );
    engine.stop();
}

/// Connects from `from` (an address on the loopback network).
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&sa(&format!("{from}:0")).into()).unwrap();
    s.connect(&to.into()).unwrap();
    let s = TcpStream::from(s);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn untrusted_sources_are_refused_or_served_directly() {
    // Only 127.0.0.2 is a trusted proxy.
    let policy = ProxyPolicy::new().trust("127.0.0.2/32").unwrap();
    let (engine, rec) = start(policy.clone());
    let addr = tcp_addr(&engine);
    let mut c = connect_from("127.0.0.1", addr);
    let me = c.local_addr().unwrap().to_string();
    let _ = c.write_all(&header(Version::V1));
    closed_silently(&mut c);
    assert!(
        logged(&[
            "refused",
            &format!("connection from {me}, which is not a trusted proxy")
        ]),
        "{}",
        String::from_utf8_lossy(&logs().lock().unwrap())
    );
    // The trusted one is served.
    let mut p = connect_from("127.0.0.2", addr);
    let mut wire = header(Version::V2);
    wire.extend_from_slice(b"ok");
    p.write_all(&wire).unwrap();
    assert_eq!(read_n(&mut p, 2), b"ok");
    assert_eq!(rec.opens(), 1, "{:?}", rec.events());
    assert!(engine.handle().stats().total.closed.protocol >= 1);
    engine.stop();

    // Direct: an untrusted client is served without a header, and what looks
    // like one is its data (it cannot forge its address).
    let (engine, rec) = start(policy.untrusted(Untrusted::Direct));
    let mut c = connect_from("127.0.0.1", tcp_addr(&engine));
    let forged = header(Version::V1);
    assert_eq!(round_trip(&mut c, &forged), forged);
    assert_eq!(rec.events()[0], opened_as_itself(&c, None));
    engine.stop();
}

#[test]
fn missing_malformed_and_over_long_headers_close_with_a_logged_reason() {
    let (engine, rec) = start(ProxyPolicy::new());
    let mut too_long_v2 = V2_SIGNATURE.to_vec();
    too_long_v2.extend_from_slice(&[0x21, 0x11, 0x20, 0x00]); // 8192 bytes announced
    let cases: [(&[u8], &str); 4] = [
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "no PROXY protocol header: byte 0x47 at offset 0",
        ),
        (
            b"PROXY TCP4 203.0.113.999 192.0.2.1 1 2\r\n",
            "malformed PROXY v1 line",
        ),
        (
            b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "PROXY v1 line has no CRLF within 107 bytes",
        ),
        (&too_long_v2, "PROXY v2 header of 8208 bytes exceeds the limit of 4096"),
    ];
    for (wire, why) in cases {
        let mut c = connect(&engine);
        // Refused as soon as the bytes rule the header out: the rest of an
        // announced-but-too-long v2 header is never awaited.
        let t = Instant::now();
        c.write_all(wire).unwrap();
        closed_silently(&mut c);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{why}: {:?}",
            t.elapsed()
        );
        assert!(
            logged(&["connection closed", why]),
            "no log line with {why:?}: {}",
            String::from_utf8_lossy(&logs().lock().unwrap())
        );
    }
    assert!(wait_no_connections(
        &engine.handle(),
        Duration::from_secs(5)
    ));
    assert_eq!(engine.handle().stats().total.closed.protocol, 4);
    assert!(rec.events().is_empty(), "{:?}", rec.events());
    engine.stop();
}

#[test]
fn a_stalled_header_meets_the_header_timeout() {
    let (engine, rec) = start(ProxyPolicy::new().header_timeout(Duration::from_millis(300)));
    let mut c = connect(&engine);
    let t = Instant::now();
    c.write_all(&header(Version::V2)[..20]).unwrap();
    closed_silently(&mut c);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(wait_no_connections(
        &engine.handle(),
        Duration::from_secs(5)
    ));
    assert_eq!(engine.handle().stats().total.closed.timeout, 1);
    // A client that sends nothing at all meets it too.
    let mut idle = connect(&engine);
    closed_silently(&mut idle);
    assert!(rec.events().is_empty(), "{:?}", rec.events());
    // The handler's own deadline is not the header's: once past it, a
    // connection lives on.
    let mut ok = connect(&engine);
    let mut wire = header(Version::V1);
    wire.extend_from_slice(b"a");
    ok.write_all(&wire).unwrap();
    assert_eq!(read_n(&mut ok, 1), b"a");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(round_trip(&mut ok, b"b"), b"b");
    engine.stop();
}

#[test]
fn a_unix_listener_takes_headers_from_its_peers() {
    logs();
    let path = std::env::temp_dir().join(format!("netloop-proxy-{}.sock", std::process::id()));
    let rec = Recording::default();
    let engine = engine_builder()
        .loops(1)
        .listen_with(
            ListenConfig::new(format!("unix://{}", path.display()))
                .proxy_protocol(ProxyPolicy::new()),
        )
        .start_with(rec.clone())
        .unwrap();
    let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut wire = header(Version::V2);
    wire.extend_from_slice(b"unix");
    c.write_all(&wire).unwrap();
    let mut back = [0u8; 4];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"unix");
    assert!(
        matches!(&rec.events()[0], Event::Open { peer, .. } if peer == "tcp://203.0.113.7:51234"),
        "{:?}",
        rec.events()
    );
    engine.stop();
    let _ = std::fs::remove_file(&path);
}

/// Answers each line with the client's address as the framed adapter sees it.
#[derive(Clone)]
struct WhoAmI;

impl FrameHandler for WhoAmI {
    type State = ();
    fn on_frame(&mut self, conn: &mut FrameConn<'_, '_, ()>, _line: &[u8]) -> Action {
        let answer = format!(
            "{} via {} ({:?})",
            conn.peer_addr().unwrap(),
            conn.socket_peer_addr().unwrap(),
            conn.proxy_header().map(|h| h.command())
        );
        let _ = conn.send(answer.as_bytes());
        Action::None
    }
}

#[test]
fn framed_connections_see_the_header_too() {
    logs();
    let engine = engine_builder()
        .loops(1)
        .listen_with(ListenConfig::new("127.0.0.1:0").proxy_protocol(ProxyPolicy::new()))
        .start_with(Framed::new(LineCodec::new, WhoAmI))
        .unwrap();
    let mut c = connect(&engine);
    let mut wire = header(Version::V1);
    wire.extend_from_slice(b"who\n");
    c.write_all(&wire).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while b[0] != b'\n' {
        c.read_exact(&mut b).unwrap();
        line.push(b[0]);
    }
    let me = c.local_addr().unwrap();
    assert_eq!(
        String::from_utf8(line).unwrap(),
        format!(
            "tcp://203.0.113.7:51234 via tcp://{me} ({:?})\n",
            Some(Command::Proxy)
        )
    );
    engine.stop();
}
