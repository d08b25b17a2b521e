//! One change to a dylib: add, redefine, remove and replace are all this transaction.
//!
//! ## Steps (under the dylib's link lock and the JIT's import lock)
//! 1. **Plan entries.** Read the global names every new object defines. Each function name gets its entry:
//!    the one the table already has (a redefinition: the signature must not change), an orphan left by a
//!    forced removal, or a fresh one with no body yet.
//! 2. **Link** the new modules in order. Undefined names resolve through the JIT's order (runtime symbols,
//!    this dylib, its links, host, process), but names defined by the batch win over the table and names
//!    only defined by modules being removed do not resolve. A function resolves to its entry's stub, so the
//!    batch may be mutually recursive. Every JIT name a module imports is noted for the import index.
//! 3. **Compute** the next definition of every touched name: a new strong definition replaces the current
//!    one, a new weak one never does (it becomes an *alternate*), a removed definition falls back to a live
//!    alternate or disappears.
//! 4. **Check**: a name that disappears (or whose data moves) must not be imported by a live module outside
//!    the change, unless the removal is forced. On any error everything linked so far is dropped unpublished
//!    and fresh entries are released: the JIT is as it was.
//! 5. **Commit** under the symbol table's write lock: redirect every changed entry (old bodies retire
//!    through epoch reclamation), update the table, the import index, the alternates; modules that were
//!    removed or lost every name are taken out.
//!
//! Then, with no lock held, retired modules run their destructors and go to epoch reclamation, and new
//! modules run their constructors.

use super::*;
use crate::compile::Compiled;
use crate::jit::Imports;
use crate::link::{definitions, link};
use std::collections::{BTreeSet, HashSet};

/// Which modules a change removes.
#[derive(Clone, Debug, Default)]
pub(crate) enum Remove {
    #[default]
    Nothing,
    Modules(Vec<ModuleHandle>),
    /// Every module and redirectable symbol.
    All,
}

/// A change to one dylib.
#[derive(Default)]
pub(crate) struct Change {
    pub(crate) add: Vec<Compiled>,
    pub(crate) remove: Remove,
    pub(crate) removal: Removal,
    /// Run constructors/destructors and register unwind info (false only for fuzzing).
    pub(crate) initializers: bool,
}

/// A name's next definition.
enum Next {
    /// Defined by a module (new, or a live alternate).
    Module(Arc<LoadedModule>, DefinedSymbol),
    /// No longer defined.
    Gone,
}

struct Step {
    name: String,
    old: Option<Definition>,
    next: Next,
}

/// A linked module and the `(dylib id, name)` of every JIT name it imports.
type Linked = (Arc<LoadedModule>, Vec<(u64, String)>);

struct Plan {
    new: Vec<Linked>,
    entries: HashMap<String, Arc<Entry>>,
    steps: Vec<Step>,
    losers: Vec<(Arc<LoadedModule>, DefinedSymbol)>,
    removing: HashSet<u64>,
    redirectables: Vec<String>,
}

/// What a commit leaves for after the locks are released.
struct Done {
    retired: Vec<Arc<LoadedModule>>,
    new: Vec<Arc<LoadedModule>>,
    garbage: Vec<Definition>,
    orphans: Vec<Arc<Entry>>,
    /// Entries of names that went away, with the target they had: tombstoned after the destructors ran.
    tombstones: Vec<(Arc<Entry>, Option<Arc<Target>>)>,
}

impl Dylib {
    pub(crate) fn change(&self, change: Change) -> Result<Vec<ModuleHandle>> {
        self.change_then(change, &|| {})
    }

    /// [`change`](Self::change), running `finalize` after the retired modules' destructors and before
    /// their functions are tombstoned (dylib removal runs `__cxa_finalize` there).
    pub(crate) fn change_then(&self, change: Change, finalize: &dyn Fn()) -> Result<Vec<ModuleHandle>> {
        let initializers = change.initializers;
        let done = {
            let mut state = lock(&self.shared.state);
            if state.closed {
                return Err(Error::DylibRemoved(self.shared.name.clone()));
            }
            let mut imports = lock(&self.jit.imports);
            let plan = self.plan(&state, &imports, change)?;
            self.commit(&mut state, &mut imports, plan)
        };
        // Destructors (and atexit handlers) run while the removed names' entries still reach their bodies:
        // a destructor may call its own module's functions, through their entries.
        for m in &done.retired {
            m.run_list(&m.fini);
        }
        finalize();
        self.shared.tombstone(done.tombstones);
        for m in &done.retired {
            m.retire();
        }
        let handles = done.new.iter().map(|m| self.handle(m)).collect();
        let new = done.new.clone();
        crate::reclaim::retire((done.retired, done.garbage, done.orphans), Some(self.jit.lag.clone()));
        if initializers {
            for m in &new {
                m.run_list(&m.init);
            }
        }
        Ok(handles)
    }

    fn plan(&self, state: &State, imports: &Imports, change: Change) -> Result<Plan> {
        let dylib = &self.shared.name;
        let mut removing = HashSet::new();
        let mut redirectables = Vec::new();
        match &change.remove {
            Remove::Nothing => {}
            Remove::Modules(handles) => {
                for h in handles {
                    if h.dylib_id != self.shared.id || !state.modules.contains_key(&h.serial) {
                        return Err(Error::ModuleNotFound { module: h.name.clone(), dylib: h.dylib.clone() });
                    }
                    removing.insert(h.serial);
                }
            }
            Remove::All => {
                removing.extend(state.modules.keys().copied());
                redirectables.extend(state.redirectables.keys().cloned());
            }
        }
        let symbols = read(&self.shared.symbols);
        let removed = |d: &Definition| match d.module() {
            Some(m) => removing.contains(&m.serial),
            None => matches!(d, Definition::Function { .. }) && matches!(change.remove, Remove::All),
        };

        // 1. Entries for every function the batch defines.
        let defs = change.add.iter().map(definitions).collect::<Result<Vec<_>>>()?;
        let mut entries: HashMap<String, Arc<Entry>> = HashMap::new();
        let mut strong: HashSet<&str> = HashSet::new();
        for (compiled, defs) in change.add.iter().zip(&defs) {
            for d in defs {
                let duplicate = || Error::DuplicateDefinition {
                    module: compiled.name.clone(),
                    symbol: d.name.clone(),
                    dylib: dylib.clone(),
                };
                if !d.weak && !strong.insert(d.name.as_str()) {
                    return Err(duplicate());
                }
                let existing = symbols.get(&d.name);
                if !d.is_function {
                    match existing {
                        Some(Definition::Function { .. }) if !removed(existing.expect("matched")) => {
                            return Err(duplicate())
                        }
                        Some(Definition::Host { .. }) => return Err(duplicate()),
                        None if state.orphans.contains_key(&d.name) => return Err(duplicate()),
                        _ => {}
                    }
                    continue;
                }
                let sig = compiled.signatures.get(&d.name);
                let changed = |e: &Entry| match (&e.signature, sig) {
                    (Some(old), Some(new)) if old != new => Some((old.to_string(), new.to_string())),
                    _ => None,
                };
                let refuse = |(old, new)| Error::SignatureChanged {
                    module: compiled.name.clone(),
                    symbol: d.name.clone(),
                    old,
                    new,
                };
                let reuse = match (entries.get(&d.name), existing) {
                    (Some(e), _) => Some(e.clone()),
                    (None, Some(Definition::Function { entry, .. })) => match changed(entry) {
                        // A removed definition's entry is not reused under another signature: its
                        // `Func` handles keep the tombstoned entry, the new definition gets a fresh one.
                        Some(_) if removed(existing.expect("matched")) => None,
                        _ => Some(entry.clone()),
                    },
                    (None, Some(Definition::Host { .. })) => return Err(duplicate()),
                    (None, Some(data @ Definition::Data { .. })) if !removed(data) => return Err(duplicate()),
                    _ => state.orphans.get(&d.name).cloned(),
                };
                let entry = match reuse {
                    Some(e) => {
                        if let Some(c) = changed(&e) {
                            return Err(refuse(c));
                        }
                        e
                    }
                    None => EntryTable::create(&self.jit.entries, dylib, &d.name, sig.cloned())?,
                };
                entries.insert(d.name.clone(), entry);
            }
        }

        // 2. Link.
        let mut new: Vec<Linked> = Vec::new();
        for compiled in &change.add {
            let mut deps: Vec<Arc<LoadedModule>> = Vec::new();
            let mut held: Vec<Arc<Entry>> = Vec::new();
            let mut recorded: Vec<(u64, String)> = Vec::new();
            let batch_data = |name: &str| {
                new.iter().find_map(|(m, _)| {
                    m.symbols.iter().find(|s| s.name == name && !s.is_function).map(|s| (s.addr, m.clone()))
                })
            };
            let mut resolve = |name: &str| {
                if let Some(addr) = self.jit.runtime_symbol(&self.shared, name) {
                    return Some(addr);
                }
                if let Some(e) = entries.get(name) {
                    recorded.push((self.shared.id, name.to_string()));
                    held.push(e.clone());
                    return Some(e.stub());
                }
                let found = batch_data(name)
                    .map(|(addr, module)| (self.shared.id, Definition::Data { addr, module, hidden: false }))
                    .or_else(|| {
                        symbols.get(name).filter(|d| !removed(d)).map(|d| (self.shared.id, d.clone()))
                    })
                    .or_else(|| {
                        self.shared.links().iter().find_map(|l| l.find(name, false).map(|d| (l.id, d)))
                    });
                let Some((dylib_id, def)) = found else { return self.jit.outside_symbol(name) };
                if !matches!(def, Definition::Host { .. }) {
                    recorded.push((dylib_id, name.to_string()));
                }
                match &def {
                    Definition::Data { module, .. } if !deps.iter().any(|d| Arc::ptr_eq(d, module)) => {
                        deps.push(module.clone())
                    }
                    Definition::Function { entry, .. } => held.push(entry.clone()),
                    _ => {}
                }
                Some(def.addr())
            };
            let own = |name: &str| entries.get(name).map(|e| e.stub());
            let mut linked = link(compiled, &self.jit.heap, &mut resolve, &own).map_err(|e| match e {
                Error::UnresolvedSymbols { module, symbols, .. } => {
                    Error::UnresolvedSymbols { module, dylib: dylib.clone(), symbols }
                }
                e => e,
            })?;
            if !change.initializers {
                linked.init.clear();
                linked.fini.clear();
                linked.eh_frame = None;
            }
            let module = LoadedModule::new(
                compiled.name.clone(),
                next_serial(),
                linked,
                self.jit.heap.clone(),
                deps,
                held,
            );
            new.push((Arc::new(module), recorded));
        }

        // 3. The next definition of every touched name.
        let mut touched: BTreeSet<String> = BTreeSet::new();
        for serial in &removing {
            for s in &state.modules[serial].symbols {
                let current = symbols.get(&s.name).and_then(|d| d.module()).map(|m| m.serial);
                if current == Some(*serial) {
                    touched.insert(s.name.clone());
                }
            }
        }
        touched.extend(redirectables.iter().cloned());
        for (m, _) in &new {
            touched.extend(m.symbols.iter().map(|s| s.name.clone()));
        }
        let mut by_name: HashMap<&str, Vec<(&Arc<LoadedModule>, &DefinedSymbol)>> = HashMap::new();
        for (m, _) in &new {
            for s in &m.symbols {
                by_name.entry(s.name.as_str()).or_default().push((m, s));
            }
        }
        let mut steps = Vec::new();
        let mut losers = Vec::new();
        for name in touched {
            let old = symbols.get(&name).cloned();
            let live = old.as_ref().filter(|d| !removed(d));
            let candidates = by_name.get(name.as_str()).map(Vec::as_slice).unwrap_or_default();
            let first = candidates.iter().find(|(_, s)| !s.weak).or(candidates.first());
            let winner = match first {
                Some((m, s)) if !s.weak || live.is_none() => Some(((*m).clone(), (*s).clone())),
                _ if live.is_some() => None,
                _ => {
                    let mut alternates = state.alternates.get(&name).into_iter().flatten();
                    let alive = |(m, _): &&(Arc<LoadedModule>, DefinedSymbol)| !removing.contains(&m.serial);
                    alternates.find(alive).map(|(m, s)| (m.clone(), s.clone()))
                }
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

        // 4. Check: nothing a live module imports may disappear or move.
        if change.removal == Removal::Refuse {
            let leaving: HashSet<u64> = removing
                .iter()
                .copied()
                .chain(redirectables.iter().filter_map(|n| state.redirectables.get(n).copied()))
                .collect();
            for step in &steps {
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
                let users: Vec<String> = imports
                    .importers(self.shared.id, &step.name)
                    .filter(|(serial, _)| !leaving.contains(serial))
                    .map(|(_, label)| label.to_string())
                    .collect();
                if !users.is_empty() {
                    let module =
                        old.module().map_or(format!("redirectable `{}`", step.name), |m| m.name.clone());
                    return Err(Error::ModuleInUse { module, symbol: step.name.clone(), importers: users });
                }
            }
        }
        Ok(Plan { new, entries, steps, losers, removing, redirectables })
    }

    fn commit(&self, state: &mut State, imports: &mut Imports, plan: Plan) -> Done {
        let Plan { new, entries, steps, losers, mut removing, redirectables } = plan;
        let mut garbage = Vec::new();
        let mut symbols = write(&self.shared.symbols);
        for (m, recorded) in &new {
            let label = format!("module `{}` of dylib `{}`", m.name, self.shared.name);
            for (dylib, name) in recorded {
                imports.record(*dylib, name, m.serial, &label);
            }
        }
        for name in &redirectables {
            if let Some(serial) = state.redirectables.remove(name) {
                imports.forget(serial);
            }
        }
        for serial in &removing {
            imports.forget(*serial);
        }
        let mut tombstoned = Vec::new();
        for Step { name, old, next } in steps {
            let old_entry = match &old {
                Some(Definition::Function { entry, .. }) => Some(entry.clone()),
                _ => None,
            };
            let mut new_entry = None;
            match next {
                Next::Module(module, s) => {
                    *state.published.entry(module.serial).or_default() += 1;
                    if let Some(alts) = state.alternates.get_mut(&name) {
                        alts.retain(|(m, _)| !Arc::ptr_eq(m, &module));
                    }
                    let def = if s.is_function {
                        let entry = entries.get(&name).or(old_entry.as_ref()).expect("planned").clone();
                        let target = Target { addr: s.addr, owner: Owner::Module(module.clone()) };
                        entry.redirect(Some(Arc::new(target)));
                        new_entry = Some(entry.clone());
                        Definition::Function { entry, module: Some(module), hidden: s.hidden }
                    } else {
                        Definition::Data { addr: s.addr, module, hidden: s.hidden }
                    };
                    symbols.insert(name.clone(), def);
                }
                Next::Gone => {
                    symbols.remove(&name);
                }
            }
            if let Some(e) = old_entry.filter(|e| new_entry.as_ref().is_none_or(|n| !Arc::ptr_eq(n, e))) {
                tombstoned.push((name.clone(), e));
            }
            if let Some(m) = old.as_ref().and_then(|d| d.module()) {
                let count = state.published.entry(m.serial).or_default();
                *count = count.saturating_sub(1);
                if *count == 0 {
                    // Every name the module defined now comes from elsewhere: it is superseded.
                    removing.insert(m.serial);
                }
            }
            garbage.extend(old);
        }
        for (m, s) in losers.into_iter().filter(|(_, s)| s.weak) {
            state.alternates.entry(s.name.clone()).or_default().push((m, s));
        }
        let mut retired: Vec<Arc<LoadedModule>> =
            removing.iter().filter_map(|serial| state.modules.remove(serial)).collect();
        for m in &retired {
            state.published.remove(&m.serial);
            imports.forget(m.serial);
        }
        state.alternates.retain(|_, alts| {
            alts.retain(|(m, _)| !removing.contains(&m.serial));
            !alts.is_empty()
        });
        let mut tombstones = Vec::new();
        for (name, entry) in tombstoned {
            tombstones.push((entry.clone(), entry.target()));
            if imports.importers(self.shared.id, &name).next().is_some() {
                state.orphans.insert(name, entry);
            }
        }
        let id = self.shared.id;
        let mut orphans = Vec::new();
        state.orphans.retain(|name, e| {
            let keep = imports.importers(id, name).next().is_some();
            if !keep {
                orphans.push(e.clone());
            }
            keep
        });
        drop(symbols);
        let new: Vec<Arc<LoadedModule>> = new.into_iter().map(|(m, _)| m).collect();
        for m in &new {
            state.modules.insert(m.serial, m.clone());
        }
        retired.sort_by_key(|m| std::cmp::Reverse(m.serial));
        Done { retired, new, garbage, orphans, tombstones }
    }
}
