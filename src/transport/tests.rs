//! The transport seam, driven end to end through a real engine by a small test
//! layer: a preamble (`HELLO\n`, answered `WELCOME\n`), bytes XOR-ed with a key
//! both ways, last words (`BYE\n`) on a local close, and refusal by peer.

use super::*;
use crate::{Action, Conn, Engine, EventHandler};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Instant;

const KEY: u8 = 0x5a;
const HELLO: &[u8] = b"HELLO\n";

fn xor(b: &[u8]) -> Vec<u8> {
    b.iter().map(|x| x ^ KEY).collect()
}

struct XorLayer {
    /// Bytes of the preamble seen so far.
    seen: usize,
    done_after_preamble: bool,
    timeout: Duration,
}

impl Layer for XorLayer {
    fn receive(&mut self, input: &mut [u8], io: &mut LayerIo<'_>) -> Result<(), CloseReason> {
        let mut rest = &mut input[..];
        while self.seen < HELLO.len() {
            let Some((&mut first, tail)) = rest.split_first_mut() else {
                return Ok(());
            };
            if first != HELLO[self.seen] {
                return Err(CloseReason::Protocol("bad hello".into()));
            }
            self.seen += 1;
            rest = tail;
            if self.seen == HELLO.len() {
                io.down.push(b"WELCOME\n", io.pool);
            }
        }
        if self.done_after_preamble {
            io.up.push(rest, io.pool);
            return Ok(());
        }
        for b in rest.iter_mut() {
            *b ^= KEY; // decoded in place, as a TLS layer decrypts
        }
        io.up.push(rest, io.pool);
        Ok(())
    }
    fn send(&mut self, data: &[&[u8]], io: &mut LayerIo<'_>) -> Result<(), CloseReason> {
        for d in data {
            io.down.push(&xor(d), io.pool);
        }
        Ok(())
    }
    fn goodbye(&mut self, io: &mut LayerIo<'_>) {
        io.down.push(b"BYE\n", io.pool);
    }
    fn state(&self) -> LayerState {
        match (self.seen < HELLO.len(), self.done_after_preamble) {
            (true, _) => LayerState::Preamble,
            (false, true) => LayerState::Done,
            (false, false) => LayerState::Open,
        }
    }
    fn preamble_timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct XorFactory {
    refuse: bool,
    done_after_preamble: bool,
}

impl LayerFactory for XorFactory {
    fn open(&self, _peer: &socket2::SockAddr) -> Result<Box<dyn Layer>, CloseReason> {
        if self.refuse {
            return Err(CloseReason::Protocol("refused by the test layer".into()));
        }
        Ok(Box::new(XorLayer {
            seen: 0,
            done_after_preamble: self.done_after_preamble,
            timeout: Duration::from_millis(300),
        }))
    }
}

/// Echoes plaintext; `quit` closes; records what it saw.
#[derive(Clone, Default)]
struct Echo {
    log: Arc<Mutex<Vec<String>>>,
}

impl EventHandler for Echo {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let layered = conn.layer::<XorLayer>().is_some();
        self.log
            .lock()
            .unwrap()
            .push(format!("open layered={layered}"));
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let data = conn.peek_all().to_vec();
        conn.discard(data.len());
        self.log
            .lock()
            .unwrap()
            .push(format!("traffic {}", String::from_utf8_lossy(&data)));
        if data == b"quit" {
            let _ = conn.write(b"bye");
            return Action::Close;
        }
        let _ = conn.write(&data);
        Action::None
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        self.log.lock().unwrap().push(format!("close {reason}"));
    }
}

/// The integration suites' backend switch (`NETLOOP_TEST_BACKEND`, see
/// `tests/support`), for these tests that start an engine from inside the crate.
fn builder() -> crate::EngineBuilder {
    let backend = std::env::var("NETLOOP_TEST_BACKEND")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().expect("NETLOOP_TEST_BACKEND"))
        .unwrap_or_default();
    Engine::builder().backend(backend)
}

fn start(factory: XorFactory) -> (Engine, Echo, TcpStream) {
    let echo = Echo::default();
    let engine = builder()
        .loops(1)
        .listen_with(ListenConfig::new("127.0.0.1:0").layer(Arc::new(factory)))
        .start_with(echo.clone())
        .unwrap();
    let c = TcpStream::connect(engine.local_addr().as_tcp().unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    (engine, echo, c)
}

fn read_n(c: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    c.read_exact(&mut v).unwrap();
    v
}

fn wait_for(echo: &Echo, line: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if echo.log.lock().unwrap().iter().any(|l| l == line) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn bytes_pass_through_the_layer_both_ways_after_its_preamble() {
    let (engine, echo, mut c) = start(XorFactory {
        refuse: false,
        done_after_preamble: false,
    });
    // The preamble split over two segments; the handler hears nothing yet.
    c.write_all(&HELLO[..3]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        echo.log.lock().unwrap().is_empty(),
        "on_open before the preamble"
    );
    // The rest of it, and the first plaintext in the same segment.
    let mut msg = HELLO[3..].to_vec();
    msg.extend(xor(b"ping"));
    c.write_all(&msg).unwrap();
    assert_eq!(read_n(&mut c, 8), b"WELCOME\n");
    assert_eq!(read_n(&mut c, 4), xor(b"ping"));
    c.write_all(&xor(b"quit")).unwrap();
    assert_eq!(read_n(&mut c, 3), xor(b"bye"));
    // Last words after the handler's reply, then end of stream.
    assert_eq!(read_n(&mut c, 4), b"BYE\n");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(wait_for(&echo, "close closed by handler"), "{:?}", echo.log);
    let log = echo.log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "open layered=true",
            "traffic ping",
            "traffic quit",
            "close closed by handler"
        ]
    );
    engine.stop();
}

#[test]
fn a_stalled_preamble_is_closed_and_the_handler_never_hears_of_it() {
    let (engine, echo, mut c) = start(XorFactory {
        refuse: false,
        done_after_preamble: false,
    });
    c.write_all(&HELLO[..2]).unwrap();
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest); // closed by the preamble deadline
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(echo.log.lock().unwrap().is_empty(), "{:?}", echo.log);
    let h = engine.handle();
    let end = Instant::now() + Duration::from_secs(5);
    while h.connection_count() != 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(h.connection_count(), 0);
    engine.stop();
}

#[test]
fn a_layer_can_refuse_a_connection_and_one_can_retire() {
    let (engine, echo, mut c) = start(XorFactory {
        refuse: true,
        done_after_preamble: false,
    });
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert!(echo.log.lock().unwrap().is_empty());
    engine.stop();

    // A layer that retires after its preamble: plain bytes from then on, and the
    // handler still finds it (for what it learned).
    let (engine, echo, mut c) = start(XorFactory {
        refuse: false,
        done_after_preamble: true,
    });
    let mut msg = HELLO.to_vec();
    msg.extend(b"plain");
    c.write_all(&msg).unwrap();
    assert_eq!(read_n(&mut c, 8), b"WELCOME\n");
    assert_eq!(read_n(&mut c, 5), b"plain");
    c.write_all(b"again").unwrap();
    assert_eq!(read_n(&mut c, 5), b"again");
    assert!(wait_for(&echo, "traffic again"));
    assert_eq!(echo.log.lock().unwrap()[0], "open layered=true");
    engine.stop();
}
