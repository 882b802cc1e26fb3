//! The PROXY protocol parser against a real HAProxy on loopback (`mode tcp`,
//! `send-proxy` and `send-proxy-v2` with CRC32C and unique-id TLVs): the
//! header HAProxy sends parses to the client's real address, and the bytes
//! after it are the client's; and the `http` example behind HAProxy
//! (`--proxy-protocol`) answers `/ip` with the client's address, while a
//! connection without a header, or relayed from an untrusted source, is
//! refused. Skips with a note when `haproxy` is missing.

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

/// `GET path` on a fresh connection to `addr` with `Connection: close`; the
/// body of a `200` answer, or `None` when the connection ends without a
/// response (refused by the PROXY protocol policy).
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    // A refused connection ends (or is reset) without a byte.
    let _ = s.read_to_end(&mut resp);
    if resp.is_empty() {
        return None;
    }
    let resp = String::from_utf8(resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    Some(resp.split_once("\r\n\r\n").unwrap().1.to_string())
}

/// The `http` example with `--proxy-protocol <trusted>`; its address.
fn http_server(trusted: &str, workers: &str) -> (Served, SocketAddr) {
    let s = Served::example(
        "http",
        &[
            "--addr",
            "127.0.0.1:0",
            "--workers",
            workers,
            "--proxy-protocol",
            trusted,
        ],
    );
    let addr = s.listening_addr();
    assert!(
        s.wait_line(" ready", Duration::from_secs(30)).is_some(),
        "{:?}",
        s.lines()
    );
    (s, addr)
}

#[test]
fn http_example_behind_haproxy_sees_the_client_address() {
    if !have_tool(
        "haproxy",
        "http_example_behind_haproxy_sees_the_client_address",
    ) {
        return;
    }
    // A single process and prefork workers (which inherit the policy).
    for workers in ["0", "2"] {
        let (server, addr) = http_server("127.0.0.1/32", workers);
        for options in ["send-proxy", "send-proxy-v2"] {
            let (h, frontend, cfg) = haproxy(addr, options);
            for _ in 0..3 {
                let mut s = TcpStream::connect(frontend).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let client = s.local_addr().unwrap();
                s.write_all(b"GET /ip HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let mut resp = String::new();
                s.read_to_string(&mut resp).unwrap();
                let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.trim());
                assert_eq!(
                    body,
                    Some(client.to_string().as_str()),
                    "workers {workers}, {options}: {resp:?} {:?}",
                    server.lines()
                );
            }
            drop(h);
            let _ = std::fs::remove_file(cfg);
        }
        // Straight from a trusted source but without a header: refused.
        assert_eq!(http_get(addr, "/ip"), None, "{:?}", server.lines());
    }
}

#[test]
fn http_example_refuses_an_untrusted_proxy() {
    if !have_tool("haproxy", "http_example_refuses_an_untrusted_proxy") {
        return;
    }
    // Only 10.0.0.0/8 may send headers: HAProxy on loopback is not trusted,
    // and neither is a direct client.
    let (server, addr) = http_server("10.0.0.0/8", "0");
    let (h, frontend, cfg) = haproxy(addr, "send-proxy-v2");
    assert_eq!(http_get(frontend, "/ip"), None, "{:?}", server.lines());
    assert_eq!(http_get(addr, "/plaintext"), None, "{:?}", server.lines());
    drop(h);
    let _ = std::fs::remove_file(cfg);
    // The same server without the policy answers directly (the refusals above
    // were the policy's).
    let plain = Served::example("http", &["--addr", "127.0.0.1:0"]);
    let plain_addr = plain.listening_addr();
    assert_eq!(
        http_get(plain_addr, "/plaintext").as_deref(),
        Some("Hello, World!")
    );
    let ip = http_get(plain_addr, "/ip").unwrap();
    assert!(ip.trim().starts_with("127.0.0.1:"), "{ip}");
}
