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
//! Parsing is stateless and restarts from the beginning of the buffered
//! input on each call, so a request may arrive split across any number of
//! reads; limits ([`Limits`]) bound how much is ever buffered or rescanned.

mod date;
mod error;
mod limits;
mod request;
mod response;
pub mod server;
mod session;

pub use date::{format_http_date, DateCache, HTTP_DATE_LEN};
pub use error::HttpError;
pub use limits::{Limits, MAX_HEADERS_CAP};
pub use request::{parse_request, Headers, Parsed, Request, Version};
pub use response::{reason_phrase, write_response, Response, CONTINUE_100};
pub use server::{HttpConn, HttpServer};
pub use session::{techempower, Session, SessionResult};
