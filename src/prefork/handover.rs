//! A single process handing its listeners to a successor: the same start-up
//! and readiness protocol as the supervisor's workers, without a supervisor.

use super::launch::{fd_name, Launch};
use super::notify::NotifySocket;
use crate::error::Error;
use rustix::event::{PollFd, PollFlags};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// Starts a successor — this program, executed afresh from its file on disk,
/// with this process's arguments — hands it `listeners` (descriptor, name) the
/// socket-activation way, and waits until it reports `READY=1`. Returns its
/// pid; the caller then stops accepting, drains and exits, and the successor
/// serves on. If the successor exits or is not ready within `timeout`, it is
/// killed and an error returned: the caller keeps serving.
///
/// The successor's `NOTIFY_SOCKET` is this process's private socket, which
/// goes away when this process exits; a service manager watching this process's
/// pid sees it exit (run under the [`Supervisor`](super::Supervisor) when the
/// manager must keep tracking one pid).
pub fn hand_over(listeners: &[(BorrowedFd<'_>, &str)], timeout: Duration) -> Result<u32, Error> {
    let notify = NotifySocket::bind()?;
    let names: Vec<String> = listeners.iter().map(|(_, n)| fd_name(n)).collect();
    let named: Vec<(BorrowedFd<'_>, &str)> = listeners
        .iter()
        .zip(&names)
        .map(|((fd, _), n)| (*fd, n.as_str()))
        .collect();
    let mut child = Launch::current()?.spawn(&named, notify.path(), None)?;
    let pid = child.id();
    let deadline = Instant::now() + timeout;
    let failure = loop {
        while let Some((from, n)) = notify.recv()? {
            if from == pid && n.ready {
                tracing::info!(pid, "successor ready");
                return Ok(pid);
            }
        }
        if let Some(status) = child.try_wait()? {
            break format!("successor {pid} exited before it was ready: {status}");
        }
        let now = Instant::now();
        if now >= deadline {
            break format!("successor {pid} not ready within {timeout:?}");
        }
        let left = (deadline - now).min(Duration::from_millis(50));
        let ts = rustix::time::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let _ = rustix::event::poll(&mut [PollFd::new(&notify, PollFlags::IN)], Some(&ts));
    };
    let _ = child.kill();
    let _ = child.wait();
    Err(Error::Io(std::io::Error::other(failure)))
}
