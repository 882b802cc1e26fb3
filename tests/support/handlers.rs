//! Handlers that record what the engine did, for assertions.

use netloop::{Action, CloseReason, Conn, EventHandler, LoopInfo};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a [`Recorder`] saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Open(usize),
    Close(usize, String),
    Boot(usize),
    Shutdown(usize),
    Tick(usize),
}

/// An echo handler that records its callbacks.
#[derive(Clone, Default)]
pub struct Recorder {
    pub log: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    pub fn closes(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|s| match s {
                Seen::Close(_, r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }
    pub fn count(&self, f: impl Fn(&Seen) -> bool) -> usize {
        self.log.lock().unwrap().iter().filter(|s| f(s)).count()
    }
}

/// Names a close reason for comparisons.
pub fn reason_name(r: &CloseReason) -> String {
    match r {
        CloseReason::PeerClosed => "peer".into(),
        CloseReason::Reset => "reset".into(),
        CloseReason::Local => "local".into(),
        CloseReason::Handle => "handle".into(),
        CloseReason::Panicked => "panicked".into(),
        CloseReason::EngineStopped => "stopped".into(),
        other => format!("{other}"),
    }
}

impl EventHandler for Recorder {
    type State = ();
    fn on_boot(&mut self, info: &LoopInfo<'_>) -> Action {
        self.log.lock().unwrap().push(Seen::Boot(info.index()));
        Action::None
    }
    fn on_open(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        self.log.lock().unwrap().push(Seen::Open(conn.loop_index()));
        Action::None
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
        if conn.peek_all() == b"boom" {
            panic!("boom requested");
        }
        let n = conn.buffered();
        let ([a, b], mut w) = conn.split();
        let res = w.writev(&[a, b]);
        conn.discard(n);
        if res.is_err() {
            Action::Close
        } else {
            Action::None
        }
    }
    fn on_close(&mut self, conn: &mut Conn<'_, ()>, reason: &CloseReason) {
        self.log
            .lock()
            .unwrap()
            .push(Seen::Close(conn.loop_index(), reason_name(reason)));
    }
    fn on_tick(&mut self, info: &LoopInfo<'_>) -> (Duration, Action) {
        self.log.lock().unwrap().push(Seen::Tick(info.index()));
        (Duration::from_millis(20), Action::None)
    }
    fn on_shutdown(&mut self, info: &LoopInfo<'_>) {
        self.log.lock().unwrap().push(Seen::Shutdown(info.index()));
    }
}

/// Wraps a handler and counts connections closed because a callback panicked.
/// Every callback is forwarded (a protocol server wrapped in it must see
/// `on_writable_changed` to resume after backpressure, `on_timer` for its
/// deadlines, and so on).
pub struct Watch<H> {
    pub inner: H,
    pub panics: Arc<AtomicUsize>,
}

impl<H: EventHandler> EventHandler for Watch<H> {
    type State = H::State;
    fn on_boot(&mut self, info: &LoopInfo<'_>) -> Action {
        self.inner.on_boot(info)
    }
    fn on_open(&mut self, conn: &mut Conn<'_, H::State>) -> Action {
        self.inner.on_open(conn)
    }
    fn on_traffic(&mut self, conn: &mut Conn<'_, H::State>) -> Action {
        self.inner.on_traffic(conn)
    }
    fn on_read_closed(&mut self, conn: &mut Conn<'_, H::State>) -> Action {
        self.inner.on_read_closed(conn)
    }
    fn on_timer(&mut self, conn: &mut Conn<'_, H::State>) -> Action {
        self.inner.on_timer(conn)
    }
    fn on_close(&mut self, conn: &mut Conn<'_, H::State>, reason: &CloseReason) {
        if matches!(reason, CloseReason::Panicked) {
            self.panics.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.on_close(conn, reason)
    }
    fn on_writable_changed(&mut self, conn: &mut Conn<'_, H::State>, writable: bool) {
        self.inner.on_writable_changed(conn, writable)
    }
    fn on_tick(&mut self, info: &LoopInfo<'_>) -> (Duration, Action) {
        self.inner.on_tick(info)
    }
    fn on_shutdown(&mut self, info: &LoopInfo<'_>) {
        self.inner.on_shutdown(info)
    }
}
