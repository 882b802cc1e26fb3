//! [`Client`]: an engine that only dials (gnet's `Client`).

use crate::addr::Addr;
use crate::addr::ToAddr;
use crate::conn::ConnHandle;
use crate::engine::dialer::{DialOptions, Dialer};
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
pub struct Client<S = ()> {
    engine: Engine,
    dialer: Dialer<S>,
}

impl<S> std::fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("engine", &self.engine)
            .finish()
    }
}

impl EngineBuilder {
    /// Starts loops that serve only outgoing connections (no listening address is
    /// needed; any given are still bound). The handler factory is as for
    /// [`start`](Self::start).
    pub fn start_client<H, F>(mut self, factory: F) -> Result<Client<H::State>>
    where
        H: EventHandler,
        H::State: Send,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        self.client = true;
        let engine = self.start(factory)?;
        let dialer = Dialer::new(engine.handle());
        Ok(Client { engine, dialer })
    }

    /// [`start_client`](Self::start_client) with a clone of `handler` per loop.
    pub fn start_client_with<H>(self, handler: H) -> Result<Client<H::State>>
    where
        H: EventHandler + Clone + Send,
        H::State: Send,
    {
        let proto = std::sync::Mutex::new(handler);
        self.start_client(move |_| proto.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

impl<S: Send + 'static> Client<S> {
    /// A handle for other threads (dial, stop, counts).
    pub fn handle(&self) -> EngineHandle {
        self.engine.handle()
    }

    /// A dialer typed by the handler's state, for other threads.
    pub fn dialer(&self) -> Dialer<S> {
        self.dialer.clone()
    }

    /// The addresses bound, if listening addresses were given too.
    pub fn local_addrs(&self) -> &[Addr] {
        self.engine.local_addrs()
    }

    /// See [`Dialer::dial`].
    pub fn dial(
        &self,
        addr: impl ToAddr,
        opts: DialOptions<S>,
        cb: impl FnOnce(Result<ConnHandle, Error>) + Send + 'static,
    ) {
        self.dialer.dial(addr, opts, cb)
    }

    /// See [`Dialer::dial_blocking`].
    pub fn dial_blocking(&self, addr: impl ToAddr, opts: DialOptions<S>) -> Result<ConnHandle> {
        self.dialer.dial_blocking(addr, opts)
    }

    /// See [`Dialer::adopt`].
    pub fn adopt(
        &self,
        socket: impl Into<OwnedFd>,
        opts: DialOptions<S>,
        cb: impl FnOnce(Result<ConnHandle, Error>) + Send + 'static,
    ) {
        self.dialer.adopt(socket, opts, cb)
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
