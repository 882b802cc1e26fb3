//! Building rustls configurations: the crypto provider, certificate + key pairs
//! ([`Identity`], from PEM or self-signed), the server side
//! ([`ServerConfigBuilder`]: resumption on, ALPN, optional client certificates)
//! and the client side ([`ClientConfigBuilder`]: trust roots, ALPN, an optional
//! client certificate).
//!
//! Every config is an `Arc<rustls::…Config>`: a plain rustls config, so anything
//! these helpers do not cover can be set on a config built by hand and given to
//! [`TlsAcceptor::new`](super::TlsAcceptor::new) /
//! [`TlsConnector::new`](super::TlsConnector::new) instead.

use std::path::Path;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::TlsConfigError;

/// Server-side session cache entries kept by default (TLS 1.2 session IDs, and
/// TLS 1.3 resumption when tickets are off). Each entry holds a few hundred bytes
/// of session state, shared by all the listener's connections.
pub const DEFAULT_SESSION_CACHE: usize = 4096;

/// The crypto provider netloop builds its configs with: rustls's `ring` provider.
/// (Why ring and not aws-lc-rs: see the [module docs](super#the-crypto-provider).)
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its private key: what a server presents (or a client,
/// for client certificates).
#[derive(Debug)]
pub struct Identity {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// A freshly generated self-signed pair, with its PEM texts (the certificate PEM
/// is what a client trusts: `curl --cacert`, `openssl s_client -CAfile`).
#[derive(Debug)]
pub struct SelfSigned {
    /// The certificate and key, ready for [`ServerConfigBuilder::new`].
    pub identity: Identity,
    /// The certificate as PEM.
    pub cert_pem: String,
    /// The private key as PEM (PKCS#8).
    pub key_pem: String,
}

impl Identity {
    /// Loads a PEM certificate chain (leaf first) and a PEM private key from files.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Identity, TlsConfigError> {
        let chain = read_file(cert.as_ref())?;
        let key_pem = read_file(key.as_ref())?;
        Identity::from_pem(&chain, &key_pem).map_err(|e| match e {
            TlsConfigError::Pem { what, detail } => TlsConfigError::Pem {
                what: format!(
                    "{what} ({} / {})",
                    cert.as_ref().display(),
                    key.as_ref().display()
                ),
                detail,
            },
            other => other,
        })
    }

    /// Parses a PEM certificate chain (leaf first) and a PEM private key.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Identity, TlsConfigError> {
        let chain = certificates_from_pem(chain_pem, "certificate chain")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsConfigError::Pem {
            what: "private key".into(),
            detail: pem_detail(e),
        })?;
        Ok(Identity { chain, key })
    }

    /// Generates a self-signed ECDSA P-256 certificate valid for `names` (DNS names
    /// or IP addresses, e.g. `["localhost", "127.0.0.1"]`), for trying things out
    /// and for tests. Clients must be told to trust [`SelfSigned::cert_pem`].
    pub fn self_signed<S: AsRef<str>>(names: &[S]) -> Result<SelfSigned, TlsConfigError> {
        let names: Vec<String> = names.iter().map(|n| n.as_ref().to_owned()).collect();
        let pair = rcgen::generate_simple_self_signed(names)?;
        let key_der = pair.signing_key.serialize_der();
        Ok(SelfSigned {
            identity: Identity {
                chain: vec![pair.cert.der().clone()],
                key: PrivateKeyDer::Pkcs8(key_der.into()),
            },
            cert_pem: pair.cert.pem(),
            key_pem: pair.signing_key.serialize_pem(),
        })
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_detail(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of that kind found".into(),
        other => other.to_string(),
    }
}

/// Every certificate in a PEM text (at least one).
pub fn certificates_from_pem(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Pem {
            what: what.into(),
            detail: pem_detail(e),
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::Pem {
            what: what.into(),
            detail: "no CERTIFICATE found".into(),
        });
    }
    Ok(certs)
}

/// A trust store holding every certificate of a PEM text (CA certificates, or a
/// self-signed certificate trusted as is).
pub fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates_from_pem(pem, "trust roots")? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// A trust store from a PEM file of CA certificates.
pub fn roots_from_pem_file(path: impl AsRef<Path>) -> Result<RootCertStore, TlsConfigError> {
    roots_from_pem(&read_file(path.as_ref())?)
}

/// A server name (DNS name or IP address) for [`TlsConnector::connect`](super::TlsConnector::connect).
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsConfigError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsConfigError::ServerName(name.to_owned()))
}

/// Whether and how a server asks clients for certificates (mutual TLS).
#[derive(Debug, Default)]
pub enum ClientAuth {
    /// No client certificates (the default).
    #[default]
    None,
    /// Clients may present a certificate; one that is presented must chain to
    /// these roots, and clients without one are let in.
    Optional(RootCertStore),
    /// Clients must present a certificate chaining to these roots.
    Required(RootCertStore),
}

/// Builds a server `Arc<rustls::ServerConfig>` with netloop's defaults: the ring
/// provider, TLS 1.3 and 1.2, session resumption on (stateless tickets plus a
/// [`DEFAULT_SESSION_CACHE`]-entry session cache), no ALPN, no client
/// certificates.
///
/// ```
/// # fn main() -> Result<(), netloop::tls::TlsConfigError> {
/// use netloop::tls::{ClientAuth, Identity, ServerConfigBuilder};
///
/// let pair = Identity::self_signed(&["localhost"])?;
/// let config = ServerConfigBuilder::new(pair.identity)
///     .alpn(&["http/1.1"])
///     .client_auth(ClientAuth::None)
///     .build()?;
/// assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ServerConfigBuilder {
    identity: Identity,
    alpn: Vec<Vec<u8>>,
    client_auth: ClientAuth,
    session_cache: usize,
    tickets: bool,
    tls13_only: bool,
}

impl ServerConfigBuilder {
    /// Starts from the certificate chain and key the server presents.
    pub fn new(identity: Identity) -> ServerConfigBuilder {
        ServerConfigBuilder {
            identity,
            alpn: Vec::new(),
            client_auth: ClientAuth::None,
            session_cache: DEFAULT_SESSION_CACHE,
            tickets: true,
            tls13_only: false,
        }
    }

    /// Loads the certificate chain and key from PEM files.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ServerConfigBuilder, TlsConfigError> {
        Ok(ServerConfigBuilder::new(Identity::from_pem_files(
            cert, key,
        )?))
    }

    /// The ALPN protocols offered, in the server's order of preference (e.g.
    /// `["h2", "http/1.1"]`). A client that offers ALPN but none of these is
    /// refused (`no_application_protocol`); one that offers no ALPN is let in.
    pub fn alpn<P: AsRef<[u8]>>(mut self, protocols: &[P]) -> ServerConfigBuilder {
        self.alpn = protocols.iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Client certificates (mutual TLS): none (the default), optional or required.
    pub fn client_auth(mut self, auth: ClientAuth) -> ServerConfigBuilder {
        self.client_auth = auth;
        self
    }

    /// Entries of the session cache (0: no cache).
    pub fn session_cache(mut self, entries: usize) -> ServerConfigBuilder {
        self.session_cache = entries;
        self
    }

    /// Whether resumption tickets are issued (default on; the ticket key rotates
    /// every 6 hours).
    pub fn tickets(mut self, on: bool) -> ServerConfigBuilder {
        self.tickets = on;
        self
    }

    /// Accepts TLS 1.3 only (default: TLS 1.3 and 1.2).
    pub fn tls13_only(mut self, on: bool) -> ServerConfigBuilder {
        self.tls13_only = on;
        self
    }

    /// Builds the config.
    pub fn build(self) -> Result<Arc<ServerConfig>, TlsConfigError> {
        let provider = provider();
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            rustls::DEFAULT_VERSIONS
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)?;
        let builder = match self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional(roots) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .allow_unauthenticated()
                    .build()?,
            ),
            ClientAuth::Required(roots) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?,
            ),
        };
        let mut config = builder.with_single_cert(self.identity.chain, self.identity.key)?;
        config.alpn_protocols = self.alpn;
        config.session_storage = if self.session_cache > 0 {
            ServerSessionMemoryCache::new(self.session_cache)
        } else {
            Arc::new(rustls::server::NoServerSessionStorage {})
        };
        if self.tickets {
            config.ticketer = rustls::crypto::ring::Ticketer::new()?;
        }
        Ok(Arc::new(config))
    }
}

/// Builds a client `Arc<rustls::ClientConfig>`: the ring provider, TLS 1.3 and
/// 1.2, the given trust roots, session resumption on (rustls's in-memory store of
/// 256 sessions), optional ALPN and client certificate.
///
/// ```
/// # fn main() -> Result<(), netloop::tls::TlsConfigError> {
/// use netloop::tls::{roots_from_pem, ClientConfigBuilder, Identity};
///
/// let pair = Identity::self_signed(&["localhost"])?;
/// let config = ClientConfigBuilder::new(roots_from_pem(pair.cert_pem.as_bytes())?)
///     .alpn(&["http/1.1"])
///     .build()?;
/// assert!(config.enable_sni);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ClientConfigBuilder {
    roots: RootCertStore,
    alpn: Vec<Vec<u8>>,
    identity: Option<Identity>,
    resumption: bool,
}

impl ClientConfigBuilder {
    /// Starts from the roots server certificates must chain to.
    pub fn new(roots: RootCertStore) -> ClientConfigBuilder {
        ClientConfigBuilder {
            roots,
            alpn: Vec::new(),
            identity: None,
            resumption: true,
        }
    }

    /// The ALPN protocols offered, in order of preference.
    pub fn alpn<P: AsRef<[u8]>>(mut self, protocols: &[P]) -> ClientConfigBuilder {
        self.alpn = protocols.iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// A client certificate to present when the server asks for one.
    pub fn identity(mut self, identity: Identity) -> ClientConfigBuilder {
        self.identity = Some(identity);
        self
    }

    /// Whether sessions are kept for resumption (default on).
    pub fn resumption(mut self, on: bool) -> ClientConfigBuilder {
        self.resumption = on;
        self
    }

    /// Builds the config.
    pub fn build(self) -> Result<Arc<ClientConfig>, TlsConfigError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots);
        let mut config = match self.identity {
            Some(id) => builder.with_client_auth_cert(id.chain, id.key)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        if !self.resumption {
            config.resumption = Resumption::disabled();
        }
        Ok(Arc::new(config))
    }
}
