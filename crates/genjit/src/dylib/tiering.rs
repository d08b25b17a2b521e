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
use crate::compile::{osr, tier, KeptIr};
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::sync::Weak;
use std::time::{Duration, Instant};

use super::policy::Tiering;
use super::policy::{Decision, HotFunction, Trigger};

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
    /// A lazy function not compiled yet: its entry still leads to its lazy stub.
    pub lazy: bool,
    /// Its calls are counted: its entry leads to a first-tier function with a call counter. Once the
    /// count is over and the function was queued for the higher tier (or the policy said
    /// [`Stay`](crate::Decision::Stay)), the entry skips the counting stub and leads straight to the
    /// first-tier body; a fallback from a dropped higher tier counts again.
    pub counting: bool,
}

/// A first-tier function's counter, by address: where its [`genjit_hot`] call comes from.
struct Hot {
    session: Weak<Session>,
    dylib: Weak<DylibShared>,
    name: Arc<str>,
    counted: tier::Counted,
    /// The module the counter is in (the origin, or a lazy function's first compile).
    module: u64,
    /// Events counted before the current countdown.
    before: u64,
    /// A call counter's function body behind its counting stub (see `sys::stubs`), or 0.
    body: usize,
    /// A back-edge counter's calls of [`genjit_hot_loop`] that found OSR entries, none for their header.
    probes: u32,
}

static COUNTERS: Mutex<Option<HashMap<usize, Hot>>> = Mutex::new(None);

/// Records the counters of a first-tier module just published (under its dylib's link lock).
pub(crate) fn register_counters(session: &Arc<Session>, dylib: &Arc<DylibShared>, module: &LoadedModule) {
    let mut counters = COUNTERS.lock();
    let counters = counters.get_or_insert_with(HashMap::new);
    let stubs: HashMap<&str, usize> =
        module.symbols.iter().filter(|s| s.counting).map(|s| (&*s.name, s.addr)).collect();
    for s in module.symbols.iter() {
        if let Some((name, counted)) = tier::counter_of(&s.name) {
            let body = match (counted, stubs.get(name)) {
                // SAFETY: the linker wrote this counting stub into the module's code block, which stays
                // mapped while the module is (it is being published).
                (tier::Counted::Calls, Some(&stub)) => unsafe { crate::sys::stubs::stub_body(stub) },
                _ => 0,
            };
            let hot = Hot {
                body,
                session: Arc::downgrade(session),
                dylib: Arc::downgrade(dylib),
                name: name.into(),
                counted,
                module: module.serial,
                before: 0,
                probes: 0,
            };
            counters.insert(s.addr, hot);
        }
    }
}

/// Forgets the counters of a module that is retired.
pub(crate) fn forget_counters(module: &LoadedModule) {
    if let Some(counters) = COUNTERS.lock().as_mut() {
        for s in module.symbols.iter().filter(|s| tier::counter_of(&s.name).is_some()) {
            counters.remove(&s.addr);
        }
    }
}

/// What a counter's hook knows of it (see [`Hot`]).
type HotInfo = (Arc<Session>, Arc<DylibShared>, Arc<str>, tier::Counted, u64, u64, usize);

/// Claims `counter` (no more calls until it is re-armed) and finds what it counts.
fn claim(counter: &AtomicI64) -> Option<HotInfo> {
    counter.store(0, Ordering::Relaxed);
    let counters = COUNTERS.lock();
    let h = counters.as_ref()?.get(&(counter as *const AtomicI64 as usize))?;
    Some((h.session.upgrade()?, h.dylib.upgrade()?, h.name.clone(), h.counted, h.module, h.before, h.body))
}

/// Called by a first-tier function whose call counter ran out: claims the counter, asks the dylib's
/// policy, and queues the function (`reoptimize` de-duplicates racing callers). Never blocks for long: a
/// lookup, the policy, a queue push.
pub(crate) extern "C" fn genjit_hot(counter: *const AtomicI64) {
    // SAFETY: the caller is the code of the live module that holds this counter (an 8-aligned i64 in its
    // data block, which stays mapped while its code runs).
    let counter = unsafe { &*counter };
    if let Some(hot) = claim(counter) {
        decide(counter, hot);
    }
}

/// Counts down a counter a first-tier back-edge found positive; true for the decrement that reaches zero.
/// Plain load and store: racing threads may lose a decrement, never skip the threshold (only a decrement
/// from 1 reaches 0).
fn count_down(counter: &AtomicI64) -> bool {
    let left = counter.load(Ordering::Relaxed);
    if left <= 0 {
        return false; // claimed meanwhile
    }
    counter.store(left - 1, Ordering::Relaxed);
    left == 1
}

/// Called by a first-tier back-edge while its function's back-edge counter is positive (one that cannot
/// transfer to an OSR entry): counts it down, and when it runs out, as [`genjit_hot`].
pub(crate) extern "C" fn genjit_back_edge(counter: *const AtomicI64) {
    // SAFETY: as in `genjit_hot`.
    let counter = unsafe { &*counter };
    if count_down(counter) {
        if let Some(hot) = claim(counter) {
            decide(counter, hot);
        }
    }
}

/// Called by a first-tier back-edge to loop header `header` while its function's back-edge counter is
/// positive: counts it down, and when it runs out, returns the address of the OSR entry the call is to
/// continue in (see `compile::osr`), having filled the function's frame array at `frame` with its stack
/// slots' addresses, or 0 to stay. Still at the first tier: as [`genjit_hot`]. At the higher tier (whose
/// tier-up set the counter to `Tiering::osr`, so only a call still looping at the first tier that long
/// gets here) with an entry for this header: that entry, and the counter is left at 1, so every
/// first-tier call of the function looping now leaves at its next back-edge. Without one: the function
/// is compiled again with the entry (queued; the counter is set to 1 once it is there).
pub(crate) extern "C" fn genjit_hot_loop(counter: *const AtomicI64, header: u32, frame: *mut usize) -> usize {
    // SAFETY: as in `genjit_hot`.
    let counter = unsafe { &*counter };
    if !count_down(counter) {
        return 0;
    }
    let Some(hot) = claim(counter) else { return 0 };
    let dylib = Dylib::new(hot.0.clone(), hot.1.clone(), Arc::new(()));
    match dylib.osr_target(&hot.2, hot.4, header) {
        OsrTarget::Enter(addr, slots) => {
            for (k, &offset) in slots.iter().enumerate() {
                // SAFETY: `frame` is the calling function's frame array, one pointer for each of its
                // stack slots (`compile::tier::count_calls` sized it from the same `osr::slots` its stack
                // map lists, which `slots` was read from); `offset` is where a slot is from the array in
                // that same frame, so the sum is the slot's address.
                unsafe { frame.add(k).write((frame as usize).wrapping_add_signed(offset as isize)) };
            }
            counter.store(1, Ordering::Relaxed);
            tracing::debug!(function = %hot.2, header, "OSR transfer");
            addr
        }
        OsrTarget::Compile { has_entries } => {
            // A call looping at several headers (a loop nest; an interpreter's calls and returns) may
            // reach one with an entry soon: it asks again at its next back-edges, `PROBES` times at
            // most, before its function is compiled again for this header.
            let key = counter as *const AtomicI64 as usize;
            let probing = has_entries
                && COUNTERS.lock().as_mut().and_then(|c| c.get_mut(&key)).is_some_and(|h| {
                    h.probes += 1;
                    h.probes <= PROBES
                });
            if probing {
                counter.store(1, Ordering::Relaxed);
                return 0;
            }
            // Errors (the dylib closed, the function redefined meanwhile) leave the call where it is.
            let _ = dylib.reoptimize_with(&hot.2, Some((header, key)));
            0
        }
        OsrTarget::FirstTier => {
            decide(counter, hot);
            0
        }
        OsrTarget::Nowhere => 0,
    }
}

/// One destination of a computed goto an OSR entry may enter: its first-tier label's address and its
/// header's index (an element `{ptr, i64}` of the table `tier::count_calls` gives a dispatch).
#[repr(C)]
pub(crate) struct GotoLabel {
    address: usize,
    header: u64,
}

/// Called by a first-tier computed goto's dispatch (an `indirectbr` with a destination laid out before
/// it: a bytecode interpreter's next instruction) while its function's back-edge counter is positive,
/// with the address it is about to jump to: as [`genjit_hot_loop`] at the header that address labels, if
/// `labels` (`n` of them) lists it; else nothing (not even a count: a counter set to 1 for a call to
/// leave at its next back-edge must wait for a destination an entry can take).
pub(crate) extern "C" fn genjit_hot_goto(
    counter: *const AtomicI64,
    target: usize,
    frame: *mut usize,
    labels: *const GotoLabel,
    n: u32,
) -> usize {
    // SAFETY: `labels` is the dispatch's constant table of `n` elements, laid out as `GotoLabel` (its IR
    // type is `[n x {ptr, i64}]`), in the calling function's module, which is live while it runs.
    let labels = unsafe { std::slice::from_raw_parts(labels, n as usize) };
    match labels.iter().find(|l| l.address == target) {
        Some(label) => genjit_hot_loop(counter, label.header as u32, frame),
        None => 0,
    }
}

/// How many back-edges a first-tier call at a header without an OSR entry waits for one to a header with
/// one, before its function is compiled again for its header (see [`genjit_hot_loop`]).
const PROBES: u32 = 1_000;

/// Where a first-tier call looping in a function can continue (see [`genjit_hot_loop`]).
enum OsrTarget {
    /// At this OSR entry, with the calling function's stack slots where these offsets from its frame
    /// array say.
    Enter(usize, Box<[i32]>),
    /// At an entry of the higher tier, which has none for the header yet (but `has_entries` for others).
    Compile { has_entries: bool },
    /// Nowhere yet: the function is still at the first tier.
    FirstTier,
    /// Nowhere: the name is defined by another module now (or no longer defined), OSR is off, or the
    /// entry could not be built.
    Nowhere,
}

/// Asks the policy what a function whose counter ran out does, and does it: queue its tier-up, count
/// again, or stay.
fn decide(counter: &AtomicI64, hot: HotInfo) {
    let (session, shared, name, counted, module, before, body) = hot;
    let dylib = Dylib::new(session, shared, Arc::new(()));
    let (policy, event, threshold) = {
        let state = dylib.shared.state.lock();
        let Some(t) = state.tiering.as_ref() else { return };
        let Some(config) = t.config.as_ref() else { return };
        let threshold = match counted {
            tier::Counted::Calls => config.calls,
            tier::Counted::BackEdges => config.back_edges,
        };
        let module_name = state.modules.get(&module).map(|m| m.0.name().into_owned()).unwrap_or_default();
        let event = (module_name, t.tier_ups, t.pending.len(), t.compile_time[2]);
        (config.policy.clone(), event, threshold.unwrap_or(0))
    };
    let counted_now = before + threshold;
    let decision = match &policy {
        None => Decision::TierUp,
        // Caught: the hook runs inside JIT code, under an `extern "C"` frame, where a panic would abort.
        Some(policy) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            policy.decide(&HotFunction {
                dylib: &dylib.shared.name,
                function: &name,
                module: &event.0,
                trigger: match counted {
                    tier::Counted::Calls => Trigger::Calls,
                    tier::Counted::BackEdges => Trigger::BackEdges,
                },
                counted: counted_now,
                tier_ups: event.1,
                queued: event.2,
                tier_up_compile_time: event.3,
            })
        }))
        .unwrap_or_else(|_| {
            tracing::error!(function = %name, "the tiering policy panicked; the function stays where it is");
            Decision::Stay
        }),
    };
    tracing::debug!(function = %name, trigger = ?counted, counted = counted_now, decision = ?decision, "hot");
    match decision {
        Decision::TierUp => {
            // Errors (the function was redefined meanwhile, the dylib closed) leave it where it is.
            if dylib.reoptimize(&name).is_ok() {
                skip_counting(&dylib, &name, module, body);
            }
        }
        Decision::CountAgain(n) => {
            let key = counter as *const AtomicI64 as usize;
            if let Some(h) = COUNTERS.lock().as_mut().and_then(|c| c.get_mut(&key)) {
                h.before = counted_now;
            }
            counter.store(n.clamp(1, i64::MAX as u64) as i64, Ordering::Relaxed);
        }
        Decision::Stay => skip_counting(&dylib, &name, module, body),
    }
}

/// Sets the back-edge counters at `counters` to 1, if their modules are still live: the first-tier calls
/// that asked for an OSR entry then ask again at their next back-edge, and find it.
fn rearm_for_osr(counters: impl IntoIterator<Item = usize>) {
    let registered = COUNTERS.lock();
    for addr in counters {
        if registered.as_ref().is_some_and(|c| c.contains_key(&addr)) {
            // SAFETY: a registered counter's module is not retired (`forget_counters` runs first, under
            // this lock), so its data block is mapped; the i64 is 8-aligned and updated racily by design.
            let counter = unsafe { &*(addr as *const AtomicI64) };
            counter.store(1, Ordering::Relaxed);
        }
    }
}

/// Sets `function`'s back-edge counter in first-tier module `module` to `left` (under the dylib's link
/// lock, `module` live).
fn set_back_edges(module: &LoadedModule, function: &str, left: u64) {
    for s in module.symbols.iter() {
        if tier::counter_of(&s.name) == Some((function, tier::Counted::BackEdges)) {
            // SAFETY: as in `rearm`.
            let counter = unsafe { &*(s.addr as *const AtomicI64) };
            counter.store(left.min(i64::MAX as u64) as i64, Ordering::Relaxed);
        }
    }
}

/// Points `name`'s entry past its counting stub at the tier-0 body (`body`, see `sys::stubs`): its
/// calls are counted no more and cost nothing more than all-O0's. Only while module `module` still
/// defines the name and the entry still leads to that module's stub (a change may have moved it
/// meanwhile); under the dylib's link lock, like every redirect. A fallback from a dropped higher tier
/// points the entry at the stub again, with the counter re-armed.
fn skip_counting(dylib: &Dylib, name: &str, module: u64, body: usize) {
    if body == 0 {
        return;
    }
    let _link = dylib.shared.state.lock();
    let Some(super::table::Definition::Function { entry, module: Some(m), .. }) =
        dylib.shared.find(name, true)
    else {
        return;
    };
    let Some(current) = entry.target() else { return };
    let stub = m.symbols.get(name).filter(|s| s.counting).map(|s| s.addr);
    if m.serial == module && stub == Some(current.addr) {
        entry.redirect(Some(crate::runtime::entry::Target { addr: body, owner: current.owner }));
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
    pub(crate) options: super::lazy::Lazy,
    /// The module has finalizers, which may call any of its functions when it is removed.
    pub(crate) finalizers: bool,
}

/// A dylib's tiering state, kept under its link lock with the rest of its state. It exists once tiering
/// is enabled or a lazy module was added.
#[derive(Debug)]
pub(crate) struct TierState {
    /// `None`: no tier-ups (only lazy modules).
    pub(crate) config: Option<Tiering>,
    /// The kept IR of every tiered or lazy module (an *origin*), by serial.
    pub(crate) bitcode: HashMap<u64, KeptIr>,
    /// Each lazy origin's functions defined by lazy stubs.
    pub(crate) lazy: HashMap<u64, LazyUnit>,
    /// One gate per lazy function being compiled: its concurrent first callers wait on it.
    pub(crate) gates: HashMap<(u64, Arc<str>), Arc<Mutex<()>>>,
    /// Functions queued or compiling.
    pub(crate) pending: HashSet<Arc<str>>,
    /// Background compiles running now.
    pub(crate) compiling: usize,
    /// The layers of each origin, by the origin's serial.
    pub(crate) satellites: HashMap<u64, Vec<u64>>,
    /// Every layer, by its serial.
    pub(crate) layers: HashMap<u64, Layer>,
    /// The layers that inlined each callee (the index `invalidated_by` reads on every change).
    pub(crate) inlined_by: HashMap<Arc<str>, Vec<u64>>,
    pub(crate) tier_ups: u64,
    pub(crate) lazy_compiles: u64,
    pub(crate) speculative_compiles: u64,
    /// Time spent compiling lazy functions (all, and by speculation) and higher tiers.
    pub(crate) compile_time: [Duration; 3],
    /// Higher tiers dropped because a callee they inlined was redefined or removed.
    pub(crate) invalidations: u64,
    /// OSR entries wanted with a function's next higher tier: the header, and the back-edge counter to
    /// set to 1 once it is there (0: none), so the first-tier call that asked takes it at its next
    /// back-edge.
    pub(crate) osr_wanted: HashMap<Arc<str>, Vec<(u32, usize)>>,
    /// OSR entries that could not be built, by origin, function and header (not asked for again).
    pub(crate) osr_refused: HashSet<(u64, Arc<str>, u32)>,
    pub(crate) osr_entries: u64,
    pub(crate) osr_transfers: u64,
}

impl TierState {
    pub(crate) fn new(config: Option<Tiering>) -> TierState {
        TierState {
            config,
            bitcode: HashMap::new(),
            lazy: HashMap::new(),
            gates: HashMap::new(),
            pending: HashSet::new(),
            compiling: 0,
            satellites: HashMap::new(),
            layers: HashMap::new(),
            inlined_by: HashMap::new(),
            tier_ups: 0,
            lazy_compiles: 0,
            speculative_compiles: 0,
            compile_time: [Duration::ZERO; 3],
            invalidations: 0,
            osr_wanted: HashMap::new(),
            osr_refused: HashSet::new(),
            osr_entries: 0,
            osr_transfers: 0,
        }
    }

    /// Forgets what belonged to a module that is gone.
    pub(crate) fn forget(&mut self, serial: u64) {
        self.bitcode.remove(&serial);
        self.osr_refused.retain(|(origin, ..)| *origin != serial);
        self.lazy.remove(&serial);
        self.satellites.remove(&serial);
        if let Some(layer) = self.layers.remove(&serial) {
            if let Some(satellites) = self.satellites.get_mut(&layer.origin) {
                satellites.retain(|&s| s != serial);
            }
            for callee in &layer.inlined {
                if let Some(layers) = self.inlined_by.get_mut(callee) {
                    layers.retain(|&s| s != serial);
                    if layers.is_empty() {
                        self.inlined_by.remove(callee);
                    }
                }
            }
        }
    }

    /// Records a new layer, and the callees it inlined in the index.
    pub(crate) fn add_layer(&mut self, serial: u64, layer: Layer) {
        self.satellites.entry(layer.origin).or_default().push(serial);
        for callee in &layer.inlined {
            self.inlined_by.entry(callee.clone()).or_default().push(serial);
        }
        self.layers.insert(serial, layer);
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
        touched.iter().filter_map(|name| self.inlined_by.get(name)).flatten().copied().collect()
    }

    /// Whether any layer inlined anything.
    pub(crate) fn any_inlined(&self) -> bool {
        !self.inlined_by.is_empty()
    }

    /// The figures for `DylibStats` (`state` is the dylib's state this is part of).
    pub(crate) fn stats(&self, state: &super::table::State, dylib: &DylibShared) -> crate::TieringStats {
        let mut stats = crate::TieringStats {
            tier_ups: self.tier_ups,
            invalidations: self.invalidations,
            osr_entries: self.osr_entries,
            osr_transfers: self.osr_transfers,
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
    /// The functions moving, each with the module that must still define it (the origin, or a lazy
    /// function's first compile).
    pub(crate) functions: Vec<(Arc<str>, u64)>,
    /// The origin they were compiled from.
    pub(crate) origin: u64,
    /// The new module's tier.
    pub(crate) tier: u32,
    /// Callees the new bodies may have inlined: each must still be defined by `origin` or its layers.
    pub(crate) inlined: Vec<Arc<str>>,
}

/// Sets a first-tier function's counters back to their thresholds (after its higher tier was dropped, so
/// it can move up again).
pub(crate) fn rearm(module: &LoadedModule, function: &str, config: &Tiering) {
    for s in module.symbols.iter() {
        let threshold = match tier::counter_of(&s.name) {
            Some((f, tier::Counted::Calls)) if f == function => config.calls,
            Some((f, tier::Counted::BackEdges)) if f == function => config.back_edges,
            _ => None,
        };
        if let Some(threshold) = threshold {
            // SAFETY: the counter is an 8-aligned i64 in the live module's data block; its code updates it
            // with plain loads and stores (racy by design), so an atomic store is compatible.
            let counter = unsafe { &*(s.addr as *const AtomicI64) };
            counter.store(threshold.min(i64::MAX as u64) as i64, Ordering::Relaxed);
        }
    }
}

/// Background work of a JIT's tier-up threads.
pub(crate) enum Job {
    /// Compile a function's higher tier: `from` is the module defining it now.
    TierUp {
        dylib: Dylib,
        name: Arc<str>,
        origin: u64,
        from: u64,
        bitcode: KeptIr,
        config: Tiering,
        queued: Instant,
    },
    /// Compile a lazy function before anyone calls it.
    Speculate { dylib: Dylib, name: Arc<str>, origin: u64 },
}

impl Job {
    /// Whether two tier-ups compile together (same dylib, same origin: one module).
    fn batches_with(&self, other: &Job) -> bool {
        match (self, other) {
            (Job::TierUp { dylib: a, origin: o, .. }, Job::TierUp { dylib: b, origin: p, .. }) => {
                Arc::ptr_eq(&a.shared, &b.shared) && o == p
            }
            _ => false,
        }
    }

    /// Runs a batch [`Jobs::take`] handed out: one speculative compile, or tier-ups of one origin,
    /// compiled as one module.
    fn run(mut batch: Vec<Job>) {
        let Some(first) = batch.pop() else { return };
        match first {
            Job::TierUp { dylib, name, origin, from, bitcode, config, .. } => {
                let mut functions: Vec<(Arc<str>, u64)> = batch
                    .into_iter()
                    .filter_map(|j| match j {
                        Job::TierUp { name, from, .. } => Some((name, from)),
                        Job::Speculate { .. } => None,
                    })
                    .collect();
                functions.push((name, from));
                dylib.tier_up_now(functions, origin, bitcode, &config);
            }
            Job::Speculate { dylib, name, origin } => dylib.speculate(&name, origin),
        }
    }

    /// How long this job must still wait: a tier-up, for the tiering delay (no compile at the first tier
    /// for `delay`, `max_delay` at most since it was queued); speculation, not at all (it is start-up
    /// work itself).
    fn wait_left(&self) -> Duration {
        match self {
            Job::TierUp { dylib, config, queued, .. } => {
                let cap = config.max_delay.saturating_sub(queued.elapsed());
                dylib.session.quiet_left(config.delay).min(cap)
            }
            Job::Speculate { .. } => Duration::ZERO,
        }
    }
}

/// The queue of a JIT's tier-up threads.
///
/// A thread takes the oldest job whose wait is over, with every queued tier-up of the same origin (one
/// module for all of them): speculation at once, tier-ups once the JIT was quiet for the tiering delay.
/// Taking the batch only after the delay is what batches requests arriving during it (a channel's
/// receiver would hand the first request to one thread the moment it arrived, and the next one to
/// another). Waiting threads sleep on a condition variable until a job arrives or a delay ends.
#[derive(Default)]
pub(crate) struct Jobs {
    queue: Mutex<JobQueue>,
    ready: parking_lot::Condvar,
}

#[derive(Default)]
struct JobQueue {
    jobs: std::collections::VecDeque<Job>,
    /// Set when the session ends: threads leave once the queue is empty.
    closed: bool,
}

impl Jobs {
    pub(crate) fn push(&self, job: Job) {
        self.queue.lock().jobs.push_back(job);
        self.ready.notify_all();
    }

    pub(crate) fn close(&self) {
        self.queue.lock().closed = true;
        self.ready.notify_all();
    }

    /// Waits for the next batch (see the type's docs); `None` once closed and empty.
    fn take(&self) -> Option<Vec<Job>> {
        let mut queue = self.queue.lock();
        loop {
            if queue.jobs.is_empty() {
                if queue.closed {
                    return None;
                }
                self.ready.wait(&mut queue);
                continue;
            }
            let waits: Vec<Duration> = queue.jobs.iter().map(Job::wait_left).collect();
            if let Some(i) = waits.iter().position(Duration::is_zero) {
                let first = queue.jobs.remove(i).expect("an index of the queue");
                let mut batch = Vec::new();
                let mut k = 0;
                while k < queue.jobs.len() {
                    if first.batches_with(&queue.jobs[k]) {
                        batch.extend(queue.jobs.remove(k));
                    } else {
                        k += 1;
                    }
                }
                batch.push(first);
                return Some(batch);
            }
            let soonest = waits.into_iter().min().unwrap_or(Duration::ZERO);
            self.ready.wait_for(&mut queue, soonest);
        }
    }

    /// A tier-up thread's life: batches until the queue is closed.
    pub(crate) fn work(&self) {
        while let Some(batch) = self.take() {
            Job::run(batch);
        }
    }
}

impl Dylib {
    /// Marks a background compile of `names` as running, unless they were cancelled; returns the ones
    /// still wanted.
    fn start_compile<T: Clone>(&self, items: &[T], name: impl Fn(&T) -> &Arc<str>) -> Vec<T> {
        let mut state = self.shared.state.lock();
        let Some(t) = state.tiering.as_mut() else { return Vec::new() };
        let wanted: Vec<T> = items.iter().filter(|i| t.pending.contains(name(i))).cloned().collect();
        if !wanted.is_empty() {
            t.compiling += 1;
        }
        wanted
    }

    fn speculate(&self, name: &Arc<str>, origin: u64) {
        if self.start_compile(std::slice::from_ref(name), |n| n).is_empty() {
            return; // cancelled
        }
        let started = Instant::now();
        let compiled = self.materialize(name, origin, false);
        if let Err(e) = &compiled {
            tracing::debug!(function = %name, error = %e, "speculative compile dropped");
        }
        let mut state = self.shared.state.lock();
        if let Some(t) = state.tiering.as_mut() {
            t.pending.remove(name);
            t.compiling -= 1;
            if let Ok(true) = compiled {
                t.speculative_compiles += 1;
                t.compile_time[1] += started.elapsed();
            }
        }
        self.shared.tier_done.notify_all();
    }

    /// `origin`'s promoted IR: `kept`'s, derived from the source the first time (on this background
    /// thread, without the link lock) and kept in its place, unless the origin went meanwhile.
    fn promoted(&self, origin: u64, kept: &KeptIr) -> Result<Arc<[u8]>> {
        let KeptIr::Source(source) = kept else { return kept.promoted() };
        let promoted = kept.promoted()?;
        let mut state = self.shared.state.lock();
        if let Some(slot) = state.tiering.as_mut().and_then(|t| t.bitcode.get_mut(&origin)) {
            if matches!(slot, KeptIr::Source(s) if Arc::ptr_eq(s, source)) {
                *slot = KeptIr::Promoted(promoted.clone());
            }
        }
        Ok(promoted)
    }

    /// Compiles functions' higher tier as one module and commits it (see the module docs); if a user's
    /// change superseded one of a batch, the others are compiled again one by one. Always clears the
    /// pending marks.
    fn tier_up_now(&self, functions: Vec<(Arc<str>, u64)>, origin: u64, kept: KeptIr, config: &Tiering) {
        let functions = self.start_compile(&functions, |(n, _)| n);
        if functions.is_empty() {
            return; // cancelled
        }
        // The OSR entries wanted along, and which functions move up for the first time (the others are
        // compiled again for an entry).
        let (osr_headers, first_time) = {
            let state = self.shared.state.lock();
            let Some(t) = state.tiering.as_ref() else { return };
            let mut headers: Vec<(String, u32)> = Vec::new();
            for (name, _) in &functions {
                for &(h, _) in t.osr_wanted.get(name).into_iter().flatten() {
                    if !headers.iter().any(|(n, k)| **n == **name && *k == h) {
                        headers.push((name.to_string(), h));
                    }
                }
            }
            let first = functions.iter().filter(|(_, from)| t.layers.get(from).is_none_or(|l| l.tier == 0));
            (headers, first.cloned().collect::<Vec<_>>())
        };
        let started = Instant::now();
        let names: Vec<String> = functions.iter().map(|(n, _)| n.to_string()).collect();
        let level = config.level;
        let module = match names.as_slice() {
            [one] => format!("{one}@{level}"),
            [first, ..] => format!("{first}+{}@{level}", names.len() - 1),
            [] => return,
        };
        // Callees still defined by the module the functions came from (or its layers: the same functions)
        // may be inlined; one the user redefined since may not. Checked again at commit.
        let inlinable = |callee: &str| self.defined_by_unit(callee, origin);
        let extract = tier::Extract {
            functions: &names,
            level,
            name: module,
            inlinable: &inlinable,
            along: &|_| false,
            counters: None,
            transform: config.transform.as_ref(),
            pipeline: config.passes.as_deref(),
            osr: &osr_headers,
        };
        let mut built = Vec::new();
        let (bitcode, result) = match self.promoted(origin, &kept) {
            Ok(bitcode) => (Some(bitcode.clone()), tier::compile_function(&bitcode, extract)),
            Err(e) => (None, Err(e)),
        };
        let result = result.and_then(|up| {
            built = up.osr.clone();
            // Headers no entry can enter: no first-tier call asks for one from the commit on.
            if let (false, Some(t)) = (up.refused.is_empty(), self.shared.state.lock().tiering.as_mut()) {
                t.osr_refused.extend(up.refused.iter().map(|(f, h)| (origin, Arc::from(f.as_str()), *h)));
            }
            let inlined = up.inlined.iter().map(|c| Arc::from(c.as_str())).collect();
            let check = TierUpCheck { functions: functions.clone(), origin, tier: 1, inlined };
            let change = Change {
                add: vec![up.compiled],
                initializers: true,
                tier_up: Some(check),
                ..Change::default()
            };
            self.change(change)
        });
        match &result {
            Ok(_) => tracing::debug!(
                functions = ?names,
                level = %level,
                osr_entries = built.len(),
                compile_ms = started.elapsed().as_secs_f64() * 1e3,
                "tier-up committed"
            ),
            Err(e) => tracing::debug!(functions = ?names, error = %e, "tier-up dropped"),
        }
        if let (Err(Error::Superseded { .. }), true) = (&result, functions.len() > 1) {
            if let Some(t) = self.shared.state.lock().tiering.as_mut() {
                t.compiling -= 1;
            }
            let kept = bitcode.map_or(kept, KeptIr::Promoted);
            for (name, from) in functions {
                self.tier_up_now(vec![(name, from)], origin, kept.clone(), config);
            }
            return;
        }
        let mut guard = self.shared.state.lock();
        let mut rearm = Vec::new();
        let state = &mut *guard;
        if let Some(t) = state.tiering.as_mut() {
            for (name, _) in &functions {
                t.pending.remove(name);
                // The calls that asked for an entry ask again and find it; one that could not be built
                // is not asked for again.
                for (header, counter) in t.osr_wanted.remove(name).unwrap_or_default() {
                    if result.is_err() {
                        continue;
                    }
                    if built.iter().any(|(n, h)| **n == **name && *h == header) {
                        rearm.extend(Some(counter).filter(|&c| c != 0));
                    } else {
                        t.osr_refused.insert((origin, name.clone(), header));
                    }
                }
            }
            t.compiling -= 1;
            t.compile_time[2] += started.elapsed();
            if result.is_ok() {
                t.tier_ups += first_time.len() as u64;
                t.osr_entries += built.len() as u64;
                // A first-tier call of a function that moved up, still looping after `osr` back-edges,
                // asks for an OSR entry (see `genjit_hot_loop`); with OSR off, never.
                let osr = t.config.as_ref().and_then(|c| c.osr).unwrap_or(0);
                for (name, from) in &first_time {
                    if let Some(module) = state.modules.get(from) {
                        set_back_edges(&module.0, name, osr);
                    }
                }
            }
        }
        drop(guard);
        rearm_for_osr(rearm);
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
        if let Some(pipeline) = &tiering.passes {
            crate::compile::check_pipeline(pipeline).map_err(|e| {
                self.tiering_error(&format!("the higher tier's pass pipeline `{pipeline}` is invalid: {e}"))
            })?;
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
    /// compiled yet is left to its first call. [`Error::Thread`] when no tier-up thread can be started
    /// (nothing is queued then).
    pub fn reoptimize(&self, name: &str) -> Result<()> {
        self.reoptimize_with(name, None)
    }

    /// [`reoptimize`](Self::reoptimize), or for a function at the higher tier already, an OSR entry at a
    /// loop header (and the back-edge counter to set to 1 once it is there): the function is compiled
    /// again with the entries its higher tier had and the new one.
    fn reoptimize_with(&self, name: &str, osr: Option<(u32, usize)>) -> Result<()> {
        let definition = self.shared.find(name, true);
        let definer = definition.as_ref().and_then(|d| d.module().cloned());
        let mut state = self.shared.state.lock();
        let Some((t, config)) = state.tiering.as_mut().and_then(|t| t.config.clone().map(|c| (t, c))) else {
            return Err(self.tiering_error("tiering is not enabled"));
        };
        let Some(module) = definer else {
            return Err(Error::SymbolNotFound {
                dylib: self.shared.name.to_string(),
                symbol: name.to_string(),
            });
        };
        let from = module.serial;
        let mut wanted = Vec::new();
        let origin = match (t.layers.get(&from), osr) {
            (Some(layer), None) if layer.tier >= 1 => return Ok(()), // already at the higher tier
            (Some(layer), Some((header, counter))) if layer.tier >= 1 => {
                if module.osr_entry(&osr::entry_name(header, name)).is_some() {
                    return Ok(()); // the hook finds it
                }
                // Compiled again: with the entries it has, and the new one.
                wanted.extend(module.osr_headers(name).into_iter().map(|h| (h, 0)));
                wanted.push((header, counter));
                layer.origin
            }
            (Some(layer), _) => layer.origin,
            (None, _) if t.is_lazy(from, name) => return Ok(()),
            (None, _) => from,
        };
        let Some(bitcode) = t.bitcode.get(&origin).cloned() else {
            return Err(self.tiering_error(&format!("`{name}` is not defined by a tiered module")));
        };
        let name: Arc<str> = name.into();
        if !wanted.is_empty() {
            let list = t.osr_wanted.entry(name.clone()).or_default();
            for w in wanted {
                if !list.contains(&w) {
                    list.push(w);
                }
            }
        }
        if !t.pending.insert(name.clone()) {
            return Ok(());
        }
        drop(state);
        tracing::debug!(function = %name, osr_header = ?osr.map(|(h, _)| h), "tier-up queued");
        let queued = Instant::now();
        let job =
            Job::TierUp { dylib: self.clone(), name: name.clone(), origin, from, bitcode, config, queued };
        if let Err(e) = self.session.background(job) {
            if let Some(t) = self.shared.state.lock().tiering.as_mut() {
                t.pending.remove(&name);
            }
            return Err(Error::Thread { what: "a tier-up thread".to_string(), source: e });
        }
        Ok(())
    }

    /// Where a first-tier call of `name` (from module `module`) looping at `header` can continue: see
    /// [`genjit_hot_loop`]. Counts a transfer.
    fn osr_target(&self, name: &str, module: u64, header: u32) -> OsrTarget {
        let Some(super::table::Definition::Function { module: Some(m), .. }) = self.shared.find(name, true)
        else {
            return OsrTarget::Nowhere;
        };
        let mut guard = self.shared.state.lock();
        let state = &mut *guard;
        let Some(t) = state.tiering.as_mut() else { return OsrTarget::Nowhere };
        let origin = t.origin_of(module).unwrap_or(module);
        if !t.same_unit(origin, m.serial) {
            return OsrTarget::Nowhere;
        }
        if t.layers.get(&m.serial).is_none_or(|layer| layer.tier == 0) {
            return OsrTarget::FirstTier;
        }
        // The frame of the code running the loop: the counter's module's.
        let Some(slots) = state.modules.get(&module).and_then(|r| r.0.frame(name)) else {
            return OsrTarget::Nowhere;
        };
        match m.osr_entry(&osr::entry_name(header, name)) {
            Some(addr) => {
                t.osr_transfers += 1;
                OsrTarget::Enter(addr, slots.into())
            }
            None if t.config.as_ref().is_some_and(|c| c.osr.is_some())
                && !t.osr_refused.contains(&(origin, Arc::from(name), header)) =>
            {
                OsrTarget::Compile { has_entries: !m.osr_headers(name).is_empty() }
            }
            None => OsrTarget::Nowhere,
        }
    }

    /// Where `name` stands: its tier, whether a tier-up is queued or compiling, and which callees its body
    /// may have inlined. `None` when the dylib does not define it from a tiered module.
    pub fn tier_status(&self, name: &str) -> Option<TierStatus> {
        let definition = self.shared.find(name, true)?;
        let module = definition.module()?;
        let serial = module.serial;
        let stub = module.symbols.get(name).filter(|s| s.counting).map(|s| s.addr);
        let counting = stub.is_some()
            && match &definition {
                super::table::Definition::Function { entry, .. } => entry.target().map(|t| t.addr) == stub,
                _ => false,
            };
        let state = self.shared.state.lock();
        let t = state.tiering.as_ref()?;
        let queued = t.pending.contains(name);
        if t.bitcode.contains_key(&serial) {
            let lazy = t.is_lazy(serial, name);
            return Some(TierStatus { tier: 0, queued, inlined: Vec::new(), lazy, counting });
        }
        let layer = t.layers.get(&serial)?;
        let inlined = layer.inlined.iter().map(|c| c.to_string()).collect();
        Some(TierStatus { tier: layer.tier, queued, inlined, lazy: false, counting })
    }

    /// Waits until no tier-up (or speculative compile) of this dylib is queued or compiling, or `timeout`
    /// passes; returns whether none is.
    pub fn wait_for_tier_ups(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let idle = |t: &TierState| t.pending.is_empty() && t.compiling == 0;
        let mut state = self.shared.state.lock();
        loop {
            if state.tiering.as_ref().is_none_or(idle) {
                return true;
            }
            if self.shared.tier_done.wait_until(&mut state, deadline).timed_out() {
                return state.tiering.as_ref().is_none_or(idle);
            }
        }
    }

    /// Drops every queued tier-up and speculative compile of this dylib (compiles already running
    /// finish); returns how many were dropped. Their functions stay where they are, and their counters
    /// stay claimed (they do not ask again). For a host about to exit: then
    /// [`wait_for_tier_ups`](Self::wait_for_tier_ups) waits only for what is running.
    pub fn cancel_tier_ups(&self) -> usize {
        let mut state = self.shared.state.lock();
        state.tiering.as_mut().map_or(0, |t| {
            t.osr_wanted.clear();
            std::mem::take(&mut t.pending).len()
        })
    }
}
