//! Regression tests of the engine's public API: each one reproduces a sharp edge a
//! new user met (a panic on a huge duration, a silent success, a lost write, a
//! type checked only at run time) through the public API alone.

mod support;

use netloop::udp::{Datagram, DatagramHandler, UdpEngine};
use netloop::{
    Action, CloseReason, Conn, ConnHandle, DialOptions, Engine, Error, EventHandler, LoopInfo,
    Options,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// Echoes what it reads.
#[derive(Clone, Default)]
struct Echo;

impl EventHandler for Echo {
    type State = ();
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let n = conn.buffered();
        let ([a, b], mut w) = conn.split();
        let _ = w.writev(&[a, b]);
        conn.discard(n);
        Action::None
    }
}

fn one_loop() -> netloop::EngineBuilder {
    engine_builder().loops(1).listen("127.0.0.1:0")
}

// ----- writes -----

/// Answers the first bytes only after the client has reset the connection, and
/// records what its two writes returned.
#[derive(Clone)]
struct WriteAfterReset {
    got: mpsc::SyncSender<()>,
    go: Arc<Mutex<mpsc::Receiver<()>>>,
    errors: Arc<Mutex<Vec<Option<ErrorKind>>>>,
}

impl EventHandler for WriteAfterReset {
    type State = ();
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        conn.discard(conn.buffered());
        let _ = self.got.send(());
        // Blocks the loop on purpose: the client resets the connection meanwhile.
        let _ = self.go.lock().unwrap().recv_timeout(Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(50));
        // A readiness backend sends at once and reports the send's error; a
        // completion backend queues the bytes and the send's completion closes.
        let kind = conn.write(b"too late").err().map(|e| e.kind());
        self.errors.lock().unwrap().push(kind);
        Action::None
    }
}

/// The write path sends once: a send that fails reports its own error (the peer's
/// reset), where it used to be sent again and report the second error (a broken
/// pipe) instead.
#[test]
fn a_failed_write_reports_the_reset_not_a_second_error() {
    let (got_tx, got) = mpsc::sync_channel(1);
    let (go, go_rx) = mpsc::channel();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let h = WriteAfterReset {
        got: got_tx,
        go: Arc::new(Mutex::new(go_rx)),
        errors: errors.clone(),
    };
    let engine = one_loop().start_with(h).unwrap();
    let mut c = connect(&engine);
    c.write_all(b"x").unwrap();
    got.recv_timeout(Duration::from_secs(5)).unwrap();
    // Reset: linger 0 then close.
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    go.send(()).unwrap();
    assert!(wait_until(Duration::from_secs(5), || !errors
        .lock()
        .unwrap()
        .is_empty()));
    let seen = errors.lock().unwrap().clone();
    if engine.backend() == netloop::Backend::Epoll {
        assert_eq!(seen, [Some(ErrorKind::ConnectionReset)]);
    } else {
        assert_eq!(seen, [None], "queued under a completion backend");
    }
    assert!(wait_no_connections(
        &engine.handle(),
        Duration::from_secs(5)
    ));
    engine.stop();
}

/// Replies `bye` after calling `close()` in the same callback.
#[derive(Clone, Default)]
struct CloseThenWrite;

impl EventHandler for CloseThenWrite {
    type State = ();
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        conn.discard(conn.buffered());
        conn.close();
        conn.write(b"bye")
            .expect("a write after close() in the same callback");
        Action::None
    }
}

/// `close()` closes once the callback returns and what is queued has been sent:
/// bytes written after it in the same callback are sent too (as with
/// `FrameConn::close`), where they used to be dropped.
#[test]
fn close_then_write_in_the_same_callback_sends_the_write() {
    let engine = one_loop().start_with(CloseThenWrite).unwrap();
    let mut c = connect(&engine);
    c.write_all(b"hi").unwrap();
    let (got, clean) = read_to_end(&mut c);
    assert_eq!(got, b"bye");
    assert!(clean);
    engine.stop();
}

// ----- durations and sizes -----

/// Ticks with a delay too long to represent.
#[derive(Clone, Default)]
struct ForeverTicker;

impl EventHandler for ForeverTicker {
    type State = ();
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        Echo.on_traffic(conn)
    }
    fn on_tick(&mut self, _info: &LoopInfo<'_>) -> (Duration, Action) {
        (Duration::MAX, Action::None)
    }
}

/// Huge durations are accepted (saturating to "never") instead of panicking: a
/// drain or stop timeout, a tick delay, a dial timeout.
#[test]
fn huge_durations_are_accepted_not_panics() {
    // drain_timeout(MAX), then stop(): used to overflow an Instant.
    let engine = one_loop()
        .drain_timeout(Duration::MAX)
        .start_with(Echo)
        .unwrap();
    timed_round_trip(&engine, b"ping");
    assert!(engine.handle().stop());
    engine.wait();
    // stop_timeout(MAX), then stop_now().
    let engine = one_loop()
        .stop_timeout(Duration::MAX)
        .start_with(Echo)
        .unwrap();
    assert!(engine.handle().stop_now());
    engine.wait();
    // on_tick returning Duration::MAX used to kill the loop thread.
    let engine = one_loop().ticker(true).start_with(ForeverTicker).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    timed_round_trip(&engine, b"still serving");
    engine.stop();
    // A dial with a timeout of Duration::MAX.
    let server = one_loop().start_with(Echo).unwrap();
    let client = engine_builder().loops(1).start_client_with(Echo).unwrap();
    let conn = client
        .dial_blocking(
            server.local_addr(),
            DialOptions::new().timeout(Duration::MAX),
        )
        .unwrap();
    assert!(conn.is_open());
    client.stop();
    server.stop();
}

/// Every size option is bounded at `start` with a typed error, before anything is
/// allocated: `read_buffer_size = usize::MAX` used to pass `start` and then panic
/// the loop, `1 << 40` to abort the process.
#[test]
fn oversized_options_are_refused_by_start() {
    for size in [usize::MAX, 1 << 40, 100] {
        let e = one_loop()
            .read_buffer_size(size)
            .start_with(Echo)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidOption {
                    name: "read_buffer_size",
                    ..
                }
            ),
            "{size}: {e}"
        );
    }
    for (name, e) in [
        (
            "write_buffer_size",
            one_loop().write_buffer_size(usize::MAX).start_with(Echo),
        ),
        (
            "max_inbound_bytes",
            one_loop().max_inbound_bytes(usize::MAX).start_with(Echo),
        ),
        (
            "socket_recv_buffer",
            one_loop()
                .socket_recv_buffer(Some(usize::MAX))
                .start_with(Echo),
        ),
        (
            "tcp_keepalive",
            one_loop()
                .tcp_keepalive(Some(Duration::MAX))
                .start_with(Echo),
        ),
    ] {
        match e {
            Err(Error::InvalidOption { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// Options set with the builder's methods survive a later `options(...)`.
#[test]
fn builder_methods_apply_on_top_of_options() {
    let engine = engine_builder()
        .loops(1)
        .max_connections(1)
        .options(Options::default()) // used to discard the two calls above
        .listen("127.0.0.1:0")
        .start_with(Echo)
        .unwrap();
    assert_eq!(engine.handle().loop_count(), 1);
    let mut first = connect(&engine);
    assert_eq!(round_trip(&mut first, b"one"), b"one");
    // The second connection is over the limit: accepted and closed at once.
    let mut second = connect(&engine);
    let (got, _) = read_to_end(&mut second);
    assert!(got.is_empty());
    let h = engine.handle();
    assert!(wait_until(Duration::from_secs(5), || h.stats().rejected == 1));
    engine.stop();
}

// ----- start-up -----

/// A handler factory that panics on loop 1.
#[test]
fn a_panicking_handler_factory_fails_start() {
    let res = engine_builder().loops(2).listen("127.0.0.1:0").start(|i| {
        if i == 1 {
            panic!("no handler for loop {i}");
        }
        Echo
    });
    match res {
        Err(Error::Io(e)) => assert!(e.to_string().contains("no handler for loop 1"), "{e}"),
        other => panic!("start returned {other:?}"),
    }
}

// ----- dialing -----

/// Dials that name no loop go round-robin over each engine's own loops: two
/// clients in one process used to share one process-wide cursor, so each put all
/// its dials on one loop.
#[test]
fn each_engine_has_its_own_dial_cursor() {
    let server = one_loop().start_with(Echo).unwrap();
    let a = engine_builder().loops(2).start_client_with(Echo).unwrap();
    let b = engine_builder().loops(2).start_client_with(Echo).unwrap();
    for _ in 0..2 {
        for c in [&a, &b] {
            c.dial_blocking(server.local_addr(), DialOptions::new())
                .unwrap();
        }
    }
    assert_eq!(a.handle().loop_connection_counts(), [1, 1]);
    assert_eq!(b.handle().loop_connection_counts(), [1, 1]);
    a.stop();
    b.stop();
    server.stop();
}

// ----- half-closure -----

/// Replies from another thread, a while after the request.
#[derive(Clone)]
struct SlowReply {
    read_closed: Arc<Mutex<usize>>,
}

impl EventHandler for SlowReply {
    type State = ();
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let request = conn.peek_all().to_vec();
        conn.discard(request.len());
        let handle = conn.handle();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let mut reply = b"re: ".to_vec();
            reply.extend(request);
            let _ = handle.async_write(reply, None);
            let _ = handle.close();
        });
        Action::None
    }
    fn on_read_closed(&mut self, _conn: &mut Conn<'_, ()>) -> Action {
        *self.read_closed.lock().unwrap() += 1;
        Action::None // the reply is on its way: keep the connection
    }
}

fn half_close_round(allow: bool) -> (Vec<u8>, usize) {
    let read_closed = Arc::new(Mutex::new(0));
    let engine = one_loop()
        .allow_half_closure(allow)
        .start_with(SlowReply {
            read_closed: read_closed.clone(),
        })
        .unwrap();
    let mut c = connect(&engine);
    c.write_all(b"question").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (got, _) = read_to_end(&mut c);
    engine.stop();
    let n = *read_closed.lock().unwrap();
    (got, n)
}

/// With `allow_half_closure` the handler hears of the half-close and the reply a
/// worker computes still goes out; by default the connection closes once its
/// queue is empty (the documented default), before the reply exists.
#[test]
fn half_closure_keeps_the_connection_for_a_late_reply() {
    let (got, calls) = half_close_round(true);
    assert_eq!(got, b"re: question");
    assert_eq!(calls, 1);
    let (got, calls) = half_close_round(false);
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(calls, 0, "not told when the option is off");
}

// ----- lingering close -----

/// The answer to a rejected upload: large, so that most of it is still in the
/// server's kernel buffers when the connection closes.
const ANSWER: usize = 2 << 20;

/// Rejects an upload after its first bytes: answers, then closes.
#[derive(Clone, Default)]
struct Reject;

impl EventHandler for Reject {
    type State = ();
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        conn.discard(conn.buffered());
        let _ = conn.write(&vec![b'4'; ANSWER]);
        Action::Close
    }
}

/// The client uploads 8 MiB, then reads the answer.
fn upload_then_read(engine: &Engine) -> std::io::Result<usize> {
    let mut c = connect(engine);
    // The server stops taking the upload at some point; the rest may fail.
    let _ = c.write_all(&vec![b'u'; 8 << 20]);
    let mut got = Vec::new();
    c.read_to_end(&mut got)?;
    Ok(got.len())
}

/// A connection closed while the peer is still sending lingers: it keeps reading
/// (and dropping) the peer's bytes, sends its answer, shuts down its sending side
/// and waits for the peer's end of stream, so the peer reads the whole answer.
/// With lingering off, the kernel resets the connection when it closes with unread
/// bytes and drops the part of the answer not yet delivered.
#[test]
fn a_rejected_upload_reads_the_answer_not_a_reset() {
    let _serial = serial();
    let engine = one_loop().start_with(Reject).unwrap();
    for _ in 0..3 {
        assert_eq!(upload_then_read(&engine).expect("no reset"), ANSWER);
    }
    assert!(wait_no_connections(
        &engine.handle(),
        Duration::from_secs(5)
    ));
    engine.stop();

    let engine = one_loop()
        .linger_timeout(Duration::ZERO)
        .start_with(Reject)
        .unwrap();
    let lost = (0..3)
        .filter(|_| !matches!(upload_then_read(&engine), Ok(n) if n == ANSWER))
        .count();
    assert_eq!(lost, 3, "without lingering the answer is cut by a reset");
    engine.stop();
}

/// A lingering connection whose peer never closes is closed by the linger timeout.
#[test]
fn lingering_ends_by_its_timeout() {
    let closes = Recorder::default();
    #[derive(Clone)]
    struct CloseOnFirst(Recorder);
    impl EventHandler for CloseOnFirst {
        type State = ();
        fn on_traffic(&mut self, _conn: &mut Conn<'_, ()>) -> Action {
            Action::Close // leaves the bytes unread: the peer is still sending
        }
        fn on_close(&mut self, conn: &mut Conn<'_, ()>, reason: &CloseReason) {
            self.0.on_close(conn, reason);
        }
    }
    let engine = one_loop()
        .linger_timeout(Duration::from_millis(300))
        .start_with(CloseOnFirst(closes.clone()))
        .unwrap();
    let mut c = connect(&engine);
    c.write_all(&[1u8; 100]).unwrap();
    let t = Instant::now();
    // The server's side is shut down at once: end of stream for the client.
    let mut buf = [0u8; 16];
    assert_eq!(c.read(&mut buf).unwrap(), 0);
    assert!(wait_until(Duration::from_secs(5), || !closes
        .closes()
        .is_empty()));
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert_eq!(closes.closes(), ["local"]);
    engine.stop();
}

// ----- timers -----

/// Writes `tick N` on each timer, three times, then closes.
#[derive(Clone, Default)]
struct Ticker;

impl EventHandler for Ticker {
    type State = u32;
    fn on_open(&mut self, conn: &mut Conn<'_, u32>) -> Action {
        conn.set_timer(Some(Instant::now() + Duration::from_millis(20)));
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, u32>) -> Action {
        conn.discard(conn.buffered());
        Action::None
    }
    fn on_timer(&mut self, conn: &mut Conn<'_, u32>) -> Action {
        *conn.state_mut() += 1;
        let n = *conn.state();
        let _ = conn.write(format!("tick {n}\n").as_bytes());
        if n == 3 {
            return Action::Close;
        }
        conn.set_timer(Some(Instant::now() + Duration::from_millis(20)));
        Action::None
    }
}

/// A connection's timer calls `on_timer`, which can re-arm it or close.
#[test]
fn a_connection_timer_runs_on_timer() {
    let engine = one_loop().start_with(Ticker).unwrap();
    let mut c = connect(&engine);
    let (got, clean) = read_to_end(&mut c);
    assert_eq!(got, b"tick 1\ntick 2\ntick 3\n");
    assert!(clean);
    engine.stop();
}

// ----- handles -----

/// Handles compare by the connection they name and carry an engine-wide id.
#[test]
fn handles_have_identity() {
    let handles: Arc<Mutex<Vec<ConnHandle>>> = Arc::default();
    #[derive(Clone)]
    struct Keep(Arc<Mutex<Vec<ConnHandle>>>);
    impl EventHandler for Keep {
        type State = ();
        fn on_open(&mut self, conn: &mut Conn<'_, ()>) -> Action {
            let h = conn.handle();
            assert_eq!(h.id(), conn.id());
            assert_eq!(h, conn.handle());
            self.0.lock().unwrap().push(h);
            Action::None
        }
        fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
            Echo.on_traffic(conn)
        }
    }
    let engine = engine_builder()
        .loops(2)
        .listen("127.0.0.1:0")
        .start_with(Keep(handles.clone()))
        .unwrap();
    let clients: Vec<TcpStream> = (0..4).map(|_| connect(&engine)).collect();
    assert!(wait_until(Duration::from_secs(5), || handles
        .lock()
        .unwrap()
        .len()
        == 4));
    // The hash is the id, which never changes (clippy cannot know that).
    #[allow(clippy::mutable_key_type)]
    let set: std::collections::HashSet<ConnHandle> =
        handles.lock().unwrap().iter().cloned().collect();
    assert_eq!(set.len(), 4, "four distinct connections");
    drop(clients);
    engine.stop();
}

// ----- addresses -----

/// A UDP engine refuses a stream address instead of serving it as UDP.
#[test]
fn a_udp_engine_refuses_a_tcp_address() {
    #[derive(Clone)]
    struct Nothing;
    impl DatagramHandler for Nothing {
        fn on_datagram(&mut self, _d: &mut Datagram<'_>) -> Action {
            Action::None
        }
    }
    for addr in [
        "tcp://127.0.0.1:0",
        "tcp4://127.0.0.1:0",
        "unix:///tmp/x.sock",
    ] {
        let e = UdpEngine::builder()
            .listen(addr)
            .start(|_| Nothing)
            .unwrap_err();
        assert!(
            matches!(e, Error::WrongAddressKind { kind: "stream", .. }),
            "{addr}: {e}"
        );
    }
    // A bare HOST:PORT is still taken as UDP.
    let engine = UdpEngine::builder()
        .listen("127.0.0.1:0")
        .start(|_| Nothing)
        .unwrap();
    engine.stop();
}

/// An IPv6 wildcard listener also accepts IPv4 clients by default (like std and
/// Go); `ipv6_only` makes it IPv6-only.
#[test]
fn an_ipv6_wildcard_listener_is_dual_stack_by_default() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 on this machine");
        return;
    }
    let engine = engine_builder()
        .loops(1)
        .listen("[::]:0")
        .start_with(Echo)
        .unwrap();
    let port = engine.local_addr().as_tcp().unwrap().port();
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("IPv4 to a [::] listener");
    assert_eq!(round_trip(&mut c, b"v4"), b"v4");
    engine.stop();
    let engine = engine_builder()
        .loops(1)
        .ipv6_only(true)
        .listen("[::]:0")
        .start_with(Echo)
        .unwrap();
    let port = engine.local_addr().as_tcp().unwrap().port();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    engine.stop();
}

// ----- inherited listeners -----

/// An already-bound listening socket (as a parent process or a service manager
/// hands one over) is served as it is, its address learned from the socket; a
/// socket that is not a listening stream socket is refused with a clear error.
#[test]
fn an_inherited_listener_is_served() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let engine = engine_builder()
        .loops(2)
        .listener(std_listener)
        .start_with(Echo)
        .unwrap();
    assert_eq!(engine.local_addr().as_tcp(), Some(addr));
    assert_eq!(engine.listener_fds().unwrap().len(), 1);
    for _ in 0..4 {
        timed_round_trip(addr, b"inherited");
    }
    engine.stop();

    let not_listening =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let e = engine_builder()
        .listener(not_listening)
        .start_with(Echo)
        .unwrap_err();
    assert!(e.to_string().contains("not listening"), "{e}");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let e = engine_builder().listener(udp).start_with(Echo).unwrap_err();
    assert!(e.to_string().contains("not a stream socket"), "{e}");
}

/// `stop_accepting` retires an engine for a successor: its open connections
/// are served on, the listening socket stays open (a client connecting
/// meanwhile waits in its queue, refused by nobody), and another engine on the
/// same socket — the successor — serves what comes next. On the acceptor
/// thread (two loops) and in a loop (one).
#[test]
fn stop_accepting_leaves_the_socket_to_a_successor() {
    for loops in [1, 2] {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let for_successor = std_listener.try_clone().unwrap();
        let old = engine_builder()
            .loops(loops)
            .listener(std_listener)
            .start_with(Echo)
            .unwrap();
        let mut open = connect(addr);
        assert_eq!(round_trip(&mut open, b"before"), b"before");
        let handle = old.handle();
        assert!(handle.is_accepting());
        assert!(handle.stop_accepting(), "loops {loops}");
        assert!(!handle.is_accepting());
        assert!(handle.stop_accepting(), "idempotent");
        assert_eq!(round_trip(&mut open, b"served on"), b"served on");

        let mut waiting = connect(addr);
        waiting.write_all(b"queued").unwrap();
        waiting
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert!(
            waiting.read(&mut buf).is_err(),
            "loops {loops}: the retired engine accepted a new connection"
        );
        let new = engine_builder()
            .loops(loops)
            .listener(for_successor)
            .start_with(Echo)
            .unwrap();
        waiting
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        waiting.read_exact(&mut buf[..6]).unwrap();
        assert_eq!(&buf[..6], b"queued");
        assert_eq!(handle.connection_count(), 1, "loops {loops}");
        drop(open);
        assert!(wait_until(Duration::from_secs(10), || handle
            .connection_count()
            == 0));
        old.stop();
        assert_eq!(round_trip(&mut waiting, b"after"), b"after");
        new.stop();
    }
}

/// Formats its answer straight into the connection with `write!` (io::Write on Writer).
#[derive(Clone)]
struct Formatter;

impl EventHandler for Formatter {
    type State = ();
    fn on_traffic(&mut self, conn: &mut netloop::Conn<'_, ()>) -> Action {
        let n = conn.buffered();
        let ([a, b], mut w) = conn.split();
        let total = a.len() + b.len();
        let ok = write!(w, "{total} bytes: ").is_ok()
            && w.write_vectored(&[std::io::IoSlice::new(a), std::io::IoSlice::new(b)])
                .is_ok_and(|k| k == total)
            && w.write_all(b"\n").is_ok()
            && w.flush().is_ok();
        conn.discard(n);
        if ok {
            Action::None
        } else {
            Action::Close
        }
    }
}

#[test]
fn writer_is_an_io_write() {
    let engine = engine_builder()
        .loops(1)
        .listen("127.0.0.1:0")
        .start_with(Formatter)
        .unwrap();
    let mut c = connect(engine.local_addr());
    c.write_all(b"hello").unwrap();
    let mut back = [0u8; 15];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"5 bytes: hello\n");
    engine.stop();
}
