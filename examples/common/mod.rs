//! Shared bits of the examples: the conventional flags and signal handling.
#![allow(dead_code)]

pub mod deploy;

use netloop::{EngineHandle, LoadBalancer, Mode};

/// Parses `--mode`.
pub fn parse_mode(s: &str, loops: usize) -> Result<Mode, String> {
    match s {
        "auto" if loops == 1 => Ok(Mode::Single),
        "auto" | "reactor" => Ok(Mode::Reactor),
        "single" => Ok(Mode::Single),
        "reuseport" => Ok(Mode::ReusePort),
        "shared" => Ok(Mode::Shared),
        _ => Err(format!(
            "unknown mode {s:?} (single|reactor|reuseport|shared)"
        )),
    }
}

/// Parses `--lb`.
pub fn parse_lb(s: &str) -> Result<LoadBalancer, String> {
    match s {
        "round-robin" => Ok(LoadBalancer::RoundRobin),
        "least-connections" => Ok(LoadBalancer::LeastConnections),
        "source-hash" => Ok(LoadBalancer::SourceAddrHash),
        _ => Err(format!(
            "unknown load balancer {s:?} (round-robin|least-connections|source-hash)"
        )),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Stops the engine on the first SIGINT/SIGTERM; a second one exits at once.
pub fn stop_on_signals(handle: EngineHandle) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).expect("installing signal handlers");
    std::thread::spawn(move || {
        let mut seen = 0;
        for sig in signals.forever() {
            seen += 1;
            if seen > 1 {
                eprintln!("second signal {sig}: exiting now");
                std::process::exit(130);
            }
            eprintln!("signal {sig}: stopping");
            let h = handle.clone();
            std::thread::spawn(move || h.stop());
        }
    });
}

/// Runs `f` on the first SIGINT/SIGTERM (for engines other than the stream
/// [`netloop::Engine`]); a second signal exits at once.
pub fn on_signal(f: impl FnOnce() + Send + 'static) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).expect("installing signal handlers");
    std::thread::spawn(move || {
        let mut f = Some(f);
        for sig in signals.forever() {
            match f.take() {
                Some(f) => {
                    eprintln!("signal {sig}: stopping");
                    f();
                }
                None => std::process::exit(130),
            }
        }
    });
}

/// An echo handler: the in-process upstream of the examples' self-contained runs.
#[derive(Clone)]
pub struct Echo;

impl netloop::EventHandler for Echo {
    type State = ();
    fn on_traffic(&mut self, conn: &mut netloop::Conn<'_, ()>) -> netloop::Action {
        let n = conn.buffered();
        let ([a, b], mut w) = conn.split();
        let res = w.writev(&[a, b]);
        conn.discard(n);
        if res.is_ok() {
            netloop::Action::None
        } else {
            netloop::Action::Close
        }
    }
}

/// The server to talk to: `given`, or — when none is given — an [`Echo`] server
/// started in-process on an ephemeral port, returned as well so the caller keeps
/// it running (and stops it when done).
pub fn addr_or_local_echo(
    given: Option<&str>,
) -> Result<(String, Option<netloop::Engine>), netloop::Error> {
    match given {
        Some(addr) => Ok((addr.to_string(), None)),
        None => {
            let engine = netloop::Engine::builder()
                .loops(1)
                .listen("127.0.0.1:0")
                .start_with(Echo)?;
            Ok((engine.local_addr().to_string(), Some(engine)))
        }
    }
}
