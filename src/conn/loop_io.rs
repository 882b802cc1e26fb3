//! The loop's side of every connection operation.

use super::flow::Flow;
use crate::buffer::BufferPool;
use crate::engine::shared::LoopShared;
use crate::engine::stats::Tally;
use crate::engine::EngineHandle;
use std::sync::Arc;

/// The loop's side of every connection operation: its buffer pool, flow settings,
/// clock and per-message tallies. One per loop; a [`Conn`] borrows it whole while a
/// callback runs, so building a `Conn` costs a few pointer stores.
pub(crate) struct LoopIo {
    pub(crate) pool: BufferPool,
    pub(crate) flow: Flow,
    /// The loop's current tick.
    pub(crate) now: u64,
    /// Per-message counters, published to the loop's shared stats once per round.
    pub(crate) tally: Tally,
    pub(crate) shared: Arc<LoopShared>,
    /// The engine the loop belongs to (for dialers handed to handlers).
    pub(crate) engine: EngineHandle,
    /// Handler writes go to the socket at once when nothing is queued (readiness
    /// drivers); otherwise they are queued and the driver sends them.
    pub(crate) inline_sends: bool,
    /// Scratch for the wire bytes transport layers produce (TLS records): sent
    /// straight from here when nothing is queued (see `crate::transport`). Empty
    /// between operations; no memory until a layered connection writes.
    pub(crate) wire: Vec<u8>,
}
