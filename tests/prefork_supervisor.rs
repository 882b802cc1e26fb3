//! The prefork supervisor, driven through its test program
//! (`examples/prefork_echo`, re-executed as the workers): restarts under load
//! lose nothing, a killed worker is replaced, SIGTERM drains, a failing new
//! generation leaves the old one serving, an upgraded binary on disk takes
//! over, a single process hands over to its successor, and socket activation
//! by `systemd-socket-activate` works. The HTTP example (`--workers`) restarts
//! under keep-alive load without an unanswered request.

mod support;
use support::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SIGHUP: i32 = libc::SIGHUP;
const SIGTERM: i32 = libc::SIGTERM;
const SIGKILL: i32 = libc::SIGKILL;
const LONG: Duration = Duration::from_secs(20);

fn supervisor(args: &[&str]) -> Served {
    let s = Served::example("prefork_echo", args);
    s.wait_line("supervisor pid", LONG)
        .unwrap_or_else(|| panic!("supervisor did not start: {:?}", s.lines()));
    s
}

/// Waits until generation `g` has `n` ready workers and the supervisor's
/// children are exactly those; returns their pids.
fn generation_serving(s: &Served, g: u64, n: usize) -> Vec<u32> {
    let ready = s
        .wait_lines(&format!("worker {g}."), n, LONG)
        .unwrap_or_else(|| panic!("generation {g} not ready: {:?}", s.lines()));
    let mut pids: Vec<u32> = ready
        .iter()
        .filter(|l| l.ends_with(" ready"))
        .filter_map(|l| l.split(" pid ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    pids.sort_unstable();
    assert_eq!(pids.len(), n, "{ready:?}");
    assert!(
        wait_until(LONG, || children(s.pid()) == pids),
        "children {:?} are not generation {g} {pids:?}: {:?}",
        children(s.pid()),
        s.lines()
    );
    pids
}

/// One echo exchange on a fresh connection: `len` bytes out, the same back.
fn echo_once(addr: SocketAddr, len: usize, seed: u64) -> Result<(), String> {
    let payload: Vec<u8> = (0..len)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64) % 251) as u8)
        .collect();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&payload).map_err(|e| format!("write: {e}"))?;
    let mut back = vec![0u8; len];
    s.read_exact(&mut back).map_err(|e| format!("read: {e}"))?;
    if back != payload {
        return Err("echo differs".into());
    }
    Ok(())
}

/// Client threads running exchanges until stopped; counts successes and
/// records every failure.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// One client's next exchange (it may keep a connection between calls).
type Exchange = Box<dyn FnMut() -> Result<(), String> + Send>;

impl Load {
    /// Echo clients: a fresh connection per exchange, 1 B to 32 KiB verified.
    fn start(addr: SocketAddr, clients: usize) -> Load {
        Load::with(clients, |c| {
            let mut rng = Rng(0x9e37_79b9 + c as u64);
            Box::new(move || echo_once(addr, 1 + rng.below(32 * 1024), rng.next()))
        })
    }

    /// `clients` threads, each running the exchanges `client(i)` makes.
    fn with(clients: usize, client: impl Fn(usize) -> Exchange) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|c| {
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                let mut exchange = client(c);
                std::thread::spawn(move || {
                    let end = Instant::now() + Duration::from_secs(120); // hard bound
                    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                        match exchange() {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => failures.lock().unwrap().push(e),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            threads,
        }
    }

    /// Stops the clients; returns (successes, failures).
    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("client thread");
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

/// Stops the supervisor with SIGTERM; checks it exits cleanly and leaves no
/// worker and no notify socket behind.
fn stop_clean(mut s: Served, every_pid: &[u32]) {
    let sup = s.pid();
    s.signal(SIGTERM);
    let status = s
        .wait_exit(LONG)
        .unwrap_or_else(|| panic!("supervisor did not exit: {:?}", s.lines()));
    assert!(status.success(), "{status}: {:?}", s.lines());
    for pid in every_pid {
        assert!(!alive(*pid), "worker {pid} outlived the supervisor");
    }
    let dirs = [std::env::temp_dir()]
        .into_iter()
        .chain(std::env::var_os("XDG_RUNTIME_DIR").map(Into::into));
    for dir in dirs {
        let prefix = format!("netloop-notify-{sup}-");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "notify socket left behind: {left:?}");
    }
}

/// A keep-alive HTTP client: `GET /plaintext` on one connection, answered
/// `Hello, World!`; a new connection after a response saying
/// `Connection: close` (a retiring worker's).
fn http_client(addr: SocketAddr) -> Exchange {
    let mut conn: Option<TcpStream> = None;
    Box::new(move || {
        let s = match &mut conn {
            Some(s) => s,
            None => {
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .map_err(|e| format!("connect: {e}"))?;
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                conn.insert(s)
            }
        };
        let res = http_exchange(s);
        if !matches!(res, Ok(true)) {
            conn = None;
        }
        res.map(|_| ())
    })
}

/// One request on `s`; whether the connection stays open.
fn http_exchange(s: &mut TcpStream) -> Result<bool, String> {
    s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: test\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(format!("closed before a response ({} bytes)", buf.len())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200 ") {
        return Err(format!("status: {head:?}"));
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no length: {head:?}"))?;
    while buf.len() < head_end + len {
        match s.read(&mut chunk) {
            Ok(0) => return Err("closed inside the body".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read body: {e}")),
        }
    }
    if &buf[head_end..] != b"Hello, World!" {
        return Err(format!(
            "body {:?}",
            String::from_utf8_lossy(&buf[head_end..])
        ));
    }
    Ok(!head.contains("connection: close"))
}

/// Runs `program --workers 2` under `clients` (given the address) for about
/// `seconds`, with SIGHUP every 2 s: every exchange succeeds, each generation
/// has new pids, the supervisor's descriptors stay put, nothing outlives it.
fn restart_under_load(
    program: &str,
    sharing: &str,
    seconds: u64,
    clients: impl FnOnce(SocketAddr) -> Load,
) {
    let s = Served::example(
        program,
        &[
            "--addr",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--sharing",
            sharing,
        ],
    );
    s.wait_line("supervisor pid", LONG)
        .unwrap_or_else(|| panic!("supervisor did not start: {:?}", s.lines()));
    let addr = s.listening_addr();
    let mut pids = generation_serving(&s, 1, 2);
    let mut every_pid = pids.clone();
    let fds = fd_count_of(s.pid());
    let load = clients(addr);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut generation = 1;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(2));
        s.signal(SIGHUP);
        generation += 1;
        let new = generation_serving(&s, generation, 2);
        assert!(
            new.iter().all(|p| !pids.contains(p)),
            "generation {generation} reuses pids: {pids:?} -> {new:?}"
        );
        every_pid.extend(&new);
        pids = new;
    }
    let (ok, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} of {} exchanges failed during {} restarts: {:?}",
        failures.len(),
        ok + failures.len() as u64,
        generation - 1,
        &failures[..failures.len().min(10)]
    );
    assert!(ok > 0, "the load ran no exchange");
    assert_eq!(
        fd_count_of(s.pid()),
        fds,
        "supervisor descriptors grew across restarts"
    );
    eprintln!(
        "{program} {sharing}: {ok} exchanges, {} restarts, no failure",
        generation - 1
    );
    stop_clean(s, &every_pid);
}

#[test]
fn restarts_under_load_lose_nothing_shared() {
    restart_under_load("prefork_echo", "shared", 15, |a| Load::start(a, 4));
}

/// The HTTP example under keep-alive clients: a retiring worker answers with
/// `Connection: close`, so clients move over between requests.
#[test]
fn http_restarts_under_load_answer_every_request() {
    restart_under_load("http", "shared", 15, |a| Load::with(4, |_| http_client(a)));
}

#[test]
fn restarts_under_load_lose_nothing_reuseport() {
    restart_under_load("prefork_echo", "reuseport", 6, |a| Load::start(a, 4));
}

#[test]
fn killed_worker_is_replaced() {
    let s = supervisor(&["--addr", "127.0.0.1:0", "--workers", "2"]);
    let addr = s.listening_addr();
    let pids = generation_serving(&s, 1, 2);
    signal_pid(pids[0], SIGKILL);
    assert!(
        wait_until(LONG, || {
            let now = children(s.pid());
            now.len() == 2 && now.contains(&pids[1]) && !now.contains(&pids[0])
        }),
        "no replacement: {:?} {:?}",
        children(s.pid()),
        s.lines()
    );
    let now = children(s.pid());
    echo_once(addr, 1000, 1).unwrap();
    stop_clean(s, &[pids.clone(), now].concat());
}

#[test]
fn sigterm_drains_open_connections() {
    let s = supervisor(&["--addr", "127.0.0.1:0", "--workers", "1"]);
    let addr = s.listening_addr();
    let pids = generation_serving(&s, 1, 1);
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(round_trip(&mut conn, b"before"), b"before");
    s.signal(SIGTERM);
    s.wait_line("worker 1.0", LONG);
    std::thread::sleep(Duration::from_millis(200));
    // The open connection is still served while the worker drains.
    assert_eq!(
        round_trip(&mut conn, b"during the drain"),
        b"during the drain"
    );
    assert!(alive(pids[0]), "the worker must wait for its connection");
    drop(conn);
    let mut s = s;
    let status = s.wait_exit(LONG).expect("supervisor exits after the drain");
    assert!(status.success(), "{status}");
    assert!(
        s.lines()
            .iter()
            .any(|l| l.contains("stopped (0 connections cut)")),
        "{:?}",
        s.lines()
    );
    assert!(!alive(pids[0]));
}

#[test]
fn failing_new_generation_leaves_the_old_one_serving() {
    let flag = std::env::temp_dir().join(format!("netloop-fail-{}", std::process::id()));
    let _ = std::fs::remove_file(&flag);
    let s = supervisor(&[
        "--addr",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--fail-if-exists",
        flag.to_str().unwrap(),
    ]);
    let addr = s.listening_addr();
    let pids = generation_serving(&s, 1, 2);
    std::fs::write(&flag, b"fail").unwrap();
    let load = Load::start(addr, 2);
    s.signal(SIGHUP);
    s.wait_line("failing at start-up", LONG)
        .unwrap_or_else(|| panic!("{:?}", s.lines()));
    // Generation 2 is abandoned: the old workers, alone, still serve.
    assert!(
        wait_until(LONG, || children(s.pid()) == pids),
        "{:?} {:?}",
        children(s.pid()),
        s.lines()
    );
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failures) = load.finish();
    assert!(failures.is_empty() && ok > 0, "{ok} ok, {failures:?}");
    // With the cause gone, the next SIGHUP succeeds (generation 3).
    std::fs::remove_file(&flag).unwrap();
    s.signal(SIGHUP);
    let new = generation_serving(&s, 3, 2);
    assert!(new.iter().all(|p| !pids.contains(p)));
    echo_once(addr, 5000, 3).unwrap();
    stop_clean(s, &[pids, new].concat());
}

#[test]
fn new_generation_runs_the_binary_now_on_disk() {
    // Run a copy, replace the copy on disk (as an upgrade does: new file,
    // rename over), restart: the new workers run the new file.
    let dir = std::env::temp_dir().join(format!("netloop-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("prefork_echo");
    std::fs::copy(example_binary("prefork_echo"), &bin).unwrap();
    let s = supervisor_at(&bin);
    let addr = s.listening_addr();
    let old = generation_serving(&s, 1, 2);
    let staged = dir.join("prefork_echo.new");
    std::fs::copy(&bin, &staged).unwrap();
    std::fs::rename(&staged, &bin).unwrap();
    for pid in &old {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(exe.to_string_lossy().ends_with("(deleted)"), "{exe:?}");
    }
    s.signal(SIGHUP);
    let new = generation_serving(&s, 2, 2);
    for pid in &new {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(exe, bin, "worker {pid} runs {exe:?}");
    }
    echo_once(addr, 100, 4).unwrap();
    stop_clean(s, &[old, new].concat());
    let _ = std::fs::remove_dir_all(&dir);
}

fn supervisor_at(bin: &std::path::Path) -> Served {
    let args = ["--addr", "127.0.0.1:0", "--workers", "2"];
    let mut cmd = std::process::Command::new(bin);
    cmd.args(args).args(backend_flag(&args));
    let s = Served::spawn(cmd);
    s.wait_line("supervisor pid", LONG)
        .unwrap_or_else(|| panic!("supervisor did not start: {:?}", s.lines()));
    s
}

#[test]
fn single_process_hands_over_to_its_successor() {
    let mut s = Served::example(
        "prefork_echo",
        &["--addr", "127.0.0.1:0", "--drain-ms", "3000"],
    );
    let addr = s.listening_addr();
    s.wait_line("server pid", LONG).unwrap();
    let load = Load::start(addr, 2);
    std::thread::sleep(Duration::from_millis(500));
    s.signal(SIGHUP);
    let line = s
        .wait_line("handed over to pid", LONG)
        .unwrap_or_else(|| panic!("{:?}", s.lines()));
    let successor: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let status = s
        .wait_exit(LONG)
        .expect("the predecessor exits after draining");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failures) = load.finish();
    assert!(failures.is_empty() && ok > 0, "{ok} ok, {failures:?}");
    assert!(alive(successor));
    echo_once(addr, 2000, 5).unwrap();
    signal_pid(successor, SIGTERM);
    assert!(
        wait_until(LONG, || !alive(successor)),
        "the successor did not stop"
    );
}

/// `systemd-socket-activate` binds the socket and starts the program with it:
/// as a supervisor (which hands it to its workers) and as a single process.
#[test]
fn socket_activation_by_systemd_socket_activate() {
    if !have_tool(
        "systemd-socket-activate",
        "socket_activation_by_systemd_socket_activate",
    ) {
        return;
    }
    for workers in ["2", "0"] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let bin = example_binary("prefork_echo");
        let mut cmd = std::process::Command::new("systemd-socket-activate");
        cmd.args(["-l", &listen])
            .arg(&bin)
            .args(["--workers", workers, "--addr", "127.0.0.1:1"])
            .args(backend_flag(&[]));
        let mut s = Served::spawn(cmd);
        let addr: SocketAddr = listen.parse().unwrap();
        s.wait_line("Listening on", LONG)
            .unwrap_or_else(|| panic!("{:?}", s.lines()));
        // The tool starts the program when the first connection arrives (it
        // waits in the socket's queue meanwhile), handing it the socket.
        echo_once(addr, 3000, 6).unwrap_or_else(|e| panic!("{e}: {:?}", s.lines()));
        s.wait_line("ready", LONG)
            .unwrap_or_else(|| panic!("{:?}", s.lines()));
        if workers == "2" {
            assert_eq!(s.wait_lines("ready", 2, LONG).map(|v| v.len()), Some(2));
            // The supervisor served the inherited socket, not --addr.
            assert_eq!(s.listening_addr(), addr, "{:?}", s.lines());
        }
        s.signal(SIGTERM);
        let status = s.wait_exit(LONG).expect("exits on SIGTERM");
        assert!(status.success(), "{status}: {:?}", s.lines());
    }
}
