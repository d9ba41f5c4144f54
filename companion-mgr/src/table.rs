//! The membership table: every other member's entry, compact, so that a view of
//! 10,000 members costs well under 100 bytes per entry (a simulation of 10,000
//! members holds 10⁸ entries).
//!
//! Entries live densely in a vector (O(1) random choice, for probe relays and
//! placement candidates) with an id-ordered index (O(log N) lookup, ordered
//! views, id ranges for view transfers). SWIM's round-robin probe order (§4.3) is
//! a random affine permutation of the vector's slots, drawn anew every round, so
//! it needs no memory of its own.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ops::RangeInclusive;
use core::time::Duration;

use crate::member::{MemberInfo, Status};
use crate::node::{Addr, Name, NodeId, NodeState, Role};
use crate::time::Instant;

/// One other member, as stored.
pub(crate) struct Entry {
    pub id: NodeId,
    /// Its run.
    pub incarnation: u64,
    pub state: NodeState,
    /// SWIM incarnation number within the run, saturated at `u32::MAX` (4·10⁹
    /// refutations or state changes of one run).
    seq: u32,
    /// Centiseconds since the table's epoch (saturating: 497 days).
    heard: u32,
    pub addr: Addr,
    pub role: Role,
    pub status: Status,
    /// `None` when the name is the one [`Name::derive`] gives.
    name: Option<Box<Name>>,
}

impl Entry {
    /// A new entry.
    pub fn new(
        id: NodeId,
        incarnation: u64,
        seq: u64,
        role: Role,
        name: &Name,
        addr: Addr,
        state: NodeState,
    ) -> Entry {
        let mut e = Entry {
            id,
            incarnation,
            state,
            seq: 0,
            heard: 0,
            addr,
            role,
            status: Status::Alive,
            name: None,
        };
        e.set_seq(seq);
        e.set_name(name);
        e
    }

    pub fn seq(&self) -> u64 {
        u64::from(self.seq)
    }

    pub fn set_seq(&mut self, seq: u64) {
        self.seq = u32::try_from(seq).unwrap_or(u32::MAX);
    }

    pub fn name(&self) -> Name {
        match &self.name {
            Some(n) => Name::clone(n),
            None => Name::derive(self.id),
        }
    }

    pub fn set_name(&mut self, name: &Name) {
        let custom = self.name.as_deref().is_some_and(|n| n == name);
        if custom {
            return;
        }
        self.name = if *name == Name::derive(self.id) {
            None
        } else {
            Some(Box::new(name.clone()))
        };
    }
}

/// A round of SWIM's round-robin: slot `(a·i + b) mod len` for `i` in `0..len`.
#[derive(Clone, Copy, Default)]
struct Round {
    a: usize,
    b: usize,
    i: usize,
    len: usize,
}

pub(crate) struct Table {
    entries: Vec<Entry>,
    index: BTreeMap<NodeId, u32>,
    suspects: usize,
    epoch: Instant,
    round: Round,
}

impl Table {
    pub fn new(epoch: Instant) -> Table {
        Table {
            entries: Vec::new(),
            index: BTreeMap::new(),
            suspects: 0,
            epoch,
            round: Round::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn suspects(&self) -> usize {
        self.suspects
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.index.contains_key(&id)
    }

    pub fn get(&self, id: NodeId) -> Option<&Entry> {
        self.index.get(&id).map(|&i| &self.entries[i as usize])
    }

    pub fn get_mut(&mut self, id: NodeId) -> Option<&mut Entry> {
        self.index.get(&id).map(|&i| &mut self.entries[i as usize])
    }

    /// Inserts a new member (the caller checked it is not there).
    pub fn insert(&mut self, e: Entry, now: Instant) {
        if self.entries.len() == self.entries.capacity() {
            // Grow by a quarter: a view of N entries wastes at most N/4.
            self.entries.reserve_exact(self.entries.len() / 4 + 4);
        }
        let slot = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        if e.status == Status::Suspect {
            self.suspects += 1;
        }
        self.index.insert(e.id, slot);
        self.entries.push(e);
        let last = self.entries.len() - 1;
        self.touch(last, now);
    }

    pub fn remove(&mut self, id: NodeId) -> Option<Entry> {
        let slot = self.index.remove(&id)? as usize;
        let e = self.entries.swap_remove(slot);
        if let Some(moved) = self.entries.get(slot) {
            self.index.insert(moved.id, slot as u32);
        }
        if e.status == Status::Suspect {
            self.suspects -= 1;
        }
        Some(e)
    }

    /// Sets a member's status; true if it changed.
    pub fn set_status(&mut self, id: NodeId, status: Status) -> bool {
        let Some(&slot) = self.index.get(&id) else {
            return false;
        };
        let e = &mut self.entries[slot as usize];
        if e.status == status {
            return false;
        }
        e.status = status;
        match status {
            Status::Suspect => self.suspects += 1,
            Status::Alive => self.suspects -= 1,
        }
        true
    }

    /// Records that `id` was heard from (or about) at `now`.
    pub fn heard(&mut self, id: NodeId, now: Instant) {
        if let Some(&slot) = self.index.get(&id) {
            self.touch(slot as usize, now);
        }
    }

    fn touch(&mut self, slot: usize, now: Instant) {
        let cs = now.saturating_duration_since(self.epoch).as_millis() / 10;
        self.entries[slot].heard = u32::try_from(cs).unwrap_or(u32::MAX);
    }

    pub fn info(&self, e: &Entry) -> MemberInfo {
        MemberInfo {
            id: e.id,
            name: e.name(),
            role: e.role,
            addr: e.addr,
            state: e.state,
            status: e.status,
            incarnation: e.incarnation,
            last_heard: self.epoch + Duration::from_millis(u64::from(e.heard) * 10),
        }
    }

    /// A member chosen uniformly at random.
    pub fn random(&self, rng: &mut fastrand::Rng) -> Option<&Entry> {
        if self.entries.is_empty() {
            None
        } else {
            Some(&self.entries[rng.usize(..self.entries.len())])
        }
    }

    /// Entries in id order.
    pub fn ordered(&self) -> impl DoubleEndedIterator<Item = &Entry> + '_ {
        self.index.values().map(|&i| &self.entries[i as usize])
    }

    /// Entries with ids in `range`, in id order.
    pub fn range(&self, range: RangeInclusive<NodeId>) -> impl Iterator<Item = &Entry> + '_ {
        self.index
            .range(range)
            .map(|(_, &i)| &self.entries[i as usize])
    }

    /// Entries with ids above `id`, in id order.
    pub fn after(&self, id: NodeId) -> impl Iterator<Item = &Entry> + '_ {
        use core::ops::Bound;
        self.index
            .range((Bound::Excluded(id), Bound::Unbounded))
            .map(|(_, &i)| &self.entries[i as usize])
    }

    /// Entries with ids below `id`, in id order.
    pub fn before(&self, id: NodeId) -> impl Iterator<Item = &Entry> + '_ {
        self.index
            .range(..id)
            .map(|(_, &i)| &self.entries[i as usize])
    }

    /// The next member of SWIM's round-robin (§4.3): every member once per round,
    /// in an order drawn at random for each round.
    pub fn next_in_round(&mut self, rng: &mut fastrand::Rng) -> Option<NodeId> {
        let len = self.entries.len();
        if len == 0 {
            return None;
        }
        if self.round.i >= self.round.len || self.round.len != len {
            // A new round (or the table changed size): a random affine permutation.
            let mut a = rng.usize(1..=len);
            while gcd(a, len) != 1 {
                a = a % len + 1;
            }
            self.round = Round {
                a,
                b: rng.usize(..len),
                i: 0,
                len,
            };
        }
        let r = &mut self.round;
        let slot = (r.a.wrapping_mul(r.i).wrapping_add(r.b)) % len;
        r.i += 1;
        Some(self.entries[slot].id)
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> Entry {
        let id = NodeId::from_u64(i);
        Entry::new(
            id,
            1,
            1,
            Role::Node,
            &Name::derive(id),
            Addr::default(),
            NodeState::default(),
        )
    }

    #[test]
    fn entries_stay_small() {
        assert!(
            core::mem::size_of::<Entry>() <= 56,
            "{}",
            core::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn insert_remove_keep_the_index_right() {
        let mut t = Table::new(Instant::ZERO);
        for i in [5, 1, 9, 3, 7] {
            t.insert(entry(i), Instant::ZERO);
        }
        assert!(t.remove(NodeId::from_u64(1)).is_some());
        assert!(t.remove(NodeId::from_u64(1)).is_none());
        let ids: Vec<u64> = t.ordered().map(|e| e.id.as_u64()).collect();
        assert_eq!(ids, [3, 5, 7, 9]);
        for id in ids {
            assert_eq!(t.get(NodeId::from_u64(id)).unwrap().id.as_u64(), id);
        }
        assert!(t.set_status(NodeId::from_u64(7), Status::Suspect));
        assert_eq!(t.suspects(), 1);
        t.remove(NodeId::from_u64(7));
        assert_eq!(t.suspects(), 0);
    }

    #[test]
    fn a_round_visits_every_member_once() {
        let mut t = Table::new(Instant::ZERO);
        for i in 0..12 {
            t.insert(entry(i), Instant::ZERO);
        }
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..5 {
            let mut seen: Vec<u64> = (0..12)
                .map(|_| t.next_in_round(&mut rng).unwrap().as_u64())
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..12).collect::<Vec<u64>>());
        }
    }

    #[test]
    fn derived_names_are_not_stored() {
        let id = NodeId::from_u64(42);
        let mut e = entry(42);
        assert!(e.name.is_none());
        e.set_name(&Name::new("custom").unwrap());
        assert_eq!(e.name().as_str(), "custom");
        e.set_name(&Name::derive(id));
        assert!(e.name.is_none());
    }
}
