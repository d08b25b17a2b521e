//! What JIT code and its callers meet at run time: entries, the slot handoff, reclamation and
//! thread-locals.
//!
//! - [`entry`]: every JIT function's stable, redirectable identity (a stub and a slot).
//! - `handoff`: the one lock-free protocol, redirecting a slot while callers run through it; compiled
//!   unchanged against loom by `loom/` (it only uses [`sync`]).
//! - [`reclaim`]: pins, retirement and the background reclaimer; why no thread runs freed code.
//! - [`tls`]: each thread's copies of JIT thread-locals (`__genjit_tls_get`).
//!
//! Nothing here knows about dylibs or modules: a slot's body keeps its code alive through a type-erased
//! owner, so the layers above (the dylib's transactions) decide what owns what.

pub(crate) mod entry;
mod grace;
mod handoff;
pub(crate) mod reclaim;
pub(crate) mod sync;
pub(crate) mod tls;
