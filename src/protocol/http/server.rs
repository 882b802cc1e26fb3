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
//! bytes. The session keeps its place in a partial request, so a request
//! split over many reads costs time linear in its size. The output `Vec` is
//! owned by the loop and reused, so a steady stream of requests allocates
//! nothing.
//!
//! # Errors
//!
//! A malformed or over-limit request gets its error response (`400`, `413`,
//! `431`, `501`), after the responses to the requests before it, and the
//! connection is closed once that is flushed
//! ([`CloseReason::Protocol`] with the reason). Nothing panics on any input.
//! (A client still uploading a rejected body may see a reset instead of the
//! status until the engine's lingering close lands; nothing here changes then.)
//!
//! # Slow clients
//!
//! [`HttpTimeouts`] (on by default) put every phase of a connection under a
//! timer of the engine's timing wheel: the first head and every later head
//! must be complete within [`head`](HttpTimeouts::head) of its first byte
//! (slowloris) — past it the client is answered `408 Request Timeout` and the
//! connection closes (silently if not a byte of the head arrived) —, a body
//! must keep making progress ([`body_progress`](HttpTimeouts::body_progress)),
//! and a connection idle between requests closes after
//! [`keep_alive`](HttpTimeouts::keep_alive). Timers are only touched when a
//! phase starts or ends, never for a request that arrives whole.
//!
//! A client that pipelines requests but does not read the responses meets
//! backpressure: the session stops at its output budget, and once the
//! connection's outbound queue is above its high water mark the server stops
//! reading and parsing that connection until
//! [`on_writable_changed`](EventHandler::on_writable_changed) says it drained
//! below the low mark. Memory per such client is bounded by the water marks,
//! the budget and the socket buffers.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::response::{write_response_with, ConnectionHeader};
use super::{DateCache, Limits, Request, Response, Session};
use crate::{Action, CloseReason, Conn, EventHandler, LoopInfo, TimeoutKind};

/// Output buffers larger than this are dropped after use instead of being
/// kept for the next batch (a single huge response should not pin memory).
const MAX_RETAINED_OUT: usize = 1024 * 1024;
/// Initial capacity of the per-loop output buffer.
const INITIAL_OUT: usize = 16 * 1024;

/// The timeouts an [`HttpServer`] applies to its connections; `None` turns
/// one off. They run on the engine's timing wheel
/// ([`Conn::set_timer`], [`Conn::set_read_timeout`],
/// [`Conn::set_idle_timeout`]); an expired one closes the connection with
/// [`CloseReason::Timeout`] — after a `408 Request Timeout` for a head that
/// started arriving.
///
/// ```
/// use std::time::Duration;
/// use netloop::protocol::http::HttpTimeouts;
/// let t = HttpTimeouts { head: Some(Duration::from_secs(5)), ..HttpTimeouts::default() };
/// assert_eq!(t.keep_alive, Some(Duration::from_secs(60)));
/// assert_eq!(HttpTimeouts::off().head, None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// A request head must be complete this long after the connection opened
    /// (for the first) or after its first byte arrived (default 10 s);
    /// otherwise `408 Request Timeout`, then close.
    pub head: Option<Duration>,
    /// While a body is being received, the longest time without a byte of it
    /// (default 30 s).
    pub body_progress: Option<Duration>,
    /// The longest time a connection may carry no traffic at all, such as a
    /// keep-alive connection between requests (default 60 s).
    pub keep_alive: Option<Duration>,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts {
            head: Some(Duration::from_secs(10)),
            body_progress: Some(Duration::from_secs(30)),
            keep_alive: Some(Duration::from_secs(60)),
        }
    }
}

impl HttpTimeouts {
    /// No timeouts at all (the engine's own options still apply).
    pub fn off() -> Self {
        HttpTimeouts {
            head: None,
            body_progress: None,
            keep_alive: None,
        }
    }
}

/// Per-connection state of an [`HttpServer`]: the connection's [`Session`]
/// and which of its timers are armed.
///
/// Created empty by the engine and filled in `on_open` with the server's
/// [`Limits`].
#[derive(Debug, Default)]
pub struct HttpConn {
    session: Option<Session>,
    /// The head deadline (the connection's timer) is armed.
    head_timer: bool,
    /// The body-progress (read) timeout is set.
    body_timer: bool,
    /// Reading is paused until the outbound queue drains.
    backpressure: bool,
}

impl HttpConn {
    /// The connection's session (`None` before `on_open`).
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Whether the server stopped reading this connection until its
    /// outbound queue drains.
    pub fn is_backpressured(&self) -> bool {
        self.backpressure
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
    timeouts: HttpTimeouts,
    date: DateCache,
    /// Set once `on_tick` ran: the date is then kept fresh by ticks.
    ticking: bool,
    out: Vec<u8>,
}

impl<F> std::fmt::Debug for HttpServer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("limits", &self.limits)
            .field("timeouts", &self.timeouts)
            .field("ticking", &self.ticking)
            .finish_non_exhaustive()
    }
}

/// What one pass over a connection's input ended with.
enum Served {
    /// Keep the connection.
    Open,
    /// Close it after the queued output (`Connection: close` was sent).
    Close,
    /// A protocol error was answered; close with this reason.
    Rejected(String),
}

impl<F> HttpServer<F>
where
    F: FnMut(&Request<'_>, &mut Response) + 'static,
{
    /// A server answering every request with `app`, with default [`Limits`]
    /// and [`HttpTimeouts`].
    pub fn new(app: F) -> Self {
        Self::with_limits(app, Limits::default())
    }

    /// A server enforcing `limits` on every connection.
    pub fn with_limits(app: F, limits: Limits) -> Self {
        HttpServer {
            app,
            limits,
            timeouts: HttpTimeouts::default(),
            date: DateCache::new(),
            ticking: false,
            out: Vec::with_capacity(INITIAL_OUT),
        }
    }

    /// Sets the timeouts for connections opened from now on.
    pub fn with_timeouts(mut self, timeouts: HttpTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> &HttpTimeouts {
        &self.timeouts
    }

    /// The application.
    pub fn app_mut(&mut self) -> &mut F {
        &mut self.app
    }

    /// The loop's cached `Date` value, as used in responses.
    pub fn date(&self) -> &[u8] {
        self.date.get()
    }

    /// Writes the batch output (if any); false when the peer is gone.
    fn flush_out(&mut self, conn: &mut Conn<'_, HttpConn>) -> bool {
        let ok = self.out.is_empty() || conn.write(&self.out).is_ok();
        if self.out.capacity() > MAX_RETAINED_OUT {
            self.out = Vec::with_capacity(INITIAL_OUT);
        } else {
            self.out.clear();
        }
        ok
    }

    /// Answers what the connection's input holds, as far as output
    /// backpressure allows, then brings its timers up to date.
    fn serve(&mut self, conn: &mut Conn<'_, HttpConn>) -> Action {
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
        let served = loop {
            self.out.clear();
            let res = session.on_bytes(
                conn.peek_all(),
                self.date.get(),
                &mut self.out,
                &mut self.app,
            );
            let (consumed, step) = match res {
                Ok(r) if r.close => (r.consumed, Served::Close),
                Ok(r) => (r.consumed, Served::Open),
                Err(e) => (conn.buffered(), Served::Rejected(e.to_string())),
            };
            conn.discard(consumed);
            if !self.flush_out(conn) {
                break Served::Close;
            }
            let more = matches!(res, Ok(r) if r.more);
            if !matches!(step, Served::Open) {
                break step;
            }
            if !conn.is_writable() {
                // Output backs up: stop reading and parsing until it drains
                // (`on_writable_changed(true)` resumes).
                conn.pause_read();
                conn.state_mut().backpressure = true;
                break Served::Open;
            }
            if !more {
                break Served::Open;
            }
        };
        let in_body = session.in_body();
        conn.state_mut().session = Some(session);
        match served {
            Served::Open => {
                self.update_timers(conn, in_body);
                Action::None
            }
            Served::Close => Action::Close,
            Served::Rejected(reason) => {
                conn.close_with(CloseReason::Protocol(reason));
                Action::None
            }
        }
    }

    /// Arms or clears the head deadline and the body-progress timeout for
    /// the phase the connection is in now. Touches the timers only when the
    /// phase changed, so requests that arrive whole cost nothing here.
    fn update_timers(&self, conn: &mut Conn<'_, HttpConn>, in_body: bool) {
        let t = self.timeouts;
        let state = conn.state();
        let want_head = t.head.is_some() && !in_body && !state.backpressure && conn.buffered() > 0;
        let want_body = t.body_progress.is_some() && in_body;
        if want_head != state.head_timer {
            let at = t.head.filter(|_| want_head).map(|d| Instant::now() + d);
            conn.set_timer(at);
            conn.state_mut().head_timer = want_head;
        }
        if want_body != conn.state().body_timer {
            conn.set_read_timeout(t.body_progress.filter(|_| want_body));
            conn.state_mut().body_timer = want_body;
        }
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
        if let Some(idle) = self.timeouts.keep_alive {
            conn.set_idle_timeout(Some(idle));
        }
        if let Some(head) = self.timeouts.head {
            // The first head is due this long after the connection opened.
            conn.set_timer(Some(Instant::now() + head));
            conn.state_mut().head_timer = true;
        }
        Action::None
    }

    /// The head deadline passed: `408` if part of a head is waiting (a
    /// client that sent nothing at all, such as a browser's preconnect, is
    /// closed without a word), then close.
    fn on_timer(&mut self, conn: &mut Conn<'_, HttpConn>) -> Action {
        if !std::mem::take(&mut conn.state_mut().head_timer) {
            return Action::None;
        }
        tracing::debug!("request head not complete in time; answering 408");
        if conn.buffered() > 0 {
            if !self.ticking {
                self.date.update(SystemTime::now());
            }
            self.out.clear();
            let date = self.date.get();
            let close = ConnectionHeader::Close;
            write_response_with(&mut self.out, 408, "Request Timeout", &[], b"", date, close);
            self.flush_out(conn);
            let n = conn.buffered();
            conn.discard(n);
        }
        conn.close_with(CloseReason::Timeout(TimeoutKind::Deadline));
        Action::None
    }

    fn on_traffic(&mut self, conn: &mut Conn<'_, HttpConn>) -> Action {
        if conn.buffered() == 0 || conn.state().backpressure {
            return Action::None;
        }
        self.serve(conn)
    }

    fn on_writable_changed(&mut self, conn: &mut Conn<'_, HttpConn>, writable: bool) {
        if writable && conn.state().backpressure {
            conn.state_mut().backpressure = false;
            conn.resume_read();
            if self.serve(conn) == Action::Close {
                conn.close();
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
