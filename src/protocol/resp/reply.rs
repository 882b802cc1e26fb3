//! The replies of a batch of commands, with large values kept by reference.
//!
//! Small replies are encoded into a byte buffer as usual ([`Replies`] derefs
//! to its `Vec<u8>`, so the [`writer`](super::writer) functions append to it).
//! A bulk value of [`SHARED_VALUE_MIN`] bytes or more, and every element of a
//! large `MGET`, is kept as a shared reference to the stored value instead
//! and encoded only when the connection can take it
//! ([`Replies::fill`]), a slice at a time: a `GET` of a 64 MiB value or an
//! `MGET` of a hundred 1 MiB values costs the server a few pointers per value
//! until the client reads, and the output side stays within the engine's
//! water marks instead of holding the whole reply.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// Bulk values at least this long are referenced, not copied, by replies.
pub const SHARED_VALUE_MIN: usize = 16 * 1024;

/// Values referenced by a reply, sent after `at` bytes of the buffer.
#[derive(Debug)]
struct Deferred {
    /// Offset in the buffer where these values go.
    at: usize,
    values: Vec<Option<Arc<[u8]>>>,
    /// Index of the value being sent.
    next: usize,
    /// Data bytes of that value already sent (`None`: not even its header).
    sent: Option<usize>,
}

/// The replies of a batch of commands, in order; see the [module
/// docs](self).
///
/// ```
/// use std::sync::Arc;
/// use netloop::protocol::resp::{writer, Replies};
/// let mut r = Replies::default();
/// writer::write_array_len(&mut r, 2);
/// r.push_values(vec![Some(Arc::from(&b"big value"[..])), None]);
/// writer::write_ok(&mut r);
/// // Four bytes at a time, as a slow socket would take them.
/// let (mut all, mut slice) = (Vec::new(), Vec::new());
/// while r.fill(&mut slice, 4) {
///     all.extend_from_slice(&slice);
///     slice.clear();
/// }
/// assert_eq!(all, b"*2\r\n$9\r\nbig value\r\n$-1\r\n+OK\r\n");
/// assert!(r.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct Replies {
    buf: Vec<u8>,
    deferred: VecDeque<Deferred>,
    /// Bytes of `buf` already handed out by `fill`.
    cursor: usize,
    /// Data bytes of deferred values not yet handed out.
    deferred_bytes: usize,
}

impl Deref for Replies {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl DerefMut for Replies {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl Replies {
    /// Appends a sequence of bulk replies (`None`: the null bulk) that are
    /// encoded when sent, not now.
    pub fn push_values(&mut self, values: Vec<Option<Arc<[u8]>>>) {
        if values.is_empty() {
            return;
        }
        self.deferred_bytes += values.iter().flatten().map(|v| v.len()).sum::<usize>();
        self.deferred.push_back(Deferred {
            at: self.buf.len(),
            values,
            next: 0,
            sent: None,
        });
    }

    /// Appends one bulk reply for `value`: copied when short, referenced
    /// when at least [`SHARED_VALUE_MIN`] bytes long.
    pub fn push_value(&mut self, value: &Arc<[u8]>) {
        if value.len() < SHARED_VALUE_MIN {
            super::writer::write_bulk(&mut self.buf, value);
        } else {
            self.push_values(vec![Some(value.clone())]);
        }
    }

    /// Whether every reply has been handed out.
    pub fn is_empty(&self) -> bool {
        self.cursor == self.buf.len() && self.deferred.is_empty()
    }

    /// Whether all replies are in the byte buffer (no referenced values):
    /// the buffer can then be written as it is.
    pub fn is_contiguous(&self) -> bool {
        self.deferred.is_empty()
    }

    /// The replies not yet handed out, as one slice, when no value is
    /// referenced (write it, then [`reset`](Self::reset)).
    pub fn as_contiguous(&self) -> Option<&[u8]> {
        self.deferred.is_empty().then(|| &self.buf[self.cursor..])
    }

    /// Bytes still to be handed out (referenced values counted by their data).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.cursor + self.deferred_bytes
    }

    /// Forgets every reply; keeps the buffer's capacity up to `retain` bytes.
    pub fn reset(&mut self, retain: usize) {
        if self.buf.capacity() > retain {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        self.deferred.clear();
        self.cursor = 0;
        self.deferred_bytes = 0;
    }

    /// Encodes the next replies into `dst` until it holds about `max` bytes
    /// (a short header may take it a few bytes past). Returns whether
    /// anything was added; once everything has been handed out the replies
    /// are empty again.
    pub fn fill(&mut self, dst: &mut Vec<u8>, max: usize) -> bool {
        let before = dst.len();
        while dst.len() < max {
            let seg_end = self.deferred.front().map_or(self.buf.len(), |d| d.at);
            if self.cursor < seg_end {
                let n = (seg_end - self.cursor).min(max - dst.len());
                dst.extend_from_slice(&self.buf[self.cursor..self.cursor + n]);
                self.cursor += n;
                continue;
            }
            let Some(d) = self.deferred.front_mut() else {
                break;
            };
            let Some(value) = d.values.get(d.next) else {
                self.deferred.pop_front();
                continue;
            };
            let Some(value) = value else {
                dst.extend_from_slice(b"$-1\r\n");
                d.next += 1;
                continue;
            };
            let sent = match d.sent {
                Some(sent) => sent,
                None => {
                    dst.push(b'$');
                    dst.extend_from_slice(itoa::Buffer::new().format(value.len()).as_bytes());
                    dst.extend_from_slice(b"\r\n");
                    0
                }
            };
            let n = (value.len() - sent).min(max.saturating_sub(dst.len()));
            dst.extend_from_slice(&value[sent..sent + n]);
            self.deferred_bytes -= n;
            if sent + n == value.len() {
                dst.extend_from_slice(b"\r\n");
                d.next += 1;
                d.sent = None;
            } else {
                d.sent = Some(sent + n);
            }
        }
        if self.is_empty() {
            self.buf.clear();
            self.cursor = 0;
        }
        dst.len() > before
    }

    /// Every pending reply, encoded (for tests and tools).
    pub fn to_bytes(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while self.fill(&mut all, usize::MAX) {}
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::resp::writer::*;

    #[test]
    fn interleaves_buffer_and_values_at_any_slice_size() {
        let big: Arc<[u8]> = (0..50_000u32).map(|i| i as u8).collect::<Vec<_>>().into();
        let mut want = Vec::new();
        write_ok(&mut want);
        write_bulk(&mut want, &big);
        write_array_len(&mut want, 3);
        write_bulk(&mut want, &big);
        write_null_bulk(&mut want);
        write_bulk(&mut want, b"tiny");
        write_integer(&mut want, 7);
        for max in [1, 7, 4096, 1 << 20] {
            let mut r = Replies::default();
            write_ok(&mut r);
            r.push_value(&big);
            write_array_len(&mut r, 3);
            r.push_values(vec![Some(big.clone()), None, Some(Arc::from(&b"tiny"[..]))]);
            write_integer(&mut r, 7);
            // +OK, *3 and :7 in the buffer; the values' data referenced.
            assert_eq!(r.pending(), 5 + 4 + 4 + 50_000 + 50_000 + 4);
            let mut got = Vec::new();
            let mut chunk = Vec::new();
            while r.fill(&mut chunk, max) {
                got.extend_from_slice(&chunk);
                chunk.clear();
            }
            assert_eq!(got, want, "slices of {max}");
            assert!(r.is_empty() && r.pending() == 0);
        }
    }
}
