//! genjit's `crates/genjit/src/runtime/sync.rs` for loom: the same names, backed by loom's primitives.

use std::cell::Cell;

pub(crate) use loom::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
/// The model's (`model.rs`); the modelled code does not share one.
#[cfg(test)]
pub(crate) use loom::sync::Arc;

thread_local! {
    /// Negative control: when set, the reclaimer drops retirements at once instead of after the grace
    /// period (what LLVM's ResourceTracker removal does). A model that cannot fail with this set proves
    /// nothing.
    pub(crate) static FREE_AT_ONCE: Cell<bool> = const { Cell::new(false) };
}

/// The reader's side of the fence pair. genjit's is a compiler fence that the reclaimer's membarrier
/// upgrades to a full fence at some point of the reader's execution; loom cannot model a membarrier, so
/// both sides are the full fence that pair amounts to.
pub(crate) fn light_fence() {
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// The reclaimer's side (membarrier in genjit).
pub(crate) fn heavy_fence() {
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// The owner cell: genjit keeps the body inline under a mutex (only writers and lookups take it); a loom
/// mutex models exactly that (and lets loom explore where each swap falls between other operations).
pub(crate) struct OwnerCell<B>(loom::sync::Mutex<Option<B>>);

impl<B: Clone> OwnerCell<B> {
    pub(crate) fn new(value: Option<B>) -> Self {
        OwnerCell(loom::sync::Mutex::new(value))
    }

    pub(crate) fn load_full(&self) -> Option<B> {
        self.0.lock().unwrap().clone()
    }

    pub(crate) fn swap(&self, value: Option<B>) -> Option<B> {
        std::mem::replace(&mut *self.0.lock().unwrap(), value)
    }
}
