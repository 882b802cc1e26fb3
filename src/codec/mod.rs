//! Codecs: turning a connection's byte stream into frames, and frames back into bytes.
//!
//! # What
//!
//! TCP delivers a byte stream, not messages. A *codec* decides where one message
//! (a *frame*) ends and the next begins. This module provides the framing rules most
//! protocols need, behind two small traits:
//!
//! * [`Decoder`] looks at the bytes received so far and says "a frame is at
//!   `src[payload]`, and the first `consumed` bytes are used up" — or "need more bytes",
//!   or "this stream is broken" (a [`CodecError`]).
//! * [`Encoder`] turns a payload into the bytes to put on the wire, as three slices
//!   (header, the caller's payload, trailer) that the engine writes with one `writev`.
//!
//! [`Codec`] is simply "both, and movable to a loop thread"; it is object safe, so a
//! server picked at run time from a [`CodecSpec`] works as a `Box<dyn Codec>`.
//!
//! | codec | wire format | typical use |
//! |---|---|---|
//! | [`LineCodec`] | text ending in `\n` or `\r\n` | line protocols, telnet-style tools |
//! | [`DelimiterCodec`] | data ending in any of a set of byte strings | ad-hoc protocols (`\0`, `\r\n\r\n`, …) |
//! | [`FixedLengthCodec`] | every frame exactly *n* bytes | fixed-size records |
//! | [`LengthFieldCodec`] | a length field somewhere in a header (Netty semantics) | interoperating with existing binary protocols |
//! | [`FrameCodec`] | 4-byte big-endian length, then the payload | netloop-to-netloop messaging; the default choice |
//!
//! To serve frames rather than bytes, wrap a [`FrameHandler`] in the [`Framed`]
//! adapter (see [`framed`]): it keeps one codec per connection, hands each decoded
//! frame to the handler without copying it, and encodes replies with one `writev`.
//!
//! # Why a codec layer at all
//!
//! gnet v1 shipped codecs inside the engine; gnet v2 dropped them, leaving every
//! application to re-implement "read until I have a whole message" — and most get
//! the edge cases wrong (partial reads, several frames in one read, unbounded
//! buffering while waiting for a delimiter that never comes). netloop keeps the
//! engine free of framing policy, but ships these codecs as a separate, pure layer:
//! the codecs never touch sockets or buffers; an adapter feeds them the
//! connection's inbound bytes. They are therefore easy to test (see the property
//! tests and fuzz targets) and usable outside the engine.
//!
//! # Zero copy
//!
//! Decoding never copies: [`Decoded`] holds a *range* into the caller's slice. The
//! engine hands the frame to the application as `&src[payload]`, then drops
//! `consumed` bytes from its inbound buffer. Encoding never builds an intermediate
//! `Vec` either: [`Encoded`] carries an inline header of at most
//! [`MAX_HEAD_LEN`] bytes, borrows the caller's payload as the body, and borrows a
//! trailer (for example a delimiter) from the codec.
//!
//! # The decoding contract
//!
//! A [`Decoder`] is fed the way an engine reads:
//!
//! 1. `src` is *all* the not-yet-consumed inbound bytes of the connection, starting
//!    at the first byte that no previous frame consumed.
//! 2. After `Ok(Some(d))` the caller removes the first `d.consumed` bytes before the
//!    next call. Every codec guarantees `1 <= d.consumed <= src.len()` and
//!    `d.payload.start <= d.payload.end <= d.consumed`, so a decode loop always makes
//!    progress and the payload is always inside the consumed bytes.
//! 3. After `Ok(None)` the caller calls again later with the *same* bytes plus more
//!    appended. Decoders may remember how far they got (the delimiter codecs remember
//!    how far the delimiter search went), so feeding a long frame in many small
//!    reads costs O(n), not O(n²).
//! 4. After `Err(_)` the stream is corrupt; the engine closes the connection
//!    (logging the error). The decoder's state is then unspecified until
//!    [`Decoder::reset`] is called.
//!
//! ```
//! use netloop::codec::{Decoder, LineCodec};
//!
//! let mut codec = LineCodec::new();
//! let mut inbound: Vec<u8> = Vec::new();
//! let mut frames = Vec::new();
//! for read in [&b"hel"[..], b"lo\r\nwor", b"ld\nrest"] {
//!     inbound.extend_from_slice(read); // what the engine received
//!     while let Some(d) = codec.decode(&inbound).unwrap() {
//!         frames.push(String::from_utf8(inbound[d.payload.clone()].to_vec()).unwrap());
//!         inbound.drain(..d.consumed);
//!     }
//! }
//! assert_eq!(frames, ["hello", "world"]);
//! assert_eq!(inbound, b"rest"); // waiting for its line ending
//! ```
//!
//! # Limits
//!
//! A peer must not be able to make a server buffer without bound. Every codec has a
//! maximum frame length, [`DEFAULT_MAX_FRAME_LEN`] (1 MiB) unless configured, and
//! fails with a typed error as soon as it can *tell* a frame is too long:
//!
//! * length-prefixed codecs check the announced length as soon as the length field
//!   has arrived, before the body is received;
//! * delimiter codecs give up with [`CodecError::DelimiterNotFound`] once
//!   `max + delimiter length` bytes have been searched without finding a delimiter,
//!   instead of waiting forever.
//!
//! What exactly the limit counts (payload only, or the whole frame including the
//! header) is documented per codec; [`LengthFieldCodec`] follows Netty and counts the
//! whole frame. Encoders enforce the same limit, so a netloop peer configured alike
//! never sends what the other side would reject.

mod delimiter;
mod error;
mod fixed;
mod frame;
pub mod framed;
mod length_field;
mod line;
mod search;
mod spec;

use std::io::IoSlice;
use std::ops::Range;

pub use delimiter::DelimiterCodec;
pub use error::CodecError;
pub use fixed::FixedLengthCodec;
pub use frame::FrameCodec;
pub use framed::{FrameConn, FrameHandler, Framed, FramedState};
pub use length_field::{ByteOrder, LengthFieldCodec, LengthFieldCodecBuilder};
pub use line::{LineCodec, LineEnding};
pub use spec::CodecSpec;

/// The maximum frame length every codec uses unless configured otherwise: 1 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 1 << 20;

/// The largest header an [`Encoded`] can carry inline, in bytes.
pub const MAX_HEAD_LEN: usize = 16;

/// The result of one successful decode.
///
/// The frame's payload is `src[payload.clone()]`, and the first `consumed` bytes of
/// `src` are used up (header, payload, delimiter…). Invariants upheld by every codec
/// in this module: `1 <= consumed <= src.len()` and
/// `payload.start <= payload.end <= consumed`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decoded {
    /// Where the payload lies in the slice passed to [`Decoder::decode`].
    pub payload: Range<usize>,
    /// How many bytes at the start of that slice this frame used up.
    pub consumed: usize,
}

impl Decoded {
    /// The payload, borrowed from the slice that was decoded.
    ///
    /// # Panics
    /// If `src` is shorter than the slice that produced this `Decoded`.
    #[inline]
    pub fn payload<'s>(&self, src: &'s [u8]) -> &'s [u8] {
        &src[self.payload.clone()]
    }
}

/// Turns the inbound byte stream into frames, without copying.
///
/// See the [module documentation](self) for the calling contract. The trait is
/// object safe.
pub trait Decoder {
    /// Looks for one complete frame at the start of `src`.
    ///
    /// * `Ok(Some(d))` — a frame is at `src[d.payload]`; drop `d.consumed` bytes.
    /// * `Ok(None)` — need more bytes; call again with the same bytes plus more.
    /// * `Err(e)` — the stream is invalid or a limit was exceeded; close the connection.
    ///
    /// A decoder never buffers data itself, and returns `Err` as soon as it can tell
    /// that the frame (or the search for its end) exceeds the maximum frame length.
    fn decode(&mut self, src: &[u8]) -> Result<Option<Decoded>, CodecError>;

    /// Forgets any partial decode state (for example how far a delimiter search got).
    ///
    /// Call it before reusing a decoder for a different stream or after an error.
    /// The default does nothing, which is right for stateless decoders.
    fn reset(&mut self) {}
}

/// Turns a payload into wire bytes, without copying the payload.
///
/// The trait is object safe.
pub trait Encoder {
    /// Frames `payload`: the wire bytes are `head ++ payload ++ tail`.
    ///
    /// Fails if the payload cannot be framed by this codec (too long, wrong length,
    /// contains the delimiter, …); nothing should be written in that case.
    fn encode<'a>(&'a self, payload: &'a [u8]) -> Result<Encoded<'a>, CodecError>;
}

/// A decoder and encoder that can be moved to an event-loop thread.
///
/// Implemented automatically for every `Decoder + Encoder + Send + 'static` type,
/// including `Box<dyn Codec>`.
pub trait Codec: Decoder + Encoder + Send + 'static {}

impl<T: Decoder + Encoder + Send + 'static> Codec for T {}

impl<D: Decoder + ?Sized> Decoder for Box<D> {
    #[inline]
    fn decode(&mut self, src: &[u8]) -> Result<Option<Decoded>, CodecError> {
        (**self).decode(src)
    }

    #[inline]
    fn reset(&mut self) {
        (**self).reset()
    }
}

impl<E: Encoder + ?Sized> Encoder for Box<E> {
    #[inline]
    fn encode<'a>(&'a self, payload: &'a [u8]) -> Result<Encoded<'a>, CodecError> {
        (**self).encode(payload)
    }
}

/// One encoded frame as three parts: a small inline header, the caller's payload and
/// a borrowed trailer. Write them in order (ideally with one `writev`, see
/// [`Encoded::io_slices`]); any part may be empty.
///
/// ```
/// use netloop::codec::Encoded;
///
/// let e = Encoded::with_head(&[0, 5], b"hello", b"\n");
/// assert_eq!(e.parts(), [&[0u8, 5][..], b"hello", b"\n"]);
/// assert_eq!(e.len(), 8);
/// assert_eq!(e.to_vec(), b"\x00\x05hello\n");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Encoded<'a> {
    head: [u8; MAX_HEAD_LEN],
    head_len: u8,
    /// The payload, borrowed from the caller.
    pub body: &'a [u8],
    /// A trailer borrowed from the codec (for example a delimiter); often empty.
    pub tail: &'a [u8],
}

impl<'a> Encoded<'a> {
    /// A frame without header.
    #[inline]
    pub fn new(body: &'a [u8], tail: &'a [u8]) -> Self {
        Encoded {
            head: [0; MAX_HEAD_LEN],
            head_len: 0,
            body,
            tail,
        }
    }

    /// A frame with a header of at most [`MAX_HEAD_LEN`] bytes, copied inline.
    ///
    /// # Panics
    /// If `head` is longer than [`MAX_HEAD_LEN`].
    #[inline]
    pub fn with_head(head: &[u8], body: &'a [u8], tail: &'a [u8]) -> Self {
        assert!(
            head.len() <= MAX_HEAD_LEN,
            "Encoded header of {} bytes exceeds MAX_HEAD_LEN ({MAX_HEAD_LEN})",
            head.len()
        );
        let mut e = Encoded::new(body, tail);
        e.head[..head.len()].copy_from_slice(head);
        e.head_len = head.len() as u8;
        e
    }

    /// The header bytes.
    #[inline]
    pub fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }

    /// Header, body and trailer, in wire order.
    #[inline]
    pub fn parts(&self) -> [&[u8]; 3] {
        [self.head(), self.body, self.tail]
    }

    /// The three parts as `IoSlice`s, ready for `writev` / `Write::write_vectored`.
    #[inline]
    pub fn io_slices(&self) -> [IoSlice<'_>; 3] {
        [
            IoSlice::new(self.head()),
            IoSlice::new(self.body),
            IoSlice::new(self.tail),
        ]
    }

    /// Total number of wire bytes.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.head_len) + self.body.len() + self.tail.len()
    }

    /// `true` if the frame has no wire bytes at all (no codec here produces that).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the wire bytes to `out` (a copy; for tests and non-vectored sinks).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.len());
        for part in self.parts() {
            out.extend_from_slice(part);
        }
    }

    /// The wire bytes as a new `Vec` (a copy; for tests and non-vectored sinks).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        self.write_to(&mut out);
        out
    }
}

impl std::fmt::Debug for Encoded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoded")
            .field("head", &self.head())
            .field("body_len", &self.body.len())
            .field("tail", &self.tail)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_parts_and_len() {
        let e = Encoded::new(b"abc", b"");
        assert_eq!(e.head(), b"");
        assert_eq!(e.len(), 3);
        assert!(!e.is_empty());
        assert!(Encoded::new(b"", b"").is_empty());
        let full = [7u8; MAX_HEAD_LEN];
        let e = Encoded::with_head(&full, b"x", b"yz");
        assert_eq!(e.head(), &full);
        assert_eq!(e.len(), MAX_HEAD_LEN + 3);
        let io = e.io_slices();
        assert_eq!(io.iter().map(|s| s.len()).sum::<usize>(), e.len());
    }

    #[test]
    #[should_panic(expected = "exceeds MAX_HEAD_LEN")]
    fn encoded_head_too_long_panics() {
        let _ = Encoded::with_head(&[0; MAX_HEAD_LEN + 1], b"", b"");
    }

    #[test]
    fn boxed_codec_is_a_codec() {
        fn takes_codec<C: Codec>(mut c: C) -> Option<Decoded> {
            c.decode(b"a\n").unwrap()
        }
        let boxed: Box<dyn Codec> = Box::new(LineCodec::new());
        assert_eq!(
            takes_codec(boxed),
            Some(Decoded {
                payload: 0..1,
                consumed: 2
            })
        );
    }

    #[test]
    fn decoded_payload_helper() {
        let d = Decoded {
            payload: 1..3,
            consumed: 4,
        };
        assert_eq!(d.payload(b"xaby"), b"ab");
    }
}
