//! The PROXY protocol parser against a real HAProxy on loopback (`mode tcp`,
//! `send-proxy` and `send-proxy-v2` with CRC32C and unique-id TLVs): the
//! header HAProxy sends parses to the client's real address, and the bytes
//! after it are the client's. Skips with a note when `haproxy` is missing.

mod support;
use support::*;

use netloop::protocol::proxy::{Command, HeaderParser, Parsed, ProxyHeader, Version};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// HAProxy in the foreground with a frontend on a free port relaying to
/// `backend` with `server_options`.
fn haproxy(backend: SocketAddr, server_options: &str) -> (Served, SocketAddr, std::path::PathBuf) {
    let frontend: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = format!(
        "global\n  maxconn 64\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend fe\n  bind {frontend}\n  unique-id-format conn-%ci-%cp\n  default_backend be\n\
         backend be\n  server s1 {backend} {server_options}\n"
    );
    let path = std::env::temp_dir().join(format!(
        "netloop-haproxy-{}-{}.cfg",
        std::process::id(),
        frontend.port()
    ));
    std::fs::write(&path, cfg).unwrap();
    let mut cmd = std::process::Command::new("haproxy");
    cmd.args(["-db", "-f"]).arg(&path);
    let h = Served::spawn(cmd);
    assert!(
        wait_until(Duration::from_secs(10), || TcpStream::connect(frontend)
            .is_ok()),
        "haproxy did not start: {:?}",
        h.lines()
    );
    (h, frontend, path)
}

/// Accepts relayed connections on `backend` until the one from `client`
/// (HAProxy's start-up probe may come first); returns its header and the
/// client bytes after it.
fn relayed(backend: &TcpListener, client: SocketAddr, data_len: usize) -> (ProxyHeader, Vec<u8>) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < end, "no relayed connection from {client}");
        let (mut conn, _) = backend.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        let mut parser = HeaderParser::default();
        let mut chunk = [0u8; 4096];
        let parsed = loop {
            let n = conn.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                break None; // a probe that ended
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Parsed::Complete { header, consumed } = parser.parse(&buf).unwrap() {
                break Some((header, consumed));
            }
        };
        let Some((header, consumed)) = parsed else {
            continue;
        };
        if header.source() != Some(client) {
            continue;
        }
        let mut rest = buf[consumed..].to_vec();
        while rest.len() < data_len {
            let n = conn.read(&mut chunk).unwrap();
            assert!(n > 0, "client bytes missing");
            rest.extend_from_slice(&chunk[..n]);
        }
        return (header, rest);
    }
}

#[test]
fn haproxy_send_proxy_v1_and_v2_parse_to_the_client_address() {
    if !have_tool(
        "haproxy",
        "haproxy_send_proxy_v1_and_v2_parse_to_the_client_address",
    ) {
        return;
    }
    for (options, version) in [
        ("send-proxy", Version::V1),
        ("send-proxy-v2", Version::V2),
        (
            "send-proxy-v2 proxy-v2-options crc32c,unique-id",
            Version::V2,
        ),
    ] {
        let backend = TcpListener::bind("127.0.0.1:0").unwrap();
        let (h, frontend, cfg) = haproxy(backend.local_addr().unwrap(), options);
        let mut client = TcpStream::connect(frontend).unwrap();
        let client_addr = client.local_addr().unwrap();
        client.write_all(b"hello through haproxy").unwrap();
        let (header, rest) = relayed(&backend, client_addr, 21);
        assert_eq!(header.version(), version, "{options}");
        assert_eq!(header.command(), Command::Proxy);
        assert_eq!(header.source(), Some(client_addr), "{options}");
        assert_eq!(header.destination(), Some(frontend), "{options}");
        assert_eq!(rest, b"hello through haproxy");
        if options.contains("crc32c") {
            assert!(
                header.crc32c().is_some(),
                "HAProxy sent a checksum (verified)"
            );
            let expected = format!("conn-{}-{}", client_addr.ip(), client_addr.port());
            assert_eq!(header.unique_id(), Some(expected.as_bytes()), "{header:?}");
        }
        drop(h);
        let _ = std::fs::remove_file(cfg);
    }
}
