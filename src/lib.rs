//! netloop: a Reactor-pattern event-loop networking framework for Linux.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod acceptor;
pub mod addr;
pub mod buffer;
pub mod codec;
mod connection;
mod engine;
mod error;
mod event_loop;
mod handle;
mod handler;
mod listener;
mod load_balancer;
mod options;
mod poller;
pub mod protocol;
mod stats;
mod sys;
mod task_queue;
mod timer_wheel;
mod worker_pool;

pub use addr::{Addr, ToAddr};
pub use connection::{Conn, Writer};
pub use engine::{serve, Engine, EngineBuilder, EngineHandle};
pub use error::{Error, Result};
pub use handle::{ConnHandle, WriteCallback};
pub use handler::{Action, CloseReason, EventHandler, LoopInfo, TimeoutKind};
pub use options::{LoadBalancer, Mode, Options};
pub use stats::{ClosedStats, LoopStats, Stats};
pub use worker_pool::WorkerPool;
