//! Per-connection HTTP/1.1 state machine and the TechEmpower handlers.

use super::response::CONTINUE_100;
use super::{parse_request, write_response, HttpError, Limits, Parsed, Request, Response};

/// What [`Session::on_bytes`] did with the inbound bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionResult {
    /// Bytes of the input fully handled; drop them from the inbound buffer.
    pub consumed: usize,
    /// Flush `out`, then close the connection.
    pub close: bool,
}

/// Per-connection HTTP/1.1 state: limits, request count, the
/// `100 Continue` bookkeeping and reusable buffers.
///
/// ```
/// use netloop::protocol::http::{techempower, Session};
/// let mut session = Session::default();
/// let mut out = Vec::new();
/// let src = b"GET /plaintext HTTP/1.1\r\n\r\nGET /json HTTP/1.1\r\n\r\nGET /js";
/// let date = b"Thu, 26 Nov 2026 15:42:58 GMT";
/// let r = session.on_bytes(src, date, &mut out, &mut techempower).unwrap();
/// assert_eq!(r.consumed, src.len() - 7);
/// assert!(!r.close);
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.contains("Hello, World!"));
/// assert!(text.ends_with(r#"{"message":"Hello, World!"}"#));
/// ```
#[derive(Debug, Default)]
pub struct Session {
    limits: Limits,
    served: u64,
    continue_sent: bool,
    body_buf: Vec<u8>,
    resp: Response,
}

impl Session {
    /// A session enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Session {
            limits,
            ..Session::default()
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

    /// Handles every complete request at the start of `src` in order,
    /// calling `app` for each and appending the responses to `out`.
    ///
    /// * `src` is the connection's whole buffered input; drop
    ///   `consumed` bytes from it afterwards and keep the rest for the next
    ///   call (with more bytes appended).
    /// * `date` is the current HTTP date, e.g. from a
    ///   [`DateCache`](super::DateCache).
    /// * When a request's head is complete, it asked for
    ///   `Expect: 100-continue` and its body is missing, `100 Continue` is
    ///   appended (once per request).
    /// * `close` is set after a response with `Connection: close`
    ///   (client asked, HTTP/1.0 default, request limit reached, or the
    ///   handler called [`Response::close`]); later input is ignored.
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
        while pos < src.len() {
            match parse_request(&src[pos..], &self.limits, &mut self.body_buf) {
                Err(e) => {
                    tracing::debug!(error = %e, "rejecting HTTP request");
                    write_response(out, e.status(), e.reason(), &[], b"", date, false);
                    return Err(e);
                }
                Ok(Parsed::Partial { expect_continue }) => {
                    if expect_continue && !self.continue_sent {
                        out.extend_from_slice(CONTINUE_100);
                        self.continue_sent = true;
                    }
                    break;
                }
                Ok(Parsed::Complete { request, consumed }) => {
                    pos += consumed;
                    self.continue_sent = false;
                    self.served += 1;
                    let limit = self.limits.max_requests_per_connection;
                    let limit_hit = limit != 0 && self.served >= limit;
                    self.resp.clear();
                    app(&request, &mut self.resp);
                    let keep_alive = request.keep_alive() && !limit_hit && !self.resp.wants_close();
                    let head_only = request.method() == "HEAD";
                    self.resp.write_to(out, date, keep_alive, head_only);
                    if !keep_alive {
                        return Ok(SessionResult {
                            consumed: pos,
                            close: true,
                        });
                    }
                }
            }
        }
        Ok(SessionResult {
            consumed: pos,
            close: false,
        })
    }
}

/// The TechEmpower benchmark handlers: `/plaintext` answers
/// `Hello, World!` as `text/plain`, `/json` answers
/// `{"message":"Hello, World!"}` as `application/json`, anything else 404.
pub fn techempower(req: &Request<'_>, resp: &mut Response) {
    match req.path_only() {
        "/plaintext" => {
            resp.header("Content-Type", "text/plain")
                .set_body(b"Hello, World!");
        }
        "/json" => {
            resp.header("Content-Type", "application/json")
                .set_body(br#"{"message":"Hello, World!"}"#);
        }
        _ => {
            resp.set_status(404)
                .header("Content-Type", "text/plain")
                .set_body(b"Not Found");
        }
    }
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
            b"GET /nope HTTP/1.1\r\n\r\nHEAD /json HTTP/1.1\r\n\r\n",
        );
        let r = r.unwrap();
        assert!(!r.close);
        assert_eq!(out.matches("HTTP/1.1 ").count(), 2);
        assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(out.ends_with("Content-Length: 27\r\n\r\n"));
        assert_eq!(s.requests_served(), 2);
    }

    #[test]
    fn continue_sent_once() {
        let mut s = Session::default();
        let head = b"POST /json HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        let (r, out) = run(&mut s, head);
        assert_eq!(r.unwrap().consumed, 0);
        assert_eq!(out.as_bytes(), CONTINUE_100);
        let (_, out) = run(&mut s, head);
        assert!(out.is_empty());
        let mut full = head.to_vec();
        full.extend_from_slice(b"ok");
        let (r, out) = run(&mut s, &full);
        assert_eq!(r.unwrap().consumed, full.len());
        assert!(out.starts_with("HTTP/1.1 200 OK"));
    }

    #[test]
    fn request_limit_closes() {
        let mut s = Session::new(Limits {
            max_requests_per_connection: 2,
            ..Limits::default()
        });
        let src = b"GET /json HTTP/1.1\r\n\r\n".repeat(3);
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
            b"GET /json HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nTransfer-Encoding: br\r\n\r\n",
        );
        assert_eq!(r.unwrap_err().status(), 501);
        assert!(out.starts_with("HTTP/1.1 200 OK"));
        assert!(out.contains("HTTP/1.1 501 Not Implemented\r\n"));
        assert!(out.ends_with("Connection: close\r\n\r\n"));
    }
}
