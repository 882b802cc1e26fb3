//! Session factories: [`TlsAcceptor`] (one per TLS listener, makes server
//! sessions) and [`TlsConnector`] (one per client config, makes client sessions).
//!
//! The acceptor also solves one gap of rustls's unbuffered server connection: it
//! does not expose the client's SNI name. rustls hands the name to the
//! certificate resolver, synchronously, while the session processes the
//! ClientHello on the calling thread; the acceptor wraps the config's resolver in
//! one that notes the name in a thread-local slot, and the session takes it from
//! there right after that call. (Only during the handshake: an established
//! session never touches the slot.)

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig};

use super::{ServerConfigBuilder, TlsConfigError, TlsError, TlsSession, DEFAULT_HANDSHAKE_TIMEOUT};

/// Makes server [`TlsSession`]s from one `rustls::ServerConfig`: what a TLS
/// listener holds. Cheap to clone (an `Arc`).
#[derive(Clone, Debug)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    handshake_timeout: Duration,
}

impl TlsAcceptor {
    /// Serves with `config` (built with [`ServerConfigBuilder`] or by hand). The
    /// config is copied once, to wrap its certificate resolver so sessions can
    /// report the client's SNI name.
    pub fn new(config: Arc<ServerConfig>) -> TlsAcceptor {
        let mut config = Arc::unwrap_or_clone(config);
        config.cert_resolver = Arc::new(SniRecorder(config.cert_resolver.clone()));
        TlsAcceptor {
            config: Arc::new(config),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// How long a connection's handshake may take, counted from accept (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`], 10 s): past it the connection closes with
    /// [`TimeoutKind::Handshake`](crate::TimeoutKind::Handshake). Zero means the
    /// default (a handshake always has a deadline).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> TlsAcceptor {
        self.handshake_timeout = nonzero(timeout);
        self
    }

    /// The handshake timeout of the listener's connections.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// An acceptor for a certificate chain and key in PEM files, with
    /// [`ServerConfigBuilder`]'s defaults and the given ALPN protocols.
    pub fn from_pem_files(
        cert: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
        alpn: &[&str],
    ) -> Result<TlsAcceptor, TlsConfigError> {
        Ok(TlsAcceptor::new(
            ServerConfigBuilder::from_pem_files(cert, key)?
                .alpn(alpn)
                .build()?,
        ))
    }

    /// The config sessions are made with (its resolver wrapped).
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// A server session for one accepted connection.
    pub fn accept(&self) -> Result<TlsSession, TlsError> {
        Ok(TlsSession::server(
            rustls::server::UnbufferedServerConnection::new(self.config.clone())?,
        ))
    }
}

/// Makes client [`TlsSession`]s from one `rustls::ClientConfig` (which also holds
/// the client's resumption store). Cheap to clone.
#[derive(Clone, Debug)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    handshake_timeout: Duration,
}

impl TlsConnector {
    /// Connects with `config` (built with
    /// [`ClientConfigBuilder`](super::ClientConfigBuilder) or by hand).
    pub fn new(config: Arc<ClientConfig>) -> TlsConnector {
        TlsConnector {
            config,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// How long a dialed connection's handshake may take, counted from connect
    /// (default [`DEFAULT_HANDSHAKE_TIMEOUT`], 10 s; zero means the default).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> TlsConnector {
        self.handshake_timeout = nonzero(timeout);
        self
    }

    /// The handshake timeout of dialed connections.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The config sessions are made with.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// A client session for a connection to `server_name` (checked against the
    /// server's certificate, and sent as SNI when it is a DNS name). Call
    /// [`TlsSession::start`] to get the ClientHello.
    pub fn connect(&self, server_name: ServerName<'static>) -> Result<TlsSession, TlsError> {
        Ok(TlsSession::client(
            rustls::client::UnbufferedClientConnection::new(self.config.clone(), server_name)?,
        ))
    }
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    fn from(config: Arc<ServerConfig>) -> TlsAcceptor {
        TlsAcceptor::new(config)
    }
}

impl From<Arc<ClientConfig>> for TlsConnector {
    fn from(config: Arc<ClientConfig>) -> TlsConnector {
        TlsConnector::new(config)
    }
}

fn nonzero(timeout: Duration) -> Duration {
    if timeout.is_zero() {
        DEFAULT_HANDSHAKE_TIMEOUT
    } else {
        timeout
    }
}

thread_local! {
    /// The SNI outcome of the last ClientHello resolved on this thread:
    /// `Some(None)` when the client sent no name.
    static SNI: RefCell<Option<Option<Box<str>>>> = const { RefCell::new(None) };
}

/// Forgets any noted name (before a server session processes input that may hold
/// its ClientHello).
pub(super) fn sni_clear() {
    SNI.with(|s| s.borrow_mut().take());
}

/// The name noted since [`sni_clear`]: `None` if no ClientHello was resolved,
/// `Some(None)` if the client sent no SNI.
pub(super) fn sni_take() -> Option<Option<Box<str>>> {
    SNI.with(|s| s.borrow_mut().take())
}

/// The resolver wrapper that notes the SNI name (see the module docs).
#[derive(Debug)]
struct SniRecorder(Arc<dyn ResolvesServerCert>);

impl ResolvesServerCert for SniRecorder {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = client_hello.server_name().map(Box::from);
        SNI.with(|s| *s.borrow_mut() = Some(name));
        self.0.resolve(client_hello)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.0.only_raw_public_keys()
    }
}
