//! TLS for netloop connections, on rustls (cargo feature `tls`).
//!
//! # What
//!
//! A *sans-I/O* TLS layer: [`TlsSession`] is one connection's TLS state — the
//! handshake, record encryption and decryption, alerts, `close_notify` — and it
//! reads and writes nothing itself. The event loop reads the socket, hands the
//! wire bytes to [`TlsSession::receive`] and gets plaintext plus the records to
//! send back; a handler's write goes through [`TlsSession::send`] and leaves as
//! records. Sessions come from a [`TlsAcceptor`] (a listener's
//! `rustls::ServerConfig`) or a [`TlsConnector`] (a dialer's
//! `rustls::ClientConfig`); [`ServerConfigBuilder`] and [`ClientConfigBuilder`]
//! build those configs with netloop's defaults from an [`Identity`] (PEM files,
//! or a self-signed pair for trying things out).
//!
//! # Why this shape
//!
//! A server should pay for a connection's buffers only while bytes are in flight.
//! rustls's usual connection type (and so tokio-rustls) keeps its own inbound and
//! outbound buffers per connection; rustls's *unbuffered* API
//! (`UnbufferedServerConnection`) instead borrows the caller's buffers on every
//! call. netloop uses it: the loop's shared read buffer takes the wire bytes, the
//! loop's scratch vectors take the plaintext and the records, and a connection
//! keeps bytes of its own only when a record arrived cut short (the *pending*
//! bytes, bounded by [`TlsSession::pending_wire_limit`]) or the socket did not
//! take everything — in the engine's pooled, released-when-empty buffers. An idle
//! established session is rustls's keys and state machine and nothing else (the
//! `tls_session` tests measure it).
//!
//! One thing the unbuffered API does not do yet (rustls 0.23): decrypt
//! application data in place *and hand out that slice* — it decrypts in place,
//! then copies each record's plaintext into a vector of its own, which `receive`
//! copies into the caller's `plain`. That is the same number of copies as rustls's
//! buffered connection read through `Read`, and the shape of `receive` does not
//! change when rustls hands out the in-place slice.
//!
//! # In the event loop
//!
//! A listener serves TLS with [`ListenConfig::tls`](crate::ListenConfig::tls)
//! (and a `tls://` address says it must); the dialer dials TLS with
//! [`DialOptions::tls`](crate::DialOptions::tls). Handlers are unchanged:
//! `on_traffic` sees plaintext and what they write leaves as records. The
//! handler's view of a connection's life:
//!
//! - `on_open` runs **at accept**, before the handshake, so a handler counting
//!   its connections sees every TLS connection. What it writes then is held and
//!   encrypted once the handshake is done.
//! - [`EventHandler::on_handshake`](crate::EventHandler::on_handshake) runs when
//!   the handshake completed; [`Conn::tls`](crate::Conn::tls) then tells the ALPN
//!   protocol, the SNI name, the client's certificates and whether the session
//!   was resumed. `on_traffic` comes only after it.
//! - `on_close` runs **exactly once**, for failed handshakes too. **Decision:** a
//!   connection whose handshake fails was opened for the handler (`on_open` ran)
//!   and so is closed for it, with the reason: `CloseReason::Tls` (garbage
//!   instead of a ClientHello, a client offering only old protocol versions, a
//!   record over the size limit, a fatal alert from the peer, a reset or end of
//!   stream mid-handshake — a *truncated* handshake), or
//!   `CloseReason::Timeout(TimeoutKind::Handshake)` for a handshake that stalls
//!   ([`DEFAULT_HANDSHAKE_TIMEOUT`], counted from accept and apart from the
//!   handler's own deadline). [`TlsError::failure`] sorts the TLS reasons; the
//!   engine's stats count them (`closed.tls`). When rustls has an alert saying
//!   why, it is sent before the close.
//! - An established session closing on this side sends `close_notify` after
//!   everything queued; one the peer ends with `close_notify` is an end of stream.
//!
//! Under io_uring, records are queued on the connection and sent from there (a
//! send's bytes must stay put until it completes); under epoll they are sent
//! straight from the loop's scratch when the socket takes them.
//!
//! # The crypto provider
//!
//! netloop builds its configs with rustls's **ring** provider ([`provider`]).
//! Both providers build on a plain Linux x86-64 machine with a C compiler alone
//! today (aws-lc-sys 0.47, measured here, ships pregenerated bindings and builds its C with the
//! `cc` crate; cmake, NASM and clang are needed only on other targets, for FIPS,
//! or with bindgen), but they cost very different build times: on this project's
//! 2-core build machine, `aws-lc-sys` alone took 99 s of CPU (178 s wall) to
//! build, `ring` 21 s (33 s wall). ring also has no fallback to a cmake build on
//! less common targets. What aws-lc-rs would add — post-quantum hybrid key
//! exchange (X25519MLKEM768), FIPS — is not what this layer is about; a config
//! built by hand with another provider works with [`TlsAcceptor::new`] all the
//! same. The benchmark peers (tokio-rustls) use the same provider and key type
//! (ECDSA P-256).
//!
//! # Example
//!
//! A client and a server session talking through plain vectors (what the event
//! loop does with sockets):
//!
//! ```
//! use netloop::tls::{roots_from_pem, ClientConfigBuilder, Identity, ServerConfigBuilder};
//! use netloop::tls::{server_name, TlsAcceptor, TlsConnector, TlsStatus};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pair = Identity::self_signed(&["localhost"])?;
//! let roots = roots_from_pem(pair.cert_pem.as_bytes())?;
//! let acceptor = TlsAcceptor::new(ServerConfigBuilder::new(pair.identity).build()?);
//! let connector = TlsConnector::new(ClientConfigBuilder::new(roots).build()?);
//!
//! let mut server = acceptor.accept()?;
//! let mut client = connector.connect(server_name("localhost")?)?;
//! let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
//! let (mut server_plain, mut client_plain) = (Vec::new(), Vec::new());
//! client.start(&mut to_server)?;
//! // Ping-pong the handshake flights until both sides are established.
//! while client.is_handshaking() || server.is_handshaking() {
//!     let r = server.receive(&mut to_server, &mut server_plain, &mut to_client)?;
//!     to_server.drain(..r.consumed);
//!     let r = client.receive(&mut to_client, &mut client_plain, &mut to_server)?;
//!     to_client.drain(..r.consumed);
//! }
//! assert_eq!(server.server_name(), Some("localhost"));
//!
//! client.send(&mut [], b"hello over TLS", &mut to_server)?;
//! let r = server.receive(&mut to_server, &mut server_plain, &mut to_client)?;
//! to_server.drain(..r.consumed);
//! assert_eq!(server_plain, b"hello over TLS");
//!
//! server.close(&mut [], &mut to_client)?;
//! let r = client.receive(&mut to_client, &mut client_plain, &mut to_server)?;
//! assert!(r.peer_closed);
//! assert_eq!(client.status(), TlsStatus::PeerClosed);
//! # Ok(())
//! # }
//! ```
//!
//! # Kernel TLS
//!
//! rustls can hand the traffic secrets over for kernel TLS
//! (`dangerous_into_kernel_connection`, which also keeps handling key updates and
//! tickets), after which the loop would `write`/`read` plaintext and `sendfile`
//! could encrypt in the kernel. It needs the `tls` kernel module (`TCP_ULP`
//! "tls"); the build machine's kernel does not offer it
//! (`/proc/sys/net/ipv4/tcp_available_ulp` lists only `mptcp`), so it is left
//! for a measured follow-up.

mod config;
mod endpoint;
mod error;
mod layer;
mod session;

pub use config::{
    certificates_from_pem, provider, roots_from_pem, roots_from_pem_file, server_name, ClientAuth,
    ClientConfigBuilder, Identity, SelfSigned, ServerConfigBuilder, DEFAULT_SESSION_CACHE,
};
pub use endpoint::{TlsAcceptor, TlsConnector};
pub use error::{TlsConfigError, TlsError, TlsFailure};
pub(crate) use layer::TlsLayer;
pub use layer::DEFAULT_HANDSHAKE_TIMEOUT;
pub use session::{Received, TlsSession, TlsStatus, MAX_HANDSHAKE_MESSAGE, MAX_RECORD_WIRE};

/// rustls itself, re-exported so applications use the exact version netloop
/// builds its sessions with (for `ServerConfig`, `ClientConfig`, `pki_types`).
pub use rustls;
