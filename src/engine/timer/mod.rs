//! Time on a loop: its coarse clock and the hashed timing wheel that holds
//! every connection's timeout.

mod clock;
mod wheel;

pub(crate) use clock::{later, Clock};
pub(crate) use wheel::{Entry, TimerWheel};
