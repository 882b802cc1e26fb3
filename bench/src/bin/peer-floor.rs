//! `peer-floor`: the floor of the comparison.
//!
//! A minimal single-threaded, level-triggered epoll echo loop written directly
//! against libc, with no framework: accept4 (non-blocking), read into one
//! shared 64 KiB buffer, write straight back; only when the kernel refuses part
//! of a write is the remainder queued for that connection, and only then is
//! EPOLLOUT registered (reading pauses until the queue drains).

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;

use clap::Parser;

/// Minimal epoll echo server (the floor).
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: String,
}

const LISTENER: u64 = u64::MAX;

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args.addr) {
        eprintln!("peer-floor: {e}");
        std::process::exit(1);
    }
}

fn run(addr: &str) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let lfd = listener.as_raw_fd();

    // SAFETY: epoll_create1 takes no pointers; the result is checked below.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    ctl(ep, libc::EPOLL_CTL_ADD, lfd, libc::EPOLLIN, LISTENER)?;

    let mut out = io::stdout();
    writeln!(out, "listening on {}", listener.local_addr()?)?;
    out.flush()?;

    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: HashMap<i32, Vec<u8>> = HashMap::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];

    loop {
        // SAFETY: `events` is a live buffer of exactly `events.len()` entries.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events[..n as usize] {
            let (token, flags) = (ev.u64, ev.events);
            if token == LISTENER {
                accept_all(ep, lfd);
                continue;
            }
            let fd = token as i32;
            if pending.contains_key(&fd) {
                if flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                    flush_pending(ep, fd, &mut pending);
                }
            } else if flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                on_readable(ep, fd, &mut buf, &mut pending);
            }
        }
    }
}

fn ctl(ep: i32, op: i32, fd: i32, events: i32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: events as u32,
        u64: token,
    };
    // SAFETY: `ev` is a valid epoll_event that outlives the call.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn accept_all(ep: i32, lfd: i32) {
    loop {
        // SAFETY: null address pointers are allowed by accept4; the result is checked.
        let fd = unsafe {
            libc::accept4(
                lfd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::ECONNABORTED) => continue,
                Some(libc::EAGAIN) => return,
                _ => {
                    // e.g. EMFILE: the listener stays readable, so back off
                    // instead of spinning on it.
                    eprintln!("peer-floor: accept4: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    return;
                }
            }
        }
        let one: libc::c_int = 1;
        // SAFETY: `one` is a live c_int and the length passed matches it.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        if let Err(e) = ctl(ep, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN, fd as u64) {
            eprintln!("peer-floor: epoll_ctl: {e}");
            close(fd);
        }
    }
}

fn on_readable(ep: i32, fd: i32, buf: &mut [u8], pending: &mut HashMap<i32, Vec<u8>>) {
    // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n == 0 {
        close(fd);
        return;
    }
    if n < 0 {
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => {}
            _ => close(fd),
        }
        return;
    }
    let data = &buf[..n as usize];
    match write_some(fd, data) {
        Some(w) if w == data.len() => {}
        Some(w) => {
            pending.insert(fd, data[w..].to_vec());
            if ctl(ep, libc::EPOLL_CTL_MOD, fd, libc::EPOLLOUT, fd as u64).is_err() {
                pending.remove(&fd);
                close(fd);
            }
        }
        None => close(fd),
    }
}

fn flush_pending(ep: i32, fd: i32, pending: &mut HashMap<i32, Vec<u8>>) {
    let Some(queue) = pending.get_mut(&fd) else {
        return;
    };
    match write_some(fd, queue) {
        Some(w) if w == queue.len() => {
            pending.remove(&fd);
            if ctl(ep, libc::EPOLL_CTL_MOD, fd, libc::EPOLLIN, fd as u64).is_err() {
                close(fd);
            }
        }
        Some(w) => {
            queue.drain(..w);
        }
        None => {
            pending.remove(&fd);
            close(fd);
        }
    }
}

/// Writes as much of `data` as the socket takes; `None` on a fatal error.
fn write_some(fd: i32, data: &[u8]) -> Option<usize> {
    let mut off = 0;
    while off < data.len() {
        // SAFETY: the pointer/length pair describes the live slice `data[off..]`.
        let w = unsafe { libc::write(fd, data[off..].as_ptr().cast(), data.len() - off) };
        if w >= 0 {
            off += w as usize;
            continue;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => break,
            _ => return None,
        }
    }
    Some(off)
}

fn close(fd: i32) {
    // SAFETY: `fd` is a connection this loop accepted and owns; closing it also
    // removes it from the epoll set.
    unsafe { libc::close(fd) };
}
