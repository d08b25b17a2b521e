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

use super::module::LoadedModule;
use super::{Change, Dylib, DylibShared, Session};
use crate::compile::{tier, OptLevel};
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::sync::Weak;
use std::time::{Duration, Instant};

/// How a dylib tiers up (see [`Dylib::enable_tiering`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Tiering {
    /// The level the higher tier is compiled at (default O2).
    pub level: OptLevel,
    /// Calls and loop back-edges after which a function asks for the higher tier by itself (default 100;
    /// `None`: only [`Dylib::reoptimize`]). Counted at tier 0 by one counter per function.
    pub threshold: Option<u64>,
}

impl Default for Tiering {
    fn default() -> Self {
        Tiering { level: OptLevel::O2, threshold: Some(100) }
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

    /// The count of calls and back-edges after which a function tiers up by itself (`None`: only on
    /// `reoptimize`).
    pub fn threshold(mut self, calls: Option<u64>) -> Tiering {
        self.threshold = calls.map(|c| c.max(1));
        self
    }
}

/// Where a function of a tiered dylib stands (see [`Dylib::tier_status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStatus {
    /// 0 for the first tier (counted; or lazy, not compiled yet), 1 for the higher tier.
    pub tier: u32,
    /// A tier-up of it is queued or compiling.
    pub queued: bool,
    /// Callees whose bodies the higher tier may contain: redefining or removing one of them drops this
    /// tier (the function falls back to its first tier, in the same step, and counts again).
    pub inlined: Vec<String>,
    /// A lazy function not compiled yet: its entry still leads to its trampoline.
    pub lazy: bool,
}

/// A first-tier function's counter, by address: where its [`genjit_hot`] call comes from.
struct Hot {
    session: Weak<Session>,
    dylib: Weak<DylibShared>,
    name: Arc<str>,
}

static COUNTERS: Mutex<Option<HashMap<usize, Hot>>> = Mutex::new(None);

/// The function's name, if `symbol` is a call counter (`__gj.<tag>.cnt.<name>`, see `compile::tier`).
fn counted(symbol: &str) -> Option<&str> {
    symbol.strip_prefix("__gj.")?.split_once(".cnt.").map(|(_, name)| name)
}

/// Records the counters of a first-tier module just published (under its dylib's link lock).
pub(crate) fn register_counters(session: &Arc<Session>, dylib: &Arc<DylibShared>, module: &LoadedModule) {
    let mut counters = COUNTERS.lock();
    let counters = counters.get_or_insert_with(HashMap::new);
    for s in module.symbols.iter() {
        if let Some(name) = counted(&s.name) {
            let hot =
                Hot { session: Arc::downgrade(session), dylib: Arc::downgrade(dylib), name: name.into() };
            counters.insert(s.addr, hot);
        }
    }
}

/// Forgets the counters of a module that is retired.
pub(crate) fn forget_counters(module: &LoadedModule) {
    if let Some(counters) = COUNTERS.lock().as_mut() {
        for s in module.symbols.iter().filter(|s| counted(&s.name).is_some()) {
            counters.remove(&s.addr);
        }
    }
}

/// Called by a first-tier function whose counter ran out: resets the counter (no more calls until the
/// next tier-up claim) and queues the function (`reoptimize` de-duplicates racing callers). Never
/// blocks for long: a lookup and a queue push.
pub(crate) extern "C" fn genjit_hot(counter: *const AtomicI64) {
    // SAFETY: the caller is the code of the live module that holds this counter (an 8-aligned i64 in its
    // data block, which stays mapped while its code runs).
    unsafe { &*counter }.store(i64::MAX, Ordering::Relaxed);
    let hot = COUNTERS.lock().as_ref().and_then(|c| {
        c.get(&(counter as usize)).map(|h| (h.session.upgrade(), h.dylib.upgrade(), h.name.clone()))
    });
    if let Some((Some(session), Some(shared), name)) = hot {
        // Errors (the function was redefined meanwhile, the dylib closed) leave it where it is.
        let _ = Dylib::new(session, shared, Arc::new(())).reoptimize(&name);
    }
}

/// A module compiled from part of a tiered module (its *origin*): a lazy function's first compile (tier 0)
/// or a higher tier (tier 1).
#[derive(Debug)]
pub(crate) struct Layer {
    pub(crate) origin: u64,
    pub(crate) tier: u32,
    /// The callees it may have inlined.
    pub(crate) inlined: Vec<Arc<str>>,
}

/// A lazy origin's functions (see `lazy`).
#[derive(Debug)]
pub(crate) struct LazyUnit {
    pub(crate) functions: HashSet<Arc<str>>,
    pub(crate) speculate: bool,
    /// The module has finalizers, which may call any of its functions when it is removed.
    pub(crate) finalizers: bool,
}

/// A dylib's tiering state, kept under its link lock with the rest of its state. It exists once tiering
/// is enabled or a lazy module was added.
#[derive(Debug)]
pub(crate) struct TierState {
    /// `None`: no tier-ups (only lazy modules).
    pub(crate) config: Option<Tiering>,
    /// The promoted IR of every tiered or lazy module (an *origin*), by serial.
    pub(crate) bitcode: HashMap<u64, Arc<[u8]>>,
    /// Each lazy origin's functions defined by trampoline.
    pub(crate) lazy: HashMap<u64, LazyUnit>,
    /// One gate per lazy function being compiled: its concurrent first callers wait on it.
    pub(crate) gates: HashMap<(u64, Arc<str>), Arc<Mutex<()>>>,
    /// Functions queued or compiling.
    pub(crate) pending: HashSet<Arc<str>>,
    /// The layers of each origin, by the origin's serial.
    pub(crate) satellites: HashMap<u64, Vec<u64>>,
    /// Every layer, by its serial.
    pub(crate) layers: HashMap<u64, Layer>,
    pub(crate) tier_ups: u64,
    pub(crate) lazy_compiles: u64,
    pub(crate) speculative_compiles: u64,
    /// Time spent compiling lazy functions (all, and by speculation) and higher tiers.
    pub(crate) compile_time: [Duration; 3],
    /// Higher tiers dropped because a callee they inlined was redefined or removed.
    pub(crate) invalidations: u64,
}

impl TierState {
    pub(crate) fn new(config: Option<Tiering>) -> TierState {
        TierState {
            config,
            bitcode: HashMap::new(),
            lazy: HashMap::new(),
            gates: HashMap::new(),
            pending: HashSet::new(),
            satellites: HashMap::new(),
            layers: HashMap::new(),
            tier_ups: 0,
            lazy_compiles: 0,
            speculative_compiles: 0,
            compile_time: [Duration::ZERO; 3],
            invalidations: 0,
        }
    }

    /// Forgets what belonged to a module that is gone.
    pub(crate) fn forget(&mut self, serial: u64) {
        self.bitcode.remove(&serial);
        self.lazy.remove(&serial);
        self.satellites.remove(&serial);
        if let Some(layer) = self.layers.remove(&serial) {
            if let Some(satellites) = self.satellites.get_mut(&layer.origin) {
                satellites.retain(|&s| s != serial);
            }
        }
    }

    /// The origin a layer came from.
    pub(crate) fn origin_of(&self, layer: u64) -> Option<u64> {
        self.layers.get(&layer).map(|l| l.origin)
    }

    /// Whether `serial` is the origin `origin` or one of its layers: the same functions.
    pub(crate) fn same_unit(&self, origin: u64, serial: u64) -> bool {
        serial == origin || self.origin_of(serial) == Some(origin)
    }

    /// The layers that inlined one of `names`: a change that redefines or removes them must take those
    /// layers out with it, so no call runs an inlined copy of the old body.
    pub(crate) fn invalidated_by(&self, touched: &HashSet<Arc<str>>) -> Vec<u64> {
        let layers = self.layers.iter();
        layers.filter(|(_, l)| l.inlined.iter().any(|c| touched.contains(c))).map(|(&s, _)| s).collect()
    }

    /// Whether any layer inlined anything.
    pub(crate) fn any_inlined(&self) -> bool {
        self.layers.values().any(|l| !l.inlined.is_empty())
    }

    /// The figures for `DylibStats` (`state` is the dylib's state this is part of).
    pub(crate) fn stats(&self, state: &super::table::State, dylib: &DylibShared) -> crate::TieringStats {
        let mut stats = crate::TieringStats {
            tier_ups: self.tier_ups,
            invalidations: self.invalidations,
            retained_ir_bytes: self.bitcode.values().map(|b| b.len()).sum(),
            lazy_compiles: self.lazy_compiles,
            speculative_compiles: self.speculative_compiles,
            lazy_compile_time: self.compile_time[0],
            speculative_compile_time: self.compile_time[1],
            tier_up_compile_time: self.compile_time[2],
            ..Default::default()
        };
        for (origin, unit) in &self.lazy {
            stats.lazy_functions += unit.functions.len();
            let uncompiled = |f: &&Arc<str>| {
                dylib.find(f, true).and_then(|d| d.module().map(|m| m.serial)) == Some(*origin)
            };
            stats.lazy_uncompiled += unit.functions.iter().filter(uncompiled).count();
        }
        for m in state.modules.iter() {
            let m = &m.0;
            let tier = match self.layers.get(&m.serial) {
                Some(layer) => layer.tier as usize,
                None if self.bitcode.contains_key(&m.serial) => 0,
                None => continue,
            };
            let (code, data) = m.heap_bytes();
            stats.heap_bytes[tier.min(1)] += code + data;
        }
        stats
    }
}

/// What a tier-up's (or a lazy compile's) change must still find true when it commits (else
/// [`Error::Superseded`]), and what it records.
#[derive(Debug)]
pub(crate) struct TierUpCheck {
    /// The function moving.
    pub(crate) name: Arc<str>,
    /// The origin it was compiled from.
    pub(crate) origin: u64,
    /// The module that must still define it (the origin, or a lazy function's first compile).
    pub(crate) from: u64,
    /// The new module's tier.
    pub(crate) tier: u32,
    /// Callees the new body may have inlined: each must still be defined by `origin` or its layers.
    pub(crate) inlined: Vec<Arc<str>>,
}

/// Sets a first-tier function's counter back to `threshold` (after its higher tier was dropped, so it can
/// move up again).
pub(crate) fn rearm(module: &LoadedModule, function: &str, threshold: u64) {
    if let Some(s) = module.symbols.iter().find(|s| counted(&s.name) == Some(function)) {
        // SAFETY: the counter is an 8-aligned i64 in the live module's data block; its code updates it
        // with plain loads and stores (racy by design), so an atomic store is compatible.
        let counter = unsafe { &*(s.addr as *const AtomicI64) };
        counter.store(threshold.min(i64::MAX as u64) as i64, Ordering::Relaxed);
    }
}

/// Background work of a JIT's tier-up threads.
pub(crate) enum Job {
    /// Compile a function's higher tier.
    TierUp { dylib: Dylib, name: Arc<str>, origin: u64, from: u64, bitcode: Arc<[u8]>, level: OptLevel },
    /// Compile a lazy function before anyone calls it.
    Speculate { dylib: Dylib, name: Arc<str>, origin: u64 },
}

impl Job {
    pub(crate) fn run(self) {
        match self {
            Job::TierUp { dylib, name, origin, from, bitcode, level } => {
                dylib.tier_up_now(name, origin, from, bitcode, level)
            }
            Job::Speculate { dylib, name, origin } => {
                let started = Instant::now();
                let compiled = dylib.materialize(&name, origin, false);
                if let Err(e) = &compiled {
                    tracing::debug!(function = %name, error = %e, "speculative compile dropped");
                }
                let mut state = dylib.shared.state.lock();
                if let Some(t) = state.tiering.as_mut() {
                    t.pending.remove(&name);
                    if let Ok(true) = compiled {
                        t.speculative_compiles += 1;
                        t.compile_time[1] += started.elapsed();
                    }
                }
                dylib.shared.tier_done.notify_all();
            }
        }
    }
}

impl Dylib {
    /// Compiles a function's higher tier and commits it (see the module docs); always clears the pending
    /// mark.
    fn tier_up_now(&self, name: Arc<str>, origin: u64, from: u64, bitcode: Arc<[u8]>, level: OptLevel) {
        let started = Instant::now();
        let module = format!("{name}@{level}");
        // Callees still defined by the module the function came from (or its layers: the same functions)
        // may be inlined; one the user redefined since may not. Checked again at commit.
        let inlinable = |callee: &str| self.defined_by_unit(callee, origin);
        let extract =
            tier::Extract { function: &name, level, name: module, inlinable: &inlinable, counters: None };
        let result = tier::compile_function(&bitcode, extract).and_then(|up| {
            let inlined = up.inlined.iter().map(|c| Arc::from(c.as_str())).collect();
            let change = Change {
                add: vec![up.compiled],
                initializers: true,
                tier_up: Some(TierUpCheck { name: name.clone(), origin, from, tier: 1, inlined }),
                ..Change::default()
            };
            self.change(change)
        });
        if let Err(e) = &result {
            tracing::debug!(function = %name, error = %e, "tier-up dropped");
        }
        let mut state = self.shared.state.lock();
        if let Some(t) = state.tiering.as_mut() {
            t.pending.remove(&name);
            t.compile_time[2] += started.elapsed();
            if result.is_ok() {
                t.tier_ups += 1;
            }
        }
        self.shared.tier_done.notify_all();
    }

    /// Whether `name` is defined by `origin` or one of its layers.
    fn defined_by_unit(&self, name: &str, origin: u64) -> bool {
        let definer = self.shared.find(name, true).and_then(|d| d.module().map(|m| m.serial));
        let state = self.shared.state.lock();
        definer.zip(state.tiering.as_ref()).is_some_and(|(serial, t)| t.same_unit(origin, serial))
    }

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
        state.tiering.get_or_insert_with(|| TierState::new(None)).config = Some(tiering);
        Ok(())
    }

    pub(super) fn tiering_error(&self, reason: &str) -> Error {
        Error::Tiering { dylib: self.shared.name.to_string(), reason: reason.to_string() }
    }

    /// Queues `name` for the higher tier and returns at once: a background thread compiles it alone and
    /// redirects its entry (calls in flight finish on the first tier, later calls take the new one). A
    /// function already queued, or already at the higher tier, is left as it is. The function must be
    /// defined by a module added after [`enable_tiering`](Self::enable_tiering). A lazy function not
    /// compiled yet is left to its first call.
    pub fn reoptimize(&self, name: &str) -> Result<()> {
        let definition = self.shared.find(name, true);
        let definer = definition.and_then(|d| d.module().map(|m| m.serial));
        let mut state = self.shared.state.lock();
        let Some((t, level)) =
            state.tiering.as_mut().and_then(|t| t.config.as_ref().map(|c| c.level).map(|l| (t, l)))
        else {
            return Err(self.tiering_error("tiering is not enabled"));
        };
        let Some(from) = definer else {
            return Err(Error::SymbolNotFound {
                dylib: self.shared.name.to_string(),
                symbol: name.to_string(),
            });
        };
        let origin = match t.layers.get(&from) {
            Some(layer) if layer.tier >= 1 => return Ok(()), // already at the higher tier
            Some(layer) => layer.origin,
            None if t.is_lazy(from, name) => return Ok(()),
            None => from,
        };
        let Some(bitcode) = t.bitcode.get(&origin).cloned() else {
            return Err(self.tiering_error(&format!("`{name}` is not defined by a tiered module")));
        };
        let name: Arc<str> = name.into();
        if !t.pending.insert(name.clone()) {
            return Ok(());
        }
        drop(state);
        self.session.background(Job::TierUp { dylib: self.clone(), name, origin, from, bitcode, level });
        Ok(())
    }

    /// Where `name` stands: its tier, whether a tier-up is queued or compiling, and which callees its body
    /// may have inlined. `None` when the dylib does not define it from a tiered module.
    pub fn tier_status(&self, name: &str) -> Option<TierStatus> {
        let serial = self.shared.find(name, true)?.module()?.serial;
        let state = self.shared.state.lock();
        let t = state.tiering.as_ref()?;
        let queued = t.pending.contains(name);
        if t.bitcode.contains_key(&serial) {
            let lazy = t.is_lazy(serial, name);
            return Some(TierStatus { tier: 0, queued, inlined: Vec::new(), lazy });
        }
        let layer = t.layers.get(&serial)?;
        let inlined = layer.inlined.iter().map(|c| c.to_string()).collect();
        Some(TierStatus { tier: layer.tier, queued, inlined, lazy: false })
    }

    /// Waits until no tier-up (or speculative compile) of this dylib is queued or compiling, or `timeout`
    /// passes; returns whether none is.
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
