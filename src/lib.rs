//! # genjit: a memory-reclaiming JIT dylib manager for LLVM
//!
//! genjit compiles LLVM IR (text, bitcode, or a module built with inkwell) into native code for the host,
//! links it with its own linker into a *generational code heap*, and organizes it into named **dylibs** whose
//! modules can be added, looked up with checked types, and removed.
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
//! [`Source`] → [`compile`](crate::compile) (fresh LLVM context, verify, optimize, emit an ELF object with a
//! per-thread host `TargetMachine`) → [`link`](crate::link) (place sections, resolve through the
//! [`Dylib`]'s search order, apply relocations) into the [`heap`](crate::heap) (dual-mapped, W^X,
//! 16-byte-packed generations) → publish in the dylib → [`Func`] handles. DESIGN.md tells the full story.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod churn;
pub mod compile;
mod dylib;
mod entry;
pub mod error;
mod freelist;
mod func;
mod handoff;
pub mod heap;
mod jit;
pub mod link;
mod module;
pub mod peer;
pub mod plot;
pub mod reclaim;
pub mod run;
pub mod signature;
mod sync;
mod sys;
pub mod tls;

pub use compile::{DumpKind, OptLevel, Source};
pub use dylib::{Dylib, ModuleHandle, RedirectTarget, Removal};
pub use error::{Error, Result};
pub use func::{Func, HostFn};
pub use jit::{Jit, JitBuilder, Lag, Stats};
pub use reclaim::{pin, Pinned};
pub use signature::{IrType, JitReturn, JitSignature, JitType, Signature, ValType};

/// Re-exported so `Source::build` closures can name inkwell's types without a second dependency.
pub use inkwell;

#[doc(hidden)]
pub mod fuzzing;
