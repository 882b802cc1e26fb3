//! Per-connection HTTP/1.1 state machine and the TechEmpower handlers.
//!
//! # Streaming
//!
//! A [`Session`] keeps its place between calls, so the work for a request is
//! linear in its size however the bytes are split into reads:
//!
//! * **Head**: a head that arrives whole is parsed once, in place (zero-copy).
//!   A partial head stays in the caller's inbound buffer (it is bounded by
//!   [`Limits::max_header_bytes`]); later calls only search the new bytes for
//!   the head's end and parse it once it is there. (So a syntax error in a
//!   head still arriving is reported when its end arrives, or when it
//!   outgrows [`Limits::max_header_bytes`] or the server's head deadline.)
//! * **Body**: a `Content-Length` body that is already buffered whole is
//!   handed to the application in place. Otherwise the head is copied aside
//!   and body bytes are consumed *as they arrive* — copied into the session's
//!   body buffer (bounded by [`Limits::max_body_bytes`]) or, for a chunked
//!   body, decoded into it — so they never pile up in the inbound buffer and
//!   the engine's [`max_inbound_bytes`](crate::Options::max_inbound_bytes) never
//!   stalls a body the limits allow. Both buffers shrink back after a large
//!   request.
//!
//! # Output budget
//!
//! Answers are appended to the caller's `out`. Once `out` holds
//! [`output budget`](Session::set_output_budget) bytes the session stops
//! between requests and reports [`SessionResult::more`]: the caller flushes
//! `out` and, while the connection is writable, calls again. A client that
//! pipelines requests but does not read the answers thereby meets a bounded
//! amount of buffered output instead of one answer per buffered request.

use super::chunked::ChunkedDecoder;
use super::request::{find_head_end, leading_empty_lines, parse_head, Framing, ParsedHead};
use super::response::{write_response_with as write_response, ConnectionHeader, CONTINUE_100};
use super::{HttpError, Limits, Method, Request, Response, Version};

/// Default [`Session::set_output_budget`]: matches the engine's default
/// outbound high water mark.
pub const DEFAULT_OUTPUT_BUDGET: usize = 64 * 1024;
/// Head-copy capacity kept between requests.
const RETAIN_HEAD: usize = 16 * 1024;
/// Body-buffer capacity kept between requests; a larger one is freed.
const RETAIN_BODY: usize = 64 * 1024;

/// What [`Session::on_bytes`] did with the inbound bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionResult {
    /// Bytes of the input handled; drop them from the inbound buffer.
    pub consumed: usize,
    /// Flush `out`, then close the connection.
    pub close: bool,
    /// Stopped at the output budget: flush `out` and call again (with the
    /// remaining input) once the connection can take more output.
    pub more: bool,
}

/// Where the session is within the current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a head; the pending head is in the input.
    Head,
    /// Reading a `Content-Length` body: this many bytes are still due.
    Length(u64),
    /// Reading a chunked body.
    Chunked,
}

/// Per-connection HTTP/1.1 state: limits, request count, the request in
/// progress and reusable buffers.
///
/// ```
/// use netloop::protocol::http::{techempower, Session};
/// let mut session = Session::default();
/// let mut out = Vec::new();
/// let src = b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\nGET /json HTTP/1.1\r\nHost: a\r\n\r\nGET /js";
/// let date = b"Thu, 26 Nov 2026 15:42:58 GMT";
/// let r = session.on_bytes(src, date, &mut out, &mut techempower).unwrap();
/// assert_eq!(r.consumed, src.len() - 7);
/// assert!(!r.close);
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.contains("Hello, World!"));
/// assert!(text.ends_with(r#"{"message":"Hello, World!"}"#));
/// ```
#[derive(Debug)]
pub struct Session {
    limits: Limits,
    served: u64,
    phase: Phase,
    /// Head phase: where the search for the pending head's end resumes
    /// (`None`: the head has not been looked at yet).
    head_scan: Option<usize>,
    /// The head of a request whose body spans reads.
    head_buf: Vec<u8>,
    /// The body of such a request, or a decoded chunked body.
    body_buf: Vec<u8>,
    chunked: ChunkedDecoder,
    resp: Response,
    out_budget: usize,
}

impl Default for Session {
    fn default() -> Self {
        Session::new(Limits::default())
    }
}

/// The parts of a [`Session`] an answer needs, borrowed apart from the
/// buffers a request may borrow.
struct Answer<'s> {
    limits: &'s Limits,
    served: &'s mut u64,
    resp: &'s mut Response,
}

impl Answer<'_> {
    /// Answers `request` (the application, or 501 for an unknown method) and
    /// returns whether the connection stays open.
    fn answer<F>(
        &mut self,
        request: &Request<'_>,
        date: &[u8],
        out: &mut Vec<u8>,
        app: &mut F,
    ) -> bool
    where
        F: FnMut(&Request<'_>, &mut Response),
    {
        *self.served += 1;
        let limit = self.limits.max_requests_per_connection;
        let limit_hit = limit != 0 && *self.served >= limit;
        let keep_alive = request.keep_alive() && !limit_hit;
        let http10 = request.version() == Version::Http10;
        let Some(method) = request.known_method() else {
            tracing::debug!(
                method = request.method(),
                "answering 501 to an unknown method"
            );
            let conn = ConnectionHeader::for_request(keep_alive, http10);
            write_response(out, 501, "Not Implemented", &[], b"", date, conn);
            return keep_alive;
        };
        self.resp.clear();
        app(request, self.resp);
        let keep_alive = keep_alive && !self.resp.wants_close();
        let conn = ConnectionHeader::for_request(keep_alive, http10);
        self.resp
            .write_with(out, date, conn, method == Method::Head);
        keep_alive
    }
}

impl Session {
    /// A session enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Session {
            limits,
            served: 0,
            phase: Phase::Head,
            head_scan: None,
            head_buf: Vec::new(),
            body_buf: Vec::new(),
            chunked: ChunkedDecoder::default(),
            resp: Response::new(),
            out_budget: DEFAULT_OUTPUT_BUDGET,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Number of requests answered so far.
    pub fn requests_served(&self) -> u64 {
        self.served
    }

    /// Sets how many bytes of answers [`on_bytes`](Self::on_bytes) produces
    /// before it stops between requests and reports
    /// [`more`](SessionResult::more) (default [`DEFAULT_OUTPUT_BUDGET`]).
    /// A single answer may take `out` past it.
    pub fn set_output_budget(&mut self, bytes: usize) {
        self.out_budget = bytes.max(1);
    }

    /// Whether a request's body is being read (its head has been consumed).
    /// Otherwise any input left unconsumed is the start of the next head.
    pub fn in_body(&self) -> bool {
        self.phase != Phase::Head
    }

    /// Bytes the session holds for the request in progress (its head copy
    /// and body buffer capacities), for memory accounting.
    pub fn buffered_capacity(&self) -> usize {
        self.head_buf.capacity() + self.body_buf.capacity()
    }

    /// Handles the connection's unconsumed input `src`: answers every
    /// request that completes in it, in order, and consumes body bytes of a
    /// request still arriving.
    ///
    /// * `src` is the connection's whole unconsumed input; drop `consumed`
    ///   bytes from it afterwards and pass the rest (with new bytes appended)
    ///   next time.
    /// * `date` is the current HTTP date, e.g. from a
    ///   [`DateCache`](super::DateCache).
    /// * When a head with `Expect: 100-continue` is complete and its body is
    ///   still to come, `100 Continue` is appended (once per request).
    /// * `close` is set after a response with `Connection: close`
    ///   (client asked, HTTP/1.0 default, request limit reached, or the
    ///   handler called [`Response::close`]); later input is ignored.
    /// * Requests with a method other than the standard ones are answered
    ///   `501 Not Implemented` without calling `app`.
    ///
    /// # Errors
    ///
    /// On a protocol error the matching error response (e.g. `413`) has
    /// already been appended to `out`, after the responses for the earlier
    /// requests: flush `out` and close the connection.
    pub fn on_bytes<F>(
        &mut self,
        src: &[u8],
        date: &[u8],
        out: &mut Vec<u8>,
        app: &mut F,
    ) -> Result<SessionResult, HttpError>
    where
        F: FnMut(&Request<'_>, &mut Response),
    {
        let mut pos = 0;
        match self.run(src, &mut pos, date, out, app) {
            Ok(step) => Ok(SessionResult {
                consumed: pos,
                close: step == Step::Close,
                more: step == Step::More,
            }),
            Err(e) => {
                tracing::debug!(error = %e, "rejecting HTTP request");
                write_response(
                    out,
                    e.status(),
                    e.reason(),
                    &[],
                    b"",
                    date,
                    ConnectionHeader::Close,
                );
                Err(e)
            }
        }
    }

    fn run<F>(
        &mut self,
        src: &[u8],
        pos: &mut usize,
        date: &[u8],
        out: &mut Vec<u8>,
        app: &mut F,
    ) -> Result<Step, HttpError>
    where
        F: FnMut(&Request<'_>, &mut Response),
    {
        loop {
            let done = match self.phase {
                Phase::Head => {
                    if out.len() >= self.out_budget && *pos < src.len() {
                        return Ok(Step::More);
                    }
                    match self.head(src, pos, date, out, app)? {
                        Some(keep_alive) => keep_alive,
                        None => return Ok(Step::Wait),
                    }
                }
                Phase::Length(due) => {
                    let rest = &src[*pos..];
                    let n = rest.len().min(usize::try_from(due).unwrap_or(usize::MAX));
                    self.body_buf.extend_from_slice(&rest[..n]);
                    *pos += n;
                    let due = due - n as u64;
                    if due > 0 {
                        self.phase = Phase::Length(due);
                        return Ok(Step::Wait);
                    }
                    self.finish_spanning(date, out, app)?
                }
                Phase::Chunked => {
                    *pos += self
                        .chunked
                        .decode(&src[*pos..], &mut self.body_buf, &self.limits)?;
                    if !self.chunked.is_done() {
                        return Ok(Step::Wait);
                    }
                    self.finish_spanning(date, out, app)?
                }
            };
            if !done {
                return Ok(Step::Close);
            }
        }
    }

    /// In the head phase: parses the pending head if it is complete and
    /// answers its request if the body is there too. `Some(keep_alive)` after
    /// an answer (or after moving on to a body that spans reads: `true`),
    /// `None` when more input is needed.
    fn head<F>(
        &mut self,
        src: &[u8],
        pos: &mut usize,
        date: &[u8],
        out: &mut Vec<u8>,
        app: &mut F,
    ) -> Result<Option<bool>, HttpError>
    where
        F: FnMut(&Request<'_>, &mut Response),
    {
        if self.head_scan.is_none() {
            *pos += leading_empty_lines(&src[*pos..]);
        }
        let rest = &src[*pos..];
        if rest.is_empty() {
            return Ok(None);
        }
        let head = match self.head_scan {
            // First look: parse in place (one pass when the head is whole).
            None => match parse_head(rest, &self.limits)? {
                Some(head) => head,
                None => {
                    self.head_scan = Some(match find_head_end(rest, 0) {
                        Err(from) => from,
                        Ok(_) => return Err(HttpError::Malformed("incomplete request head")),
                    });
                    return Ok(None);
                }
            },
            // Seen before: search only the new bytes for the head's end.
            Some(from) => match find_head_end(rest, from) {
                Err(from) => {
                    if rest.len() > self.limits.max_header_bytes {
                        return Err(HttpError::HeadersTooLarge);
                    }
                    self.head_scan = Some(from);
                    return Ok(None);
                }
                Ok(end) => parse_head(&rest[..end], &self.limits)?
                    .ok_or(HttpError::Malformed("incomplete request head"))?,
            },
        };
        self.head_scan = None;
        let ParsedHead {
            mut request,
            len,
            framing,
        } = head;
        let body = &rest[len..];
        let mut answer = Answer {
            limits: &self.limits,
            served: &mut self.served,
            resp: &mut self.resp,
        };
        match framing {
            Framing::None => {
                *pos += len;
                Ok(Some(answer.answer(&request, date, out, app)))
            }
            Framing::Length(n) if n <= body.len() as u64 => {
                let n = n as usize;
                request.body = &body[..n];
                *pos += len + n;
                Ok(Some(answer.answer(&request, date, out, app)))
            }
            Framing::Length(n) => {
                self.body_buf.clear();
                self.body_buf.extend_from_slice(body);
                self.phase = Phase::Length(n - body.len() as u64);
                self.hold_head(rest, len, request.expect_continue() && body.is_empty(), out);
                *pos = src.len();
                Ok(Some(true))
            }
            Framing::Chunked => {
                self.body_buf.clear();
                self.chunked.reset();
                let used = self
                    .chunked
                    .decode(body, &mut self.body_buf, &self.limits)?;
                if self.chunked.is_done() {
                    request.body = &self.body_buf;
                    *pos += len + used;
                    let mut answer = Answer {
                        limits: &self.limits,
                        served: &mut self.served,
                        resp: &mut self.resp,
                    };
                    let keep_alive = answer.answer(&request, date, out, app);
                    shrink(&mut self.body_buf, RETAIN_BODY);
                    return Ok(Some(keep_alive));
                }
                self.phase = Phase::Chunked;
                self.hold_head(rest, len, request.expect_continue() && body.is_empty(), out);
                *pos = src.len();
                Ok(Some(true))
            }
        }
    }

    /// Keeps a copy of the head whose body spans reads (the input holding it
    /// is consumed), and sends `100 Continue` if the client waits for it.
    fn hold_head(&mut self, rest: &[u8], len: usize, send_continue: bool, out: &mut Vec<u8>) {
        self.head_buf.clear();
        self.head_buf.extend_from_slice(&rest[..len]);
        if send_continue {
            out.extend_from_slice(CONTINUE_100);
        }
    }

    /// The body of a request that spanned reads is complete: answer it from
    /// the held head and body, then give back buffer memory past the
    /// retained sizes.
    fn finish_spanning<F>(
        &mut self,
        date: &[u8],
        out: &mut Vec<u8>,
        app: &mut F,
    ) -> Result<bool, HttpError>
    where
        F: FnMut(&Request<'_>, &mut Response),
    {
        self.phase = Phase::Head;
        // The held head parsed before; parsing it again is deterministic.
        let mut request = parse_head(&self.head_buf, &self.limits)?
            .ok_or(HttpError::Malformed("incomplete request head"))?
            .request;
        request.body = &self.body_buf;
        let mut answer = Answer {
            limits: &self.limits,
            served: &mut self.served,
            resp: &mut self.resp,
        };
        let keep_alive = answer.answer(&request, date, out, app);
        shrink(&mut self.head_buf, RETAIN_HEAD);
        shrink(&mut self.body_buf, RETAIN_BODY);
        Ok(keep_alive)
    }
}

/// How [`Session::run`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Out of input.
    Wait,
    /// At the output budget.
    More,
    /// After a response that closes the connection.
    Close,
}

/// Empties `buf`, freeing it when its capacity grew past `retain`.
fn shrink(buf: &mut Vec<u8>, retain: usize) {
    if buf.capacity() > retain {
        *buf = Vec::new();
    } else {
        buf.clear();
    }
}

/// The TechEmpower benchmark handlers: `/plaintext` answers
/// `Hello, World!` as `text/plain`, `/json` answers
/// `{"message":"Hello, World!"}` as `application/json` (both `GET` and
/// `HEAD` only: other methods get `405` with `Allow`), anything else 404.
pub fn techempower(req: &Request<'_>, resp: &mut Response) {
    let (content_type, body): (&str, &[u8]) = match req.path_only() {
        "/plaintext" => ("text/plain", b"Hello, World!"),
        "/json" => ("application/json", br#"{"message":"Hello, World!"}"#),
        _ => {
            resp.set_status(404)
                .header("Content-Type", "text/plain")
                .set_body(b"Not Found");
            return;
        }
    };
    if !matches!(req.known_method(), Some(Method::Get | Method::Head)) {
        resp.set_status(405)
            .header("Allow", "GET, HEAD")
            .header("Content-Type", "text/plain")
            .set_body(b"Method Not Allowed");
        return;
    }
    resp.header("Content-Type", content_type).set_body(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8] = b"Thu, 26 Nov 2026 15:42:58 GMT";

    fn run(session: &mut Session, src: &[u8]) -> (Result<SessionResult, HttpError>, String) {
        let mut out = Vec::new();
        let r = session.on_bytes(src, DATE, &mut out, &mut techempower);
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn pipelined_and_404() {
        let mut s = Session::default();
        let (r, out) = run(
            &mut s,
            b"GET /nope HTTP/1.1\r\nHost: h\r\n\r\nHEAD /json HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        let r = r.unwrap();
        assert!(!r.close);
        assert_eq!(out.matches("HTTP/1.1 ").count(), 2);
        assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(out.ends_with("Content-Length: 27\r\n\r\n"));
        assert_eq!(s.requests_served(), 2);
    }

    #[test]
    fn continue_sent_once_and_body_consumed_as_it_arrives() {
        let mut s = Session::default();
        let head =
            b"POST /json HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        let (r, out) = run(&mut s, head);
        // The head is taken aside: the input is consumed.
        assert_eq!(r.unwrap().consumed, head.len());
        assert!(s.in_body());
        assert_eq!(out.as_bytes(), CONTINUE_100);
        let (r, out) = run(&mut s, b"o");
        assert_eq!(r.unwrap().consumed, 1);
        assert!(out.is_empty(), "100 Continue is sent once");
        let (r, out) = run(&mut s, b"kGET");
        assert_eq!(r.unwrap().consumed, 1, "the next request's bytes stay");
        assert!(out.starts_with("HTTP/1.1 405 Method Not Allowed"));
        assert!(!s.in_body());
    }

    #[test]
    fn unknown_method_gets_501_and_keeps_the_connection() {
        let mut s = Session::default();
        let (r, out) = run(
            &mut s,
            b"BREW /pot HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nteaGET /json HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        let r = r.unwrap();
        assert!(!r.close);
        assert!(out.starts_with("HTTP/1.1 501 Not Implemented\r\n"), "{out}");
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 1);
    }

    #[test]
    fn http10_keep_alive_is_announced() {
        let mut s = Session::default();
        let (r, out) = run(
            &mut s,
            b"GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /json HTTP/1.0\r\n\r\n",
        );
        assert!(r.unwrap().close);
        let (first, second) = out.split_at(out.rfind("HTTP/1.1 200").unwrap());
        assert!(first.contains("Connection: keep-alive\r\n"), "{first}");
        assert!(second.contains("Connection: close\r\n"), "{second}");
    }

    #[test]
    fn output_budget_stops_between_requests() {
        let mut s = Session::default();
        s.set_output_budget(1);
        let src = b"GET /json HTTP/1.1\r\nHost: h\r\n\r\n".repeat(3);
        let (r, out) = run(&mut s, &src);
        let r = r.unwrap();
        assert!(r.more && !r.close);
        assert_eq!(r.consumed, src.len() / 3);
        assert_eq!(out.matches("HTTP/1.1 200").count(), 1);
    }

    #[test]
    fn request_limit_closes() {
        let mut s = Session::new(Limits {
            max_requests_per_connection: 2,
            ..Limits::default()
        });
        let src = b"GET /json HTTP/1.1\r\nHost: h\r\n\r\n".repeat(3);
        let (r, out) = run(&mut s, &src);
        let r = r.unwrap();
        assert!(r.close);
        assert_eq!(r.consumed, src.len() / 3 * 2);
        assert_eq!(out.matches("Connection: close").count(), 1);
    }

    #[test]
    fn error_writes_response() {
        let mut s = Session::default();
        let (r, out) = run(
            &mut s,
            b"GET /json HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: br\r\n\r\n",
        );
        assert_eq!(r.unwrap_err().status(), 501);
        assert!(out.starts_with("HTTP/1.1 200 OK"));
        assert!(out.contains("HTTP/1.1 501 Not Implemented\r\n"));
        assert!(out.ends_with("Connection: close\r\n\r\n"));
    }
}
