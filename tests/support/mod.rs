//! Helpers shared by every integration test: waiting and deadlines, loopback
//! clients, process probes (descriptors, CPU time, memory), recording handlers,
//! deterministic bad input, and running the examples.
//!
//! Each test file includes it with `mod support;` and `use support::*;`.
#![allow(dead_code, unused_imports)]

mod examples;
mod handlers;
mod input;
mod net;
mod process;
#[cfg(feature = "tls")]
mod tls;
mod wait;

pub use examples::*;
pub use handlers::*;
pub use input::*;
pub use net::*;
pub use process::*;
#[cfg(feature = "tls")]
pub use tls::*;
pub use wait::*;

/// The builder every test starts its engine from. Tests never call
/// `Engine::builder()` directly: this is the one place where a suite-wide switch
/// (such as the I/O backend under test) is applied.
pub fn engine_builder() -> netloop::EngineBuilder {
    netloop::Engine::builder()
}
