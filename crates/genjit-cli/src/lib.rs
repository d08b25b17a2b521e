//! The tools around the genjit library: what the `genjit` command runs, shared with the benchmarks.
//!
//! - [`run`]: `genjit run`, an `lli`-compatible runner of LLVM IR programs.
//! - [`churn`]: `genjit churn`, the query-engine workload (compile, call, redefine, unload) on genjit or on
//!   LLVM's LLJIT.
//! - [`peer`]: LLVM's LLJIT through its C API, the comparison engine.
//! - [`plot`]: the SVG of memory over time that `genjit churn --plot` writes.
//!
//! None of this is part of the `genjit` library crate: a user's build of the JIT pulls in no CLI, no
//! serde_json and no LLJIT bindings.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod churn;
pub mod peer;
pub mod plot;
pub mod run;
