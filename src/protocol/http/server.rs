//! An HTTP/1.1 server as a netloop [`EventHandler`].
//!
//! [`HttpServer`] glues the transport-free [`Session`] to an event loop: one
//! handler per loop (built by the engine's factory), one [`Session`] per
//! connection, one [`DateCache`] and one output buffer per loop.
//!
//! ```no_run
//! use netloop::protocol::http::{techempower, HttpServer};
//! use netloop::Engine;
//!
//! let engine = Engine::builder()
//!     .loops(2)
//!     .ticker(true) // refreshes the Date header from `on_tick`
//!     .listen("127.0.0.1:8080")
//!     .start(|_| HttpServer::new(techempower))
//!     .unwrap();
//! println!("listening on {}", engine.local_addr());
//! engine.wait();
//! ```
//!
//! # The hot path
//!
//! On readable, the handler takes all buffered inbound bytes as one slice
//! ([`Conn::peek_all`]), lets [`Session::on_bytes`] answer every complete
//! request in it, writes all responses of the batch with **one** `write`
//! (so `N` pipelined requests cost one syscall), then discards the consumed
//! bytes. A partial request stays buffered and is parsed again when more
//! bytes arrive. The output `Vec` is owned by the loop and reused, so a
//! steady stream of requests allocates nothing.
//!
//! # Errors
//!
//! A malformed or over-limit request gets its error response (`400`, `413`,
//! `431`, `501`), after the responses to the requests before it, and the
//! connection is closed once that is flushed. Nothing panics on any input.
//!
//! # Slow clients
//!
//! The server has no timers: a client that sends half a request and stops
//! keeps its connection (and the bytes it sent, bounded by [`Limits`]) until
//! it goes away. Read/idle timeouts are the engine's flow-control concern
//! (TODO: once the engine offers per-connection deadlines, arm one in
//! `on_open` and re-arm it whenever a request completes; nothing else here
//! has to change).
//!
//! Likewise, a client that pipelines requests but never reads the responses
//! makes the outbound queue grow: the engine does not yet pause reading when
//! a connection's outbound queue is large (also flow control).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{DateCache, Limits, Request, Response, Session};
use crate::{Action, CloseReason, Conn, EventHandler, LoopInfo};

/// Output buffers larger than this are dropped after use instead of being
/// kept for the next batch (a single huge response should not pin memory).
const MAX_RETAINED_OUT: usize = 1024 * 1024;
/// Initial capacity of the per-loop output buffer.
const INITIAL_OUT: usize = 16 * 1024;

/// Per-connection state of an [`HttpServer`]: the connection's [`Session`].
///
/// Created empty by the engine and filled in `on_open` with the server's
/// [`Limits`].
#[derive(Debug, Default)]
pub struct HttpConn {
    session: Option<Session>,
}

impl HttpConn {
    /// The connection's session (`None` before `on_open`).
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }
}

/// A reusable HTTP/1.1 server handler, generic over the application
/// `F: FnMut(&Request, &mut Response)`.
///
/// Build one per event loop (`Engine::builder().start(|_| HttpServer::new(app))`).
/// The `Date` header is refreshed from [`on_tick`](EventHandler::on_tick) when
/// the engine's ticker is on (recommended: `.ticker(true)`); without ticks the
/// handler checks the clock once per batch instead, which is also correct,
/// just a clock read per batch.
///
/// Pipelined requests are answered in order with one write per batch,
/// `Expect: 100-continue` gets `100 Continue` before the body is read,
/// HTTP/1.0 and `Connection: close` close after the response, and protocol
/// errors are answered with their status and then closed.
pub struct HttpServer<F> {
    app: F,
    limits: Limits,
    date: DateCache,
    /// Set once `on_tick` ran: the date is then kept fresh by ticks.
    ticking: bool,
    out: Vec<u8>,
}

impl<F> std::fmt::Debug for HttpServer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("limits", &self.limits)
            .field("ticking", &self.ticking)
            .finish_non_exhaustive()
    }
}

impl<F> HttpServer<F>
where
    F: FnMut(&Request<'_>, &mut Response) + 'static,
{
    /// A server answering every request with `app`, with default [`Limits`].
    pub fn new(app: F) -> Self {
        Self::with_limits(app, Limits::default())
    }

    /// A server enforcing `limits` on every connection.
    pub fn with_limits(app: F, limits: Limits) -> Self {
        HttpServer {
            app,
            limits,
            date: DateCache::new(),
            ticking: false,
            out: Vec::with_capacity(INITIAL_OUT),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The application.
    pub fn app_mut(&mut self) -> &mut F {
        &mut self.app
    }

    /// The loop's cached `Date` value, as used in responses.
    pub fn date(&self) -> &[u8] {
        self.date.get()
    }

    /// Writes the batch output (if any) and returns the action to take.
    fn flush_out(&mut self, conn: &mut Conn<'_, HttpConn>, close: bool) -> Action {
        let mut action = if close { Action::Close } else { Action::None };
        if !self.out.is_empty() && conn.write(&self.out).is_err() {
            action = Action::Close;
        }
        if self.out.capacity() > MAX_RETAINED_OUT {
            self.out = Vec::with_capacity(INITIAL_OUT);
        } else {
            self.out.clear();
        }
        action
    }
}

/// Time until just after the next whole second of the wall clock, so the
/// cached date changes right after the second does.
fn until_next_second(now: SystemTime) -> Duration {
    let sub = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_nanos(u64::from(1_000_000_000 - sub.min(999_999_999)) + 1_000_000)
}

impl<F> EventHandler for HttpServer<F>
where
    F: FnMut(&Request<'_>, &mut Response) + 'static,
{
    type State = HttpConn;

    fn on_open(&mut self, conn: &mut Conn<'_, HttpConn>) -> Action {
        conn.state_mut().session = Some(Session::new(self.limits.clone()));
        Action::None
    }

    fn on_traffic(&mut self, conn: &mut Conn<'_, HttpConn>) -> Action {
        if conn.buffered() == 0 {
            return Action::None;
        }
        if !self.ticking {
            self.date.update(SystemTime::now());
        }
        // The session is moved out for the call: `peek_all` borrows the whole
        // connection, so its state cannot be borrowed at the same time.
        let mut session = conn
            .state_mut()
            .session
            .take()
            .unwrap_or_else(|| Session::new(self.limits.clone()));
        self.out.clear();
        let src = conn.peek_all();
        let res = session.on_bytes(src, self.date.get(), &mut self.out, &mut self.app);
        conn.state_mut().session = Some(session);
        match res {
            Ok(r) => {
                conn.discard(r.consumed);
                self.flush_out(conn, r.close)
            }
            Err(_) => {
                // The error response is in `out`; drop the rest of the input.
                let n = conn.buffered();
                conn.discard(n);
                self.flush_out(conn, true)
            }
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, HttpConn>, _reason: &CloseReason) {
        conn.state_mut().session = None;
    }

    fn on_tick(&mut self, _info: &LoopInfo<'_>) -> (Duration, Action) {
        let now = SystemTime::now();
        self.ticking = true;
        self.date.update(now);
        (until_next_second(now), Action::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_second_delay() {
        let t = UNIX_EPOCH + Duration::from_millis(1_000_250);
        let d = until_next_second(t);
        assert_eq!(d, Duration::from_millis(751));
        let d = until_next_second(UNIX_EPOCH + Duration::from_secs(5));
        assert_eq!(d, Duration::from_millis(1001));
        assert!(
            until_next_second(UNIX_EPOCH - Duration::from_secs(1)) <= Duration::from_millis(1001)
        );
    }
}
