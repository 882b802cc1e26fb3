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
/// (such as the I/O backend under test) is applied.
pub fn engine_builder() -> netloop::EngineBuilder {
    netloop::Engine::builder()
}
