//! The client side: dial a server from an engine's loops and speak WebSocket
//! over the connection, with the same [`WebSocket`](super::WebSocket) handler
//! that serves accepted connections.
//!
//! The dialed connection's state is created here ([`client_state`]) with the
//! upgrade request in it; the handler sends the request in `on_open`, checks
//! the answer, then calls the application's
//! [`on_open`](super::WebSocketHandler::on_open) — or
//! [`on_handshake_failed`](super::WebSocketHandler::on_handshake_failed).
//!
//! ```no_run
//! use netloop::protocol::websocket::{client, Config, Message, WebSocket, WebSocketHandler, WsConn};
//! use netloop::{Action, DialOptions, Engine};
//!
//! #[derive(Clone)]
//! struct Print;
//! impl WebSocketHandler for Print {
//!     type State = ();
//!     fn on_open(&mut self, ws: &mut WsConn<'_, '_, ()>) -> Action {
//!         let _ = ws.send_text("hello");
//!         Action::None
//!     }
//!     fn on_message(&mut self, _ws: &mut WsConn<'_, '_, ()>, msg: Message<'_>) -> Action {
//!         println!("{msg:?}");
//!         Action::Close // a normal closing handshake
//!     }
//! }
//!
//! let engine = Engine::builder().loops(1).start_client_with(WebSocket::new(Print, Config::default()))?;
//! let (addr, request) = client::parse_url("ws://127.0.0.1:9000/echo")?;
//! client::dial(&engine.dialer(), addr.as_str(), request, (), DialOptions::new(), |res| {
//!     if let Err(e) = res {
//!         eprintln!("dial failed: {e}");
//!     }
//! });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::conn::WsHandle;
use super::handshake::ClientRequest;
use super::state::{flag, WsState};
use crate::{DialOptions, Dialer, Error, ToAddr};

/// The state of a connection about to be dialed as a WebSocket client:
/// give it to [`DialOptions::state`] (which [`dial`] does for you).
pub fn client_state<S>(request: ClientRequest, user: S) -> WsState<S> {
    let mut st = WsState::with_user(user);
    st.set(flag::CLIENT);
    st.extra_mut().request = Some(Box::new((request, String::new())));
    st
}

/// Dials `addr` with `dialer` (of an engine whose handler is a
/// [`WebSocket`](super::WebSocket) with application state `S`: the dialer's type
/// says so) and opens a
/// WebSocket with `request` over the connection. `cb` runs once the TCP
/// connection is made (or failed); the WebSocket itself is open when the
/// application's `on_open` runs.
pub fn dial<S, F>(
    dialer: &Dialer<WsState<S>>,
    addr: impl ToAddr,
    request: ClientRequest,
    user: S,
    opts: DialOptions<WsState<S>>,
    cb: F,
) where
    S: Send + 'static,
    F: FnOnce(Result<WsHandle, Error>) + Send + 'static,
{
    let opts = opts.state(client_state(request, user));
    dialer.dial(addr, opts, move |res| {
        cb(res.map(|h| WsHandle {
            handle: h,
            client: true,
        }))
    });
}

/// Splits a `ws://host[:port][/path]` URL into the address to dial
/// (`host:port`, port 80 by default) and the request (`Host` and path).
/// `wss://` needs TLS, which this engine does not provide yet.
///
/// ```
/// use netloop::protocol::websocket::client::parse_url;
/// let (addr, req) = parse_url("ws://127.0.0.1:9001/chat?room=2").unwrap();
/// assert_eq!(addr, "127.0.0.1:9001");
/// assert_eq!((req.host.as_str(), req.path.as_str()), ("127.0.0.1:9001", "/chat?room=2"));
/// let (addr, req) = parse_url("ws://example.com").unwrap();
/// assert_eq!((addr.as_str(), req.path.as_str()), ("example.com:80", "/"));
/// assert!(parse_url("wss://example.com").is_err());
/// ```
pub fn parse_url(url: &str) -> Result<(String, ClientRequest), Error> {
    let rest = if url.len() > 5 && url[..5].eq_ignore_ascii_case("ws://") {
        &url[5..]
    } else {
        return Err(Error::Config(format!(
            "{url:?}: only ws:// URLs are supported"
        )));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(Error::Config(format!("{url:?}: bad host")));
    }
    // A port is present if the authority ends in `:digits` outside brackets.
    let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':')
    });
    let addr = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((addr, ClientRequest::new(authority, path)))
}
