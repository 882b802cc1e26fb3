//! Running for real: prefork workers, zero-downtime restarts, socket
//! activation, and a single process handing over to its successor.
//!
//! # What
//!
//! * A [`Supervisor`] binds the listening sockets, then runs N worker
//!   processes of the same program on them. A worker that dies is replaced
//!   (with back-off); SIGTERM or SIGINT drains every worker and exits; SIGHUP
//!   starts a new *generation* from the program file on disk, waits until all
//!   of it is ready, and only then tells the old generation to stop accepting
//!   and drain. A new generation that fails to start is stopped and the old one
//!   serves on.
//! * A worker — or any server started by a service manager — takes its
//!   sockets with [`inherited_listeners`] and reports with [`notify_ready`] /
//!   [`notify_stopping`].
//! * A single process can hand its sockets to a successor with [`hand_over`].
//!
//! # One protocol for all three: systemd's
//!
//! The supervisor hands sockets down exactly as systemd does: descriptors at
//! 3, 4, … with `LISTEN_FDS`, `LISTEN_PID` (the worker's own pid, written
//! after the fork — see `sys/process.rs`) and `LISTEN_FDNAMES`; workers answer
//! with `READY=1` / `STOPPING=1` datagrams on the supervisor's `NOTIFY_SOCKET`,
//! whose sender pid the kernel attests (`SO_PASSCRED`). So a worker cannot tell
//! a netloop supervisor from systemd (or `systemd-socket-activate`), and the
//! supervisor itself may be socket-activated: it then serves the sockets it
//! was given, and reports `READY=1`, `RELOADING=1` and `STOPPING=1` to its own
//! manager. Workers are new processes of the program file (`execve`), never
//! forks of a process that has threads.
//!
//! ```text
//!  supervisor ── binds 127.0.0.1:8080 (fd 5), NOTIFY_SOCKET=/run/…/notify.sock
//!    │  fork+execve(current exe, same args)  LISTEN_FDS=1 LISTEN_PID=<child> fd 5 → 3
//!    ├── worker g1.0  engine on fd 3 ── READY=1 ──┐
//!    └── worker g1.1  engine on fd 3 ── READY=1 ──┴─► generation 1 serving
//!  SIGHUP:
//!    ├── worker g2.0, g2.1 start on the same socket … READY=1 ×2
//!    └── then SIGTERM to g1.*: they stop accepting, drain, exit
//!        (the socket never closes: queued connections wait for generation 2)
//! ```
//!
//! # Why no connection is lost
//!
//! The listening socket belongs to the supervisor for its whole life; workers
//! hold duplicates. The kernel queues connections on the socket whoever
//! accepts; a worker closing its duplicate closes nothing. Between "new
//! generation ready" and "old generation stopped", both accept from the same
//! queue. With [`Sharing::ReusePort`] each slot has its own socket, which the
//! supervisor also keeps open and gives to the same slot of every generation,
//! for the same reason (a closed reuseport socket resets what is queued on it).
//! A worker told to stop must stop *accepting* first and then drain its open
//! connections within the supervisor's stop timeout.
//!
//! # Example
//!
//! ```no_run
//! use netloop::prefork::{self, Supervisor};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     if prefork::worker_id().is_none() && std::env::var_os("LISTEN_FDS").is_none() {
//!         // The supervisor: binds, starts 2 workers (this same program), waits.
//!         Supervisor::builder().workers(2).listen("127.0.0.1:8080").build()?.run()?;
//!         return Ok(());
//!     }
//!     // A worker (or a socket-activated service): serve what was handed down.
//!     let listeners = prefork::inherited_listeners()?;
//!     // ... start an engine on `listeners`, then:
//!     prefork::notify_ready()?;
//!     // ... on SIGTERM: stop accepting, notify_stopping(), drain, exit.
//!     # drop(listeners);
//!     Ok(())
//! }
//! ```

mod activation;
mod handover;
mod launch;
mod notify;
mod supervisor;

pub use activation::{
    inherited_listeners, notify_ready, notify_status, notify_stopping, worker_id,
    InheritedListener, WorkerId, WORKER_ENV,
};
pub use handover::hand_over;
pub use notify::Notification;
pub use supervisor::{Sharing, Supervisor, SupervisorBuilder};
