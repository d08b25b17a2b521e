//! A free-list allocator over an abstract range of offsets, placing in O(log n).
//!
//! Both levels of the code heap use it: the heap carves generations out of its address-space reservation
//! (page granularity), and each generation carves module blocks out of itself (16-byte granularity). It hands
//! out offsets, never pointers, so it owns no memory and needs no `unsafe`.
//!
//! ## Invariants
//! - Free ranges are disjoint, non-adjacent (neighbours are always merged on free) and lie in
//!   `[0, capacity)`; `free_bytes` is their total.
//! - Every offset and length is a multiple of the granularity.
//! - `by_size` holds exactly the `(len, start)` of every range in `by_start`.
//!
//! ## Placement
//! Best fit: the smallest free range that holds the request, the lowest such range among equals, found
//! in the size index in O(log n). (The first version walked the ranges by address, first fit: after many
//! random removals an add scanned thousands of small holes, 4.6 us at 1k live modules and 12.9 us at 100k.)
//! An alignment above the granule first tries the ranges that fit only if suitably aligned (sizes from the
//! request up to request + alignment - granule: usually few, and none at the granule's alignment), then
//! takes the smallest range of at least that, which always fits. Best fit keeps large free ranges whole, so whole pages still go back to the OS as
//! generations empty.

use super::align_up;
use std::collections::{BTreeMap, BTreeSet};

/// Offsets `[0, capacity)` handed out best-fit, aligned to a fixed granularity.
#[derive(Debug, Clone)]
pub struct FreeList {
    /// Free ranges by start: `start -> len`.
    by_start: BTreeMap<usize, usize>,
    /// The same ranges by size: `(len, start)`.
    by_size: BTreeSet<(usize, usize)>,
    capacity: usize,
    granule: usize,
    free_bytes: usize,
}

impl FreeList {
    /// A list with all of `[0, capacity)` free. `granule` must be a power of two dividing `capacity`.
    pub fn new(capacity: usize, granule: usize) -> FreeList {
        assert!(granule.is_power_of_two() && capacity % granule == 0);
        let mut list = FreeList {
            by_start: BTreeMap::new(),
            by_size: BTreeSet::new(),
            capacity,
            granule,
            free_bytes: capacity,
        };
        if capacity > 0 {
            list.insert(0, capacity);
        }
        list
    }

    fn insert(&mut self, start: usize, len: usize) {
        self.by_start.insert(start, len);
        self.by_size.insert((len, start));
    }

    fn remove(&mut self, start: usize, len: usize) {
        self.by_start.remove(&start);
        self.by_size.remove(&(len, start));
    }

    /// Rounds a request up to the granularity.
    pub fn round(&self, len: usize) -> usize {
        align_up(len.max(1), self.granule)
    }

    /// The smallest range, lowest first among equals, with a size in `sizes` in which `len` bytes fit at
    /// `align`: its start, length and the aligned offset.
    fn fit(&self, sizes: std::ops::Range<usize>, len: usize, align: usize) -> Option<(usize, usize, usize)> {
        self.by_size.range((sizes.start, 0)..(sizes.end, 0)).find_map(|&(free_len, start)| {
            let at = align_up(start, align);
            (at + len <= start + free_len).then_some((start, free_len, at))
        })
    }

    /// Allocates `len` bytes (rounded up to the granularity) aligned to `align`; `None` if nothing fits.
    pub fn alloc(&mut self, len: usize, align: usize) -> Option<usize> {
        let len = self.round(len);
        let align = align.max(self.granule);
        // Any range of at least `sure` bytes holds the request however its start is aligned, so the
        // first candidate of that band fits: O(log n). Smaller ranges may fit if suitably aligned; they
        // are tried first (at the granule's alignment the band is empty and this is a single lookup).
        let sure = len + align - self.granule;
        let (start, free_len, at) =
            self.fit(len..sure, len, align).or_else(|| self.fit(sure..usize::MAX, len, align))?;
        self.remove(start, free_len);
        if at > start {
            self.insert(start, at - start);
        }
        let end = at + len;
        if end < start + free_len {
            self.insert(end, start + free_len - end);
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
        if let Some((&prev, &prev_len)) = self.by_start.range(..offset).next_back() {
            assert!(prev + prev_len <= offset, "double free at offset {offset}");
            if prev + prev_len == offset {
                self.remove(prev, prev_len);
                start = prev;
            }
        }
        if let Some((&next, &next_len)) = self.by_start.range(offset..).next() {
            assert!(next >= end, "double free at offset {offset}");
            if next == end {
                self.remove(next, next_len);
                end = next + next_len;
            }
        }
        self.insert(start, end - start);
        self.free_bytes += len;
    }

    /// The free range containing `offset`, as `(start, len)`, if `offset` is free.
    pub fn extent(&self, offset: usize) -> Option<(usize, usize)> {
        let (&start, &len) = self.by_start.range(..=offset).next_back()?;
        (offset < start + len).then_some((start, len))
    }

    /// Number of disjoint free ranges.
    pub fn ranges(&self) -> usize {
        self.by_start.len()
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
                    let fits_somewhere = list.by_start.iter().any(|(&s, &l)| align_up(s, align) + list.round(len) <= s + l);
                    let got = list.alloc(len, align);
                    prop_assert_eq!(got.is_some(), fits_somewhere, "placement must find any range that fits");
                    if let Some(at) = got {
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
                // The size index mirrors the address index.
                let mirrored: BTreeSet<(usize, usize)> = list.by_start.iter().map(|(&s, &l)| (l, s)).collect();
                prop_assert_eq!(&mirrored, &list.by_size);
            }
            for &(o, _) in &live {
                prop_assert!(list.extent(o).is_none(), "live offset reported free");
            }
            for (o, l) in live.drain(..) {
                list.free(o, l);
            }
            prop_assert!(list.is_empty());
            prop_assert_eq!(list.ranges(), 1, "free ranges not merged");
            prop_assert_eq!(list.by_size.len(), 1);
        }
    }

    /// First fit by address, what this list did before: the reference the placement bench compares with.
    struct FirstFit(BTreeMap<usize, usize>);

    impl FirstFit {
        fn alloc(&mut self, len: usize) -> Option<usize> {
            let (&start, &free_len) = self.0.iter().find(|(_, &l)| l >= len)?;
            self.0.remove(&start);
            if free_len > len {
                self.0.insert(start + len, free_len - len);
            }
            Some(start)
        }

        fn free(&mut self, offset: usize, len: usize) {
            let (mut start, mut end) = (offset, offset + len);
            if let Some((&p, &l)) = self.0.range(..offset).next_back().filter(|(&p, &l)| p + l == offset) {
                self.0.remove(&p);
                start = p;
                let _ = l;
            }
            if let Some(&l) = self.0.get(&end) {
                self.0.remove(&end);
                end += l;
            }
            self.0.insert(start, end - start);
        }
    }

    /// Placement cost under steady churn after random removals, at 1,000 and 100,000 live blocks: this
    /// list against first fit, alternating inside one loop (20 rounds of 5,000 free+alloc steps each). A benchmark, not a check:
    /// `cargo test --release -p genjit --lib -- --ignored placement --nocapture`.
    #[test]
    #[ignore]
    fn placement_after_random_removals() {
        for live in [1_000usize, 100_000] {
            let capacity = 256 << 20;
            let (mut best, mut first) = (FreeList::new(capacity, 16), FirstFit([(0, capacity)].into()));
            let mut seed = 12345u64;
            let mut next = || {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 33) as usize
            };
            let size = |r: usize| 64 + (r % 28) * 16;
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..live * 2 {
                let len = size(next());
                a.push((best.alloc(len, 16).unwrap(), len));
                b.push((first.alloc(len).unwrap(), len));
            }
            // Remove half at random: the heap is now full of small holes.
            for _ in 0..live {
                let i = next() % a.len();
                let (o, l) = a.swap_remove(i);
                best.free(o, l);
                let (o, l) = b.swap_remove(i);
                first.free(o, l);
            }
            // Steady churn: each step removes a random live block and adds one of a random size, in both
            // lists alike; rounds alternate which list goes first.
            let (mut t_best, mut t_first) = (Vec::new(), Vec::new());
            for round in 0..20 {
                let steps: Vec<(usize, usize)> = (0..5_000).map(|_| (next(), size(next()))).collect();
                let mut run_best = || {
                    let t = std::time::Instant::now();
                    for &(r, len) in &steps {
                        let (o, l) = a.swap_remove(r % a.len());
                        best.free(o, l);
                        a.push((best.alloc(len, 16).unwrap(), len));
                    }
                    t.elapsed().as_secs_f64() / steps.len() as f64
                };
                let mut run_first = || {
                    let t = std::time::Instant::now();
                    for &(r, len) in &steps {
                        let (o, l) = b.swap_remove(r % b.len());
                        first.free(o, l);
                        b.push((first.alloc(len).unwrap(), len));
                    }
                    t.elapsed().as_secs_f64() / steps.len() as f64
                };
                if round % 2 == 0 {
                    t_best.push(run_best());
                    t_first.push(run_first());
                } else {
                    t_first.push(run_first());
                    t_best.push(run_best());
                }
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2] * 1e9
            };
            println!(
                "{live} live blocks, {} free ranges: free+alloc {:.0} ns best fit (size index), {:.0} ns first fit",
                best.ranges(),
                median(&mut t_best),
                median(&mut t_first)
            );
        }
    }
}
