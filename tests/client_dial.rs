//! Outgoing connections: dial TCP and Unix, adopt, initial state, and the faults:
//! refused, timeout against a full backlog, engine stopping with a dial pending.
//!
//! Every test takes `serial()`: the leak checks count the process's descriptors, so no
//! other test of this file may open or close any meanwhile.
mod support;

use netloop::{
    Action, Client, CloseReason, Conn, DialOptions, Engine, Error, EventHandler, LoopInfo, Mode,
};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// Client-side handler: records opens (with their initial tag), bytes, closes.
#[derive(Clone, Default)]
struct Probe {
    opened: Arc<Mutex<Vec<u32>>>,
    received: Arc<Mutex<Vec<u8>>>,
    closed: Arc<Mutex<Vec<String>>>,
}

impl EventHandler for Probe {
    type State = u32;
    fn on_open(&mut self, conn: &mut Conn<'_, u32>) -> Action {
        self.opened.lock().unwrap().push(*conn.state());
        if *conn.state() == 7 {
            let _ = conn.write(b"greeting from 7|");
        }
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, u32>) -> Action {
        let n = conn.buffered();
        let data = conn.next(n).unwrap().to_vec();
        self.received.lock().unwrap().extend_from_slice(&data);
        Action::None
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, u32>, reason: &CloseReason) {
        self.closed.lock().unwrap().push(reason_name(reason));
    }
}

fn echo_server() -> Engine {
    engine_builder()
        .loops(1)
        .mode(Mode::Single)
        .listen("127.0.0.1:0")
        .start_with(Recorder::default())
        .unwrap()
}

fn client(p: &Probe) -> Client<u32> {
    engine_builder()
        .loops(2)
        .start_client_with(p.clone())
        .unwrap()
}

fn timeout<S>() -> DialOptions<S> {
    DialOptions::new().timeout(Duration::from_secs(5))
}

#[test]
fn dial_tcp_with_state_write_and_close() {
    let _serial = serial();
    let server = echo_server();
    let p = Probe::default();
    let c = client(&p);
    let conn = c
        .dial_blocking(server.local_addr(), timeout().state(7u32))
        .unwrap();
    assert_eq!(*p.opened.lock().unwrap(), vec![7]);
    let _ = conn.async_write(b"and more".to_vec(), None);
    let want = b"greeting from 7|and more".to_vec();
    assert!(wait_until(Duration::from_secs(5), || *p
        .received
        .lock()
        .unwrap()
        == want));
    assert_eq!(c.connection_count(), 1);
    conn.close().unwrap();
    assert!(wait_until(Duration::from_secs(5), || p
        .closed
        .lock()
        .unwrap()
        .len()
        == 1));
    assert_eq!(p.closed.lock().unwrap()[0], "handle");
    assert!(wait_until(Duration::from_secs(5), || c.connection_count() == 0));
    c.stop();
    server.stop();
}

#[test]
fn dial_unix_and_pick_the_loop() {
    let _serial = serial();
    let path = std::env::temp_dir().join(format!("netloop-dial-{}.sock", std::process::id()));
    let server = engine_builder()
        .loops(1)
        .mode(Mode::Single)
        .listen(format!("unix://{}", path.display()))
        .start_with(Recorder::default())
        .unwrap();
    let p = Probe::default();
    let c = client(&p);
    let conn = c
        .dial_blocking(format!("unix://{}", path.display()), timeout().on_loop(1))
        .unwrap();
    assert_eq!(conn.loop_index(), 1);
    let _ = conn.async_write(b"over unix".to_vec(), None);
    assert!(wait_until(Duration::from_secs(5), || {
        *p.received.lock().unwrap() == b"over unix"
    }));
    c.stop();
    server.stop();
    assert_eq!(p.closed.lock().unwrap().as_slice(), ["stopped"]);
}

#[test]
fn dials_without_a_loop_are_spread_round_robin() {
    let _serial = serial();
    let server = echo_server();
    let p = Probe::default();
    let c = client(&p);
    let loops: Vec<usize> = (0..8)
        .map(|_| {
            c.dial_blocking(server.local_addr(), timeout())
                .unwrap()
                .loop_index()
        })
        .collect();
    assert!(loops.contains(&0) && loops.contains(&1), "{loops:?}");
    c.stop();
    server.stop();
}

#[test]
fn a_server_engine_dials_too() {
    let _serial = serial();
    // The accepting engine itself dials (as a proxy does): client connections are
    // ordinary slab connections on its loops.
    let upstream = echo_server();
    let p = Probe::default();
    let engine = engine_builder()
        .loops(1)
        .mode(Mode::Single)
        .listen("127.0.0.1:0")
        .start_with(p.clone())
        .unwrap();
    let h = engine.handle();
    let conn = h.dial_blocking(upstream.local_addr(), timeout()).unwrap();
    let _ = conn.async_write(b"x".to_vec(), None);
    assert!(wait_until(Duration::from_secs(5), || *p
        .received
        .lock()
        .unwrap()
        == b"x"));
    assert_eq!(h.connection_count(), 1);
    engine.stop();
    upstream.stop();
}

#[test]
fn refused_reaches_the_callback_and_leaks_nothing() {
    let _serial = serial();
    let p = Probe::default();
    let c = client(&p);
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let before = fd_count();
    for _ in 0..20 {
        let res = c.dial_blocking(addr, timeout());
        match res {
            Err(Error::Connect { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    // The async form: the callback runs exactly once.
    let (tx, rx) = mpsc::channel();
    c.dial(addr, timeout(), move |r| tx.send(r.is_err()).unwrap());
    assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    assert!(
        p.opened.lock().unwrap().is_empty(),
        "no on_open for a failed dial"
    );
    assert_eq!(c.connection_count(), 0);
    assert!(
        wait_until(Duration::from_secs(2), || fd_count() == before),
        "fds: {} vs {before}",
        fd_count()
    );
    // Bad addresses and unsupported schemes also come back through the callback.
    assert!(matches!(
        c.dial_blocking("tcp://nonsense", timeout()),
        Err(Error::InvalidAddress { .. })
    ));
    assert!(matches!(
        c.dial_blocking("udp://127.0.0.1:9", timeout()),
        Err(Error::Connect { .. })
    ));
    c.stop();
}

/// A listener with backlog 1 that never accepts, filled until connects hang.
fn full_backlog_listener() -> (socket2::Socket, Vec<TcpStream>) {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(1).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fill = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fill.push(s),
            Err(_) => break, // the queue is full: SYNs are dropped now
        }
    }
    (l, fill)
}

#[test]
fn connect_timeout_against_a_full_backlog() {
    let _serial = serial();
    let p = Probe::default();
    let c = client(&p);
    let (listener, fill) = full_backlog_listener();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let before = fd_count();
    let t = Instant::now();
    let res = c.dial_blocking(addr, DialOptions::new().timeout(Duration::from_millis(300)));
    let took = t.elapsed();
    match res {
        Err(Error::ConnectTimeout { timeout, .. }) => {
            assert_eq!(timeout, Duration::from_millis(300))
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(wait_until(Duration::from_secs(2), || fd_count() == before));
    assert_eq!(c.connection_count(), 0);
    // Several at once, on both loops, with different deadlines.
    let (tx, rx) = mpsc::channel();
    for i in 0..6u64 {
        let tx = tx.clone();
        let t0 = Instant::now();
        c.dial(
            addr,
            DialOptions::new()
                .timeout(Duration::from_millis(100 + 50 * i))
                .on_loop(i as usize),
            move |r| {
                let timed_out = matches!(r, Err(Error::ConnectTimeout { .. }));
                tx.send((timed_out, t0.elapsed())).unwrap()
            },
        );
    }
    for _ in 0..6 {
        let (timed_out, took) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(timed_out);
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    assert!(wait_until(Duration::from_secs(2), || fd_count() == before));
    drop(fill);
    c.stop();
}

#[test]
fn stopping_fails_pending_dials() {
    let _serial = serial();
    let p = Probe::default();
    let c = client(&p);
    let (listener, fill) = full_backlog_listener();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let before = fd_count();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    c.dial(addr, DialOptions::new(), move |r| tx.send(r).unwrap()); // no timeout
    std::thread::sleep(Duration::from_millis(100));
    let h = c.handle();
    c.stop();
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Err(Error::EngineStopped)
    ));
    // After the stop, dials fail at once.
    h.dial(addr, DialOptions::new(), move |r| tx2.send(r).unwrap());
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Err(Error::EngineStopped)
    ));
    // The client's loops, wakers and the pending socket are all gone.
    assert!(fd_count() < before);
    drop(fill);
}

#[test]
fn adopt_a_std_stream_with_state() {
    let _serial = serial();
    let server = echo_server();
    let p = Probe::default();
    let c = client(&p);
    let s = TcpStream::connect(server.local_addr().as_tcp().unwrap()).unwrap();
    let (tx, rx) = mpsc::channel();
    c.adopt(s, DialOptions::new().state(7u32), move |r| {
        tx.send(r).unwrap()
    });
    let conn = rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    let _ = conn.async_write(b"adopted".to_vec(), None);
    let want = b"greeting from 7|adopted".to_vec();
    assert!(wait_until(Duration::from_secs(5), || *p
        .received
        .lock()
        .unwrap()
        == want));
    // A state of the wrong type does not compile (see the `Dialer` docs).
    c.stop();
    server.stop();
}

/// Dialing from inside a handler, on the handler's own loop.
#[derive(Clone, Default)]
struct SelfDialer {
    engine: Arc<Mutex<Option<netloop::EngineHandle>>>,
    result: Arc<Mutex<Option<bool>>>,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
}

impl EventHandler for SelfDialer {
    type State = ();
    fn on_boot(&mut self, info: &LoopInfo<'_>) -> Action {
        *self.engine.lock().unwrap() = Some(info.engine().clone());
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let n = conn.buffered();
        conn.discard(n);
        let h = self.engine.lock().unwrap().clone().unwrap();
        let up = self.upstream.lock().unwrap().unwrap();
        let result = self.result.clone();
        h.dial(up, timeout().on_loop(conn.loop_index()), move |r| {
            *result.lock().unwrap() = Some(r.is_ok())
        });
        Action::None
    }
}

#[test]
fn dial_from_a_handler_on_its_own_loop() {
    let _serial = serial();
    let upstream = echo_server();
    let d = SelfDialer::default();
    *d.upstream.lock().unwrap() = upstream.local_addr().as_tcp();
    let engine = engine_builder()
        .loops(1)
        .mode(Mode::Single)
        .listen("127.0.0.1:0")
        .start_with(d.clone())
        .unwrap();
    let mut s = connect(engine.local_addr());
    std::io::Write::write_all(&mut s, b"go").unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        *d.result.lock().unwrap() == Some(true)
    }));
    // dial_blocking on a loop thread would deadlock: it is refused instead.
    assert_eq!(engine.handle().connection_count(), 2);
    engine.stop();
    upstream.stop();
}
