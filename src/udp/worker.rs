//! One datagram loop: an epoll with the loop's sockets and a waker, the receive
//! and send batches, the handler.

use super::engine::{UdpEngineHandle, UdpOptions, UdpStats};
use super::{Datagram, DatagramHandler, Outbox, UdpLoopInfo};
use crate::addr::Addr;
use crate::driver::{Driver, Epoll, Interest, Trigger};
use crate::engine::shared::panic_message;
use crate::handler::Action;
use crate::sys::{self, RecvBatch};
use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

thread_local! {
    /// Set on datagram-loop threads (so `stop()` from a handler does not wait for itself).
    pub(crate) static IN_UDP_LOOP: Cell<bool> = const { Cell::new(false) };
}

const WAKER: u64 = u64::MAX;

/// A bound socket on its way to a loop. A Unix path is removed when it drops.
pub(crate) struct UdpSocketSetup {
    fd: OwnedFd,
    pub(crate) addr: Addr,
    unlink: Option<PathBuf>,
}

impl UdpSocketSetup {
    pub(crate) fn new(fd: OwnedFd, addr: Addr, unlink: Option<PathBuf>) -> Self {
        UdpSocketSetup { fd, addr, unlink }
    }
}

impl Drop for UdpSocketSetup {
    fn drop(&mut self) {
        if let Some(p) = &self.unlink {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A loop's waker and counters, shared with the engine handle.
pub(crate) struct LoopStats {
    waker: OwnedFd,
    received: AtomicU64,
    truncated: AtomicU64,
    sent: AtomicU64,
    send_dropped: AtomicU64,
    recv_errors: AtomicU64,
}

impl LoopStats {
    pub(crate) fn new() -> io::Result<LoopStats> {
        Ok(LoopStats {
            waker: sys::eventfd()?,
            received: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            send_dropped: AtomicU64::new(0),
            recv_errors: AtomicU64::new(0),
        })
    }

    pub(crate) fn wake(&self) {
        if let Err(e) = sys::eventfd_write(self.waker.as_raw_fd()) {
            tracing::error!(error = %e, "failed to wake datagram loop");
        }
    }

    pub(crate) fn snapshot(&self) -> UdpStats {
        UdpStats {
            received: self.received.load(Ordering::Relaxed),
            truncated: self.truncated.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            send_dropped: self.send_dropped.load(Ordering::Relaxed),
            recv_errors: self.recv_errors.load(Ordering::Relaxed),
        }
    }

    fn publish(&self, local: &mut Local) {
        let add = |a: &AtomicU64, v: &mut u64| {
            if *v > 0 {
                a.fetch_add(std::mem::take(v), Ordering::Relaxed);
            }
        };
        add(&self.received, &mut local.received);
        add(&self.truncated, &mut local.truncated);
        add(&self.recv_errors, &mut local.recv_errors);
    }
}

/// Counters kept on the loop and published once per batch.
#[derive(Default)]
struct Local {
    received: u64,
    truncated: u64,
    recv_errors: u64,
}

/// Rate-limited warnings (at most one per second per kind).
#[derive(Default)]
struct Warn {
    last: Option<Instant>,
    suppressed: u64,
}

impl Warn {
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.last = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// Runs one datagram loop on the current thread until the engine stops.
pub(crate) fn run<H: DatagramHandler>(
    index: usize,
    sockets: Vec<UdpSocketSetup>,
    stats: std::sync::Arc<LoopStats>,
    engine: &UdpEngineHandle,
    opts: &UdpOptions,
    ready: std::sync::mpsc::Sender<io::Result<()>>,
    make_handler: impl FnOnce(usize) -> H,
) -> io::Result<()> {
    IN_UDP_LOOP.with(|f| f.set(true));
    let setup = || -> io::Result<Epoll> {
        let mut poller = Epoll::new()?;
        poller.add(
            stats.waker.as_raw_fd(),
            WAKER,
            Interest::READ,
            Trigger::Level,
        )?;
        for (i, s) in sockets.iter().enumerate() {
            poller.add(s.fd.as_raw_fd(), i as u64, Interest::READ, Trigger::Level)?;
        }
        Ok(poller)
    };
    let mut poller = match setup() {
        Ok(p) => {
            let _ = ready.send(Ok(()));
            p
        }
        Err(e) => {
            let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
    };
    drop(ready);
    let mut handler = make_handler(index);
    let info = UdpLoopInfo { index, engine };
    match catch_unwind(AssertUnwindSafe(|| handler.on_boot(&info))) {
        Ok(Action::Shutdown) => engine.signal_stop(),
        Ok(_) => {}
        Err(p) => tracing::error!(panic = panic_message(&*p), "on_boot panicked"),
    }
    let mut lp = Loop {
        index,
        recv: RecvBatch::new(opts.batch, opts.datagram_size),
        out: Outbox::new(opts.batch, opts.batch * opts.datagram_size),
        local: Local::default(),
        truncation_warning: Warn::default(),
        error_warning: Warn::default(),
        batches_per_wakeup: opts.batches_per_wakeup,
    };
    while !engine.is_stopping() {
        let n = match poller.wait(None) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "epoll_wait failed; stopping the datagram loop");
                return Err(e);
            }
        };
        for i in 0..n {
            let token = poller.event(i).token;
            if token == WAKER {
                sys::eventfd_read(stats.waker.as_raw_fd());
                continue;
            }
            if let Some(s) = sockets.get(token as usize) {
                lp.serve(s.fd.as_raw_fd(), &s.addr, &mut handler, engine, &stats);
            }
        }
    }
    match catch_unwind(AssertUnwindSafe(|| handler.on_shutdown(&info))) {
        Ok(()) => {}
        Err(p) => tracing::error!(panic = panic_message(&*p), "on_shutdown panicked"),
    }
    Ok(())
}

struct Loop {
    index: usize,
    recv: RecvBatch,
    out: Outbox,
    local: Local,
    truncation_warning: Warn,
    error_warning: Warn,
    batches_per_wakeup: usize,
}

impl Loop {
    /// Reads up to `batches_per_wakeup` batches from a readable socket, hands each
    /// datagram to the handler and sends the replies.
    fn serve<H: DatagramHandler>(
        &mut self,
        fd: RawFd,
        local_addr: &Addr,
        handler: &mut H,
        engine: &UdpEngineHandle,
        stats: &LoopStats,
    ) {
        for _ in 0..self.batches_per_wakeup {
            let n = match self.recv.recv(fd) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // E.g. an ICMP error queued on the socket: the socket stays usable.
                    self.local.recv_errors += 1;
                    if let Some(suppressed) = self.error_warning.ready() {
                        tracing::warn!(error = %e, local = %local_addr, suppressed, "datagram receive failed");
                    }
                    break;
                }
            };
            self.local.received += n as u64;
            for i in 0..n {
                let peer = self.recv.peer(i);
                let truncated = self.recv.truncated(i);
                if truncated {
                    self.local.truncated += 1;
                    if let Some(suppressed) = self.truncation_warning.ready() {
                        tracing::warn!(
                            peer = ?peer.as_socket(),
                            local = %local_addr,
                            kept = self.recv.data(i).len(),
                            suppressed,
                            "datagram larger than datagram_size was truncated"
                        );
                    }
                }
                let mut dgram = Datagram {
                    data: self.recv.data(i),
                    peer: &peer,
                    truncated,
                    fd,
                    out: &mut self.out,
                    local: local_addr,
                    loop_index: self.index,
                };
                match catch_unwind(AssertUnwindSafe(|| handler.on_datagram(&mut dgram))) {
                    Ok(Action::Shutdown) => engine.signal_stop(),
                    Ok(_) => {}
                    Err(p) => {
                        tracing::error!(panic = panic_message(&*p), "on_datagram panicked")
                    }
                }
            }
            self.out.flush(fd);
            self.publish(stats, local_addr);
            if n < self.recv.capacity() {
                break; // drained
            }
        }
        self.out.flush(fd);
        self.publish(stats, local_addr);
    }

    fn publish(&mut self, stats: &LoopStats, local_addr: &Addr) {
        stats.publish(&mut self.local);
        if self.out.sent > 0 {
            stats
                .sent
                .fetch_add(std::mem::take(&mut self.out.sent), Ordering::Relaxed);
        }
        if self.out.dropped > 0 {
            stats
                .send_dropped
                .fetch_add(std::mem::take(&mut self.out.dropped), Ordering::Relaxed);
            if let Some(suppressed) = self.error_warning.ready() {
                let error = self.out.last_error.take();
                tracing::warn!(error = ?error, local = %local_addr, suppressed, "outgoing datagrams dropped");
            }
        }
    }
}
