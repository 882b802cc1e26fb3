//! Running an example server for real: the flags and the process life cycle
//! shared by `echo`, `http` and `prefork_echo`.
//!
//! * `--workers N` — prefork: this process becomes a [`Supervisor`] that binds
//!   the listening sockets and runs N copies of this program (re-executed) on
//!   them; SIGHUP starts a new generation and retires the old one without
//!   refusing a connection; SIGTERM/SIGINT drains everything.
//! * Without `--workers`, one process serves; SIGHUP hands its listening
//!   sockets to a fresh copy of this program (the same hand-down), then this
//!   one retires.
//! * Sockets handed down by a service manager (`LISTEN_FDS`, for example
//!   `systemd-socket-activate`) are served instead of `--addr`, and readiness
//!   and stopping are reported on `NOTIFY_SOCKET`.
//! * `--proxy-protocol [CIDR,...]` — the listeners take the PROXY protocol
//!   (v1/v2) from those sources (any source when none is given) and refuse
//!   connections from elsewhere.
//!
//! Retiring a process (SIGTERM, or after a hand-over) means: stop accepting,
//! let the open connections finish for up to `--drain-ms`, then close what is
//! left. Each process prints `<who> pid <pid> ready` once serving and
//! `<who> pid <pid> stopped (<n> connections cut)` when done, where `<who>` is
//! `worker <generation>.<slot>` or `server`.

use netloop::prefork::{self, Sharing, Supervisor};
use netloop::protocol::proxy::ProxyPolicy;
use netloop::{Engine, EngineBuilder, EngineHandle, ListenConfig};
use std::error::Error;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The deployment flags.
#[derive(clap::Args, Debug, Clone)]
pub struct DeployArgs {
    /// Prefork: run N worker processes of this program on the same listening
    /// sockets (SIGHUP restarts them without refusing a connection). 0 serves in
    /// this process (SIGHUP then hands the sockets to a fresh copy of it).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// How workers share a listening address: shared (one socket, exclusive
    /// wake-ups) | reuseport (one SO_REUSEPORT socket per worker slot).
    #[arg(long, default_value = "shared")]
    pub sharing: String,
    /// How long a retiring process lets its open connections finish (ms).
    #[arg(long, default_value_t = 10_000)]
    pub drain_ms: u64,
    /// Take the PROXY protocol (v1 or v2) from these proxies (comma-separated
    /// addresses or CIDRs; none given: from any source) and refuse connections
    /// from elsewhere.
    #[arg(long, value_name = "CIDR,...", num_args = 0..=1, default_missing_value = "")]
    pub proxy_protocol: Option<String>,
}

impl DeployArgs {
    /// The PROXY protocol policy `--proxy-protocol` asks for, if any.
    pub fn proxy_policy(&self) -> Result<Option<ProxyPolicy>, Box<dyn Error>> {
        let Some(list) = &self.proxy_protocol else {
            return Ok(None);
        };
        let mut policy = ProxyPolicy::new();
        for net in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            policy = policy.trust(net)?;
        }
        Ok(Some(policy))
    }

    fn drain(&self) -> Duration {
        Duration::from_millis(self.drain_ms)
    }
}

/// Who this process is, for its output lines.
pub fn who() -> String {
    match prefork::worker_id() {
        Some(w) => format!("worker {}.{}", w.generation, w.slot),
        None => "server".to_string(),
    }
}

/// Whether this process is to be the supervisor (`--workers` given, and not
/// itself one of the workers).
pub fn is_supervisor(args: &DeployArgs) -> bool {
    args.workers > 0 && prefork::worker_id().is_none()
}

/// Serves `addr` as the flags say: as a supervisor of workers, or as a server
/// (a worker, a socket-activated service, a successor, or a plain process) on
/// an engine that `start` starts from `builder` (with the listeners added).
/// Returns when the process is done.
pub fn serve(
    args: &DeployArgs,
    addr: &str,
    builder: EngineBuilder,
    start: impl FnOnce(EngineBuilder) -> netloop::Result<Engine>,
) -> Result<(), Box<dyn Error>> {
    if is_supervisor(args) {
        return supervise(args, addr);
    }
    let policy = args.proxy_policy()?;
    let inherited = prefork::inherited_listeners()?;
    let configs: Vec<ListenConfig> = if inherited.is_empty() {
        vec![ListenConfig::new(addr)]
    } else {
        inherited
            .into_iter()
            .map(|l| ListenConfig::inherited(l.into_fd()))
            .collect()
    };
    let mut builder = builder;
    for config in configs {
        builder = builder.listen_with(match &policy {
            Some(p) => config.proxy_protocol(p.clone()),
            None => config,
        });
    }
    let engine = start(builder)?;
    let who = who();
    if prefork::worker_id().is_none() {
        for a in engine.local_addrs() {
            println!(
                "listening on {}",
                a.to_string().trim_start_matches("tcp://")
            );
        }
    }
    prefork::notify_ready()?;
    println!("{who} pid {} ready", std::process::id());
    run_until_retired(args, &who, &engine);
    let cut = retire(&engine.handle(), args.drain());
    println!(
        "{who} pid {} stopped ({cut} connections cut)",
        std::process::id()
    );
    engine.wait();
    Ok(())
}

/// Runs the supervisor: binds `addr` (or adopts socket-activated sockets) and
/// runs `--workers` copies of this program until SIGTERM/SIGINT.
fn supervise(args: &DeployArgs, addr: &str) -> Result<(), Box<dyn Error>> {
    let sharing = match args.sharing.as_str() {
        "shared" => Sharing::Shared,
        "reuseport" => Sharing::ReusePort,
        s => return Err(format!("unknown sharing {s:?} (shared|reuseport)").into()),
    };
    args.proxy_policy()?; // a bad network fails here, not in every worker
    let sup = Supervisor::builder()
        .workers(args.workers)
        .sharing(sharing)
        .listen(addr)
        .ready_timeout(Duration::from_secs(10))
        // The workers' drain, and time to exit after it.
        .stop_timeout(args.drain() + Duration::from_secs(2))
        .backoff(Duration::from_millis(50), Duration::from_secs(2))
        .build()?;
    for a in sup.local_addrs() {
        println!(
            "listening on {}",
            a.to_string().trim_start_matches("tcp://")
        );
    }
    println!("supervisor pid {}", std::process::id());
    sup.run()?;
    println!("supervisor stopped");
    Ok(())
}

/// Serves until SIGTERM/SIGINT, a successful hand-over on SIGHUP (not in a
/// worker: its supervisor restarts it), or the engine stopping by itself.
fn run_until_retired(args: &DeployArgs, who: &str, engine: &Engine) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let (tx, rx) = mpsc::channel();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .expect("installing signal handlers");
    std::thread::spawn(move || {
        let mut stops = 0;
        for sig in signals.forever() {
            if sig != SIGHUP {
                stops += 1;
                if stops > 1 {
                    eprintln!("second signal {sig}: exiting now");
                    std::process::exit(130);
                }
            }
            if tx.send(sig).is_err() {
                return;
            }
        }
    });
    let handle = engine.handle();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(SIGHUP) if prefork::worker_id().is_some() => {} // the supervisor's to act on
            Ok(SIGHUP) => {
                if hand_over(engine, args.drain(), who) {
                    return;
                }
            }
            Ok(_) => return,
            Err(mpsc::RecvTimeoutError::Timeout) if handle.is_stopping() => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Hands the engine's listening sockets to a fresh copy of this program;
/// whether it took over (else this process serves on).
fn hand_over(engine: &Engine, drain: Duration, who: &str) -> bool {
    let names: Vec<String> = engine.local_addrs().iter().map(|a| a.to_string()).collect();
    let owned = match engine.listener_fds() {
        Ok(fds) => fds,
        Err(e) => {
            eprintln!("{who}: hand-over failed, serving on: {e}");
            return false;
        }
    };
    let fds: Vec<(BorrowedFd<'_>, &str)> = owned
        .iter()
        .map(|fd| fd.as_fd())
        .zip(names.iter().map(String::as_str))
        .collect();
    // The successor gets as long to start as this process will drain.
    match prefork::hand_over(&fds, drain.max(Duration::from_secs(10))) {
        Ok(pid) => {
            println!("{who} handed over to pid {pid}");
            true
        }
        Err(e) => {
            eprintln!("{who}: hand-over failed, serving on: {e}");
            false
        }
    }
}

/// Set once this process retires (see [`is_retiring`]).
static RETIRING: AtomicBool = AtomicBool::new(false);

/// Whether this process is retiring: it accepts no more connections, and
/// request/response protocols should close each connection after the
/// response in progress (HTTP: `Connection: close`), so clients move to the
/// processes that took over.
pub fn is_retiring() -> bool {
    RETIRING.load(Ordering::Relaxed)
}

/// Retires the engine: no more accepting, the open connections get up to
/// `drain` to finish, then the rest are closed. Returns how many were cut.
pub fn retire(handle: &EngineHandle, drain: Duration) -> usize {
    RETIRING.store(true, Ordering::Relaxed);
    let _ = prefork::notify_stopping();
    handle.stop_accepting();
    let deadline = Instant::now() + drain;
    while handle.connection_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let cut = handle.connection_count();
    handle.stop();
    cut
}
