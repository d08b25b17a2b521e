//! The JIT: configuration, the heap, the dylib registry and symbol resolution.
//!
//! A [`Jit`] is a cheap, cloneable, `Send + Sync` handle. It owns the code heap (one 2 GiB reservation, see
//! [`crate::heap`]), the named [`Dylib`]s, and the host symbols defined for all of them.
//!
//! ## Resolution order
//! An undefined name in a module added to dylib `D` resolves to the first of:
//! 1. genjit's runtime symbols: `__genjit_tls_get` (thread-locals) and `__dso_handle` (`D`'s own handle, so
//!    `__cxa_atexit` registrations can be finalized when `D` goes away);
//! 2. `D`'s own definitions, hidden ones included (modules of one dylib are one "shared object");
//! 3. the exported definitions of the dylibs `D` links to, in link order (not transitively, as in ORC);
//! 4. host symbols defined on the `Jit`;
//! 5. the process's own symbols (`dlsym`), only when enabled with [`JitBuilder::process_symbols`].
//!
//! ## Locks, in the order they are taken
//! 1. a dylib's *link lock* (its `State`), held for one change to that dylib;
//! 2. the JIT's *import lock* ([`Imports`]): every resolution of a name into a dylib and every check that a
//!    name may disappear happen under it, so a module cannot start importing a name while another thread
//!    decides that nobody imports it;
//! 3. symbol-table `RwLock`s (a writer holds only its own dylib's), then the entry table and the heap.
//!
//! No thread takes a link lock while holding a later lock, so changes to dylibs that link to each other
//! cannot deadlock. Compilation holds no lock at all.

use crate::compile::{DumpKind, OptLevel};
use crate::dylib::{Definition, Dylib, DylibShared, Removal};
use crate::entry::EntryTable;
use crate::error::{Error, Result};
use crate::heap::{Heap, HeapStats};
use crate::reclaim::LagStats;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Settings for a [`Jit`].
#[derive(Clone, Debug, Default)]
pub struct JitBuilder {
    pub(crate) opt: OptLevel,
    process_symbols: bool,
    pub(crate) dump: Vec<(DumpKind, PathBuf)>,
}

impl JitBuilder {
    /// The optimization level modules are compiled at (default O0).
    pub fn opt_level(mut self, opt: OptLevel) -> Self {
        self.opt = opt;
        self
    }

    /// Whether undefined names fall back to the process's own symbols (libc, libm, ...). Off by default.
    pub fn process_symbols(mut self, enabled: bool) -> Self {
        self.process_symbols = enabled;
        self
    }

    /// Writes what is compiled (IR after optimization, assembly or the object) into `dir`, per module.
    pub fn dump(mut self, kind: DumpKind, dir: impl Into<PathBuf>) -> Self {
        self.dump.push((kind, dir.into()));
        self
    }

    /// Creates the JIT: initializes LLVM for the host and reserves the heap.
    pub fn build(self) -> Result<Jit> {
        crate::compile::with_machine(self.opt, |_| Ok(()))?;
        crate::reclaim::start();
        let heap = Arc::new(Mutex::new(Heap::new()?));
        Ok(Jit {
            shared: Arc::new(JitShared {
                entries: EntryTable::new(heap.clone()),
                heap,
                dylibs: RwLock::new(HashMap::new()),
                host: RwLock::new(HashMap::new()),
                imports: Mutex::new(Imports::default()),
                lag: Arc::new(LagStats::default()),
                config: self,
            }),
        })
    }
}

pub(crate) struct JitShared {
    pub(crate) heap: Arc<Mutex<Heap>>,
    pub(crate) entries: Arc<Mutex<EntryTable>>,
    dylibs: RwLock<HashMap<String, Arc<DylibShared>>>,
    host: RwLock<HashMap<String, Definition>>,
    pub(crate) imports: Mutex<Imports>,
    pub(crate) lag: Arc<LagStats>,
    pub(crate) config: JitBuilder,
}

/// Who imports which JIT name: `(dylib id, name)` to importer serial and a label for errors.
///
/// Importers are modules, and redirectable symbols pointing at a JIT function.
#[derive(Debug, Default)]
pub(crate) struct Imports {
    by_name: HashMap<(u64, String), BTreeMap<u64, String>>,
    by_importer: HashMap<u64, Vec<(u64, String)>>,
}

impl Imports {
    pub(crate) fn record(&mut self, dylib: u64, name: &str, importer: u64, label: &str) {
        self.by_name.entry((dylib, name.to_string())).or_default().insert(importer, label.to_string());
        self.by_importer.entry(importer).or_default().push((dylib, name.to_string()));
    }

    /// Drops every record of `importer` (it was removed or redirected).
    pub(crate) fn forget(&mut self, importer: u64) {
        for key in self.by_importer.remove(&importer).unwrap_or_default() {
            if let Some(set) = self.by_name.get_mut(&key) {
                set.remove(&importer);
                if set.is_empty() {
                    self.by_name.remove(&key);
                }
            }
        }
    }

    /// The importers of `name` in dylib `dylib`: serial and label.
    pub(crate) fn importers(&self, dylib: u64, name: &str) -> impl Iterator<Item = (u64, &str)> {
        self.by_name
            .get(&(dylib, name.to_string()))
            .into_iter()
            .flat_map(|set| set.iter().map(|(s, l)| (*s, l.as_str())))
    }
}

/// The JIT (see the module docs). Clones share one JIT.
#[derive(Clone)]
pub struct Jit {
    shared: Arc<JitShared>,
}

impl std::fmt::Debug for Jit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jit").field("config", &self.shared.config).finish()
    }
}

/// A snapshot of the JIT's memory and contents.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// The heap's generations (each with live, free and awaiting-reclamation bytes).
    pub heap: HeapStats,
    /// Live dylibs.
    pub dylibs: usize,
    /// Live modules over all dylibs.
    pub modules: usize,
    /// Published symbols over all dylibs.
    pub symbols: usize,
    /// Live function entries (stub + slot), including tombstoned ones still referenced.
    pub entries: usize,
    /// Heap bytes of the entry table's chunks (a pool: 64 entries per 2.5 KiB chunk, never shrunk).
    pub entry_bytes: usize,
    /// Heap bytes of removed or superseded modules still in their grace period.
    pub awaiting_bytes: usize,
    /// Lines in `/proc/self/maps` (the whole process's memory mappings).
    pub mappings: usize,
    /// How long the longest-pinned thread in the process has been pinned, if any is.
    pub oldest_pin: Option<Duration>,
    /// Time from retirement to release of the last 4096 retirements, if any.
    pub reclamation_lag: Option<Lag>,
}

/// Percentiles of the reclamation lag (removal to memory reusable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lag {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Maximum.
    pub max: Duration,
    /// Samples the figures are over.
    pub samples: usize,
}

impl Jit {
    /// A JIT with default settings (O0, no process symbols).
    pub fn new() -> Result<Jit> {
        JitBuilder::default().build()
    }

    /// Starts configuring a JIT.
    pub fn builder() -> JitBuilder {
        JitBuilder::default()
    }

    /// Creates an empty dylib.
    pub fn create_dylib(&self, name: &str) -> Result<Dylib> {
        let mut dylibs = self.shared.dylibs.write().unwrap_or_else(|e| e.into_inner());
        if dylibs.contains_key(name) {
            return Err(Error::DuplicateDylib(name.to_string()));
        }
        let dylib = Arc::new(DylibShared::new(name, self.shared.heap.clone())?);
        dylibs.insert(name.to_string(), dylib.clone());
        Ok(Dylib::new(self.shared.clone(), dylib))
    }

    /// The dylib called `name`, if any.
    pub fn dylib(&self, name: &str) -> Option<Dylib> {
        let dylibs = self.shared.dylibs.read().unwrap_or_else(|e| e.into_inner());
        dylibs.get(name).map(|d| Dylib::new(self.shared.clone(), d.clone()))
    }

    /// Removes a dylib like `dlclose`: every module is removed (destructors run, memory reclaimed once no
    /// thread runs it), then its `__cxa_atexit` handlers run. Refused with [`Error::ModuleInUse`] while
    /// modules of other dylibs import its names.
    pub fn remove_dylib(&self, dylib: &Dylib) -> Result<()> {
        self.remove_dylib_with(dylib, Removal::Refuse)
    }

    /// [`remove_dylib`](Self::remove_dylib) with a policy for names other dylibs still import.
    pub fn remove_dylib_with(&self, dylib: &Dylib, removal: Removal) -> Result<()> {
        let registered = |dylibs: &HashMap<String, Arc<DylibShared>>| matches!(dylibs.get(dylib.name()), Some(d) if Arc::ptr_eq(d, dylib.shared()));
        if !registered(&self.shared.dylibs.read().unwrap_or_else(|e| e.into_inner())) {
            return Err(Error::DylibRemoved(dylib.name().to_string()));
        }
        // Destructors run inside the change, with no lock held (they may use the JIT); `__cxa_finalize`
        // runs after them and before the dylib's functions are tombstoned (atexit handlers call them).
        let change =
            crate::dylib::Change { remove: crate::dylib::Remove::All, removal, ..Default::default() };
        let dso_handle = dylib.shared().dso_handle();
        dylib.change_then(change, &|| crate::sys::cxa_finalize(dso_handle))?;
        dylib.shared().mark_closed();
        let mut dylibs = self.shared.dylibs.write().unwrap_or_else(|e| e.into_inner());
        if registered(&dylibs) {
            dylibs.remove(dylib.name());
        }
        drop(dylibs);
        Ok(())
    }

    /// Defines a host function for every dylib (searched after the dylibs' own definitions).
    pub fn define_host<F: crate::HostFn>(&self, name: &str, f: F) -> Result<()> {
        self.define_host_definition(
            name,
            Definition::Host { addr: f.addr(), signature: Some(F::signature()) },
        )
    }

    /// Defines a host symbol by address (data, or a function without a recorded signature).
    pub fn define_host_address(&self, name: &str, addr: usize) -> Result<()> {
        self.define_host_definition(name, Definition::Host { addr, signature: None })
    }

    fn define_host_definition(&self, name: &str, def: Definition) -> Result<()> {
        let mut host = self.shared.host.write().unwrap_or_else(|e| e.into_inner());
        if host.contains_key(name) {
            return Err(Error::DuplicateDefinition {
                module: "<host>".to_string(),
                symbol: name.to_string(),
                dylib: "<jit>".to_string(),
            });
        }
        host.insert(name.to_string(), def);
        Ok(())
    }

    /// A snapshot of the JIT's memory and contents.
    pub fn stats(&self) -> Stats {
        let heap = self.shared.heap.lock().unwrap_or_else(|e| e.into_inner()).stats();
        let dylibs = self.shared.dylibs.read().unwrap_or_else(|e| e.into_inner());
        let (modules, symbols) =
            dylibs.values().map(|d| d.counts()).fold((0, 0), |(m, s), (dm, ds)| (m + dm, s + ds));
        let (entry_bytes, entries) = self.shared.entries.lock().unwrap_or_else(|e| e.into_inner()).usage();
        Stats {
            awaiting_bytes: heap.generations.iter().map(|g| g.awaiting_bytes).sum(),
            heap,
            dylibs: dylibs.len(),
            modules,
            symbols,
            entries,
            entry_bytes,
            mappings: crate::sys::mapping_count(),
            oldest_pin: crate::reclaim::oldest_pin_age(),
            reclamation_lag: self.shared.lag.summary(),
        }
    }

    /// Waits until everything retired before the call (in any JIT) has been freed, or `timeout` passes;
    /// returns whether it all was. Reclamation happens in the background anyway; this is for callers that want
    /// the memory back (or the figures settled) before they go on. Pinned threads hold it back.
    pub fn reclaim(&self, timeout: Duration) -> bool {
        crate::reclaim::reclaim_now(timeout)
    }

    /// The heap's reserved address range `[start, end)`.
    pub fn heap_range(&self) -> (usize, usize) {
        self.shared.heap.lock().unwrap_or_else(|e| e.into_inner()).range()
    }
}

impl JitShared {
    /// genjit's runtime symbols for a module of `dylib` (resolved before anything else).
    pub(crate) fn runtime_symbol(&self, dylib: &DylibShared, name: &str) -> Option<usize> {
        match name {
            crate::tls::TLS_GET => Some(crate::tls::genjit_tls_get as *const () as usize),
            "__dso_handle" => Some(dylib.dso_handle()),
            _ => None,
        }
    }

    /// Names outside every dylib: the JIT's host symbols, then (if enabled) the process's.
    pub(crate) fn outside_symbol(&self, name: &str) -> Option<usize> {
        if let Some(def) = self.host.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Some(def.addr());
        }
        if self.config.process_symbols {
            return crate::sys::process_symbol(name);
        }
        None
    }

    /// A host definition by name (for typed lookups of host functions).
    pub(crate) fn host_definition(&self, name: &str) -> Option<Definition> {
        self.host.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }
}

impl Drop for JitShared {
    fn drop(&mut self) {
        let dylibs = std::mem::take(self.dylibs.get_mut().unwrap_or_else(|e| e.into_inner()));
        for dylib in dylibs.into_values() {
            let retired = dylib.close();
            crate::reclaim::retire(retired, None);
        }
    }
}
