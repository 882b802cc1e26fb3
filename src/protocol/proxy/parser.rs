//! The incremental header parser: resumes where the previous call stopped, so
//! a header arriving one byte at a time costs linear time in total.

use super::header::{ProxyHeader, Version};
use super::v1::{self, V1_MAX_LEN, V1_PREFIX};
use super::v2::{self, V2_FIXED_LEN, V2_MAX_LEN, V2_SIGNATURE};
use super::ProxyError;

/// Default limit on a whole v2 header (fixed part, addresses and TLVs).
///
/// Real proxies send far less (HAProxy's largest, with every SSL sub-TLV and a
/// unique id, is a few hundred bytes); the format would allow 65,551.
pub const DEFAULT_MAX_HEADER_LEN: usize = 4096;

/// Which versions a receiver accepts, and how long a v2 header may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserConfig {
    /// Accept v1 (text) headers.
    pub v1: bool,
    /// Accept v2 (binary) headers.
    pub v2: bool,
    /// Longest v2 header accepted, in bytes (at most 65,551; default
    /// [`DEFAULT_MAX_HEADER_LEN`]). A longer one fails as soon as its length
    /// field arrives, before its bytes are buffered.
    pub max_header_len: usize,
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig {
            v1: true,
            v2: true,
            max_header_len: DEFAULT_MAX_HEADER_LEN,
        }
    }
}

/// What [`HeaderParser::parse`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The bytes so far are a valid beginning of a header: call again when
    /// more arrive.
    Incomplete,
    /// A whole header: the first `consumed` bytes are the header; what follows
    /// is the application's data.
    Complete {
        /// The header.
        header: ProxyHeader,
        /// Its length on the wire.
        consumed: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing seen yet.
    Start,
    /// Matching `PROXY `, then scanning for the CRLF.
    V1,
    /// Matching the signature, then waiting for the fixed part.
    V2,
    /// The fixed part checked: waiting for `total` bytes.
    V2Body { total: usize },
}

/// An incremental, sans-I/O PROXY protocol header parser (v1 and v2).
///
/// Give [`parse`](HeaderParser::parse) everything received so far on the
/// connection (the same bytes each time, plus whatever arrived since); it
/// examines only the new bytes, so the total work is linear in the header's
/// length however it is split. It fails as early as the bytes allow: the first
/// byte that is neither `P` nor `\r` means "no header"; a v1 line is checked
/// character by character; a v2 length over the limit is refused before the
/// body arrives.
///
/// ```
/// use netloop::protocol::proxy::{HeaderParser, Parsed};
///
/// let wire = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\nGET / HTTP/1.1\r\n";
/// let mut parser = HeaderParser::default();
/// // One byte at a time, as a slow network might deliver it.
/// for end in 1..wire.len() {
///     match parser.parse(&wire[..end]).unwrap() {
///         Parsed::Incomplete => continue,
///         Parsed::Complete { header, consumed } => {
///             assert_eq!(header.source().unwrap().to_string(), "203.0.113.7:51234");
///             assert_eq!(&wire[consumed..end], b""); // application data follows
///             break;
///         }
///     }
/// }
/// ```
///
/// After `Complete` or an error the parser is reset and may parse another
/// connection's header.
#[derive(Debug, Clone)]
pub struct HeaderParser {
    config: ParserConfig,
    state: State,
    /// Bytes of the current header already examined.
    scanned: usize,
}

impl Default for HeaderParser {
    fn default() -> Self {
        HeaderParser::new(ParserConfig::default())
    }
}

impl HeaderParser {
    /// A parser accepting what `config` allows.
    pub fn new(config: ParserConfig) -> HeaderParser {
        HeaderParser {
            config: ParserConfig {
                max_header_len: config.max_header_len.clamp(V2_FIXED_LEN, V2_MAX_LEN),
                ..config
            },
            state: State::Start,
            scanned: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ParserConfig {
        &self.config
    }

    /// Starts over for a new connection.
    pub fn reset(&mut self) {
        self.state = State::Start;
        self.scanned = 0;
    }

    /// How many bytes of an incomplete header have been examined.
    pub fn examined(&self) -> usize {
        self.scanned
    }

    /// Parses `buf`: all bytes received so far, starting with the header's
    /// first byte. Each call must pass the previous call's bytes again (and
    /// possibly more); passing fewer or different bytes gives an unspecified
    /// (but never panicking or unbounded) result.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Parsed, ProxyError> {
        let res = self.step(buf);
        if !matches!(res, Ok(Parsed::Incomplete)) {
            self.reset();
        }
        res
    }

    fn step(&mut self, buf: &[u8]) -> Result<Parsed, ProxyError> {
        if self.state == State::Start {
            let Some(&first) = buf.first() else {
                return Ok(Parsed::Incomplete);
            };
            self.state = match first {
                b'P' => State::V1,
                b'\r' => State::V2,
                byte => return Err(ProxyError::Missing { offset: 0, byte }),
            };
            self.scanned = 1;
        }
        match self.state {
            State::V1 => self.step_v1(buf),
            State::V2 => self.step_v2(buf),
            State::V2Body { total } => self.step_v2_body(buf, total),
            State::Start => Ok(Parsed::Incomplete),
        }
    }

    /// Checks the new bytes of `buf` against `prefix`; `Ok(true)` once the
    /// whole prefix has matched.
    fn match_prefix(&mut self, buf: &[u8], prefix: &[u8]) -> Result<bool, ProxyError> {
        while self.scanned < prefix.len() {
            let Some(&byte) = buf.get(self.scanned) else {
                return Ok(false);
            };
            if byte != prefix[self.scanned] {
                return Err(ProxyError::Missing {
                    offset: self.scanned,
                    byte,
                });
            }
            self.scanned += 1;
        }
        Ok(true)
    }

    fn step_v1(&mut self, buf: &[u8]) -> Result<Parsed, ProxyError> {
        let prefix_done = self.scanned >= V1_PREFIX.len();
        if !self.match_prefix(buf, V1_PREFIX)? {
            return Ok(Parsed::Incomplete);
        }
        if !prefix_done && !self.config.v1 {
            return Err(ProxyError::VersionNotAccepted(Version::V1));
        }
        // Scan the new bytes for the CRLF, checking each character.
        let end = buf.len().min(V1_MAX_LEN);
        while self.scanned < end {
            let i = self.scanned;
            match buf[i] {
                b'\r' if i + 2 > V1_MAX_LEN => {
                    return Err(ProxyError::V1TooLong { max: V1_MAX_LEN })
                }
                b'\r' => match buf.get(i + 1) {
                    Some(b'\n') => {
                        let header = v1::decode(&buf[V1_PREFIX.len()..i])?;
                        return Ok(Parsed::Complete {
                            header,
                            consumed: i + 2,
                        });
                    }
                    None => return Ok(Parsed::Incomplete),
                    Some(_) => {
                        return Err(ProxyError::V1BareLineEnd {
                            what: "CR",
                            offset: i,
                        })
                    }
                },
                b'\n' => {
                    return Err(ProxyError::V1BareLineEnd {
                        what: "LF",
                        offset: i,
                    })
                }
                b' '..=b'~' => self.scanned += 1,
                other => {
                    return Err(ProxyError::V1Malformed(format!(
                        "byte {other:#04x} at offset {i} is not printable US-ASCII"
                    )))
                }
            }
        }
        if self.scanned >= V1_MAX_LEN {
            return Err(ProxyError::V1TooLong { max: V1_MAX_LEN });
        }
        Ok(Parsed::Incomplete)
    }

    fn step_v2(&mut self, buf: &[u8]) -> Result<Parsed, ProxyError> {
        let signature_done = self.scanned >= V2_SIGNATURE.len();
        if !self.match_prefix(buf, &V2_SIGNATURE)? {
            return Ok(Parsed::Incomplete);
        }
        if !signature_done && !self.config.v2 {
            return Err(ProxyError::VersionNotAccepted(Version::V2));
        }
        if buf.len() < V2_FIXED_LEN {
            return Ok(Parsed::Incomplete);
        }
        let total = v2::total_len(&buf[..V2_FIXED_LEN], self.config.max_header_len)?;
        self.scanned = V2_FIXED_LEN;
        self.state = State::V2Body { total };
        self.step_v2_body(buf, total)
    }

    fn step_v2_body(&mut self, buf: &[u8], total: usize) -> Result<Parsed, ProxyError> {
        if buf.len() < total {
            // Nothing to look at before the whole block is here ("the receiver
            // must not start to parse an address before the whole address
            // block is received"); remember the progress for `examined`.
            self.scanned = buf.len();
            return Ok(Parsed::Incomplete);
        }
        let header = v2::decode(&buf[..total])?;
        Ok(Parsed::Complete {
            header,
            consumed: total,
        })
    }
}
