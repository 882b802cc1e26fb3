//! Redis RESP2.
