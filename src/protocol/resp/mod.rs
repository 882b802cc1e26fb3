//! Redis RESP2: a streaming zero-copy command parser, reply writers, an
//! in-memory [`Store`] with expiry, the command logic ([`execute`]) and the
//! per-connection [`RespSession`].
//!
//! Supported commands: `PING ECHO GET SET(EX/PX/NX/XX/KEEPTTL) DEL UNLINK
//! EXISTS INCR DECR INCRBY DECRBY MGET MSET EXPIRE PEXPIRE(NX/XX/GT/LT)
//! PERSIST TTL PTTL DBSIZE FLUSHALL FLUSHDB COMMAND INFO QUIT HELLO CLIENT
//! SELECT CONFIG`, enough for `redis-cli` and `redis-benchmark`. Replies and
//! error texts follow Redis 7. Only RESP2 is spoken (`HELLO 3` gets
//! `-NOPROTO`).
//!
//! # Glue sketch
//!
//! ```
//! use std::time::Instant;
//! use netloop::protocol::resp::{Replies, RespSession, Store};
//! let mut store = Store::new(); // per loop, see below
//! let mut session = RespSession::default(); // per connection
//! let mut inbound = b"PING\r\n".to_vec();
//! let mut out = Replies::default();
//! match session.on_bytes(&inbound, &mut out, &mut store, Instant::now()) {
//!     Ok(p) => {
//!         inbound.drain(..p.consumed);
//!         // write `out` (`Replies::fill` slices it while the socket takes
//!         // more); close if `p.close`; call again if `p.more`
//!         # assert!(!p.close);
//!     }
//!     Err(_) => { /* write `out`, then close */ }
//! }
//! assert_eq!(out.to_bytes(), b"+PONG\r\n");
//! // From a timer tick: store.purge_expired(Instant::now(), 256);
//! ```
//!
//! # Sharing the store between event loops
//!
//! [`Store`] is a plain single-threaded struct. The engine runs one handler
//! per loop thread, which leaves three options:
//!
//! 1. **One store per loop** (lock-free). Fastest, but a client sees only the
//!    keys written through its own loop, so two connections can disagree.
//!    Fine for benchmarks where each connection only reads its own writes;
//!    wrong as a general cache.
//! 2. **One `Arc<Mutex<Store>>`** shared by all loops, locked once per
//!    `on_bytes` batch (not per command): a batch of pipelined commands
//!    pays a single uncontended-or-short lock, and semantics are exactly
//!    Redis's (a batch is even atomic). Contention grows with loops, but the
//!    critical section is microseconds.
//! 3. **N shards** (`Vec<Mutex<Store>>` indexed by key hash). Scales writes
//!    best but needs per-command routing and makes multi-key commands
//!    (`MGET`, `MSET`, `DEL a b`) lock several shards.
//!
//! **Recommendation:** the example server should use option 2 (a shared
//! `Arc<Mutex<Store>>` locked per batch) as the default, because it is the
//! only one that is correct for every client, and its cost is amortised by
//! pipelining; run `purge_expired` from one loop's tick with a small budget.
//! Offer option 1 behind a flag for raw-throughput benchmarks. Option 3 is
//! only worth it if profiling shows lock contention.
//!
//! # Parsing
//!
//! The [`CommandParser`] keeps its place between reads: a command costs time
//! linear in its size however it is split, and once a partial command is
//! large its bytes are copied out of the inbound buffer as they arrive (so
//! the engine's inbound cap never stalls a command the limits allow).
//! [`RespLimits`] bound what it holds; its buffers shrink back after a large
//! command. Replies go through [`Replies`], which references large values
//! instead of copying them, and the session stops at an output budget so a
//! client that does not read meets backpressure (see [`server`]).

pub mod commands;
pub mod parser;
pub mod reply;
pub mod server;
pub mod session;
pub mod store;
pub mod value;
pub mod writer;

pub use commands::{execute, Action, ClientInfo, SERVER_VERSION};
pub use parser::{parse_command, Args, CommandParser, Parse, RespError, RespLimits};
pub use reply::Replies;
pub use server::{RedisConn, RedisServer, RespTimeouts, StoreMode, COMMAND_TIMEOUT_REPLY};
pub use session::{Progress, RespSession, DEFAULT_OUTPUT_BUDGET};
pub use store::{Entry, IncrError, SetCondition, SetExpiry, Store, Ttl};
pub use value::{InvalidValue, Value};
