//! Datagram servers: UDP (`udp://`, `udp4://`, `udp6://`) and Unix datagram
//! sockets (`unixgram://`).
//!
//! # Design: dedicated datagram loops
//! A datagram socket has no connections: no accept, no per-peer slab entry, no
//! outbound queue, no half-close. Everything the stream [`Engine`](crate::Engine)'s
//! loops are built around (the connection slab, the write path with its waiters,
//! `on_open`/`on_close`) would be dead weight, while the datagram hot path is its
//! own thing: **batches**. So a [`UdpEngine`] runs its own small loops (one OS
//! thread each, an `epoll` with the sockets and a waker), and the stream engine is
//! left untouched. An application that serves both runs both engines and shares
//! state through `Arc`s, as it would between stream loops.
//!
//! Each loop owns, allocated once at start-up:
//! - a **receive batch**: `batch` slots of `datagram_size` bytes, addresses and
//!   headers for one `recvmmsg(2)`;
//! - a **send batch**: an arena of `batch × datagram_size` bytes and headers for one
//!   `sendmmsg(2)`. [`Datagram::reply`] and [`Datagram::send_to`] copy into it; it is
//!   flushed after each received batch (or earlier when full).
//!
//! No allocation happens per datagram. When a socket is readable the loop reads up
//! to [`UdpOptions::batches_per_wakeup`] batches, calling
//! [`DatagramHandler::on_datagram`] for each datagram, then sends the replies and
//! moves on (level-triggered, so a socket with more waiting is served again on the
//! next round, after the loop's other sockets and its waker): a flood on one socket
//! cannot monopolise a loop, and memory stays at the preallocated buffers — excess
//! datagrams are dropped by the kernel when the socket's receive buffer is full,
//! which is how UDP is meant to degrade.
//!
//! # Modes
//! - [`Mode::ReusePort`](crate::Mode::ReusePort): `loops` loops, each with its own
//!   `SO_REUSEPORT` socket bound to the same address; the kernel spreads datagrams
//!   by a hash of the source address and port. (A `unixgram://` socket cannot be
//!   shared this way: it is served by loop 0 alone.)
//! - any other mode: a single loop.
//!
//! # Faults
//! - A datagram larger than `datagram_size` is **truncated** by the kernel
//!   (`MSG_TRUNC`): the handler still gets the first `datagram_size` bytes with
//!   [`Datagram::truncated`] set, the [`UdpStats::truncated`] counter rises and a
//!   (rate-limited) warning is logged. Never silent.
//! - A reply the socket does not take (send buffer full) or that fails for that
//!   destination is dropped and counted in [`UdpStats::send_dropped`].
//! - A panic in `on_datagram` is caught and logged; the loop carries on.
//!
//! # Example
//! ```
//! use netloop::udp::{Datagram, DatagramHandler, UdpEngine};
//! use netloop::Action;
//! use std::net::UdpSocket;
//!
//! struct Echo;
//! impl DatagramHandler for Echo {
//!     fn on_datagram(&mut self, d: &mut Datagram<'_>) -> Action {
//!         let _ = d.reply_with_data(); // the datagram back to its sender
//!         Action::None
//!     }
//! }
//!
//! let engine = UdpEngine::builder().listen("udp://127.0.0.1:0").start(|_| Echo)?;
//! let server = engine.local_addr().as_udp().unwrap();
//! let client = UdpSocket::bind("127.0.0.1:0")?;
//! client.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
//! client.send_to(b"ping", server)?;
//! let mut buf = [0u8; 16];
//! let (n, from) = client.recv_from(&mut buf)?;
//! assert_eq!((&buf[..n], from), (&b"ping"[..], server));
//! engine.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod engine;
mod worker;

pub use engine::{UdpEngine, UdpEngineBuilder, UdpEngineHandle, UdpOptions, UdpStats};

use crate::addr::Addr;
use crate::handler::Action;
use socket2::SockAddr;
use std::io;
use std::net::SocketAddr;

/// What a datagram loop's application implements. One handler per loop (made by
/// the factory given to [`UdpEngineBuilder::start`]), so `&mut self` needs no lock.
pub trait DatagramHandler: 'static {
    /// The loop has started.
    fn on_boot(&mut self, _info: &UdpLoopInfo<'_>) -> Action {
        Action::None
    }

    /// A datagram arrived. [`Action::Shutdown`] stops the engine; [`Action::Close`]
    /// means nothing for a datagram and is ignored.
    fn on_datagram(&mut self, dgram: &mut Datagram<'_>) -> Action;

    /// The loop is stopping.
    fn on_shutdown(&mut self, _info: &UdpLoopInfo<'_>) {}
}

/// What `on_boot`/`on_shutdown` can see.
pub struct UdpLoopInfo<'a> {
    pub(crate) index: usize,
    pub(crate) engine: &'a UdpEngineHandle,
}

impl std::fmt::Debug for UdpLoopInfo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpLoopInfo")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl UdpLoopInfo<'_> {
    /// This loop's index.
    pub fn index(&self) -> usize {
        self.index
    }
    /// The engine (to stop it or read its counters).
    pub fn engine(&self) -> &UdpEngineHandle {
        self.engine
    }
}

/// Where replies go: the loop's send batch and the socket they leave from.
pub(crate) struct Outbox {
    pub(crate) batch: crate::sys::SendBatch,
    pub(crate) sent: u64,
    pub(crate) dropped: u64,
    pub(crate) last_error: Option<io::Error>,
}

impl Outbox {
    pub(crate) fn new(batch: usize, bytes: usize) -> Outbox {
        Outbox {
            batch: crate::sys::SendBatch::new(batch, bytes),
            sent: 0,
            dropped: 0,
            last_error: None,
        }
    }

    /// Sends everything queued on `fd`.
    pub(crate) fn flush(&mut self, fd: std::os::fd::RawFd) {
        if self.batch.is_empty() {
            return;
        }
        let f = self.batch.flush(fd);
        self.sent += f.sent as u64;
        self.dropped += f.dropped as u64;
        if f.error.is_some() {
            self.last_error = f.error;
        }
    }

    fn send(&mut self, fd: std::os::fd::RawFd, to: &SockAddr, data: &[u8]) -> io::Result<()> {
        if !self.batch.can_hold(data.len()) {
            // Larger than the whole arena: send it on its own, right away.
            self.flush(fd);
            return match crate::sys::send_to(fd, data, to) {
                Ok(_) => {
                    self.sent += 1;
                    Ok(())
                }
                Err(e) => {
                    self.dropped += 1;
                    Err(e)
                }
            };
        }
        if !self.batch.fits(data.len()) {
            self.flush(fd);
        }
        self.batch.push(to, data);
        Ok(())
    }
}

/// One received datagram, as [`DatagramHandler::on_datagram`] sees it.
///
/// The bytes are borrowed from the loop's receive batch (valid for the callback
/// only). Replies are copied into the loop's send batch and go out with one
/// `sendmmsg` after the batch: [`reply`](Self::reply) returns once queued.
pub struct Datagram<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) peer: &'a SockAddr,
    pub(crate) truncated: bool,
    pub(crate) fd: std::os::fd::RawFd,
    pub(crate) out: &'a mut Outbox,
    pub(crate) local: &'a Addr,
    pub(crate) loop_index: usize,
}

impl std::fmt::Debug for Datagram<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datagram")
            .field("len", &self.data.len())
            .field("peer", &self.peer.as_socket())
            .field("truncated", &self.truncated)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Datagram<'_> {
    /// The datagram's bytes (at most [`UdpOptions::datagram_size`]).
    pub fn data(&self) -> &[u8] {
        self.data
    }

    /// Was the datagram larger than the receive slot, and cut (`MSG_TRUNC`)?
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The sender's IP address and port (`None` for a Unix datagram sender).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer.as_socket()
    }

    /// The sender's raw address (any family; for a Unix sender that did not bind,
    /// it is unnamed and cannot be replied to).
    pub fn peer_sockaddr(&self) -> &SockAddr {
        self.peer
    }

    /// The sender as an [`Addr`] (`Udp` or `Unixgram`; allocates for a path).
    pub fn peer_addr(&self) -> Option<Addr> {
        if let Some(sa) = self.peer.as_socket() {
            return Some(Addr::Udp(sa));
        }
        self.peer
            .as_pathname()
            .map(|p| Addr::Unixgram(p.to_path_buf()))
    }

    /// The local address the datagram arrived on.
    pub fn local_addr(&self) -> &Addr {
        self.local
    }

    /// Index of the loop serving this socket.
    pub fn loop_index(&self) -> usize {
        self.loop_index
    }

    /// Queues `data` as a datagram back to the sender.
    ///
    /// Fails only if the sender cannot be addressed (an unbound Unix socket) or,
    /// for a reply too large to batch, if sending it directly fails. Replies the
    /// socket refuses later are counted in [`UdpStats::send_dropped`].
    pub fn reply(&mut self, data: &[u8]) -> io::Result<()> {
        if !self.peer.is_ipv4() && !self.peer.is_ipv6() && self.peer.as_pathname().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the sender has no address to reply to",
            ));
        }
        self.out.send(self.fd, self.peer, data)
    }

    /// Sends the received bytes back to the sender (an echo) without copying them
    /// out first.
    pub fn reply_with_data(&mut self) -> io::Result<()> {
        let data = self.data;
        self.reply(data)
    }

    /// Queues `data` as a datagram to `to` (IP).
    pub fn send_to(&mut self, to: SocketAddr, data: &[u8]) -> io::Result<()> {
        self.out.send(self.fd, &SockAddr::from(to), data)
    }

    /// Queues `data` as a datagram to a raw address (for example a Unix path made
    /// with [`SockAddr::unix`]).
    pub fn send_to_sockaddr(&mut self, to: &SockAddr, data: &[u8]) -> io::Result<()> {
        self.out.send(self.fd, to, data)
    }
}
