//! The primitives the lock-free protocols are written against (`handoff` and `grace`).
//!
//! Those two modules use only what this module exports, so the loom model (`loom/`, run by
//! `scripts/loom.sh`) compiles them unchanged against `loom/src/sync.rs`: loom's atomics, `SeqCst` fences
//! for both sides of the asymmetric fence pair, and a loom mutex for the owner cell (an `ArcSwapOption` is
//! linearizable).

use std::sync::atomic::{compiler_fence, AtomicBool};
pub(crate) use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

/// Whether `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` is registered for this process. Without it
/// (kernels before 4.14, sandboxes that filter the call) the heavy fence flushes every CPU's store buffer
/// by changing a page's protection (below).
static EXPEDITED: AtomicBool = AtomicBool::new(false);

/// Registers the process for expedited membarriers (once, before the first `Jit` exists).
pub(crate) fn init_fences() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rustix::thread::{membarrier, MembarrierCommand};
        // For tests of the fallback: `GENJIT_NO_MEMBARRIER=1` runs as on a kernel without it.
        if std::env::var_os("GENJIT_NO_MEMBARRIER").is_some_and(|v| v == "1") {
            return;
        }
        let ok = membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok()
            && membarrier(MembarrierCommand::PrivateExpedited).is_ok();
        EXPEDITED.store(ok, Ordering::Relaxed);
    });
}

/// Whether the heavy fence is a membarrier (else the page-protection flush).
pub(crate) fn fences_are_asymmetric() -> bool {
    EXPEDITED.load(Ordering::Relaxed)
}

/// The reader's side of the fence pair: a compiler fence, which [`heavy_fence`] upgrades.
#[inline(always)]
pub(crate) fn light_fence() {
    compiler_fence(Ordering::SeqCst);
}

/// The reclaimer's side: every running thread of the process executes a full barrier before this
/// returns, which upgrades their light fences to `SeqCst` ones at that point (membarrier(2)).
pub(crate) fn heavy_fence() {
    if EXPEDITED.load(Ordering::Relaxed) {
        use rustix::thread::{membarrier, MembarrierCommand};
        // Registered in `init_fences`; the call cannot fail afterwards.
        membarrier(MembarrierCommand::PrivateExpedited).expect("membarrier after registration");
    } else {
        crate::sys::flush_store_buffers();
    }
}

/// The Rust-side owner of a slot's current body, stored inline. Only writers (serialized by the dylib's
/// link lock) and lookups take the lock; calls read the machine slot.
pub(crate) struct OwnerCell<B>(parking_lot::Mutex<Option<B>>);

impl<B: Clone> OwnerCell<B> {
    pub(crate) fn new(value: Option<B>) -> Self {
        OwnerCell(parking_lot::Mutex::new(value))
    }

    pub(crate) fn load_full(&self) -> Option<B> {
        self.0.lock().clone()
    }

    pub(crate) fn swap(&self, value: Option<B>) -> Option<B> {
        std::mem::replace(&mut *self.0.lock(), value)
    }
}
