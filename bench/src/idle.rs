//! The `idle` test: many connections, opened from several loopback source
//! addresses so the ephemeral port range never runs out, optionally pinged
//! once each, then held open.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::loadgen::ErrorLog;

/// Per-connection timeout for connect and for the ping's echo.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// Give up after this many failures in a row (the server is gone or saturated).
const MAX_CONSECUTIVE_ERRORS: u32 = 50;

pub struct IdleConfig {
    pub addr: SocketAddr,
    pub conns: usize,
    pub ping: bool,
    /// Connections per source address (127.0.0.2, 127.0.0.3, …).
    pub per_source: usize,
    /// Stop opening connections after this long.
    pub deadline: Duration,
}

pub struct IdleConns {
    pub streams: Vec<TcpStream>,
    pub errors: ErrorLog,
    pub sources: usize,
}

/// Opens (and pings) the connections; stops early on a run of failures or at
/// the deadline.
pub fn open_idle(cfg: &IdleConfig, pb: Option<&ProgressBar>) -> IdleConns {
    let mut out = IdleConns {
        streams: Vec::with_capacity(cfg.conns),
        errors: ErrorLog::default(),
        sources: 0,
    };
    let per_source = cfg.per_source.max(1);
    let deadline = Instant::now() + cfg.deadline;
    let mut consecutive = 0;
    for i in 0..cfg.conns {
        if Instant::now() >= deadline {
            out.errors
                .add(format!("stopped at the {:?} deadline", cfg.deadline));
            break;
        }
        let src_index = i / per_source;
        let res = match cfg.addr {
            SocketAddr::V4(dst) if dst.ip().is_loopback() => {
                if src_index > 252 {
                    out.errors.add("ran out of 127.0.0.x source addresses");
                    break;
                }
                out.sources = out.sources.max(src_index + 1);
                connect_from(Ipv4Addr::new(127, 0, 0, 2 + src_index as u8), dst)
            }
            _ => TcpStream::connect_timeout(&cfg.addr, OP_TIMEOUT),
        };
        let res = res.and_then(|s| {
            if cfg.ping {
                ping(&s)?;
            }
            Ok(s)
        });
        match res {
            Ok(s) => {
                consecutive = 0;
                out.streams.push(s);
            }
            Err(e) => {
                out.errors.add(format!("connection {i}: {e}"));
                consecutive += 1;
                if consecutive >= MAX_CONSECUTIVE_ERRORS {
                    out.errors
                        .add(format!("gave up after {consecutive} failures in a row"));
                    break;
                }
            }
        }
        if let Some(pb) = pb {
            pb.set_position(i as u64 + 1);
        }
    }
    out
}

fn ping(mut s: &TcpStream) -> io::Result<()> {
    s.set_read_timeout(Some(OP_TIMEOUT))?;
    s.write_all(&[0xA5])?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    if b[0] != 0xA5 {
        return Err(io::Error::other("ping echoed a wrong byte"));
    }
    Ok(())
}

fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Blocking connect to `dst` from `src` (bind before connect), with a timeout.
fn connect_from(src: Ipv4Addr, dst: SocketAddrV4) -> io::Result<TcpStream> {
    // SAFETY: socket() takes no pointers; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nothing else owns; OwnedFd closes it on every path.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: OP_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SO_SNDTIMEO also bounds a blocking connect() on Linux.
    // SAFETY: `tv` is live and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let src = sockaddr_in(SocketAddrV4::new(src, 0));
    // SAFETY: `src` is a live sockaddr_in and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd,
            (&src as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let dst_sa = sockaddr_in(dst);
    // SAFETY: `dst_sa` is a live sockaddr_in and the length passed is its size.
    let rc = unsafe {
        libc::connect(
            fd,
            (&dst_sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpStream::from(owned))
}

/// Source address used for connection `i`.
#[cfg(test)]
fn source_of(i: usize, per_source: usize) -> std::net::IpAddr {
    std::net::IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        2 + (i / per_source.max(1)).min(252) as u8,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_and_pings_from_several_sources() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in listener.incoming().take(6) {
                let mut s = s.unwrap();
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut s);
                });
            }
        });
        let cfg = IdleConfig {
            addr,
            conns: 6,
            ping: true,
            per_source: 2,
            deadline: Duration::from_secs(10),
        };
        let got = open_idle(&cfg, None);
        assert_eq!(got.errors.count, 0, "{:?}", got.errors.first);
        assert_eq!(got.streams.len(), 6);
        assert_eq!(got.sources, 3);
        let peer = got.streams[5].local_addr().unwrap().ip();
        assert_eq!(peer, source_of(5, 2));
    }
}
