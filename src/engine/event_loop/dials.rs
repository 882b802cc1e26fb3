//! Outgoing connections on the loop (see `crate::engine::dialer`).

use super::*;

impl<H: EventHandler, D: Driver> EventLoop<H, D> {
    /// A dial or adopt task: connected sockets open at once, connecting ones wait
    /// for writability.
    pub(super) fn start_dial(&mut self, dial: Box<crate::engine::dialer::Dial>) {
        if self.stopping {
            return dial.fail(Error::EngineStopped);
        }
        if !dial.connecting {
            return self.finish_dial(*dial);
        }
        if let Err((dial, e)) = self.dials.start(dial, &mut self.driver) {
            let err = dial.connect_error(e);
            dial.fail(err);
        }
    }

    pub(super) fn on_dial_ready(&mut self, token: u64) {
        if let Some((dial, res)) = self.dials.ready(token, &mut self.driver) {
            match res {
                Ok(()) => self.finish_dial(*dial),
                Err(e) => {
                    let err = dial.connect_error(e);
                    dial.fail(err);
                }
            }
        }
    }

    pub(super) fn expire_dials(&mut self, now: Instant) {
        if self.dials.len() > 0 {
            self.dials.expire(now, &mut self.driver, |dial| {
                let err = Error::ConnectTimeout {
                    addr: dial.done.addr.clone(),
                    timeout: dial.timeout.unwrap_or_default(),
                };
                dial.fail(err);
            });
        }
    }

    pub(super) fn fail_dials(&mut self) {
        self.dials
            .drain(&mut self.driver, |dial| dial.fail(Error::EngineStopped));
    }

    /// A connected socket becomes an ordinary connection: `on_open`, then the
    /// dial's callback with its handle.
    pub(super) fn finish_dial(&mut self, dial: crate::engine::dialer::Dial) {
        let crate::engine::dialer::Dial {
            fd,
            is_tcp,
            state,
            done,
            ..
        } = dial;
        let state = match state.map(|s| s.downcast::<H::State>()) {
            None => None,
            Some(Ok(s)) => Some(*s),
            Some(Err(_)) => {
                return done.complete(Err(Error::Config(
                    "DialOptions::state is not of the handler's State type".into(),
                )))
            }
        };
        listener::configure(&fd, is_tcp, &self.opts);
        self.prepare_socket(&fd);
        self.io.shared.connections.fetch_add(1, Ordering::Relaxed);
        let res = match self.open(fd, state, None) {
            Some((index, gen)) => Ok(crate::ConnHandle {
                shared: self.io.shared.clone(),
                index,
                gen,
            }),
            None => Err(Error::Io(io::Error::other(
                "could not register the connection with the poller",
            ))),
        };
        done.complete(res);
    }
}
