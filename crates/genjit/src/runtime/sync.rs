//! The primitives the lock-free handoff is written against (see `handoff`).
//!
//! `handoff.rs` uses only what this module exports, so the loom model (`loom/`, run by `scripts/loom.sh`)
//! compiles it unchanged against `loom/src/sync.rs`: loom's atomics, crossbeam-epoch built for loom
//! (`--cfg crossbeam_loom`), and a loom mutex for the owner cell (an `ArcSwapOption` is linearizable).

pub(crate) use crossbeam_epoch as epoch;
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
pub(crate) use std::sync::Arc;

/// Drops `value` once no thread that is pinned now can still be using it (see [`crate::reclaim`]).
pub(crate) fn retire<T: Send + 'static>(value: T) {
    super::reclaim::retire(value, None);
}

/// The Rust-side owner of a slot's current body: an `ArcSwapOption`.
pub(crate) struct OwnerCell<B>(arc_swap::ArcSwapOption<B>);

impl<B> OwnerCell<B> {
    pub(crate) fn new(value: Option<Arc<B>>) -> Self {
        OwnerCell(arc_swap::ArcSwapOption::new(value))
    }

    pub(crate) fn load_full(&self) -> Option<Arc<B>> {
        self.0.load_full()
    }

    pub(crate) fn swap(&self, value: Option<Arc<B>>) -> Option<Arc<B>> {
        self.0.swap(value)
    }
}
