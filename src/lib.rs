//! netloop: a Reactor-pattern event-loop networking framework for Linux.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod buffer;
pub mod codec;
pub mod protocol;
