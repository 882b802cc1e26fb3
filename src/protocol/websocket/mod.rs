//! WebSocket (RFC 6455) on the event loop, with permessage-deflate (RFC 7692),
//! server and client.
//!
//! # What
//!
//! [`WebSocket`] is an [`EventHandler`](crate::EventHandler) that upgrades
//! accepted HTTP/1.1 connections (checking `Upgrade`, `Connection`,
//! `Sec-WebSocket-Key` and `Sec-WebSocket-Version`, answering 426 or 400
//! otherwise, selecting a subprotocol), then speaks the frame protocol and calls
//! a [`WebSocketHandler`] with whole messages. Dialed connections
//! ([`client::dial`]) run the client side with the same handler.
//!
//! | concern | where |
//! |---|---|
//! | frame header codec, masking | [`frame`] |
//! | upgrade checks, accept key, client request and answer | [`handshake`] |
//! | reassembly, fragmentation and control-frame rules, limits | [`reader`] |
//! | incremental UTF-8 validation | [`utf8`] |
//! | close codes and payloads | [`close`] |
//! | permessage-deflate negotiation and compressors | [`deflate`] |
//! | per-connection state | [`WsState`] |
//! | sending from a callback or another thread | [`WsConn`], [`WsHandle`], [`PreparedMessage`] |
//!
//! The protocol follows RFC 6455 as the Autobahn testsuite checks it: masked
//! client frames (1002 otherwise), no reserved bits or opcodes (1002),
//! fragmentation with control frames interleaved, automatic pongs, the closing
//! handshake with status codes (invalid ones refused with 1002), text validated
//! as UTF-8 incrementally across fragments (1007 as soon as a bad byte arrives),
//! frame and message size limits (1009).
//!
//! # Why it is lean
//!
//! Push and chat servers hold many mostly idle connections, so an idle
//! WebSocket holds only its [`WsState`]: 16 bytes plus the application's state,
//! inline in the loop's slab slot. Frames that arrive whole are unmasked into
//! a per-loop scratch buffer; only a fragmented or very large message gets a
//! buffer of its own, until it completes. Sends of one batch of callbacks are
//! gathered in a per-loop buffer and written with one syscall. Compression
//! runs without context takeover by default, with one compressor and one
//! decompressor per loop ([`deflate`] explains).
//!
//! # Example
//!
//! An echo server, and a round trip with a raw client:
//!
//! ```
//! use netloop::protocol::websocket::{Config, Message, WebSocket, WebSocketHandler, WsConn};
//! use netloop::{Action, Engine};
//! use std::io::{Read, Write};
//!
//! #[derive(Clone)]
//! struct Echo;
//!
//! impl WebSocketHandler for Echo {
//!     type State = ();
//!     fn on_message(&mut self, ws: &mut WsConn<'_, '_, ()>, msg: Message<'_>) -> Action {
//!         match ws.send(msg) {
//!             Ok(()) => Action::None,
//!             Err(_) => Action::Close,
//!         }
//!     }
//! }
//!
//! let engine = Engine::builder()
//!     .loops(1)
//!     .listen("127.0.0.1:0")
//!     .start_with(WebSocket::new(Echo, Config::default()))?;
//! let mut s = std::net::TcpStream::connect(engine.local_addr().as_tcp().unwrap())?;
//! s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")?;
//! // A masked "Hi" text frame.
//! s.write_all(&[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2])?;
//! let mut buf = vec![0u8; 256];
//! let mut got = Vec::new();
//! while !got.ends_with(&[0x81, 2, b'H', b'i']) {
//!     let n = s.read(&mut buf)?;
//!     assert!(n > 0);
//!     got.extend_from_slice(&buf[..n]);
//! }
//! assert!(got.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! engine.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Timers and flow control
//!
//! Each connection has one timer on the engine's timing wheel
//! ([`Conn::set_timer`](crate::Conn::set_timer)), whose meaning follows the
//! connection's phase: the handshake deadline
//! ([`Config::handshake_timeout`], 408 for a server), then keep-alive
//! ([`Config::ping_interval`]: a ping each interval, 1011 and a close when the
//! peer sent nothing within [`Config::pong_timeout`] of one), then the close
//! wait ([`Config::close_timeout`]). With keep-alive off an open connection
//! holds no timer at all. While a connection's outbound queue is above the
//! high water mark the layer stops parsing its buffered input (and the engine
//! stops reading it), so a peer that sends without reading meets bounded
//! memory.
//!
//! # Not yet
//!
//! `wss://` waits for the engine's TLS transport.

pub mod client;
pub mod close;
mod config;
mod conn;
pub mod deflate;
mod error;
pub mod frame;
mod handler;
pub mod handshake;
pub mod reader;
mod state;
pub mod utf8;

pub use close::CloseCode;
pub use config::Config;
pub use conn::{Message, PreparedMessage, WsConn, WsHandle};
pub use deflate::DeflateConfig;
pub use error::WsError;
pub use handler::{Upgrade, WebSocket, WebSocketHandler};
pub use handshake::{ClientHandshakeError, ClientRequest, HandshakeError};
pub use state::WsState;
