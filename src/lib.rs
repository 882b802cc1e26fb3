//! netloop: a Reactor-pattern event-loop networking framework for Linux.
//!
//! # What and why
//!
//! The simple way to write a server is a thread per connection: each thread reads,
//! computes, writes, and blocks while it waits. That is easy to follow but costs a
//! stack and a kernel thread for every client, and most of them sit idle. netloop
//! follows the **Reactor** pattern instead (as Go's gnet and netty do): every socket
//! is non-blocking, and a few *event loops* — one OS thread each — ask the kernel
//! (`epoll`) which sockets are ready and run the application's callbacks only for
//! those. A handful of loops then serve tens of thousands of connections, an idle
//! connection costs a small slab entry (no buffers, no thread), and the hot path
//! needs no locks because each connection belongs to exactly one loop. The price is that a
//! callback must never block: slow work goes to a [`WorkerPool`] and the result comes
//! back through a [`ConnHandle`].
//!
//! # Threads and loops
//!
//! An [`Engine`] owns the listeners and the loops. How connections reach a loop is
//! the [`Mode`]:
//!
//! ```text
//! Mode::Reactor (the default)
//!
//!   main reactor thread: accepts only; a LoadBalancer picks a sub-loop
//!         |  hands each new socket over (task queue + eventfd)
//!         +--------------+--------------+
//!         v              v              v
//!      loop 0         loop 1         loop 2     one thread each: epoll_wait, read,
//!    conns a,d      conns b,e      conns c,f    on_traffic, write; it owns its conns
//!
//! Mode::ReusePort  every loop accepts on its own SO_REUSEPORT listener (the kernel balances)
//! Mode::Shared     every loop accepts on one listener registered with EPOLLEXCLUSIVE
//! Mode::Single     one loop accepts and serves
//! ```
//!
//! Each loop runs one thread: it waits on its `epoll`, reads ready sockets into a
//! shared per-loop buffer, calls the [`EventHandler`] (one handler per loop, so
//! `&mut self` without locks), writes replies straight to the socket, and queues
//! only what the socket does not take. Other threads reach a connection through a
//! [`ConnHandle`] ([`async_write`](ConnHandle::async_write),
//! [`wake`](ConnHandle::wake), [`close`](ConnHandle::close)), which queues a task
//! for the owning loop and wakes it through an `eventfd`.
//!
//! # Example
//!
//! An echo server on an ephemeral port, a round trip with a plain `TcpStream`, and
//! a clean stop:
//!
//! ```
//! use netloop::{Action, Conn, Engine, EventHandler};
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//!
//! #[derive(Clone)]
//! struct Echo;
//!
//! impl EventHandler for Echo {
//!     type State = ();
//!     fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
//!         // Write back what arrived (zero-copy), then consume it.
//!         let n = conn.buffered();
//!         let ([a, b], mut out) = conn.split();
//!         let res = out.writev(&[a, b]);
//!         conn.discard(n);
//!         if res.is_ok() { Action::None } else { Action::Close }
//!     }
//! }
//!
//! let engine = Engine::builder().loops(2).listen("127.0.0.1:0").start_with(Echo)?;
//! let addr = engine.local_addr().as_tcp().expect("a TCP listener");
//!
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hello, netloop")?;
//! let mut reply = [0u8; 14];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"hello, netloop");
//!
//! drop(client);
//! engine.stop(); // closes every connection, runs on_shutdown, joins the loops
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! More in `examples/`: `echo` (every mode and balancer; also UDP and Unix
//! datagrams), `broadcast` (pushing to all connections from another thread),
//! `worker_pool` (blocking work off the loop, replies kept in request order),
//! `client` (many dialed connections measuring round trips), `proxy` (accepting
//! and dialing on the same loops) and `pool` (persistent upstream connections).
//!
//! # Module map
//!
//! | piece | where | what |
//! |---|---|---|
//! | poller | internal (`poller`) | `epoll` behind a small trait: interest, level/edge triggering, tokens |
//! | event loop | internal (`event_loop`) | one thread: wait, dispatch by token, run queued tasks, timers |
//! | engine | [`Engine`], [`EngineBuilder`], [`EngineHandle`] | listeners, modes, the main reactor, starting and stopping |
//! | handler | [`EventHandler`], [`Action`], [`CloseReason`] | what an application implements |
//! | connection | [`Conn`], [`Writer`], [`ConnHandle`] | reading, writing, per-connection state; cross-thread handles |
//! | flow control | [`Options`], [`Conn::pause_read`], [`Conn::set_idle_timeout`], [`EngineHandle::stats`] | water marks, inbound/outbound caps, timeouts on a timing wheel, connection limits, drain on stop, counters |
//! | workers | [`WorkerPool`] | a bounded pool for blocking work |
//! | buffers | [`buffer`] | the elastic inbound ring, the outbound block list, the per-loop pool |
//! | codecs | [`codec`] | framing on top of a connection's bytes |
//! | protocols | [`protocol`] | transport-free HTTP/1.1 and RESP2 state machines |
//! | datagrams | [`udp`] | UDP and Unix datagram servers: `recvmmsg`/`sendmmsg` batches on their own loops |
//! | clients | [`Client`], [`EngineHandle::dial`], [`DialOptions`] | outgoing TCP/Unix connections served like accepted ones |
//! | deployment | [`prefork`] | prefork supervisor, zero-downtime restart, socket activation, hand-over |
//! | addresses | [`Addr`], [`ToAddr`] | `tcp://`, `tcp4://`, `tcp6://`, `unix://`, `udp://`, `udp4://`, `udp6://`, `unixgram://` |
//!
//! # Configuration
//!
//! Every option, its default and what it does is listed in the [`Options`] docs
//! (set them directly or through [`EngineBuilder`]'s methods); the modes are
//! compared in a table on [`Mode`].
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]

mod addr;
pub mod buffer;
pub mod codec;
mod conn;
mod driver;
mod engine;
mod error;
mod handler;
mod options;
pub mod prefork;
pub mod protocol;
mod sys;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;
pub mod udp;
mod worker_pool;

pub use addr::{Addr, ToAddr};
pub use bytes::Bytes;
pub use conn::{CloseReason, Conn, ConnHandle, ConnId, TimeoutKind, WriteCallback, Writer};
pub use engine::{
    serve, Client, ClosedStats, DialCallback, DialOptions, Dialer, Engine, EngineBuilder,
    EngineHandle, LoopStats, Stats,
};
pub use error::{Error, Result};
pub use handler::{Action, EventHandler, LoopInfo};
pub use options::{Backend, LoadBalancer, Mode, Options};
pub use transport::ListenConfig;
pub use worker_pool::WorkerPool;
