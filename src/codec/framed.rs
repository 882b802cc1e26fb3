//! [`Framed`]: an [`EventHandler`] that runs a codec over each connection and hands
//! whole frames to a [`FrameHandler`].
//!
//! # What
//!
//! Most servers do not want bytes, they want messages. [`Framed`] sits between the
//! engine and the application: for every connection it keeps its own codec instance
//! (decoders may carry state, such as how far a delimiter search got), decodes every
//! complete frame the connection has received, and calls
//! [`FrameHandler::on_frame`] once per frame. Replies go out through
//! [`FrameConn::send`], which encodes them with the same connection's codec.
//!
//! # How
//!
//! On each read, the adapter makes the connection's unconsumed inbound bytes
//! contiguous ([`Conn::peek_all`], a no-op unless the inbound ring wraps), splits the
//! connection into that view and a [`Writer`] ([`Conn::split`]), and
//! decodes frame after frame over the view, remembering how far it got. Each frame is
//! a slice *of the inbound bytes themselves* — nothing is copied — and the handler can
//! write while it holds it. After the loop, the consumed prefix is dropped in one
//! [`Conn::discard`]; an incomplete frame stays buffered and is decoded again (with
//! the codec's remembered progress) once more bytes arrive. So:
//!
//! * several frames arriving in one read are all delivered, in order;
//! * a frame split across any number of reads is delivered once it is complete;
//! * [`FrameConn::send`] writes header, payload and trailer with **one** `writev`,
//!   without building an intermediate `Vec`.
//!
//! # Errors and limits
//!
//! A decode error (a frame longer than the codec's maximum, a delimiter that never
//! comes, a nonsensical length field) closes that connection: the error is logged
//! with `tracing::warn!`, no further frame is delivered, and
//! [`FrameHandler::on_close`] receives [`CloseReason::Protocol`] with the error's
//! message. Because the codecs give up as soon as a frame *can* be too long, a peer can
//! make a connection buffer at most about the codec's maximum frame length (plus one
//! read), never more.
//!
//! # Why an adapter rather than engine support
//!
//! Keeping framing out of the engine keeps the engine's hot path free of policy and
//! lets the codecs stay pure (see the [module documentation](super)); the adapter is
//! an ordinary [`EventHandler`], so anything it does an application could do itself.
//!
//! # Example
//!
//! A line-based upper-casing server:
//!
//! ```
//! use netloop::codec::{FrameConn, FrameHandler, Framed, LineCodec};
//! use netloop::{Action, Engine};
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//!
//! #[derive(Clone)]
//! struct Upper;
//!
//! impl FrameHandler for Upper {
//!     type State = ();
//!     fn on_frame(&mut self, conn: &mut FrameConn<'_, '_, ()>, line: &[u8]) -> Action {
//!         match conn.send(&line.to_ascii_uppercase()) {
//!             Ok(()) => Action::None,
//!             Err(_) => Action::Close,
//!         }
//!     }
//! }
//!
//! let server = Framed::new(LineCodec::new, Upper);
//! let engine = Engine::builder().loops(1).listen("127.0.0.1:0").start_with(server)?;
//! let addr = engine.local_addr().as_tcp().expect("a TCP listener");
//!
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hello\nwor")?; // one and a half lines
//! client.write_all(b"ld\n")?;
//! let mut lines = BufReader::new(client).lines();
//! assert_eq!(lines.next().unwrap()?, "HELLO");
//! assert_eq!(lines.next().unwrap()?, "WORLD");
//! engine.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Codec, CodecError, CodecSpec, Encoder};
use crate::{Action, CloseReason, Conn, ConnHandle, ConnId, EventHandler, LoopInfo, Writer};

/// An application's callbacks for whole frames, run by [`Framed`].
///
/// Like [`EventHandler`], one handler exists per event loop and every method runs on
/// that loop's thread; `State` is created with `Default` for every connection.
///
/// # Calls
///
/// * [`on_open`](Self::on_open) once when a connection opens (what it sends is the
///   greeting);
/// * [`on_frame`](Self::on_frame) once per decoded frame, in order;
/// * [`on_close`](Self::on_close) exactly once for every connection whose `on_open`
///   ran (also after a panic in `on_open` or `on_frame`).
///
/// A panic in a callback is caught by the engine, logged, and closes the connection
/// with [`CloseReason::Panicked`].
///
/// ```
/// use netloop::codec::{FrameConn, FrameHandler};
/// use netloop::{Action, CloseReason};
///
/// /// Counts frames per connection and replies with the running count.
/// struct Counter;
///
/// impl FrameHandler for Counter {
///     type State = u64;
///
///     fn on_open(&mut self, conn: &mut FrameConn<'_, '_, u64>) -> Action {
///         let _ = conn.send(b"hello");
///         Action::None
///     }
///
///     fn on_frame(&mut self, conn: &mut FrameConn<'_, '_, u64>, frame: &[u8]) -> Action {
///         if frame == b"quit" {
///             return Action::Close;
///         }
///         *conn.state_mut() += 1;
///         let reply = conn.state().to_string();
///         match conn.send(reply.as_bytes()) {
///             Ok(()) => Action::None,
///             Err(_) => Action::Close,
///         }
///     }
///
///     fn on_close(&mut self, conn: &mut FrameConn<'_, '_, u64>, reason: &CloseReason) {
///         println!("connection {} closed after {} frames: {reason}", conn.id(), conn.state());
///     }
/// }
/// ```
pub trait FrameHandler: 'static {
    /// Per-connection state, created with `Default` when a connection opens.
    type State: Default + 'static;

    /// The loop has started (once per loop, before any connection).
    fn on_boot(&mut self, _info: &LoopInfo<'_>) -> Action {
        Action::None
    }

    /// A connection opened; frames sent here are its greeting.
    fn on_open(&mut self, _conn: &mut FrameConn<'_, '_, Self::State>) -> Action {
        Action::None
    }

    /// A whole frame arrived. `frame` is the decoded payload, borrowed from the
    /// connection's inbound bytes (zero-copy) and valid for this call only.
    ///
    /// Returning [`Action::Close`] (or calling [`FrameConn::close`]) closes the
    /// connection after what was sent is flushed; no further frame is delivered.
    fn on_frame(&mut self, conn: &mut FrameConn<'_, '_, Self::State>, frame: &[u8]) -> Action;

    /// The connection closed. Writes are discarded; the state can still be read.
    /// A decode error arrives as [`CloseReason::Protocol`].
    fn on_close(&mut self, _conn: &mut FrameConn<'_, '_, Self::State>, _reason: &CloseReason) {}

    /// The connection's outbound queue crossed a water mark, as
    /// [`EventHandler::on_writable_changed`]: stop producing (or
    /// [`pause_read`](FrameConn::pause_read)) while unwritable.
    fn on_writable_changed(&mut self, _conn: &mut FrameConn<'_, '_, Self::State>, _writable: bool) {
    }

    /// The timer set with [`FrameConn::set_timer`] expired, as
    /// [`EventHandler::on_timer`].
    fn on_timer(&mut self, _conn: &mut FrameConn<'_, '_, Self::State>) -> Action {
        Action::None
    }

    /// The peer half-closed and
    /// [`Options::allow_half_closure`](crate::Options::allow_half_closure) is on, as
    /// [`EventHandler::on_read_closed`]. Every complete frame that arrived before
    /// the end has been delivered. Default: close once what is queued is sent.
    fn on_read_closed(&mut self, _conn: &mut FrameConn<'_, '_, Self::State>) -> Action {
        Action::Close
    }

    /// Periodic callback when [`Options::ticker`](crate::Options::ticker) is on, as
    /// [`EventHandler::on_tick`].
    fn on_tick(&mut self, _info: &LoopInfo<'_>) -> (Duration, Action) {
        (Duration::from_secs(1), Action::None)
    }

    /// The loop is shutting down; all its connections are closed.
    fn on_shutdown(&mut self, _info: &LoopInfo<'_>) {}
}

/// A connection as a [`FrameHandler`] sees it: the writing side, the connection's
/// encoder and the per-connection state.
///
/// `'a` is the borrow of the adapter's per-connection data for one callback, `'w`
/// the borrow of the connection inside the [`Writer`].
///
/// ```
/// use netloop::codec::{FrameConn, FrameHandler};
/// use netloop::Action;
///
/// struct Greeter;
///
/// impl FrameHandler for Greeter {
///     type State = Option<String>; // the peer's name, once known
///
///     fn on_frame(&mut self, conn: &mut FrameConn<'_, '_, Option<String>>, frame: &[u8]) -> Action {
///         let name = String::from_utf8_lossy(frame).into_owned();
///         // `send` frames the reply with this connection's codec (one writev).
///         let ok = conn.send(format!("hello, {name}").as_bytes()).is_ok();
///         *conn.state_mut() = Some(name);
///         if ok { Action::None } else { Action::Close }
///     }
/// }
/// ```
pub struct FrameConn<'a, 'w, S> {
    writer: &'a mut Writer<'w>,
    encoder: &'a dyn Encoder,
    state: &'a mut S,
    handle: &'a ConnHandle,
    id: ConnId,
    loop_index: usize,
    /// (low, high, marked unwritable) when the callback began.
    gauge: (usize, usize, bool),
    req: Requests,
    write_failed: bool,
}

/// What a frame callback asked of the connection besides writing. The connection
/// is split while the callback runs (its inbound bytes are lent as the frame), so
/// these are applied when the callback returns — which is also when the same calls
/// on [`Conn`] take effect.
#[derive(Clone, Copy, Debug, Default)]
struct Requests {
    close: bool,
    read_paused: Option<bool>,
    timer: Option<Option<Instant>>,
    deadline: Option<Option<Instant>>,
    idle_timeout: Option<Option<Duration>>,
    read_timeout: Option<Option<Duration>>,
    write_timeout: Option<Option<Duration>>,
}

impl Requests {
    /// Applies the requests to `conn`; true if reading was resumed.
    fn apply<S>(self, conn: &mut Conn<'_, S>) -> bool {
        if let Some(t) = self.idle_timeout {
            conn.set_idle_timeout(t);
        }
        if let Some(t) = self.read_timeout {
            conn.set_read_timeout(t);
        }
        if let Some(t) = self.write_timeout {
            conn.set_write_timeout(t);
        }
        if let Some(d) = self.deadline {
            conn.set_deadline(d);
        }
        if let Some(t) = self.timer {
            conn.set_timer(t);
        }
        let mut resumed = false;
        match self.read_paused {
            Some(true) => conn.pause_read(),
            Some(false) if conn.is_read_paused() => {
                conn.resume_read();
                resumed = true;
            }
            _ => {}
        }
        if self.close {
            conn.close();
        }
        resumed
    }
}

impl<S> std::fmt::Debug for FrameConn<'_, '_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameConn")
            .field("id", &self.id)
            .field("closing", &self.req.close)
            .finish_non_exhaustive()
    }
}

impl<'a, 'w, S> FrameConn<'a, 'w, S> {
    fn new(
        writer: &'a mut Writer<'w>,
        encoder: &'a dyn Encoder,
        state: &'a mut S,
        handle: &'a ConnHandle,
        meta: Meta,
    ) -> Self {
        FrameConn {
            writer,
            encoder,
            state,
            handle,
            id: meta.id,
            loop_index: meta.loop_index,
            gauge: meta.gauge,
            req: Requests {
                read_paused: meta.paused.then_some(true),
                ..Requests::default()
            },
            write_failed: false,
        }
    }

    /// Encodes `payload` with this connection's codec and writes header, payload and
    /// trailer with one gathered write (the part the socket does not take is queued).
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] (the [`CodecError`] as its inner
    /// error) if the codec cannot frame the payload — nothing is written then — or
    /// with the write error if the connection is closing or the peer is gone (the
    /// connection then closes once the callback returns).
    ///
    /// ```no_run
    /// # use netloop::codec::FrameConn;
    /// # fn f(conn: &mut FrameConn<'_, '_, ()>) -> std::io::Result<()> {
    /// conn.send(b"pong")?; // with a line codec: "pong\n" on the wire
    /// # Ok(()) }
    /// ```
    pub fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        let encoded = self
            .encoder
            .encode(payload)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let res = self.writer.writev(&encoded.parts());
        self.note(res)
    }

    /// Writes bytes as they are, without framing (for example a banner that is not a
    /// frame, or a frame encoded ahead of time).
    ///
    /// ```no_run
    /// # use netloop::codec::FrameConn;
    /// # fn f(conn: &mut FrameConn<'_, '_, ()>) -> std::io::Result<()> {
    /// conn.write_raw(b"\x00\x00\x00\x04ping")?; // a pre-encoded 4-byte-length frame
    /// # Ok(()) }
    /// ```
    pub fn write_raw(&mut self, data: &[u8]) -> io::Result<()> {
        let res = self.writer.write(data);
        self.note(res)
    }

    /// Writes several buffers as they are, gathered (see [`Writer::writev`]).
    ///
    /// ```no_run
    /// # use netloop::codec::FrameConn;
    /// # fn f(conn: &mut FrameConn<'_, '_, ()>) -> std::io::Result<()> {
    /// conn.writev_raw(&[b"HTTP/1.0 200 OK\r\n", b"\r\n"])?;
    /// # Ok(()) }
    /// ```
    pub fn writev_raw(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        let res = self.writer.writev(bufs);
        self.note(res)
    }

    fn note(&mut self, res: io::Result<()>) -> io::Result<()> {
        if res.is_err() {
            self.write_failed = true;
        }
        res
    }

    /// The encoder [`send`](Self::send) uses, for encoding frames ahead of time (for
    /// example once for a broadcast to many connections).
    ///
    /// ```no_run
    /// # use netloop::codec::FrameConn;
    /// # fn f(conn: &mut FrameConn<'_, '_, ()>) {
    /// let wire: Vec<u8> = conn.encoder().encode(b"news").unwrap().to_vec();
    /// conn.handle().async_write(wire, None);
    /// # }
    /// ```
    pub fn encoder(&self) -> &'a dyn Encoder {
        self.encoder
    }

    /// Closes the connection once the callback returns and what was sent has been
    /// flushed (same as returning [`Action::Close`]); no further frame is delivered.
    ///
    /// ```no_run
    /// # use netloop::codec::FrameConn;
    /// # fn f(conn: &mut FrameConn<'_, '_, ()>) {
    /// let _ = conn.send(b"bye");
    /// conn.close();
    /// # }
    /// ```
    pub fn close(&mut self) {
        self.req.close = true;
    }

    /// Whether [`close`](Self::close) was called in this callback.
    pub fn is_closing(&self) -> bool {
        self.req.close
    }

    // ----- flow control, as on `Conn` -----

    /// Is the connection writable: is its outbound queue within the water marks
    /// (as [`Conn::is_writable`], counting what this callback wrote)?
    pub fn is_writable(&self) -> bool {
        let (low, high, unwritable) = self.gauge;
        self.writer.outbound_len() <= if unwritable { low } else { high }
    }

    /// This connection's (low, high) outbound water marks.
    pub fn write_water_marks(&self) -> (usize, usize) {
        (self.gauge.0, self.gauge.1)
    }

    /// Stops reading (as [`Conn::pause_read`]): no further frame is delivered —
    /// not even one already buffered — until [`resume_read`](Self::resume_read),
    /// typically from [`FrameHandler::on_writable_changed`]. Frames that arrived
    /// meanwhile are delivered right after the resume.
    ///
    /// ```no_run
    /// # use netloop::codec::FrameConn;
    /// # fn f(conn: &mut FrameConn<'_, '_, ()>) {
    /// if !conn.is_writable() {
    ///     conn.pause_read(); // the peer is not reading our replies: stop taking requests
    /// }
    /// # }
    /// ```
    pub fn pause_read(&mut self) {
        self.req.read_paused = Some(true);
    }

    /// Resumes reading after [`pause_read`](Self::pause_read).
    pub fn resume_read(&mut self) {
        self.req.read_paused = Some(false);
    }

    /// Is reading paused (as it will be once this callback returns)?
    pub fn is_read_paused(&self) -> bool {
        self.req.read_paused == Some(true)
    }

    // ----- timeouts and the timer, as on `Conn` -----

    /// Sets the idle timeout (`None`: off), as [`Conn::set_idle_timeout`].
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.req.idle_timeout = Some(timeout);
    }

    /// Sets the read timeout (`None`: off), as [`Conn::set_read_timeout`].
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.req.read_timeout = Some(timeout);
    }

    /// Sets the write (stall) timeout (`None`: off), as [`Conn::set_write_timeout`].
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.req.write_timeout = Some(timeout);
    }

    /// Sets an absolute deadline (`None`: clears it), as [`Conn::set_deadline`].
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.req.deadline = Some(deadline);
    }

    /// Sets the connection's timer (`None`: clears it): at that instant
    /// [`FrameHandler::on_timer`] runs, as with [`Conn::set_timer`].
    ///
    /// ```no_run
    /// # use netloop::codec::FrameConn;
    /// # use std::time::{Duration, Instant};
    /// # fn f(conn: &mut FrameConn<'_, '_, ()>) {
    /// // Ask a quiet client whether it is still there in 30 s.
    /// conn.set_timer(Some(Instant::now() + Duration::from_secs(30)));
    /// # }
    /// ```
    pub fn set_timer(&mut self, at: Option<Instant>) {
        self.req.timer = Some(at);
    }

    /// The per-connection state.
    pub fn state(&self) -> &S {
        self.state
    }

    /// The per-connection state, mutably.
    ///
    /// ```no_run
    /// # use netloop::codec::FrameConn;
    /// # fn f(conn: &mut FrameConn<'_, '_, u64>) {
    /// *conn.state_mut() += 1;
    /// # }
    /// ```
    pub fn state_mut(&mut self) -> &mut S {
        self.state
    }

    /// A handle for other threads ([`ConnHandle::async_write`] and friends). Bytes
    /// written through it are not framed: encode them first (see
    /// [`encoder`](Self::encoder)).
    pub fn handle(&self) -> ConnHandle {
        self.handle.clone()
    }

    /// The connection's engine-wide identity (as [`Conn::id`]).
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Index of the event loop serving this connection.
    pub fn loop_index(&self) -> usize {
        self.loop_index
    }

    /// Bytes queued for sending (not yet taken by the kernel): a measure of
    /// back-pressure.
    pub fn outbound_len(&self) -> usize {
        self.writer.outbound_len()
    }

    /// The client's address (as [`Conn::peer_addr`]): from the PROXY protocol
    /// header on a listener that takes one, else the socket's peer.
    pub fn peer_addr(&self) -> io::Result<crate::Addr> {
        self.writer.peer_addr()
    }

    /// The socket's own peer (as [`Conn::socket_peer_addr`]; behind a load
    /// balancer, the balancer).
    pub fn socket_peer_addr(&self) -> io::Result<crate::Addr> {
        crate::conn::to_addr(self.writer.socket().peer_addr()?)
    }

    /// The PROXY protocol header the balancer sent (as [`Conn::proxy_header`]).
    pub fn proxy_header(&self) -> Option<&crate::protocol::proxy::ProxyHeader> {
        self.writer.proxy_header()
    }
}

/// What [`Framed`] keeps per connection: the connection's codec, the
/// [`FrameHandler::State`], a handle and a pending decode error.
///
/// It is the [`EventHandler::State`] of [`Framed`]; applications never touch it
/// directly (their state is reached through [`FrameConn::state_mut`]).
///
/// ```
/// use netloop::codec::{FramedState, LineCodec};
///
/// // Empty until the connection opens and the codec factory runs.
/// let _state: FramedState<LineCodec, u32> = FramedState::default();
/// ```
pub struct FramedState<C, S> {
    conn: Option<PerConn<C, S>>,
}

impl<C, S> std::fmt::Debug for FramedState<C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramedState")
            .field("open", &self.conn.is_some())
            .finish()
    }
}

impl<C, S> Default for FramedState<C, S> {
    fn default() -> Self {
        FramedState { conn: None }
    }
}

struct PerConn<C, S> {
    codec: C,
    user: S,
    handle: ConnHandle,
    /// The decode error that made the adapter close the connection.
    error: Option<Box<str>>,
}

/// The codec factory: one codec per connection.
type Factory<C> = Arc<dyn Fn() -> C + Send + Sync>;

/// An [`EventHandler`] that decodes every connection's bytes with its own codec and
/// hands whole frames to a [`FrameHandler`]. See the [module documentation](crate::codec::framed)
/// for how it works and an example.
///
/// `Framed` is `Clone` when the frame handler is, so it can be given to
/// [`EngineBuilder::start_with`](crate::EngineBuilder::start_with) (one clone per
/// loop); with [`start`](crate::EngineBuilder::start), build one per loop.
///
/// ```
/// use netloop::codec::{CodecSpec, FrameConn, FrameHandler, Framed};
/// use netloop::Action;
///
/// #[derive(Clone)]
/// struct Echo;
/// impl FrameHandler for Echo {
///     type State = ();
///     fn on_frame(&mut self, conn: &mut FrameConn<'_, '_, ()>, frame: &[u8]) -> Action {
///         if conn.send(frame).is_ok() { Action::None } else { Action::Close }
///     }
/// }
///
/// // A codec chosen at run time (for example from a command-line flag):
/// let spec: CodecSpec = "length-field=2,be".parse()?;
/// let server = Framed::from_spec(&spec, 64 * 1024, Echo)?;
/// # let _ = server;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Framed<C, F: FrameHandler> {
    new_codec: Factory<C>,
    handler: F,
    /// The state of the connection whose callback is running, moved out of the
    /// connection while the connection is split (so that a panicking callback does
    /// not lose it: `on_close` takes it back from here).
    parked: Option<(ConnId, PerConn<C, F::State>)>,
}

impl<C: Codec, F: FrameHandler> Framed<C, F> {
    /// An adapter calling `new_codec` for every new connection.
    ///
    /// ```
    /// use netloop::codec::{FrameConn, FrameHandler, Framed, LineCodec};
    /// use netloop::Action;
    ///
    /// struct Sink;
    /// impl FrameHandler for Sink {
    ///     type State = ();
    ///     fn on_frame(&mut self, _: &mut FrameConn<'_, '_, ()>, _: &[u8]) -> Action {
    ///         Action::None
    ///     }
    /// }
    ///
    /// let server = Framed::new(|| LineCodec::new().with_max_frame_len(4096), Sink);
    /// # let _ = server;
    /// ```
    pub fn new(new_codec: impl Fn() -> C + Send + Sync + 'static, handler: F) -> Self {
        Framed {
            new_codec: Arc::new(new_codec),
            handler,
            parked: None,
        }
    }

    /// An adapter giving every connection a clone of `codec`.
    ///
    /// ```
    /// use netloop::codec::{ByteOrder, FrameConn, FrameHandler, Framed, LengthFieldCodec};
    /// use netloop::Action;
    ///
    /// struct Sink;
    /// impl FrameHandler for Sink {
    ///     type State = ();
    ///     fn on_frame(&mut self, _: &mut FrameConn<'_, '_, ()>, _: &[u8]) -> Action {
    ///         Action::None
    ///     }
    /// }
    ///
    /// let codec = LengthFieldCodec::new(4, ByteOrder::LittleEndian)?;
    /// let server = Framed::with_codec(codec, Sink);
    /// # let _ = server;
    /// # Ok::<(), netloop::codec::CodecError>(())
    /// ```
    pub fn with_codec(codec: C, handler: F) -> Self
    where
        C: Clone + Sync,
    {
        Framed::new(move || codec.clone(), handler)
    }

    /// The frame handler.
    pub fn handler(&self) -> &F {
        &self.handler
    }

    /// The frame handler, mutably (for configuring it before the engine starts).
    pub fn handler_mut(&mut self) -> &mut F {
        &mut self.handler
    }
}

impl<F: FrameHandler> Framed<Box<dyn Codec>, F> {
    /// An adapter building each connection's codec from `spec`, with
    /// `max_frame_len` bounding the payload (see [`CodecSpec::build`]).
    ///
    /// Fails now, not per connection, if the spec is invalid.
    ///
    /// ```
    /// use netloop::codec::{FrameConn, FrameHandler, Framed};
    /// use netloop::Action;
    ///
    /// struct Sink;
    /// impl FrameHandler for Sink {
    ///     type State = ();
    ///     fn on_frame(&mut self, _: &mut FrameConn<'_, '_, ()>, _: &[u8]) -> Action {
    ///         Action::None
    ///     }
    /// }
    ///
    /// let server = Framed::from_spec(&"delimiter=00".parse()?, 1 << 16, Sink)?;
    /// assert!(Framed::from_spec(&"fixed=10".parse()?, 5, Sink).is_err()); // 10 > 5
    /// # let _ = server;
    /// # Ok::<(), netloop::codec::CodecError>(())
    /// ```
    pub fn from_spec(
        spec: &CodecSpec,
        max_frame_len: usize,
        handler: F,
    ) -> Result<Self, CodecError> {
        spec.build(max_frame_len)?; // validate once
        let spec = spec.clone();
        Ok(Framed::new(
            move || {
                spec.build(max_frame_len)
                    .expect("codec spec validated when the adapter was built")
            },
            handler,
        ))
    }
}

impl<C, F: FrameHandler + Clone> Clone for Framed<C, F> {
    fn clone(&self) -> Self {
        Framed {
            new_codec: Arc::clone(&self.new_codec),
            handler: self.handler.clone(),
            parked: None,
        }
    }
}

impl<C, F: FrameHandler + std::fmt::Debug> std::fmt::Debug for Framed<C, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framed")
            .field("handler", &self.handler)
            .finish_non_exhaustive()
    }
}

/// Merges what a frame callback asked for; `Shutdown` wins over `Close`.
fn merge(a: Action, b: Action) -> Action {
    match (a, b) {
        (Action::Shutdown, _) | (_, Action::Shutdown) => Action::Shutdown,
        (Action::Close, _) | (_, Action::Close) => Action::Close,
        _ => Action::None,
    }
}

/// What a [`FrameConn`] knows of its connection when a callback begins.
#[derive(Clone, Copy)]
struct Meta {
    id: ConnId,
    loop_index: usize,
    gauge: (usize, usize, bool),
    paused: bool,
}

impl Meta {
    fn of<S>(conn: &Conn<'_, S>) -> Meta {
        Meta {
            id: conn.id(),
            loop_index: conn.loop_index(),
            gauge: conn.write_gauge(),
            paused: conn.is_read_paused(),
        }
    }
}

impl<C: Codec, F: FrameHandler> Framed<C, F> {
    /// Runs `f` (a callback other than `on_frame`) with the connection as a
    /// [`FrameConn`], then applies what it asked for. `None` if the connection's
    /// per-connection part is gone (its `on_open` did not complete).
    fn call<R>(
        &mut self,
        conn: &mut Conn<'_, FramedState<C, F::State>>,
        f: impl FnOnce(&mut F, &mut FrameConn<'_, '_, F::State>) -> R,
    ) -> Option<R> {
        let pc = conn.state_mut().conn.take()?;
        let meta = Meta::of(conn);
        let Framed {
            handler, parked, ..
        } = self;
        let pc = &mut parked.insert((meta.id, pc)).1;
        let (_, mut writer) = conn.split();
        let mut fc = FrameConn::new(&mut writer, &pc.codec, &mut pc.user, &pc.handle, meta);
        let out = f(handler, &mut fc);
        let req = fc.req;
        conn.state_mut().conn = parked.take().map(|(_, pc)| pc);
        if req.apply(conn) && conn.buffered() > 0 {
            // Frames that arrived while reading was paused: delivered by an
            // `on_traffic` of their own, as soon as this callback has returned.
            let _ = conn.handle().wake();
        }
        Some(out)
    }
}

impl<C: Codec, F: FrameHandler> EventHandler for Framed<C, F> {
    type State = FramedState<C, F::State>;

    fn on_boot(&mut self, info: &LoopInfo<'_>) -> Action {
        self.handler.on_boot(info)
    }

    fn on_open(&mut self, conn: &mut Conn<'_, Self::State>) -> Action {
        conn.state_mut().conn = Some(PerConn {
            codec: (self.new_codec)(),
            user: F::State::default(),
            handle: conn.handle(),
            error: None,
        });
        self.call(conn, |h, fc| h.on_open(fc))
            .unwrap_or(Action::Close)
    }

    fn on_traffic(&mut self, conn: &mut Conn<'_, Self::State>) -> Action {
        if conn.is_read_paused() {
            // Paused by the frame handler: frames wait in the buffer.
            return Action::None;
        }
        let Some(pc) = conn.state_mut().conn.take() else {
            // on_open did not complete; the engine is closing this connection.
            return Action::Close;
        };
        if pc.error.is_some() {
            conn.state_mut().conn = Some(pc);
            return Action::Close;
        }
        let meta = Meta::of(conn);
        let Framed {
            handler, parked, ..
        } = self;
        let pc = &mut parked.insert((meta.id, pc)).1;

        conn.peek_all(); // contiguous from here on (a no-op unless the ring wraps)
        let ([inbound, _], mut writer) = conn.split();
        let mut offset = 0;
        let mut action = Action::None;
        let mut req = Requests::default();
        let mut error = None;
        while offset < inbound.len() {
            let rest = &inbound[offset..];
            match pc.codec.decode(rest) {
                Ok(Some(d)) => {
                    offset += d.consumed;
                    let frame = &rest[d.payload];
                    let mut fc =
                        FrameConn::new(&mut writer, &pc.codec, &mut pc.user, &pc.handle, meta);
                    fc.req = req;
                    action = merge(action, handler.on_frame(&mut fc, frame));
                    req = fc.req;
                    if req.close
                        || fc.write_failed
                        || action != Action::None
                        || req.read_paused == Some(true)
                    {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        conn.discard(offset);
        let mut rejected = None;
        if let Some(e) = error {
            // No more frames are delivered; the engine closes once the queue drains
            // and reports CloseReason::Protocol to on_close.
            tracing::warn!(conn = %meta.id, loop_index = meta.loop_index, error = %e, "undecodable frame; closing the connection");
            let msg = e.to_string();
            pc.error = Some(msg.clone().into_boxed_str());
            rejected = Some(msg);
        }
        conn.state_mut().conn = parked.take().map(|(_, pc)| pc);
        req.apply(conn);
        if let Some(msg) = rejected {
            conn.close_with(CloseReason::Protocol(msg));
        }
        action
    }

    fn on_writable_changed(&mut self, conn: &mut Conn<'_, Self::State>, writable: bool) {
        self.call(conn, |h, fc| h.on_writable_changed(fc, writable));
    }

    fn on_timer(&mut self, conn: &mut Conn<'_, Self::State>) -> Action {
        self.call(conn, |h, fc| h.on_timer(fc))
            .unwrap_or(Action::None)
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_, Self::State>) -> Action {
        self.call(conn, |h, fc| h.on_read_closed(fc))
            .unwrap_or(Action::Close)
    }

    fn on_close(&mut self, conn: &mut Conn<'_, Self::State>, reason: &CloseReason) {
        let meta = Meta::of(conn);
        let from_slot = conn.state_mut().conn.take();
        // After a panic in on_open/on_traffic the state is still parked here.
        let parked = match self.parked.take() {
            Some((pid, pc)) if pid == meta.id => Some(pc),
            _ => None,
        };
        let Some(mut pc) = from_slot.or(parked) else {
            return; // the codec factory panicked: the frame handler never saw this connection
        };
        let (_, mut writer) = conn.split();
        let mut fc = FrameConn::new(&mut writer, &pc.codec, &mut pc.user, &pc.handle, meta);
        self.handler.on_close(&mut fc, reason);
    }

    fn on_tick(&mut self, info: &LoopInfo<'_>) -> (Duration, Action) {
        self.handler.on_tick(info)
    }

    fn on_shutdown(&mut self, info: &LoopInfo<'_>) {
        self.handler.on_shutdown(info)
    }
}
