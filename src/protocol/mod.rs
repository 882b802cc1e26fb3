//! Pure, transport-free protocol layers: HTTP/1.1, Redis RESP2 and the PROXY protocol.
//!
//! # What
//!
//! Each protocol is a set of state machines over byte slices. A parser takes
//! the connection's buffered inbound bytes as one contiguous `&[u8]`, borrows
//! from it (zero-copy), and reports how many bytes it consumed or that it needs
//! more. Replies are *appended* to a caller-owned `&mut Vec<u8>`.
//!
//! * [`http`] (feature `http`, on by default): request parsing on top of
//!   `httparse`, chunked bodies, `Expect: 100-continue`, keep-alive rules,
//!   limits mapped to status codes, a response writer, a cached HTTP `Date`,
//!   and a per-connection [`http::Session`] that answers pipelined requests.
//! * [`websocket`] (feature `websocket`, on by default): RFC 6455 over the
//!   HTTP upgrade, with permessage-deflate; unlike the others it comes with
//!   its own [`EventHandler`](crate::EventHandler) (server and client), since
//!   its state machine is driven by the connection as much as by the bytes.
//! * [`resp`]: a streaming RESP2 parser (multibulk and inline commands), reply
//!   writers, an in-memory [`resp::Store`] with expiry and the command logic,
//!   driven by a per-connection [`resp::RespSession`].
//! * [`proxy`]: the PROXY protocol (v1 and v2) a load balancer prepends to
//!   each connection: an incremental strict parser, TLVs, an encoder, and the
//!   per-listener trust policy.
//!
//! # Why
//!
//! Keeping the protocols free of sockets, timers and the event loop makes them
//! testable byte-by-byte (every split point of a pipelined input) and keeps the
//! engine glue thin: on readable, call `session.on_bytes(inbound, ..., &mut out)`,
//! discard `consumed` bytes from the inbound buffer, write `out` with one
//! syscall (so a pipelined batch gets one write), and close when asked to.
//! Nothing here panics on any input; malformed input becomes an error value
//! whose reply has already been appended to `out`.

#[cfg(feature = "http")]
pub mod http;
pub mod proxy;
pub mod resp;
#[cfg(feature = "websocket")]
pub mod websocket;
