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
mod wait;

pub use examples::*;
pub use handlers::*;
pub use input::*;
pub use net::*;
pub use process::*;
pub use wait::*;
