//! Tiering, dylib half (the first steps of issue 10; DESIGN.md, "Tiering").
//!
//! A dylib with tiering enabled compiles every IR module it is given with its locals promoted
//! (`compile::tier`) and keeps that IR, by module serial. [`Dylib::reoptimize`] queues a function; a
//! background thread per JIT compiles it alone at the tier's level and adds it as a change that redefines
//! the function, *only if* the module it came from still defines it (a user's redefinition or removal
//! always wins over a tier-up in flight: [`Error::Superseded`], dropped). The higher tier is a satellite
//! of that module: removing the module removes it. Calls never wait: the redirect is the ordinary one, and
//! the first tier's body is retired (and freed once no thread runs it) only when nothing else of its
//! module is defined any more.

use super::{Change, Dylib};
use crate::compile::{tier, OptLevel};
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a dylib tiers up (see [`Dylib::enable_tiering`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Tiering {
    /// The level the higher tier is compiled at (default O2).
    pub level: OptLevel,
}

impl Default for Tiering {
    fn default() -> Self {
        Tiering { level: OptLevel::O2 }
    }
}

impl Tiering {
    /// The default: the higher tier at O2.
    pub fn new() -> Tiering {
        Tiering::default()
    }

    /// The level the higher tier is compiled at.
    pub fn level(mut self, level: OptLevel) -> Tiering {
        self.level = level;
        self
    }
}

/// A dylib's tiering state, kept under its link lock with the rest of its state.
#[derive(Debug)]
pub(crate) struct TierState {
    pub(crate) config: Tiering,
    /// The promoted IR of every first-tier module, by serial.
    pub(crate) bitcode: HashMap<u64, Arc<[u8]>>,
    /// Functions queued or compiling.
    pub(crate) pending: HashSet<Arc<str>>,
    /// Higher-tier modules by the serial of the module they came from.
    pub(crate) satellites: HashMap<u64, Vec<u64>>,
    pub(crate) tier_ups: u64,
}

impl TierState {
    /// Forgets what belonged to modules that are gone.
    pub(crate) fn forget(&mut self, serial: u64) {
        self.bitcode.remove(&serial);
        self.satellites.remove(&serial);
    }

    /// Bytes of retained IR (for `DylibStats`).
    pub(crate) fn bytes(&self) -> usize {
        self.bitcode.values().map(|b| b.len()).sum()
    }
}

/// One function to tier up.
pub(crate) struct Job {
    dylib: Dylib,
    name: Arc<str>,
    origin: u64,
    bitcode: Arc<[u8]>,
    level: OptLevel,
}

impl Job {
    /// Compiles the higher tier and commits it (see the module docs); always clears the pending mark.
    pub(crate) fn run(self) {
        let Job { dylib, name, origin, bitcode, level } = self;
        let module = format!("{name}@{level}");
        let result = tier::compile_tier(&bitcode, &name, level, module).and_then(|compiled| {
            let change = Change {
                add: vec![compiled],
                initializers: true,
                tier_up: Some((name.clone(), origin)),
                ..Change::default()
            };
            dylib.change(change)
        });
        if let Err(e) = &result {
            tracing::debug!(function = %name, error = %e, "tier-up dropped");
        }
        let mut state = dylib.shared.state.lock();
        if let Some(t) = state.tiering.as_mut() {
            t.pending.remove(&name);
            if result.is_ok() {
                t.tier_ups += 1;
            }
        }
        dylib.shared.tier_done.notify_all();
    }
}

impl Dylib {
    /// Turns tiering on: IR modules added from now on are compiled with their local definitions promoted
    /// to hidden globals and their IR kept, so that [`reoptimize`](Self::reoptimize) can recompile one
    /// function alone at `tiering.level` against the module's own state (its globals, its static-local
    /// guards, its private constants stay where they are). Refused when compilation is isolated (the
    /// higher tier would be compiled in-process).
    pub fn enable_tiering(&self, tiering: Tiering) -> Result<()> {
        if self.session.pool.is_some() {
            return Err(self.tiering_error("compilation is isolated; tier-ups would compile in-process"));
        }
        let mut state = self.shared.state.lock();
        let t = state.tiering.get_or_insert_with(|| TierState {
            config: tiering.clone(),
            bitcode: HashMap::new(),
            pending: HashSet::new(),
            satellites: HashMap::new(),
            tier_ups: 0,
        });
        t.config = tiering;
        Ok(())
    }

    fn tiering_error(&self, reason: &str) -> Error {
        Error::Tiering { dylib: self.shared.name.to_string(), reason: reason.to_string() }
    }

    /// Queues `name` for the higher tier and returns at once: a background thread compiles it alone and
    /// redirects its entry (calls in flight finish on the first tier, later calls take the new one). A
    /// function already queued, or already at the higher tier, is left as it is. The function must be
    /// defined by a module added after [`enable_tiering`](Self::enable_tiering).
    pub fn reoptimize(&self, name: &str) -> Result<()> {
        let definer = self.shared.find(name, true).and_then(|d| d.module().map(|m| m.serial));
        let mut state = self.shared.state.lock();
        let Some(t) = state.tiering.as_mut() else {
            return Err(self.tiering_error("tiering is not enabled"));
        };
        let Some(origin) = definer else {
            return Err(Error::SymbolNotFound {
                dylib: self.shared.name.to_string(),
                symbol: name.to_string(),
            });
        };
        if t.satellites.values().any(|s| s.contains(&origin)) {
            return Ok(()); // already at the higher tier
        }
        let Some(bitcode) = t.bitcode.get(&origin).cloned() else {
            return Err(self.tiering_error(&format!("`{name}` is not defined by a tiered module")));
        };
        let name: Arc<str> = name.into();
        if !t.pending.insert(name.clone()) {
            return Ok(());
        }
        let level = t.config.level;
        drop(state);
        self.session.tier_up(Job { dylib: self.clone(), name, origin, bitcode, level });
        Ok(())
    }

    /// Waits until no tier-up of this dylib is queued or compiling, or `timeout` passes; returns whether
    /// none is.
    pub fn wait_for_tier_ups(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock();
        loop {
            if state.tiering.as_ref().is_none_or(|t| t.pending.is_empty()) {
                return true;
            }
            if self.shared.tier_done.wait_until(&mut state, deadline).timed_out() {
                return state.tiering.as_ref().is_none_or(|t| t.pending.is_empty());
            }
        }
    }
}
