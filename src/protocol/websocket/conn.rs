//! Sending: the connection as the application sees it in a callback
//! ([`WsConn`]), and from other threads ([`WsHandle`]).

use bytes::Bytes;
use std::io;
use std::sync::Arc;

use super::close::{close_payload, CloseCode};
use super::config::Config;
use super::deflate::DeflateCodecs;
use super::frame::{encode_frame, write_header, OpCode, MAX_HEADER_LEN};
use super::handshake::fill_random;
use super::reader::DataKind;
use super::state::{flag, Phase, WsState};
use crate::{Conn, ConnHandle};

/// Payloads at least this large are written straight from the caller's slice
/// (header and payload in one `writev`) instead of being copied into the
/// loop's output buffer first.
const DIRECT_WRITE: usize = 16 * 1024;

/// The output buffer is written out once it holds this much, even mid-batch.
const FLUSH_AT: usize = 64 * 1024;

/// Output buffers larger than this are dropped after use.
const MAX_RETAINED: usize = 1 << 20;

/// A received data message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (valid UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }
}

/// Masking keys for a client's frames, from the OS random source in batches
/// (one `getrandom` per 64 frames).
pub(crate) struct Masks {
    buf: [u8; 256],
    pos: usize,
}

impl Masks {
    pub(crate) fn new() -> Self {
        Masks {
            buf: [0; 256],
            pos: 256,
        }
    }

    pub(crate) fn next(&mut self) -> [u8; 4] {
        if self.pos + 4 > self.buf.len() {
            fill_random(&mut self.buf);
            self.pos = 0;
        }
        let k = [
            self.buf[self.pos],
            self.buf[self.pos + 1],
            self.buf[self.pos + 2],
            self.buf[self.pos + 3],
        ];
        self.pos += 4;
        k
    }
}

/// A loop's sending side: the output buffer every callback of the batch
/// appends to, the shared compressors and the masking keys.
pub(crate) struct Tx {
    pub(crate) cfg: Arc<Config>,
    pub(crate) out: Vec<u8>,
    deflated: Vec<u8>,
    pub(crate) codecs: Option<DeflateCodecs>,
    masks: Masks,
}

impl Tx {
    pub(crate) fn new(cfg: Arc<Config>) -> Self {
        let codecs = cfg.deflate.as_ref().map(DeflateCodecs::new);
        Tx {
            cfg,
            out: Vec::with_capacity(16 * 1024),
            deflated: Vec::new(),
            codecs,
            masks: Masks::new(),
        }
    }

    /// Writes the output buffer to the connection; false if the write failed
    /// (the engine then closes the connection).
    pub(crate) fn flush<S>(&mut self, conn: &mut Conn<'_, S>) -> bool {
        let ok = self.out.is_empty() || conn.write(&self.out).is_ok();
        if self.out.capacity() > MAX_RETAINED {
            self.out = Vec::with_capacity(16 * 1024);
        } else {
            self.out.clear();
        }
        if self.deflated.capacity() > MAX_RETAINED {
            self.deflated = Vec::new();
        }
        ok
    }

    /// Sends one frame; `payload` whole. Small frames (and every client frame,
    /// which must be masked into a copy anyway) go through the output buffer.
    fn frame<S>(
        &mut self,
        conn: &mut Conn<'_, WsState<S>>,
        fin: bool,
        rsv: u8,
        op: OpCode,
        payload: &[u8],
    ) -> io::Result<()> {
        let client = conn.state().is(flag::CLIENT);
        if client {
            let mask = self.masks.next();
            encode_frame(&mut self.out, fin, rsv, op, Some(mask), payload);
        } else if payload.len() >= DIRECT_WRITE {
            let mut h = [0u8; MAX_HEADER_LEN];
            let n = write_header(&mut h, fin, rsv, op, None, payload.len());
            if !self.flush(conn) {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            return conn.writev(&[&h[..n], payload]);
        } else {
            encode_frame(&mut self.out, fin, rsv, op, None, payload);
        }
        if self.out.len() >= FLUSH_AT && !self.flush(conn) {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        Ok(())
    }

    /// Sends a data message, compressed when negotiated, split into frames of
    /// at most `frame_size` payload bytes (0: one frame).
    pub(crate) fn message<S>(
        &mut self,
        conn: &mut Conn<'_, WsState<S>>,
        kind: DataKind,
        data: &[u8],
        frame_size: usize,
    ) -> io::Result<()> {
        if conn.state().phase != Phase::Open {
            return Err(closing_error());
        }
        let op = match kind {
            DataKind::Text => OpCode::Text,
            DataKind::Binary => OpCode::Binary,
        };
        let min = self.cfg.deflate.as_ref().map_or(0, |d| d.min_compress_size);
        let neg = conn.state().negotiated().filter(|_| data.len() >= min);
        let mut deflated = std::mem::take(&mut self.deflated);
        let (payload, rsv) = match (neg, self.codecs.as_mut()) {
            (Some(neg), Some(codecs)) => {
                deflated.clear();
                let ctx = if neg.takeover() {
                    conn.state_mut()
                        .extra_mut()
                        .deflate
                        .get_or_insert_with(Default::default);
                    conn.state_mut()
                        .extra
                        .as_mut()
                        .and_then(|e| e.deflate.as_mut())
                } else {
                    None
                };
                codecs.compress(neg, ctx, data, &mut deflated);
                (&deflated[..], super::frame::rsv::RSV1)
            }
            _ => (data, 0),
        };
        let res = if frame_size == 0 || payload.len() <= frame_size {
            self.frame(conn, true, rsv, op, payload)
        } else {
            let mut res = Ok(());
            let mut parts = payload.chunks(frame_size).peekable();
            let mut first = true;
            while let Some(part) = parts.next() {
                let (r, o) = if first {
                    (rsv, op)
                } else {
                    (0, OpCode::Continuation)
                };
                first = false;
                res = self.frame(conn, parts.peek().is_none(), r, o, part);
                if res.is_err() {
                    break;
                }
            }
            res
        };
        self.deflated = deflated;
        res
    }

    /// Sends a control frame (payload cut to 125 bytes).
    pub(crate) fn control<S>(
        &mut self,
        conn: &mut Conn<'_, WsState<S>>,
        op: OpCode,
        payload: &[u8],
    ) -> io::Result<()> {
        let n = payload.len().min(super::frame::MAX_CONTROL_PAYLOAD);
        self.frame(conn, true, 0, op, &payload[..n])
    }

    /// Sends a close frame and enters [`Phase::Closing`] (once).
    pub(crate) fn close<S>(
        &mut self,
        conn: &mut Conn<'_, WsState<S>>,
        code: CloseCode,
        reason: &str,
    ) {
        let st = conn.state_mut();
        if st.is(flag::CLOSE_SENT) {
            return;
        }
        st.set(flag::CLOSE_SENT);
        st.close_code = code.0;
        if st.phase == Phase::Open {
            st.phase = Phase::Closing;
        }
        let (buf, n) = close_payload(code, reason);
        let _ = self.frame(conn, true, 0, OpCode::Close, &buf[..n]);
    }
}

fn closing_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the WebSocket is closing")
}

/// A WebSocket connection inside a callback: send messages, read and change the
/// application's per-connection state, close.
///
/// Sends are gathered in the loop's output buffer and written with one
/// `write` when the batch of callbacks ends (large payloads go out directly,
/// without a copy). Sending fails with [`io::ErrorKind::NotConnected`] once a
/// close frame was sent.
pub struct WsConn<'a, 'c, S> {
    pub(crate) conn: &'a mut Conn<'c, WsState<S>>,
    pub(crate) tx: &'a mut Tx,
}

impl<S> std::fmt::Debug for WsConn<'_, '_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConn")
            .field("id", &self.conn.id())
            .finish_non_exhaustive()
    }
}

impl<S> WsConn<'_, '_, S> {
    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.tx
            .message(self.conn, DataKind::Text, text.as_bytes(), 0)
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> io::Result<()> {
        self.tx.message(self.conn, DataKind::Binary, data, 0)
    }

    /// Sends `msg` (text or binary, as received: an echo is `ws.send(msg)`).
    pub fn send(&mut self, msg: Message<'_>) -> io::Result<()> {
        match msg {
            Message::Text(t) => self.send_text(t),
            Message::Binary(b) => self.send_binary(b),
        }
    }

    /// Sends `msg` as several frames of at most `frame_size` payload bytes
    /// each (after compression, if negotiated).
    pub fn send_fragmented(&mut self, msg: Message<'_>, frame_size: usize) -> io::Result<()> {
        let kind = match msg {
            Message::Text(_) => DataKind::Text,
            Message::Binary(_) => DataKind::Binary,
        };
        self.tx
            .message(self.conn, kind, msg.as_bytes(), frame_size.max(1))
    }

    /// Sends a ping (payload cut to 125 bytes); the peer answers with a pong.
    pub fn ping(&mut self, payload: &[u8]) -> io::Result<()> {
        if self.conn.state().phase != Phase::Open {
            return Err(closing_error());
        }
        self.tx.control(self.conn, OpCode::Ping, payload)
    }

    /// Sends an unsolicited pong (a unidirectional heartbeat).
    pub fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        if self.conn.state().phase != Phase::Open {
            return Err(closing_error());
        }
        self.tx.control(self.conn, OpCode::Pong, payload)
    }

    /// Starts the closing handshake: sends a close frame with `code` and
    /// `reason` (cut to 123 bytes); the connection closes once the peer answers
    /// (or after [`Config::close_timeout`]). `on_close` runs when the callback
    /// returns. A code that may not be sent ([`CloseCode::is_sendable`]) sends
    /// an empty close frame.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if !self.conn.state().is(flag::CLOSE_SENT) && !reason.is_empty() {
            self.conn.state_mut().extra_mut().close_reason = Some(reason.to_string());
        }
        self.tx.close(self.conn, code, reason);
    }

    /// Is the outbound queue within the water marks? While not, stop producing
    /// (see [`WebSocketHandler::on_writable_changed`](super::WebSocketHandler::on_writable_changed)).
    pub fn is_writable(&self) -> bool {
        self.conn.is_writable()
    }

    /// Is a close frame already sent (sending then fails)?
    pub fn is_closing(&self) -> bool {
        self.conn.state().phase != Phase::Open
    }

    /// The subprotocol selected in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        let i = usize::from(self.conn.state().protocol).checked_sub(1)?;
        self.tx.cfg.protocols.get(i).map(String::as_str)
    }

    /// Was permessage-deflate negotiated?
    pub fn is_compressed(&self) -> bool {
        self.conn.state().negotiated().is_some()
    }

    /// Is this the client end (a dialed connection)?
    pub fn is_client(&self) -> bool {
        self.conn.state().is(flag::CLIENT)
    }

    /// The application's per-connection state.
    pub fn state(&self) -> &S {
        &self.conn.state().user
    }

    /// The application's per-connection state, mutably.
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.conn.state_mut().user
    }

    /// A handle to send to this connection from any thread.
    pub fn handle(&self) -> WsHandle {
        WsHandle {
            handle: self.conn.handle(),
            client: self.is_client(),
        }
    }

    /// The connection's engine-wide identity.
    pub fn id(&self) -> crate::ConnId {
        self.conn.id()
    }

    /// Index of the event loop serving this connection.
    pub fn loop_index(&self) -> usize {
        self.conn.loop_index()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<crate::Addr> {
        self.conn.peer_addr()
    }
}

/// A message encoded once to be sent to many server-side connections (a
/// broadcast): an unmasked, uncompressed frame (RFC 7692 lets a compressed
/// connection receive uncompressed messages).
///
/// ```
/// use netloop::protocol::websocket::PreparedMessage;
/// let m = PreparedMessage::text("hello, room");
/// assert_eq!(&m.frame()[..2], &[0x81, 11]);
/// ```
#[derive(Clone, Debug)]
pub struct PreparedMessage {
    frame: Bytes,
    payload_at: usize,
}

impl PreparedMessage {
    fn new(op: OpCode, data: &[u8]) -> Self {
        let mut v = Vec::new();
        encode_frame(&mut v, true, 0, op, None, data);
        PreparedMessage {
            payload_at: v.len() - data.len(),
            frame: Bytes::from(v),
        }
    }
    /// A text message.
    pub fn text(text: &str) -> Self {
        Self::new(OpCode::Text, text.as_bytes())
    }
    /// A binary message.
    pub fn binary(data: &[u8]) -> Self {
        Self::new(OpCode::Binary, data)
    }
    /// The encoded frame.
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }
}

/// Sends to a WebSocket connection from any thread (through the loop's task
/// queue, [`ConnHandle::async_write`]). Messages go out uncompressed; a
/// client-side connection's frames are masked here.
///
/// A message sent after the connection began closing may still reach the
/// wire before the engine closes the socket; peers ignore data after a close
/// frame.
#[derive(Clone, Debug)]
pub struct WsHandle {
    pub(crate) handle: ConnHandle,
    pub(crate) client: bool,
}

impl WsHandle {
    fn frame(&self, op: OpCode, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(data.len() + MAX_HEADER_LEN);
        let mask = self.client.then(|| {
            let mut k = [0u8; 4];
            fill_random(&mut k);
            k
        });
        encode_frame(&mut v, true, 0, op, mask, data);
        v
    }

    /// Queues a text message. Like [`ConnHandle::async_write`], an error means the
    /// connection is closed (or its engine stopped) and nothing was queued.
    pub fn send_text(&self, text: &str) -> Result<(), crate::Error> {
        self.handle
            .async_write(self.frame(OpCode::Text, text.as_bytes()), None)
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: &[u8]) -> Result<(), crate::Error> {
        self.handle
            .async_write(self.frame(OpCode::Binary, data), None)
    }

    /// Queues a prepared message: a server shares the one encoded frame among all
    /// the connections it is sent to (no copy per connection); a client, which
    /// must mask, encodes a copy.
    pub fn send_prepared(&self, msg: &PreparedMessage) -> Result<(), crate::Error> {
        if self.client {
            let op = OpCode::from_u8(msg.frame[0] & 0x0F).unwrap_or(OpCode::Binary);
            self.handle
                .async_write(self.frame(op, &msg.frame[msg.payload_at..]), None)
        } else {
            self.handle.async_write(msg.frame.clone(), None)
        }
    }

    /// Queues a ping (payload cut to 125 bytes); the answer arrives as
    /// [`on_pong`](super::WebSocketHandler::on_pong). With the handles kept in
    /// a list, another thread can ping every connection periodically.
    pub fn ping(&self, payload: &[u8]) -> Result<(), crate::Error> {
        let n = payload.len().min(super::frame::MAX_CONTROL_PAYLOAD);
        self.handle
            .async_write(self.frame(OpCode::Ping, &payload[..n]), None)
    }

    /// Sends a close frame, then closes the connection once it is written
    /// (without waiting for the peer's answer).
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), crate::Error> {
        let (buf, n) = close_payload(code, reason);
        self.handle
            .async_write(self.frame(OpCode::Close, &buf[..n]), None)?;
        self.handle.close()
    }

    /// The underlying connection handle.
    pub fn conn_handle(&self) -> &ConnHandle {
        &self.handle
    }
}
