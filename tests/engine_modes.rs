//! Every engine mode and load balancer, over TCP and Unix sockets.
mod support;

use netloop::{Addr, Engine, Error, LoadBalancer, Mode};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::Duration;
use support::*;

fn start(mode: Mode, lb: LoadBalancer, loops: usize, addr: &str) -> (Engine, Recorder) {
    let rec = Recorder::default();
    let engine = engine_builder()
        .loops(loops)
        .mode(mode)
        .load_balancer(lb)
        .listen(addr)
        .start_with(rec.clone())
        .unwrap();
    (engine, rec)
}

/// Opens `n` TCP clients, round-trips messages on each, checks counts, closes them.
fn exercise_tcp(engine: &Engine, n: usize) -> Vec<usize> {
    let addr = engine.local_addr().clone();
    let mut clients: Vec<_> = (0..n).map(|_| connect(&addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        for k in 0..5 {
            let msg = format!("client {i} message {k}");
            assert_eq!(round_trip(c, msg.as_bytes()), msg.as_bytes());
        }
    }
    let h = engine.handle();
    assert!(wait_until(Duration::from_secs(5), || h.connection_count() == n));
    let per_loop = h.loop_connection_counts();
    drop(clients);
    assert!(
        wait_until(Duration::from_secs(5), || h.connection_count() == 0),
        "connections not released"
    );
    per_loop
}

#[test]
fn single_loop() {
    let (engine, rec) = start(
        Mode::Single,
        LoadBalancer::RoundRobin,
        4,
        "tcp://127.0.0.1:0",
    );
    assert_eq!(engine.handle().loop_count(), 1, "single mode ignores loops");
    exercise_tcp(&engine, 10);
    engine.stop();
    assert_eq!(rec.count(|s| matches!(s, Seen::Open(_))), 10);
    assert_eq!(rec.closes().iter().filter(|r| *r == "peer").count(), 10);
}

#[test]
fn reactor_round_robin_balances_evenly() {
    let (engine, _rec) = start(Mode::Reactor, LoadBalancer::RoundRobin, 3, "127.0.0.1:0");
    let per_loop = exercise_tcp(&engine, 12);
    assert_eq!(per_loop, vec![4, 4, 4]);
    engine.stop();
}

#[test]
fn reactor_least_connections_fills_the_emptiest_loop() {
    let (engine, _rec) = start(
        Mode::Reactor,
        LoadBalancer::LeastConnections,
        2,
        "127.0.0.1:0",
    );
    let addr = engine.local_addr().clone();
    let h = engine.handle();
    let mut first: Vec<_> = (0..6).map(|_| connect(&addr)).collect();
    for c in first.iter_mut() {
        round_trip(c, b"x");
    }
    assert_eq!(h.loop_connection_counts(), vec![3, 3]);
    // Close four clients (round-robin-like ties put them on alternate loops, but
    // which loop keeps more does not matter): the next ones go where there is room.
    first.truncate(2);
    assert!(wait_until(Duration::from_secs(5), || h.connection_count() == 2));
    let counts = h.loop_connection_counts();
    let more: Vec<_> = (0..4).map(|_| connect(&addr)).collect();
    for mut c in more.iter() {
        std::io::Write::write_all(&mut c, b"y").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
    }
    let after = h.loop_connection_counts();
    assert_eq!(after.iter().sum::<usize>(), 6);
    // Least-connections evens out whatever imbalance the closes left.
    assert!(after[0].abs_diff(after[1]) <= 1, "{counts:?} -> {after:?}");
    engine.stop();
}

#[test]
fn reactor_source_hash_keeps_one_host_on_one_loop() {
    let (engine, _rec) = start(
        Mode::Reactor,
        LoadBalancer::SourceAddrHash,
        3,
        "127.0.0.1:0",
    );
    let per_loop = exercise_tcp(&engine, 9);
    // All clients come from 127.0.0.1: one loop gets them all.
    assert_eq!(
        per_loop.iter().filter(|&&c| c == 9).count(),
        1,
        "{per_loop:?}"
    );
    engine.stop();
}

#[test]
fn reuse_port_loops_each_listen() {
    let (engine, _rec) = start(Mode::ReusePort, LoadBalancer::RoundRobin, 2, "127.0.0.1:0");
    exercise_tcp(&engine, 16);
    engine.stop();
}

#[test]
fn shared_listener_with_exclusive_wakeups() {
    let (engine, _rec) = start(Mode::Shared, LoadBalancer::RoundRobin, 2, "127.0.0.1:0");
    exercise_tcp(&engine, 16);
    engine.stop();
}

#[test]
fn edge_triggered_with_small_read_budget_moves_large_transfers() {
    let rec = Recorder::default();
    let mut b = engine_builder()
        .loops(1)
        .mode(Mode::Single)
        .edge_triggered(true)
        .listen("127.0.0.1:0");
    b.options_mut().read_budget = 1;
    b.options_mut().read_buffer_size = 4096;
    let engine = b.start_with(rec).unwrap();
    let addr = engine.local_addr().clone();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut c = connect(&addr);
                let data: Vec<u8> = (0..1_000_000u32).map(|x| (x * 7 + i) as u8).collect();
                let mut w = c.try_clone().unwrap();
                let d2 = data.clone();
                let writer =
                    std::thread::spawn(move || std::io::Write::write_all(&mut w, &d2).unwrap());
                let mut back = vec![0u8; data.len()];
                c.read_exact(&mut back).unwrap();
                writer.join().unwrap();
                assert!(back == data, "echoed bytes differ");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    engine.stop();
}

fn unix_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("netloop-test-{}-{name}.sock", std::process::id()))
}

#[test]
fn unix_sockets_in_every_mode() {
    for (i, mode) in [Mode::Single, Mode::Reactor, Mode::ReusePort, Mode::Shared]
        .into_iter()
        .enumerate()
    {
        let path = unix_path(&format!("mode{i}"));
        let (engine, _rec) = start(
            mode,
            LoadBalancer::RoundRobin,
            2,
            &format!("unix://{}", path.display()),
        );
        assert_eq!(engine.local_addr(), &Addr::Unix(path.clone()));
        let mut clients: Vec<_> = (0..6)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        for c in clients.iter_mut() {
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            assert_eq!(round_trip(c, b"over unix"), b"over unix");
        }
        let h = engine.handle();
        assert!(
            wait_until(Duration::from_secs(5), || h.connection_count() == 6),
            "{mode:?}"
        );
        drop(clients);
        engine.stop();
        assert!(!path.exists(), "socket file removed on stop ({mode:?})");
    }
}

#[test]
fn several_listeners_on_one_engine() {
    let path = unix_path("multi");
    let rec = Recorder::default();
    let engine = engine_builder()
        .loops(2)
        .listen("127.0.0.1:0")
        .listen("tcp6://[::1]:0")
        .listen(format!("unix://{}", path.display()))
        .start_with(rec)
        .unwrap();
    assert_eq!(engine.local_addrs().len(), 3);
    let mut v4 = connect(&engine.local_addrs()[0]);
    assert_eq!(round_trip(&mut v4, b"v4"), b"v4");
    if let Ok(mut v6) = std::net::TcpStream::connect(engine.local_addrs()[1].as_tcp().unwrap()) {
        assert_eq!(round_trip(&mut v6, b"v6"), b"v6");
    }
    let mut u = UnixStream::connect(&path).unwrap();
    assert_eq!(round_trip(&mut u, b"unix"), b"unix");
    engine.stop();
}

#[test]
fn stop_closes_every_connection_and_runs_shutdown_hooks() {
    let (engine, rec) = start(Mode::Reactor, LoadBalancer::RoundRobin, 2, "127.0.0.1:0");
    let addr = engine.local_addr().clone();
    let mut clients: Vec<_> = (0..8).map(|_| connect(&addr)).collect();
    for c in clients.iter_mut() {
        round_trip(c, b"hi");
    }
    let h = engine.handle();
    assert!(h.stop(), "stop finished within its deadline");
    assert_eq!(rec.closes(), vec!["stopped".to_string(); 8]);
    assert_eq!(rec.count(|s| matches!(s, Seen::Shutdown(_))), 2);
    assert_eq!(rec.count(|s| matches!(s, Seen::Boot(_))), 2);
    for c in clients.iter_mut() {
        let mut b = [0u8; 1];
        assert_eq!(c.read(&mut b).unwrap_or(0), 0, "client sees the close");
    }
    assert!(
        std::net::TcpStream::connect(addr.as_tcp().unwrap()).is_err(),
        "listener closed"
    );
    engine.wait();
}

#[test]
fn ticker_runs_on_every_loop() {
    let rec = Recorder::default();
    let engine = engine_builder()
        .loops(2)
        .mode(Mode::Shared)
        .ticker(true)
        .listen("127.0.0.1:0")
        .start_with(rec.clone())
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        rec.count(|s| matches!(s, Seen::Tick(0))) >= 3
            && rec.count(|s| matches!(s, Seen::Tick(1))) >= 3
    }));
    engine.stop();
}

#[test]
fn bad_addresses_are_typed_errors_at_start() {
    let e = engine_builder()
        .listen("sctp://127.0.0.1:1")
        .start_with(Recorder::default())
        .unwrap_err();
    assert!(matches!(e, Error::UnsupportedScheme { .. }), "{e}");
    let e = engine_builder()
        .listen("tcp://nonsense")
        .start_with(Recorder::default())
        .unwrap_err();
    assert!(matches!(e, Error::InvalidAddress { .. }), "{e}");
    let e = engine_builder()
        .start_with(Recorder::default())
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    let e = engine_builder()
        .loops(0)
        .listen("127.0.0.1:0")
        .start_with(Recorder::default())
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidOption { name: "loops", .. }),
        "{e}"
    );
    // A port already in use is an I/O error, not a panic.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut b = engine_builder().listen(taken.local_addr().unwrap());
    b.options_mut().reuse_addr = false;
    assert!(matches!(
        b.start_with(Recorder::default()),
        Err(Error::Io(_))
    ));
}
