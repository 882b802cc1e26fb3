//! Protocol layers built on netloop.
