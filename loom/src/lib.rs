//! A loom model of genjit's slot handoff and grace periods: `crates/genjit/src/runtime/handoff.rs` and
//! `grace.rs` compiled unchanged against [`sync`], a copy of genjit's primitive shim that swaps in loom's
//! atomics, `SeqCst` fences for both sides of the asymmetric fence pair, and a loom mutex for the owner
//! cell. The tests are in `model.rs`.

#![allow(dead_code)]

pub(crate) mod sync;

#[path = "../../crates/genjit/src/runtime/handoff.rs"]
pub(crate) mod handoff;

#[path = "../../crates/genjit/src/runtime/grace.rs"]
pub(crate) mod grace;

#[cfg(test)]
mod model;
