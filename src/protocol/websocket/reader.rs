//! The receiving half of a connection, free of any transport: turns buffered
//! bytes into events (messages, pings, pongs, a close), enforcing the frame
//! rules that depend on the connection — masking by role, reserved bits by
//! negotiated extensions, fragmentation order, limits — and validating text
//! incrementally.
//!
//! # Where the bytes go
//!
//! * A frame that is complete in the inbound buffer (the common case: small
//!   messages) is unmasked into the loop's scratch buffer and reported as a
//!   range of it, so a connection needs no buffer of its own.
//! * A fragmented message, or a frame too large to wait for in the inbound
//!   buffer ([`STREAM_THRESHOLD`]), is assembled in a [`Partial`] that the
//!   connection owns only until the message completes. Its payload is consumed
//!   from the inbound buffer as it arrives, so a 16 MiB message never needs
//!   16 MiB of *inbound* buffer (which the engine caps).
//! * Control frames (≤ 125 bytes) are always waited for whole; they may arrive
//!   between the fragments of a message.

use std::ops::Range;

use super::deflate::Negotiated;
use super::error::WsError;
use super::frame::{apply_mask, parse_header, rsv, OpCode};
use super::utf8::Utf8Validator;

/// Frames with a payload up to this size are waited for whole in the inbound
/// buffer; larger ones are consumed piecewise into the message being assembled.
pub const STREAM_THRESHOLD: usize = 64 * 1024;

/// Initial capacity cap of an assembly buffer: a declared length is not trusted
/// with an allocation before the bytes arrive.
const INITIAL_ASSEMBLY_CAP: usize = 256 * 1024;

/// A data message's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Binary,
}

/// Where an event's payload is.
#[derive(Debug)]
pub enum Payload {
    /// A range of the scratch buffer given to [`Reader::read`].
    Scratch(Range<usize>),
    /// An assembled message, now owned by the event.
    Owned(Vec<u8>),
}

impl Payload {
    /// The bytes, given the scratch buffer.
    pub fn bytes<'a>(&'a self, scratch: &'a [u8]) -> &'a [u8] {
        match self {
            Payload::Scratch(r) => &scratch[r.clone()],
            Payload::Owned(v) => v,
        }
    }
}

/// Something the peer sent.
#[derive(Debug)]
pub enum Event {
    /// A complete data message.
    Data {
        /// Text or binary.
        kind: DataKind,
        /// RSV1 was set: the payload is deflated (permessage-deflate).
        compressed: bool,
        /// Text already validated as UTF-8 while it arrived.
        validated: bool,
        /// The payload (still compressed if `compressed`).
        payload: Payload,
    },
    /// A ping; its payload is a scratch range.
    Ping(Range<usize>),
    /// A pong.
    Pong(Range<usize>),
    /// A close frame (its payload unchecked); nothing after it is read.
    Close(Range<usize>),
}

/// A message being assembled, and the frame whose payload is streaming in.
#[derive(Debug)]
pub struct Partial {
    kind: DataKind,
    compressed: bool,
    buf: Vec<u8>,
    utf8: Utf8Validator,
    /// Payload bytes of the current frame still to come.
    frame_left: u64,
    frame_mask: Option<[u8; 4]>,
    /// Payload bytes of the current frame already taken (the mask's offset).
    frame_done: usize,
    frame_fin: bool,
}

impl Partial {
    /// Is a message being assembled (as opposed to idle)?
    fn validate_text(&self) -> bool {
        self.kind == DataKind::Text && !self.compressed
    }
}

/// The per-connection rules the reader applies.
#[derive(Clone, Copy, Debug)]
pub struct Reader {
    /// This endpoint is a client (frames must be unmasked), or a server (frames
    /// must be masked).
    pub client: bool,
    /// permessage-deflate, if negotiated (RSV1 then allowed on a message's
    /// first frame).
    pub deflate: Option<Negotiated>,
    /// Largest frame payload.
    pub max_frame: usize,
    /// Largest message.
    pub max_message: usize,
}

/// What one [`Reader::read`] call did.
#[derive(Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// Bytes of `src` consumed.
    pub consumed: usize,
    /// A violation found after the events already reported; the connection
    /// must be failed with its close code.
    pub error: Option<WsError>,
}

impl Reader {
    fn check_header(&self, h: &super::frame::FrameHeader) -> Result<(), WsError> {
        match (self.client, h.mask.is_some()) {
            (false, false) => return Err(WsError::UnmaskedFrame),
            (true, true) => return Err(WsError::MaskedFrame),
            _ => {}
        }
        let allowed = match h.opcode {
            OpCode::Text | OpCode::Binary if self.deflate.is_some() => rsv::RSV1,
            _ => 0,
        };
        if h.rsv & !allowed != 0 {
            return Err(WsError::ReservedBits(h.rsv));
        }
        if h.payload_len > self.max_frame as u64 {
            return Err(WsError::TooBig);
        }
        Ok(())
    }

    /// Reads frames from `src` (the unconsumed inbound bytes): complete events
    /// are appended to `events`, small payloads to `scratch`, and a message in
    /// progress is kept in `partial`. Stops at the first incomplete frame, after
    /// a close frame, or at an error (reported with the bytes consumed before it).
    pub fn read(
        &self,
        src: &[u8],
        partial: &mut Option<Box<Partial>>,
        scratch: &mut Vec<u8>,
        events: &mut Vec<Event>,
    ) -> ReadResult {
        self.read_some(src, partial, scratch, events, usize::MAX)
    }

    /// As [`read`](Self::read), but starts no new frame once `budget` bytes of
    /// `src` are consumed: the caller can act on a batch of events (and on the
    /// output they caused) before it reads on, with the rest left in `src`.
    pub fn read_some(
        &self,
        src: &[u8],
        partial: &mut Option<Box<Partial>>,
        scratch: &mut Vec<u8>,
        events: &mut Vec<Event>,
        budget: usize,
    ) -> ReadResult {
        let mut pos = 0;
        let error = loop {
            // First, the payload of a frame that is streaming in.
            if let Some(p) = partial.as_deref_mut().filter(|p| p.frame_left > 0) {
                let avail = src.len() - pos;
                let n = avail.min(usize::try_from(p.frame_left).unwrap_or(usize::MAX));
                if n == 0 {
                    break None;
                }
                let start = p.buf.len();
                p.buf.extend_from_slice(&src[pos..pos + n]);
                if let Some(key) = p.frame_mask {
                    apply_mask(&mut p.buf[start..], key, p.frame_done);
                }
                pos += n;
                p.frame_done += n;
                p.frame_left -= n as u64;
                if p.validate_text() && !p.utf8.feed(&p.buf[start..]) {
                    break Some(WsError::InvalidUtf8);
                }
                if p.frame_left > 0 {
                    break None;
                }
                if p.frame_fin {
                    if p.validate_text() && !p.utf8.is_complete() {
                        break Some(WsError::InvalidUtf8);
                    }
                    let p = partial.take().expect("checked above");
                    events.push(Event::Data {
                        kind: p.kind,
                        compressed: p.compressed,
                        validated: p.validate_text(),
                        payload: Payload::Owned(p.buf),
                    });
                }
                continue;
            }
            if pos >= budget {
                break None;
            }
            let h = match parse_header(&src[pos..]) {
                Ok(Some(h)) => h,
                Ok(None) => break None,
                Err(e) => break Some(e),
            };
            if let Err(e) = self.check_header(&h) {
                break Some(e);
            }
            // Fits a usize: checked against max_frame above.
            let len = h.payload_len as usize;
            let whole = src.len() - pos >= h.header_len + len;
            match h.opcode {
                OpCode::Close | OpCode::Ping | OpCode::Pong => {
                    if !whole {
                        break None;
                    }
                    let start = scratch.len();
                    let body = &src[pos + h.header_len..pos + h.header_len + len];
                    scratch.extend_from_slice(body);
                    if let Some(key) = h.mask {
                        apply_mask(&mut scratch[start..], key, 0);
                    }
                    pos += h.header_len + len;
                    let r = start..scratch.len();
                    match h.opcode {
                        OpCode::Ping => events.push(Event::Ping(r)),
                        OpCode::Pong => events.push(Event::Pong(r)),
                        _ => {
                            events.push(Event::Close(r));
                            break None;
                        }
                    }
                }
                OpCode::Text | OpCode::Binary => {
                    if partial.is_some() {
                        break Some(WsError::ExpectedContinuation);
                    }
                    if len > self.max_message {
                        break Some(WsError::TooBig);
                    }
                    let kind = if h.opcode == OpCode::Text {
                        DataKind::Text
                    } else {
                        DataKind::Binary
                    };
                    let compressed = h.rsv & rsv::RSV1 != 0;
                    if h.fin && whole {
                        let start = scratch.len();
                        let body = &src[pos + h.header_len..pos + h.header_len + len];
                        scratch.extend_from_slice(body);
                        if let Some(key) = h.mask {
                            apply_mask(&mut scratch[start..], key, 0);
                        }
                        pos += h.header_len + len;
                        events.push(Event::Data {
                            kind,
                            compressed,
                            validated: false,
                            payload: Payload::Scratch(start..scratch.len()),
                        });
                        continue;
                    }
                    if h.fin && len <= STREAM_THRESHOLD {
                        break None; // a small frame: wait for all of it
                    }
                    *partial = Some(Box::new(Partial {
                        kind,
                        compressed,
                        buf: Vec::with_capacity(len.min(INITIAL_ASSEMBLY_CAP)),
                        utf8: Utf8Validator::default(),
                        frame_left: 0,
                        frame_mask: None,
                        frame_done: 0,
                        frame_fin: false,
                    }));
                    self.start_frame(partial, &h);
                    pos += h.header_len;
                    if len == 0 && !h.fin {
                        continue;
                    }
                }
                OpCode::Continuation => {
                    let Some(p) = partial.as_deref() else {
                        break Some(WsError::UnexpectedContinuation);
                    };
                    if p.buf.len().saturating_add(len) > self.max_message {
                        break Some(WsError::TooBig);
                    }
                    self.start_frame(partial, &h);
                    pos += h.header_len;
                }
            }
            // An empty final fragment completes the message right here.
            if let Some(p) = partial.as_deref() {
                if p.frame_left == 0 && p.frame_fin {
                    if p.validate_text() && !p.utf8.is_complete() {
                        break Some(WsError::InvalidUtf8);
                    }
                    let p = partial.take().expect("checked above");
                    events.push(Event::Data {
                        kind: p.kind,
                        compressed: p.compressed,
                        validated: p.validate_text(),
                        payload: Payload::Owned(p.buf),
                    });
                }
            }
        };
        ReadResult {
            consumed: pos,
            error,
        }
    }

    fn start_frame(&self, partial: &mut Option<Box<Partial>>, h: &super::frame::FrameHeader) {
        if let Some(p) = partial.as_deref_mut() {
            p.frame_left = h.payload_len;
            p.frame_mask = h.mask;
            p.frame_done = 0;
            p.frame_fin = h.fin;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::encode_frame;
    use super::*;

    const MASK: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

    fn server() -> Reader {
        Reader {
            client: false,
            deflate: None,
            max_frame: 1 << 20,
            max_message: 1 << 20,
        }
    }

    /// Feeds `wire` in chunks of `chunk` bytes the way the engine does; returns
    /// the messages and control frames as strings, and the error if any.
    fn run(r: &Reader, wire: &[u8], chunk: usize) -> (Vec<String>, Option<WsError>) {
        let mut inbound = Vec::new();
        let mut partial = None;
        let mut out = Vec::new();
        for piece in wire.chunks(chunk.max(1)) {
            inbound.extend_from_slice(piece);
            let mut scratch = Vec::new();
            let mut events = Vec::new();
            let res = r.read(&inbound, &mut partial, &mut scratch, &mut events);
            for e in &events {
                out.push(match e {
                    Event::Data { kind, payload, .. } => {
                        format!(
                            "{kind:?}:{}",
                            String::from_utf8_lossy(payload.bytes(&scratch))
                        )
                    }
                    Event::Ping(r) => {
                        format!("ping:{}", String::from_utf8_lossy(&scratch[r.clone()]))
                    }
                    Event::Pong(r) => {
                        format!("pong:{}", String::from_utf8_lossy(&scratch[r.clone()]))
                    }
                    Event::Close(r) => format!("close:{:?}", &scratch[r.clone()]),
                });
            }
            if res.error.is_some() {
                return (out, res.error);
            }
            inbound.drain(..res.consumed);
        }
        (out, None)
    }

    #[test]
    fn fragments_with_a_ping_between_at_every_chunking() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, false, 0, OpCode::Text, MASK, b"frag");
        encode_frame(&mut wire, true, 0, OpCode::Ping, MASK, b"p");
        encode_frame(&mut wire, false, 0, OpCode::Continuation, MASK, b"");
        encode_frame(&mut wire, true, 0, OpCode::Continuation, MASK, b"ment");
        encode_frame(&mut wire, true, 0, OpCode::Binary, MASK, b"b");
        for chunk in 1..=wire.len() {
            let (seen, err) = run(&server(), &wire, chunk);
            assert_eq!(err, None);
            assert_eq!(
                seen,
                ["ping:p", "Text:fragment", "Binary:b"],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn large_frame_streams_through_a_small_inbound_buffer() {
        let body: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut wire = Vec::new();
        encode_frame(&mut wire, true, 0, OpCode::Text, MASK, &body);
        let r = server();
        let mut partial = None;
        let (mut pos, mut got) = (0, None);
        while pos < wire.len() {
            // Never more than 4 KiB buffered.
            let end = wire.len().min(pos + 4096);
            let mut scratch = Vec::new();
            let mut events = Vec::new();
            let res = r.read(&wire[pos..end], &mut partial, &mut scratch, &mut events);
            assert_eq!(res.error, None);
            assert!(res.consumed > 0 || end == wire.len());
            pos += res.consumed;
            if let Some(Event::Data {
                payload: Payload::Owned(v),
                validated,
                ..
            }) = events.pop()
            {
                assert!(validated);
                got = Some(v);
            }
        }
        assert_eq!(got.unwrap(), body);
    }

    #[test]
    fn order_and_role_violations() {
        /// fin, reserved bits, opcode, mask, payload.
        type Frame = (bool, u8, OpCode, Option<[u8; 4]>, &'static [u8]);
        let cases: Vec<(Vec<Frame>, WsError)> = vec![
            (
                vec![(true, 0, OpCode::Continuation, MASK, b"x")],
                WsError::UnexpectedContinuation,
            ),
            (
                vec![
                    (false, 0, OpCode::Text, MASK, b"a"),
                    (true, 0, OpCode::Text, MASK, b"b"),
                ],
                WsError::ExpectedContinuation,
            ),
            (
                vec![(true, 0, OpCode::Text, None, b"a")],
                WsError::UnmaskedFrame,
            ),
            (
                vec![(true, rsv::RSV1, OpCode::Text, MASK, b"a")],
                WsError::ReservedBits(0x40),
            ),
            (
                vec![(true, rsv::RSV3, OpCode::Ping, MASK, b"a")],
                WsError::ReservedBits(0x10),
            ),
            (
                vec![(true, 0, OpCode::Text, MASK, &[0xce, 0xba, 0xff])],
                WsError::InvalidUtf8,
            ),
        ];
        for (frames, want) in cases {
            let mut wire = Vec::new();
            for (fin, rsv, op, mask, body) in &frames {
                encode_frame(&mut wire, *fin, *rsv, *op, *mask, body);
            }
            // Unfragmented text is validated by the dispatcher; the others here.
            let (_, err) = run(&server(), &wire, wire.len());
            if want == WsError::InvalidUtf8 {
                assert_eq!(err, None);
            } else {
                assert_eq!(err, Some(want), "{frames:?}");
            }
        }
        let mut wire = Vec::new();
        encode_frame(&mut wire, true, 0, OpCode::Text, MASK, b"a");
        let client = Reader {
            client: true,
            ..server()
        };
        assert_eq!(run(&client, &wire, 100).1, Some(WsError::MaskedFrame));
    }

    #[test]
    fn a_budget_stops_between_frames() {
        let mut wire = Vec::new();
        for body in [&b"one"[..], b"two", b"three"] {
            encode_frame(&mut wire, true, 0, OpCode::Binary, MASK, body);
        }
        let first = 2 + 4 + 3;
        let (mut partial, mut scratch, mut events) = (None, Vec::new(), Vec::new());
        let res = server().read_some(&wire, &mut partial, &mut scratch, &mut events, 1);
        assert_eq!((res.consumed, events.len()), (first, 1));
        let res = server().read_some(&wire[first..], &mut partial, &mut scratch, &mut events, 0);
        assert_eq!(
            (res.consumed, events.len()),
            (0, 1),
            "nothing new at budget 0"
        );
        let res = server().read_some(&wire[first..], &mut partial, &mut scratch, &mut events, 10);
        assert_eq!((res.consumed, events.len()), (wire.len() - first, 3));
    }

    #[test]
    fn limits_fail_before_buffering() {
        let r = Reader {
            max_message: 10,
            ..server()
        };
        let mut wire = Vec::new();
        encode_frame(&mut wire, false, 0, OpCode::Binary, MASK, b"123456");
        encode_frame(&mut wire, true, 0, OpCode::Continuation, MASK, b"789012");
        assert_eq!(run(&r, &wire, 3).1, Some(WsError::TooBig));
        // A header announcing a huge frame fails at once.
        let mut h = [0u8; 14];
        let n = super::super::frame::write_header(&mut h, true, 0, OpCode::Binary, MASK, 1 << 30);
        assert_eq!(run(&server(), &h[..n], n).1, Some(WsError::TooBig));
    }

    #[test]
    fn fragmented_text_fails_fast() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, false, 0, OpCode::Text, MASK, "κόσμε".as_bytes());
        encode_frame(
            &mut wire,
            false,
            0,
            OpCode::Continuation,
            MASK,
            &[0xF4, 0x90, 0x80, 0x80],
        );
        // The message is never finished: the error comes from the bad fragment.
        assert_eq!(
            run(&server(), &wire, wire.len()).1,
            Some(WsError::InvalidUtf8)
        );
    }
}
