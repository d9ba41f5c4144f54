//! The membership table: every other member's entry, compact, so that a view of
//! 10,000 members costs well under 100 bytes per entry.
//!
//! Entries live densely in a vector (O(1) random choice, for probe relays and
//! placement candidates) with an id-ordered index (O(log N) lookup, ordered
//! views, id ranges for view transfers). SWIM's round-robin probe order (§4.3) is
//! a random affine permutation of the vector's slots, drawn anew every round, so
//! it needs no memory of its own.
//!
//! A table may also start from a [`SharedView`]: an immutable id-sorted array of
//! entries that many members hold through one [`Arc`] (a simulation of 10,000
//! members would otherwise hold 10⁸ entries, about 8 GB). The table then keeps
//! only what is its own: a 4-byte "last heard" per shared entry, a bit per shared
//! entry it dropped, its own copy of each shared entry it changed (copy on write,
//! entry by entry) and, as without a shared view, the members it learned itself.
//! Lookups, ranges, random choice and the round robin see one table either way.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::iter::Peekable;
use core::ops::{Bound, RangeInclusive};
use core::time::Duration;

use crate::member::{MemberInfo, Status};
use crate::node::{Addr, Name, NodeId, NodeState, Role};
use crate::time::Instant;

/// One other member, as stored.
#[derive(Clone)]
pub(crate) struct Entry {
    pub id: NodeId,
    /// Its run.
    pub incarnation: u64,
    pub state: NodeState,
    /// SWIM incarnation number within the run, saturated at `u32::MAX` (4·10⁹
    /// refutations or state changes of one run).
    seq: u32,
    /// Centiseconds since the table's epoch (saturating: 497 days); unused for
    /// entries of a shared view (the table keeps theirs apart).
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

    /// True if the member's name is `name`.
    pub fn has_name(&self, name: &Name) -> bool {
        match &self.name {
            Some(n) => **n == *name,
            None => *name == Name::derive(self.id),
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

/// A view that many members start from and share until they change it
/// ([`Member::with_view`](crate::Member::with_view)): immutable entries sorted by
/// id, behind one reference count. Cloning it is O(1).
#[derive(Clone)]
pub struct SharedView {
    entries: Arc<[Entry]>,
}

impl SharedView {
    /// The view holding `members` (alive, at SWIM incarnation number 0; a later
    /// duplicate of an id is dropped). O(N log N).
    pub fn new(members: impl IntoIterator<Item = MemberInfo>) -> SharedView {
        let mut v: Vec<Entry> = members
            .into_iter()
            .map(|m| Entry::new(m.id, m.incarnation, 0, m.role, &m.name, m.addr, m.state))
            .collect();
        v.sort_by_key(|e| e.id);
        v.dedup_by_key(|e| e.id);
        SharedView { entries: v.into() }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if it holds nobody.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
    /// The shared view the table started from (sorted by id), if any.
    base: Option<Arc<[Entry]>>,
    /// Last heard (as [`Entry::heard`]) per slot of `base`.
    base_heard: Vec<u32>,
    /// One bit per slot of `base`: dropped from this table.
    base_gone: Vec<u64>,
    base_gone_count: usize,
    /// This table's own copies of the `base` entries it changed, by slot.
    changed: BTreeMap<u32, Entry>,
    /// Members learned by this table itself (never in `base`'s live slots).
    entries: Vec<Entry>,
    index: BTreeMap<NodeId, u32>,
    suspects: usize,
    epoch: Instant,
    round: Round,
}

/// Where an entry lives.
#[derive(Clone, Copy)]
enum Slot {
    Own(usize),
    Base(usize),
}

impl Table {
    pub fn new(epoch: Instant) -> Table {
        Table {
            base: None,
            base_heard: Vec::new(),
            base_gone: Vec::new(),
            base_gone_count: 0,
            changed: BTreeMap::new(),
            entries: Vec::new(),
            index: BTreeMap::new(),
            suspects: 0,
            epoch,
            round: Round::default(),
        }
    }

    /// Starts the table from `view`, less `me`, every member heard at `now`. Only on
    /// an empty table without a shared view (otherwise nothing happens).
    pub fn seed(&mut self, view: &SharedView, me: NodeId, now: Instant) {
        if self.base.is_some() || !self.entries.is_empty() {
            return;
        }
        let n = view.entries.len();
        self.base = Some(Arc::clone(&view.entries));
        self.base_heard = vec![self.centis(now); n];
        self.base_gone = vec![0; n.div_ceil(64)];
        if let Ok(s) = view.entries.binary_search_by_key(&me, |e| e.id) {
            self.set_gone(s);
        }
    }

    fn base(&self) -> &[Entry] {
        self.base.as_deref().unwrap_or(&[])
    }

    fn gone(&self, s: usize) -> bool {
        self.base_gone
            .get(s / 64)
            .is_some_and(|w| (w >> (s % 64)) & 1 == 1)
    }

    fn set_gone(&mut self, s: usize) {
        self.base_gone[s / 64] |= 1 << (s % 64);
        self.base_gone_count += 1;
    }

    fn base_entry(&self, s: usize) -> &Entry {
        self.changed
            .get(&(s as u32))
            .unwrap_or_else(|| &self.base()[s])
    }

    fn slot(&self, id: NodeId) -> Option<Slot> {
        if let Some(&i) = self.index.get(&id) {
            return Some(Slot::Own(i as usize));
        }
        self.base()
            .binary_search_by_key(&id, |e| e.id)
            .ok()
            .filter(|&s| !self.gone(s))
            .map(Slot::Base)
    }

    pub fn len(&self) -> usize {
        self.entries.len() + self.base().len() - self.base_gone_count
    }

    pub fn suspects(&self) -> usize {
        self.suspects
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.slot(id).is_some()
    }

    pub fn get(&self, id: NodeId) -> Option<&Entry> {
        match self.slot(id)? {
            Slot::Own(i) => Some(&self.entries[i]),
            Slot::Base(s) => Some(self.base_entry(s)),
        }
    }

    /// The entry of `id` to change; an entry of the shared view is copied first,
    /// so callers change only what differs.
    pub fn get_mut(&mut self, id: NodeId) -> Option<&mut Entry> {
        match self.slot(id)? {
            Slot::Own(i) => Some(&mut self.entries[i]),
            Slot::Base(s) => {
                let base = self.base.as_deref().unwrap_or(&[]);
                Some(
                    self.changed
                        .entry(s as u32)
                        .or_insert_with(|| base[s].clone()),
                )
            }
        }
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
        self.entries[last].heard = self.centis(now);
    }

    pub fn remove(&mut self, id: NodeId) -> Option<Entry> {
        let e = match self.slot(id)? {
            Slot::Own(slot) => {
                self.index.remove(&id);
                let e = self.entries.swap_remove(slot);
                if let Some(moved) = self.entries.get(slot) {
                    self.index.insert(moved.id, slot as u32);
                }
                e
            }
            Slot::Base(s) => {
                self.set_gone(s);
                let mut e = self
                    .changed
                    .remove(&(s as u32))
                    .unwrap_or_else(|| self.base()[s].clone());
                e.heard = self.base_heard[s];
                e
            }
        };
        if e.status == Status::Suspect {
            self.suspects -= 1;
        }
        Some(e)
    }

    /// Sets a member's status; true if it changed.
    pub fn set_status(&mut self, id: NodeId, status: Status) -> bool {
        if self.get(id).is_none_or(|e| e.status == status) {
            return false;
        }
        if let Some(e) = self.get_mut(id) {
            e.status = status;
        }
        match status {
            Status::Suspect => self.suspects += 1,
            Status::Alive => self.suspects -= 1,
        }
        true
    }

    /// Records that `id` was heard from (or about) at `now`.
    pub fn heard(&mut self, id: NodeId, now: Instant) {
        let cs = self.centis(now);
        match self.slot(id) {
            Some(Slot::Own(i)) => self.entries[i].heard = cs,
            Some(Slot::Base(s)) => self.base_heard[s] = cs,
            None => {}
        }
    }

    fn centis(&self, now: Instant) -> u32 {
        let cs = now.saturating_duration_since(self.epoch).as_millis() / 10;
        u32::try_from(cs).unwrap_or(u32::MAX)
    }

    pub fn info(&self, e: &Entry) -> MemberInfo {
        let heard = match self.slot(e.id) {
            Some(Slot::Base(s)) => self.base_heard[s],
            _ => e.heard,
        };
        MemberInfo {
            id: e.id,
            name: e.name(),
            role: e.role,
            addr: e.addr,
            state: e.state,
            status: e.status,
            incarnation: e.incarnation,
            last_heard: self.epoch + Duration::from_millis(u64::from(heard) * 10),
        }
    }

    /// The entry at virtual slot `v` (shared view's slots first, then our own),
    /// unless it was dropped.
    fn at(&self, v: usize) -> Option<&Entry> {
        let b = self.base().len();
        if v < b {
            (!self.gone(v)).then(|| self.base_entry(v))
        } else {
            self.entries.get(v - b)
        }
    }

    /// A member chosen uniformly at random (with a shared view of which more than
    /// 98 % was dropped, possibly the first in id order instead).
    pub fn random(&self, rng: &mut fastrand::Rng) -> Option<&Entry> {
        if self.len() == 0 {
            return None;
        }
        let slots = self.base().len() + self.entries.len();
        for _ in 0..64 {
            if let Some(e) = self.at(rng.usize(..slots)) {
                return Some(e);
            }
        }
        self.ordered().next()
    }

    /// Entries with ids within the bounds, in id order: the shared view's and our
    /// own, merged.
    fn bounded(&self, lo: Bound<NodeId>, hi: Bound<NodeId>) -> impl Iterator<Item = &Entry> + '_ {
        let base = self.base();
        let start = match lo {
            Bound::Unbounded => 0,
            Bound::Included(id) => base.partition_point(|e| e.id < id),
            Bound::Excluded(id) => base.partition_point(|e| e.id <= id),
        };
        let end = match hi {
            Bound::Unbounded => base.len(),
            Bound::Included(id) => base.partition_point(|e| e.id <= id),
            Bound::Excluded(id) => base.partition_point(|e| e.id < id),
        };
        let shared = (start..end.max(start))
            .filter(move |&s| !self.gone(s))
            .map(move |s| self.base_entry(s));
        let own = self
            .index
            .range((lo, hi))
            .map(move |(_, &i)| &self.entries[i as usize]);
        Merge {
            a: shared.peekable(),
            b: own.peekable(),
        }
    }

    /// Entries in id order.
    pub fn ordered(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.bounded(Bound::Unbounded, Bound::Unbounded)
    }

    /// Entries with ids in `range` (non-empty), in id order.
    pub fn range(&self, range: RangeInclusive<NodeId>) -> impl Iterator<Item = &Entry> + '_ {
        let (lo, hi) = range.into_inner();
        self.bounded(Bound::Included(lo), Bound::Included(hi))
    }

    /// Entries with ids above `id`, in id order.
    pub fn after(&self, id: NodeId) -> impl Iterator<Item = &Entry> + '_ {
        self.bounded(Bound::Excluded(id), Bound::Unbounded)
    }

    /// Entries with ids below `id`, in id order.
    pub fn before(&self, id: NodeId) -> impl Iterator<Item = &Entry> + '_ {
        self.bounded(Bound::Unbounded, Bound::Excluded(id))
    }

    /// The next member of SWIM's round-robin (§4.3): every member once per round,
    /// in an order drawn at random for each round.
    pub fn next_in_round(&mut self, rng: &mut fastrand::Rng) -> Option<NodeId> {
        if self.len() == 0 {
            return None;
        }
        let slots = self.base().len() + self.entries.len();
        loop {
            if self.round.i >= self.round.len || self.round.len != slots {
                // A new round (or the table changed size): a random affine permutation.
                let mut a = rng.usize(1..=slots);
                while gcd(a, slots) != 1 {
                    a = a % slots + 1;
                }
                self.round = Round {
                    a,
                    b: rng.usize(..slots),
                    i: 0,
                    len: slots,
                };
            }
            let r = &mut self.round;
            let v = (r.a.wrapping_mul(r.i).wrapping_add(r.b)) % slots;
            r.i += 1;
            if let Some(e) = self.at(v) {
                return Some(e.id);
            }
        }
    }
}

/// Two id-ordered iterators without common ids, merged in id order.
struct Merge<'a, A: Iterator<Item = &'a Entry>, B: Iterator<Item = &'a Entry>> {
    a: Peekable<A>,
    b: Peekable<B>,
}

impl<'a, A: Iterator<Item = &'a Entry>, B: Iterator<Item = &'a Entry>> Iterator
    for Merge<'a, A, B>
{
    type Item = &'a Entry;

    fn next(&mut self) -> Option<&'a Entry> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if x.id < y.id => self.a.next(),
            (Some(_), Some(_)) | (None, _) => self.b.next(),
            (Some(_), None) => self.a.next(),
        }
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
        // 56 bytes until the node's CPU counts (two bytes) joined its state,
        // which the alignment of its `free_mem` rounds up to eight.
        assert!(
            core::mem::size_of::<Entry>() <= 64,
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

    fn shared(ids: impl IntoIterator<Item = u64>) -> SharedView {
        SharedView::new(ids.into_iter().map(|i| {
            let t = Table::new(Instant::ZERO);
            t.info(&entry(i))
        }))
    }

    fn ids(t: &Table) -> Vec<u64> {
        t.ordered().map(|e| e.id.as_u64()).collect()
    }

    #[test]
    fn a_shared_view_reads_as_one_table_less_the_owner() {
        let view = shared([10, 20, 30, 40, 50]);
        let mut t = Table::new(Instant::ZERO);
        t.seed(&view, NodeId::from_u64(30), Instant::ZERO);
        assert_eq!(t.len(), 4);
        assert!(!t.contains(NodeId::from_u64(30)));
        assert_eq!(ids(&t), [10, 20, 40, 50]);
        // Own members merge in id order with the shared ones.
        t.insert(entry(25), Instant::ZERO);
        t.insert(entry(60), Instant::ZERO);
        assert_eq!(ids(&t), [10, 20, 25, 40, 50, 60]);
        let range: Vec<u64> = t
            .range(NodeId::from_u64(20)..=NodeId::from_u64(40))
            .map(|e| e.id.as_u64())
            .collect();
        assert_eq!(range, [20, 25, 40]);
        let after: Vec<u64> = t
            .after(NodeId::from_u64(25))
            .map(|e| e.id.as_u64())
            .collect();
        assert_eq!(after, [40, 50, 60]);
        let before: Vec<u64> = t
            .before(NodeId::from_u64(40))
            .map(|e| e.id.as_u64())
            .collect();
        assert_eq!(before, [10, 20, 25]);
        // A shared member dropped, then back as our own (a new run).
        assert_eq!(t.remove(NodeId::from_u64(20)).unwrap().id.as_u64(), 20);
        assert!(!t.contains(NodeId::from_u64(20)));
        assert_eq!(t.len(), 5);
        t.insert(entry(20), Instant::ZERO);
        assert_eq!(ids(&t), [10, 20, 25, 40, 50, 60]);
        let mut rng = fastrand::Rng::with_seed(9);
        for _ in 0..3 {
            let mut seen: Vec<u64> = (0..6)
                .map(|_| t.next_in_round(&mut rng).unwrap().as_u64())
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, [10, 20, 25, 40, 50, 60]);
        }
        for _ in 0..50 {
            let id = t.random(&mut rng).unwrap().id;
            assert!(t.contains(id));
        }
    }

    #[test]
    fn a_change_to_a_shared_entry_stays_in_its_table() {
        let view = shared([1, 2, 3]);
        let (mut a, mut b) = (Table::new(Instant::ZERO), Table::new(Instant::ZERO));
        a.seed(&view, NodeId::from_u64(1), Instant::ZERO);
        b.seed(&view, NodeId::from_u64(2), Instant::ZERO);
        let three = NodeId::from_u64(3);
        assert!(a.set_status(three, Status::Suspect));
        assert_eq!(a.suspects(), 1);
        a.get_mut(three).unwrap().set_seq(7);
        a.heard(three, Instant::from_secs(5));
        assert_eq!(a.get(three).unwrap().status, Status::Suspect);
        assert_eq!(a.get(three).unwrap().seq(), 7);
        assert_eq!(
            a.info(a.get(three).unwrap()).last_heard,
            Instant::from_secs(5)
        );
        assert_eq!(b.get(three).unwrap().status, Status::Alive);
        assert_eq!(b.get(three).unwrap().seq(), 0);
        assert_eq!(b.info(b.get(three).unwrap()).last_heard, Instant::ZERO);
        assert_eq!(a.remove(three).unwrap().seq(), 7);
        assert_eq!(a.suspects(), 0);
        assert!(b.contains(three));
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
