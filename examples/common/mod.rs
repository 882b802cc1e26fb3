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

/// The TLS flags of the servers (`echo`, `http`, `redis`). TLS itself needs the
/// crate's `tls` feature (`cargo run --features tls --example ...`); built
/// without it, the flags are refused with a message saying so.
#[derive(clap::Args, Debug, Default)]
pub struct TlsArgs {
    /// Serve TLS with this certificate chain (PEM), with --tls-key
    /// (needs `--features tls`).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve TLS with a self-signed certificate for localhost and 127.0.0.1,
    /// generated at start; its PEM is written to a file whose path is printed
    /// (for `curl --cacert`). Needs `--features tls`.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: bool,
}

impl TlsArgs {
    /// The listener for `addr`: TLS when a certificate was given (a `tls://`
    /// address needs one), offering `alpn`.
    pub fn listen_config(
        &self,
        addr: &str,
        alpn: &[&str],
    ) -> Result<netloop::ListenConfig, Box<dyn std::error::Error>> {
        self.secure(netloop::ListenConfig::new(addr), addr, alpn)
    }

    /// Adds TLS to `config` (a listener for `addr`, or one inherited for it) when
    /// a certificate was given; a `tls://` address needs one.
    pub fn secure(
        &self,
        config: netloop::ListenConfig,
        addr: &str,
        alpn: &[&str],
    ) -> Result<netloop::ListenConfig, Box<dyn std::error::Error>> {
        if self.tls_cert.is_none() && !self.tls_self_signed {
            if addr
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("tls://"))
            {
                return Err(
                    "a tls:// address needs --tls-cert/--tls-key or --tls-self-signed".into(),
                );
            }
            return Ok(config);
        }
        #[cfg(feature = "tls")]
        {
            use netloop::tls::{Identity, ServerConfigBuilder};
            let identity = match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Identity::from_pem_files(cert, key)?,
                _ => {
                    let pair = Identity::self_signed(&["localhost", "127.0.0.1"])?;
                    let path = std::env::temp_dir()
                        .join(format!("netloop-self-signed-{}.pem", std::process::id()));
                    std::fs::write(&path, &pair.cert_pem)?;
                    println!("self-signed certificate: {}", path.display());
                    pair.identity
                }
            };
            let server = ServerConfigBuilder::new(identity).alpn(alpn).build()?;
            Ok(config.tls(server))
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = alpn;
            Err("TLS needs the `tls` feature: cargo run --features tls --example ...".into())
        }
    }
}
