//! v2 TLVs (type-length-value records after the addresses): the registered
//! types, their checks, and views over a validated TLV area.

use super::ProxyError;

/// `PP2_TYPE_ALPN`: application protocol (bytes, e.g. `h2`).
pub const PP2_TYPE_ALPN: u8 = 0x01;
/// `PP2_TYPE_AUTHORITY`: host name (UTF-8), e.g. the TLS SNI.
pub const PP2_TYPE_AUTHORITY: u8 = 0x02;
/// `PP2_TYPE_CRC32C`: CRC32C of the whole header (4 bytes, big endian).
pub const PP2_TYPE_CRC32C: u8 = 0x03;
/// `PP2_TYPE_NOOP`: padding, ignored.
pub const PP2_TYPE_NOOP: u8 = 0x04;
/// `PP2_TYPE_UNIQUE_ID`: opaque connection id, at most 128 bytes.
pub const PP2_TYPE_UNIQUE_ID: u8 = 0x05;
/// `PP2_TYPE_SSL`: client flags, verify result and SSL sub-TLVs.
pub const PP2_TYPE_SSL: u8 = 0x20;
/// `PP2_SUBTYPE_SSL_VERSION`: TLS version (US-ASCII), e.g. `TLSv1.3`.
pub const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
/// `PP2_SUBTYPE_SSL_CN`: client certificate Common Name (UTF-8).
pub const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
/// `PP2_SUBTYPE_SSL_CIPHER`: cipher name (US-ASCII).
pub const PP2_SUBTYPE_SSL_CIPHER: u8 = 0x23;
/// `PP2_SUBTYPE_SSL_SIG_ALG`: certificate signature algorithm (US-ASCII).
pub const PP2_SUBTYPE_SSL_SIG_ALG: u8 = 0x24;
/// `PP2_SUBTYPE_SSL_KEY_ALG`: certificate key algorithm (US-ASCII).
pub const PP2_SUBTYPE_SSL_KEY_ALG: u8 = 0x25;
/// `PP2_TYPE_NETNS`: network namespace name (US-ASCII).
pub const PP2_TYPE_NETNS: u8 = 0x30;

/// `PP2_CLIENT_SSL`: the client connected over TLS.
pub const PP2_CLIENT_SSL: u8 = 0x01;
/// `PP2_CLIENT_CERT_CONN`: the client sent a certificate on this connection.
pub const PP2_CLIENT_CERT_CONN: u8 = 0x02;
/// `PP2_CLIENT_CERT_SESS`: the client sent a certificate in this TLS session.
pub const PP2_CLIENT_CERT_SESS: u8 = 0x04;

/// Longest `PP2_TYPE_UNIQUE_ID` value the spec allows.
pub const MAX_UNIQUE_ID_LEN: usize = 128;

/// Size of the fixed part of a `PP2_TYPE_SSL` value (client byte + verify).
const SSL_FIXED: usize = 5;

/// One TLV of a parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tlv<'a> {
    /// `PP2_TYPE_ALPN`.
    Alpn(&'a [u8]),
    /// `PP2_TYPE_AUTHORITY`.
    Authority(&'a str),
    /// `PP2_TYPE_CRC32C` (verified when parsed).
    Crc32c(u32),
    /// `PP2_TYPE_NOOP` (its padding bytes).
    Noop(&'a [u8]),
    /// `PP2_TYPE_UNIQUE_ID`.
    UniqueId(&'a [u8]),
    /// `PP2_TYPE_SSL`.
    Ssl(Ssl<'a>),
    /// `PP2_TYPE_NETNS`.
    NetNs(&'a str),
    /// Any other type (custom `0xE0..=0xEF`, experimental, future).
    Other {
        /// The type byte.
        kind: u8,
        /// The value bytes.
        value: &'a [u8],
    },
}

/// The `PP2_TYPE_SSL` TLV: the proxy's view of the client's TLS session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ssl<'a> {
    client: u8,
    verify: u32,
    subs: &'a [u8],
}

impl<'a> Ssl<'a> {
    /// The `client` bit field (`PP2_CLIENT_*`).
    pub fn client_flags(&self) -> u8 {
        self.client
    }
    /// Whether the client connected over TLS (`PP2_CLIENT_SSL`).
    pub fn is_tls(&self) -> bool {
        self.client & PP2_CLIENT_SSL != 0
    }
    /// Whether the client sent a certificate on this connection.
    pub fn cert_in_connection(&self) -> bool {
        self.client & PP2_CLIENT_CERT_CONN != 0
    }
    /// Whether the client sent a certificate at least once in this TLS session.
    pub fn cert_in_session(&self) -> bool {
        self.client & PP2_CLIENT_CERT_SESS != 0
    }
    /// The raw `verify` field: 0 when the client presented a certificate that
    /// was verified successfully, non-zero otherwise.
    pub fn verify(&self) -> u32 {
        self.verify
    }
    /// Whether a client certificate was presented and verified.
    pub fn cert_verified(&self) -> bool {
        self.verify == 0 && (self.cert_in_connection() || self.cert_in_session())
    }
    /// The sub-TLVs as `(type, value)`, in order.
    pub fn sub_tlvs(&self) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        raw(self.subs).map(|(k, _, v)| (k, v))
    }
    fn sub_str(&self, kind: u8) -> Option<&'a str> {
        // Checked to be UTF-8 when the header was parsed or built.
        self.sub_tlvs()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
    /// `PP2_SUBTYPE_SSL_VERSION`, e.g. `TLSv1.3`.
    pub fn version(&self) -> Option<&'a str> {
        self.sub_str(PP2_SUBTYPE_SSL_VERSION)
    }
    /// `PP2_SUBTYPE_SSL_CN`: the client certificate's Common Name.
    pub fn common_name(&self) -> Option<&'a str> {
        self.sub_str(PP2_SUBTYPE_SSL_CN)
    }
    /// `PP2_SUBTYPE_SSL_CIPHER`, e.g. `TLS_AES_256_GCM_SHA384`.
    pub fn cipher(&self) -> Option<&'a str> {
        self.sub_str(PP2_SUBTYPE_SSL_CIPHER)
    }
    /// `PP2_SUBTYPE_SSL_SIG_ALG`, e.g. `SHA256`.
    pub fn sig_alg(&self) -> Option<&'a str> {
        self.sub_str(PP2_SUBTYPE_SSL_SIG_ALG)
    }
    /// `PP2_SUBTYPE_SSL_KEY_ALG`, e.g. `RSA2048`.
    pub fn key_alg(&self) -> Option<&'a str> {
        self.sub_str(PP2_SUBTYPE_SSL_KEY_ALG)
    }
}

/// Iterator over the TLVs of a parsed header ([`ProxyHeader::tlvs`](super::ProxyHeader::tlvs)).
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    inner: RawIter<'a>,
}

impl<'a> TlvIter<'a> {
    pub(super) fn new(area: &'a [u8]) -> TlvIter<'a> {
        TlvIter { inner: raw(area) }
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Tlv<'a>;
    fn next(&mut self) -> Option<Tlv<'a>> {
        let (kind, _, v) = self.inner.next()?;
        // The area was validated: the conversions below cannot fail, but fall
        // back to `Other` rather than trusting that blindly.
        let text = || std::str::from_utf8(v).ok();
        Some(match kind {
            PP2_TYPE_ALPN => Tlv::Alpn(v),
            PP2_TYPE_AUTHORITY if text().is_some() => Tlv::Authority(text()?),
            PP2_TYPE_CRC32C if v.len() == 4 => {
                Tlv::Crc32c(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            }
            PP2_TYPE_NOOP => Tlv::Noop(v),
            PP2_TYPE_UNIQUE_ID => Tlv::UniqueId(v),
            PP2_TYPE_SSL if v.len() >= SSL_FIXED => Tlv::Ssl(Ssl {
                client: v[0],
                verify: u32::from_be_bytes([v[1], v[2], v[3], v[4]]),
                subs: &v[SSL_FIXED..],
            }),
            PP2_TYPE_NETNS if text().is_some() => Tlv::NetNs(text()?),
            kind => Tlv::Other { kind, value: v },
        })
    }
}

/// Iterator over `(type, offset, value)` of a TLV area known to be well formed
/// (it stops at the first record that does not fit).
#[derive(Debug, Clone)]
pub(super) struct RawIter<'a> {
    area: &'a [u8],
    pos: usize,
}

pub(super) fn raw(area: &[u8]) -> RawIter<'_> {
    RawIter { area, pos: 0 }
}

impl<'a> Iterator for RawIter<'a> {
    type Item = (u8, usize, &'a [u8]);
    fn next(&mut self) -> Option<(u8, usize, &'a [u8])> {
        let rest = &self.area[self.pos..];
        if rest.len() < 3 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let value = rest.get(3..3 + len)?;
        let at = self.pos;
        self.pos += 3 + len;
        Some((rest[0], at, value))
    }
}

/// Checks that `area` is a sequence of complete, valid TLVs. `base` is the
/// area's offset in the header (for error messages). Returns the offset of a
/// CRC32C value within `area` and the value, if one is present.
pub(super) fn validate(area: &[u8], base: usize) -> Result<Option<(usize, u32)>, ProxyError> {
    let mut crc = None;
    let mut pos = 0;
    while pos < area.len() {
        let rest = &area[pos..];
        let kind = rest[0];
        let offset = base + pos;
        if rest.len() < 3 {
            return Err(tlv_err(
                kind,
                offset,
                format!("{} bytes left, a TLV needs at least 3", rest.len()),
            ));
        }
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let Some(value) = rest.get(3..3 + len) else {
            return Err(tlv_err(
                kind,
                offset,
                format!("declares {len} bytes but {} remain", rest.len() - 3),
            ));
        };
        check(kind, value, offset)?;
        if kind == PP2_TYPE_CRC32C {
            if crc.is_some() {
                return Err(tlv_err(kind, offset, "a second CRC32C TLV".into()));
            }
            crc = Some((
                pos + 3,
                u32::from_be_bytes([value[0], value[1], value[2], value[3]]),
            ));
        }
        pos += 3 + len;
    }
    Ok(crc)
}

/// Checks one TLV's value against what the spec says of its type.
pub(super) fn check(kind: u8, value: &[u8], offset: usize) -> Result<(), ProxyError> {
    let fail = |reason: String| Err(tlv_err(kind, offset, reason));
    match kind {
        PP2_TYPE_AUTHORITY if std::str::from_utf8(value).is_err() => {
            fail("authority is not UTF-8".into())
        }
        PP2_TYPE_CRC32C if value.len() != 4 => {
            fail(format!("CRC32C value has {} bytes, not 4", value.len()))
        }
        PP2_TYPE_UNIQUE_ID if value.len() > MAX_UNIQUE_ID_LEN => fail(format!(
            "unique id of {} bytes exceeds {MAX_UNIQUE_ID_LEN}",
            value.len()
        )),
        PP2_TYPE_NETNS if !value.is_ascii() => fail("namespace name is not US-ASCII".into()),
        PP2_TYPE_SSL => check_ssl(value, offset),
        _ => Ok(()),
    }
}

fn check_ssl(value: &[u8], offset: usize) -> Result<(), ProxyError> {
    if value.len() < SSL_FIXED {
        return Err(tlv_err(
            PP2_TYPE_SSL,
            offset,
            format!("SSL value has {} bytes, needs at least 5", value.len()),
        ));
    }
    let subs = &value[SSL_FIXED..];
    let mut pos = 0;
    while pos < subs.len() {
        let rest = &subs[pos..];
        let sub = rest[0];
        let fail = |reason: String| {
            Err(tlv_err(
                PP2_TYPE_SSL,
                offset,
                format!("sub-TLV {sub:#04x}: {reason}"),
            ))
        };
        if rest.len() < 3 {
            return fail(format!("{} bytes left, a TLV needs 3", rest.len()));
        }
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let Some(v) = rest.get(3..3 + len) else {
            return fail(format!(
                "declares {len} bytes but {} remain",
                rest.len() - 3
            ));
        };
        match sub {
            PP2_SUBTYPE_SSL_CN if std::str::from_utf8(v).is_err() => {
                return fail("common name is not UTF-8".into())
            }
            PP2_SUBTYPE_SSL_VERSION
            | PP2_SUBTYPE_SSL_CIPHER
            | PP2_SUBTYPE_SSL_SIG_ALG
            | PP2_SUBTYPE_SSL_KEY_ALG
                if !v.is_ascii() =>
            {
                return fail("value is not US-ASCII".into())
            }
            _ => {}
        }
        pos += 3 + len;
    }
    Ok(())
}

fn tlv_err(kind: u8, offset: usize, reason: String) -> ProxyError {
    ProxyError::Tlv {
        kind,
        offset,
        reason,
    }
}

/// CRC32C (Castagnoli, RFC 4960 appendix B) of `header` with the four bytes at
/// `field` taken as zero.
pub(super) fn crc32c_with_zeroed(header: &[u8], field: usize) -> u32 {
    const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    let mut digest = CASTAGNOLI.digest();
    digest.update(&header[..field]);
    digest.update(&[0; 4]);
    digest.update(&header[field + 4..]);
    digest.finalize()
}
