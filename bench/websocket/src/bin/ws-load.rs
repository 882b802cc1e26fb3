//! WebSocket load generator for bench/scripts/bench-websocket.sh.
//!
//! ```text
//! ws-load echo --addr 127.0.0.1:9001 [-c 50] [-d 1] [-s 64] [--duration 5] [--warmup 1] [--deflate]
//! ws-load idle --addr 127.0.0.1:9001 [-c 2000] [--hold 30] [--deflate]
//! ```
//!
//! `echo`: `c` connections, each keeping `d` messages of `s` bytes in flight
//! (a new one as soon as a reply arrives), on one mio thread. Frames are
//! encoded once per connection (masked; with `--deflate`, compressed once
//! without context takeover when the server accepted the extension, so the
//! server inflates and deflates every message). Replies are parsed frame by
//! frame and checked for length (after inflating, when compressed). Prints
//! `msgs N msgs_per_s X compressed BOOL`.
//!
//! `idle`: opens `c` WebSocket connections one after another (handshake done,
//! nothing sent after), prints `ready N`, holds them for `--hold` seconds.
//! With `--plain` the connections are plain TCP instead (each sends one byte
//! and waits for its echo), the baseline an idle WebSocket is compared with.

use clap::{Parser, Subcommand};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Echo throughput.
    Echo {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(short = 'c', default_value_t = 50)]
        conns: usize,
        #[arg(short = 'd', default_value_t = 1)]
        depth: usize,
        #[arg(short = 's', default_value_t = 64)]
        size: usize,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Offer permessage-deflate (and compress what is sent if accepted).
        #[arg(long)]
        deflate: bool,
    },
    /// Many idle connections.
    Idle {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(short = 'c', default_value_t = 2000)]
        conns: usize,
        #[arg(long, default_value_t = 30)]
        hold: u64,
        #[arg(long)]
        deflate: bool,
        /// Plain TCP connections to an echo server (one byte echoed each).
        #[arg(long)]
        plain: bool,
    },
}

const OFFER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Connects and completes the handshake (blocking); returns the stream and
/// whether the server accepted permessage-deflate.
fn handshake(addr: SocketAddr, deflate: bool) -> std::io::Result<(std::net::TcpStream, bool)> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let ext = if deflate {
        format!("Sec-WebSocket-Extensions: {OFFER}\r\n")
    } else {
        String::new()
    };
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
    )?;
    // Read the answer byte by byte so no frame byte after it is taken.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        head.push(b[0]);
        if head.len() > 16 * 1024 {
            return Err(ErrorKind::InvalidData.into());
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") {
        return Err(std::io::Error::other(format!("handshake refused: {head}")));
    }
    Ok((
        s,
        head.contains("sec-websocket-extensions: permessage-deflate"),
    ))
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::new(1), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, flate2::FlushCompress::Sync)
        .expect("deflate");
    out.truncate(out.len().saturating_sub(4));
    out
}

fn inflated_len(d: &mut flate2::Decompress, data: &[u8]) -> usize {
    d.reset(false);
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(64 * 1024);
    let _ = d.decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync);
    out.len()
}

/// A masked client frame.
fn frame(rsv1: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x82 | if rsv1 { 0x40 } else { 0 }];
    match payload.len() {
        n if n < 126 => v.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(0x80 | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let key = [0x12, 0x34, 0x56, 0x78];
    v.extend_from_slice(&key);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    v
}

/// One parsed server frame: (bytes used, rsv1, opcode, payload range).
fn parse(b: &[u8]) -> Option<(usize, bool, u8, std::ops::Range<usize>)> {
    if b.len() < 2 {
        return None;
    }
    let (len, pos) = match b[1] & 0x7F {
        126 => (u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4),
        127 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b.get(2..10)?);
            (u64::from_be_bytes(a) as usize, 10)
        }
        n => (n as usize, 2),
    };
    if b.len() < pos + len {
        return None;
    }
    Some((pos + len, b[0] & 0x40 != 0, b[0] & 0x0F, pos..pos + len))
}

struct Conn {
    s: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    in_flight: usize,
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn echo(
    addr: SocketAddr,
    conns: usize,
    depth: usize,
    size: usize,
    duration: f64,
    warmup: f64,
    want_deflate: bool,
) -> Result<(), String> {
    let payload: Vec<u8> = (0..size)
        .map(|i| b"abcdefgh "[(i * 7 + i / 13) % 9])
        .collect();
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut list = Vec::with_capacity(conns);
    let mut compressed = false;
    for i in 0..conns {
        let (s, c) = handshake(addr, want_deflate).map_err(|e| format!("connect: {e}"))?;
        compressed = c;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut s = TcpStream::from_std(s);
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)
            .map_err(|e| e.to_string())?;
        list.push(Conn {
            s,
            inbuf: Vec::with_capacity(64 * 1024),
            out: Vec::new(),
            in_flight: 0,
        });
    }
    let wire = if compressed {
        frame(true, &deflate(&payload))
    } else {
        frame(false, &payload)
    };
    let mut inflater = flate2::Decompress::new(false);
    for c in &mut list {
        for _ in 0..depth {
            c.out.extend_from_slice(&wire);
        }
        c.in_flight = depth;
        let n = c.s.write(&c.out).unwrap_or(0);
        c.out.drain(..n);
    }
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(warmup);
    let end = measure_from + Duration::from_secs_f64(duration);
    let mut counted = 0u64;
    let mut total = 0u64;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        let now = Instant::now();
        for ev in events.iter() {
            let c = &mut list[ev.token().0];
            loop {
                match c.s.read(&mut buf) {
                    Ok(0) => return Err("the server closed a connection".into()),
                    Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.to_string()),
                }
            }
            let mut pos = 0;
            while let Some((used, rsv1, op, r)) = parse(&c.inbuf[pos..]) {
                let body = &c.inbuf[pos + r.start..pos + r.end];
                if op == 1 || op == 2 {
                    let len = if rsv1 {
                        inflated_len(&mut inflater, body)
                    } else {
                        body.len()
                    };
                    if len != size {
                        return Err(format!("a reply of {len} bytes, not {size}"));
                    }
                    c.in_flight -= 1;
                    total += 1;
                    if now >= measure_from {
                        counted += 1;
                    }
                    c.out.extend_from_slice(&wire);
                    c.in_flight += 1;
                }
                pos += used;
            }
            c.inbuf.drain(..pos);
            while !c.out.is_empty() {
                match c.s.write(&c.out) {
                    Ok(n) => {
                        c.out.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    }
    println!(
        "msgs {counted} msgs_per_s {:.0} compressed {compressed} total {total}",
        counted as f64 / duration
    );
    Ok(())
}

/// A plain TCP connection whose one-byte echo came back.
fn plain(addr: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"x")?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    Ok(s)
}

fn idle(addr: SocketAddr, conns: usize, hold: u64, deflate: bool, tcp: bool) -> Result<(), String> {
    raise_fd_limit();
    let mut keep = Vec::with_capacity(conns);
    let t = Instant::now();
    for i in 0..conns {
        let s = if tcp {
            plain(addr)
        } else {
            handshake(addr, deflate).map(|(s, _)| s)
        };
        keep.push(s.map_err(|e| format!("connection {i}: {e}"))?);
        if t.elapsed() > Duration::from_secs(300) {
            return Err(format!("only {i} connections in 300 s"));
        }
    }
    println!("ready {}", keep.len());
    std::thread::sleep(Duration::from_secs(hold));
    Ok(())
}

fn main() {
    let res = match Cli::parse().cmd {
        Cmd::Echo {
            addr,
            conns,
            depth,
            size,
            duration,
            warmup,
            deflate,
        } => echo(addr, conns, depth, size, duration, warmup, deflate),
        Cmd::Idle {
            addr,
            conns,
            hold,
            deflate,
            plain,
        } => idle(addr, conns, hold, deflate, plain),
    };
    if let Err(e) = res {
        eprintln!("ws-load: {e}");
        std::process::exit(1);
    }
}
