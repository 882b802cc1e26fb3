//! [`WebSocket`]: the [`EventHandler`] that runs the protocol — upgrade,
//! frames, closing handshake — and calls a [`WebSocketHandler`] with messages.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::close::{parse_close_payload, CloseCode};
use super::config::Config;
use super::conn::{Message, Tx, WsConn};
use super::deflate;
use super::error::WsError;
use super::frame::OpCode;
use super::handshake::{self, ClientHandshakeError, HandshakeError, UpgradeRequest};
use super::reader::{DataKind, Event, Reader};
use super::state::{flag, Phase, WsState};
use crate::protocol::http::{parse_request, DateCache, Parsed, Request};
use crate::{Action, CloseReason, Conn, EventHandler, LoopInfo, TimeoutKind};

/// An upgrade request as the application sees it in
/// [`WebSocketHandler::on_upgrade`]: read the request, pick a subprotocol, set
/// up the connection's state, or refuse.
pub struct Upgrade<'r, 's, S> {
    req: &'r UpgradeRequest<'r>,
    protocols: &'r [String],
    selected: Option<usize>,
    state: &'s mut S,
}

impl<S> std::fmt::Debug for Upgrade<'_, '_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrade")
            .field("protocols", &self.protocols)
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

impl<S> Upgrade<'_, '_, S> {
    /// The HTTP request.
    pub fn request(&self) -> &Request<'_> {
        &self.req.request
    }

    /// The request target, such as `/chat?room=1`.
    pub fn path(&self) -> &str {
        self.req.request.path()
    }

    /// The subprotocols the client offered, in its order.
    pub fn offered_protocols(&self) -> &[&str] {
        &self.req.protocols
    }

    /// The subprotocol that will be selected: by default the first of
    /// [`Config::protocols`] that the client offered.
    pub fn protocol(&self) -> Option<&str> {
        self.selected.map(|i| self.protocols[i].as_str())
    }

    /// Selects `name` (or none); false, and nothing changes, unless it is both
    /// in [`Config::protocols`] and offered by the client.
    pub fn select_protocol(&mut self, name: Option<&str>) -> bool {
        match name {
            None => {
                self.selected = None;
                true
            }
            Some(n) => match self.protocols.iter().position(|p| p == n) {
                Some(i) if self.req.protocols.contains(&n) => {
                    self.selected = Some(i);
                    true
                }
                _ => false,
            },
        }
    }

    /// The connection's application state (set it up here).
    pub fn state_mut(&mut self) -> &mut S {
        self.state
    }
}

/// An application's WebSocket callbacks, run by [`WebSocket`]. One handler per
/// event loop (like [`EventHandler`]); all methods run on that loop's thread.
///
/// # Calls
/// [`on_upgrade`](Self::on_upgrade) (server side) →
/// [`on_open`](Self::on_open) → [`on_message`](Self::on_message)... →
/// [`on_close`](Self::on_close), exactly once for every connection whose
/// `on_open` ran: when the peer's close frame arrives, when this side sends one
/// (through [`WsConn::close`] or because the peer broke the protocol), or when
/// the TCP connection ends without one (code 1006).
pub trait WebSocketHandler: 'static {
    /// Per-connection application state, created with `Default`.
    type State: Default + 'static;

    /// A valid upgrade request arrived (server side). Return `Err(status)` to
    /// refuse it with that HTTP status (for example 403 or 404).
    fn on_upgrade(&mut self, _upgrade: &mut Upgrade<'_, '_, Self::State>) -> Result<(), u16> {
        Ok(())
    }

    /// Client side: the server's answer to the upgrade request was refused
    /// (not 101, a wrong accept key, something not offered...); the connection
    /// closes and no other callback runs for it.
    fn on_handshake_failed(&mut self, _state: &mut Self::State, _error: &ClientHandshakeError) {}

    /// The WebSocket is open (handshake done, either side).
    fn on_open(&mut self, _ws: &mut WsConn<'_, '_, Self::State>) -> Action {
        Action::None
    }

    /// A whole message arrived (text is valid UTF-8; compressed messages are
    /// inflated). The payload is borrowed for this call only.
    fn on_message(&mut self, ws: &mut WsConn<'_, '_, Self::State>, msg: Message<'_>) -> Action;

    /// A ping arrived; the pong has already been queued.
    fn on_ping(&mut self, _ws: &mut WsConn<'_, '_, Self::State>, _payload: &[u8]) -> Action {
        Action::None
    }

    /// A pong arrived.
    fn on_pong(&mut self, _ws: &mut WsConn<'_, '_, Self::State>, _payload: &[u8]) -> Action {
        Action::None
    }

    /// The WebSocket closed: `code` and `reason` are the peer's (1005 if its
    /// close frame had none), this side's, or 1006 if the connection ended
    /// without a closing handshake. Sending no longer works.
    fn on_close(&mut self, _ws: &mut WsConn<'_, '_, Self::State>, _code: CloseCode, _reason: &str) {
    }

    /// The connection's outbound queue crossed a water mark (see
    /// [`EventHandler::on_writable_changed`]).
    fn on_writable_changed(&mut self, _ws: &mut WsConn<'_, '_, Self::State>, _writable: bool) {}

    /// As [`EventHandler::on_tick`].
    fn on_tick(&mut self, _info: &LoopInfo<'_>) -> (Duration, Action) {
        (Duration::from_secs(1), Action::None)
    }

    /// As [`EventHandler::on_boot`].
    fn on_boot(&mut self, _info: &LoopInfo<'_>) -> Action {
        Action::None
    }

    /// As [`EventHandler::on_shutdown`].
    fn on_shutdown(&mut self, _info: &LoopInfo<'_>) {}
}

/// The loop's receiving buffers.
struct Rx {
    /// Payloads of the frames of one batch.
    scratch: Vec<u8>,
    /// Inflated messages.
    inflated: Vec<u8>,
    events: Vec<Event>,
    /// A copy of the upgrade request's head.
    head: Vec<u8>,
    /// The HTTP parser's chunked-body buffer (an upgrade has no body).
    http_body: Vec<u8>,
    date: DateCache,
}

/// Buffers above this size are dropped after a batch rather than kept.
const MAX_RETAINED: usize = 1 << 20;

/// Inbound bytes parsed per batch: after each batch its output is written and,
/// if that left the connection unwritable, parsing stops (the rest stays in
/// the inbound buffer until the outbound queue drains). One read of the
/// engine is at most this much, so a batch is usually a whole `on_traffic`.
const BATCH: usize = 64 * 1024;

/// A WebSocket endpoint as an [`EventHandler`]: accepted connections are
/// served as a server (upgrade from HTTP/1.1), dialed ones
/// ([`client::dial`](super::client::dial)) as a client.
///
/// One per loop: build it in the engine's factory (`start(|_| WebSocket::new(app, cfg))`)
/// or let `start_with` clone it.
pub struct WebSocket<H> {
    app: H,
    tx: Tx,
    rx: Rx,
}

impl<H: WebSocketHandler + Clone> Clone for WebSocket<H> {
    fn clone(&self) -> Self {
        WebSocket::with_config(self.app.clone(), self.tx.cfg.clone())
    }
}

impl<H: std::fmt::Debug> std::fmt::Debug for WebSocket<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("app", &self.app)
            .field("config", &self.tx.cfg)
            .finish_non_exhaustive()
    }
}

/// Go on with the connection's input, or stop and return this action to the
/// engine (after the output is flushed).
type Step = ControlFlow<Action>;

impl<H: WebSocketHandler> WebSocket<H> {
    /// An endpoint running `app` with `config`.
    pub fn new(app: H, config: Config) -> Self {
        Self::with_config(app, Arc::new(config))
    }

    /// As [`new`](Self::new), sharing one `Config` among the loops.
    pub fn with_config(app: H, config: Arc<Config>) -> Self {
        WebSocket {
            app,
            tx: Tx::new(config),
            rx: Rx {
                scratch: Vec::with_capacity(16 * 1024),
                inflated: Vec::new(),
                events: Vec::new(),
                head: Vec::new(),
                http_body: Vec::new(),
                date: DateCache::new(),
            },
        }
    }

    /// The application.
    pub fn app(&self) -> &H {
        &self.app
    }

    /// The application, mutably.
    pub fn app_mut(&mut self) -> &mut H {
        &mut self.app
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.tx.cfg
    }

    /// Runs the connection's buffered input through the protocol.
    fn process(&mut self, conn: &mut Conn<'_, WsState<H::State>>) -> Step {
        loop {
            match conn.state().phase {
                Phase::Handshake if conn.state().is(flag::CLIENT) => self.client_handshake(conn)?,
                Phase::Handshake => self.server_handshake(conn)?,
                Phase::Open | Phase::Closing => return self.read_frames(conn),
                Phase::Closed => {
                    let n = conn.buffered();
                    conn.discard(n);
                    return ControlFlow::Break(Action::None);
                }
            }
        }
    }

    /// Server: answers the upgrade request once it is complete.
    fn server_handshake(&mut self, conn: &mut Conn<'_, WsState<H::State>>) -> Step {
        let cfg = self.tx.cfg.clone();
        // A copy of the head (small, once per connection), so that the request
        // can be read while the connection's state is changed.
        self.rx.head.clear();
        self.rx.head.extend_from_slice(conn.peek_all());
        let request = match parse_request(&self.rx.head, &cfg.http_limits, &mut self.rx.http_body) {
            Ok(Parsed::Partial { .. }) => return ControlFlow::Break(Action::None),
            Ok(Parsed::Complete { request, consumed }) => {
                conn.discard(consumed);
                request
            }
            Err(e) => return self.reject(conn, HandshakeError::Http(e.status())),
        };
        let up = match handshake::check_request(request) {
            Ok(up) => up,
            Err(e) => return self.reject(conn, e),
        };
        let selected = cfg
            .protocols
            .iter()
            .position(|p| up.protocols.contains(&p.as_str()));
        let deflate = cfg
            .deflate
            .as_ref()
            .and_then(|d| deflate::accept_offer(d, &up.extensions));
        let mut upgrade = Upgrade {
            req: &up,
            protocols: &cfg.protocols,
            selected,
            state: &mut conn.state_mut().user,
        };
        if let Err(status) = self.app.on_upgrade(&mut upgrade) {
            return self.reject(conn, HandshakeError::Refused(status));
        }
        let selected = upgrade.selected;
        handshake::write_accept(
            &mut self.tx.out,
            up.key,
            selected.map(|i| cfg.protocols[i].as_str()),
            deflate.as_ref().map(|d| d.1.as_str()),
        );
        // Indexes past 254 cannot be stored; such a list is not realistic.
        let index = selected.map_or(0, |i| u8::try_from(i + 1).unwrap_or(0));
        self.open(conn, index, deflate.map(|d| d.0))
    }

    /// Refuses an upgrade: the error response, then close.
    fn reject(&mut self, conn: &mut Conn<'_, WsState<H::State>>, e: HandshakeError) -> Step {
        tracing::debug!(error = %e, "refusing WebSocket upgrade");
        self.rx.date.update(SystemTime::now());
        e.write_response(&mut self.tx.out, self.rx.date.get());
        let n = conn.buffered();
        conn.discard(n);
        self.closed(conn);
        if e == HandshakeError::Timeout {
            conn.close_with(CloseReason::Timeout(TimeoutKind::Deadline));
            return ControlFlow::Break(Action::None);
        }
        ControlFlow::Break(Action::Close)
    }

    /// The connection is done with the protocol: what it still holds is
    /// dropped and its timer cleared; whatever arrives is discarded until the
    /// engine closes it.
    fn closed(&mut self, conn: &mut Conn<'_, WsState<H::State>>) {
        conn.state_mut().phase = Phase::Closed;
        conn.state_mut().release();
        conn.set_timer(None);
    }

    /// Client: checks the server's answer once it is complete.
    fn client_handshake(&mut self, conn: &mut Conn<'_, WsState<H::State>>) -> Step {
        let cfg = self.tx.cfg.clone();
        let Some(request) = conn
            .state_mut()
            .extra
            .as_mut()
            .and_then(|e| e.request.take())
        else {
            // No request was sent: not a connection made by `client::dial`.
            conn.close_with(CloseReason::Protocol(
                "WebSocket client without a request".into(),
            ));
            conn.state_mut().phase = Phase::Closed;
            return ControlFlow::Break(Action::None);
        };
        let res = handshake::check_response(
            conn.peek_all(),
            &request.1,
            &cfg.protocols,
            cfg.deflate.as_ref(),
        );
        match res {
            Ok(None) => {
                conn.state_mut().extra_mut().request = Some(request);
                ControlFlow::Break(Action::None)
            }
            Err(e) => {
                self.client_handshake_failed(conn, e);
                ControlFlow::Break(Action::None)
            }
            Ok(Some(acc)) => {
                conn.discard(acc.consumed);
                conn.state_mut().tidy();
                let index = acc.protocol.map_or(0, |i| u8::try_from(i + 1).unwrap_or(0));
                self.open(conn, index, acc.deflate)
            }
        }
    }

    /// Client: the handshake failed; the application hears why, the
    /// connection closes.
    fn client_handshake_failed(
        &mut self,
        conn: &mut Conn<'_, WsState<H::State>>,
        e: ClientHandshakeError,
    ) {
        tracing::debug!(error = %e, "WebSocket handshake failed");
        self.app.on_handshake_failed(&mut conn.state_mut().user, &e);
        let n = conn.buffered();
        conn.discard(n);
        self.closed(conn);
        conn.close_with(match e {
            ClientHandshakeError::Timeout => CloseReason::Timeout(TimeoutKind::Deadline),
            e => CloseReason::Protocol(format!("WebSocket handshake: {e}")),
        });
    }

    /// The handshake succeeded: the connection is open.
    fn open(
        &mut self,
        conn: &mut Conn<'_, WsState<H::State>>,
        protocol: u8,
        deflate: Option<deflate::Negotiated>,
    ) -> Step {
        let st = conn.state_mut();
        st.phase = Phase::Open;
        st.protocol = protocol;
        st.set_negotiated(deflate);
        st.set(flag::OPENED);
        if let Some(t) = self.tx.cfg.idle_timeout {
            conn.set_idle_timeout(Some(t));
        }
        // The handshake's deadline is over; keep-alive takes the timer, if on.
        let first_ping = self.tx.cfg.keep_alive().map(|(i, _)| Instant::now() + i);
        conn.set_timer(first_ping);
        let action = self.app.on_open(&mut WsConn {
            conn,
            tx: &mut self.tx,
        });
        self.after_app(conn, action)
    }

    /// Reads and dispatches the complete frames buffered, batch by batch,
    /// while the connection is writable (see [`BATCH`]).
    fn read_frames(&mut self, conn: &mut Conn<'_, WsState<H::State>>) -> Step {
        loop {
            if conn.state().phase == Phase::Open && !conn.is_writable() {
                // Output backs up: the rest waits in the inbound buffer until
                // `on_writable_changed(true)` (the engine stops reading too).
                return ControlFlow::Break(Action::None);
            }
            let st = conn.state();
            let reader = Reader {
                client: st.is(flag::CLIENT),
                deflate: st.negotiated(),
                max_frame: self.tx.cfg.max_frame_size,
                max_message: self.tx.cfg.max_message_size,
            };
            let mut partial = conn
                .state_mut()
                .extra
                .as_mut()
                .and_then(|e| e.partial.take());
            self.rx.scratch.clear();
            let mut events = std::mem::take(&mut self.rx.events);
            let res = reader.read_some(
                conn.peek_all(),
                &mut partial,
                &mut self.rx.scratch,
                &mut events,
                BATCH,
            );
            conn.discard(res.consumed);
            match partial {
                Some(p) => conn.state_mut().extra_mut().partial = Some(p),
                None => conn.state_mut().tidy(),
            }
            let mut step = ControlFlow::Continue(());
            for ev in events.drain(..) {
                if step.is_continue() {
                    step = self.dispatch(conn, ev);
                }
            }
            self.rx.events = events;
            step?;
            if let Some(e) = res.error {
                return self.fail(conn, e);
            }
            if res.consumed < BATCH || conn.buffered() == 0 {
                // Stopped at an incomplete frame (or ran out of input).
                return ControlFlow::Break(Action::None);
            }
            // A full batch: write its output, then see whether to go on.
            if !self.tx.flush(conn) {
                return ControlFlow::Break(Action::Close);
            }
        }
    }

    /// Handles one event.
    fn dispatch(&mut self, conn: &mut Conn<'_, WsState<H::State>>, ev: Event) -> Step {
        let open = conn.state().phase == Phase::Open;
        match ev {
            Event::Data {
                kind,
                compressed,
                payload,
                ..
            } => {
                if !open {
                    return ControlFlow::Continue(()); // data after our close frame
                }
                let mut bytes = payload.bytes(&self.rx.scratch);
                if compressed {
                    let (Some(neg), Some(codecs)) =
                        (conn.state().negotiated(), self.tx.codecs.as_mut())
                    else {
                        return self.fail(conn, WsError::ReservedBits(super::frame::rsv::RSV1));
                    };
                    let ctx = if neg.rx_takeover {
                        Some(
                            conn.state_mut()
                                .extra_mut()
                                .deflate
                                .get_or_insert_with(Default::default),
                        )
                    } else {
                        None
                    };
                    self.rx.inflated.clear();
                    let max = self.tx.cfg.max_message_size;
                    if let Err(e) = codecs.decompress(neg, ctx, bytes, &mut self.rx.inflated, max) {
                        return self.fail(conn, e);
                    }
                    bytes = &self.rx.inflated;
                }
                let msg = match kind {
                    DataKind::Binary => Message::Binary(bytes),
                    DataKind::Text => match std::str::from_utf8(bytes) {
                        Ok(t) => Message::Text(t),
                        Err(_) => return self.fail(conn, WsError::InvalidUtf8),
                    },
                };
                let mut ws = WsConn {
                    conn,
                    tx: &mut self.tx,
                };
                let action = self.app.on_message(&mut ws, msg);
                self.after_app(conn, action)
            }
            Event::Ping(r) => {
                if !open {
                    return ControlFlow::Continue(());
                }
                let payload = &self.rx.scratch[r];
                let _ = self.tx.control(conn, OpCode::Pong, payload);
                let mut ws = WsConn {
                    conn,
                    tx: &mut self.tx,
                };
                let action = self.app.on_ping(&mut ws, payload);
                self.after_app(conn, action)
            }
            Event::Pong(r) => {
                if !open {
                    return ControlFlow::Continue(());
                }
                let mut ws = WsConn {
                    conn,
                    tx: &mut self.tx,
                };
                let action = self.app.on_pong(&mut ws, &self.rx.scratch[r]);
                self.after_app(conn, action)
            }
            Event::Close(r) => {
                let parsed = parse_close_payload(&self.rx.scratch[r.clone()]);
                let (code, reason) = match parsed {
                    Ok(c) => c.unwrap_or((CloseCode::NO_STATUS, "")),
                    Err(e) if open => return self.fail(conn, e),
                    // A bad close frame in answer to ours: the handshake is over anyway.
                    Err(_) => (CloseCode::PROTOCOL_ERROR, ""),
                };
                if open {
                    // Echo the code (§5.5.1); an empty close gets an empty one.
                    self.tx.close(conn, code, "");
                    // The reason borrows the scratch buffer: report from a copy.
                    let reason = reason.to_string();
                    self.report_close(conn, code, &reason);
                }
                self.closed(conn);
                ControlFlow::Break(Action::Close)
            }
        }
    }

    /// Fails the connection (§7.1.7): a close frame with the error's code, then
    /// the connection closes once the peer answers or the close timeout passes
    /// — at once for a peer that stopped answering keep-alive pings.
    fn fail(&mut self, conn: &mut Conn<'_, WsState<H::State>>, e: WsError) -> Step {
        if conn.state().phase != Phase::Open {
            self.closed(conn);
            return ControlFlow::Break(Action::Close);
        }
        tracing::debug!(error = %e, code = %e.close_code(), "failing WebSocket connection");
        let reason = e.to_string();
        self.tx.close(conn, e.close_code(), &reason);
        conn.state_mut().release();
        if e == WsError::PongTimeout {
            // Nothing arrives from this peer: waiting for its close frame
            // would only hold the connection longer.
            self.report_close(conn, e.close_code(), &reason);
            self.closed(conn);
            conn.close_with(CloseReason::Timeout(TimeoutKind::Read));
            return ControlFlow::Break(Action::None);
        }
        self.begin_close_wait(conn);
        self.report_close(conn, e.close_code(), &reason);
        // Whatever else is buffered is from a peer that broke the protocol.
        let n = conn.buffered();
        conn.discard(n);
        ControlFlow::Break(Action::None)
    }

    /// A close frame went out: give the peer `close_timeout` to answer (the
    /// connection's timer is the close wait from now on, keep-alive is over).
    fn begin_close_wait(&mut self, conn: &mut Conn<'_, WsState<H::State>>) {
        conn.state_mut().clear(flag::PONG_PENDING | flag::PING_SENT);
        conn.set_timer(Some(Instant::now() + self.tx.cfg.close_timeout));
    }

    /// The connection's timer expired: what it means depends on the phase.
    fn expire(&mut self, conn: &mut Conn<'_, WsState<H::State>>) -> Step {
        match conn.state().phase {
            Phase::Handshake if conn.state().is(flag::CLIENT) => {
                self.client_handshake_failed(conn, ClientHandshakeError::Timeout);
                ControlFlow::Break(Action::None)
            }
            Phase::Handshake => self.reject(conn, HandshakeError::Timeout),
            Phase::Open => self.keep_alive(conn),
            Phase::Closing => {
                tracing::debug!("no close frame from the WebSocket peer in time; closing");
                self.closed(conn);
                conn.close_with(CloseReason::Timeout(TimeoutKind::Deadline));
                ControlFlow::Break(Action::None)
            }
            Phase::Closed => ControlFlow::Break(Action::None),
        }
    }

    /// Keep-alive, when the timer fires on an open connection: fail it if the
    /// last ping went unanswered; otherwise send a ping and wait for the peer
    /// (any frame counts as an answer, see `on_traffic`), or — after an
    /// answered ping, with a pong timeout shorter than the interval — wait for
    /// the next ping's time.
    fn keep_alive(&mut self, conn: &mut Conn<'_, WsState<H::State>>) -> Step {
        let Some((interval, wait)) = self.tx.cfg.keep_alive() else {
            return ControlFlow::Continue(());
        };
        let st = conn.state_mut();
        if st.is(flag::PONG_PENDING) {
            return self.fail(conn, WsError::PongTimeout);
        }
        let now = Instant::now();
        if st.is(flag::PING_SENT) && wait < interval {
            st.clear(flag::PING_SENT);
            conn.set_timer(Some(now + (interval - wait)));
            return ControlFlow::Continue(());
        }
        st.set(flag::PONG_PENDING | flag::PING_SENT);
        conn.set_timer(Some(now + wait));
        if self.tx.control(conn, OpCode::Ping, b"").is_err() {
            return ControlFlow::Break(Action::Close);
        }
        ControlFlow::Continue(())
    }

    /// Reports the close to the application (once).
    fn report_close(
        &mut self,
        conn: &mut Conn<'_, WsState<H::State>>,
        code: CloseCode,
        reason: &str,
    ) {
        let st = conn.state_mut();
        if !st.is(flag::OPENED) || st.is(flag::REPORTED) {
            return;
        }
        st.set(flag::REPORTED);
        let mut ws = WsConn {
            conn,
            tx: &mut self.tx,
        };
        self.app.on_close(&mut ws, code, reason);
    }

    /// After an application callback: report a close it started, and apply its
    /// action.
    fn after_app(&mut self, conn: &mut Conn<'_, WsState<H::State>>, action: Action) -> Step {
        let st = conn.state_mut();
        if st.is(flag::CLOSE_SENT) && !st.is(flag::REPORTED) {
            let code = CloseCode(st.close_code);
            let reason = st
                .extra
                .as_mut()
                .and_then(|e| e.close_reason.take())
                .unwrap_or_default();
            st.tidy();
            self.begin_close_wait(conn);
            self.report_close(conn, code, &reason);
        }
        match action {
            Action::None => ControlFlow::Continue(()),
            Action::Close => {
                if conn.state().phase == Phase::Open {
                    self.tx.close(conn, CloseCode::NORMAL, "");
                    self.begin_close_wait(conn);
                    self.report_close(conn, CloseCode::NORMAL, "");
                }
                ControlFlow::Continue(())
            }
            Action::Shutdown => ControlFlow::Break(Action::Shutdown),
        }
    }

    /// Flushes the batch's output and returns `action` (or `Close` if the write
    /// failed).
    fn finish(&mut self, conn: &mut Conn<'_, WsState<H::State>>, action: Action) -> Action {
        let ok = self.tx.flush(conn);
        if self.rx.scratch.capacity() > MAX_RETAINED {
            self.rx.scratch = Vec::with_capacity(16 * 1024);
        }
        if self.rx.inflated.capacity() > MAX_RETAINED {
            self.rx.inflated = Vec::new();
        }
        if ok {
            action
        } else {
            Action::Close
        }
    }
}

impl<H: WebSocketHandler> EventHandler for WebSocket<H> {
    type State = WsState<H::State>;

    fn on_boot(&mut self, info: &LoopInfo<'_>) -> Action {
        self.app.on_boot(info)
    }

    fn on_open(&mut self, conn: &mut Conn<'_, Self::State>) -> Action {
        if let Some(t) = self.tx.cfg.handshake_timeout {
            conn.set_timer(Some(Instant::now() + t));
        }
        if !conn.state().is(flag::CLIENT) {
            return Action::None;
        }
        // A dialed connection: send the upgrade request.
        let cfg = self.tx.cfg.clone();
        let sent = conn.state_mut().extra.as_mut().and_then(|e| {
            let r = e.request.as_mut()?;
            r.1 = handshake::new_key();
            r.0.write(&r.1, &cfg.protocols, cfg.deflate.as_ref(), &mut self.tx.out);
            Some(())
        });
        if sent.is_none() {
            conn.close_with(CloseReason::Protocol(
                "WebSocket client without a request".into(),
            ));
            return Action::None;
        }
        self.finish(conn, Action::None)
    }

    fn on_traffic(&mut self, conn: &mut Conn<'_, Self::State>) -> Action {
        // The peer is alive: that answers a keep-alive ping.
        conn.state_mut().clear(flag::PONG_PENDING);
        let action = match self.process(conn) {
            ControlFlow::Break(a) => a,
            ControlFlow::Continue(()) => Action::None,
        };
        self.finish(conn, action)
    }

    fn on_close(&mut self, conn: &mut Conn<'_, Self::State>, reason: &CloseReason) {
        let why = reason.to_string();
        self.report_close(conn, CloseCode::ABNORMAL, &why);
        conn.state_mut().release();
        self.tx.out.clear();
    }

    fn on_timer(&mut self, conn: &mut Conn<'_, Self::State>) -> Action {
        let action = match self.expire(conn) {
            ControlFlow::Break(a) => a,
            ControlFlow::Continue(()) => Action::None,
        };
        self.finish(conn, action)
    }

    fn on_writable_changed(&mut self, conn: &mut Conn<'_, Self::State>, writable: bool) {
        let mut action = Action::None;
        let live = matches!(conn.state().phase, Phase::Open | Phase::Closing);
        if writable && live && conn.buffered() > 0 {
            // Parsing stopped while the output backed up: frames wait in the
            // inbound buffer with nothing new to come from the socket yet.
            if let ControlFlow::Break(a) = self.process(conn) {
                action = a;
            }
        }
        let st = conn.state();
        if st.is(flag::OPENED) && !st.is(flag::REPORTED) {
            let mut ws = WsConn {
                conn,
                tx: &mut self.tx,
            };
            self.app.on_writable_changed(&mut ws, writable);
            if let ControlFlow::Break(a) = self.after_app(conn, Action::None) {
                action = a;
            }
        }
        match self.finish(conn, action) {
            Action::None => {}
            Action::Close => conn.close(),
            Action::Shutdown => {
                tracing::warn!(
                    "Action::Shutdown from on_writable_changed is not supported; closing"
                )
            }
        }
    }

    fn on_tick(&mut self, info: &LoopInfo<'_>) -> (Duration, Action) {
        self.app.on_tick(info)
    }

    fn on_shutdown(&mut self, info: &LoopInfo<'_>) {
        self.app.on_shutdown(info)
    }
}
