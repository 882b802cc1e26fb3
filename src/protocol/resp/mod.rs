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
//! use netloop::protocol::resp::{RespSession, Store};
//! let mut store = Store::new(); // per loop, see below
//! let mut session = RespSession::default(); // per connection
//! let mut inbound = b"PING\r\n".to_vec();
//! let mut out = Vec::new();
//! match session.on_bytes(&inbound, &mut out, &mut store, Instant::now()) {
//!     Ok((consumed, close)) => {
//!         inbound.drain(..consumed);
//!         // write `out` in one syscall; close if `close`
//!         # assert!(!close);
//!     }
//!     Err(_) => { /* write `out`, then close */ }
//! }
//! assert_eq!(out, b"+PONG\r\n");
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
//! The parser is stateless over the buffered input: each call re-parses the
//! pending command from its first byte, so a command may be split across
//! any number of reads. A large value costs one pass over its headers per
//! read, not over its data. [`RespLimits`] bound the buffering.

pub mod commands;
pub mod parser;
pub mod server;
pub mod session;
pub mod store;
pub mod value;
pub mod writer;

pub use commands::{execute, Action, ClientInfo, SERVER_VERSION};
pub use parser::{parse_command, Args, RespError, RespLimits};
pub use server::{RedisConn, RedisServer, StoreMode};
pub use session::RespSession;
pub use store::{Entry, IncrError, SetCondition, SetExpiry, Store, Ttl};
pub use value::{InvalidValue, Value};
