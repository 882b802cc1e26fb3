//! A hashed timing wheel for per-connection timeouts.
//!
//! # Design
//! Time is cut into *ticks* of a fixed resolution (see
//! [`Options::timer_resolution`](crate::Options::timer_resolution)); a deadline is a
//! tick number. The wheel is a power-of-two array of slots; an entry due at tick
//! `t` lives in slot `t & mask`, so entries more than one revolution away share a
//! slot with nearer ones and are simply kept when their slot is visited early.
//!
//! * **Add** pushes `(key, at)` onto its slot's `Vec`: O(1), and allocation-free once
//!   the slot's vector has grown to its working size (vectors keep their capacity).
//! * **Cancel** is O(1) and touches nothing here: entries are *generation-checked with
//!   lazy deletion*. The owner remembers the one deadline it armed; an entry that is
//!   delivered but no longer matches (the connection closed — its slab generation
//!   changed, so the key differs — or it re-armed for another tick) is ignored by the
//!   owner. Stale entries leave the wheel the next time their slot is visited.
//! * **Advance** visits the slots of the elapsed ticks (at most one full revolution,
//!   however long the loop slept), hands every entry whose tick has come to the
//!   caller and keeps the others. The slot's vector is swapped with a spare one
//!   rather than reallocated, so a tick allocates nothing.
//! * **Next wake-up**: a bitmap of non-empty slots gives the first occupied slot at
//!   or after the current tick in at most `slots / 64` word tests. The loop blocks
//!   until then; with no entry at all it blocks without a timeout (no wake-ups).
//!
//! The connection side keeps timers cheap too: traffic only stamps the
//! connection's `last_rx`/`last_tx` tick (a store, no wheel operation); when its
//! single armed entry fires, the loop recomputes the real deadline and either
//! closes the connection or re-arms for the later tick.

/// A wheel entry: an opaque key (for connections, the slab token with its
/// generation) and the tick it is due at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: u64,
    pub(crate) at: u64,
}

/// The wheel. Slots are allocated on the first insert, so a loop that never arms
/// a timer holds none.
pub(crate) struct TimerWheel {
    slots: Vec<Vec<Entry>>,
    occupied: Vec<u64>,
    nslots: usize,
    /// Every tick before this one has been processed.
    current: u64,
    len: usize,
    spare: Vec<Entry>,
}

impl TimerWheel {
    /// A wheel of `nslots` slots (rounded up to a power of two, at least 64).
    pub(crate) fn new(nslots: usize) -> TimerWheel {
        let nslots = nslots.max(64).next_power_of_two();
        TimerWheel {
            slots: Vec::new(),
            occupied: Vec::new(),
            nslots,
            current: 0,
            len: 0,
            spare: Vec::new(),
        }
    }

    fn mask(&self) -> u64 {
        self.nslots as u64 - 1
    }

    /// Entries held, stale ones included.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is held (then the loop needs no timer wake-ups).
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds an entry due at tick `at` (an `at` already past is due at the next
    /// advance).
    pub(crate) fn insert(&mut self, key: u64, at: u64) {
        if self.slots.is_empty() {
            self.slots = (0..self.nslots).map(|_| Vec::new()).collect();
            self.occupied = vec![0; self.nslots / 64];
        }
        let slot = (at.max(self.current) & self.mask()) as usize;
        self.slots[slot].push(Entry { key, at });
        self.occupied[slot / 64] |= 1 << (slot % 64);
        self.len += 1;
    }

    /// Processes every tick up to and including `now`: entries due by then are
    /// appended to `due`, the others stay.
    pub(crate) fn advance(&mut self, now: u64, due: &mut Vec<Entry>) {
        if now < self.current {
            return;
        }
        if self.len == 0 {
            self.current = now + 1;
            return;
        }
        // However long the loop slept, each slot needs visiting at most once.
        let ticks = (now - self.current + 1).min(self.nslots as u64);
        let first = self.current;
        for t in first..first + ticks {
            let slot = (t & self.mask()) as usize;
            if self.occupied[slot / 64] & (1 << (slot % 64)) == 0 {
                continue;
            }
            let mut entries =
                std::mem::replace(&mut self.slots[slot], std::mem::take(&mut self.spare));
            for e in entries.drain(..) {
                if e.at <= now {
                    due.push(e);
                    self.len -= 1;
                } else {
                    self.slots[slot].push(e);
                }
            }
            self.spare = entries;
            if self.slots[slot].is_empty() {
                self.occupied[slot / 64] &= !(1 << (slot % 64));
            }
        }
        self.current = now + 1;
    }

    /// The first tick at or after the current one whose slot holds an entry: the
    /// loop must be awake by then. `None` when the wheel is empty.
    pub(crate) fn next_wake(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let start = (self.current & self.mask()) as usize;
        let words = self.occupied.len();
        // Scan the words circularly from the one holding `start`.
        for i in 0..=words {
            let w = (start / 64 + i) % words;
            let mut bits = self.occupied[w];
            if i == 0 {
                bits &= !0u64 << (start % 64); // slots before `start` in this word come last
            } else if i == words {
                bits &= (1u64 << (start % 64)).wrapping_sub(1);
            }
            if bits != 0 {
                let slot = w * 64 + bits.trailing_zeros() as usize;
                let dist = (slot + self.nslots - start) % self.nslots;
                return Some(self.current + dist as u64);
            }
        }
        Some(self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The wheel plus the owner-side bookkeeping (one armed tick per key), as the
    /// loop uses it.
    struct Owned {
        wheel: TimerWheel,
        armed: HashMap<u64, u64>,
        due: Vec<Entry>,
    }

    impl Owned {
        fn fire(&mut self, now: u64) -> Vec<u64> {
            self.due.clear();
            self.wheel.advance(now, &mut self.due);
            let mut fired = Vec::new();
            for e in &self.due {
                assert!(e.at <= now, "entry for {} delivered early", e.at);
                if self.armed.get(&e.key) == Some(&e.at) {
                    self.armed.remove(&e.key);
                    fired.push(e.key);
                }
            }
            fired.sort_unstable();
            fired
        }
    }

    #[test]
    fn fires_in_order_and_skips_stale() {
        let mut w = Owned {
            wheel: TimerWheel::new(64),
            armed: HashMap::new(),
            due: Vec::new(),
        };
        assert_eq!(w.wheel.next_wake(), None);
        for (k, at) in [(1, 5), (2, 70), (3, 200)] {
            w.wheel.insert(k, at);
            w.armed.insert(k, at);
        }
        assert_eq!(w.wheel.next_wake(), Some(5));
        assert_eq!(w.fire(4), Vec::<u64>::new());
        assert_eq!(w.fire(5), vec![1]);
        // 70 shares slot 6 with tick 6: the wheel wakes at 6 and keeps the entry.
        assert_eq!(w.wheel.next_wake(), Some(6));
        assert_eq!(w.fire(6), Vec::<u64>::new());
        w.armed.remove(&2); // cancel
        assert_eq!(w.fire(100), Vec::<u64>::new());
        assert_eq!(
            w.wheel.len(),
            1,
            "the cancelled entry left when its slot was visited"
        );
        assert_eq!(w.fire(10_000), vec![3], "a long sleep fires everything due");
        assert!(w.wheel.is_empty());
        assert_eq!(w.wheel.next_wake(), None);
    }

    #[test]
    fn past_deadline_is_due_at_once() {
        let mut wheel = TimerWheel::new(64);
        let mut due = Vec::new();
        wheel.advance(1000, &mut due);
        wheel.insert(7, 3);
        assert_eq!(wheel.next_wake(), Some(1001));
        wheel.advance(1001, &mut due);
        assert_eq!(due, vec![Entry { key: 7, at: 3 }]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Arm(u64, u64),
        Cancel(u64),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..32, 0u64..400).prop_map(|(k, d)| Op::Arm(k, d)),
            (0u64..32).prop_map(Op::Cancel),
            (0u64..150).prop_map(Op::Advance),
        ]
    }

    proptest! {
        /// Against a model (a map key → deadline): every armed key fires exactly at
        /// the first advance that reaches its deadline — never early, never lost,
        /// never after a cancel — and `next_wake` never sleeps past a due entry.
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..200)) {
            let mut w = Owned { wheel: TimerWheel::new(64), armed: HashMap::new(), due: Vec::new() };
            let mut model: HashMap<u64, u64> = HashMap::new();
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Arm(k, d) => {
                        let at = now + 1 + d;
                        w.wheel.insert(k, at);
                        w.armed.insert(k, at);
                        model.insert(k, at);
                    }
                    Op::Cancel(k) => {
                        w.armed.remove(&k);
                        model.remove(&k);
                    }
                    Op::Advance(d) => {
                        if let (Some(wake), Some(min)) = (w.wheel.next_wake(), model.values().min()) {
                            prop_assert!(wake <= *min, "next_wake {} is after a deadline {}", wake, min);
                        }
                        now += d;
                        let fired = w.fire(now);
                        let mut expect: Vec<u64> = model.iter().filter(|(_, at)| **at <= now).map(|(k, _)| *k).collect();
                        expect.sort_unstable();
                        model.retain(|_, at| *at > now);
                        prop_assert_eq!(fired, expect);
                    }
                }
                prop_assert!(w.wheel.len() >= model.len());
            }
        }
    }
}
