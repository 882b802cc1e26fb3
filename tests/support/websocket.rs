//! A raw WebSocket client for conformance tests: it writes whatever frames a
//! test asks for (masked or not, any opcode and reserved bits, split at any
//! byte) and reads the server's frames back, checking nothing itself.

use netloop::protocol::websocket::{
    CloseCode, Config, Message, WebSocket, WebSocketHandler, WsConn,
};
use netloop::{Action, Engine};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A well-formed upgrade request with `extra` header lines (each ending in CRLF).
pub fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A frame as read from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code of a close frame (1005 for an empty one).
    pub fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, 8, "not a close frame: {self:?}");
        match self.payload.as_slice() {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => 1005,
        }
    }
}

/// Encodes a frame (masked with a fixed key when `mask`).
pub fn raw_frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask: bool) -> Vec<u8> {
    let mut v = vec![(if fin { 0x80 } else { 0 }) | (rsv << 4) | opcode];
    let m = if mask { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => v.push(m | n as u8),
        n if n <= 0xFFFF => {
            v.push(m | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(m | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if mask {
        let key = [0x3a, 0x91, 0x5c, 0xe7];
        v.extend_from_slice(&key);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        v.extend_from_slice(payload);
    }
    v
}

/// A client frame: masked.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(fin, 0, opcode, payload, true)
}

/// A close frame payload.
pub fn close_body(code: u16, reason: &str) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(reason.as_bytes());
    v
}

/// A raw client connection.
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Connects, sending nothing yet.
    pub fn connect_raw(addr: SocketAddr) -> RawWs {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawWs {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and sends `request` as is; returns the client and the response
    /// head (up to and including the blank line).
    pub fn connect_with(addr: SocketAddr, request: &str) -> (RawWs, String) {
        let mut ws = Self::connect_raw(addr);
        ws.stream.write_all(request.as_bytes()).unwrap();
        let head = ws.read_head();
        (ws, head)
    }

    /// Connects with a well-formed upgrade (plus `extra` headers) and checks for 101.
    pub fn connect_extra(addr: SocketAddr, extra: &str) -> (RawWs, String) {
        let (ws, head) = Self::connect_with(addr, &upgrade_request(extra));
        assert!(
            head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "handshake refused:\n{head}"
        );
        assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        (ws, head)
    }

    /// Connects with a plain upgrade.
    pub fn connect(addr: SocketAddr) -> RawWs {
        Self::connect_extra(addr, "").0
    }

    fn fill(&mut self) -> bool {
        let mut b = [0u8; 65536];
        match self.stream.read(&mut b) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
        }
    }

    /// Reads the HTTP response head ("" if the connection closed first).
    pub fn read_head(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..i + 4).collect();
                return String::from_utf8_lossy(&head).into_owned();
            }
            if !self.fill() {
                return String::from_utf8_lossy(&self.buf).into_owned();
            }
        }
    }

    /// Reads what follows the head until the connection closes.
    pub fn read_rest(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.buf)
    }

    /// Sends bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends bytes in pieces of `chunk` bytes, each its own write.
    pub fn send_chunked(&mut self, bytes: &[u8], chunk: usize) {
        for c in bytes.chunks(chunk) {
            self.stream.write_all(c).unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Sends a best-effort frame (the server may already have closed).
    pub fn try_send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next frame from the server, or `None` once the connection closed.
    pub fn read_frame(&mut self) -> Option<RawFrame> {
        loop {
            if let Some((f, n)) = parse(&self.buf) {
                self.buf.drain(..n);
                return Some(f);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Reads one frame and checks it is a message with `opcode` and `payload`.
    pub fn expect(&mut self, opcode: u8, payload: &[u8]) {
        let f = self
            .read_frame()
            .expect("connection closed, a frame was expected");
        assert_eq!(
            (f.opcode, f.fin, f.rsv, f.masked),
            (opcode, true, 0, false),
            "unexpected frame header: {f:?}"
        );
        assert!(
            f.payload == payload,
            "payload differs ({} bytes vs {})",
            f.payload.len(),
            payload.len()
        );
    }

    /// Reads frames until a close frame; checks its code, that no other frame
    /// came first, and that the server then closes the TCP connection once our
    /// close is sent back.
    pub fn expect_close(&mut self, code: u16) -> RawFrame {
        let f = self
            .read_frame()
            .expect("connection closed without a close frame");
        assert_eq!(f.opcode, 8, "expected a close frame, got {f:?}");
        assert_eq!(f.close_code(), code, "close frame {f:?}");
        if f.payload.len() > 2 {
            assert!(std::str::from_utf8(&f.payload[2..]).is_ok());
        }
        self.try_send(&client_frame(true, 8, &f.payload[..f.payload.len().min(2)]));
        self.expect_eof();
        f
    }

    /// Checks that the server closes the TCP connection, ignoring frames.
    pub fn expect_eof(&mut self) {
        let mut frames = 0;
        while self.read_frame().is_some() {
            frames += 1;
            assert!(frames < 1000, "the server keeps sending");
        }
    }
}

/// Parses one server frame: (frame, bytes used), `None` if incomplete.
pub fn parse(b: &[u8]) -> Option<(RawFrame, usize)> {
    if b.len() < 2 {
        return None;
    }
    let masked = b[1] & 0x80 != 0;
    let (len, mut pos) = match b[1] & 0x7F {
        126 => (u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4),
        127 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b.get(2..10)?);
            (u64::from_be_bytes(a) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let key = if masked {
        let k = b.get(pos..pos + 4)?;
        pos += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    let mut payload = b.get(pos..pos + len)?.to_vec();
    if let Some(k) = key {
        for (i, x) in payload.iter_mut().enumerate() {
            *x ^= k[i % 4];
        }
    }
    Some((
        RawFrame {
            fin: b[0] & 0x80 != 0,
            rsv: (b[0] >> 4) & 7,
            opcode: b[0] & 0x0F,
            masked,
            payload,
        },
        pos + len,
    ))
}

/// What a [`WsEcho`] saw.
#[derive(Clone, Default)]
pub struct WsLog {
    pub closes: Arc<Mutex<Vec<(u16, String)>>>,
    pub opens: Arc<Mutex<usize>>,
    pub writable_changes: Arc<Mutex<Vec<bool>>>,
}

impl WsLog {
    pub fn closes(&self) -> Vec<(u16, String)> {
        self.closes.lock().unwrap().clone()
    }
}

/// An echo server application that records opens and closes. A text message
/// `close:CODE` makes it close with that code.
#[derive(Clone, Default)]
pub struct WsEcho {
    pub log: WsLog,
}

impl WebSocketHandler for WsEcho {
    type State = ();
    fn on_open(&mut self, _ws: &mut WsConn<'_, '_, ()>) -> Action {
        *self.log.opens.lock().unwrap() += 1;
        Action::None
    }
    fn on_message(&mut self, ws: &mut WsConn<'_, '_, ()>, msg: Message<'_>) -> Action {
        if let Message::Text(t) = msg {
            if let Some(code) = t.strip_prefix("close:") {
                ws.close(CloseCode(code.parse().unwrap_or(1000)), "asked to");
                return Action::None;
            }
        }
        match ws.send(msg) {
            Ok(()) => Action::None,
            Err(_) => Action::Close,
        }
    }
    fn on_close(&mut self, _ws: &mut WsConn<'_, '_, ()>, code: CloseCode, reason: &str) {
        self.log
            .closes
            .lock()
            .unwrap()
            .push((code.0, reason.to_string()));
    }
    fn on_writable_changed(&mut self, _ws: &mut WsConn<'_, '_, ()>, writable: bool) {
        self.log.writable_changes.lock().unwrap().push(writable);
    }
}

/// Starts a one-loop echo server with `config`; returns it, its address and log.
pub fn ws_echo_server(config: Config) -> (Engine, SocketAddr, WsLog) {
    let app = WsEcho::default();
    let log = app.log.clone();
    let engine = crate::support::engine_builder()
        .loops(1)
        .listen("127.0.0.1:0")
        .start_with(WebSocket::new(app, config))
        .unwrap();
    let addr = engine.local_addr().as_tcp().unwrap();
    (engine, addr, log)
}
