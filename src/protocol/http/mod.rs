//! HTTP/1.1 server-side protocol: zero-copy request parsing, response
//! writing, a cached `Date`, and the per-connection [`Session`].
//!
//! # Glue sketch
//!
//! ```
//! use netloop::protocol::http::{techempower, DateCache, Session};
//! let mut date = DateCache::new(); // one per loop; `update` it from a tick
//! let mut session = Session::default(); // one per connection
//! let mut inbound = b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
//! let mut out = Vec::new();
//! date.update(std::time::SystemTime::now());
//! let res = session.on_bytes(&inbound, date.get(), &mut out, &mut techempower);
//! match res {
//!     Ok(r) => {
//!         inbound.drain(..r.consumed);
//!         // write `out` with one syscall; close if `r.close`
//!     }
//!     Err(_) => { /* write `out`, then close */ }
//! }
//! assert!(inbound.is_empty());
//! ```
//!
//! The session keeps its place between calls: a request may arrive split
//! across any number of reads and costs time linear in its size; body bytes
//! are consumed as they arrive (see [`Session`]'s docs), and [`Limits`] bound
//! what it ever holds. Every request gets an answer or a clear error status
//! (400, 413, 431, 501) followed by a close — never silence.
//!
//! With the `http-types` feature, [`Method`] converts to and from
//! `http::Method`; [`Response::header`] and [`Request::header`] take the
//! `http` crate's header names and values as they are, feature or not.

mod chunked;
mod date;
mod error;
mod limits;
mod method;
mod request;
mod response;
pub mod server;
mod session;

pub use date::{format_http_date, DateCache, HTTP_DATE_LEN};
pub use error::HttpError;
pub use limits::{Limits, MAX_HEADERS_CAP};
#[cfg(feature = "http-types")]
pub use method::ExtensionMethod;
pub use method::Method;
pub use request::{parse_request, Headers, Parsed, Request, Version};
pub use response::{reason_phrase, write_response, Response, CONTINUE_100};
pub use server::{HttpConn, HttpServer, HttpTimeouts};
pub use session::{techempower, Session, SessionResult, DEFAULT_OUTPUT_BUDGET};
