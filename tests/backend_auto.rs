//! The backend switch: `Backend::Auto` runs io_uring where the kernel offers it
//! and falls back to epoll — with one log line saying why — where it is refused;
//! `Backend::IoUring` asked of a kernel that refuses fails to start with a typed
//! error. The refusal is simulated with `NETLOOP_REFUSE_IO_URING`, which makes the
//! probe fail as `kernel.io_uring_disabled` or a seccomp profile would.
//!
//! One test in its own binary: the environment variable is process-wide.

mod support;
use support::*;

use netloop::{Action, Backend, Conn, Engine, Error, EventHandler};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
struct Echo;

impl EventHandler for Echo {
    type State = ();
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        let n = conn.buffered();
        let ([a, b], mut w) = conn.split();
        let _ = w.writev(&[a, b]);
        conn.discard(n);
        Action::None
    }
}

/// The log lines written so far.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn start(backend: Backend) -> netloop::Result<Engine> {
    engine_builder()
        .backend(backend)
        .loops(1)
        .listen("127.0.0.1:0")
        .start_with(Echo)
}

/// A round trip through `engine`.
fn echoes(engine: &Engine) -> bool {
    let mut c = connect(tcp_addr(engine));
    round_trip(&mut c, b"ping over the chosen backend") == b"ping over the chosen backend"
}

#[test]
fn auto_runs_io_uring_where_offered_and_falls_back_to_epoll_when_refused() {
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    // As the kernel offers it: Auto picks io_uring exactly when IoUring starts.
    let uring = start(Backend::IoUring);
    let offered = match &uring {
        Ok(e) => {
            assert_eq!(e.backend(), Backend::IoUring);
            assert!(echoes(e));
            true
        }
        Err(Error::BackendUnavailable { reason }) => {
            eprintln!("note: io_uring is not offered here ({reason}); only the fallback is tested");
            false
        }
        Err(e) => panic!("unexpected start failure: {e}"),
    };
    drop(uring);
    let auto = start(Backend::Auto).unwrap();
    let expected = if offered {
        Backend::IoUring
    } else {
        Backend::Epoll
    };
    assert_eq!(auto.backend(), expected);
    assert!(echoes(&auto));
    auto.stop();

    // Refused: Auto runs on epoll and says why, once; IoUring does not start.
    log.0.lock().unwrap().clear();
    std::env::set_var("NETLOOP_REFUSE_IO_URING", "1");
    let auto = start(Backend::Auto).unwrap();
    assert_eq!(auto.backend(), Backend::Epoll);
    assert!(echoes(&auto));
    auto.stop();
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("io_uring unavailable"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("NETLOOP_REFUSE_IO_URING"), "{}", lines[0]);
    match start(Backend::IoUring) {
        Err(Error::BackendUnavailable { reason }) => {
            assert!(reason.contains("NETLOOP_REFUSE_IO_URING"), "{reason}")
        }
        Ok(_) => panic!("IoUring started although refused"),
        Err(e) => panic!("unexpected start failure: {e}"),
    }
    // Epoll never probes.
    let epoll = start(Backend::Epoll).unwrap();
    assert_eq!(epoll.backend(), Backend::Epoll);
    assert!(echoes(&epoll));
    epoll.stop();
    std::env::remove_var("NETLOOP_REFUSE_IO_URING");
}
