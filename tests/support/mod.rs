//! Helpers shared by every integration test: waiting and deadlines, loopback
//! clients, process probes (descriptors, CPU time, memory), recording handlers,
//! deterministic bad input, running the examples, and examples run as server
//! processes (output, children, signals).
//!
//! Each test file includes it with `mod support;` and `use support::*;`.
#![allow(dead_code, unused_imports)]

mod examples;
mod handlers;
mod input;
mod net;
mod process;
mod served;
#[cfg(feature = "tls")]
mod tls;
mod wait;
mod websocket;

pub use examples::*;
pub use handlers::*;
pub use input::*;
pub use net::*;
pub use process::*;
pub use served::*;
#[cfg(feature = "tls")]
pub use tls::*;
pub use wait::*;
pub use websocket::*;

/// The builder every test starts its engine from. Tests never call
/// `Engine::builder()` directly: this is the one place where a suite-wide switch
/// is applied — the I/O backend under test, from `NETLOOP_TEST_BACKEND`
/// (`epoll`, the default, `uring` or `auto`). CI runs the whole suite once per
/// backend.
pub fn engine_builder() -> netloop::EngineBuilder {
    netloop::Engine::builder().backend(test_backend())
}

/// The backend `NETLOOP_TEST_BACKEND` asks for (epoll when unset).
pub fn test_backend() -> netloop::Backend {
    match std::env::var("NETLOOP_TEST_BACKEND") {
        Ok(v) if !v.is_empty() => v
            .parse()
            .unwrap_or_else(|e| panic!("NETLOOP_TEST_BACKEND: {e}")),
        _ => netloop::Backend::Epoll,
    }
}

/// How far past the high water mark a handler that pauses reading when it
/// becomes unwritable may find bytes held: one read's worth under epoll (its
/// 64 KiB read buffer, doubled for the sampling); under io_uring, the receives
/// the multishot receive had already completed when the pause took effect (one
/// round's worth, kept rather than dropped).
pub fn pause_slack() -> usize {
    match test_backend() {
        netloop::Backend::Epoll => 128 * 1024,
        _ => 1024 * 1024,
    }
}
