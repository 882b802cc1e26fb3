//! Property tests for the PROXY protocol parser: any valid header (v1 and v2,
//! every family, TLVs, checksums) encoded, then split into arbitrary reads,
//! parses to the same header and length as when it arrives whole; any input at
//! all — valid headers with random edits, or noise — gives the same verdict
//! however it is split, and never panics.

mod support;
use support::*;

use netloop::protocol::proxy::*;
use proptest::prelude::*;
use std::net::{IpAddr, SocketAddr};

/// The verdict of feeding `wire` to a fresh parser in reads ending at `cuts`:
/// the first non-`Incomplete` result, or `Incomplete` if the input ends first.
fn parse_split(wire: &[u8], cuts: &[usize]) -> Result<Parsed, ProxyError> {
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    ends.push(wire.len());
    ends.sort_unstable();
    ends.dedup();
    let mut parser = HeaderParser::default();
    for end in ends {
        match parser.parse(&wire[..end]) {
            Ok(Parsed::Incomplete) => continue,
            done => return done,
        }
    }
    Ok(Parsed::Incomplete)
}

fn ip(v6: bool) -> impl Strategy<Value = IpAddr> {
    if v6 {
        any::<[u8; 16]>().prop_map(IpAddr::from).boxed()
    } else {
        any::<[u8; 4]>().prop_map(IpAddr::from).boxed()
    }
}

fn inet() -> impl Strategy<Value = Addresses> {
    any::<bool>().prop_flat_map(|v6| {
        (ip(v6), any::<u16>(), ip(v6), any::<u16>()).prop_map(|(a, p, b, q)| Addresses::Inet {
            source: SocketAddr::new(a, p),
            destination: SocketAddr::new(b, q),
        })
    })
}

fn unix_path() -> impl Strategy<Value = UnixPath> {
    proptest::collection::vec(any::<u8>(), 0..=UNIX_PATH_LEN)
        .prop_map(|b| UnixPath::new(&b).expect("at most 108 bytes"))
}

/// A TLV a sender could put in a header (valid for its type).
fn tlv() -> impl Strategy<Value = (u8, Vec<u8>)> {
    let ascii = "[ -~]{0,40}";
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(|v| (PP2_TYPE_ALPN, v)),
        "\\PC{0,30}".prop_map(|s: String| (PP2_TYPE_AUTHORITY, s.into_bytes())),
        proptest::collection::vec(any::<u8>(), 0..=MAX_UNIQUE_ID_LEN)
            .prop_map(|v| (PP2_TYPE_UNIQUE_ID, v)),
        proptest::collection::vec(any::<u8>(), 0..10).prop_map(|v| (PP2_TYPE_NOOP, v)),
        ascii.prop_map(|s: String| (PP2_TYPE_NETNS, s.into_bytes())),
        (0xe0u8..=0xff, proptest::collection::vec(any::<u8>(), 0..50)),
        (any::<u8>(), any::<u32>(), ascii, "\\PC{0,20}").prop_map(|(c, v, ver, cn)| {
            let mut ssl = vec![c];
            ssl.extend_from_slice(&v.to_be_bytes());
            for (k, val) in [(PP2_SUBTYPE_SSL_VERSION, ver), (PP2_SUBTYPE_SSL_CN, cn)] {
                ssl.push(k);
                ssl.extend_from_slice(&(val.len() as u16).to_be_bytes());
                ssl.extend_from_slice(val.as_bytes());
            }
            (PP2_TYPE_SSL, ssl)
        }),
    ]
}

/// A header and the header its encoding must parse back to.
fn header() -> impl Strategy<Value = (ProxyHeader, ProxyHeader)> {
    let v1 = prop_oneof![
        inet().prop_map(|a| {
            let h = ProxyHeader::new(Version::V1, Command::Proxy, Transport::Stream, a);
            (h.clone(), h)
        }),
        Just(ProxyHeader::new(
            Version::V1,
            Command::Proxy,
            Transport::Unspec,
            Addresses::Unspecified
        ))
        .prop_map(|h| (h.clone(), h)),
    ];
    let addresses = prop_oneof![
        3 => inet(),
        1 => (unix_path(), unix_path()).prop_map(|(source, destination)| Addresses::Unix {
            source,
            destination
        }),
    ];
    let v2 = (
        addresses,
        prop_oneof![Just(Transport::Stream), Just(Transport::Datagram)],
        proptest::collection::vec(tlv(), 0..6),
        any::<bool>(),
    )
        .prop_map(|(a, t, tlvs, crc)| {
            let mut h = ProxyHeader::new(Version::V2, Command::Proxy, t, a);
            if crc {
                h = h.with_tlv(PP2_TYPE_CRC32C, &[0; 4]).unwrap();
            }
            for (k, v) in tlvs {
                h = h.with_tlv(k, &v).expect("generated TLVs are valid");
            }
            (h.clone(), h)
        });
    let local = Just(ProxyHeader::local()).prop_map(|h| (h.clone(), h));
    prop_oneof![2 => v1, 4 => v2, 1 => local]
}

/// The header with its CRC32C TLV value zeroed (the parsed one holds the
/// computed checksum, the generated one the placeholder).
fn without_crc(h: &ProxyHeader) -> Vec<(String, Vec<u8>)> {
    h.tlvs()
        .map(|t| match t {
            Tlv::Crc32c(_) => ("crc".to_string(), vec![]),
            t => (format!("{t:?}"), vec![]),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_split_of_a_valid_header_parses_the_same(
        (header, expected) in header(),
        data in proptest::collection::vec(any::<u8>(), 0..64),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = Vec::new();
        header.encode(&mut wire).expect("generated headers are encodable");
        let len = wire.len();
        wire.extend_from_slice(&data);
        let whole = HeaderParser::default().parse(&wire);
        let Ok(Parsed::Complete { header: parsed, consumed }) = whole.clone() else {
            return Err(TestCaseError::fail(format!("{whole:?} from {wire:?}")));
        };
        prop_assert_eq!(consumed, len);
        prop_assert_eq!(parsed.version(), expected.version());
        prop_assert_eq!(parsed.command(), expected.command());
        prop_assert_eq!(parsed.transport(), expected.transport());
        prop_assert_eq!(parsed.addresses(), expected.addresses());
        prop_assert_eq!(without_crc(&parsed), without_crc(&expected));
        if expected.crc32c().is_some() {
            // The checksum is verified: re-encoding reproduces the same bytes.
            let mut again = Vec::new();
            parsed.encode(&mut again).unwrap();
            prop_assert_eq!(&again[..], &wire[..len]);
        }
        prop_assert_eq!(parse_split(&wire, &cuts), whole);
        // One byte at a time.
        let bytewise: Vec<usize> = (0..=wire.len()).collect();
        prop_assert_eq!(parse_split(&wire, &bytewise), HeaderParser::default().parse(&wire));
    }

    #[test]
    fn any_input_gets_one_verdict_however_it_is_split(
        (header, _) in header(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..4),
        noise in proptest::collection::vec(any::<u8>(), 0..40),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = Vec::new();
        header.encode(&mut wire).unwrap();
        wire.extend_from_slice(&noise);
        for (at, byte, op) in edits {
            let i = at % wire.len();
            match op {
                0 => wire[i] = byte,
                1 => { wire.remove(i); }
                _ => wire.insert(i, byte),
            }
            if wire.is_empty() { break; }
        }
        let whole = HeaderParser::default().parse(&wire);
        if let Ok(Parsed::Complete { consumed, .. }) = &whole {
            prop_assert!(*consumed <= wire.len());
        }
        prop_assert_eq!(parse_split(&wire, &cuts), whole);
    }
}

/// Noise (and noise after each valid prefix byte) never panics, and a verdict
/// comes within the limits: 107 bytes for v1, the configured maximum for v2.
#[test]
fn noise_never_panics_and_never_waits_past_the_limits() {
    let mut rng = Rng(0x5eed_cafe);
    let seeds: &[&[u8]] = &[
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UNKNOWN\r\n",
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02",
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x10\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02\x20\x00\x01\x01",
    ];
    for round in 0..3000 {
        let input = mutated(&mut rng, round, seeds, 2, 6, b"\r\n \x00PROXY:.");
        let mut parser = HeaderParser::default();
        let mut verdict = Ok(Parsed::Incomplete);
        for end in 0..=input.len() {
            verdict = parser.parse(&input[..end]);
            if !matches!(verdict, Ok(Parsed::Incomplete)) {
                break;
            }
            let limit = if input.first() == Some(&b'P') {
                V1_MAX_LEN
            } else {
                DEFAULT_MAX_HEADER_LEN
            };
            assert!(end < limit, "still waiting after {end} bytes: {input:?}");
        }
        assert_eq!(verdict, HeaderParser::default().parse(&input), "{input:?}");
    }
}
