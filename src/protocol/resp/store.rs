//! A single-threaded in-memory key-value store with expiry.
//!
//! Time is injected: every method that may observe expiry takes `now`, so
//! tests can drive the clock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stored value and its optional deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value bytes, shared: a reply still being sent keeps the value it
    /// read alive (and unchanged) while the key moves on.
    pub value: Arc<[u8]>,
    /// When the key stops existing (expired once `now >= expires_at`).
    pub expires_at: Option<Instant>,
}

impl Entry {
    /// Whether the entry is expired at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        matches!(self.expires_at, Some(t) if t <= now)
    }
}

/// When a `SET`-like write applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCondition {
    /// Always.
    Always,
    /// Only if the key does not exist (`NX`).
    IfAbsent,
    /// Only if the key exists (`XX`).
    IfPresent,
}

/// What a `SET`-like write does to the key's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetExpiry {
    /// Remove any deadline (plain `SET`).
    Clear,
    /// Keep the current deadline (`KEEPTTL`).
    Keep,
    /// Expire at this instant (`EX`/`PX`).
    At(Instant),
}

/// A key's remaining time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The key does not exist (`TTL` replies -2).
    Missing,
    /// The key has no deadline (`TTL` replies -1).
    Persistent,
    /// Time left before the key expires.
    Remaining(Duration),
}

/// Why an increment failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IncrError {
    /// The current value is not a base-10 64-bit integer.
    #[error("value is not an integer or out of range")]
    NotInteger,
    /// The result would not fit in an `i64`.
    #[error("increment or decrement would overflow")]
    Overflow,
}

/// The key-value store: a `HashMap` plus a min-heap of deadlines for
/// [`Store::purge_expired`]. Expired keys are absent from the moment their
/// deadline passes; their memory goes when they are next accessed (the value)
/// or written (the key), and actively through `purge_expired` from a timer
/// tick.
///
/// ```
/// use std::time::{Duration, Instant};
/// use netloop::protocol::resp::{SetCondition, SetExpiry, Store};
/// let now = Instant::now();
/// let mut store = Store::new();
/// let ttl = SetExpiry::At(now + Duration::from_secs(1));
/// assert!(store.set_with(b"k", b"v", SetCondition::Always, ttl, now));
/// assert_eq!(store.get(b"k", now), Some(&b"v"[..]));
/// assert_eq!(store.get(b"k", now + Duration::from_secs(1)), None);
/// ```
#[derive(Debug, Default)]
pub struct Store {
    map: HashMap<Vec<u8>, Entry>,
    deadlines: BinaryHeap<Reverse<(Instant, Vec<u8>)>>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys, including expired ones not yet removed (like Redis's
    /// `DBSIZE`).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store holds no keys at all.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of keys that have a deadline (for `INFO`; O(n)).
    pub fn expiring_len(&self) -> usize {
        self.map.values().filter(|e| e.expires_at.is_some()).count()
    }

    /// The live entry for `key`; an expired one is absent. One hash lookup:
    /// removing an expired key here would cost a second lookup on every hit
    /// (the borrow checker cannot hand out `e` on one branch and remove on
    /// the other), so its value is dropped at once and the key itself goes
    /// at the next write of it or at [`purge_expired`](Store::purge_expired).
    pub fn entry(&mut self, key: &[u8], now: Instant) -> Option<&mut Entry> {
        let e = self.map.get_mut(key)?;
        if e.is_expired(now) {
            if !e.value.is_empty() {
                e.value = Arc::from(&[][..]);
            }
            return None;
        }
        Some(e)
    }

    /// The live value for `key`.
    pub fn get(&mut self, key: &[u8], now: Instant) -> Option<&[u8]> {
        self.entry(key, now).map(|e| &e.value[..])
    }

    /// The live value for `key`, shared (a reference count, not a copy).
    pub fn get_shared(&mut self, key: &[u8], now: Instant) -> Option<&Arc<[u8]>> {
        self.entry(key, now).map(|e| &e.value)
    }

    /// Whether `key` exists (and is not expired).
    pub fn contains(&mut self, key: &[u8], now: Instant) -> bool {
        self.entry(key, now).is_some()
    }

    fn track(&mut self, key: &[u8], at: Instant) {
        self.deadlines.push(Reverse((at, key.to_vec())));
        // Stale heap items (overwritten deadlines) are dropped lazily; rebuild
        // when they dominate so the heap stays O(keys).
        if self.deadlines.len() > 2 * self.map.len() + 1024 {
            self.deadlines = self
                .map
                .iter()
                .filter_map(|(k, e)| e.expires_at.map(|t| Reverse((t, k.clone()))))
                .collect();
        }
    }

    /// Writes `value` under `key` if `cond` holds, applying `expiry`.
    /// Returns whether the write happened.
    pub fn set_with(
        &mut self,
        key: &[u8],
        value: &[u8],
        cond: SetCondition,
        expiry: SetExpiry,
        now: Instant,
    ) -> bool {
        let existing = self.entry(key, now);
        let allowed = match cond {
            SetCondition::Always => true,
            SetCondition::IfAbsent => existing.is_none(),
            SetCondition::IfPresent => existing.is_some(),
        };
        if !allowed {
            return false;
        }
        let new_deadline = match expiry {
            SetExpiry::Clear => None,
            SetExpiry::At(t) => Some(t),
            SetExpiry::Keep => existing.as_ref().and_then(|e| e.expires_at),
        };
        match existing {
            Some(e) => {
                overwrite(&mut e.value, value);
                e.expires_at = new_deadline;
            }
            None => {
                self.map.insert(
                    key.to_vec(),
                    Entry {
                        value: Arc::from(value),
                        expires_at: new_deadline,
                    },
                );
            }
        }
        if let SetExpiry::At(t) = expiry {
            self.track(key, t);
        }
        true
    }

    /// Plain `SET`: writes `value` under `key` with no deadline.
    pub fn set(&mut self, key: &[u8], value: &[u8], now: Instant) {
        self.set_with(key, value, SetCondition::Always, SetExpiry::Clear, now);
    }

    /// Deletes `key`; returns whether a live key was removed.
    pub fn remove(&mut self, key: &[u8], now: Instant) -> bool {
        match self.map.remove(key) {
            Some(e) => !e.is_expired(now),
            None => false,
        }
    }

    /// Adds `delta` to the integer stored at `key` (missing counts as 0),
    /// keeping its deadline. Returns the new value.
    pub fn incr_by(&mut self, key: &[u8], delta: i64, now: Instant) -> Result<i64, IncrError> {
        let mut buf = itoa::Buffer::new();
        match self.entry(key, now) {
            Some(e) => {
                let cur = super::parser::parse_i64(&e.value).ok_or(IncrError::NotInteger)?;
                let new = cur.checked_add(delta).ok_or(IncrError::Overflow)?;
                overwrite(&mut e.value, buf.format(new).as_bytes());
                Ok(new)
            }
            None => {
                self.map.insert(
                    key.to_vec(),
                    Entry {
                        value: Arc::from(buf.format(delta).as_bytes()),
                        expires_at: None,
                    },
                );
                Ok(delta)
            }
        }
    }

    /// Sets (or with `None` removes) the deadline of a live `key`; a
    /// deadline at or before `now` deletes the key. Returns whether the key
    /// existed.
    pub fn set_expiry(&mut self, key: &[u8], at: Option<Instant>, now: Instant) -> bool {
        let Some(e) = self.entry(key, now) else {
            return false;
        };
        e.expires_at = at;
        match at {
            Some(t) if t <= now => {
                self.map.remove(key);
            }
            Some(t) => self.track(key, t),
            None => {}
        }
        true
    }

    /// The remaining time to live of `key`.
    pub fn ttl(&mut self, key: &[u8], now: Instant) -> Ttl {
        match self.entry(key, now) {
            None => Ttl::Missing,
            Some(Entry {
                expires_at: None, ..
            }) => Ttl::Persistent,
            Some(Entry {
                expires_at: Some(t),
                ..
            }) => Ttl::Remaining(t.saturating_duration_since(now)),
        }
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.map.clear();
        self.deadlines.clear();
    }

    /// Removes keys whose deadline passed, examining at most `budget`
    /// deadlines (soonest first) so a tick stays bounded. Returns how many
    /// keys were removed.
    pub fn purge_expired(&mut self, now: Instant, budget: usize) -> usize {
        let mut removed = 0;
        for _ in 0..budget {
            match self.deadlines.peek() {
                Some(Reverse((t, _))) if *t <= now => {}
                _ => break,
            }
            let Some(Reverse((t, key))) = self.deadlines.pop() else {
                break;
            };
            // Skip stale heap items: the key's deadline may have changed.
            if self.map.get(&key).is_some_and(|e| e.expires_at == Some(t)) {
                self.map.remove(&key);
                removed += 1;
            }
        }
        removed
    }
}

/// Replaces a stored value: in place when no reply holds it and the length
/// is unchanged (a steady `SET` of same-sized values allocates nothing),
/// otherwise in a new allocation.
fn overwrite(slot: &mut Arc<[u8]>, value: &[u8]) {
    match Arc::get_mut(slot) {
        Some(bytes) if bytes.len() == value.len() => bytes.copy_from_slice(value),
        _ => *slot = Arc::from(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn set_conditions_and_keepttl() {
        let t = Instant::now();
        let mut s = Store::new();
        assert!(!s.set_with(b"k", b"1", SetCondition::IfPresent, SetExpiry::Clear, t));
        assert!(s.set_with(
            b"k",
            b"1",
            SetCondition::IfAbsent,
            SetExpiry::At(t + secs(10)),
            t
        ));
        assert!(!s.set_with(b"k", b"2", SetCondition::IfAbsent, SetExpiry::Clear, t));
        assert!(s.set_with(b"k", b"3", SetCondition::IfPresent, SetExpiry::Keep, t));
        assert_eq!(s.ttl(b"k", t + secs(4)), Ttl::Remaining(secs(6)));
        s.set(b"k", b"4", t);
        assert_eq!(s.ttl(b"k", t), Ttl::Persistent);
        assert_eq!(s.ttl(b"nope", t), Ttl::Missing);
    }

    #[test]
    fn lazy_and_active_expiry() {
        let t = Instant::now();
        let mut s = Store::new();
        for i in 0..10u8 {
            s.set_with(
                &[i],
                b"v",
                SetCondition::Always,
                SetExpiry::At(t + secs(u64::from(i) + 1)),
                t,
            );
        }
        s.set(b"forever", b"v", t);
        // Re-deadline key 0 far away: its old heap item is stale.
        assert!(s.set_expiry(&[0], Some(t + secs(100)), t));
        assert_eq!(s.len(), 11);
        assert_eq!(s.purge_expired(t + secs(5), 3), 2); // keys 1,2 (0 is stale)
        assert_eq!(s.purge_expired(t + secs(5), 100), 2); // keys 3,4
        assert_eq!(s.len(), 7);
        assert!(!s.contains(&[9], t + secs(10)));
        // An expired key read is absent at once; its value is dropped, the
        // key goes at the next purge.
        assert_eq!(s.map[&[9][..]].value.len(), 0);
        assert_eq!(s.len(), 7);
        assert_eq!(s.purge_expired(t + secs(10), 100), 5); // keys 5..=9
        assert_eq!(s.len(), 2);
        assert!(s.contains(&[0], t + secs(10)));
        assert!(!s.remove(&[8], t + secs(20)));
        assert!(s.set_expiry(b"forever", Some(t), t));
        assert!(!s.contains(b"forever", t));
    }

    #[test]
    fn incr() {
        let t = Instant::now();
        let mut s = Store::new();
        assert_eq!(s.incr_by(b"n", 5, t), Ok(5));
        assert_eq!(s.incr_by(b"n", -7, t), Ok(-2));
        assert_eq!(s.get(b"n", t), Some(&b"-2"[..]));
        s.set(b"x", b"abc", t);
        assert_eq!(s.incr_by(b"x", 1, t), Err(IncrError::NotInteger));
        s.set(b"m", b"9223372036854775807", t);
        assert_eq!(s.incr_by(b"m", 1, t), Err(IncrError::Overflow));
    }

    #[test]
    fn heap_rebuild_bounds_growth() {
        let t = Instant::now();
        let mut s = Store::new();
        for i in 0..5000u64 {
            s.set_with(
                b"k",
                b"v",
                SetCondition::Always,
                SetExpiry::At(t + secs(i + 1)),
                t,
            );
        }
        assert!(s.deadlines.len() <= 1026);
        s.clear();
        assert!(s.is_empty());
    }
}
