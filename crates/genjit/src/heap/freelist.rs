//! A first-fit free-list allocator over an abstract range of offsets.
//!
//! Both levels of the code heap use it: the heap carves generations out of its address-space reservation
//! (page granularity), and each generation carves module blocks out of itself (16-byte granularity). It hands
//! out offsets, never pointers, so it owns no memory and needs no `unsafe`.
//!
//! ## Invariants
//! - Free ranges are disjoint, non-adjacent (neighbours are always merged on free) and lie in
//!   `[0, capacity)`; `free_bytes` is their total.
//! - Every offset and length is a multiple of the granularity.
//!
//! First fit over a `BTreeMap` keeps the youngest allocations low in the range, so a generation that loses
//! its modules leaves long free tails whose whole pages can go back to the OS.

use super::align_up;
use std::collections::BTreeMap;

/// Offsets `[0, capacity)` handed out first-fit, aligned to a fixed granularity.
#[derive(Debug, Clone)]
pub struct FreeList {
    free: BTreeMap<usize, usize>,
    capacity: usize,
    granule: usize,
    free_bytes: usize,
}

impl FreeList {
    /// A list with all of `[0, capacity)` free. `granule` must be a power of two dividing `capacity`.
    pub fn new(capacity: usize, granule: usize) -> FreeList {
        assert!(granule.is_power_of_two() && capacity % granule == 0);
        let mut free = BTreeMap::new();
        if capacity > 0 {
            free.insert(0, capacity);
        }
        FreeList { free, capacity, granule, free_bytes: capacity }
    }

    /// Rounds a request up to the granularity.
    pub fn round(&self, len: usize) -> usize {
        align_up(len.max(1), self.granule)
    }

    /// Allocates `len` bytes (rounded up to the granularity) aligned to `align`; `None` if nothing fits.
    pub fn alloc(&mut self, len: usize, align: usize) -> Option<usize> {
        let len = self.round(len);
        let align = align.max(self.granule);
        let (start, free_len, at) = self.free.iter().find_map(|(&start, &free_len)| {
            let at = align_up(start, align);
            (at + len <= start + free_len).then_some((start, free_len, at))
        })?;
        self.free.remove(&start);
        if at > start {
            self.free.insert(start, at - start);
        }
        let end = at + len;
        if end < start + free_len {
            self.free.insert(end, start + free_len - end);
        }
        self.free_bytes -= len;
        Some(at)
    }

    /// Returns `[offset, offset+len)` (as allocated) to the list, merging it with free neighbours.
    pub fn free(&mut self, offset: usize, len: usize) {
        let len = self.round(len);
        assert!(offset + len <= self.capacity, "free outside the range");
        let mut start = offset;
        let mut end = offset + len;
        if let Some((&prev, &prev_len)) = self.free.range(..offset).next_back() {
            assert!(prev + prev_len <= offset, "double free at offset {offset}");
            if prev + prev_len == offset {
                self.free.remove(&prev);
                start = prev;
            }
        }
        if let Some((&next, &next_len)) = self.free.range(offset..).next() {
            assert!(next >= end, "double free at offset {offset}");
            if next == end {
                self.free.remove(&next);
                end = next + next_len;
            }
        }
        self.free.insert(start, end - start);
        self.free_bytes += len;
    }

    /// The free range containing `offset`, as `(start, len)`, if `offset` is free.
    pub fn extent(&self, offset: usize) -> Option<(usize, usize)> {
        let (&start, &len) = self.free.range(..=offset).next_back()?;
        (offset < start + len).then_some((start, len))
    }

    /// Number of disjoint free ranges.
    pub fn ranges(&self) -> usize {
        self.free.len()
    }

    /// Total free bytes.
    pub fn free_bytes(&self) -> usize {
        self.free_bytes
    }

    /// Size of the managed range.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// True when nothing is allocated.
    pub fn is_empty(&self) -> bool {
        self.free_bytes == self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn model(ops in proptest::collection::vec((any::<bool>(), 1usize..300, 0usize..4), 1..200)) {
            let mut list = FreeList::new(4096, 16);
            let mut live: Vec<(usize, usize)> = Vec::new();
            for (alloc, len, align_pow) in ops {
                if alloc || live.is_empty() {
                    let align = 16 << align_pow;
                    if let Some(at) = list.alloc(len, align) {
                        prop_assert_eq!(at % align, 0);
                        let rounded = list.round(len);
                        for &(o, l) in &live {
                            prop_assert!(at + rounded <= o || o + l <= at, "overlap");
                        }
                        live.push((at, rounded));
                    }
                } else {
                    let (o, l) = live.swap_remove(len % live.len());
                    list.free(o, l);
                    let (start, flen) = list.extent(o).expect("freed offset is free");
                    prop_assert!(start <= o && o + l <= start + flen);
                }
                let used: usize = live.iter().map(|&(_, l)| l).sum();
                prop_assert_eq!(list.free_bytes() + used, 4096);
            }
            for &(o, _) in &live {
                prop_assert!(list.extent(o).is_none(), "live offset reported free");
            }
            for (o, l) in live.drain(..) {
                list.free(o, l);
            }
            prop_assert!(list.is_empty());
            prop_assert_eq!(list.free.len(), 1, "free ranges not merged");
        }
    }
}
