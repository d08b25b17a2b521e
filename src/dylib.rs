//! JITDylibs: named symbol tables that hold modules.
//!
//! A [`Dylib`] is to genjit what a shared object is to the dynamic linker: modules added to it see each
//! other's definitions (hidden ones included), it can link to other dylibs, whose exported definitions it
//! then sees, and it can be removed as a whole like `dlclose`.
//!
//! ## Adding a module
//! 1. **Compile** on the calling thread, with no lock held (several threads compile in parallel).
//! 2. Under this dylib's **link lock** (adds to other dylibs proceed in parallel): link into the heap,
//!    resolving names through the JIT's resolution order; every module a name resolved into becomes a
//!    dependency the new module keeps alive.
//! 3. **Check** the new definitions against the table: a strong definition of a name that is already
//!    strongly defined is refused, and the linked blocks are given back (the JIT is as it was).
//! 4. **Publish** the definitions under the symbol-table write lock, in one step: a lookup sees all of the
//!    module's symbols or none. A weak definition never replaces an existing one; a strong one replaces a
//!    weak one.
//! 5. Release the lock and run the module's constructors.

use crate::compile::{compile, Source};
use crate::error::{Error, Result};
use crate::func::{Func, HostFn};
use crate::heap::{Block, Heap, Kind};
use crate::jit::JitShared;
use crate::link::link;
use crate::module::LoadedModule;
use crate::signature::{JitSignature, Signature};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// What a name in a dylib's table stands for.
#[derive(Clone, Debug)]
pub(crate) enum Definition {
    /// Defined by a JIT module.
    Module { addr: usize, module: Arc<LoadedModule>, hidden: bool, weak: bool },
    /// Defined by the host.
    Host { addr: usize, signature: Option<Signature> },
}

impl Definition {
    pub(crate) fn addr(&self) -> usize {
        match self {
            Definition::Module { addr, .. } | Definition::Host { addr, .. } => *addr,
        }
    }

    fn weak(&self) -> bool {
        matches!(self, Definition::Module { weak: true, .. })
    }
}

/// A handle to one module of a dylib, for removal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModuleHandle {
    dylib: String,
    name: String,
    serial: u64,
}

impl ModuleHandle {
    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

pub(crate) struct DylibShared {
    name: String,
    modules: Mutex<HashMap<u64, Arc<LoadedModule>>>,
    symbols: RwLock<HashMap<String, Definition>>,
    links: RwLock<Vec<Arc<DylibShared>>>,
    /// 16 bytes of the heap's data range: `__dso_handle` is referenced PC-relatively, so it must lie
    /// within 32-bit reach of the code, like everything else a module touches.
    dso_handle: Option<Block>,
    heap: Arc<Mutex<Heap>>,
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl DylibShared {
    pub(crate) fn new(name: &str, heap: Arc<Mutex<Heap>>) -> Result<DylibShared> {
        let dso_handle = Some(heap.lock().unwrap_or_else(|e| e.into_inner()).alloc(Kind::Data, 16, 16)?);
        Ok(DylibShared {
            name: name.to_string(),
            modules: Mutex::new(HashMap::new()),
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
        read(&self.links).clone()
    }

    /// Looks `name` up in this dylib's table; `hidden` admits hidden definitions.
    pub(crate) fn find(&self, name: &str, hidden: bool) -> Option<(usize, Option<Arc<LoadedModule>>)> {
        match read(&self.symbols).get(name)? {
            Definition::Module { hidden: true, .. } if !hidden => None,
            Definition::Module { addr, module, .. } => Some((*addr, Some(module.clone()))),
            Definition::Host { addr, .. } => Some((*addr, None)),
        }
    }

    pub(crate) fn counts(&self) -> (usize, usize) {
        let modules = self.modules.lock().unwrap_or_else(|e| e.into_inner()).len();
        (modules, read(&self.symbols).len())
    }

    fn unpublish(&self, module: &LoadedModule) {
        let mut symbols = write(&self.symbols);
        for s in &module.symbols {
            if matches!(symbols.get(&s.name), Some(Definition::Module { module: m, .. }) if m.serial == module.serial)
            {
                symbols.remove(&s.name);
            }
        }
    }

    /// Removes every module (running destructors) and finalizes `__cxa_atexit` handlers.
    pub(crate) fn close(&self) {
        let modules: Vec<_> =
            self.modules.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, m)| m).collect();
        write(&self.symbols).clear();
        let mut modules = modules;
        modules.sort_by_key(|m| std::cmp::Reverse(m.serial));
        for m in &modules {
            m.run_list(&m.fini);
        }
        crate::sys::cxa_finalize(self.dso_handle());
    }
}

impl Drop for DylibShared {
    fn drop(&mut self) {
        if let Some(block) = self.dso_handle.take() {
            self.heap.lock().unwrap_or_else(|e| e.into_inner()).free(block);
        }
    }
}

/// A JITDylib (see the module docs). Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Dylib {
    jit: Arc<JitShared>,
    shared: Arc<DylibShared>,
}

impl std::fmt::Debug for Dylib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dylib").field("name", &self.shared.name).finish()
    }
}

impl Dylib {
    pub(crate) fn new(jit: Arc<JitShared>, shared: Arc<DylibShared>) -> Dylib {
        Dylib { jit, shared }
    }

    pub(crate) fn shared(&self) -> &Arc<DylibShared> {
        &self.shared
    }

    /// The dylib's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Appends `other` to this dylib's link order: names not defined here are then looked up there.
    pub fn link_to(&self, other: &Dylib) {
        write(&self.shared.links).push(other.shared.clone());
    }

    /// Compiles, links and publishes a module, then runs its constructors.
    pub fn add_module(&self, source: Source) -> Result<ModuleHandle> {
        self.add(source, true)
    }

    /// Like [`add_module`](Self::add_module), but the module is inert: its constructors and destructors
    /// never run and its `.eh_frame` is not registered (for fuzzing arbitrary objects).
    #[doc(hidden)]
    pub fn add_module_without_init(&self, source: Source) -> Result<ModuleHandle> {
        self.add(source, false)
    }

    fn add(&self, source: Source, initializers: bool) -> Result<ModuleHandle> {
        let config = &self.jit.config;
        let mut compiled = compile(source, config.opt, &config.dump)?;
        if compiled.name == "<module>" {
            compiled.name = format!("module#{}", NEXT_SERIAL.load(Ordering::Relaxed));
        }
        let mut modules = self.shared.modules.lock().unwrap_or_else(|e| e.into_inner());
        let mut deps: Vec<Arc<LoadedModule>> = Vec::new();
        let mut resolve = |name: &str| {
            let (addr, module) = self.jit.resolve(&self.shared, name)?;
            if let Some(m) = module {
                if !deps.iter().any(|d| Arc::ptr_eq(d, &m)) {
                    deps.push(m);
                }
            }
            Some(addr)
        };
        let mut linked = link(&compiled, &self.jit.heap, &mut resolve).map_err(|e| match e {
            Error::UnresolvedSymbols { module, symbols, .. } => {
                Error::UnresolvedSymbols { module, dylib: self.shared.name.clone(), symbols }
            }
            e => e,
        })?;
        let clash = {
            let symbols = read(&self.shared.symbols);
            linked
                .symbols
                .iter()
                .find(|s| !s.weak && symbols.get(&s.name).is_some_and(|d| !d.weak()))
                .cloned()
        };
        if let Some(s) = clash {
            linked.discard(&self.jit.heap);
            return Err(Error::DuplicateDefinition {
                module: compiled.name,
                symbol: s.name,
                dylib: self.shared.name.clone(),
            });
        }
        if !initializers {
            linked.init.clear();
            linked.fini.clear();
            linked.eh_frame = None;
        }
        // Relaxed: the serial only needs to be unique.
        let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
        let module = Arc::new(LoadedModule::new(
            compiled.name,
            serial,
            linked,
            self.jit.heap.clone(),
            compiled.signatures,
            deps,
        ));
        self.publish(&module);
        modules.insert(serial, module.clone());
        drop(modules);
        module.run_list(&module.init);
        Ok(ModuleHandle { dylib: self.shared.name.clone(), name: module.name.clone(), serial })
    }

    fn publish(&self, module: &Arc<LoadedModule>) {
        let mut symbols = write(&self.shared.symbols);
        for s in &module.symbols {
            let replace = match symbols.get(&s.name) {
                None => true,
                Some(existing) => existing.weak() && !s.weak,
            };
            if replace {
                let def = Definition::Module {
                    addr: s.addr,
                    module: module.clone(),
                    hidden: s.hidden,
                    weak: s.weak,
                };
                symbols.insert(s.name.clone(), def);
            }
        }
    }

    /// Removes a module: unpublishes its symbols and runs its destructors. Its memory is freed once no
    /// `Func` handle and no importing module holds it.
    pub fn remove_module(&self, handle: &ModuleHandle) -> Result<()> {
        let module = {
            let mut modules = self.shared.modules.lock().unwrap_or_else(|e| e.into_inner());
            let found = (handle.dylib == self.shared.name).then(|| modules.remove(&handle.serial)).flatten();
            let module = found.ok_or_else(|| Error::ModuleNotFound {
                module: handle.name.clone(),
                dylib: self.shared.name.clone(),
            })?;
            self.shared.unpublish(&module);
            module
        };
        module.run_list(&module.fini);
        Ok(())
    }

    /// Defines a host function in this dylib, with its signature (so typed lookups of it are checked).
    pub fn define_host<F: HostFn>(&self, name: &str, f: F) -> Result<()> {
        self.define(name, Definition::Host { addr: f.addr(), signature: Some(F::signature()) })
    }

    /// Defines a host symbol in this dylib by address (data, or code without a recorded signature).
    pub fn define_host_address(&self, name: &str, addr: usize) -> Result<()> {
        self.define(name, Definition::Host { addr, signature: None })
    }

    fn define(&self, name: &str, def: Definition) -> Result<()> {
        let _adds = self.shared.modules.lock().unwrap_or_else(|e| e.into_inner());
        let mut symbols = write(&self.shared.symbols);
        if symbols.contains_key(name) {
            return Err(Error::DuplicateDefinition {
                module: "<host>".to_string(),
                symbol: name.to_string(),
                dylib: self.shared.name.clone(),
            });
        }
        symbols.insert(name.to_string(), def);
        Ok(())
    }

    fn definition(&self, name: &str) -> Result<Definition> {
        let own = read(&self.shared.symbols).get(name).cloned();
        let found = own
            .or_else(|| {
                self.shared.links().iter().find_map(|l| match read(&l.symbols).get(name) {
                    Some(Definition::Module { hidden: true, .. }) | None => None,
                    Some(d) => Some(d.clone()),
                })
            })
            .or_else(|| self.jit.host_definition(name));
        found.ok_or_else(|| Error::SymbolNotFound {
            dylib: self.shared.name.clone(),
            symbol: name.to_string(),
        })
    }

    /// The address of `name` (searching this dylib, its links and the JIT's host symbols).
    pub fn lookup_address(&self, name: &str) -> Result<usize> {
        self.definition(name).map(|d| d.addr())
    }

    /// A typed, safe-to-call handle to the function `name`, whose IR signature must match `S`.
    ///
    /// ```
    /// let jit = genjit::Jit::new()?;
    /// let dylib = jit.create_dylib("example")?;
    /// dylib.add_module(genjit::Source::ir_text(
    ///     "define i64 @add(i64 %a, i64 %b) {\n  %s = add i64 %a, %b\n  ret i64 %s\n}\n",
    /// ))?;
    /// let add = dylib.lookup::<fn(i64, i64) -> i64>("add")?;
    /// assert_eq!(add.call(2, 3), 5);
    /// assert!(dylib.lookup::<fn(i64) -> i64>("add").is_err());
    /// # Ok::<(), genjit::Error>(())
    /// ```
    pub fn lookup<S: JitSignature>(&self, name: &str) -> Result<Func<S>> {
        let expected = S::signature();
        let (addr, module, found) = match self.definition(name)? {
            Definition::Module { addr, module, .. } => {
                let sig = module.signatures.get(name).cloned();
                (addr, Some(module), sig)
            }
            Definition::Host { addr, signature } => (addr, None, signature),
        };
        let found = found.ok_or_else(|| Error::NoSignature { symbol: name.to_string() })?;
        if found != expected {
            return Err(Error::SignatureMismatch {
                symbol: name.to_string(),
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
        Ok(Func::new(addr, module))
    }

    /// The IR signature of the function `name`, if it is known.
    pub fn signature(&self, name: &str) -> Result<Option<Signature>> {
        Ok(match self.definition(name)? {
            Definition::Module { module, .. } => module.signatures.get(name).cloned(),
            Definition::Host { signature, .. } => signature,
        })
    }

    /// Names of the modules in this dylib.
    pub fn modules(&self) -> Vec<ModuleHandle> {
        let modules = self.shared.modules.lock().unwrap_or_else(|e| e.into_inner());
        let mut handles: Vec<_> = modules
            .values()
            .map(|m| ModuleHandle { dylib: self.shared.name.clone(), name: m.name.clone(), serial: m.serial })
            .collect();
        handles.sort_by_key(|h| h.serial);
        handles
    }
}
