//! The datagram engine: options, binding, loop threads, stopping.

use super::worker::{self, LoopStats, UdpSocketSetup};
use super::DatagramHandler;
use crate::addr::{Addr, ToAddr};
use crate::engine::threads::{self, join_all, Running};
use crate::error::{Error, Result};
use crate::options::Mode;
use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Options of a [`UdpEngine`], with documented defaults ([`UdpOptions::default`]).
#[derive(Clone, Debug)]
pub struct UdpOptions {
    /// Loops in [`Mode::ReusePort`] (one socket each). Default: the number of CPUs.
    pub loops: usize,
    /// [`Mode::ReusePort`] spreads datagrams over `loops` loops; any other mode runs
    /// one loop. Default: [`Mode::Single`].
    pub mode: Mode,
    /// Receive slot size: the largest datagram delivered whole. Larger ones are
    /// truncated and reported. Default: 65,536 bytes (any UDP datagram).
    pub datagram_size: usize,
    /// Datagrams per `recvmmsg`/`sendmmsg`. Default: 16. Memory per loop is about
    /// `2 × batch × datagram_size` (2 MiB with the defaults), allocated at start.
    pub batch: usize,
    /// Receive batches read per readiness event before the loop serves its other
    /// sockets. Default: 8.
    pub batches_per_wakeup: usize,
    /// `SO_RCVBUF`. Default: the kernel's.
    pub recv_buffer: Option<usize>,
    /// `SO_SNDBUF`. Default: the kernel's.
    pub send_buffer: Option<usize>,
    /// `SO_BROADCAST` (needed to send to broadcast addresses). Default: off.
    pub broadcast: bool,
    /// IPv4 multicast groups to join: `(group, interface address)`; use
    /// `Ipv4Addr::UNSPECIFIED` as the interface to let the kernel choose.
    /// Default: none.
    pub multicast_v4: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// How long [`UdpEngineHandle::stop`] waits for the loops. Default: 5 s.
    pub stop_timeout: Duration,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            loops: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            mode: Mode::Single,
            datagram_size: 65_536,
            batch: 16,
            batches_per_wakeup: 8,
            recv_buffer: None,
            send_buffer: None,
            broadcast: false,
            multicast_v4: Vec::new(),
            stop_timeout: Duration::from_secs(5),
        }
    }
}

impl UdpOptions {
    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.loops == 0 || self.loops > 1024 {
            return bad("loops must be between 1 and 1024");
        }
        if self.datagram_size == 0 || self.datagram_size > 1 << 20 {
            return bad("datagram_size must be between 1 byte and 1 MiB");
        }
        if self.batch == 0 || self.batch > 1024 {
            return bad("batch must be between 1 and 1024");
        }
        if self.batches_per_wakeup == 0 {
            return bad("batches_per_wakeup must be at least 1");
        }
        Ok(())
    }

    fn loop_count(&self) -> usize {
        if self.mode == Mode::ReusePort {
            self.loops
        } else {
            1
        }
    }
}

/// Datagram counters, summed over the loops (updated once per batch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams received truncated (larger than `datagram_size`).
    pub truncated: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Outgoing datagrams dropped (send buffer full, or refused for that destination).
    pub send_dropped: u64,
    /// Receive errors other than "nothing waiting".
    pub recv_errors: u64,
}

pub(crate) struct UdpShared {
    pub(crate) loops: Vec<Arc<LoopStats>>,
    pub(crate) stopping: AtomicBool,
    running: Arc<Running>,
    stop_timeout: Duration,
}

/// A `Send + Sync + Clone` handle to a running [`UdpEngine`].
#[derive(Clone)]
pub struct UdpEngineHandle {
    pub(crate) shared: Arc<UdpShared>,
}

impl std::fmt::Debug for UdpEngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpEngineHandle")
            .field("loops", &self.shared.loops.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl UdpEngineHandle {
    /// Stops the loops and waits up to [`UdpOptions::stop_timeout`] for them;
    /// returns whether they all exited. From a handler it only starts the stop.
    pub fn stop(&self) -> bool {
        self.signal_stop();
        if worker::IN_UDP_LOOP.with(|f| f.get()) {
            return false;
        }
        self.shared.running.wait_until(crate::engine::timer::later(
            std::time::Instant::now(),
            self.shared.stop_timeout,
        ))
    }

    pub(crate) fn signal_stop(&self) {
        if !self.shared.stopping.swap(true, Ordering::AcqRel) {
            for l in &self.shared.loops {
                l.wake();
            }
        }
    }

    /// Has a stop been requested?
    pub fn is_stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
    }

    /// Counters summed over all loops.
    ///
    /// Each loop publishes its counters once per receive batch, after the batch's
    /// replies have been sent: a client that has its reply may read counters that
    /// do not include its datagram yet (poll until they do).
    pub fn stats(&self) -> UdpStats {
        let mut s = UdpStats::default();
        for l in &self.shared.loops {
            let t = l.snapshot();
            s.received += t.received;
            s.truncated += t.truncated;
            s.sent += t.sent;
            s.send_dropped += t.send_dropped;
            s.recv_errors += t.recv_errors;
        }
        s
    }

    /// Counters of each loop.
    pub fn loop_stats(&self) -> Vec<UdpStats> {
        self.shared.loops.iter().map(|l| l.snapshot()).collect()
    }

    /// Number of loops.
    pub fn loop_count(&self) -> usize {
        self.shared.loops.len()
    }
}

/// A running datagram engine. Dropping it stops it.
///
/// ```no_run
/// use netloop::udp::{Datagram, DatagramHandler, UdpEngine};
/// use netloop::{Action, Mode};
///
/// struct Echo;
/// impl DatagramHandler for Echo {
///     fn on_datagram(&mut self, d: &mut Datagram<'_>) -> Action {
///         let _ = d.reply_with_data();
///         Action::None
///     }
/// }
///
/// let engine = UdpEngine::builder()
///     .mode(Mode::ReusePort)
///     .loops(4)
///     .listen("udp://0.0.0.0:9000")
///     .start(|_loop| Echo)
///     .unwrap();
/// engine.wait();
/// ```
pub struct UdpEngine {
    handle: UdpEngineHandle,
    threads: Vec<JoinHandle<()>>,
    addrs: Vec<Addr>,
}

impl std::fmt::Debug for UdpEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpEngine")
            .field("addrs", &self.addrs)
            .finish()
    }
}

impl UdpEngine {
    /// Starts configuring a datagram engine.
    pub fn builder() -> UdpEngineBuilder {
        UdpEngineBuilder {
            opts: UdpOptions::default(),
            addrs: Vec::new(),
            err: None,
        }
    }
    /// The bound addresses (port 0 resolved), in the order given.
    pub fn local_addrs(&self) -> &[Addr] {
        &self.addrs
    }
    /// The first bound address.
    pub fn local_addr(&self) -> &Addr {
        &self.addrs[0]
    }
    /// A handle for other threads.
    pub fn handle(&self) -> UdpEngineHandle {
        self.handle.clone()
    }
    /// Counters summed over all loops.
    pub fn stats(&self) -> UdpStats {
        self.handle.stats()
    }
    /// Blocks until the engine has stopped.
    pub fn wait(mut self) {
        join_all(&mut self.threads);
    }
    /// Stops the engine and waits for its threads.
    pub fn stop(self) {
        self.handle.stop();
        self.wait();
    }
}

impl Drop for UdpEngine {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.handle.stop();
            join_all(&mut self.threads);
        }
    }
}

/// Configures and starts a [`UdpEngine`].
#[must_use = "a builder does nothing until started"]
pub struct UdpEngineBuilder {
    opts: UdpOptions,
    addrs: Vec<Addr>,
    err: Option<Error>,
}

impl std::fmt::Debug for UdpEngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpEngineBuilder")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl UdpEngineBuilder {
    /// Adds an address: `udp://`, `udp4://`, `udp6://` or `unixgram://` (a bare
    /// `HOST:PORT` or a `SocketAddr` is taken as UDP; a stream address such as
    /// `tcp://…` is refused with [`Error::WrongAddressKind`] by `start`). Several
    /// are allowed.
    pub fn listen(mut self, addr: impl ToAddr) -> Self {
        let res = addr.to_datagram_addr();
        match res {
            Ok(a) => self.addrs.push(a),
            Err(e) => {
                self.err.get_or_insert(e);
            }
        }
        self
    }
    /// Replaces all options.
    pub fn options(mut self, opts: UdpOptions) -> Self {
        self.opts = opts;
        self
    }
    /// The options, to change any field.
    pub fn options_mut(&mut self) -> &mut UdpOptions {
        &mut self.opts
    }
    /// Number of loops (with [`Mode::ReusePort`]).
    pub fn loops(mut self, n: usize) -> Self {
        self.opts.loops = n;
        self
    }
    /// [`Mode::ReusePort`] for several loops; anything else is one loop.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.opts.mode = mode;
        self
    }
    /// Receive slot size (see [`UdpOptions::datagram_size`]).
    pub fn datagram_size(mut self, n: usize) -> Self {
        self.opts.datagram_size = n;
        self
    }
    /// Datagrams per batch.
    pub fn batch(mut self, n: usize) -> Self {
        self.opts.batch = n;
        self
    }
    /// `SO_RCVBUF`.
    pub fn recv_buffer(mut self, n: usize) -> Self {
        self.opts.recv_buffer = Some(n);
        self
    }
    /// `SO_SNDBUF`.
    pub fn send_buffer(mut self, n: usize) -> Self {
        self.opts.send_buffer = Some(n);
        self
    }
    /// `SO_BROADCAST`.
    pub fn broadcast(mut self, on: bool) -> Self {
        self.opts.broadcast = on;
        self
    }
    /// Joins an IPv4 multicast group on an interface (by its address).
    pub fn join_multicast_v4(mut self, group: Ipv4Addr, interface: Ipv4Addr) -> Self {
        self.opts.multicast_v4.push((group, interface));
        self
    }

    /// Binds every address (so port 0 is resolved and errors are reported here),
    /// then starts the loops, each with a handler made by `factory(loop_index)` on
    /// the loop's thread.
    pub fn start<H, F>(self, factory: F) -> Result<UdpEngine>
    where
        H: DatagramHandler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        if let Some(e) = self.err {
            return Err(e);
        }
        let opts = Arc::new(self.opts);
        opts.validate()?;
        if self.addrs.is_empty() {
            return Err(Error::Config("no datagram address given".into()));
        }
        let n = opts.loop_count();
        let mut per_loop: Vec<Vec<UdpSocketSetup>> = (0..n).map(|_| Vec::new()).collect();
        let mut bound = Vec::new();
        for addr in &self.addrs {
            let reuse = n > 1 && matches!(addr, Addr::Udp(_));
            let first = bind(addr, &opts, reuse)?;
            let actual = first.addr.clone();
            bound.push(actual.clone());
            per_loop[0].push(first);
            if reuse {
                for l in per_loop.iter_mut().skip(1) {
                    l.push(bind(&actual, &opts, true)?);
                }
            }
        }
        let stats: Vec<Arc<LoopStats>> = (0..n)
            .map(|_| LoopStats::new().map(Arc::new))
            .collect::<io::Result<_>>()?;
        let shared = Arc::new(UdpShared {
            loops: stats.clone(),
            stopping: AtomicBool::new(false),
            running: Arc::default(),
            stop_timeout: opts.stop_timeout,
        });
        let handle = UdpEngineHandle { shared };
        let factory = Arc::new(factory);
        let (ready, started) = std::sync::mpsc::channel::<io::Result<()>>();
        let mut engine = UdpEngine {
            handle: handle.clone(),
            threads: Vec::new(),
            addrs: bound,
        };
        for (index, (sockets, st)) in per_loop.into_iter().zip(stats).enumerate() {
            let (h, opts, factory, ready) =
                (handle.clone(), opts.clone(), factory.clone(), ready.clone());
            let stopper = handle.clone();
            let t = threads::spawn(
                &handle.shared.running,
                format!("netloop-udp-{index}"),
                move || stopper.signal_stop(),
                move || worker::run(index, sockets, st, &h, &opts, ready, |i| factory(i)),
            )?; // on error, dropping `engine` stops the others
            engine.threads.push(t);
        }
        drop(ready);
        for _ in 0..n {
            match started.recv_timeout(Duration::from_secs(30)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Error::Io(e)),
                Err(_) => {
                    return Err(Error::Io(io::Error::other(
                        "a datagram loop exited during start-up",
                    )))
                }
            }
        }
        Ok(engine)
    }
}

/// Binds one datagram socket.
fn bind(addr: &Addr, opts: &UdpOptions, reuse_port: bool) -> Result<UdpSocketSetup> {
    let ctx = |e: io::Error| Error::Io(io::Error::new(e.kind(), format!("{addr}: {e}")));
    let common = |sock: &Socket| -> io::Result<()> {
        if let Some(n) = opts.recv_buffer {
            sock.set_recv_buffer_size(n)?;
        }
        if let Some(n) = opts.send_buffer {
            sock.set_send_buffer_size(n)?;
        }
        Ok(())
    };
    match addr {
        Addr::Udp(sa) => {
            let sock = Socket::new(
                Domain::for_address(*sa),
                Type::DGRAM.nonblocking().cloexec(),
                None,
            )
            .map_err(ctx)?;
            if sa.is_ipv6() {
                sock.set_only_v6(true).map_err(ctx)?;
            }
            sock.set_reuse_address(true).map_err(ctx)?;
            if reuse_port {
                sock.set_reuse_port(true).map_err(ctx)?;
            }
            common(&sock).map_err(ctx)?;
            if opts.broadcast {
                sock.set_broadcast(true).map_err(ctx)?;
            }
            for (group, iface) in &opts.multicast_v4 {
                if !sa.is_ipv4() {
                    return Err(Error::Config(format!(
                        "{addr}: IPv4 multicast groups need an IPv4 socket"
                    )));
                }
                sock.join_multicast_v4(group, iface).map_err(ctx)?;
            }
            sock.bind(&SockAddr::from(*sa)).map_err(ctx)?;
            let local = sock
                .local_addr()
                .map_err(ctx)?
                .as_socket()
                .map(Addr::Udp)
                .unwrap_or_else(|| addr.clone());
            Ok(UdpSocketSetup::new(sock.into(), local, None))
        }
        Addr::Unixgram(path) => {
            remove_stale(path);
            let sock = Socket::new(Domain::UNIX, Type::DGRAM.nonblocking().cloexec(), None)
                .map_err(ctx)?;
            common(&sock).map_err(ctx)?;
            sock.bind(&SockAddr::unix(path).map_err(ctx)?)
                .map_err(ctx)?;
            let fd: OwnedFd = sock.into();
            Ok(UdpSocketSetup::new(fd, addr.clone(), Some(path.clone())))
        }
        other => Err(Error::Config(format!(
            "{other} is a stream address: serve it with netloop::Engine"
        ))),
    }
}

/// Removes a Unix datagram socket file nobody is bound to any more.
fn remove_stale(path: &PathBuf) {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let alive = std::os::unix::net::UnixDatagram::unbound()
                .and_then(|s| s.connect(path))
                .is_ok();
            if !alive {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
