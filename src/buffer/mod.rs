//! Buffers: the elastic ring buffer (inbound), the linked block list (outbound) and their per-loop pool.
