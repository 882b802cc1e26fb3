//! Engine threads, shared by the stream engine and the datagram engine: spawning a
//! thread that is counted while it runs (and stops its engine if it fails),
//! waiting for the count to reach zero with a deadline, and joining.

use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// How many of an engine's threads are still running, with a condvar signalled as
/// each one exits.
#[derive(Default)]
pub(crate) struct Running {
    count: Mutex<usize>,
    exited: Condvar,
}

impl Running {
    fn add(&self, n: isize) {
        let mut c = self.count.lock().unwrap_or_else(|p| p.into_inner());
        *c = c.wrapping_add_signed(n);
        if *c == 0 {
            self.exited.notify_all();
        }
    }

    /// Waits until every counted thread has exited, or `deadline`; returns whether
    /// they all did.
    pub(crate) fn wait_until(&self, deadline: Instant) -> bool {
        let mut c = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while *c > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(running = *c, "engine stop timed out");
                return false;
            }
            c = self
                .exited
                .wait_timeout(c, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// Spawns a thread counted in `running`. If `body` fails or panics, the failure is
/// logged and `on_failure` runs (it stops the engine rather than leaving it half
/// alive). If the thread cannot be spawned, `on_failure` runs too.
pub(crate) fn spawn(
    running: &Arc<Running>,
    name: String,
    on_failure: impl FnOnce() + Clone + Send + 'static,
    body: impl FnOnce() -> io::Result<()> + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    running.add(1);
    let (r, fail) = (running.clone(), on_failure.clone());
    let thread_name = name.clone();
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(thread = %thread_name, error = %e, "engine thread failed; stopping the engine");
                fail();
            }
            Err(p) => {
                tracing::error!(thread = %thread_name, panic = crate::engine::shared::panic_message(&*p), "engine thread panicked; stopping the engine");
                fail();
            }
        }
        r.add(-1);
    });
    spawned.inspect_err(|_| {
        running.add(-1);
        on_failure();
    })
}

/// Joins every thread (they have been asked to stop, or the caller waits for that).
pub(crate) fn join_all(threads: &mut Vec<JoinHandle<()>>) {
    for t in threads.drain(..) {
        let _ = t.join();
    }
}
