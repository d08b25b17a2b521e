//! The handoff between a redirectable slot and its callers: the one lock-free protocol in genjit.
//!
//! A slot has two faces. The *machine slot* is a word JIT code jumps through (`jmp *slot(%rip)`) and Rust
//! calls load; the *owner* is an [`OwnerCell`] holding the body the slot points at (inline: a body is an
//! address and a reference to what owns the code), which keeps that body's memory alive. Writers are
//! serialized by the dylib's link lock; callers never touch the owner.
//!
//! ## Protocol
//! - **Reader** (a call): pin (see `grace`), load the machine slot (`Acquire`), run the code at that
//!   address, unpin. A caller never touches the owner.
//! - **Writer** (a redirect): store the new address into the machine slot (`Release`, so a reader that sees
//!   it also sees the new body's bytes), swap the owner, and hand the old owner back to the caller, who
//!   *retires* it: it is dropped only after a grace period (`grace`) that began after the store.
//!
//! A reader that loaded the old address was pinned before the writer's store became visible to it, hence
//! holds the retirement back, so the old body outlives its call. A reader pinned after the retirement's
//! grace period began loads the new address, so it can never reach the old body.

use super::sync::{AtomicUsize, Ordering, OwnerCell};
use std::ops::Deref;

/// What a slot can point at: anything with a code address whose drop releases that code (cloning it
/// shares the code).
pub(crate) trait Body: Clone + Send + Sync + 'static {
    /// The address the machine slot holds while this body is current.
    fn addr(&self) -> usize;
}

/// A machine slot plus the owner of its current body.
pub(crate) struct Handoff<M, B> {
    machine: M,
    owner: OwnerCell<B>,
}

impl<M: Deref<Target = AtomicUsize>, B: Body> Handoff<M, B> {
    /// A slot with no body, pointing at `vacant` (a tombstone).
    pub(crate) fn new(machine: M, vacant: usize) -> Self {
        machine.store(vacant, Ordering::Release);
        Handoff { machine, owner: OwnerCell::new(None) }
    }

    /// The current body, if any (for lookups; callers use [`enter`](Self::enter)).
    pub(crate) fn current(&self) -> Option<B> {
        self.owner.load_full()
    }

    /// The address a call must jump to. The caller must be pinned: that keeps whatever body the address
    /// belongs to alive until it unpins.
    #[inline]
    pub(crate) fn enter(&self) -> usize {
        self.machine.load(Ordering::Acquire)
    }

    /// Points the slot at `body` (or at `vacant` when `None`) and returns the previous body, which the
    /// caller must retire (never drop: a call may be running it). Writers must be serialized by the caller.
    #[must_use = "the previous body must be retired, not dropped"]
    pub(crate) fn redirect(&self, body: Option<B>, vacant: usize) -> Option<B> {
        let addr = body.as_ref().map_or(vacant, |b| b.addr());
        self.machine.store(addr, Ordering::Release);
        self.owner.swap(body)
    }
}
