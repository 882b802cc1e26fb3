//! The per-connection state: a few bytes inline in the loop's slab slot, plus a
//! box that exists only while something needs it.

use super::deflate::{DeflateContext, Negotiated};
use super::handshake::ClientRequest;
use super::reader::Partial;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Phase {
    /// Server: waiting for the upgrade request. Client: request sent, waiting
    /// for the answer.
    #[default]
    Handshake,
    /// Messages flow both ways.
    Open,
    /// This endpoint sent its close frame and waits for the peer's; data is
    /// discarded.
    Closing,
    /// The closing handshake is over (or the connection failed): everything
    /// read is discarded until the TCP connection closes.
    Closed,
}

/// Status bits.
pub(crate) mod flag {
    /// The connection was dialed: this endpoint is the client.
    pub(crate) const CLIENT: u8 = 1;
    /// The application's `on_open` ran (so its `on_close` must run once).
    pub(crate) const OPENED: u8 = 1 << 1;
    /// The application's `on_close` ran.
    pub(crate) const REPORTED: u8 = 1 << 2;
    /// A close frame was sent.
    pub(crate) const CLOSE_SENT: u8 = 1 << 3;
    /// Keep-alive: a ping was sent and nothing has arrived since.
    pub(crate) const PONG_PENDING: u8 = 1 << 4;
    /// Keep-alive: the timer is the deadline of a ping's answer (rather than
    /// the time to send the next ping).
    pub(crate) const PING_SENT: u8 = 1 << 5;
}

/// What the box holds: parts of a connection that only some connections need,
/// or only for a while.
#[derive(Debug, Default)]
pub(crate) struct Extra {
    /// Client: the request sent and its key, until the answer arrives.
    pub(crate) request: Option<Box<(ClientRequest, String)>>,
    /// A message being assembled.
    pub(crate) partial: Option<Box<Partial>>,
    /// Compression contexts, with context takeover only.
    pub(crate) deflate: Option<DeflateContext>,
    /// The reason given with a local close, until it is reported.
    pub(crate) close_reason: Option<String>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.request.is_none()
            && self.partial.is_none()
            && self.deflate.is_none()
            && self.close_reason.is_none()
    }
}

/// Packs [`Negotiated`] into a byte: 0 = no compression; low 4 bits the
/// window, then the two takeover bits.
const DEFLATE_ON: u8 = 0x80;
const TX_TAKEOVER: u8 = 0x10;
const RX_TAKEOVER: u8 = 0x20;

/// A WebSocket connection's state, kept inline in the loop's slab slot: 16
/// bytes plus the application's own state `S` when idle. Nothing else is held
/// by an idle connection: no buffer, no compressor.
///
/// The engine creates it with `Default` for accepted connections (server
/// side); dialed connections get theirs from
/// [`client::dial`](super::client::dial).
#[derive(Debug, Default)]
pub struct WsState<S> {
    pub(crate) extra: Option<Box<Extra>>,
    pub(crate) phase: Phase,
    pub(crate) flags: u8,
    /// Selected subprotocol: index into `Config::protocols`, plus one (0: none).
    pub(crate) protocol: u8,
    deflate: u8,
    /// The code of the close this endpoint sent.
    pub(crate) close_code: u16,
    pub(crate) user: S,
}

impl<S> WsState<S> {
    /// A fresh (server-side, handshake pending) state around `user`.
    pub(crate) fn with_user(user: S) -> Self {
        WsState {
            extra: None,
            phase: Phase::Handshake,
            flags: 0,
            protocol: 0,
            deflate: 0,
            close_code: 0,
            user,
        }
    }

    /// The application's state.
    pub fn user(&self) -> &S {
        &self.user
    }

    /// The application's state, mutably.
    pub fn user_mut(&mut self) -> &mut S {
        &mut self.user
    }

    pub(crate) fn is(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    pub(crate) fn set(&mut self, f: u8) {
        self.flags |= f;
    }

    pub(crate) fn clear(&mut self, f: u8) {
        self.flags &= !f;
    }

    pub(crate) fn negotiated(&self) -> Option<Negotiated> {
        (self.deflate & DEFLATE_ON != 0).then_some(Negotiated {
            tx_window_bits: self.deflate & 0x0F,
            tx_takeover: self.deflate & TX_TAKEOVER != 0,
            rx_takeover: self.deflate & RX_TAKEOVER != 0,
        })
    }

    pub(crate) fn set_negotiated(&mut self, n: Option<Negotiated>) {
        self.deflate = match n {
            None => 0,
            Some(n) => {
                DEFLATE_ON
                    | (n.tx_window_bits & 0x0F)
                    | if n.tx_takeover { TX_TAKEOVER } else { 0 }
                    | if n.rx_takeover { RX_TAKEOVER } else { 0 }
            }
        };
    }

    /// The box, created if missing.
    pub(crate) fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// Drops the box once nothing in it is needed.
    pub(crate) fn tidy(&mut self) {
        if self.extra.as_deref().is_some_and(Extra::is_empty) {
            self.extra = None;
        }
    }

    /// Drops everything the connection holds besides the inline fields.
    pub(crate) fn release(&mut self) {
        self.extra = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_state_is_two_words() {
        assert_eq!(std::mem::size_of::<WsState<()>>(), 16);
    }

    #[test]
    fn negotiated_packs_and_unpacks() {
        let mut s = WsState::<()>::default();
        assert_eq!(s.negotiated(), None);
        for (tx, rx, bits) in [(false, false, 15), (true, false, 9), (false, true, 12)] {
            let n = Negotiated {
                tx_takeover: tx,
                tx_window_bits: bits,
                rx_takeover: rx,
            };
            s.set_negotiated(Some(n));
            assert_eq!(s.negotiated(), Some(n));
        }
    }
}
