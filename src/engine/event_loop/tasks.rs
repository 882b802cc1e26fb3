//! Tasks from other threads, graceful stop and shutdown.

use super::*;

impl<H: EventHandler, D: Driver> EventLoop<H, D> {
    /// Runs queued tasks; returns true if some were left for the next round.
    pub(super) fn run_tasks(&mut self) -> bool {
        let mut tasks = std::mem::take(&mut self.tasks);
        let more = self.io.shared.queue.take(&mut tasks, TASKS_PER_ROUND);
        for task in tasks.drain(..) {
            self.run_task(task);
        }
        self.tasks = tasks;
        self.flush_queued();
        more
    }

    /// Writes what the last batch of async writes queued, one gathered write per
    /// connection.
    pub(super) fn flush_queued(&mut self) {
        let mut list = std::mem::take(&mut self.to_flush);
        for &(index, gen) in &list {
            if !self.is_live(index, gen) {
                continue;
            }
            let c = self.slots[index as usize].conn.as_mut().expect("live");
            c.set(flag::FLUSH_PENDING, false);
            match c.flush(&mut self.io) {
                Ok(()) => self.settle(index),
                Err(e) => self.close(index, CloseReason::from_io(e)),
            }
        }
        list.clear();
        self.to_flush = list;
    }

    pub(super) fn run_task(&mut self, task: Task) {
        match task {
            Task::Write {
                index,
                gen,
                data,
                cb,
            } => self.async_write(index, gen, cb, |c, out| c.queue_owned(data, out)),
            Task::Writev {
                index,
                gen,
                data,
                cb,
            } => self.async_write(index, gen, cb, |c, out| {
                data.into_iter().try_for_each(|v| c.queue_owned(v, out))
            }),
            Task::PauseRead { index, gen, pause } => {
                if self.is_live(index, gen) {
                    if let Some(c) = self.slots[index as usize].conn.as_mut() {
                        if c.is(flag::PAUSED) && !pause {
                            c.restart_rx(self.io.now);
                        }
                        c.set(flag::PAUSED, pause);
                    }
                    self.settle(index);
                }
            }
            Task::Wake { index, gen } => {
                if self.is_live(index, gen) {
                    self.callback(index, gen, |h, c| h.on_traffic(c));
                }
            }
            Task::Close { index, gen } => {
                if self.is_live(index, gen) {
                    if let Some(c) = self.slots[index as usize].conn.as_mut() {
                        c.drain(Drain::Handle);
                    }
                    self.settle(index);
                }
            }
            Task::Adopt { fd, layered } => {
                if self.stopping || self.drain_until.is_some() {
                    drop(fd);
                    self.io.shared.connections.fetch_sub(1, Ordering::Relaxed);
                } else {
                    self.prepare_socket(&fd);
                    self.open(fd, None, layered);
                }
            }
            Task::StopAccepting(_done) => self.stop_accepting(),
            Task::Stop => self.begin_drain(),
            Task::StopNow => self.stopping = true,
            Task::Connect(dial) => self.start_dial(dial),
        }
    }

    /// A graceful stop: no more accepting or reading; each connection closes (with
    /// `EngineStopped`) as soon as its outbound queue is empty, and whatever is left
    /// when `drain_timeout` passes is closed by `shutdown`.
    pub(super) fn begin_drain(&mut self) {
        if self.drain_until.is_some() {
            self.stopping = true; // asked twice: stop now
            return;
        }
        self.drain_until = Some(later(Instant::now(), self.opts.drain_timeout));
        for l in &mut self.listeners {
            l.deregister(&mut self.driver);
        }
        self.listeners.clear();
        for index in 0..self.slots.len() as u32 {
            if let Some(c) = self.slots[index as usize].conn.as_mut() {
                c.drain(Drain::EngineStopped);
                self.settle(index);
            }
        }
    }

    pub(super) fn async_write(
        &mut self,
        index: u32,
        gen: u32,
        cb: Option<crate::WriteCallback>,
        write: impl FnOnce(&mut ConnInner<H::State>, &mut LoopIo) -> Result<(), crate::conn::WriteError>,
    ) {
        let Some(c) = self.slots.get_mut(index as usize).and_then(|s| {
            s.conn
                .as_mut()
                .filter(|c| c.gen == gen && c.draining.is_none() && !c.has_failed())
        }) else {
            if let Some(cb) = cb {
                run_callback(cb, Err(Error::ConnectionClosed));
            }
            return;
        };
        match write(c, &mut self.io) {
            Ok(()) => {
                if let Some(cb) = cb {
                    c.add_waiter(cb, self.io.now);
                }
                // Written once the whole task batch is in: a burst of async writes
                // to one connection leaves in one gathered write, not one each.
                if !c.is(flag::FLUSH_PENDING) {
                    c.set(flag::FLUSH_PENDING, true);
                    self.to_flush.push((index, gen));
                }
            }
            Err(e) => {
                let reason = e.close_reason();
                if let Some(cb) = cb {
                    run_callback(cb, Err(e.into_error()));
                }
                self.close(index, reason);
            }
        }
    }

    pub(super) fn shutdown(&mut self) {
        for l in &mut self.listeners {
            l.deregister(&mut self.driver);
        }
        self.listeners.clear();
        for task in self.io.shared.queue.close() {
            match task {
                Task::Adopt { fd, .. } => {
                    drop(fd);
                    self.io.shared.connections.fetch_sub(1, Ordering::Relaxed);
                }
                other => other.fail(|| Error::EngineStopped),
            }
        }
        self.fail_dials();
        if D::COMPLETION {
            // One last attempt to send what is queued: submitted without waiting.
            self.queue_sends();
            let _ = self.driver.submit();
        }
        for index in 0..self.slots.len() as u32 {
            if let Some(c) = self.slots[index as usize].conn.as_mut() {
                // One last non-blocking attempt to send what is queued.
                let _ = c.flush(&mut self.io);
                self.close(index, CloseReason::EngineStopped);
            }
        }
        let handler = &mut self.handler;
        let info = LoopInfo {
            index: self.io.shared.index,
            engine: &self.engine,
            connections: 0,
        };
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| handler.on_shutdown(&info))) {
            tracing::error!(panic = panic_message(&*p), "on_shutdown panicked");
        }
    }
}
