//! A dylib's symbol table and the modules behind it: the state every change reads and commits.
//!
//! [`DylibShared`] is the data of one dylib, shared by its [`Dylib`](super::Dylib) handles. Its `state`
//! mutex is the dylib's *link lock*: every change to the dylib (see `txn`) holds it from planning to
//! commit. Lookups read `symbols` under its `RwLock` only, so they never wait for a compile or a link.

use super::module::LoadedModule;
use crate::error::{Definer, Error, Result};
use crate::heap::{Block, Heap, Kind};
use crate::jit::DylibStats;
use crate::link::DefinedSymbol;
use crate::runtime::entry::{Entry, Target};
use crate::runtime::reclaim::Domain;
use crate::signature::Signature;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a name in a dylib's table stands for.
#[derive(Clone, Debug)]
pub(crate) enum Definition {
    /// A function, reached through its entry. `module` is `None` for an explicit redirectable symbol.
    Function { entry: Arc<Entry>, module: Option<Arc<LoadedModule>>, hidden: bool },
    /// Data defined by a JIT module.
    Data { addr: usize, module: Arc<LoadedModule>, hidden: bool },
    /// Defined by the host.
    Host { addr: usize, signature: Option<Box<Signature>> },
}

impl Definition {
    /// The address importers use: the entry's stub for functions.
    pub(crate) fn addr(&self) -> usize {
        match self {
            Definition::Function { entry, .. } => entry.stub(),
            Definition::Data { addr, .. } | Definition::Host { addr, .. } => *addr,
        }
    }

    pub(crate) fn hidden(&self) -> bool {
        matches!(self, Definition::Function { hidden: true, .. } | Definition::Data { hidden: true, .. })
    }

    /// The module that defines the name, if a module does.
    pub(crate) fn module(&self) -> Option<&Arc<LoadedModule>> {
        match self {
            Definition::Function { module, .. } => module.as_ref(),
            Definition::Data { module, .. } => Some(module),
            Definition::Host { .. } => None,
        }
    }
}

/// A dylib's contents that only change under its link lock.
/// A module in its dylib's set, found by its serial: 8 bytes a bucket, where a map from serial to module
/// took 16.
pub(super) struct BySerial(pub(super) Arc<LoadedModule>);

impl std::hash::Hash for BySerial {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.serial.hash(state);
    }
}

impl PartialEq for BySerial {
    fn eq(&self, other: &Self) -> bool {
        self.0.serial == other.0.serial
    }
}

impl Eq for BySerial {}

impl std::borrow::Borrow<u64> for BySerial {
    fn borrow(&self) -> &u64 {
        &self.0.serial
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub(super) modules: std::collections::HashSet<BySerial>,
    /// Weak definitions that lost to an existing one, by name: the fallback if the winner is removed.
    pub(super) alternates: HashMap<Arc<str>, Vec<(Arc<LoadedModule>, DefinedSymbol)>>,
    /// Entries of names removed by force while still imported: reused if the name is defined again.
    pub(super) orphans: HashMap<Arc<str>, Arc<Entry>>,
    /// Explicit redirectable symbols, with the serial their own imports are recorded under.
    pub(super) redirectables: HashMap<String, u64>,
    /// The dylib was removed from its JIT: no further changes.
    pub(super) closed: bool,
    /// Tiering, once enabled (see `tiering`).
    pub(super) tiering: Option<super::tiering::TierState>,
    /// Heap bytes of the live modules' code and data blocks (kept with `modules`).
    heap_bytes: (usize, usize),
    /// Estimated malloc bytes of the live modules (kept with `modules`).
    metadata: usize,
}

impl State {
    pub(super) fn insert_module(&mut self, m: Arc<LoadedModule>) {
        let (code, data) = m.heap_bytes();
        self.heap_bytes = (self.heap_bytes.0 + code, self.heap_bytes.1 + data);
        self.metadata += m.metadata_bytes();
        self.modules.insert(BySerial(m));
    }

    pub(super) fn remove_module(&mut self, serial: u64) -> Option<Arc<LoadedModule>> {
        let m = self.modules.take(&serial)?.0;
        let (code, data) = m.heap_bytes();
        self.heap_bytes = (self.heap_bytes.0 - code, self.heap_bytes.1 - data);
        self.metadata -= m.metadata_bytes();
        Some(m)
    }
}

/// One dylib's data, shared by its handles (see the module docs).
pub(crate) struct DylibShared {
    pub(crate) id: u64,
    pub(super) name: Arc<str>,
    pub(super) state: Mutex<State>,
    /// Signalled when a tier-up finishes (`Dylib::wait_for_tier_ups`).
    pub(super) tier_done: parking_lot::Condvar,
    pub(super) symbols: RwLock<HashMap<Arc<str>, Definition>>,
    pub(super) links: RwLock<Vec<Arc<DylibShared>>>,
    /// 16 bytes of the heap's data range: `__dso_handle` is referenced PC-relatively, so it must lie
    /// within 32-bit reach of the code, like everything else a module touches.
    dso_handle: Option<Block>,
    pub(super) heap: Arc<Mutex<Heap>>,
    /// The JIT's reclamation domain, and this dylib's scope in it.
    pub(crate) domain: Arc<Domain>,
    pub(crate) scope: u32,
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// A process-unique serial for modules, dylibs and redirectable symbols.
pub(crate) fn next_serial() -> u64 {
    // Relaxed: the serial only needs to be unique.
    NEXT_SERIAL.fetch_add(1, Ordering::Relaxed)
}

impl DylibShared {
    pub(crate) fn new(name: &str, heap: Arc<Mutex<Heap>>, domain: Arc<Domain>) -> Result<DylibShared> {
        let dso_handle = Some(heap.lock().alloc(Kind::Data, 16, 16).map_err(Error::Heap)?);
        let name: Arc<str> = name.into();
        Ok(DylibShared {
            id: next_serial(),
            scope: domain.add_scope(name.clone()),
            domain,
            name,
            state: Mutex::new(State::default()),
            tier_done: parking_lot::Condvar::new(),
            symbols: RwLock::new(HashMap::new()),
            links: RwLock::new(Vec::new()),
            dso_handle,
            heap,
        })
    }

    pub(crate) fn dso_handle(&self) -> usize {
        self.dso_handle.as_ref().expect("held until drop").addr()
    }

    pub(crate) fn links(&self) -> Vec<Arc<DylibShared>> {
        self.links.read().clone()
    }

    /// This dylib's definition of `name`; `hidden` admits hidden definitions.
    pub(crate) fn find(&self, name: &str, hidden: bool) -> Option<Definition> {
        self.symbols.read().get(name).filter(|d| hidden || !d.hidden()).cloned()
    }

    /// Points each entry at its tombstone unless a later change already redirected it elsewhere.
    pub(crate) fn tombstone(&self, entries: Vec<(Arc<Entry>, Option<Target>)>) {
        if entries.is_empty() {
            return;
        }
        let _writer = self.state.lock();
        for (entry, was) in entries {
            let now = entry.target();
            let unchanged = match (&now, &was) {
                (Some(a), Some(b)) => a.same(b),
                (None, None) => true,
                _ => false,
            };
            if unchanged {
                entry.redirect(None);
            }
        }
    }

    /// Closes the dylib for good (the JIT is going away): every module's destructors run, then
    /// `__cxa_finalize`, then every entry is tombstoned. Returns what must go to epoch reclamation.
    pub(crate) fn close(&self) -> impl Send + 'static {
        let (modules, garbage, orphans) = {
            let mut state = self.state.lock();
            state.closed = true;
            let garbage: Vec<Definition> = self.symbols.write().drain().map(|(_, d)| d).collect();
            let orphans: Vec<Arc<Entry>> = state.orphans.drain().map(|(_, e)| e).collect();
            state.alternates.clear();
            state.heap_bytes = (0, 0);
            let mut modules: Vec<_> = state.modules.drain().map(|m| m.0).collect();
            modules.sort_by_key(|m| std::cmp::Reverse(m.serial));
            (modules, garbage, orphans)
        };
        let pinned = self.domain.pin(self.scope);
        for m in &modules {
            m.run_list(m.fini());
        }
        // SAFETY: the handle is this dylib's, and the destructors above ran but nothing was freed yet:
        // every handler's code is still mapped.
        unsafe { crate::sys::cxa_finalize(self.dso_handle()) };
        drop(pinned);
        let mut tomb: Vec<(Arc<Entry>, Option<Target>)> = Vec::new();
        for def in &garbage {
            if let Definition::Function { entry, .. } = def {
                tomb.push((entry.clone(), entry.target()));
            }
        }
        tomb.extend(orphans.iter().map(|e| (e.clone(), e.target())));
        self.tombstone(tomb);
        for m in &modules {
            super::tiering::forget_counters(m);
            super::lazy::forget(m);
        }
        let deps: Vec<Arc<LoadedModule>> = modules.iter().flat_map(|m| m.retire()).collect();
        (modules, deps, garbage, orphans)
    }

    /// Defines a host symbol in this dylib; refused if the name is taken (or orphaned: still imported).
    pub(crate) fn define_host(&self, name: &str, def: Definition) -> Result<()> {
        let state = self.state.lock();
        let mut symbols = self.symbols.write();
        if symbols.contains_key(name) || state.orphans.contains_key(name) {
            return Err(Error::DuplicateDefinition {
                symbol: name.to_string(),
                definer: Definer::Host,
                dylib: Some(self.name.to_string()),
            });
        }
        symbols.insert(name.into(), def);
        Ok(())
    }

    /// Marks the dylib removed: later changes fail with [`Error::DylibRemoved`].
    pub(crate) fn mark_closed(&self) {
        self.state.lock().closed = true;
    }

    pub(crate) fn stats(&self) -> DylibStats {
        use std::mem::size_of;
        let (modules, (code, data), mut metadata, tiering) = {
            let state = self.state.lock();
            let map = state.modules.capacity() * (size_of::<BySerial>() + 1);
            let tiering = state.tiering.as_ref().map(|t| t.stats(&state, self)).unwrap_or_default();
            (state.modules.len(), state.heap_bytes, state.metadata + map, tiering)
        };
        let symbols = {
            let table = self.symbols.read();
            metadata += table.capacity() * (size_of::<(Arc<str>, Definition)>() + 1);
            table.len()
        };
        let mut stats = DylibStats::new(&self.name, modules, symbols, (code, data, metadata));
        stats.tiering = tiering;
        stats
    }
}

impl Drop for DylibShared {
    fn drop(&mut self) {
        if let Some(block) = self.dso_handle.take() {
            // Retired, not freed: a module in its grace period may still pass the handle to libc.
            struct Free(Arc<Mutex<Heap>>, Option<Block>);
            impl Drop for Free {
                fn drop(&mut self) {
                    self.1.take().into_iter().for_each(|b| self.0.lock().free_retired(b));
                }
            }
            impl crate::runtime::reclaim::Retire for Free {
                fn ranges(&self, out: &mut Vec<(usize, usize)>) -> bool {
                    out.extend(self.1.iter().map(|b| (b.addr(), b.addr() + b.len())));
                    true
                }
            }
            self.heap.lock().mark_retired(&block);
            self.domain.retire(self.scope, Free(self.heap.clone(), Some(block)), 16, false);
        }
    }
}
