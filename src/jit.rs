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
//! ## Locks
//! Each dylib has a link lock (held while one module is linked into it) and a symbol-table `RwLock`. No
//! thread ever holds two symbol-table locks at once, so adds into dylibs that link to each other cannot
//! deadlock; the heap's mutex is held only to allocate or free a block. Compilation holds no lock at all.

use crate::compile::{DumpKind, OptLevel};
use crate::dylib::{Definition, Dylib, DylibShared};
use crate::error::{Error, Result};
use crate::heap::{Heap, HeapStats};
use crate::module::LoadedModule;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

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
        let heap = Arc::new(Mutex::new(Heap::new()?));
        Ok(Jit {
            shared: Arc::new(JitShared {
                heap,
                dylibs: RwLock::new(HashMap::new()),
                host: RwLock::new(HashMap::new()),
                config: self,
            }),
        })
    }
}

pub(crate) struct JitShared {
    pub(crate) heap: Arc<Mutex<Heap>>,
    dylibs: RwLock<HashMap<String, Arc<DylibShared>>>,
    host: RwLock<HashMap<String, Definition>>,
    pub(crate) config: JitBuilder,
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
    /// The heap's generations.
    pub heap: HeapStats,
    /// Live dylibs.
    pub dylibs: usize,
    /// Live modules over all dylibs.
    pub modules: usize,
    /// Published symbols over all dylibs.
    pub symbols: usize,
    /// Lines in `/proc/self/maps` (the whole process's memory mappings).
    pub mappings: usize,
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

    /// Removes a dylib like `dlclose`: runs its modules' destructors and its `__cxa_atexit` handlers, and
    /// unpublishes everything. Code stays mapped while `Func` handles or importing modules hold it.
    pub fn remove_dylib(&self, dylib: &Dylib) -> Result<()> {
        let removed = {
            let mut dylibs = self.shared.dylibs.write().unwrap_or_else(|e| e.into_inner());
            match dylibs.get(dylib.name()) {
                Some(d) if Arc::ptr_eq(d, dylib.shared()) => dylibs.remove(dylib.name()),
                _ => None,
            }
        };
        let removed = removed.ok_or_else(|| Error::ModuleNotFound {
            module: "<dylib>".to_string(),
            dylib: dylib.name().to_string(),
        })?;
        removed.close();
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
        Stats { heap, dylibs: dylibs.len(), modules, symbols, mappings: crate::sys::mapping_count() }
    }

    /// The heap's reserved address range `[start, end)`.
    pub fn heap_range(&self) -> (usize, usize) {
        self.shared.heap.lock().unwrap_or_else(|e| e.into_inner()).range()
    }
}

impl JitShared {
    /// Resolves `name` for a module being added to `dylib` (see the module docs for the order).
    pub(crate) fn resolve(
        &self,
        dylib: &DylibShared,
        name: &str,
    ) -> Option<(usize, Option<Arc<LoadedModule>>)> {
        if name == crate::tls::TLS_GET {
            return Some((crate::tls::genjit_tls_get as *const () as usize, None));
        }
        if name == "__dso_handle" {
            return Some((dylib.dso_handle(), None));
        }
        if let Some(found) = dylib.find(name, true) {
            return Some(found);
        }
        for linked in dylib.links() {
            if let Some(found) = linked.find(name, false) {
                return Some(found);
            }
        }
        if let Some(def) = self.host.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Some((def.addr(), None));
        }
        if self.config.process_symbols {
            return crate::sys::process_symbol(name).map(|a| (a, None));
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
            dylib.close();
        }
    }
}
