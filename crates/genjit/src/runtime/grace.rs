//! Grace periods: the memory-ordering core of reclamation, compiled unchanged by the loom model.
//!
//! A *domain* (one per `Jit`) has a 64-bit epoch; each thread that calls into the domain's code has a
//! [`ReaderState`] word: 0 while it runs none, else the epoch it read when its outermost pin began and
//! the *scope* of that pin (the dylib whose code it may run, or [`ANY`]).
//!
//! ## Protocol
//! - **Reader** (a pin): `state = epoch.load(Acquire) << SCOPE_BITS | scope` (a plain store), then a
//!   *light* fence (a compiler fence), then load slots and run code; at the end a light fence and
//!   `state = 0` (`Release`). No read-modify-write, no hardware fence: a pin costs two stores.
//! - **Writer** (a retirement): unlink (store a slot, unpublish a name), then [`Epoch::stamp`] (a
//!   `SeqCst` fence and load) gives the retirement's stamp `r`.
//! - **Reclaimer**: take the retirements queued so far, [`Epoch::advance`], a *heavy* fence
//!   (`membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: every running thread of the process executes a full
//!   barrier before it returns), then [`ReaderState::observe`] every reader. A retirement stamped `r` in
//!   scope `b` may be freed unless an observed reader has `0 < epoch <= r` and a scope that reaches `b`.
//!
//! ## Why it is enough
//! The heavy fence turns every reader's light fences into full ones at the point the barrier hit it
//! (`P`). If `P` came after the reader's state store, the reclaimer's loads (after the heavy fence) see
//! that state, or a later one. If `P` came first, the reader's slot loads come after the writer's unlink
//! (which precedes the stamp, the queue, the advance and the heavy fence), so it cannot have loaded an
//! unlinked address. A reader whose epoch is `> r` read an epoch written after the stamp's load: the
//! `SeqCst` fence before that load and the `Acquire` epoch load order the unlink before the reader's slot
//! loads, so it cannot hold the retirement either. A reader seen at 0 (or in a later pin) ended the pin
//! that might have loaded the old address, and its `Release` store orders that pin's uses before the
//! reclaimer's `Acquire` load, hence before the free. In the loom model both fences are `SeqCst` fences,
//! which is exactly what the heavy fence makes of the light one.

use super::sync::{fence, heavy_fence, light_fence, AtomicU64, Ordering};

/// Bits of a reader's state that hold its scope.
pub(crate) const SCOPE_BITS: u32 = 24;
/// The scope of a pin that may run code of any dylib of the domain (and of a retirement any pin may
/// hold).
pub(crate) const ANY: u32 = (1 << SCOPE_BITS) - 1;

/// A domain's epoch: starts at 1, advanced by the reclaimer.
pub(crate) struct Epoch(AtomicU64);

impl Epoch {
    pub(crate) fn new() -> Epoch {
        Epoch(AtomicU64::new(1))
    }

    /// The stamp of a retirement whose unlinking stores precede this call in program order.
    pub(crate) fn stamp(&self) -> u64 {
        fence(Ordering::SeqCst);
        self.0.load(Ordering::SeqCst)
    }

    /// Starts a new epoch and returns it; the caller then runs [`heavy`] before observing readers.
    pub(crate) fn advance(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// The reclaimer's side of the fence pair (see the module docs).
pub(crate) fn heavy() {
    heavy_fence();
}

/// One thread's state in one domain (see the module docs). Written only by its thread.
pub(crate) struct ReaderState(AtomicU64);

impl Default for ReaderState {
    fn default() -> Self {
        ReaderState(AtomicU64::new(0))
    }
}

impl ReaderState {
    /// Begins the thread's outermost pin in `scope`.
    #[inline]
    pub(crate) fn enter(&self, epoch: &Epoch, scope: u32) {
        let e = epoch.0.load(Ordering::Acquire);
        self.0.store(e << SCOPE_BITS | u64::from(scope), Ordering::Relaxed);
        light_fence();
    }

    /// Makes a pin in progress cover every scope (a nested pin in another dylib's scope).
    #[inline]
    pub(crate) fn widen(&self, scope: u32) {
        let s = self.0.load(Ordering::Relaxed);
        if s & u64::from(ANY) != u64::from(scope) && s & u64::from(ANY) != u64::from(ANY) {
            self.0.store(s | u64::from(ANY), Ordering::Relaxed);
            light_fence();
        }
    }

    /// Ends the outermost pin: everything the pin ran happens before the reclaimer sees 0.
    #[inline]
    pub(crate) fn exit(&self) {
        light_fence();
        self.0.store(0, Ordering::Release);
    }

    /// `(epoch, scope)` of the pin in progress, if any. Meaningful for freeing only after [`heavy`].
    pub(crate) fn observe(&self) -> Option<(u64, u32)> {
        let s = self.0.load(Ordering::Acquire);
        (s != 0).then_some((s >> SCOPE_BITS, (s & u64::from(ANY)) as u32))
    }
}

/// Whether a reader observed at `(epoch, scope)` may still use a retirement stamped `stamp` in
/// `retired_scope`; `reaches(a, b)` says whether code of scope `a` can reach code of scope `b`.
pub(crate) fn holds(
    reader: (u64, u32),
    stamp: u64,
    retired_scope: u32,
    reaches: impl Fn(u32, u32) -> bool,
) -> bool {
    let (epoch, scope) = reader;
    epoch <= stamp
        && (scope == ANY || retired_scope == ANY || scope == retired_scope || reaches(scope, retired_scope))
}
