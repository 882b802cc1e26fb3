//! [`Client`]: an engine that only dials (gnet's `Client`).

use crate::addr::ToAddr;
use crate::conn::ConnHandle;
use crate::engine::dialer::DialOptions;
use crate::engine::{Engine, EngineBuilder, EngineHandle};
use crate::error::{Error, Result};
use crate::handler::EventHandler;
use std::os::fd::OwnedFd;

/// A set of event loops serving outgoing connections, with no listener.
///
/// It is an [`Engine`] started without listening addresses: the same loops, the
/// same [`EventHandler`] API, the same [`ConnHandle`]s. An engine that listens can
/// dial as well ([`EngineHandle::dial`]); `Client` is for programs that only dial.
///
/// ```
/// use netloop::{Action, Client, Conn, DialOptions, Engine, EventHandler};
/// use std::time::Duration;
///
/// #[derive(Clone)]
/// struct Echo;
/// impl EventHandler for Echo {
///     type State = ();
///     fn on_traffic(&mut self, conn: &mut Conn<'_, ()>) -> Action {
///         let n = conn.buffered();
///         let ([a, b], mut w) = conn.split();
///         let _ = w.writev(&[a, b]);
///         conn.discard(n);
///         Action::None
///     }
/// }
///
/// let server = Engine::builder().loops(1).listen("127.0.0.1:0").start_with(Echo)?;
/// let client = Engine::builder().loops(1).start_client_with(Echo)?;
/// let conn = client.dial_blocking(server.local_addr(), DialOptions::new().timeout(Duration::from_secs(5)))?;
/// conn.async_write(b"ping".to_vec(), None); // echoed back and forth
/// client.stop();
/// server.stop();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    engine: Engine,
}

impl EngineBuilder {
    /// Starts loops that serve only outgoing connections (no listening address is
    /// needed; any given are still bound). The handler factory is as for
    /// [`start`](Self::start).
    pub fn start_client<H, F>(mut self, factory: F) -> Result<Client>
    where
        H: EventHandler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        self.client = true;
        Ok(Client {
            engine: self.start(factory)?,
        })
    }

    /// [`start_client`](Self::start_client) with a clone of `handler` per loop.
    pub fn start_client_with<H>(self, handler: H) -> Result<Client>
    where
        H: EventHandler + Clone + Send,
    {
        let proto = std::sync::Mutex::new(handler);
        self.start_client(move |_| proto.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

impl Client {
    /// A handle for other threads (dial, stop, counts).
    pub fn handle(&self) -> EngineHandle {
        self.engine.handle()
    }

    /// See [`EngineHandle::dial`].
    pub fn dial(
        &self,
        addr: impl ToAddr,
        opts: DialOptions,
        cb: impl FnOnce(Result<ConnHandle, Error>) + Send + 'static,
    ) {
        self.engine.handle().dial(addr, opts, cb)
    }

    /// See [`EngineHandle::dial_blocking`].
    pub fn dial_blocking(&self, addr: impl ToAddr, opts: DialOptions) -> Result<ConnHandle> {
        self.engine.handle().dial_blocking(addr, opts)
    }

    /// See [`EngineHandle::adopt`].
    pub fn adopt(
        &self,
        socket: impl Into<OwnedFd>,
        opts: DialOptions,
        cb: impl FnOnce(Result<ConnHandle, Error>) + Send + 'static,
    ) {
        self.engine.handle().adopt(socket, opts, cb)
    }

    /// Connections open across the loops.
    pub fn connection_count(&self) -> usize {
        self.engine.handle().connection_count()
    }

    /// Blocks until stopped (by a handle or a handler's `Action::Shutdown`).
    pub fn wait(self) {
        self.engine.wait()
    }

    /// Closes every connection (`on_close` with `EngineStopped`), fails pending
    /// dials with [`Error::EngineStopped`], and joins the loops.
    pub fn stop(self) {
        self.engine.stop()
    }
}
