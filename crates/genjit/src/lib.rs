//! # genjit: a memory-reclaiming JIT dylib manager for LLVM
//!
//! genjit compiles LLVM IR (text, bitcode, or a module built with inkwell) into native code for the host,
//! links it with its own linker into a *generational code heap*, and organizes it into named **dylibs** whose
//! modules can be added, redefined, looked up with checked types, and removed while other threads run them.
//!
//! ```
//! use genjit::{Jit, Source};
//!
//! extern "C" fn log_row(x: i64) { assert_eq!(x, 5); }
//!
//! let jit = Jit::new()?;
//! let db = jit.create_dylib("query_42")?;
//! db.define_host("log_row", log_row as extern "C" fn(i64))?;
//! db.add_module(Source::ir_text(r#"
//!     declare void @log_row(i64)
//!     define i64 @eval(i64 %a, i64 %b) {
//!       %s = add i64 %a, %b
//!       call void @log_row(i64 %s)
//!       ret i64 %s
//!     }
//! "#))?;
//! let eval = db.lookup::<fn(i64, i64) -> i64>("eval")?;
//! assert_eq!(eval.call(2, 3), 5);
//! # Ok::<(), genjit::Error>(())
//! ```
//!
//! ## How data flows
//! A [`Source`] is compiled (`compile/`: a fresh LLVM context, verify, rewrite thread-locals, optimize,
//! emit an ELF object with a per-thread host `TargetMachine`), linked (`link/`: place sections, resolve
//! through the [`Dylib`]'s search order, apply relocations) into the code heap (`heap/`: dual-mapped, W^X,
//! 16-byte-packed generations), published by one transaction of its dylib (`dylib/`), and called through
//! stable, redirectable entries (`runtime/`) from [`Func`] handles. Superseded and removed code is freed by
//! epoch reclamation once no thread can be running it. DESIGN.md in the repository tells the full story.
//!
//! ## Safety
//! Ordinary use needs no `unsafe`: a [`Func`] is checked against the IR signature (calling convention and
//! ABI attributes included) before it can be called, host functions are only taken from Rust function
//! pointers ([`HostFn`] is sealed), and the heap, the linker and the entries are private. What cannot be
//! checked is `unsafe`: [`Dylib::define_host_address`], [`RedirectTarget::address`].
//!
//! ```compile_fail
//! // Internals are not reachable: no `Block` can outlive its heap.
//! let heap = genjit::heap::Heap::new();
//! ```
//!
//! ```compile_fail
//! // An address that no Rust function stands behind needs `unsafe`.
//! let jit = genjit::Jit::new().unwrap();
//! jit.create_dylib("d").unwrap().define_host_address("x", 0xdead).unwrap();
//! ```
//!
//! ## Features
//! - `llvm-dynamic` (default): link the shared `libLLVM-19.so`.
//! - `llvm-static`: link LLVM statically.
//! - `serde`: `Serialize` for [`Stats`] and the other figures.

#![deny(unsafe_op_in_unsafe_fn)]

mod compile;
mod dylib;
mod error;
mod func;
mod heap;
mod jit;
mod link;
mod runtime;
mod signature;
mod sys;
mod timings;

pub use compile::{
    host_target_machine, serve_compile_worker, DumpKind, Isolation, OptLevel, ParseOptLevelError, Source,
    Transform,
};
pub use dylib::{
    Decision, Dylib, HotFunction, Importer, Lazy, ModuleHandle, Policy, RedirectTarget, Removal, TierStatus,
    Tiering, Trigger,
};
pub use error::{Definer, Error, RedirectRefusal, Result, RESERVED_PREFIXES};
pub use func::{Func, HostFn};
pub use heap::{GenerationStats, HeapStats, Kind as GenerationKind};
pub use jit::{DylibStats, Jit, JitBuilder, Lag, Stats, TieringStats};
pub use runtime::reclaim::{reclaim_all, Pinned, Stall};
pub use signature::{IrType, JitReturn, JitSignature, JitType, Signature, ValType};
pub use timings::ModuleTimings;

/// Re-exported so `Source::build` closures can name inkwell's types without a second dependency.
pub use inkwell;

#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
mod metadata {
    /// The per-module and per-function records stay small (DESIGN.md, "Metadata"): a field added here
    /// costs every live module, so growing one is a decision, not an accident.
    #[test]
    fn records_stay_small() {
        use std::mem::size_of;
        // 168: with its `Arc` counts, one 192-byte malloc chunk.
        assert!(size_of::<crate::dylib::module::LoadedModule>() <= 168);
        // With its current target inline (an address and its owner behind a one-byte lock).
        assert!(size_of::<crate::runtime::entry::Entry>() <= 80);
        assert!(size_of::<crate::dylib::table::Definition>() <= 24);
        assert!(size_of::<crate::link::DefinedSymbol>() <= 32);
    }
}
