//! genjit's `crates/genjit/src/runtime/sync.rs` for loom: the same names, backed by loom's primitives.

use std::cell::Cell;

pub(crate) use crossbeam_epoch as epoch;
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
pub(crate) use loom::sync::Arc;

thread_local! {
    /// Negative control: when set, `retire` drops at once instead of after the grace period (what LLVM's
    /// ResourceTracker removal does). A model that cannot fail with this set proves nothing.
    pub(crate) static FREE_AT_ONCE: Cell<bool> = const { Cell::new(false) };
}

/// Drops `value` once no thread pinned now can still use it. genjit defers to a queue its reclaimer thread
/// drains; here the deferred function drops directly (the queue adds no ordering: it is only reached
/// after crossbeam decided the grace period is over).
pub(crate) fn retire<T: Send + 'static>(value: T) {
    if FREE_AT_ONCE.with(Cell::get) {
        drop(value);
        return;
    }
    let guard = epoch::pin();
    guard.defer(move || drop(value));
    guard.flush();
}

/// The owner cell: genjit uses an `ArcSwapOption`, whose loads and swaps are linearizable; a loom mutex
/// models exactly that (and lets loom explore where each swap falls between other operations).
pub(crate) struct OwnerCell<B>(loom::sync::Mutex<Option<Arc<B>>>);

impl<B> OwnerCell<B> {
    pub(crate) fn new(value: Option<Arc<B>>) -> Self {
        OwnerCell(loom::sync::Mutex::new(value))
    }

    pub(crate) fn load_full(&self) -> Option<Arc<B>> {
        self.0.lock().unwrap().clone()
    }

    pub(crate) fn swap(&self, value: Option<Arc<B>>) -> Option<Arc<B>> {
        std::mem::replace(&mut *self.0.lock().unwrap(), value)
    }
}
