//! Per-connection RESP state machine.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::commands::{execute, Action, ClientInfo};
use super::parser::{parse_command, Args, RespError, RespLimits};
use super::store::Store;

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Per-connection RESP state: limits, the reusable argument buffer and the
/// client's id and name.
///
/// ```
/// use std::time::Instant;
/// use netloop::protocol::resp::{RespSession, Store};
/// let (mut session, mut store, mut out) = (RespSession::default(), Store::new(), Vec::new());
/// let src = b"SET k v\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPI";
/// let (consumed, close) = session.on_bytes(src, &mut out, &mut store, Instant::now()).unwrap();
/// assert_eq!((consumed, close), (src.len() - 10, false));
/// assert_eq!(out, b"+OK\r\n$1\r\nv\r\n");
/// ```
#[derive(Debug)]
pub struct RespSession {
    limits: RespLimits,
    args: Vec<Range<usize>>,
    client: ClientInfo,
}

impl Default for RespSession {
    fn default() -> Self {
        Self::new(RespLimits::default())
    }
}

impl RespSession {
    /// A session enforcing `limits`, with a fresh process-unique client id.
    pub fn new(limits: RespLimits) -> Self {
        RespSession {
            limits,
            args: Vec::new(),
            client: ClientInfo {
                id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
                name: None,
            },
        }
    }

    /// The client's id and name.
    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// Executes every complete command at the start of `src` in order,
    /// appending the replies to `out`. Returns `(consumed, close)`: drop
    /// `consumed` bytes from the inbound buffer; when `close` (after
    /// `QUIT`), flush `out` and close. `now` is the clock for expiry.
    ///
    /// # Errors
    ///
    /// On a protocol error, `-ERR Protocol error: ...` has been appended to
    /// `out` after the replies to the earlier commands: flush and close.
    pub fn on_bytes(
        &mut self,
        src: &[u8],
        out: &mut Vec<u8>,
        store: &mut Store,
        now: Instant,
    ) -> Result<(usize, bool), RespError> {
        let mut pos = 0;
        while pos < src.len() {
            let rest = &src[pos..];
            match parse_command(rest, &self.limits, &mut self.args) {
                Err(e) => {
                    tracing::debug!(error = %e, "RESP protocol error");
                    e.write_reply(out);
                    return Err(e);
                }
                Ok(None) => break,
                Ok(Some(n)) => {
                    pos += n;
                    let args = Args::new(rest, &self.args);
                    if execute(&args, store, &mut self.client, now, out) == Action::Close {
                        return Ok((pos, true));
                    }
                }
            }
        }
        Ok((pos, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_ids_and_partial_input() {
        let a = RespSession::default();
        let b = RespSession::default();
        assert_ne!(a.client().id, b.client().id);
        let (mut s, mut store, mut out) = (a, Store::new(), Vec::new());
        let t = Instant::now();
        assert_eq!(
            s.on_bytes(b"*1\r\n$4\r\nPI", &mut out, &mut store, t),
            Ok((0, false))
        );
        assert_eq!(s.on_bytes(b"", &mut out, &mut store, t), Ok((0, false)));
        assert!(out.is_empty());
        assert_eq!(
            s.on_bytes(b"PING\r\nQUIT\r\nPING\r\n", &mut out, &mut store, t),
            Ok((12, true))
        );
        assert_eq!(out, b"+PONG\r\n+OK\r\n");
    }

    #[test]
    fn protocol_error_after_replies() {
        let (mut s, mut store, mut out) = (RespSession::default(), Store::new(), Vec::new());
        let r = s.on_bytes(
            b"PING\r\n*1\r\n$x\r\n",
            &mut out,
            &mut store,
            Instant::now(),
        );
        assert_eq!(r, Err(RespError::InvalidBulkLength));
        assert_eq!(
            out,
            b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
        );
    }
}
