//! TLS load generator for bench/scripts/bench-tls.sh: blocking rustls clients
//! (ring provider, like the servers), one thread per connection.
//!
//! ```text
//! tls-load gencert --dir DIR                       # DIR/cert.pem + DIR/key.pem (ECDSA P-256, localhost + 127.0.0.1)
//! tls-load echo --addr A --ca PEM [-c 50] [-s 64] [--secs 5]
//! tls-load handshakes --addr A --ca PEM [-c 4] [--secs 5] [--resume]
//! tls-load idle --addr A --ca PEM [-c 10000] [--hold 30]
//! ```
//!
//! Every command ends with one `result key=value ...` line on stdout.
//! - `echo`: each connection sends a `-s`-byte message and reads the echo back,
//!   over and over, for `--secs` (after connecting): `messages`, `rate` per s.
//! - `handshakes`: each thread connects, completes a handshake, sends 1 byte,
//!   reads it back, sends close_notify and resets the connection (`SO_LINGER` 0,
//!   so no TIME_WAIT piles up), for `--secs`: `handshakes`, `rate`, `resumed`.
//!   `--resume` shares one session store (TLS 1.3 tickets); without it every
//!   handshake is full.
//! - `idle`: opens `-c` connections one after another (each: handshake, 1-byte
//!   ping), source addresses 127.0.0.2, .3, ... 5,000 apiece, then prints
//!   `result ... ready=1` and holds them for `--hold` seconds.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netloop::tls::rustls::{self, ClientConnection, StreamOwned};
use netloop::tls::{roots_from_pem_file, server_name, ClientConfigBuilder, Identity};

type Tls = StreamOwned<ClientConnection, TcpStream>;

struct Opts {
    cmd: String,
    addr: SocketAddr,
    ca: String,
    dir: String,
    conns: usize,
    size: usize,
    secs: f64,
    hold: f64,
    resume: bool,
}

fn parse() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let cmd = args
        .next()
        .ok_or("a command is needed: gencert | echo | handshakes | idle")?;
    let mut o = Opts {
        conns: match cmd.as_str() {
            "echo" => 50,
            "handshakes" => 4,
            _ => 10_000,
        },
        cmd,
        addr: "127.0.0.1:8443".parse().unwrap(),
        ca: String::new(),
        dir: String::new(),
        size: 64,
        secs: 5.0,
        hold: 30.0,
        resume: false,
    };
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let num = |v: String, name: &str| v.parse::<f64>().map_err(|e| format!("{name}: {e}"));
        match a.as_str() {
            "--addr" => {
                let v = value("--addr")?;
                o.addr = v
                    .trim_start_matches("tls://")
                    .parse()
                    .map_err(|e| format!("--addr: {e}"))?;
            }
            "--ca" => o.ca = value("--ca")?,
            "--dir" => o.dir = value("--dir")?,
            "-c" => o.conns = num(value("-c")?, "-c")? as usize,
            "-s" => o.size = num(value("-s")?, "-s")? as usize,
            "--secs" => o.secs = num(value("--secs")?, "--secs")?,
            "--hold" => o.hold = num(value("--hold")?, "--hold")?,
            "--resume" => o.resume = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

fn main() {
    let o = parse().unwrap_or_else(|e| {
        eprintln!("tls-load: {e}");
        std::process::exit(2);
    });
    let res = match o.cmd.as_str() {
        "gencert" => gencert(&o),
        "echo" => echo(&o),
        "handshakes" => handshakes(&o),
        "idle" => idle(&o),
        other => Err(format!("unknown command {other:?}")),
    };
    if let Err(e) = res {
        eprintln!("tls-load {}: {e}", o.cmd);
        std::process::exit(1);
    }
}

fn gencert(o: &Opts) -> Result<(), String> {
    let pair = Identity::self_signed(&["localhost", "127.0.0.1"]).map_err(|e| e.to_string())?;
    let dir = std::path::Path::new(&o.dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("cert.pem"), pair.cert_pem).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("key.pem"), pair.key_pem).map_err(|e| e.to_string())?;
    println!("result dir={}", dir.display());
    Ok(())
}

fn config(o: &Opts, resume: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = roots_from_pem_file(&o.ca).map_err(|e| e.to_string())?;
    ClientConfigBuilder::new(roots)
        .resumption(resume)
        .build()
        .map_err(|e| e.to_string())
}

/// A TLS connection with the handshake done, from source address `src` (or any).
fn connect(
    addr: SocketAddr,
    src: Option<std::net::IpAddr>,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<Tls> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    if let Some(ip) = src {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    let tcp: TcpStream = socket.into();
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = server_name("localhost").expect("a valid name");
    let conn = ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

fn ping(tls: &mut Tls) -> std::io::Result<()> {
    tls.write_all(b"p")?;
    let mut b = [0u8; 1];
    tls.read_exact(&mut b)
}

fn echo(o: &Opts) -> Result<(), String> {
    let config = config(o, true)?;
    let mut conns = Vec::new();
    for _ in 0..o.conns {
        conns.push(connect(o.addr, None, &config).map_err(|e| e.to_string())?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let msg = vec![b'x'; o.size];
    let start = Instant::now();
    let threads: Vec<_> = conns
        .into_iter()
        .map(|mut tls| {
            let (stop, count, msg) = (stop.clone(), count.clone(), msg.clone());
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut back = vec![0u8; msg.len()];
                while !stop.load(Ordering::Relaxed) {
                    tls.write_all(&msg)?;
                    tls.read_exact(&mut back)?;
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(o.secs));
    stop.store(true, Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    let n = count.load(Ordering::Relaxed);
    let errors = threads
        .into_iter()
        .map(|t| t.join())
        .filter(|r| !matches!(r, Ok(Ok(()))))
        .count();
    println!(
        "result messages={n} seconds={secs:.3} rate={:.0} errors={errors}",
        n as f64 / secs
    );
    Ok(())
}

fn handshakes(o: &Opts) -> Result<(), String> {
    let config = config(o, o.resume)?;
    let deadline = Instant::now() + Duration::from_secs_f64(o.secs);
    let total = Arc::new(AtomicU64::new(0));
    let resumed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..o.conns)
        .map(|t| {
            let (config, total, resumed, errors) = (
                config.clone(),
                total.clone(),
                resumed.clone(),
                errors.clone(),
            );
            let addr = o.addr;
            std::thread::spawn(move || {
                let src = std::net::Ipv4Addr::new(127, 0, 0, 2 + (t % 250) as u8);
                while Instant::now() < deadline {
                    let one = || -> std::io::Result<bool> {
                        let mut tls = connect(addr, Some(src.into()), &config)?;
                        ping(&mut tls)?;
                        let was_resumed =
                            tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                        tls.conn.send_close_notify();
                        let _ = tls.conn.complete_io(&mut tls.sock);
                        socket2::SockRef::from(&tls.sock).set_linger(Some(Duration::ZERO))?;
                        Ok(was_resumed)
                    };
                    match one() {
                        Ok(r) => {
                            total.fetch_add(1, Ordering::Relaxed);
                            resumed.fetch_add(r as u64, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            if errors.load(Ordering::Relaxed) > 100 {
                                return;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let secs = start.elapsed().as_secs_f64();
    let n = total.load(Ordering::Relaxed);
    println!(
        "result handshakes={n} seconds={secs:.3} rate={:.0} resumed={} errors={}",
        n as f64 / secs,
        resumed.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a valid, initialized struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn idle(o: &Opts) -> Result<(), String> {
    raise_fd_limit();
    let config = config(o, true)?;
    let mut conns = Vec::with_capacity(o.conns);
    let start = Instant::now();
    for i in 0..o.conns {
        let src = std::net::Ipv4Addr::new(127, 0, 0, 2 + (i / 5000) as u8);
        let mut tls = connect(o.addr, Some(src.into()), &config)
            .map_err(|e| format!("connection {i}: {e}"))?;
        ping(&mut tls).map_err(|e| format!("ping {i}: {e}"))?;
        conns.push(tls);
    }
    println!(
        "result conns={} open_seconds={:.1} ready=1",
        conns.len(),
        start.elapsed().as_secs_f64()
    );
    std::io::stdout().flush().ok();
    std::thread::sleep(Duration::from_secs_f64(o.hold));
    Ok(())
}
