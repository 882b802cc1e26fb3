//! The served side of the hand-down: adopting the listening sockets passed by
//! a supervisor or a service manager (`LISTEN_FDS`), and telling it how things
//! go (`sd_notify`: `READY=1`, `STOPPING=1`, ...). The same calls work under
//! netloop's [`Supervisor`](super::Supervisor), systemd socket units,
//! `systemd-socket-activate`, and a predecessor's [`hand_over`](super::hand_over).

use crate::addr::Addr;
use crate::error::Error;
use socket2::{Domain, Socket, Type};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Environment variable naming a prefork worker's generation and slot
/// (`<generation>.<slot>`); set by the supervisor, absent elsewhere.
pub const WORKER_ENV: &str = "NETLOOP_PREFORK_WORKER";

/// Which worker this process is, when a [`Supervisor`](super::Supervisor) started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerId {
    /// The generation (1 at start, +1 for each restart by SIGHUP).
    pub generation: u64,
    /// The worker's index within its generation (`0..workers`).
    pub slot: usize,
}

/// `Some` in a process started by a netloop supervisor.
pub fn worker_id() -> Option<WorkerId> {
    let v = std::env::var(WORKER_ENV).ok()?;
    let (g, s) = v.split_once('.')?;
    Some(WorkerId {
        generation: g.parse().ok()?,
        slot: s.parse().ok()?,
    })
}

/// A listening socket handed to this process.
#[derive(Debug)]
pub struct InheritedListener {
    fd: OwnedFd,
    name: String,
    addr: Addr,
}

impl InheritedListener {
    /// The name the hand-down gave it (`LISTEN_FDNAMES`; `unknown` when none).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The address it is bound to.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }
    /// Takes the descriptor (e.g. for `EngineBuilder::listener`).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for InheritedListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Adopts the listening sockets handed to this process (`LISTEN_FDS` at
/// 3, 4, … with `LISTEN_PID` equal to this pid), in order, each checked to be
/// a listening TCP or Unix stream socket and set non-blocking and
/// close-on-exec. Empty when nothing was handed down — or on a second call:
/// the descriptors are taken once.
///
/// Call it early in `main`: a descriptor that is not a listening stream socket
/// is an error naming it, never served by mistake.
pub fn inherited_listeners() -> Result<Vec<InheritedListener>, Error> {
    let fds = crate::sys::process::adopt_listen_fds()?;
    fds.into_iter()
        .enumerate()
        .map(|(i, (fd, name))| {
            let what = || format!("inherited descriptor {} ({name})", i + 3);
            let sock = Socket::from(fd);
            let bad = |why: &str| Error::Config(format!("{} {why}", what()));
            if sock.r#type().map_err(|e| bad(&e.to_string()))? != Type::STREAM {
                return Err(bad("is not a stream socket"));
            }
            if !sock.is_listener().map_err(|e| bad(&e.to_string()))? {
                return Err(bad("is not listening"));
            }
            let local = sock.local_addr().map_err(|e| bad(&e.to_string()))?;
            let addr = match sock.domain().map_err(|e| bad(&e.to_string()))? {
                Domain::UNIX => Addr::Unix(
                    local
                        .as_pathname()
                        .map(|p| p.to_path_buf())
                        .unwrap_or_default(),
                ),
                _ => Addr::Tcp(local.as_socket().ok_or_else(|| bad("has no IP address"))?),
            };
            sock.set_nonblocking(true)
                .map_err(|e| bad(&e.to_string()))?;
            Ok(InheritedListener {
                fd: sock.into(),
                name,
                addr,
            })
        })
        .collect()
}

/// Tells the supervisor or service manager that start-up is finished and the
/// process serves (`READY=1`). A no-op without `NOTIFY_SOCKET`.
pub fn notify_ready() -> std::io::Result<()> {
    sd_notify::notify(&[sd_notify::NotifyState::Ready])
}

/// Tells it the process is stopping: draining, no longer accepting (`STOPPING=1`).
pub fn notify_stopping() -> std::io::Result<()> {
    sd_notify::notify(&[sd_notify::NotifyState::Stopping])
}

/// Sends a free-form status line (`STATUS=...`).
pub fn notify_status(status: &str) -> std::io::Result<()> {
    sd_notify::notify(&[sd_notify::NotifyState::Status(status)])
}
