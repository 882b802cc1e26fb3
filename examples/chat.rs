//! A line-based chat room on the `Framed` adapter.
//!
//! Every line a client sends is broadcast to everyone else in the room, across all
//! event loops (through each member's `ConnHandle::async_write`). Commands:
//!
//! | line | effect |
//! |---|---|
//! | `/nick NAME` | change your nickname (1–24 letters, digits, `_` or `-`; unique) |
//! | `/who` | list who is online |
//! | `/quit` | leave |
//!
//! ```text
//! cargo run --example chat -- --addr 127.0.0.1:9000 --loops 2
//! nc 127.0.0.1 9000          # in several terminals
//! cargo run --example chat -- --addr 127.0.0.1:0 --self-test
//! ```
mod common;

use clap::Parser;
use netloop::codec::{FrameConn, FrameHandler, Framed, LineCodec};
use netloop::{Action, CloseReason, ConnHandle, ConnId, Engine};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "netloop chat room (line protocol)")]
struct Args {
    /// HOST:PORT, or a tcp://, tcp4://, tcp6:// or unix:// URL.
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: String,
    /// Number of event loops.
    #[arg(long, default_value_t = 2)]
    loops: usize,
    /// I/O backend: epoll | uring | auto (io_uring where the kernel allows it).
    #[arg(long, default_value = "epoll")]
    backend: netloop::Backend,
    /// Longest accepted line, in bytes; a longer one disconnects its sender.
    #[arg(long, default_value_t = 4096)]
    max_frame: usize,
    /// Run a scripted conversation against the server, then exit.
    #[arg(long)]
    self_test: bool,
}

/// A member of the room: reachable from any loop through its handle.
struct Member {
    nick: String,
    handle: ConnHandle,
}

/// Everyone online, keyed by (loop index, connection id).
#[derive(Default)]
struct Room {
    members: Mutex<HashMap<ConnId, Member>>,
    guests: AtomicU64,
}

impl Room {
    /// Sends an already encoded line to every member except `except`.
    fn broadcast(&self, wire: &[u8], except: ConnId) {
        // Collect the handles first: no lock is held while queueing the writes.
        let handles: Vec<ConnHandle> = self
            .members
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| **k != except)
            .map(|(_, m)| m.handle.clone())
            .collect();
        for h in handles {
            let _ = h.async_write(wire.to_vec(), None);
        }
    }
}

#[derive(Clone)]
struct Chat {
    room: Arc<Room>,
}

type Conn<'a, 'w> = FrameConn<'a, 'w, String>;

fn key(conn: &Conn<'_, '_>) -> ConnId {
    conn.id()
}

impl Chat {
    /// Encodes `line` with the connection's codec once and sends it to the others.
    fn announce(&self, conn: &Conn<'_, '_>, line: &str) {
        match conn.encoder().encode(line.as_bytes()) {
            Ok(wire) => self.room.broadcast(&wire.to_vec(), key(conn)),
            Err(e) => tracing::warn!(error = %e, "cannot encode a broadcast"),
        }
    }

    fn rename(&self, conn: &mut Conn<'_, '_>, new: &str) -> String {
        let valid = (1..=24).contains(&new.len())
            && new
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return "! a nickname is 1-24 letters, digits, '_' or '-'".into();
        }
        {
            let mut members = self.room.members.lock().unwrap();
            if members.values().any(|m| m.nick == new) {
                return format!("! {new} is taken");
            }
            if let Some(m) = members.get_mut(&key(conn)) {
                m.nick = new.to_string();
            }
        }
        let old = std::mem::replace(conn.state_mut(), new.to_string());
        self.announce(conn, &format!("* {old} is now known as {new}"));
        format!("* you are now {new}")
    }

    fn who(&self) -> String {
        let mut nicks: Vec<String> = self
            .room
            .members
            .lock()
            .unwrap()
            .values()
            .map(|m| m.nick.clone())
            .collect();
        nicks.sort();
        format!("* online: {}", nicks.join(", "))
    }
}

impl FrameHandler for Chat {
    /// The connection's nickname.
    type State = String;

    fn on_open(&mut self, conn: &mut Conn<'_, '_>) -> Action {
        let n = self.room.guests.fetch_add(1, Ordering::Relaxed) + 1;
        let nick = format!("guest{n}");
        self.room.members.lock().unwrap().insert(
            key(conn),
            Member {
                nick: nick.clone(),
                handle: conn.handle(),
            },
        );
        self.announce(conn, &format!("* {nick} joined"));
        let _ =
            conn.send(format!("* welcome, {nick}! commands: /nick NAME, /who, /quit").as_bytes());
        *conn.state_mut() = nick;
        Action::None
    }

    fn on_frame(&mut self, conn: &mut Conn<'_, '_>, frame: &[u8]) -> Action {
        let text = String::from_utf8_lossy(frame);
        let text = text.trim();
        let reply = match text.split_once(' ').unwrap_or((text, "")) {
            ("", _) => return Action::None,
            ("/nick", name) => self.rename(conn, name.trim()),
            ("/who", _) => self.who(),
            ("/quit", _) => {
                let _ = conn.send(b"* bye");
                return Action::Close;
            }
            (cmd, _) if cmd.starts_with('/') => format!("! unknown command {cmd}"),
            _ => {
                let line = format!("<{}> {text}", conn.state());
                self.announce(conn, &line);
                return Action::None;
            }
        };
        match conn.send(reply.as_bytes()) {
            Ok(()) => Action::None,
            Err(_) => Action::Close,
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, '_>, reason: &CloseReason) {
        self.room.members.lock().unwrap().remove(&key(conn));
        let why = match reason {
            CloseReason::Protocol(_) => " (line too long)",
            _ => "",
        };
        self.announce(conn, &format!("* {} left{why}", conn.state()));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    let max = args.max_frame;
    let chat = Chat {
        room: Arc::default(),
    };
    let engine = Engine::builder()
        .backend(args.backend)
        .loops(args.loops)
        .listen(args.addr.as_str())
        .start_with(Framed::new(
            move || LineCodec::new().with_max_frame_len(max),
            chat,
        ))?;
    for a in engine.local_addrs() {
        println!(
            "listening on {}",
            a.to_string().trim_start_matches("tcp://")
        );
    }
    if args.self_test {
        let addr = engine.local_addr().as_tcp().ok_or("self-test needs TCP")?;
        let res = self_test(addr, max);
        engine.stop();
        res?;
        println!("ok: chat self-test passed");
        return Ok(());
    }
    common::stop_on_signals(engine.handle());
    engine.wait();
    Ok(())
}

// ----- self-test -----

struct Client {
    out: TcpStream,
    lines: std::io::Lines<BufReader<TcpStream>>,
}

impl Client {
    fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Client {
            out: s.try_clone()?,
            lines: BufReader::new(s).lines(),
        })
    }

    fn say(&mut self, line: &str) -> std::io::Result<()> {
        self.out.write_all(format!("{line}\n").as_bytes())
    }

    /// Reads lines until one equals `want` (others, such as join notices, are skipped).
    fn expect(&mut self, want: &str) -> Result<(), String> {
        let mut seen = Vec::new();
        for line in self.lines.by_ref() {
            let line = line.map_err(|e| format!("waiting for {want:?}: {e}; saw {seen:?}"))?;
            if line == want {
                return Ok(());
            }
            seen.push(line);
        }
        Err(format!("connection closed before {want:?}; saw {seen:?}"))
    }
}

fn self_test(addr: SocketAddr, max: usize) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut alice = Client::connect(addr).map_err(io)?;
    alice.say("/nick alice").map_err(io)?;
    alice.expect("* you are now alice")?;
    let mut bob = Client::connect(addr).map_err(io)?;
    bob.say("/nick bob").map_err(io)?;
    bob.expect("* you are now bob")?;
    alice.expect("* guest2 is now known as bob")?;

    bob.say("/nick alice").map_err(io)?;
    bob.expect("! alice is taken")?;
    alice.say("hello, bob").map_err(io)?;
    bob.expect("<alice> hello, bob")?;
    bob.say("hi alice").map_err(io)?;
    alice.expect("<bob> hi alice")?;
    alice.say("/who").map_err(io)?;
    alice.expect("* online: alice, bob")?;

    // A line over the limit disconnects its sender only.
    let mut mallory = Client::connect(addr).map_err(io)?;
    mallory.say("/nick mallory").map_err(io)?;
    mallory.expect("* you are now mallory")?;
    let _ = mallory.out.write_all(&vec![b'x'; max + 10]);
    alice.expect("* mallory left (line too long)")?;

    bob.say("/quit").map_err(io)?;
    bob.expect("* bye")?;
    alice.expect("* bob left")?;
    alice.say("/who").map_err(io)?;
    alice.expect("* online: alice")?;
    Ok(())
}
