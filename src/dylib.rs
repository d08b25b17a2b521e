//! JITDylibs: named symbol tables that hold modules.
//!
//! A [`Dylib`] is to genjit what a shared object is to the dynamic linker: modules added to it see each
//! other's definitions (hidden ones included), it can link to other dylibs, whose exported definitions it
//! then sees, and it can be removed as a whole like `dlclose`. Unlike a shared object, its contents change
//! while other threads run them.
//!
//! ## What a name stands for
//! Every global function a module defines gets an [`Entry`](crate::entry) in its dylib: a stub whose address
//! is the function's identity and a slot the stub jumps through. Importers, address-taking code and the
//! module's own calls all use the stub, and Rust [`Func`] handles load the slot, so pointing the slot at
//! another body redirects every caller. Data is referenced directly (an importer holds the exporting module
//! alive). Host definitions are plain addresses.
//!
//! ## Changing a dylib
//! Adding, redefining, removing and replacing are one operation ([`txn`]): under the dylib's *link lock*
//! and the JIT's *import lock* it links the new modules, computes the dylib's next table, checks it
//! (signatures, names still imported by live modules), and only then commits: every changed slot is
//! redirected and the table replaced under one write-lock acquisition. A refused change leaves the JIT
//! exactly as it was. Removed and superseded modules are then finalized (destructors) and *retired*: freed by
//! epoch reclamation once no thread can still be running them (see [`crate::reclaim`]).

mod txn;

use crate::compile::{compile, Source};
use crate::entry::{Entry, EntryTable, Owner, Target};
use crate::error::{Error, Result};
use crate::func::{Func, HostFn};
use crate::heap::{Block, Heap, Kind};
use crate::jit::JitShared;
use crate::link::DefinedSymbol;
use crate::module::LoadedModule;
use crate::signature::{JitSignature, Signature};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub(crate) use txn::{Change, Remove};

/// What a name in a dylib's table stands for.
#[derive(Clone, Debug)]
pub(crate) enum Definition {
    /// A function, reached through its entry. `module` is `None` for an explicit redirectable symbol.
    Function { entry: Arc<Entry>, module: Option<Arc<LoadedModule>>, hidden: bool },
    /// Data defined by a JIT module.
    Data { addr: usize, module: Arc<LoadedModule>, hidden: bool },
    /// Defined by the host.
    Host { addr: usize, signature: Option<Signature> },
}

impl Definition {
    /// The address importers use: the entry's stub for functions.
    pub(crate) fn addr(&self) -> usize {
        match self {
            Definition::Function { entry, .. } => entry.stub(),
            Definition::Data { addr, .. } | Definition::Host { addr, .. } => *addr,
        }
    }

    fn hidden(&self) -> bool {
        matches!(self, Definition::Function { hidden: true, .. } | Definition::Data { hidden: true, .. })
    }

    /// The module that defines the name, if a module does.
    fn module(&self) -> Option<&Arc<LoadedModule>> {
        match self {
            Definition::Function { module, .. } => module.as_ref(),
            Definition::Data { module, .. } => Some(module),
            Definition::Host { .. } => None,
        }
    }
}

/// What a removal does with names that live modules outside the removal still import.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Removal {
    /// Refuse with [`Error::ModuleInUse`] naming the importers (the default).
    #[default]
    Refuse,
    /// Remove anyway: imported functions' entries point at a tombstone that reports the name and aborts;
    /// imported data stays allocated while its importers live.
    Force,
}

/// A handle to one module of a dylib, for removal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModuleHandle {
    dylib: String,
    dylib_id: u64,
    name: String,
    serial: u64,
}

impl ModuleHandle {
    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A dylib's contents that only change under its link lock.
#[derive(Default)]
pub(crate) struct State {
    modules: HashMap<u64, Arc<LoadedModule>>,
    /// How many names of the table each module currently defines; a module that drops to zero is
    /// superseded and retired.
    published: HashMap<u64, usize>,
    /// Weak definitions that lost to an existing one, by name: the fallback if the winner is removed.
    alternates: HashMap<String, Vec<(Arc<LoadedModule>, DefinedSymbol)>>,
    /// Entries of names removed by force while still imported: reused if the name is defined again.
    orphans: HashMap<String, Arc<Entry>>,
    /// Explicit redirectable symbols, with the serial their own imports are recorded under.
    redirectables: HashMap<String, u64>,
    /// The dylib was removed from its JIT: no further changes.
    closed: bool,
}

pub(crate) struct DylibShared {
    pub(crate) id: u64,
    name: String,
    state: Mutex<State>,
    symbols: RwLock<HashMap<String, Definition>>,
    links: RwLock<Vec<Arc<DylibShared>>>,
    /// 16 bytes of the heap's data range: `__dso_handle` is referenced PC-relatively, so it must lie
    /// within 32-bit reach of the code, like everything else a module touches.
    dso_handle: Option<Block>,
    heap: Arc<Mutex<Heap>>,
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// A process-unique serial for modules, dylibs and redirectable symbols.
pub(crate) fn next_serial() -> u64 {
    // Relaxed: the serial only needs to be unique.
    NEXT_SERIAL.fetch_add(1, Ordering::Relaxed)
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DylibShared {
    pub(crate) fn new(name: &str, heap: Arc<Mutex<Heap>>) -> Result<DylibShared> {
        let dso_handle = Some(lock(&heap).alloc(Kind::Data, 16, 16)?);
        Ok(DylibShared {
            id: next_serial(),
            name: name.to_string(),
            state: Mutex::new(State::default()),
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

    /// This dylib's definition of `name`; `hidden` admits hidden definitions.
    pub(crate) fn find(&self, name: &str, hidden: bool) -> Option<Definition> {
        read(&self.symbols).get(name).filter(|d| hidden || !d.hidden()).cloned()
    }

    /// Points each entry at its tombstone unless a later change already redirected it elsewhere.
    pub(crate) fn tombstone(&self, entries: Vec<(Arc<Entry>, Option<Arc<Target>>)>) {
        if entries.is_empty() {
            return;
        }
        let _writer = lock(&self.state);
        for (entry, was) in entries {
            let now = entry.target();
            let unchanged = match (&now, &was) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
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
            let mut state = lock(&self.state);
            state.closed = true;
            let garbage: Vec<Definition> = write(&self.symbols).drain().map(|(_, d)| d).collect();
            let orphans: Vec<Arc<Entry>> = state.orphans.drain().map(|(_, e)| e).collect();
            state.alternates.clear();
            state.published.clear();
            let mut modules: Vec<_> = state.modules.drain().map(|(_, m)| m).collect();
            modules.sort_by_key(|m| std::cmp::Reverse(m.serial));
            (modules, garbage, orphans)
        };
        for m in &modules {
            m.run_list(&m.fini);
        }
        crate::sys::cxa_finalize(self.dso_handle());
        let mut tomb: Vec<(Arc<Entry>, Option<Arc<Target>>)> = Vec::new();
        for def in &garbage {
            if let Definition::Function { entry, .. } = def {
                tomb.push((entry.clone(), entry.target()));
            }
        }
        tomb.extend(orphans.iter().map(|e| (e.clone(), e.target())));
        self.tombstone(tomb);
        for m in &modules {
            m.retire();
        }
        (modules, garbage, orphans)
    }

    /// Marks the dylib removed: later changes fail with [`Error::DylibRemoved`].
    pub(crate) fn mark_closed(&self) {
        lock(&self.state).closed = true;
    }

    pub(crate) fn counts(&self) -> (usize, usize) {
        let modules = lock(&self.state).modules.len();
        (modules, read(&self.symbols).len())
    }
}

impl Drop for DylibShared {
    fn drop(&mut self) {
        if let Some(block) = self.dso_handle.take() {
            // Retired, not freed: a module in its grace period may still pass the handle to libc.
            struct Free(Arc<Mutex<Heap>>, Option<Block>);
            impl Drop for Free {
                fn drop(&mut self) {
                    self.1.take().into_iter().for_each(|b| lock(&self.0).free_retired(b));
                }
            }
            lock(&self.heap).mark_retired(&block);
            crate::sync::retire(Free(self.heap.clone(), Some(block)));
        }
    }
}

/// Where an explicit redirection points.
#[derive(Clone, Copy, Debug)]
pub enum RedirectTarget<'a> {
    /// A JIT or host symbol, looked up in `dylib` like [`Dylib::lookup`] does. A JIT function is followed
    /// through its entry, so the redirectable sees the target's later redefinitions too.
    Symbol(&'a Dylib, &'a str),
    /// A host function with its Rust signature (made by [`RedirectTarget::host`]).
    Host(usize, fn() -> Signature),
    /// Host code by address, with no signature: only for redirectables created from an address.
    Address(usize),
}

impl RedirectTarget<'_> {
    /// A host function, whose signature must match the redirectable's.
    pub fn host<F: HostFn>(f: F) -> RedirectTarget<'static> {
        RedirectTarget::Host(f.addr(), F::signature)
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

    fn compile(&self, source: Source) -> Result<crate::compile::Compiled> {
        let config = &self.jit.config;
        let mut compiled = compile(source, config.opt, &config.dump)?;
        if compiled.name == "<module>" {
            compiled.name = format!("module#{}", NEXT_SERIAL.load(Ordering::Relaxed));
        }
        Ok(compiled)
    }

    /// Compiles, links and publishes a module, then runs its constructors.
    ///
    /// A global function the dylib already defines is *redefined*: its entry is redirected to the new body
    /// (all of the module's names in one step), calls in flight finish on the old body, and a module whose
    /// every name has been redefined is retired. A redefinition must keep the function's signature.
    pub fn add_module(&self, source: Source) -> Result<ModuleHandle> {
        let compiled = self.compile(source)?;
        let mut handles =
            self.change(Change { add: vec![compiled], initializers: true, ..Change::default() })?;
        Ok(handles.pop().expect("one module added"))
    }

    /// Adds several modules in one step: they may call each other's functions in any order (mutual
    /// recursion across modules), and they become visible together. Data may only be referenced from
    /// modules later in the list than its definer.
    pub fn add_modules(&self, sources: Vec<Source>) -> Result<Vec<ModuleHandle>> {
        let add = sources.into_iter().map(|s| self.compile(s)).collect::<Result<Vec<_>>>()?;
        self.change(Change { add, initializers: true, ..Change::default() })
    }

    /// Replaces the dylib's whole contents in one step (semi-space style): the new modules are compiled
    /// and linked while the old ones keep serving calls, then every name switches at once and the old
    /// modules are retired. Names the new set no longer defines must not be imported by modules of other
    /// dylibs (unless `removal` is [`Removal::Force`]).
    pub fn replace_all(&self, sources: Vec<Source>, removal: Removal) -> Result<Vec<ModuleHandle>> {
        let add = sources.into_iter().map(|s| self.compile(s)).collect::<Result<Vec<_>>>()?;
        self.change(Change { add, remove: Remove::All, removal, initializers: true })
    }

    /// Like [`add_module`](Self::add_module), but the module is inert: its constructors and destructors
    /// never run and its `.eh_frame` is not registered (for fuzzing arbitrary objects).
    #[doc(hidden)]
    pub fn add_module_without_init(&self, source: Source) -> Result<ModuleHandle> {
        let compiled = self.compile(source)?;
        let mut handles = self.change(Change { add: vec![compiled], ..Change::default() })?;
        Ok(handles.pop().expect("one module added"))
    }

    /// Removes a module: its names disappear (refused with [`Error::ModuleInUse`] while a live module
    /// imports one of them), its destructors run, and its memory is freed once no thread can be running it.
    pub fn remove_module(&self, handle: &ModuleHandle) -> Result<()> {
        self.remove_modules(std::slice::from_ref(handle), Removal::Refuse)
    }

    /// Removes several modules in one step (they may import from each other), with the given policy for
    /// names that other live modules still import.
    pub fn remove_modules(&self, handles: &[ModuleHandle], removal: Removal) -> Result<()> {
        self.change(Change { remove: Remove::Modules(handles.to_vec()), removal, ..Change::default() })
            .map(drop)
    }

    /// Removes every module and redirectable symbol of the dylib (host definitions stay).
    pub fn clear(&self, removal: Removal) -> Result<()> {
        self.change(Change { remove: Remove::All, removal, ..Change::default() }).map(drop)
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
        let state = lock(&self.shared.state);
        let mut symbols = write(&self.shared.symbols);
        if symbols.contains_key(name) || state.orphans.contains_key(name) {
            return Err(Error::DuplicateDefinition {
                module: "<host>".to_string(),
                symbol: name.to_string(),
                dylib: self.shared.name.clone(),
            });
        }
        symbols.insert(name.to_string(), def);
        Ok(())
    }

    /// Creates a redirectable symbol `name` pointing at `target`: an entry like a module function's, whose
    /// target is changed with [`redirect`](Self::redirect) (LLVM's `RedirectionManager`). Its signature is
    /// the target's.
    pub fn create_redirectable(&self, name: &str, target: RedirectTarget<'_>) -> Result<()> {
        self.redirectable(name, target, true)
    }

    /// Points the redirectable symbol `name` at `target`, whose signature must be the symbol's. Calls in
    /// flight finish on the old target.
    pub fn redirect(&self, name: &str, target: RedirectTarget<'_>) -> Result<()> {
        self.redirectable(name, target, false)
    }

    fn redirectable(&self, name: &str, target: RedirectTarget<'_>, create: bool) -> Result<()> {
        let refuse = |reason: String| Error::Redirect {
            symbol: name.to_string(),
            dylib: self.shared.name.clone(),
            reason,
        };
        let mut state = lock(&self.shared.state);
        let mut imports = lock(&self.jit.imports);
        let existing = read(&self.shared.symbols).get(name).cloned();
        let (addr, owner, signature, import) = match target {
            RedirectTarget::Address(addr) => (addr, Owner::Host, None, None),
            RedirectTarget::Host(addr, sig) => (addr, Owner::Host, Some(sig()), None),
            RedirectTarget::Symbol(dylib, symbol) => match dylib.definition(symbol)? {
                Definition::Function { entry, .. } => {
                    let mut hop = Some(entry.clone());
                    while let Some(e) = hop {
                        if e.name == name && e.dylib == self.shared.name {
                            return Err(refuse(format!("redirecting to `{symbol}` would form a cycle")));
                        }
                        hop = e.target().and_then(|t| match &t.owner {
                            Owner::Entry(next) => Some(next.clone()),
                            _ => None,
                        });
                    }
                    let import = (dylib.shared.id, symbol.to_string());
                    (entry.stub(), Owner::Entry(entry.clone()), entry.signature.clone(), Some(import))
                }
                Definition::Host { addr, signature } => (addr, Owner::Host, signature, None),
                Definition::Data { .. } => return Err(refuse(format!("`{symbol}` is data"))),
            },
        };
        let entry = if create {
            if existing.is_some() || state.orphans.contains_key(name) {
                return Err(Error::DuplicateDefinition {
                    module: "<redirectable>".to_string(),
                    symbol: name.to_string(),
                    dylib: self.shared.name.clone(),
                });
            }
            EntryTable::create(&self.jit.entries, &self.shared.name, name, signature.clone())?
        } else {
            match (existing, state.redirectables.contains_key(name)) {
                (Some(Definition::Function { entry, .. }), true) => {
                    if entry.signature.is_some() && entry.signature != signature {
                        let found = signature.map_or("an unknown signature".to_string(), |s| s.to_string());
                        let expected = entry.signature.as_ref().map(|s| s.to_string()).unwrap_or_default();
                        return Err(refuse(format!("the target has {found}, the symbol `{expected}`")));
                    }
                    entry
                }
                _ => return Err(refuse("it is not a redirectable symbol of this dylib".to_string())),
            }
        };
        let serial = *state.redirectables.entry(name.to_string()).or_insert_with(next_serial);
        imports.forget(serial);
        if let Some((dylib, symbol)) = import {
            let label = format!("redirectable `{name}` of dylib `{}`", self.shared.name);
            imports.record(dylib, &symbol, serial, &label);
        }
        entry.redirect(Some(Arc::new(Target { addr, owner })));
        if create {
            let def = Definition::Function { entry, module: None, hidden: false };
            write(&self.shared.symbols).insert(name.to_string(), def);
        }
        Ok(())
    }

    fn definition(&self, name: &str) -> Result<Definition> {
        let own = self.shared.find(name, true);
        let found = own
            .or_else(|| self.shared.links().iter().find_map(|l| l.find(name, false)))
            .or_else(|| self.jit.host_definition(name));
        found.ok_or_else(|| Error::SymbolNotFound {
            dylib: self.shared.name.clone(),
            symbol: name.to_string(),
        })
    }

    /// The address of `name` (searching this dylib, its links and the JIT's host symbols). For a JIT
    /// function this is its entry's stub: stable across redefinitions, and the same address JIT code sees.
    pub fn lookup_address(&self, name: &str) -> Result<usize> {
        self.definition(name).map(|d| d.addr())
    }

    /// A typed, safe-to-call handle to the function `name`, whose IR signature must match `S`.
    ///
    /// The handle follows redefinitions; once the function is removed, calling it panics.
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
        let (func, found) = match self.definition(name)? {
            Definition::Function { entry, .. } => {
                let sig = entry.signature.clone();
                (Func::entry(entry), sig)
            }
            Definition::Host { addr, signature } => (Func::host(addr), signature),
            Definition::Data { .. } => (Func::host(0), None),
        };
        let found = found.ok_or_else(|| Error::NoSignature { symbol: name.to_string() })?;
        if found != expected {
            return Err(Error::SignatureMismatch {
                symbol: name.to_string(),
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
        Ok(func)
    }

    /// The IR signature of the function `name`, if it is known.
    pub fn signature(&self, name: &str) -> Result<Option<Signature>> {
        Ok(match self.definition(name)? {
            Definition::Function { entry, .. } => entry.signature.clone(),
            Definition::Data { .. } => None,
            Definition::Host { signature, .. } => signature,
        })
    }

    /// The name of the module that currently defines `name` in this dylib, if a module does.
    pub fn defining_module(&self, name: &str) -> Option<String> {
        self.shared.find(name, true)?.module().map(|m| m.name().to_string())
    }

    /// The modules of this dylib, oldest first.
    pub fn modules(&self) -> Vec<ModuleHandle> {
        let state = lock(&self.shared.state);
        let mut handles: Vec<_> = state.modules.values().map(|m| self.handle(m)).collect();
        handles.sort_by_key(|h| h.serial);
        handles
    }

    fn handle(&self, m: &LoadedModule) -> ModuleHandle {
        ModuleHandle {
            dylib: self.shared.name.clone(),
            dylib_id: self.shared.id,
            name: m.name.clone(),
            serial: m.serial,
        }
    }
}
