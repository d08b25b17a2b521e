//! Planning one change to a dylib: every step that may fail, before anything is published.
//!
//! [`Dylib::plan`] runs four named steps under the dylib's link lock and the session's import lock:
//! 1. [`plan_entries`](Dylib::plan_entries): read the global names every new object defines; give each
//!    function its entry: the one the table already has (a redefinition: the signature must not change), an
//!    orphan left by a forced removal, or a fresh one with no body yet.
//! 2. [`link_all`](Dylib::link_all): link the new modules in order. Undefined names resolve through the
//!    JIT's order (runtime symbols, this dylib, its links, host, process), but names defined by the batch win
//!    over the table and names only defined by modules being removed do not resolve. A function resolves to
//!    its entry's stub, so the batch may be mutually recursive. Every JIT name a module imports is noted for
//!    the import index.
//! 3. [`next_definitions`](Dylib::next_definitions): the next definition of every touched name: a new
//!    strong definition replaces the current one, a new weak one never does (it becomes an *alternate*), a
//!    removed definition falls back to a live alternate or disappears.
//! 4. [`check_imports`](Dylib::check_imports): a name that disappears (or whose data moves) must not be
//!    imported by a live module outside the change, unless the removal is forced.
//!
//! An error in any step drops what was linked so far unpublished (blocks back to the heap) and releases
//! fresh entries: the JIT is as it was.

use super::imports::{Importer, Imports};
use super::module::LoadedModule;
use super::table::{Definition, State};
use super::txn::{Change, Remove};
use super::{Dylib, Removal};
use crate::compile::Compiled;
use crate::error::{Definer, Error, Result};
use crate::link::{self, definitions, DefinedSymbol};
use crate::runtime::entry::{Entry, EntryTable};
use crate::timings::ModuleTimings;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A name's next definition.
pub(super) enum Next {
    /// Defined by a module (new, or a live alternate).
    Module(Arc<LoadedModule>, DefinedSymbol),
    /// No longer defined.
    Gone,
}

/// One touched name: its definition now and next.
pub(super) struct Step {
    pub(super) name: Arc<str>,
    pub(super) old: Option<Definition>,
    pub(super) next: Next,
}

/// A linked module and the `(dylib id, name)` of every JIT name it imports.
pub(super) type Added = (Arc<LoadedModule>, Vec<(u64, String)>);

/// What resolving one module's names found: what it imports and must hold alive.
#[derive(Default)]
struct Imported {
    /// `(dylib id, name)` of every JIT name it imports, for the import index.
    recorded: Vec<(u64, String)>,
    /// Modules outside the batch whose data it references.
    deps: Vec<Arc<LoadedModule>>,
    /// Indices of the batch's modules whose data it references.
    batch_deps: Vec<usize>,
    /// Entries of the functions it imports.
    held: Vec<Arc<Entry>>,
}

/// The data the batch defines, by name: the module's index in the batch, the address, and whether it is
/// weak. A strong definition wins over weak ones; among weak ones, the first.
struct BatchData(HashMap<Arc<str>, (usize, usize, bool)>);

impl BatchData {
    fn new(placed: &[link::Placed<'_>]) -> BatchData {
        let mut data: HashMap<Arc<str>, (usize, usize, bool)> = HashMap::new();
        for (i, p) in placed.iter().enumerate() {
            for s in p.symbols().iter().filter(|s| !s.is_function) {
                let replaces = data.get(&s.name).is_none_or(|&(_, _, weak)| weak && !s.weak);
                if replaces {
                    data.insert(s.name.clone(), (i, s.addr, s.weak));
                }
            }
        }
        BatchData(data)
    }

    fn find(&self, name: &str) -> Option<(usize, usize, bool)> {
        self.0.get(name).copied()
    }
}

/// What the change takes away: modules by serial, and (for `Remove::All`) every redirectable.
pub(super) struct Scope {
    pub(super) removing: HashSet<u64>,
    pub(super) redirectables: Vec<String>,
    all: bool,
}

impl Scope {
    /// Whether the change removes definition `d`.
    fn removes(&self, d: &Definition) -> bool {
        match d.module() {
            Some(m) => self.removing.contains(&m.serial),
            None => self.all && matches!(d, Definition::Function { .. }),
        }
    }
}

/// Everything a commit needs; dropping it instead undoes the plan.
pub(super) struct Plan {
    pub(super) new: Vec<Added>,
    pub(super) entries: HashMap<Arc<str>, Arc<Entry>>,
    pub(super) steps: Vec<Step>,
    pub(super) losers: Vec<(Arc<LoadedModule>, DefinedSymbol)>,
    pub(super) scope: Scope,
    /// The kept IR of each new module of a tiered dylib (see `tiering`), and whether it is a lazy
    /// module with finalizers.
    pub(super) bitcode: Vec<(Option<crate::compile::KeptIr>, bool)>,
    pub(super) tier_up: Option<super::tiering::TierUpCheck>,
    /// Higher tiers the change takes out because they inlined a name it redefines or removes.
    pub(super) invalidated: usize,
    pub(super) lazy: super::lazy::Lazy,
}

type Symbols = HashMap<Arc<str>, Definition>;

impl Dylib {
    pub(super) fn plan(&self, state: &State, imports: &Imports, mut change: Change) -> Result<Plan> {
        let mut scope = self.scope(state, &change.remove)?;
        let removal = change.removal;
        let symbols = self.shared.symbols.read();
        let tier_up = change.tier_up.take();
        let lazy = change.lazy;
        let definer = |name: &str| symbols.get(name).and_then(Definition::module).map(|m| m.serial);
        if let Some(check) = &tier_up {
            // A user's redefinition or removal since the tier-up began wins, of the function or of a
            // callee it inlined.
            let t = state.tiering.as_ref().expect("tier-ups only in tiered dylibs");
            let moved =
                check.functions.iter().find(|(name, from)| definer(name) != Some(*from)).map(|(n, _)| n);
            let redefined = |c: &&Arc<str>| !definer(c).is_some_and(|s| t.same_unit(check.origin, s));
            let stale = moved.or_else(|| check.inlined.iter().find(redefined));
            if let Some(stale) = stale {
                return Err(Error::Superseded {
                    dylib: self.shared.name.to_string(),
                    symbol: stale.to_string(),
                });
            }
        }
        let invalidated = match (&tier_up, &state.tiering) {
            (None, Some(t)) if t.any_inlined() => self.invalidate(state, t, &symbols, &mut scope, &change)?,
            _ => 0,
        };
        let bitcode: Vec<(Option<crate::compile::KeptIr>, bool)> =
            change.add.iter_mut().map(|c| (c.kept.take(), c.finalizers)).collect();
        let entries = self.plan_entries(state, &symbols, &scope, &change.add)?;
        let new = self.link_all(&symbols, &scope, &entries, change)?;
        let (steps, losers) = self.next_definitions(state, &symbols, &scope, &new);
        if removal == Removal::Refuse {
            self.check_imports(state, imports, &scope, &entries, &steps)?;
        }
        Ok(Plan { new, entries, steps, losers, scope, bitcode, tier_up, invalidated, lazy })
    }

    fn scope(&self, state: &State, remove: &Remove) -> Result<Scope> {
        let mut scope = Scope { removing: HashSet::new(), redirectables: Vec::new(), all: false };
        match remove {
            Remove::Nothing => {}
            Remove::Modules(handles) => {
                for h in handles {
                    if h.dylib_id != self.shared.id || !state.modules.contains(&h.serial) {
                        return Err(Error::ModuleNotFound { module: h.name.clone(), dylib: h.dylib.clone() });
                    }
                    scope.removing.insert(h.serial);
                    // A module's higher tiers go with it.
                    let satellites = state.tiering.as_ref().and_then(|t| t.satellites.get(&h.serial));
                    scope
                        .removing
                        .extend(satellites.into_iter().flatten().filter(|s| state.modules.contains(*s)));
                }
            }
            Remove::All => {
                scope.all = true;
                scope.removing.extend(state.modules.iter().map(|m| m.0.serial));
                scope.redirectables.extend(state.redirectables.keys().cloned());
            }
        }
        Ok(scope)
    }

    /// Adds to the scope the higher tiers that inlined a name this change redefines or removes (their
    /// functions fall back to the first tier, in the same commit); returns how many.
    fn invalidate(
        &self,
        state: &State,
        t: &super::tiering::TierState,
        symbols: &Symbols,
        scope: &mut Scope,
        change: &Change,
    ) -> Result<usize> {
        let mut touched: HashSet<Arc<str>> = HashSet::new();
        for compiled in &change.add {
            touched.extend(definitions(compiled)?.into_iter().map(|d| d.name));
        }
        for serial in &scope.removing {
            let module = &state.modules.get(serial).expect("removing only live modules").0;
            let current = |n: &str| symbols.get(n).and_then(Definition::module).map(|m| m.serial);
            touched.extend(
                module.symbols.iter().filter(|s| current(&s.name) == Some(*serial)).map(|s| s.name.clone()),
            );
        }
        let mut count = 0;
        for satellite in t.invalidated_by(&touched) {
            if state.modules.contains(&satellite) && scope.removing.insert(satellite) {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Step 1: an entry for every function the batch defines.
    fn plan_entries(
        &self,
        state: &State,
        symbols: &Symbols,
        scope: &Scope,
        add: &[Compiled],
    ) -> Result<HashMap<Arc<str>, Arc<Entry>>> {
        let mut entries: HashMap<Arc<str>, Arc<Entry>> = HashMap::new();
        let mut strong: HashSet<Arc<str>> = HashSet::new();
        for compiled in add {
            for d in definitions(compiled)? {
                let duplicate = || Error::DuplicateDefinition {
                    symbol: d.name.to_string(),
                    definer: Definer::Module(compiled.name.clone()),
                    dylib: Some(self.shared.name.to_string()),
                };
                if !d.weak && !strong.insert(d.name.clone()) {
                    return Err(duplicate());
                }
                let existing = symbols.get(&d.name);
                let live = existing.filter(|e| !scope.removes(e));
                if !d.is_function {
                    match (existing, live) {
                        (_, Some(Definition::Function { .. })) | (Some(Definition::Host { .. }), _) => {
                            return Err(duplicate())
                        }
                        (None, _) if state.orphans.contains_key(&d.name) => return Err(duplicate()),
                        _ => {}
                    }
                    continue;
                }
                let signature = compiled.signatures.get(&*d.name);
                // A typed entry's `Func` handles call through it safely only while every body has its
                // signature: code of unknown signature (an object) may not take it over.
                let changed = |e: &Entry| match (e.signature(), signature) {
                    (Some(old), Some(new)) if old != new => Some((old.clone(), Some(new.clone()))),
                    (Some(old), None) => Some((old.clone(), None)),
                    _ => None,
                };
                let reuse = match (entries.get(&d.name), existing) {
                    (Some(e), _) => Some(e.clone()),
                    // A removed definition's entry is not reused under another signature: its `Func`
                    // handles keep the tombstoned entry, the new definition gets a fresh one.
                    (None, Some(Definition::Function { entry, .. }))
                        if live.is_none() && changed(entry).is_some() =>
                    {
                        None
                    }
                    (None, Some(Definition::Function { entry, .. })) => Some(entry.clone()),
                    (None, Some(Definition::Host { .. })) => return Err(duplicate()),
                    (None, Some(Definition::Data { .. })) if live.is_some() => return Err(duplicate()),
                    _ => state.orphans.get(&d.name).cloned(),
                };
                let entry = match reuse {
                    Some(e) => {
                        if let Some((old, new)) = changed(&e) {
                            let (module, symbol) = (compiled.name.clone(), d.name.to_string());
                            return Err(Error::SignatureChanged {
                                module,
                                symbol,
                                old: Box::new(old),
                                new: new.map(Box::new),
                            });
                        }
                        e
                    }
                    None => EntryTable::create(
                        &self.session.entries,
                        self.shared.scope,
                        d.name.clone(),
                        signature.cloned(),
                    )
                    .map_err(Error::Heap)?,
                };
                entries.insert(d.name.clone(), entry);
            }
        }
        Ok(entries)
    }

    /// Step 2: link every new module as one shared object: place them all (every definition of the batch
    /// gets its address), then resolve each against the whole batch, then relocate.
    fn link_all(
        &self,
        symbols: &Symbols,
        scope: &Scope,
        entries: &HashMap<Arc<str>, Arc<Entry>>,
        change: Change,
    ) -> Result<Vec<Added>> {
        let own = |name: &str| entries.get(name).map(|e| e.stub());
        let extras = self.session.config.extras();
        let compiled = change.add;
        let mut took = vec![Duration::ZERO; compiled.len()];
        let mut placed = Vec::with_capacity(compiled.len());
        for (c, took) in compiled.iter().zip(&mut took) {
            let _span = tracing::debug_span!("link", module = %c.name).entered();
            let start = Instant::now();
            // An error drops the modules placed so far, which gives their blocks back.
            placed.push(link::place(c, &self.session.heap, &own, extras)?);
            *took += start.elapsed();
        }
        let batch = BatchData::new(&placed);
        let mut linked: Vec<(link::Linked, Imported)> = Vec::with_capacity(placed.len());
        for ((p, c), took) in placed.into_iter().zip(&compiled).zip(&mut took) {
            let _span = tracing::debug_span!("link", module = %c.name).entered();
            let start = Instant::now();
            let mut found = Imported::default();
            let mut resolve =
                |name: &str| self.resolve_for_link(symbols, scope, entries, &batch, name, &mut found);
            match p.finish(&mut resolve) {
                Ok(l) => {
                    *took += start.elapsed();
                    linked.push((l, found));
                }
                Err(e) => {
                    // The modules placed after this one are dropped with the iterator (blocks back);
                    // the ones already finished are discarded here.
                    linked.into_iter().for_each(|(l, _)| l.discard(&self.session.heap));
                    return Err(match e {
                        Error::UnresolvedSymbols { module, symbols, .. } => {
                            Error::UnresolvedSymbols { module, dylib: self.shared.name.to_string(), symbols }
                        }
                        e => e,
                    });
                }
            }
        }
        Ok(self.load_all(compiled, linked, took, change.initializers))
    }

    /// Turns the batch's linked images into modules, then adds the data dependencies between them.
    fn load_all(
        &self,
        compiled: Vec<Compiled>,
        linked: Vec<(link::Linked, Imported)>,
        took: Vec<Duration>,
        initializers: bool,
    ) -> Vec<Added> {
        let mut added: Vec<Added> = Vec::with_capacity(linked.len());
        let mut batch_deps = Vec::with_capacity(linked.len());
        for ((c, (mut l, found)), took) in compiled.into_iter().zip(linked).zip(took) {
            if !initializers {
                l.init.clear();
                l.fini.clear();
                l.eh_frame = None;
            } else {
                // SAFETY: the module is fully relocated; its ifunc resolvers are its own argument-less
                // functions (checked as indirect functions by the linker), run as the dynamic loader would.
                unsafe { l.resolve_ifuncs() };
            }
            let timings = ModuleTimings { link: took, ..c.timings };
            let module =
                LoadedModule::new(c.name, c.default_serial, l, &self.shared, found.deps, found.held, timings);
            added.push((Arc::new(module), found.recorded));
            batch_deps.push(found.batch_deps);
        }
        for (i, deps) in batch_deps.into_iter().enumerate() {
            for j in deps {
                added[i].0.add_dep(added[j].0.clone());
            }
        }
        added
    }

    /// Where `name` resolves for a module of this batch, noting what the module must hold and import:
    /// genjit's runtime symbols; the batch's functions (their entries); the batch's strong data; this
    /// dylib's table (minus what the change removes); the batch's weak data; the linked dylibs' exported
    /// names; and only then the JIT's host symbols and the process's.
    fn resolve_for_link(
        &self,
        symbols: &Symbols,
        scope: &Scope,
        entries: &HashMap<Arc<str>, Arc<Entry>>,
        batch: &BatchData,
        name: &str,
        found: &mut Imported,
    ) -> Option<usize> {
        if let Some(addr) = self.session.runtime_symbol(&self.shared, name) {
            return Some(addr);
        }
        if let Some(e) = entries.get(name) {
            found.recorded.push((self.shared.id, name.to_string()));
            found.held.push(e.clone());
            return Some(e.stub());
        }
        let table = || symbols.get(name).filter(|d| !scope.removes(d));
        if let Some((i, addr, weak)) = batch.find(name) {
            if !weak || table().is_none() {
                found.recorded.push((self.shared.id, name.to_string()));
                if !found.batch_deps.contains(&i) {
                    found.batch_deps.push(i);
                }
                return Some(addr);
            }
        }
        let linked = || self.shared.links().iter().find_map(|l| l.find(name, false).map(|d| (l.id, d)));
        let Some((dylib_id, def)) = table().cloned().map(|d| (self.shared.id, d)).or_else(linked) else {
            return self.session.outside_symbol(name);
        };
        if !matches!(def, Definition::Host { .. }) {
            found.recorded.push((dylib_id, name.to_string()));
        }
        match &def {
            Definition::Data { module, .. } if !found.deps.iter().any(|d| Arc::ptr_eq(d, module)) => {
                found.deps.push(module.clone())
            }
            Definition::Function { entry, .. } => found.held.push(entry.clone()),
            _ => {}
        }
        Some(def.addr())
    }

    /// Step 3: the next definition of every touched name, and the weak definitions that lost.
    #[allow(clippy::type_complexity)]
    fn next_definitions(
        &self,
        state: &State,
        symbols: &Symbols,
        scope: &Scope,
        new: &[Added],
    ) -> (Vec<Step>, Vec<(Arc<LoadedModule>, DefinedSymbol)>) {
        let mut touched: BTreeSet<Arc<str>> = BTreeSet::new();
        for serial in &scope.removing {
            let module = &state.modules.get(serial).expect("removing only live modules").0;
            for s in module.symbols.iter() {
                let current = symbols.get(&s.name).and_then(|d| d.module()).map(|m| m.serial);
                if current == Some(*serial) {
                    touched.insert(s.name.clone());
                }
            }
        }
        touched.extend(scope.redirectables.iter().map(|n| Arc::from(n.as_str())));
        let mut by_name: HashMap<&str, Vec<(&Arc<LoadedModule>, &DefinedSymbol)>> = HashMap::new();
        for (m, _) in new {
            for s in m.symbols.iter() {
                touched.insert(s.name.clone());
                by_name.entry(&*s.name).or_default().push((m, s));
            }
        }
        let mut steps = Vec::new();
        let mut losers = Vec::new();
        for name in touched {
            let old = symbols.get(&name).cloned();
            let live = old.as_ref().filter(|d| !scope.removes(d));
            let candidates = by_name.get(&*name).map(Vec::as_slice).unwrap_or_default();
            let first = candidates.iter().find(|(_, s)| !s.weak).or(candidates.first());
            let winner = match first {
                Some((m, s)) if !s.weak || live.is_none() => Some(((*m).clone(), (*s).clone())),
                _ if live.is_some() => None,
                _ => self.tier_fallback(state, scope, old.as_ref(), &name).or_else(|| {
                    let mut alternates = state.alternates.get(&name).into_iter().flatten();
                    alternates.find(|(m, _)| !scope.removing.contains(&m.serial)).cloned()
                }),
            };
            for (m, s) in candidates {
                if !winner.as_ref().is_some_and(|(w, _)| Arc::ptr_eq(w, m)) {
                    losers.push(((*m).clone(), (*s).clone()));
                }
            }
            match winner {
                Some((m, s)) => steps.push(Step { name, old, next: Next::Module(m, s) }),
                None if live.is_none() => steps.push(Step { name, old, next: Next::Gone }),
                None => {}
            }
        }
        (steps, losers)
    }

    /// When a higher tier's definition of `name` goes and the first-tier module it came from stays: that
    /// module's own definition, which the higher tier had replaced.
    fn tier_fallback(
        &self,
        state: &State,
        scope: &Scope,
        old: Option<&Definition>,
        name: &str,
    ) -> Option<(Arc<LoadedModule>, DefinedSymbol)> {
        let t = state.tiering.as_ref()?;
        let layer = t.layers.get(&old?.module()?.serial)?;
        // The highest remaining layer below it that defines the name (a lazy function's first compile),
        // else the origin (a first tier, or a lazy function's stub, which compiles it again).
        let below =
            t.satellites.get(&layer.origin).into_iter().flatten().filter(|s| {
                !scope.removing.contains(s) && t.layers.get(s).is_some_and(|l| l.tier < layer.tier)
            });
        let candidates = below.chain(std::iter::once(&layer.origin)).filter(|s| !scope.removing.contains(s));
        let found = candidates.filter_map(|s| {
            let module = &state.modules.get(s)?.0;
            let symbol = module.symbols.get(name)?;
            Some((t.layers.get(s).map_or(0, |l| l.tier), module.clone(), symbol.clone()))
        });
        // The highest tier; among equals the first (a lazy function's compile before its stub).
        let (_, module, symbol) = found.min_by_key(|(tier, ..)| std::cmp::Reverse(*tier))?;
        Some((module, symbol))
    }

    /// Step 4: nothing a live importer uses may disappear or move.
    fn check_imports(
        &self,
        state: &State,
        imports: &Imports,
        scope: &Scope,
        entries: &HashMap<Arc<str>, Arc<Entry>>,
        steps: &[Step],
    ) -> Result<()> {
        let leaving: HashSet<u64> = scope
            .removing
            .iter()
            .copied()
            .chain(scope.redirectables.iter().filter_map(|n| state.redirectables.get(n).copied()))
            .collect();
        for step in steps {
            let Some(old) = &step.old else { continue };
            let moves = match (&step.next, old) {
                (Next::Gone, _) => true,
                // A function keeps its identity unless it became data or got a fresh entry.
                (Next::Module(_, s), Definition::Function { entry, .. }) => {
                    !s.is_function || entries.get(&step.name).is_some_and(|e| !Arc::ptr_eq(e, entry))
                }
                (Next::Module(..), _) => true,
            };
            if !moves {
                continue;
            }
            let importers: Vec<Importer> = imports
                .importers(self.shared.id, &step.name)
                .filter(|(serial, _)| !leaving.contains(serial))
                .map(|(_, importer)| importer.clone())
                .collect();
            if !importers.is_empty() {
                let definer =
                    old.module().map_or(Definer::Redirectable, |m| Definer::Module(m.name().into_owned()));
                return Err(Error::ModuleInUse { definer, symbol: step.name.to_string(), importers });
            }
        }
        Ok(())
    }
}
