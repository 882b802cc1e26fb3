//! Unit tests: the grammar, every error, TLVs, checksums, the policy.

use super::tlv::crc32c_with_zeroed;
use super::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn parse(bytes: &[u8]) -> Result<Parsed, ProxyError> {
    HeaderParser::default().parse(bytes)
}

fn complete(bytes: &[u8]) -> (ProxyHeader, usize) {
    match parse(bytes) {
        Ok(Parsed::Complete { header, consumed }) => (header, consumed),
        other => panic!("expected a complete header from {bytes:?}, got {other:?}"),
    }
}

fn err(bytes: &[u8]) -> ProxyError {
    match parse(bytes) {
        Err(e) => e,
        other => panic!("expected an error from {bytes:?}, got {other:?}"),
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A v2 header from its parts (fixed part computed).
fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut v = V2_SIGNATURE.to_vec();
    v.push(ver_cmd);
    v.push(fam);
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

const INET4_BLOCK: [u8; 12] = [203, 0, 113, 7, 192, 0, 2, 1, 0xc8, 0x22, 0x01, 0xbb];

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    v.extend_from_slice(value);
    v
}

#[test]
fn v1_tcp4() {
    let (h, n) = complete(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\nGET /");
    assert_eq!(n, 44);
    assert_eq!(h.version(), Version::V1);
    assert_eq!(h.command(), Command::Proxy);
    assert_eq!(h.transport(), Transport::Stream);
    assert_eq!(h.source(), Some(sa("203.0.113.7:51234")));
    assert_eq!(h.destination(), Some(sa("192.0.2.1:443")));
    assert_eq!(h.tlvs().count(), 0);
}

#[test]
fn v1_tcp6_and_mapped() {
    let (h, _) = complete(b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n");
    assert_eq!(h.source(), Some(sa("[2001:db8::1]:65535")));
    assert_eq!(h.destination(), Some(sa("[::1]:0")));
    let (h, _) = complete(b"PROXY TCP6 ::ffff:127.0.0.1 ::ffff:127.0.0.2 1 2\r\n");
    assert_eq!(h.source(), Some(sa("[::ffff:127.0.0.1]:1")));
}

#[test]
fn v1_unknown_forms() {
    for line in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"PROXY UNKNOWN ffff:f::f ffff:f::f 65535 65535\r\n",
        b"PROXY UNKNOWN anything at all\r\n",
    ] {
        let (h, n) = complete(line);
        assert_eq!(n, line.len());
        assert_eq!(h.addresses(), &Addresses::Unspecified);
        assert_eq!(h.source(), None);
    }
}

#[test]
fn v1_longest_line_is_accepted_and_one_more_is_not() {
    let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let line = format!("PROXY UNKNOWN {full} {full} 65535 65535\r\n");
    assert_eq!(line.len(), V1_MAX_LEN);
    complete(line.as_bytes());
    let line = format!("PROXY UNKNOWN {full} {full} 65535 655355\r\n");
    assert_eq!(err(line.as_bytes()), ProxyError::V1TooLong { max: 107 });
    // Without any CRLF: refused once 107 bytes are in, not later.
    let long = vec![b'1'; 200];
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.extend_from_slice(&long);
    assert_eq!(err(&line[..V1_MAX_LEN]), ProxyError::V1TooLong { max: 107 });
    assert_eq!(parse(&line[..V1_MAX_LEN - 1]), Ok(Parsed::Incomplete));
}

#[test]
fn v1_grammar_errors() {
    let bad: &[(&[u8], &str)] = &[
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 081\r\n", "leading zero"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 65536\r\n", "above 65535"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 -1\r\n", "not a decimal"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 +1\r\n", "not a decimal"),
        (b"PROXY TCP4 01.2.3.4 5.6.7.8 80 81\r\n", "not an IPv4"),
        (b"PROXY TCP4 1.2.3 5.6.7.8 80 81\r\n", "not an IPv4"),
        (b"PROXY TCP4 ::1 5.6.7.8 80 81\r\n", "not an IPv4"),
        (b"PROXY TCP6 1.2.3.4 ::1 80 81\r\n", "not an IPv6"),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 80 81\r\n", "4 fields"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n", "4 fields"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 81 \r\n", "4 fields"),
        (b"PROXY TCP4\r\n", "without addresses"),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 80 81\r\n", "unknown protocol"),
        (b"PROXY tcp4 1.2.3.4 5.6.7.8 80 81\r\n", "unknown protocol"),
        (b"PROXY UNKNOWNX\r\n", "unknown protocol"),
        (b"PROXY \r\n", "unknown protocol"),
    ];
    for (line, why) in bad {
        let e = err(line);
        assert!(
            matches!(&e, ProxyError::V1Malformed(m) if m.contains(why)),
            "{:?}: {e} (wanted {why:?})",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn v1_line_endings_and_bytes() {
    assert_eq!(
        err(b"PROXY UNKNOWN\n"),
        ProxyError::V1BareLineEnd {
            what: "LF",
            offset: 13
        }
    );
    assert_eq!(
        err(b"PROXY UNKNOWN\rX"),
        ProxyError::V1BareLineEnd {
            what: "CR",
            offset: 13
        }
    );
    // A CR as the last byte so far: wait for the next one.
    assert_eq!(parse(b"PROXY UNKNOWN\r"), Ok(Parsed::Incomplete));
    assert!(matches!(
        err(b"PROXY UNKNOWN \x00\r\n"),
        ProxyError::V1Malformed(m) if m.contains("printable")
    ));
}

#[test]
fn not_a_header_fails_at_the_first_wrong_byte() {
    assert_eq!(
        err(b"GET / HTTP/1.1\r\n"),
        ProxyError::Missing {
            offset: 0,
            byte: b'G'
        }
    );
    assert_eq!(
        err(b"POST / HTTP/1.1\r\n"),
        ProxyError::Missing {
            offset: 1,
            byte: b'O'
        }
    );
    assert_eq!(
        err(b"PROXY_"),
        ProxyError::Missing {
            offset: 5,
            byte: b'_'
        }
    );
    assert_eq!(
        err(b"\r\n\r\n\x00\r\nQUIT\r"),
        ProxyError::Missing {
            offset: 11,
            byte: b'\r'
        }
    );
    assert_eq!(parse(b""), Ok(Parsed::Incomplete));
    assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete));
}

#[test]
fn versions_can_be_refused() {
    let only_v2 = ParserConfig {
        v1: false,
        ..ParserConfig::default()
    };
    let mut p = HeaderParser::new(only_v2);
    assert_eq!(p.parse(b"PROXY"), Ok(Parsed::Incomplete));
    assert_eq!(
        p.parse(b"PROXY "),
        Err(ProxyError::VersionNotAccepted(Version::V1))
    );
    let only_v1 = ParserConfig {
        v2: false,
        ..ParserConfig::default()
    };
    let mut p = HeaderParser::new(only_v1);
    assert_eq!(
        p.parse(&V2_SIGNATURE),
        Err(ProxyError::VersionNotAccepted(Version::V2))
    );
}

#[test]
fn v2_tcp4_tcp6_udp_unix() {
    let (h, n) = complete(&v2(0x21, 0x11, &INET4_BLOCK));
    assert_eq!(n, 28);
    assert_eq!(h.version(), Version::V2);
    assert_eq!(h.source(), Some(sa("203.0.113.7:51234")));
    assert_eq!(h.destination(), Some(sa("192.0.2.1:443")));

    let mut block = Vec::new();
    block.extend_from_slice(
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    block.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    block.extend_from_slice(&[0, 1, 0, 2]);
    let (h, _) = complete(&v2(0x21, 0x22, &block));
    assert_eq!(h.transport(), Transport::Datagram);
    assert_eq!(h.source(), Some(sa("[2001:db8::7]:1")));
    assert_eq!(h.destination(), Some(sa("[::1]:2")));

    let mut block = vec![0u8; 216];
    block[..9].copy_from_slice(b"/tmp/a.so");
    block[108] = 0;
    block[109..113].copy_from_slice(b"name");
    let (h, _) = complete(&v2(0x21, 0x31, &block));
    let Addresses::Unix {
        source,
        destination,
    } = h.addresses()
    else {
        panic!("{h:?}")
    };
    assert_eq!(source.as_bytes(), b"/tmp/a.so");
    assert!(!source.is_abstract());
    assert!(destination.is_abstract());
    assert_eq!(format!("{destination:?}"), "@name");
    assert_eq!(h.source(), None, "Unix clients have no IP address");
}

#[test]
fn v2_local_is_accepted_whatever_follows() {
    // LOCAL with an address block and junk: all of it skipped.
    let mut body = INET4_BLOCK.to_vec();
    body.extend_from_slice(b"\xff\xff\xff");
    let bytes = v2(0x20, 0x11, &body);
    let (h, n) = complete(&bytes);
    assert_eq!(n, bytes.len());
    assert_eq!(h.command(), Command::Local);
    assert_eq!(h.source(), None);
    let (h, n) = complete(&v2(0x20, 0x00, &[]));
    assert_eq!((h.command(), n), (Command::Local, 16));
}

#[test]
fn v2_unspecified_family_or_transport_ignores_addresses() {
    let (h, n) = complete(&v2(0x21, 0x00, b"whatever"));
    assert_eq!((h.addresses(), n), (&Addresses::Unspecified, 24));
    let mut body = INET4_BLOCK.to_vec();
    body.extend(tlv(PP2_TYPE_ALPN, b"h2"));
    let (h, _) = complete(&v2(0x21, 0x10, &body));
    assert_eq!(h.addresses(), &Addresses::Unspecified);
    assert_eq!(h.alpn(), Some(&b"h2"[..]));
}

#[test]
fn v2_fixed_part_errors() {
    assert_eq!(err(&v2(0x11, 0x11, &INET4_BLOCK)), ProxyError::V2Version(1));
    assert_eq!(err(&v2(0x31, 0x11, &INET4_BLOCK)), ProxyError::V2Version(3));
    assert_eq!(err(&v2(0x22, 0x11, &INET4_BLOCK)), ProxyError::V2Command(2));
    assert_eq!(err(&v2(0x21, 0x41, &INET4_BLOCK)), ProxyError::V2Family(4));
    assert_eq!(
        err(&v2(0x21, 0x13, &INET4_BLOCK)),
        ProxyError::V2Transport(3)
    );
    assert_eq!(
        err(&v2(0x21, 0x21, &INET4_BLOCK)),
        ProxyError::V2AddressTruncated {
            family: "AF_INET6",
            needed: 36,
            len: 12
        }
    );
    // Errors in the fixed part come before its body arrives.
    assert_eq!(
        err(&v2(0x21, 0x41, &INET4_BLOCK)[..16]),
        ProxyError::V2Family(4)
    );
}

#[test]
fn v2_length_limit_is_checked_before_the_body_arrives() {
    let mut fixed = V2_SIGNATURE.to_vec();
    fixed.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    assert_eq!(
        err(&fixed),
        ProxyError::V2TooLong {
            len: 16 + 65535,
            max: DEFAULT_MAX_HEADER_LEN
        }
    );
    // Raised, the limit lets the longest header through.
    let mut p = HeaderParser::new(ParserConfig {
        max_header_len: usize::MAX,
        ..ParserConfig::default()
    });
    assert_eq!(p.config().max_header_len, V2_MAX_LEN);
    let mut body = INET4_BLOCK.to_vec();
    body.extend(tlv(PP2_TYPE_NOOP, &vec![0; 65535 - 12 - 3]));
    let bytes = v2(0x21, 0x11, &body);
    assert_eq!(bytes.len(), V2_MAX_LEN);
    assert!(
        matches!(p.parse(&bytes), Ok(Parsed::Complete { consumed, .. }) if consumed == V2_MAX_LEN)
    );
}

#[test]
fn v2_tlvs_are_readable() {
    let mut ssl = vec![PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 0, 0, 0, 0];
    ssl.extend(tlv(PP2_SUBTYPE_SSL_VERSION, b"TLSv1.3"));
    ssl.extend(tlv(PP2_SUBTYPE_SSL_CN, b"client.example"));
    ssl.extend(tlv(PP2_SUBTYPE_SSL_CIPHER, b"TLS_AES_128_GCM_SHA256"));
    ssl.extend(tlv(PP2_SUBTYPE_SSL_SIG_ALG, b"SHA256"));
    ssl.extend(tlv(PP2_SUBTYPE_SSL_KEY_ALG, b"RSA2048"));
    let mut body = INET4_BLOCK.to_vec();
    body.extend(tlv(PP2_TYPE_ALPN, b"http/1.1"));
    body.extend(tlv(PP2_TYPE_AUTHORITY, "bücher.example".as_bytes()));
    body.extend(tlv(PP2_TYPE_NOOP, b""));
    body.extend(tlv(PP2_TYPE_UNIQUE_ID, &[7; MAX_UNIQUE_ID_LEN]));
    body.extend(tlv(PP2_TYPE_SSL, &ssl));
    body.extend(tlv(PP2_TYPE_NETNS, b"blue"));
    body.extend(tlv(0xe1, b"custom"));
    let (h, _) = complete(&v2(0x21, 0x11, &body));
    assert_eq!(h.alpn(), Some(&b"http/1.1"[..]));
    assert_eq!(h.authority(), Some("bücher.example"));
    assert_eq!(h.unique_id(), Some(&[7; 128][..]));
    assert_eq!(h.netns(), Some("blue"));
    assert_eq!(h.tlv(0xe1), Some(&b"custom"[..]));
    assert_eq!(h.crc32c(), None);
    let s = h.ssl().unwrap();
    assert!(s.is_tls() && s.cert_in_connection() && !s.cert_in_session());
    assert!(s.cert_verified());
    assert_eq!(s.version(), Some("TLSv1.3"));
    assert_eq!(s.common_name(), Some("client.example"));
    assert_eq!(s.cipher(), Some("TLS_AES_128_GCM_SHA256"));
    assert_eq!(s.sig_alg(), Some("SHA256"));
    assert_eq!(s.key_alg(), Some("RSA2048"));
    assert_eq!(s.sub_tlvs().count(), 5);
    let kinds: Vec<String> = h.tlvs().map(|t| format!("{t:?}")).collect();
    assert_eq!(kinds.len(), 7);
    assert!(kinds[2].starts_with("Noop"));
    assert!(kinds[6].starts_with("Other { kind: 225"));
}

#[test]
fn v2_tlv_errors() {
    let with = |extra: Vec<u8>| {
        let mut body = INET4_BLOCK.to_vec();
        body.extend(extra);
        err(&v2(0x21, 0x11, &body))
    };
    let reason = |e: ProxyError| match e {
        ProxyError::Tlv { reason, offset, .. } => {
            assert!(offset >= 28, "offset {offset} is in the TLV area");
            reason
        }
        e => panic!("not a TLV error: {e}"),
    };
    assert!(reason(with(vec![1, 0])).contains("needs at least 3"));
    assert!(reason(with(vec![1, 0, 5, b'h'])).contains("declares 5 bytes but 1 remain"));
    assert!(reason(with(tlv(PP2_TYPE_AUTHORITY, b"\xff"))).contains("UTF-8"));
    assert!(reason(with(tlv(PP2_TYPE_UNIQUE_ID, &[0; 129]))).contains("exceeds 128"));
    assert!(reason(with(tlv(PP2_TYPE_CRC32C, &[0; 3]))).contains("not 4"));
    assert!(reason(with(tlv(PP2_TYPE_NETNS, "é".as_bytes()))).contains("US-ASCII"));
    assert!(reason(with(tlv(PP2_TYPE_SSL, &[1, 0, 0, 0]))).contains("at least 5"));
    let mut ssl = vec![1, 0, 0, 0, 0];
    ssl.extend([PP2_SUBTYPE_SSL_VERSION, 0, 9, b'T']);
    assert!(reason(with(tlv(PP2_TYPE_SSL, &ssl))).contains("sub-TLV 0x21"));
    let mut ssl = vec![1, 0, 0, 0, 0];
    ssl.extend(tlv(PP2_SUBTYPE_SSL_CIPHER, "ü".as_bytes()));
    assert!(reason(with(tlv(PP2_TYPE_SSL, &ssl))).contains("US-ASCII"));
    let mut two = tlv(PP2_TYPE_CRC32C, &[0; 4]);
    two.extend(tlv(PP2_TYPE_CRC32C, &[0; 4]));
    assert!(reason(with(two)).contains("second CRC32C"));
}

#[test]
fn crc32c_matches_the_standard_check_value() {
    // The CRC-32C check value of "123456789" (RFC 3720 / the CRC catalogue),
    // with the zeroed field placed after the data.
    let mut data = b"123456789".to_vec();
    data.extend_from_slice(&[9, 9, 9, 9]);
    let mut zeroed = b"123456789".to_vec();
    zeroed.extend_from_slice(&[0; 4]);
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    assert_eq!(crc.checksum(b"123456789"), 0xe306_9283);
    assert_eq!(crc32c_with_zeroed(&data, 9), crc.checksum(&zeroed));
}

#[test]
fn v2_checksum_is_verified() {
    let header = ProxyHeader::tcp(Version::V2, sa("10.0.0.1:1000"), sa("10.0.0.2:80"))
        .with_tlv(PP2_TYPE_CRC32C, &[0; 4])
        .unwrap()
        .with_tlv(PP2_TYPE_AUTHORITY, b"example.com")
        .unwrap();
    let mut wire = Vec::new();
    header.encode(&mut wire).unwrap();
    let (h, _) = complete(&wire);
    let crc = h.crc32c().expect("a checksum");
    assert_ne!(crc, 0);
    assert_eq!(h.authority(), Some("example.com"));
    // One flipped bit anywhere in the header is caught.
    for i in [0usize, 13, 17, wire.len() - 1] {
        let mut bad = wire.clone();
        bad[i] ^= 0x01;
        match parse(&bad) {
            Err(ProxyError::Checksum { expected, .. }) => assert_eq!(i == 31, expected != crc),
            Err(_) if i < 16 => {} // the fixed part fails its own checks first
            other => panic!("flipping byte {i}: {other:?}"),
        }
    }
    // A wrong value in the field itself.
    let at = wire.len() - 11 - 3 - 4;
    wire[at] ^= 0x80;
    assert!(matches!(parse(&wire), Err(ProxyError::Checksum { .. })));
}

#[test]
fn incremental_parsing_examines_each_byte_once() {
    let mut wire = Vec::new();
    ProxyHeader::tcp(Version::V1, sa("[2001:db8::1]:1"), sa("[2001:db8::2]:2"))
        .encode(&mut wire)
        .unwrap();
    let mut p = HeaderParser::default();
    let mut examined = 0;
    for end in 0..wire.len() {
        assert_eq!(p.parse(&wire[..end]), Ok(Parsed::Incomplete), "at {end}");
        // Progress never goes back and never passes what was given.
        assert!(p.examined() >= examined && p.examined() <= end);
        examined = p.examined();
    }
    assert!(matches!(p.parse(&wire), Ok(Parsed::Complete { .. })));
    // Reset after a result: the same parser takes the next header.
    assert_eq!(p.examined(), 0);
    assert!(matches!(p.parse(&wire), Ok(Parsed::Complete { .. })));
}

#[test]
fn encode_refuses_what_the_version_cannot_say() {
    let mut out = Vec::new();
    let mut v1_local = ProxyHeader::local();
    v1_local.version = Version::V1;
    assert!(v1_local.encode(&mut out).is_err());
    let mixed = ProxyHeader::tcp(Version::V1, sa("1.2.3.4:1"), sa("[::1]:2"));
    assert!(mixed.encode(&mut out).is_err());
    let mixed = ProxyHeader::tcp(Version::V2, sa("1.2.3.4:1"), sa("[::1]:2"));
    assert!(mixed.encode(&mut out).is_err());
    let with_tlv = ProxyHeader::tcp(Version::V1, sa("1.2.3.4:1"), sa("1.2.3.4:2"))
        .with_tlv(PP2_TYPE_ALPN, b"h2")
        .unwrap();
    assert!(with_tlv.encode(&mut out).is_err());
    let local_tlv = ProxyHeader::local().with_tlv(PP2_TYPE_ALPN, b"h2").unwrap();
    assert!(local_tlv.encode(&mut out).is_err());
    assert!(out.is_empty(), "failed encodes append nothing");
    assert!(ProxyHeader::local()
        .with_tlv(PP2_TYPE_UNIQUE_ID, &[0; 200])
        .is_err());
    // What v1 can say round-trips.
    ProxyHeader::new(
        Version::V1,
        Command::Proxy,
        Transport::Unspec,
        Addresses::Unspecified,
    )
    .encode(&mut out)
    .unwrap();
    assert_eq!(out, b"PROXY UNKNOWN\r\n");
}

#[test]
fn policy_decides_by_source() {
    let p = ProxyPolicy::new();
    assert_eq!(
        p.admission(Some("192.0.2.1".parse().unwrap())),
        Admission::ExpectHeader,
        "with no list, everyone must send a header"
    );
    let p = ProxyPolicy::new()
        .trust("127.0.0.0/8")
        .unwrap()
        .trust("2001:db8::/32")
        .unwrap()
        .trust("192.0.2.9")
        .unwrap();
    let ip = |s: &str| Some(s.parse().unwrap());
    assert_eq!(p.admission(ip("127.9.9.9")), Admission::ExpectHeader);
    assert_eq!(p.admission(ip("::ffff:127.0.0.1")), Admission::ExpectHeader);
    assert_eq!(p.admission(ip("2001:db8:1::1")), Admission::ExpectHeader);
    assert_eq!(p.admission(ip("192.0.2.9")), Admission::ExpectHeader);
    assert_eq!(p.admission(ip("192.0.2.10")), Admission::Reject);
    assert_eq!(p.admission(ip("::1")), Admission::Reject);
    assert_eq!(p.admission(None), Admission::ExpectHeader);
    let p = p.untrusted(Untrusted::Direct).trust_unix(false);
    assert_eq!(p.admission(ip("10.0.0.1")), Admission::Direct);
    assert_eq!(p.admission(None), Admission::Direct);
    // Host bits are ignored: 10.1.2.3/8 is 10.0.0.0/8.
    let p = ProxyPolicy::new().trust("10.1.2.3/8").unwrap();
    assert_eq!(p.admission(ip("10.200.0.1")), Admission::ExpectHeader);
    for bad in ["10.0.0.0/33", "example.com", "", "1.2.3.4/"] {
        assert_eq!(
            ProxyPolicy::new().trust(bad).unwrap_err(),
            InvalidNetwork(bad.into())
        );
    }
}

#[test]
fn handshake_deadline_and_truncation() {
    let t0 = Instant::now();
    let policy = ProxyPolicy::new().header_timeout(Duration::from_millis(500));
    let mut hs = policy.handshake(t0);
    assert_eq!(hs.deadline(), t0 + Duration::from_millis(500));
    assert_eq!(hs.on_bytes(b"PROXY TCP4 1.2"), Ok(Parsed::Incomplete));
    assert_eq!(hs.expired(t0 + Duration::from_millis(499)), None);
    let e = hs.expired(t0 + Duration::from_millis(500)).unwrap();
    assert_eq!(
        e.to_string(),
        "no complete PROXY protocol header within 500ms"
    );
    assert_eq!(
        hs.truncated(14).to_string(),
        "connection ended after 14 bytes of an incomplete PROXY protocol header"
    );
    assert_eq!(DEFAULT_HEADER_TIMEOUT, ProxyPolicy::new().timeout());
}

#[test]
fn error_messages_say_what_is_wrong() {
    assert_eq!(
        err(b"GET /").to_string(),
        "no PROXY protocol header: byte 0x47 at offset 0 starts neither \"PROXY \" nor the v2 signature"
    );
    assert_eq!(
        err(b"PROXY TCP4 1.2.3.4 5.6.7.8 80 081\r\n").to_string(),
        "malformed PROXY v1 line: destination port \"081\" has a leading zero"
    );
}
