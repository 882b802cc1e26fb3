//! The supervisor's end of the `sd_notify` protocol: a Unix datagram socket
//! whose path the workers get as `NOTIFY_SOCKET`, with the kernel-attested pid
//! of each sender (`SO_PASSCRED`), as systemd's own notify socket works.

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Longest notification read; longer datagrams are truncated (systemd's limit
/// is similar: a notification is a few short `KEY=value` lines).
const MAX_MESSAGE: usize = 4096;

/// What one notification said (the keys netloop acts on; others are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notification {
    /// `READY=1`: start-up finished, serving.
    pub ready: bool,
    /// `STOPPING=1`: shutting down (draining).
    pub stopping: bool,
    /// `RELOADING=1`.
    pub reloading: bool,
    /// `STATUS=...`: a free-form status line.
    pub status: Option<String>,
    /// `ERRNO=...`: the failure the sender reports.
    pub errno: Option<i32>,
}

impl Notification {
    /// Parses newline-separated `KEY=value` assignments.
    pub fn parse(text: &str) -> Notification {
        let mut n = Notification::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("READY", "1")) => n.ready = true,
                Some(("STOPPING", "1")) => n.stopping = true,
                Some(("RELOADING", "1")) => n.reloading = true,
                Some(("STATUS", s)) => n.status = Some(s.to_string()),
                Some(("ERRNO", e)) => n.errno = e.parse().ok(),
                _ => {}
            }
        }
        n
    }
}

/// A bound notify socket; its file is removed on drop.
pub(crate) struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    /// Binds a fresh socket in the runtime directory (`$XDG_RUNTIME_DIR`, else
    /// the temporary directory), non-blocking, with sender credentials on.
    pub(crate) fn bind() -> io::Result<NotifySocket> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!(
            "netloop-notify-{}-{}.sock",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path); // a leftover of a process with our pid
        let sock = UnixDatagram::bind(&path)?;
        sock.set_nonblocking(true)?;
        rustix::net::sockopt::set_socket_passcred(&sock, true)?;
        Ok(NotifySocket { sock, path })
    }

    /// The path to give as `NOTIFY_SOCKET`.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The next pending notification and its sender's pid; `None` when none is
    /// pending. Datagrams without credentials are skipped.
    pub(crate) fn recv(&self) -> io::Result<Option<(u32, Notification)>> {
        loop {
            let mut buf = [0u8; MAX_MESSAGE];
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let res = rustix::net::recvmsg(
                &self.sock,
                &mut [IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
            );
            let msg = match res {
                Ok(m) => m,
                Err(rustix::io::Errno::AGAIN) => return Ok(None),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut pid = None;
            for cmsg in control.drain() {
                if let RecvAncillaryMessage::ScmCredentials(cred) = cmsg {
                    pid = Some(cred.pid.as_raw_nonzero().get() as u32);
                }
            }
            let Some(pid) = pid else {
                tracing::debug!("notification without sender credentials ignored");
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..msg.bytes.min(MAX_MESSAGE)]);
            return Ok(Some((pid, Notification::parse(&text))));
        }
    }
}

impl AsFd for NotifySocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_keys_it_acts_on() {
        let n = Notification::parse("READY=1\nSTATUS=serving 3 loops\nMAINPID=7\nERRNO=2\n");
        assert!(n.ready && !n.stopping && !n.reloading);
        assert_eq!(n.status.as_deref(), Some("serving 3 loops"));
        assert_eq!(n.errno, Some(2));
        assert_eq!(
            Notification::parse("READY=0\nbogus"),
            Notification::default()
        );
    }

    #[test]
    fn receives_with_the_senders_pid() {
        let sock = NotifySocket::bind().unwrap();
        assert_eq!(sock.recv().unwrap(), None);
        let tx = UnixDatagram::unbound().unwrap();
        tx.send_to(b"STOPPING=1\n", sock.path()).unwrap();
        let (pid, n) = sock.recv().unwrap().expect("a notification");
        assert_eq!(pid, std::process::id());
        assert!(n.stopping);
        let path = sock.path().to_path_buf();
        drop(sock);
        assert!(!path.exists(), "the socket file is removed");
    }
}
