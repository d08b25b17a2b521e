//! One change to a dylib: add, redefine, remove and replace are all this transaction.
//!
//! ## Steps
//! Under the dylib's link lock and the session's import lock, [`Dylib::plan`] (see `plan`) does everything
//! that may fail: entries, linking, the next table, the import check. Then [`Dylib::commit`] publishes
//! under the symbol table's write lock: it redirects every changed entry (old bodies retire through epoch
//! reclamation), updates the table, the import index and the alternates, and takes out modules that were
//! removed or lost every name. Nothing in the commit can fail.
//!
//! Then, with no lock held, retired modules run their destructors and go to epoch reclamation, and new
//! modules run their constructors (a constructor may use the JIT).

use super::imports::Importer;
use super::module::LoadedModule;
use super::plan::{Next, Plan, Scope, Step};
use super::table::{Definition, State};
use super::{Dylib, ModuleHandle, Removal};
use crate::compile::Compiled;
use crate::dylib::imports::Imports;
use crate::error::{Error, Result};
use crate::runtime::entry::{Entry, Owner, Target};
use crate::timings::phase;
use std::sync::Arc;
use std::time::Duration;

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
    /// A tier-up: refused ([`Error::Superseded`]) unless what it was compiled from still holds; the new
    /// module is recorded as its origin's satellite (see `tiering`).
    pub(crate) tier_up: Option<super::tiering::TierUpCheck>,
    /// How a lazy module's functions compile (see `lazy`).
    pub(crate) lazy: super::lazy::Lazy,
}

/// A retired value counted in `Stats::awaiting_metadata_bytes` until it is dropped.
struct Weighed<T> {
    /// Dropped after `Drop::drop`, which takes the heap's lock first.
    value: T,
    bytes: usize,
    heap: Arc<parking_lot::Mutex<crate::heap::Heap>>,
}

impl<T> Weighed<T> {
    fn new(value: T, bytes: usize, heap: &Arc<parking_lot::Mutex<crate::heap::Heap>>) -> Weighed<T> {
        heap.lock().awaiting_metadata += bytes;
        Weighed { value, bytes, heap: heap.clone() }
    }
}

impl<T> Drop for Weighed<T> {
    fn drop(&mut self) {
        self.heap.lock().awaiting_metadata -= self.bytes;
    }
}

impl<T: crate::runtime::reclaim::Retire> crate::runtime::reclaim::Retire for Weighed<T> {
    fn ranges(&self, out: &mut Vec<(usize, usize)>) -> bool {
        self.value.ranges(out)
    }
}

/// What a change retires: its modules, the modules they reference data of, replaced definitions and
/// orphaned entries.
type Retiring = (Box<[Arc<LoadedModule>]>, Box<[Arc<LoadedModule>]>, Box<[Definition]>, Box<[Arc<Entry>]>);

impl crate::runtime::reclaim::Retire for Retiring {
    /// Every module whose last reference may be here. Dropped entries retire their own stubs.
    fn ranges(&self, out: &mut Vec<(usize, usize)>) -> bool {
        use crate::runtime::entry::CodeOwner;
        let defined = self.2.iter().filter_map(|d| match d {
            Definition::Function { module, .. } => module.as_ref(),
            Definition::Data { module, .. } => Some(module),
            Definition::Host { .. } => None,
        });
        self.0.iter().chain(self.1.iter()).chain(defined).for_each(|m| m.ranges(out));
        true
    }
}

/// What a commit leaves for after the locks are released.
struct Done {
    retired: Vec<Arc<LoadedModule>>,
    new: Vec<Arc<LoadedModule>>,
    garbage: Vec<Definition>,
    orphans: Vec<Arc<Entry>>,
    /// Entries of names that went away, with the target they had: tombstoned after the destructors ran.
    tombstones: Vec<(Arc<Entry>, Option<Target>)>,
}

impl Dylib {
    pub(crate) fn change(&self, change: Change) -> Result<Vec<ModuleHandle>> {
        self.change_then(change, &|| {})
    }

    /// [`change`](Self::change), running `finalize` after the retired modules' destructors and before
    /// their functions are tombstoned (dylib removal runs `__cxa_finalize` there).
    pub(crate) fn change_then(&self, change: Change, finalize: &dyn Fn()) -> Result<Vec<ModuleHandle>> {
        let _span = tracing::debug_span!("change", dylib = %self.shared.name).entered();
        self.compile_before_finalizers(&change.remove);
        let initializers = change.initializers;
        let mut publish = Duration::ZERO;
        // Everything the change retires (old slot targets, modules, garbage) waits as one.
        let domain = &self.shared.domain;
        let new = domain.batched(|| -> Result<_> {
            let done = {
                let mut state = self.shared.state.lock();
                if state.closed {
                    return Err(Error::DylibRemoved(self.shared.name.to_string()));
                }
                let mut imports = self.session.imports.lock();
                let plan = self.plan(&state, &imports, change)?;
                phase!(publish, "publish", self.commit(&mut state, &mut imports, plan))
            };
            // Destructors (and atexit handlers) run while the removed names' entries still reach their
            // bodies: a destructor may call its own module's functions, through their entries. Pinned
            // like any call: they may call functions of other modules that are being redefined.
            let pinned = domain.pin(self.shared.scope);
            for m in &done.retired {
                m.run_list(m.fini());
            }
            finalize();
            drop(pinned);
            self.shared.tombstone(done.tombstones);
            let deps: Vec<Arc<LoadedModule>> = done.retired.iter().flat_map(|m| m.retire()).collect();
            let Done { retired, new, garbage, orphans, .. } = done;
            // Boxed slices: no spare capacity waits with them.
            let retiring: Retiring = (retired.into(), deps.into(), garbage.into(), orphans.into());
            let bytes = std::mem::size_of_val(&retiring)
                + 8 * (retiring.0.len() + retiring.1.len() + retiring.3.len())
                + std::mem::size_of::<Definition>() * retiring.2.len()
                + 5 * 16
                + crate::runtime::reclaim::RECORD_BYTES;
            // What a stall report says this change holds: the modules' heap and metadata bytes.
            let modules = retiring.0.iter().map(|m| {
                let (code, data) = m.heap_bytes();
                code + data + m.metadata_bytes()
            });
            let held = modules.sum::<usize>() + bytes;
            // A change that let go of nothing (a first definition) retires nothing.
            if !(retiring.0.is_empty()
                && retiring.1.is_empty()
                && retiring.2.is_empty()
                && retiring.3.is_empty())
            {
                let weighed = Weighed::new(retiring, bytes, &self.session.heap);
                domain.retire(self.shared.scope, weighed, held, true);
            }
            Ok(new)
        })?;
        let pinned = domain.pin(self.shared.scope);
        for m in &new {
            let mut constructors = Duration::ZERO;
            if initializers {
                phase!(constructors, "constructors", m.run_list(m.init()));
            }
            m.finish_timings(publish, constructors);
        }
        drop(pinned);
        Ok(new.iter().map(|m| self.handle(m)).collect())
    }

    fn commit(&self, state: &mut State, imports: &mut Imports, plan: Plan) -> Done {
        let Plan { new, entries, steps, losers, scope, bitcode, tier_up, invalidated, lazy } = plan;
        let Scope { mut removing, redirectables, .. } = scope;
        if let Some(t) = state.tiering.as_mut() {
            for ((m, _), (bitcode, finalizers)) in new.iter().zip(bitcode) {
                super::tiering::register_counters(&self.session, &self.shared, m);
                if let Some(bitcode) = bitcode {
                    t.bitcode.insert(m.serial, bitcode);
                    let functions = super::lazy::register(&self.session, &self.shared, m);
                    if !functions.is_empty() {
                        let functions = functions.into_iter().collect();
                        let unit = super::tiering::LazyUnit { functions, options: lazy, finalizers };
                        t.lazy.insert(m.serial, unit);
                    }
                }
            }
            if let (Some(check), Some((m, _))) = (tier_up, new.first()) {
                let layer =
                    super::tiering::Layer { origin: check.origin, tier: check.tier, inlined: check.inlined };
                t.add_layer(m.serial, layer);
            }
            t.invalidations += invalidated as u64;
        }
        let mut garbage = Vec::new();
        let mut symbols = self.shared.symbols.write();
        for (m, recorded) in &new {
            let importer =
                Importer::Module { module: m.name().into_owned(), dylib: self.shared.name.to_string() };
            for (dylib, name) in recorded {
                imports.record(*dylib, name, m.serial, &importer);
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
                    module.publish_one();
                    // A higher tier dropped: the first tier's body is back; let it count again.
                    if let Some(t) = state.tiering.as_ref().filter(|_| s.is_function) {
                        // Back to a lower layer (or the origin) of the same function: a fallback.
                        let from =
                            old.as_ref().and_then(|d| d.module()).and_then(|m| t.layers.get(&m.serial));
                        let fallback = from.is_some_and(|l| t.same_unit(l.origin, module.serial));
                        if let (true, Some(config)) = (fallback, t.config.as_ref()) {
                            super::tiering::rearm(&module, &name, config);
                        }
                    }
                    if let Some(alts) = state.alternates.get_mut(&name) {
                        alts.retain(|(m, _)| !Arc::ptr_eq(m, &module));
                    }
                    let def = if s.is_function {
                        let entry = entries.get(&name).or(old_entry.as_ref()).expect("planned").clone();
                        let target = Target { addr: s.addr, owner: Owner::code(module.clone()) };
                        entry.redirect(Some(target));
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
                if m.unpublish_one() == 0 {
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
            removing.iter().filter_map(|serial| state.remove_module(*serial)).collect();
        for m in &retired {
            imports.forget(m.serial);
            if let Some(t) = state.tiering.as_mut() {
                t.forget(m.serial);
                super::tiering::forget_counters(m);
                super::lazy::forget(m);
            }
        }
        state.alternates.retain(|_, alts| {
            alts.retain(|(m, _)| !removing.contains(&m.serial));
            !alts.is_empty()
        });
        let mut tombstones = Vec::new();
        for (name, entry) in tombstoned {
            tombstones.push((entry.clone(), entry.target()));
            if imports.is_imported(self.shared.id, &name) {
                state.orphans.insert(name, entry);
            }
        }
        let id = self.shared.id;
        let mut orphans = Vec::new();
        state.orphans.retain(|name, e| {
            let keep = imports.is_imported(id, name);
            if !keep {
                orphans.push(e.clone());
            }
            keep
        });
        // Tables shrink when three quarters of them are empty: a dylib that held 100k modules and went
        // back to a few does not keep 100k buckets (amortized: a shrink halves at least twice over).
        if symbols.len() * 4 < symbols.capacity() {
            symbols.shrink_to_fit();
        }
        drop(symbols);
        let new: Vec<Arc<LoadedModule>> = new.into_iter().map(|(m, _)| m).collect();
        for m in &new {
            state.insert_module(m.clone());
        }
        if state.modules.len() * 4 < state.modules.capacity() {
            state.modules.shrink_to_fit();
        }
        retired.sort_by_key(|m| std::cmp::Reverse(m.serial));
        Done { retired, new, garbage, orphans, tombstones }
    }
}
