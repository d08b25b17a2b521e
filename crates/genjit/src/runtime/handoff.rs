//! The handoff between a redirectable slot and its callers: the one lock-free protocol in genjit.
//!
//! A slot has two faces. The *machine slot* is a word JIT code jumps through (`jmp *slot(%rip)`) and Rust
//! calls load; the *owner* is an [`OwnerCell`] (an `ArcSwapOption`) holding the body the slot points at,
//! which keeps that body's memory alive. Writers are serialized by the dylib's link lock; readers take no
//! lock.
//!
//! ## Protocol
//! - **Reader** (a call): pin the epoch, load the machine slot (`Acquire`), run the code at that address,
//!   unpin. A caller never touches the owner.
//! - **Writer** (a redirect): store the new address into the machine slot (`Release`, so a reader that sees
//!   it also sees the new body's bytes), swap the owner, and *retire* the old owner: hand it to
//!   crossbeam-epoch, which drops it only once every thread pinned at that moment has unpinned.
//!
//! A reader that loaded the old address was pinned before the writer's store became visible to it, hence
//! before the retirement, so the old body outlives its call. A reader pinned after the retirement loads the
//! new address (the store precedes the retirement in the writer's program order and crossbeam's pin is a
//! `SeqCst` fence), so it can never reach the old body.

use super::sync::{epoch, retire, Arc, AtomicUsize, Ordering, OwnerCell};
use std::ops::Deref;

/// What a slot can point at: anything with a code address whose drop releases that code.
pub(crate) trait Body: Send + Sync + 'static {
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
    pub(crate) fn current(&self) -> Option<Arc<B>> {
        self.owner.load_full()
    }

    /// The address a call made under `_guard` must jump to. The guard proves the caller is pinned, which
    /// keeps whatever body the address belongs to alive until the guard is dropped.
    #[inline]
    pub(crate) fn enter(&self, _guard: &epoch::Guard) -> usize {
        self.machine.load(Ordering::Acquire)
    }

    /// Points the slot at `body` (or at `vacant` when `None`) and retires the previous body. Writers must be
    /// serialized by the caller.
    pub(crate) fn redirect(&self, body: Option<Arc<B>>, vacant: usize) {
        let addr = body.as_ref().map_or(vacant, |b| b.addr());
        self.machine.store(addr, Ordering::Release);
        if let Some(old) = self.owner.swap(body) {
            retire(old);
        }
    }
}
