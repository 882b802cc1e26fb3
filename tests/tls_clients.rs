//! The TLS examples against real clients: `curl --cacert` fetching from the
//! HTTP example over TLS, `openssl s_client` negotiating ALPN and resuming a
//! session (`-sess_out` / `-sess_in`, "Reused"), and `redis-cli --tls` talking to
//! the RESP example. Each test skips with a note when its tool is missing (or,
//! for redis-cli, built without TLS).
#![cfg(feature = "tls")]

mod support;
use support::*;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use netloop::tls::Identity;

/// A self-signed certificate for localhost / 127.0.0.1 written as PEM files in a
/// directory of its own (removed on drop).
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(test: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("netloop-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pair = Identity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
        std::fs::write(dir.join("cert.pem"), &pair.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &pair.key_pem).unwrap();
        Pki { dir }
    }
    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `example` serving TLS on an ephemeral port with `pki`'s pair, on the
/// suite's backend.
fn serve_tls(example: &str, pki: &Pki) -> (Served, std::net::SocketAddr) {
    let bin = example_binary(example);
    let (cert, key) = (pki.cert(), pki.key());
    let mut args = vec![
        "--addr",
        "tls://127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let backend = std::env::var("NETLOOP_TEST_BACKEND").unwrap_or_default();
    if !backend.is_empty() {
        args.extend(["--backend", backend.as_str()]);
    }
    let served = Served::start(&bin, &args);
    let addr = served.listening_addr();
    (served, addr)
}

/// Runs `cmd` with `input` on stdin, killed after 20 s; returns its stdout and
/// stderr together, and whether it succeeded.
fn run(cmd: &mut Command, input: &[u8]) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the client");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let pid = child.id();
    let killer = std::thread::spawn(move || {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < end && alive(pid) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(pid) {
            signal_pid(pid, libc::SIGKILL);
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = killer.join();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn curl_fetches_from_the_http_example_over_tls() {
    if !have_tool("curl", "curl_fetches_from_the_http_example_over_tls") {
        return;
    }
    let pki = Pki::new("curl");
    let (_server, addr) = serve_tls("http", &pki);
    let port = addr.port();
    let (ok, out) = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(pki.cert())
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args(["-w", "\nhttp %{http_version} %{http_code}\n"])
            .arg(format!("https://localhost:{port}/plaintext")),
        b"",
    );
    assert!(ok, "curl failed: {out}");
    assert!(out.starts_with("Hello, World!"), "{out}");
    assert!(out.contains("http 1.1 200"), "{out}");
    // And a client that does not trust the certificate is refused.
    let (ok, out) = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(format!("https://localhost:{port}/plaintext")),
        b"",
    );
    assert!(!ok, "an untrusted certificate was accepted: {out}");
}

/// One `openssl s_client` session to `addr` offering ALPN `http/1.1`, sending a
/// request and reading until the server closes; `extra` adds arguments.
fn s_client(addr: std::net::SocketAddr, pki: &Pki, extra: &[&Path], flags: &[&str]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string()])
        .args([
            "-servername",
            "localhost",
            "-alpn",
            "http/1.1",
            "-ign_eof",
            "-CAfile",
        ])
        .arg(pki.cert());
    for (flag, path) in flags.iter().zip(extra) {
        cmd.arg(flag).arg(path);
    }
    let (_, out) = run(
        &mut cmd,
        b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    out
}

#[test]
fn openssl_s_client_negotiates_alpn_and_resumes_a_session() {
    if !have_tool(
        "openssl",
        "openssl_s_client_negotiates_alpn_and_resumes_a_session",
    ) {
        return;
    }
    let pki = Pki::new("s-client");
    let (_server, addr) = serve_tls("http", &pki);
    let sess = pki.file("session.pem");
    let first = s_client(addr, &pki, &[&sess], &["-sess_out"]);
    assert!(first.contains("ALPN protocol: http/1.1"), "{first}");
    assert!(first.contains("Verify return code: 0 (ok)"), "{first}");
    assert!(first.contains("\nNew, TLSv1.3"), "{first}");
    assert!(first.contains("Hello, World!"), "{first}");
    assert!(sess.exists(), "no session ticket was saved: {first}");
    let second = s_client(addr, &pki, &[&sess], &["-sess_in"]);
    assert!(
        second.contains("\nReused, TLSv1.3"),
        "not resumed: {second}"
    );
    assert!(second.contains("ALPN protocol: http/1.1"), "{second}");
    assert!(second.contains("Hello, World!"), "{second}");
}

#[test]
fn redis_cli_talks_to_the_resp_example_over_tls() {
    let test = "redis_cli_talks_to_the_resp_example_over_tls";
    if !have_tool("redis-cli", test) {
        return;
    }
    let help = Command::new("redis-cli").arg("--help").output().unwrap();
    if !String::from_utf8_lossy(&help.stdout).contains("--tls")
        && !String::from_utf8_lossy(&help.stderr).contains("--tls")
    {
        eprintln!("note: {test} skipped: this redis-cli is built without TLS");
        return;
    }
    let pki = Pki::new("redis-cli");
    let (_server, addr) = serve_tls("redis", &pki);
    let cli = |args: &[&str]| {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["--tls", "--sni", "localhost", "--cacert"])
            .arg(pki.cert())
            .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
            .args(args);
        run(&mut cmd, b"")
    };
    let (ok, out) = cli(&["set", "tls-key", "over tls"]);
    assert!(ok && out.trim() == "OK", "{out}");
    let (ok, out) = cli(&["get", "tls-key"]);
    assert!(ok && out.trim() == "over tls", "{out}");
    // A plaintext client is not understood: the server closes on it.
    let (_, out) = run(
        Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", &addr.port().to_string(), "ping"]),
        b"",
    );
    assert!(!out.contains("PONG"), "{out}");
}
