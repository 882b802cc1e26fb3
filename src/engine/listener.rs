//! Listening sockets and the accept path, shared by the event loops and the main
//! reactor.
//!
//! # Running out of descriptors
//! `accept` failing with `EMFILE`/`ENFILE` (or `ENOBUFS`/`ENOMEM`) leaves the pending
//! connection in the kernel's queue, so a level-triggered listener would report it
//! again at once and the loop would spin. netloop instead takes the listener out of
//! the poller for a back-off period (10 ms, doubling up to 1 s while the condition
//! lasts), logs a rate-limited warning, keeps serving the connections it has, and
//! re-arms the listener when the period ends. Nothing stops the engine (compare
//! gnet#367); the pending clients wait in the backlog and are accepted as soon as
//! descriptors are free again.

use crate::addr::Addr;
use crate::driver::{Driver, Trigger};
use crate::engine::task_queue::Layered;
use crate::error::Error;
use crate::options::Options;
use crate::sys;
use crate::transport::LayerFactory;
use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A bound, listening socket. A Unix socket's path is removed when the last owner
/// drops it.
pub(crate) struct ListenSocket {
    pub(crate) fd: OwnedFd,
    pub(crate) addr: Addr,
    unlink: Option<PathBuf>,
    /// Transport layers every accepted connection gets (see `crate::transport`).
    pub(crate) layers: Arc<[Arc<dyn LayerFactory>]>,
    /// Inherited from another process (a supervisor, a service manager), which may
    /// hand the same socket to other processes: registered `EPOLLEXCLUSIVE` so one
    /// connection wakes one acceptor, not all of them.
    pub(crate) inherited: bool,
}

impl Drop for ListenSocket {
    fn drop(&mut self) {
        if let Some(p) = &self.unlink {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl ListenSocket {
    pub(crate) fn is_tcp(&self) -> bool {
        matches!(self.addr, Addr::Tcp(_))
    }

    /// This socket with transport layers for every connection it accepts.
    pub(crate) fn with_layers(mut self, layers: Arc<[Arc<dyn LayerFactory>]>) -> ListenSocket {
        self.layers = layers;
        self
    }

    /// What a connection accepted from `peer` carries to its loop: the listener's
    /// layers, if it has any.
    pub(crate) fn layered(&self, peer: socket2::SockAddr) -> Option<Box<Layered>> {
        (!self.layers.is_empty()).then(|| {
            Box::new(Layered {
                factories: self.layers.clone(),
                peer,
            })
        })
    }
}

/// Binds and listens on `addr` (non-blocking, close-on-exec).
pub(crate) fn bind(addr: &Addr, opts: &Options, reuse_port: bool) -> Result<ListenSocket, Error> {
    let ctx = |e: io::Error| Error::Io(io::Error::new(e.kind(), format!("{addr}: {e}")));
    match addr {
        Addr::Tcp(sa) => {
            let sock = Socket::new(
                Domain::for_address(*sa),
                Type::STREAM.nonblocking().cloexec(),
                None,
            )
            .map_err(ctx)?;
            if sa.is_ipv6() {
                sock.set_only_v6(opts.ipv6_only).map_err(ctx)?;
            }
            sock.set_reuse_address(opts.reuse_addr).map_err(ctx)?;
            if reuse_port || opts.reuse_port {
                sock.set_reuse_port(true).map_err(ctx)?;
            }
            sock.bind(&SockAddr::from(*sa)).map_err(ctx)?;
            sock.listen(opts.backlog).map_err(ctx)?;
            let local = sock
                .local_addr()
                .map_err(ctx)?
                .as_socket()
                .map(Addr::Tcp)
                .unwrap_or_else(|| addr.clone());
            Ok(ListenSocket {
                fd: sock.into(),
                addr: local,
                unlink: None,
                layers: Arc::new([]),
                inherited: false,
            })
        }
        Addr::Unix(path) => {
            // A socket file left behind by a previous run would make bind fail with
            // EADDRINUSE; remove it only if nobody is listening on it.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                if meta.file_type().is_socket()
                    && std::os::unix::net::UnixStream::connect(path).is_err()
                {
                    let _ = std::fs::remove_file(path);
                }
            }
            let sock = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)
                .map_err(ctx)?;
            sock.bind(&SockAddr::unix(path).map_err(ctx)?)
                .map_err(ctx)?;
            sock.listen(opts.backlog).map_err(ctx)?;
            Ok(ListenSocket {
                fd: sock.into(),
                addr: addr.clone(),
                unlink: Some(path.clone()),
                layers: Arc::new([]),
                inherited: false,
            })
        }
        Addr::Udp(_) | Addr::Unixgram(_) => Err(Error::WrongAddressKind {
            addr: addr.to_string(),
            kind: "datagram",
            hint: "serve it with netloop::udp::UdpEngine",
        }),
    }
}

/// Adopts a socket that is already bound and listening (inherited from a parent
/// or a service manager): checks that it is a listening stream socket, makes it
/// non-blocking and close-on-exec, and learns its address.
pub(crate) fn adopt(fd: OwnedFd, _opts: &Options) -> Result<ListenSocket, Error> {
    let sock = Socket::from(fd);
    let ctx = |what: &str, e: io::Error| {
        Error::Io(io::Error::new(
            e.kind(),
            format!("inherited listener: {what}: {e}"),
        ))
    };
    if sock.r#type().map_err(|e| ctx("socket type", e))? != Type::STREAM {
        return Err(Error::Config(
            "inherited listener is not a stream socket (serve datagram sockets with netloop::udp::UdpEngine)".into(),
        ));
    }
    if !sock.is_listener().map_err(|e| ctx("SO_ACCEPTCONN", e))? {
        return Err(Error::Config(
            "inherited socket is not listening (call listen(2) before handing it over)".into(),
        ));
    }
    sock.set_nonblocking(true)
        .map_err(|e| ctx("non-blocking", e))?;
    sock.set_cloexec(true)
        .map_err(|e| ctx("close-on-exec", e))?;
    let local = sock.local_addr().map_err(|e| ctx("local address", e))?;
    let addr = crate::conn::to_addr(local).map_err(|e| ctx("local address", e))?;
    Ok(ListenSocket {
        fd: sock.into(),
        addr,
        // The socket file belongs to whoever created it.
        unlink: None,
        layers: Arc::new([]),
        inherited: true,
    })
}

/// Applies the per-connection socket options to an accepted socket.
pub(crate) fn configure(fd: &OwnedFd, is_tcp: bool, opts: &Options) {
    let sock = socket2::SockRef::from(fd);
    let mut res = Ok(());
    if is_tcp {
        if opts.tcp_nodelay {
            res = res.and(sock.set_tcp_nodelay(true));
        }
        if let Some(idle) = opts.tcp_keepalive {
            res = res.and(sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle)));
        }
    }
    if let Some(n) = opts.socket_recv_buffer {
        res = res.and(sock.set_recv_buffer_size(n));
    }
    if let Some(n) = opts.socket_send_buffer {
        res = res.and(sock.set_send_buffer_size(n));
    }
    if let Err(e) = res {
        // The peer may already have reset; the first read or write will report it.
        tracing::debug!(error = %e, "setting socket options on an accepted connection failed");
    }
}

/// Errors after which accepting simply goes on: the connection was aborted
/// before it was accepted, a signal, a firewall's refusal.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO | libc::EPERM)
    )
}

/// What one accept attempt produced.
pub(crate) enum Accepted {
    /// A new connection.
    Conn(OwnedFd, SockAddr),
    /// Nothing pending (or the listener is paused).
    Done,
}

/// A listener registered with one poller, with its back-off state.
pub(crate) struct Listener {
    pub(crate) sock: Arc<ListenSocket>,
    pub(crate) token: u64,
    trigger: Trigger,
    /// While set, the listener is out of the poller until this instant.
    pub(crate) paused_until: Option<Instant>,
    backoff: Duration,
    last_warning: Option<Instant>,
    suppressed: u64,
}

impl Listener {
    /// Registers `sock` with `poller` under `token`.
    pub(crate) fn register(
        sock: Arc<ListenSocket>,
        token: u64,
        shared: bool,
        poller: &mut impl Driver,
    ) -> io::Result<Listener> {
        let trigger = if shared || sock.inherited {
            Trigger::Exclusive
        } else {
            Trigger::Level
        };
        poller.listen(sock.fd.as_raw_fd(), token, trigger)?;
        Ok(Listener {
            sock,
            token,
            trigger,
            paused_until: None,
            backoff: BACKOFF_MIN,
            last_warning: None,
            suppressed: 0,
        })
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.sock.fd.as_raw_fd()
    }

    /// Accepts one connection. Errors are handled here: transient ones are skipped,
    /// resource exhaustion pauses the listener (see the module docs).
    pub(crate) fn accept(&mut self, poller: &mut impl Driver) -> Accepted {
        if self.paused_until.is_some() {
            return Accepted::Done;
        }
        loop {
            match sys::accept(self.raw_fd()) {
                Ok((fd, peer)) => {
                    self.backoff = BACKOFF_MIN;
                    return Accepted::Conn(fd, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepted::Done,
                Err(e) if is_transient(&e) => continue,
                Err(e) => {
                    self.pause(poller, &e);
                    return Accepted::Done;
                }
            }
        }
    }

    /// An accept a completion driver ran failed with `e`: a transient error is
    /// skipped (the driver re-arms the accept), resource exhaustion pauses the
    /// listener as [`accept`](Self::accept) does.
    pub(crate) fn accept_failed(&mut self, e: io::Error, poller: &mut impl Driver) {
        if self.paused_until.is_none() && !is_transient(&e) {
            self.pause(poller, &e);
        }
    }

    fn pause(&mut self, poller: &mut impl Driver, e: &io::Error) {
        let now = Instant::now();
        if let Err(de) = poller.delete(self.raw_fd(), self.token) {
            tracing::error!(error = %de, "could not pause listener");
        }
        self.paused_until = Some(now + self.backoff);
        let exhausted = sys::is_resource_exhausted(e);
        if self
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            if exhausted {
                tracing::warn!(error = %e, listener = %self.sock.addr, backoff_ms = self.backoff.as_millis() as u64,
                    suppressed = self.suppressed, "accept: out of resources; pausing accepts, existing connections are still served");
            } else {
                tracing::error!(error = %e, listener = %self.sock.addr, backoff_ms = self.backoff.as_millis() as u64,
                    suppressed = self.suppressed, "accept failed; pausing accepts");
            }
            self.last_warning = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Re-arms a paused listener whose back-off has elapsed.
    pub(crate) fn maybe_resume(&mut self, now: Instant, poller: &mut impl Driver) {
        if self.paused_until.is_some_and(|t| t <= now) {
            match poller.listen(self.raw_fd(), self.token, self.trigger) {
                Ok(()) => self.paused_until = None,
                Err(e) => {
                    tracing::error!(error = %e, "could not resume listener");
                    self.paused_until = Some(now + BACKOFF_MAX);
                }
            }
        }
    }

    /// Stops accepting for good: takes the listener out of the poller, then
    /// accepts what the kernel already queued on it and returns those
    /// connections (to be served). The sweep matters when other pollers — other
    /// processes — wait on the same socket with `EPOLLEXCLUSIVE`: the wake-up
    /// for a queued connection may have gone to this poller alone, and nobody
    /// else would be woken for it until the next connection arrives.
    pub(crate) fn close_and_sweep(&mut self, poller: &mut impl Driver) -> Vec<(OwnedFd, SockAddr)> {
        /// Bound on the sweep (a listen backlog is rarely longer).
        const MAX_SWEPT: usize = 4096;
        if self.paused_until.is_none() {
            if let Err(e) = poller.unlisten(self.raw_fd(), self.token) {
                tracing::error!(error = %e, "could not stop listening");
            }
        }
        self.paused_until = Some(crate::engine::timer::later(Instant::now(), Duration::MAX));
        // A completion driver's cancellation takes effect now, before the sweep
        // (what its accept took meanwhile still comes, see `Driver::unlisten`).
        if let Err(e) = poller.submit() {
            tracing::error!(error = %e, "could not submit the end of accepting");
        }
        let mut swept = Vec::new();
        while swept.len() < MAX_SWEPT {
            match sys::accept(self.raw_fd()) {
                Ok(conn) => swept.push(conn),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
                Err(_) => break, // WouldBlock: the queue is empty (or accepting fails: give up)
            }
        }
        swept
    }

    /// Removes the listener from the poller for good.
    pub(crate) fn deregister(&mut self, poller: &mut impl Driver) {
        if self.paused_until.is_none() {
            let _ = poller.delete(self.raw_fd(), self.token);
        }
        self.paused_until = Some(crate::engine::timer::later(Instant::now(), Duration::MAX));
    }
}
