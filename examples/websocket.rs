//! WebSocket server: an echo endpoint and a broadcast chat room across loops.
//!
//! | path | what |
//! |---|---|
//! | `/echo` (and anything else) | every message comes back as it was sent |
//! | `/chat` | every text message goes to everyone in the room, on every loop |
//!
//! ```text
//! cargo run --release --example websocket -- --addr 127.0.0.1:9001 --loops 2 --deflate
//! python3 -m websockets ws://127.0.0.1:9001/chat      # in several terminals
//! # self-test: the netloop client talks to the server (echo, chat, close codes), then exits
//! cargo run --example websocket -- --addr 127.0.0.1:0 --loops 2 --deflate --self-test
//! ```
mod common;

use clap::Parser;
use netloop::protocol::websocket::{
    client, CloseCode, Config, DeflateConfig, Message, PreparedMessage, Upgrade, WebSocket,
    WebSocketHandler, WsConn, WsHandle,
};
use netloop::{Action, ConnId, DialOptions, Engine};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "netloop WebSocket echo and chat server")]
struct Args {
    /// HOST:PORT, or a tcp://, tcp4://, tcp6:// or unix:// URL.
    #[arg(long, default_value = "127.0.0.1:9001")]
    addr: String,
    /// Number of event loops.
    #[arg(long, default_value_t = 1)]
    loops: usize,
    /// I/O backend: epoll | uring | auto (io_uring where the kernel allows it).
    #[arg(long, default_value = "epoll")]
    backend: netloop::Backend,
    /// Negotiate permessage-deflate with clients that offer it.
    #[arg(long)]
    deflate: bool,
    /// Close connections silent for this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    idle_timeout: u64,
    /// Keep-alive: ping every this many seconds, close peers that answer
    /// nothing within one interval (0: off).
    #[arg(long, default_value_t = 20)]
    ping_interval: u64,
    /// Largest message accepted, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_message: usize,
    /// Run the netloop client against the server, then exit.
    #[arg(long)]
    self_test: bool,
}

/// What a connection is for, chosen by the upgrade path.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    #[default]
    Echo,
    Chat,
}

/// Everyone in the chat room, keyed by connection id.
#[derive(Default)]
struct Room {
    members: Mutex<HashMap<ConnId, WsHandle>>,
    joined: AtomicU64,
}

impl Room {
    /// Sends `text` to every member: encoded once, one shared frame queued to each
    /// member's loop. A member that left meanwhile is skipped.
    fn broadcast(&self, text: &str) {
        let msg = PreparedMessage::text(text);
        let members: Vec<WsHandle> = self.members.lock().unwrap().values().cloned().collect();
        for m in members {
            let _ = m.send_prepared(&msg);
        }
    }
}

#[derive(Clone)]
struct App {
    room: Arc<Room>,
}

fn key(ws: &WsConn<'_, '_, Endpoint>) -> ConnId {
    ws.id()
}

impl WebSocketHandler for App {
    type State = Endpoint;

    fn on_upgrade(&mut self, up: &mut Upgrade<'_, '_, Endpoint>) -> Result<(), u16> {
        if up.path() == "/chat" {
            *up.state_mut() = Endpoint::Chat;
        }
        Ok(())
    }

    fn on_open(&mut self, ws: &mut WsConn<'_, '_, Endpoint>) -> Action {
        if *ws.state() == Endpoint::Chat {
            let n = self.room.joined.fetch_add(1, Ordering::Relaxed) + 1;
            let _ = ws.send_text(&format!("* welcome, you are guest{n}"));
            self.room.broadcast(&format!("* guest{n} joined"));
            self.room
                .members
                .lock()
                .unwrap()
                .insert(key(ws), ws.handle());
        }
        Action::None
    }

    fn on_message(&mut self, ws: &mut WsConn<'_, '_, Endpoint>, msg: Message<'_>) -> Action {
        let res = match (*ws.state(), msg) {
            (Endpoint::Echo, msg) => ws.send(msg),
            (Endpoint::Chat, Message::Text(t)) => {
                self.room.broadcast(&format!("{}: {t}", ws.id()));
                Ok(())
            }
            (Endpoint::Chat, Message::Binary(_)) => {
                ws.close(CloseCode::UNSUPPORTED, "the chat room takes text");
                Ok(())
            }
        };
        if res.is_ok() {
            Action::None
        } else {
            Action::Close
        }
    }

    fn on_close(&mut self, ws: &mut WsConn<'_, '_, Endpoint>, code: CloseCode, reason: &str) {
        if *ws.state() == Endpoint::Chat {
            self.room.members.lock().unwrap().remove(&key(ws));
            self.room
                .broadcast(&format!("* {} left ({code} {reason})", ws.id()));
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let args = Args::parse();
    let mut cfg = Config::default().max_message_size(args.max_message);
    if args.deflate {
        cfg = cfg.deflate(DeflateConfig::default());
    }
    if args.idle_timeout > 0 {
        cfg = cfg.idle_timeout(Some(Duration::from_secs(args.idle_timeout)));
    }
    if args.ping_interval > 0 {
        cfg = cfg.ping_interval(Some(Duration::from_secs(args.ping_interval)));
    }
    let cfg = Arc::new(cfg);
    let app = App {
        room: Arc::default(),
    };
    let engine = Engine::builder()
        .backend(args.backend)
        .loops(args.loops)
        .listen(args.addr.as_str())
        .start(move |_| WebSocket::with_config(app.clone(), cfg.clone()))?;
    for a in engine.local_addrs() {
        println!(
            "listening on {}",
            a.to_string().trim_start_matches("tcp://")
        );
    }
    if args.self_test {
        let addr = engine.local_addr().as_tcp().ok_or("self-test needs TCP")?;
        let res = self_test(&addr.to_string(), args.deflate, args.backend);
        engine.stop();
        res?;
        println!("ok: websocket self-test passed");
        return Ok(());
    }
    common::stop_on_signals(engine.handle());
    engine.wait();
    Ok(())
}

// ----- self-test: the netloop client over the dialer -----

/// A client that reports everything it receives on a channel.
#[derive(Clone)]
struct Probe {
    events: Arc<Mutex<mpsc::Sender<String>>>,
}

impl Probe {
    fn tell(&self, s: String) {
        let _ = self.events.lock().unwrap().send(s);
    }
}

/// Per-connection: a name for the report, and the handle to talk through.
#[derive(Default)]
struct ProbeState(&'static str);

impl WebSocketHandler for Probe {
    type State = ProbeState;
    fn on_open(&mut self, ws: &mut WsConn<'_, '_, ProbeState>) -> Action {
        self.tell(format!(
            "{} open compressed={}",
            ws.state().0,
            ws.is_compressed()
        ));
        Action::None
    }
    fn on_message(&mut self, ws: &mut WsConn<'_, '_, ProbeState>, msg: Message<'_>) -> Action {
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => format!("{} bytes", b.len()),
        };
        self.tell(format!("{} {text}", ws.state().0));
        Action::None
    }
    fn on_close(&mut self, ws: &mut WsConn<'_, '_, ProbeState>, code: CloseCode, _: &str) {
        self.tell(format!("{} closed {code}", ws.state().0));
    }
}

fn self_test(addr: &str, deflate: bool, backend: netloop::Backend) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let probe = Probe {
        events: Arc::new(Mutex::new(tx)),
    };
    let mut cfg = Config::default();
    if deflate {
        cfg = cfg.deflate(DeflateConfig::default());
    }
    let clients = Engine::builder()
        .backend(backend)
        .loops(1)
        .start_client_with(WebSocket::new(probe, cfg))
        .map_err(|e| e.to_string())?;
    let handles: Arc<Mutex<HashMap<&'static str, WsHandle>>> = Arc::default();
    let open = |name: &'static str, path: &str| {
        let (target, request) =
            client::parse_url(&format!("ws://{addr}{path}")).map_err(|e| e.to_string())?;
        let hs = handles.clone();
        client::dial(
            &clients.dialer(),
            target.as_str(),
            request,
            ProbeState(name),
            DialOptions::new().timeout(Duration::from_secs(5)),
            move |res| {
                if let Ok(h) = res {
                    hs.lock().unwrap().insert(name, h);
                }
            },
        );
        Ok::<(), String>(())
    };
    // Events from different connections may come in any order: ones not
    // waited for yet are kept for later.
    let backlog = std::cell::RefCell::new(Vec::<String>::new());
    let wait_for = |matches: &dyn Fn(&str) -> bool, what: &str| -> Result<(), String> {
        let found = backlog.borrow().iter().position(|e| matches(e));
        if let Some(i) = found {
            backlog.borrow_mut().remove(i);
            return Ok(());
        }
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(e) if matches(&e) => return Ok(()),
                Ok(e) => backlog.borrow_mut().push(e),
                Err(_) => return Err(format!("waiting for {what}; saw {:?}", backlog.borrow())),
            }
        }
    };
    let expect = |want: &str| wait_for(&|e| e == want, want);
    let send = |name: &str, text: &str| -> Result<(), String> {
        match handles.lock().unwrap().get(name) {
            Some(h) => h.send_text(text).map_err(|e| format!("{name}: {e}")),
            None => Err(format!("{name} is not connected")),
        }
    };

    open("echo", "/echo")?;
    expect(&format!("echo open compressed={deflate}"))?;
    send("echo", "hello, echo")?;
    expect("echo hello, echo")?;

    open("alice", "/chat")?;
    expect("alice * welcome, you are guest1")?;
    open("bob", "/chat")?;
    expect("bob * welcome, you are guest2")?;
    expect("alice * guest2 joined")?;
    send("bob", "hi all")?;
    // Each member hears the message, prefixed with the sender's id.
    let heard = |name: &str| wait_for(&|e| e.starts_with(name) && e.ends_with(": hi all"), name);
    heard("alice")?;
    heard("bob")?;
    let bin = handles.lock().unwrap().get("bob").cloned();
    if let Some(h) = bin {
        h.send_binary(b"not text")
            .map_err(|e| format!("bob: {e}"))?;
    }
    expect("bob closed 1003")?;
    clients.stop();
    Ok(())
}
