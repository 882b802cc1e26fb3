//! Errors of the TLS layer: [`TlsError`] for a connection's session (with
//! [`TlsFailure`], the short reason a connection closes with), [`TlsConfigError`]
//! for building configurations and loading keys.

use std::io;
use std::path::PathBuf;

use rustls::AlertDescription;

/// Why a TLS session failed: the error of [`TlsSession`](super::TlsSession)'s
/// methods. A failed session is finished: send the bytes the failing call left in
/// its `out` buffer (a fatal alert telling the peer why, when rustls has one), then
/// close the connection.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls rejected the peer's bytes or the handshake failed (bad records, no
    /// common protocol version, a bad certificate, an alert from the peer...).
    /// [`TlsError::failure`] sorts it.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// Application data can only be sent once the handshake completed.
    #[error("TLS: the handshake has not completed; application data cannot be sent yet")]
    HandshakeIncomplete,
    /// `close_notify` was sent: nothing more can be sent on this session.
    #[error("TLS: the session is closed for sending (close_notify was sent)")]
    Closed,
    /// More unprocessed wire bytes than TLS allows to be pending (a partial record
    /// or a partial handshake message): the peer is not speaking TLS sensibly.
    #[error("TLS: {pending} unprocessed wire bytes exceed the limit of {limit}")]
    Overflow {
        /// The unprocessed bytes.
        pending: usize,
        /// The limit ([`TlsSession::pending_wire_limit`](super::TlsSession::pending_wire_limit)).
        limit: usize,
    },
    /// The connection ended — end of stream, a reset, a socket error — while the
    /// handshake was still under way (a truncated or abandoned handshake). Says
    /// how it ended.
    #[error("TLS: the connection ended during the handshake ({0})")]
    Interrupted(String),
}

/// The kind of a [`TlsError`], short enough to be a connection's close reason and a
/// metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The bytes were not well-formed TLS records (garbage instead of a
    /// ClientHello, a record over the size limit, a malformed message).
    BadRecord,
    /// No common ground: protocol version, cipher suite, key exchange group,
    /// signature scheme or ALPN protocol.
    Incompatible,
    /// The peer broke the protocol's rules (an unexpected message, a bad
    /// handshake step).
    Misbehaved,
    /// A record failed authentication (tampered with, or wrong keys).
    Decrypt,
    /// The peer's certificate was missing, invalid or not trusted.
    Certificate,
    /// The peer sent a fatal alert ([`TlsError::alert_received`] says which).
    PeerAlert,
    /// The connection ended (end of stream, reset) before the handshake
    /// completed ([`TlsError::Interrupted`]).
    Truncated,
    /// A local misuse or limit: sending before the handshake or after
    /// `close_notify`, too much pending input, an internal rustls error.
    Local,
}

impl TlsFailure {
    /// A short lowercase name (`bad-record`, `incompatible`, ...), for logs and
    /// metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::BadRecord => "bad-record",
            TlsFailure::Incompatible => "incompatible",
            TlsFailure::Misbehaved => "misbehaved",
            TlsFailure::Decrypt => "decrypt",
            TlsFailure::Certificate => "certificate",
            TlsFailure::PeerAlert => "peer-alert",
            TlsFailure::Truncated => "truncated",
            TlsFailure::Local => "local",
        }
    }
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TlsError {
    /// Sorts the error into a [`TlsFailure`].
    pub fn failure(&self) -> TlsFailure {
        use rustls::Error as E;
        match self {
            TlsError::Rustls(e) => match e {
                E::InvalidMessage(_)
                | E::PeerSentOversizedRecord
                | E::InappropriateMessage { .. }
                | E::InappropriateHandshakeMessage { .. } => TlsFailure::BadRecord,
                E::PeerIncompatible(_) | E::NoApplicationProtocol | E::UnsupportedNameType => {
                    TlsFailure::Incompatible
                }
                E::PeerMisbehaved(_) | E::InvalidEncryptedClientHello(_) => TlsFailure::Misbehaved,
                E::DecryptError => TlsFailure::Decrypt,
                E::NoCertificatesPresented
                | E::InvalidCertificate(_)
                | E::InvalidCertRevocationList(_) => TlsFailure::Certificate,
                E::AlertReceived(_) => TlsFailure::PeerAlert,
                _ => TlsFailure::Local,
            },
            TlsError::Interrupted(_) => TlsFailure::Truncated,
            TlsError::HandshakeIncomplete | TlsError::Closed | TlsError::Overflow { .. } => {
                TlsFailure::Local
            }
        }
    }

    /// The alert the peer sent, when the failure is [`TlsFailure::PeerAlert`].
    pub fn alert_received(&self) -> Option<AlertDescription> {
        match self {
            TlsError::Rustls(rustls::Error::AlertReceived(a)) => Some(*a),
            _ => None,
        }
    }

    /// Whether the peer is to blame (its bytes, its certificate, its alert), as
    /// opposed to a local misuse or limit.
    pub fn is_peer_fault(&self) -> bool {
        self.failure() != TlsFailure::Local
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A PEM file could not be read.
    #[error("TLS config: reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// PEM text could not be parsed, or held no item of the kind wanted.
    #[error("TLS config: {what}: {detail}")]
    Pem {
        /// What was being loaded ("certificate chain", "private key", a path).
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// rustls refused the configuration (a key that does not match the
    /// certificate, an unusable verifier, ...).
    #[error("TLS config: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (e.g. no trust anchor).
    #[error("TLS config: client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A string is not a valid TLS server name (DNS name or IP address).
    #[error("TLS config: invalid server name {0:?}")]
    ServerName(String),
    /// rcgen could not generate a self-signed pair.
    #[error("TLS config: generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}
