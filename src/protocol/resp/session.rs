//! Per-connection RESP state machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::commands::{execute, Action, ClientInfo};
use super::parser::{CommandParser, Parse, RespError, RespLimits};
use super::reply::Replies;
use super::store::Store;

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Default [`RespSession::set_output_budget`]: the engine's default outbound
/// high water mark.
pub const DEFAULT_OUTPUT_BUDGET: usize = 64 * 1024;

/// What [`RespSession::on_bytes`] did with the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input handled (commands executed, or a large partial
    /// command's bytes taken into the parser); drop them from the input.
    pub consumed: usize,
    /// Flush the replies, then close (`QUIT`).
    pub close: bool,
    /// Stopped at the output budget with input left: flush the replies and
    /// call again once the connection can take more.
    pub more: bool,
}

/// Per-connection RESP state: limits, the streaming [`CommandParser`] and
/// the client's id and name.
///
/// ```
/// use std::time::Instant;
/// use netloop::protocol::resp::{Replies, RespSession, Store};
/// let (mut session, mut store, mut out) = (RespSession::default(), Store::new(), Replies::default());
/// let src = b"SET k v\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPI";
/// let p = session.on_bytes(src, &mut out, &mut store, Instant::now()).unwrap();
/// assert_eq!((p.consumed, p.close), (src.len() - 10, false));
/// assert_eq!(out.to_bytes(), b"+OK\r\n$1\r\nv\r\n");
/// ```
#[derive(Debug)]
pub struct RespSession {
    limits: RespLimits,
    parser: CommandParser,
    client: ClientInfo,
    budget: usize,
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
            parser: CommandParser::default(),
            client: ClientInfo {
                id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
                name: None,
            },
            budget: DEFAULT_OUTPUT_BUDGET,
        }
    }

    /// The client's id and name.
    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// Sets how many bytes of replies (referenced values counted by their
    /// size) [`on_bytes`](Self::on_bytes) produces before it stops between
    /// commands and reports [`Progress::more`] (default
    /// [`DEFAULT_OUTPUT_BUDGET`]). One command's reply may go past it.
    pub fn set_output_budget(&mut self, bytes: usize) {
        self.budget = bytes.max(1);
    }

    /// Whether a command has been started and not completed.
    pub fn in_command(&self) -> bool {
        self.parser.in_command()
    }

    /// Bytes the parser holds for the command in progress.
    pub fn held_bytes(&self) -> usize {
        self.parser.held_bytes()
    }

    /// Executes the commands in the connection's unconsumed input `src` in
    /// order, appending the replies to `out`, and takes in the bytes of a
    /// large command still arriving. `now` is the clock for expiry.
    ///
    /// # Errors
    ///
    /// On a protocol error, `-ERR Protocol error: ...` has been appended to
    /// `out` after the replies to the earlier commands: flush and close.
    pub fn on_bytes(
        &mut self,
        src: &[u8],
        out: &mut Replies,
        store: &mut Store,
        now: Instant,
    ) -> Result<Progress, RespError> {
        let mut pos = 0;
        let progress = |consumed, close, more| Progress {
            consumed,
            close,
            more,
        };
        while pos < src.len() {
            if out.pending() >= self.budget && !self.parser.in_command() {
                return Ok(progress(pos, false, true));
            }
            let rest = &src[pos..];
            match self.parser.parse(rest, &self.limits) {
                Err(e) => {
                    tracing::debug!(error = %e, "RESP protocol error");
                    e.write_reply(out);
                    self.parser.finish();
                    return Err(e);
                }
                Ok(Parse::Partial(n)) => {
                    pos += n;
                    break;
                }
                Ok(Parse::Command(n)) => {
                    pos += n;
                    let args = self.parser.args(rest);
                    let action = execute(&args, store, &mut self.client, now, out);
                    self.parser.finish();
                    if action == Action::Close {
                        return Ok(progress(pos, true, false));
                    }
                }
            }
        }
        Ok(progress(pos, false, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        s: &mut RespSession,
        store: &mut Store,
        src: &[u8],
    ) -> (Result<Progress, RespError>, Vec<u8>) {
        let mut out = Replies::default();
        let r = s.on_bytes(src, &mut out, store, Instant::now());
        (r, out.to_bytes())
    }

    #[test]
    fn distinct_ids_and_partial_input() {
        let a = RespSession::default();
        let b = RespSession::default();
        assert_ne!(a.client().id, b.client().id);
        let (mut s, mut store) = (a, Store::new());
        let (r, out) = run(&mut s, &mut store, b"*1\r\n$4\r\nPI");
        assert_eq!(r.unwrap().consumed, 0);
        assert!(out.is_empty() && s.in_command());
        let (r, out) = run(&mut s, &mut store, b"*1\r\n$4\r\nPING\r\nQUIT\r\nPING\r\n");
        assert_eq!(
            r,
            Ok(Progress {
                consumed: 20,
                close: true,
                more: false
            })
        );
        assert_eq!(out, b"+PONG\r\n+OK\r\n");
    }

    #[test]
    fn protocol_error_after_replies() {
        let (mut s, mut store) = (RespSession::default(), Store::new());
        let (r, out) = run(&mut s, &mut store, b"PING\r\n*1\r\n$x\r\n");
        assert_eq!(r, Err(RespError::InvalidBulkLength));
        assert_eq!(
            out,
            b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
        );
    }

    #[test]
    fn output_budget_stops_between_commands() {
        let (mut s, mut store) = (RespSession::default(), Store::new());
        s.set_output_budget(10);
        let (r, out) = run(&mut s, &mut store, b"PING\r\nPING\r\nPING\r\n");
        assert_eq!(
            r,
            Ok(Progress {
                consumed: 12,
                close: false,
                more: true
            })
        );
        assert_eq!(out, b"+PONG\r\n+PONG\r\n");
    }
}
