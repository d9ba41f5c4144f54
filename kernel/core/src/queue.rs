//! Fixed-capacity FIFO queues for the kernel's IPC (processes waiting to send
//! to a process, notices waiting for `receive`, network messages waiting for
//! their service). They never allocate: a push onto a full queue is refused
//! and the item handed back, for the caller to count and report.

use heapless::Deque;

/// A first-in first-out queue of at most `N` items.
pub struct Queue<T, const N: usize>(Deque<T, N>);

impl<T, const N: usize> Default for Queue<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Queue<T, N> {
    /// An empty queue (usable in `const` and `static` initialisers).
    pub const fn new() -> Self {
        Queue(Deque::new())
    }

    /// Appends `item`. Errors: the queue is full; `item` is handed back.
    pub fn push_back(&mut self, item: T) -> Result<(), T> {
        self.0.push_back(item)
    }

    /// Removes and returns the oldest item.
    pub fn pop_front(&mut self) -> Option<T> {
        self.0.pop_front()
    }

    /// Number of items queued.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when a push would be refused.
    pub fn is_full(&self) -> bool {
        self.0.is_full()
    }

    /// The items, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter()
    }

    /// Removes and returns the item at `index` (0 is the oldest), keeping the
    /// order of the others; `None` if `index` is out of range.
    pub fn remove(&mut self, index: usize) -> Option<T> {
        if index >= self.0.len() {
            return None;
        }
        let mut removed = None;
        for i in 0..self.0.len() {
            let item = self.0.pop_front()?;
            if i == index {
                removed = Some(item);
            } else {
                // Cannot fail: one item was taken out before each push.
                let _ = self.0.push_back(item);
            }
        }
        removed
    }

    /// Removes and returns the oldest item for which `f` holds.
    pub fn take_first(&mut self, f: impl FnMut(&T) -> bool) -> Option<T> {
        let index = self.0.iter().position(f)?;
        self.remove(index)
    }

    /// Keeps only the items for which `f` holds, in their order.
    pub fn retain(&mut self, mut f: impl FnMut(&T) -> bool) {
        for _ in 0..self.0.len() {
            if let Some(item) = self.0.pop_front()
                && f(&item)
            {
                // Cannot fail: one item was taken out before each push.
                let _ = self.0.push_back(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items<const N: usize>(q: &Queue<u32, N>) -> heapless::Vec<u32, N> {
        q.iter().copied().collect()
    }

    #[test]
    fn refuses_when_full_and_hands_the_item_back() {
        let mut q: Queue<u32, 3> = Queue::new();
        for i in 0..3 {
            assert_eq!(q.push_back(i), Ok(()));
        }
        assert!(q.is_full());
        assert_eq!(q.push_back(9), Err(9));
        assert_eq!(q.pop_front(), Some(0));
        assert_eq!(q.push_back(3), Ok(()));
        assert_eq!(items(&q).as_slice(), &[1, 2, 3]);
    }

    #[test]
    fn remove_keeps_order_across_wraparound() {
        let mut q: Queue<u32, 4> = Queue::new();
        for i in 0..4 {
            q.push_back(i).unwrap();
        }
        q.pop_front();
        q.pop_front();
        q.push_back(4).unwrap();
        q.push_back(5).unwrap();
        assert_eq!(q.remove(1), Some(3));
        assert_eq!(items(&q).as_slice(), &[2, 4, 5]);
        assert_eq!(q.remove(3), None);
        assert_eq!(q.take_first(|x| x % 2 == 1), Some(5));
        assert_eq!(q.take_first(|x| *x > 10), None);
        assert_eq!(items(&q).as_slice(), &[2, 4]);
    }

    #[test]
    fn retain_filters_in_order() {
        let mut q: Queue<u32, 8> = Queue::new();
        for i in 0..8 {
            q.push_back(i).unwrap();
        }
        q.retain(|x| x % 3 != 0);
        assert_eq!(items(&q).as_slice(), &[1, 2, 4, 5, 7]);
        q.retain(|_| false);
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
    }
}
