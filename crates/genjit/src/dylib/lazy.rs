//! Lazy compilation: a module whose functions are compiled on their first call (DESIGN.md, "Tiering").
//!
//! [`Dylib::add_lazy_module`] compiles the module once with every function that can be compiled alone
//! left a declaration (`compile::tier::make_lazy`) and keeps its promoted IR, like a tiered module: the
//! module (the *origin*) holds the data, the constructors and the functions kept whole, and the linker
//! defines every lazy function at a lazy stub (`sys::stubs`), where its entry leads. The first call of
//! one enters [`genjit_lazy`] with the function's record, every argument register kept; under a per-function gate (concurrent first callers of *that* function wait; callers
//! of others do not), the function is compiled alone from the kept IR on the calling thread (reading only
//! its body: `tier::load_lazily`) and added as a change that redefines it, only if the origin still
//! defines it (a user's redefinition wins). Its entry then leads to the compiled body, and the stub's
//! trampoline jumps to the entry with the caller's registers and stack. With [`Lazy::callees`], its direct callees that are still lazy compile with it,
//! in the same module. With speculation, those callees are instead compiled by the JIT's background
//! thread after it.

use super::table::Definition;
use super::tiering::{Job, LazyUnit, TierState, TierUpCheck};
use super::{Change, Dylib, DylibShared, ModuleHandle, Session};
use crate::compile::{tier, Source};
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

/// How a lazy module compiles (see [`Dylib::add_lazy_module`]).
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct Lazy {
    /// After a function's first compile, compile its direct callees that are still lazy on the JIT's
    /// background thread, before they are called (default off).
    pub speculate: bool,
    /// A function's first compile also compiles its direct callees that are still lazy, in the same
    /// module (default off): fewer compiles, each with a fixed cost of a few milliseconds, for some
    /// functions compiled that may never be called.
    pub callees: bool,
}

impl Lazy {
    /// Functions compile on their first call, and only then.
    pub fn new() -> Lazy {
        Lazy::default()
    }

    /// Also compile a compiled function's direct callees in the background (see [`Lazy::speculate`]).
    pub fn speculate(mut self, speculate: bool) -> Lazy {
        self.speculate = speculate;
        self
    }

    /// Also compile a function's lazy direct callees with it (see [`Lazy::callees`]).
    pub fn callees(mut self, callees: bool) -> Lazy {
        self.callees = callees;
        self
    }
}

/// A lazy function's record, by address: what its stub's call of [`genjit_lazy`] is about.
struct Record {
    session: Weak<Session>,
    dylib: Weak<DylibShared>,
    name: Arc<str>,
    origin: u64,
}

static RECORDS: Mutex<Option<HashMap<usize, Record>>> = Mutex::new(None);

/// Records the lazy functions of an origin just published (under its dylib's link lock); returns their
/// names.
pub(crate) fn register(
    session: &Arc<Session>,
    dylib: &Arc<DylibShared>,
    module: &super::module::LoadedModule,
) -> Vec<Arc<str>> {
    let mut names = Vec::new();
    let mut records = RECORDS.lock();
    let records = records.get_or_insert_with(HashMap::new);
    for s in module.symbols.iter() {
        if let Some(name) = tier::lazy_function(&s.name) {
            let name: Arc<str> = name.into();
            let record = Record {
                session: Arc::downgrade(session),
                dylib: Arc::downgrade(dylib),
                name: name.clone(),
                origin: module.serial,
            };
            records.insert(s.addr, record);
            names.push(name);
        }
    }
    names
}

/// Forgets the records of a module that is retired.
pub(crate) fn forget(module: &super::module::LoadedModule) {
    if let Some(records) = RECORDS.lock().as_mut() {
        for s in module.symbols.iter().filter(|s| tier::lazy_function(&s.name).is_some()) {
            records.remove(&s.addr);
        }
    }
}

/// Called by a lazy function's stub (through its trampoline, `sys::stubs`): compiles the function if its
/// origin still defines it by the stub, and returns the address the trampoline jumps to (the function's
/// entry).
///
/// It cannot return an error to the JIT code that called the function: if the function cannot be
/// compiled (code generation failed after the module verified, the heap is exhausted) or was removed
/// while this call was on its way, it reports the function and the error on stderr and aborts, as
/// calling a removed function does (its tombstone). [`Dylib::compile_lazy`] compiles lazy functions
/// ahead of their calls, with errors.
pub(crate) extern "C" fn genjit_lazy(record: *const u8) -> usize {
    let found = RECORDS.lock().as_ref().and_then(|r| {
        r.get(&(record as usize)).map(|r| (r.session.upgrade(), r.dylib.upgrade(), r.name.clone(), r.origin))
    });
    let Some((Some(session), Some(shared), name, origin)) = found else {
        eprintln!("genjit: a lazy function was called after its module was removed");
        std::process::abort();
    };
    let dylib = Dylib::new(session, shared, Arc::new(()));
    match dylib.materialize(&name, origin, true).and_then(|_| dylib.definition(&name)) {
        Ok(Definition::Function { entry, .. }) => entry.stub(),
        Ok(_) => {
            eprintln!(
                "genjit: lazy function `{name}` of dylib `{}` is no longer a function",
                dylib.shared.name
            );
            std::process::abort();
        }
        Err(e) => {
            eprintln!(
                "genjit: lazy function `{name}` of dylib `{}` could not be compiled: {e}",
                dylib.shared.name
            );
            std::process::abort();
        }
    }
}

impl Dylib {
    /// Adds a module whose functions are compiled when first called (see the module docs): adding it
    /// costs parsing, verifying, writing its IR for later and compiling its data; each function's first
    /// call costs its compile; functions never called are never compiled
    /// ([`TieringStats::lazy_uncompiled`](crate::TieringStats)). Any signature can be lazy (variadic,
    /// `byval`, any calling convention); functions whose labels are addressed are compiled with the
    /// module (all of them if it has aliases or ifuncs). With tiering enabled, compiled functions count
    /// their calls and move up like any other.
    ///
    /// Refused when compilation is isolated (lazy functions compile in-process).
    pub fn add_lazy_module(&self, source: Source, lazy: Lazy) -> Result<ModuleHandle> {
        let mut handles = self.add_lazy_modules(vec![source], lazy)?;
        Ok(handles.pop().expect("one module added"))
    }

    /// [`add_lazy_module`](Self::add_lazy_module) for several modules linked as one batch, as
    /// [`add_modules`](Self::add_modules) does: they may reference each other in any order and in cycles.
    pub fn add_lazy_modules(&self, sources: Vec<Source>, lazy: Lazy) -> Result<Vec<ModuleHandle>> {
        if self.session.pool.is_some() {
            let reason = "compilation is isolated; lazy functions would compile in-process";
            return Err(self.tiering_error(reason));
        }
        self.shared.state.lock().tiering.get_or_insert_with(|| TierState::new(None));
        let add = self.compile_all(sources, true)?;
        self.change(Change { add, initializers: true, lazy, ..Change::default() })
    }

    /// Compiles lazy functions now, as their first call would (a function already compiled is left as it
    /// is): to pay compile time ahead, or to see a compile error as a `Result` rather than at a call.
    pub fn compile_lazy(&self, names: &[&str]) -> Result<()> {
        for name in names {
            let origin = {
                let definer = self.shared.find(name, true).and_then(|d| d.module().map(|m| m.serial));
                let state = self.shared.state.lock();
                let lazy = state.tiering.as_ref().zip(definer).filter(|(t, o)| t.is_lazy(*o, name));
                lazy.map(|(_, o)| o)
            };
            if let Some(origin) = origin {
                self.materialize(name, origin, false)?;
            } else if self.shared.find(name, true).is_none() {
                let (dylib, symbol) = (self.shared.name.to_string(), name.to_string());
                return Err(Error::SymbolNotFound { dylib, symbol });
            }
        }
        Ok(())
    }

    /// Compiles every lazy function of the dylib not compiled yet (as [`compile_lazy`](Self::compile_lazy)
    /// does); returns how many this call compiled.
    pub fn compile_all_lazy(&self) -> Result<usize> {
        let functions: Vec<(u64, Arc<str>)> = {
            let state = self.shared.state.lock();
            let units = state.tiering.as_ref().map(|t| &t.lazy).into_iter().flatten();
            units.flat_map(|(&origin, u)| u.functions.iter().map(move |f| (origin, f.clone()))).collect()
        };
        let mut compiled = 0;
        for (origin, name) in functions {
            compiled += usize::from(self.materialize(&name, origin, false)?);
        }
        Ok(compiled)
    }

    /// Like [`add_lazy_module`](Self::add_lazy_module), but the module is inert: its constructors and
    /// destructors never run (for fuzzing).
    #[doc(hidden)]
    pub fn add_lazy_module_without_init(&self, source: Source) -> Result<ModuleHandle> {
        self.shared.state.lock().tiering.get_or_insert_with(|| TierState::new(None));
        let compiled = self.compile(source, true)?;
        let mut handles = self.change(Change { add: vec![compiled], ..Change::default() })?;
        Ok(handles.pop().expect("one module added"))
    }

    /// Before a change removes lazy modules with finalizers: compiles their functions not compiled yet.
    /// Their destructors (and `atexit` handlers) run after the removal was committed, when the removed
    /// names can no longer be compiled and published, and may call any function of the module. A function
    /// that does not compile stays lazy (a finalizer calling it would abort, as the module docs say).
    pub(crate) fn compile_before_finalizers(&self, remove: &super::Remove) {
        let origins: Vec<u64> = {
            let state = self.shared.state.lock();
            let Some(t) = state.tiering.as_ref() else { return };
            let removed = |origin: &u64| match remove {
                super::Remove::Nothing => false,
                super::Remove::All => true,
                super::Remove::Modules(handles) => handles.iter().any(|h| h.serial == *origin),
            };
            t.lazy.iter().filter(|(o, u)| u.finalizers && removed(o)).map(|(&o, _)| o).collect()
        };
        for origin in origins {
            let functions: Vec<Arc<str>> = {
                let state = self.shared.state.lock();
                let unit = state.tiering.as_ref().and_then(|t| t.lazy.get(&origin));
                unit.map(|u| u.functions.iter().cloned().collect()).unwrap_or_default()
            };
            for name in functions {
                if let Err(e) = self.materialize(&name, origin, false) {
                    tracing::warn!(function = %name, error = %e, "a lazy function stays uncompiled at removal");
                }
            }
        }
    }

    /// Compiles lazy function `name` of `origin` if the origin still defines it (under the function's gate:
    /// one compile at a time, later callers find it done). Returns whether this call compiled it.
    pub(crate) fn materialize(&self, name: &str, origin: u64, on_call: bool) -> Result<bool> {
        let key: (u64, Arc<str>) = (origin, name.into());
        let gate = {
            let mut state = self.shared.state.lock();
            let Some(t) = state.tiering.as_mut() else { return Ok(false) };
            t.gates.entry(key.clone()).or_default().clone()
        };
        let result = {
            let _turn = gate.lock();
            self.compile_one_lazy(name, origin, on_call, false)
        };
        let mut state = self.shared.state.lock();
        if let Some(t) = state.tiering.as_mut() {
            if t.gates.get(&key).is_some_and(|g| Arc::ptr_eq(g, &gate)) && Arc::strong_count(&gate) == 2 {
                t.gates.remove(&key);
            }
        }
        result
    }

    fn compile_one_lazy(&self, name: &str, origin: u64, on_call: bool, alone: bool) -> Result<bool> {
        let definer = self.shared.find(name, true).and_then(|d| d.module().map(|m| m.serial));
        if definer != Some(origin) {
            return Ok(false); // compiled already, or redefined by the user
        }
        let started = Instant::now();
        let (bitcode, threshold, options) = {
            let state = self.shared.state.lock();
            let Some(t) = state.tiering.as_ref() else { return Ok(false) };
            let Some(bitcode) = t.bitcode.get(&origin).cloned() else { return Ok(false) };
            let threshold = t.config.as_ref().map(|c| c.thresholds());
            (bitcode, threshold, t.lazy.get(&origin).map(|u| u.options).unwrap_or_default())
        };
        let level = self.session.config.opt;
        let tag = format!("l{origin}");
        // With `Lazy::callees`: direct callees still lazy in the origin compile along (one module, one
        // commit), unless a batch was superseded (a callee compiled meanwhile): then the function alone.
        let along = |callee: &str| {
            options.callees
                && !alone
                && self.shared.find(callee, true).and_then(|d| d.module().map(|m| m.serial)) == Some(origin)
                && self.shared.state.lock().tiering.as_ref().is_some_and(|t| t.is_lazy(origin, callee))
        };
        let extract = tier::Extract {
            functions: &[name.to_string()],
            level,
            name: format!("{name}@lazy"),
            inlinable: &|_| false,
            along: &along,
            counters: threshold.map(|t| (tag.as_str(), t, self.session.config.verify_rewrites())),
            transform: None,
            pipeline: None,
            osr: &[],
        };
        self.session.note_compile();
        // A lazy origin keeps its promoted IR (`KeptIr::Promoted`): nothing to derive on this thread.
        let compiled = tier::compile_function(&bitcode.promoted()?, extract)?;
        let functions: Vec<_> = compiled.functions.iter().map(|f| (Arc::from(f.as_str()), origin)).collect();
        let batch = functions.len() > 1;
        let check = TierUpCheck { functions, origin, tier: 0, inlined: Vec::new() };
        let change = Change {
            add: vec![compiled.compiled],
            initializers: true,
            tier_up: Some(check),
            ..Change::default()
        };
        match self.change(change) {
            Ok(_) => {}
            Err(Error::Superseded { .. }) if batch => {
                return self.compile_one_lazy(name, origin, on_call, true)
            }
            Err(Error::Superseded { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        let mut queue = Vec::new();
        {
            let mut state = self.shared.state.lock();
            tracing::debug!(
                function = %name,
                functions = compiled.functions.len(),
                on_call,
                compile_ms = started.elapsed().as_secs_f64() * 1e3,
                "lazy compile"
            );
            if let Some(t) = state.tiering.as_mut() {
                t.lazy_compiles += 1;
                t.compile_time[0] += started.elapsed();
                if options.speculate && on_call {
                    let callees: Vec<Arc<str>> = compiled
                        .callees
                        .into_iter()
                        .filter(|c| t.is_lazy(origin, c))
                        .map(Arc::from)
                        .collect();
                    // Marked pending (one job per function), so `wait_for_tier_ups` waits for them too.
                    queue = callees.into_iter().filter(|c| t.pending.insert(c.clone())).collect();
                }
            }
        }
        for callee in queue {
            let job = Job::Speculate { dylib: self.clone(), name: callee.clone(), origin };
            // Speculation is optional: without a thread to run it, the callee compiles on its first call.
            if self.session.background(job).is_err() {
                if let Some(t) = self.shared.state.lock().tiering.as_mut() {
                    t.pending.remove(&callee);
                }
            }
        }
        Ok(true)
    }
}

impl TierState {
    /// Whether `name` is one of `origin`'s lazy functions.
    pub(crate) fn is_lazy(&self, origin: u64, name: &str) -> bool {
        self.lazy.get(&origin).is_some_and(|u: &LazyUnit| u.functions.contains(name))
    }
}
