//! A loom model of genjit's slot handoff: `crates/genjit/src/runtime/handoff.rs` compiled unchanged against [`sync`], a copy of
//! genjit's primitive shim that swaps in loom's atomics, a loom build of crossbeam-epoch and a loom mutex
//! for the owner cell. The tests are in `model.rs`.

#![allow(dead_code)]

pub(crate) mod sync;

#[path = "../../crates/genjit/src/runtime/handoff.rs"]
pub(crate) mod handoff;

#[cfg(test)]
mod model;
