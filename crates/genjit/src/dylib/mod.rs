//! JITDylibs: named symbol tables that hold modules.
//!
//! A [`Dylib`] is to genjit what a shared object is to the dynamic linker: modules added to it see each
//! other's definitions (hidden ones included), it can link to other dylibs, whose exported definitions it
//! then sees, and it can be removed as a whole like `dlclose`. Unlike a shared object, its contents change
//! while other threads run them.
//!
//! ## What a name stands for
//! Every global function a module defines gets an *entry* (`runtime::entry`): a stub whose address is the
//! function's identity and a slot the stub jumps through. Importers, address-taking code and the module's
//! own calls all use the stub, and Rust [`Func`] handles load the slot, so pointing the slot at another
//! body redirects every caller. Data is referenced directly (an importer holds the exporting module alive).
//! Host definitions are plain addresses.
//!
//! ## Pieces
//! - `table`: one dylib's data ([`DylibShared`]): the symbol table, its modules, the link lock.
//! - `session`: what all dylibs of a JIT share (heap, entries, imports, host symbols) and the resolution
//!   order outside the dylib.
//! - `module`: a linked, published module and its lifecycle.
//! - `txn` and `plan`: every change (add, redefine, remove, replace) as one transaction.
//! - `redirect`: explicit redirectable symbols.
//! - `imports`: the index of who imports which name.
//!
//! ## Changing a dylib
//! Adding, redefining, removing and replacing are one operation (`txn`): under the dylib's *link lock*
//! and the JIT's *import lock* it links the new modules, computes the dylib's next table, checks it
//! (signatures, names still imported by live modules), and only then commits: every changed slot is
//! redirected and the table replaced under one write-lock acquisition. A refused change leaves the JIT
//! exactly as it was. Removed and superseded modules are then finalized (destructors) and *retired*: freed by
//! epoch reclamation once no thread can still be running them (see `runtime::reclaim`).

mod imports;
pub(crate) mod lazy;
pub(crate) mod module;
mod plan;
mod policy;
mod redirect;
mod session;
pub(crate) mod table;
pub(crate) mod tiering;
mod txn;

pub use imports::Importer;
pub use lazy::Lazy;
pub use policy::{Decision, HotFunction, Policy, Tiering, Trigger};
pub(crate) use session::{Config, Session, StallHook};
pub(crate) use table::{Definition, DylibShared};
pub use tiering::TierStatus;
pub(crate) use txn::{Change, Remove};

use crate::compile::{compile_with, Compiled, Source};
use crate::error::{Error, Result};
use crate::func::{Func, HostFn};
use crate::signature::{JitSignature, Signature};
use crate::timings::ModuleTimings;
use module::LoadedModule;
use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use table::next_serial;

/// A host definition for the JIT-wide table (`Jit::define_host`).
pub(crate) fn host_definition(addr: usize, signature: Option<Signature>) -> Definition {
    Definition::Host { addr, signature: signature.map(Box::new) }
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

/// A handle to one module of a dylib: its name, how long adding it took, and the key to remove it.
///
/// Two handles are equal when they name the same module of the same dylib.
#[derive(Clone, Debug)]
pub struct ModuleHandle {
    dylib: String,
    dylib_id: u64,
    name: String,
    serial: u64,
    timings: ModuleTimings,
    code_bytes: usize,
    data_bytes: usize,
}

impl ModuleHandle {
    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the dylib the module was added to.
    pub fn dylib(&self) -> &str {
        &self.dylib
    }

    /// How long each phase of adding the module took.
    pub fn timings(&self) -> ModuleTimings {
        self.timings
    }

    /// Bytes the module occupies in the code heap: code (text, read-only data, GOT, stubs, unwind tables)
    /// and writable data.
    pub fn heap_bytes(&self) -> (usize, usize) {
        (self.code_bytes, self.data_bytes)
    }
}

impl PartialEq for ModuleHandle {
    fn eq(&self, other: &Self) -> bool {
        self.dylib_id == other.dylib_id && self.serial == other.serial
    }
}

impl Eq for ModuleHandle {}

impl Hash for ModuleHandle {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.dylib_id, self.serial).hash(state);
    }
}

/// Where an explicit redirection points: made by [`symbol`](Self::symbol), [`host`](Self::host), or,
/// for raw code, the `unsafe` [`address`](Self::address).
///
/// ```compile_fail
/// // A host target is only made from a real function: no safe way to point one at a bogus address.
/// let bogus = genjit::RedirectTarget::Host(0xdead, <fn() as genjit::JitSignature>::signature);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RedirectTarget<'a>(pub(crate) Redirection<'a>);

#[derive(Clone, Copy, Debug)]
pub(crate) enum Redirection<'a> {
    /// A JIT or host symbol, looked up in a dylib like [`Dylib::lookup`] does.
    Symbol(&'a Dylib, &'a str),
    /// A host function with its Rust signature.
    Host(usize, fn() -> Signature),
    /// Code by address, with no signature.
    Address(usize),
}

impl<'a> RedirectTarget<'a> {
    /// A JIT or host symbol, looked up in `dylib` like [`Dylib::lookup`] does. A JIT function is followed
    /// through its entry, so the redirectable sees the target's later redefinitions too.
    pub fn symbol(dylib: &'a Dylib, name: &'a str) -> RedirectTarget<'a> {
        RedirectTarget(Redirection::Symbol(dylib, name))
    }

    /// A host function, whose signature must match the redirectable's.
    pub fn host<F: HostFn>(f: F) -> RedirectTarget<'static> {
        RedirectTarget(Redirection::Host(f.addr(), F::signature))
    }

    /// Code by address, with no signature: only for redirectables that have none either (created from an
    /// address), which typed lookups refuse.
    ///
    /// # Safety
    /// - `addr` is code that JIT code calling the redirectable may run, with the signature those callers
    ///   use, for as long as the redirectable points at it.
    pub unsafe fn address(addr: usize) -> RedirectTarget<'static> {
        RedirectTarget(Redirection::Address(addr))
    }
}

/// A JITDylib (see the module docs). Cheap to clone; `Send + Sync`. A handle keeps its JIT alive.
#[derive(Clone)]
pub struct Dylib {
    session: Arc<Session>,
    shared: Arc<DylibShared>,
    /// The JIT that owns the dylib (its registry), kept alive while any handle lives.
    _jit: Arc<dyn Any + Send + Sync>,
}

// Every change to a dylib is planned before anything is published and committed without panicking, so a
// panic caught around a `Dylib` call never exposes a half-made change (parking_lot locks do not poison).
impl std::panic::UnwindSafe for Dylib {}
impl std::panic::RefUnwindSafe for Dylib {}

impl std::fmt::Debug for Dylib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dylib").field("name", &self.shared.name).finish()
    }
}

impl Dylib {
    pub(crate) fn new(
        session: Arc<Session>,
        shared: Arc<DylibShared>,
        jit: Arc<dyn Any + Send + Sync>,
    ) -> Dylib {
        Dylib { session, shared, _jit: jit }
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
        // Recorded before the link is usable: a pin in this dylib holds back the other's code from now on.
        self.shared.domain.link(self.shared.scope, other.shared.scope);
        self.shared.links.write().push(other.shared.clone());
    }

    /// Pins the calling thread for this dylib and every dylib it can reach (its links, transitively, and
    /// the dylibs its symbols were redirected to): until the `Pinned` is dropped, none of their code the
    /// thread could have reached is freed. Other dylibs' reclamation is not held back.
    pub fn pin(&self) -> crate::Pinned<'_> {
        self.shared.domain.pin(self.shared.scope)
    }

    /// Compiles a module for this dylib (`lazy`: see [`add_lazy_module`](Self::add_lazy_module)).
    fn compile(&self, source: Source, lazy: bool) -> Result<Compiled> {
        self.compile_as(source, lazy, next_serial())
    }

    fn compile_as(&self, source: Source, lazy: bool, serial: u64) -> Result<Compiled> {
        let config = &self.session.config;
        let name = format!("module#{serial}");
        let unnamed = source.name.is_none();
        // A tiered dylib promotes the module's locals under a tag unique to it (see `tiering`).
        let tiering =
            self.shared.state.lock().tiering.as_ref().map(|t| t.config.as_ref().map(|c| c.thresholds()));
        let tag = serial.to_string();
        let first_tier = match tiering {
            Some(thresholds) if thresholds.is_some() || lazy => {
                let thresholds = thresholds.unwrap_or_default();
                let verify = config.verify_rewrites();
                Some(crate::compile::FirstTier { tag: &tag, thresholds, lazy, verify })
            }
            _ => None,
        };
        self.session.note_compile();
        let mut compiled = match &self.session.pool {
            Some(pool) => pool.compile(source, name, config.opt),
            None => compile_with(source, name, config.opt, &config.dump, first_tier),
        }?;
        compiled.default_serial = unnamed.then_some(serial);
        Ok(compiled)
    }

    /// Compiles a batch's modules, on up to [`JitBuilder::compile_threads`](crate::JitBuilder) threads at
    /// once (the calling thread and scoped helpers, largest source first), and returns them in order, or
    /// the error of the first one that failed. Serials are taken in order first, so names and promotion
    /// tags do not depend on which thread finished first. Each compile has its own LLVM context and the
    /// thread's own target machine; nothing is shared until the linker, which runs after all of them.
    pub(crate) fn compile_all(&self, sources: Vec<Source>, lazy: bool) -> Result<Vec<Compiled>> {
        let threads = self.session.config.compile_threads().min(sources.len());
        let serials: Vec<u64> = sources.iter().map(|_| next_serial()).collect();
        if threads <= 1 || self.session.pool.is_some() {
            return sources.into_iter().zip(serials).map(|(s, n)| self.compile_as(s, lazy, n)).collect();
        }
        let mut order: Vec<usize> = (0..sources.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(sources[i].size()));
        let work: Vec<parking_lot::Mutex<Option<Source>>> =
            sources.into_iter().map(|s| parking_lot::Mutex::new(Some(s))).collect();
        let done: Vec<parking_lot::Mutex<Option<Result<Compiled>>>> =
            work.iter().map(|_| parking_lot::Mutex::new(None)).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let compile = || {
            while let Some(&i) = order.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                let source = work[i].lock().take().expect("each source is taken once");
                *done[i].lock() = Some(self.compile_as(source, lazy, serials[i]));
            }
        };
        std::thread::scope(|scope| {
            for k in 1..threads {
                // A helper that cannot be started leaves its share to the others.
                let _ = std::thread::Builder::new()
                    .name(format!("genjit-compile-{k}"))
                    .spawn_scoped(scope, compile);
            }
            compile();
        });
        done.into_iter().map(|d| d.into_inner().expect("every source was compiled")).collect()
    }

    /// Compiles, links and publishes a module, then runs its constructors.
    ///
    /// A global function the dylib already defines is *redefined*: its entry is redirected to the new body
    /// (all of the module's names in one step), calls in flight finish on the old body, and a module whose
    /// every name has been redefined is retired. A redefinition must keep the function's signature.
    ///
    /// ```
    /// let jit = genjit::Jit::new()?;
    /// let dylib = jit.create_dylib("example")?;
    /// let module = dylib.add_module(genjit::Source::ir_text("@x = global i64 7\n").named("x"))?;
    /// assert_eq!(module.name(), "x");
    /// println!("added in {:?}", module.timings().total());
    /// # Ok::<(), genjit::Error>(())
    /// ```
    pub fn add_module(&self, source: Source) -> Result<ModuleHandle> {
        let compiled = self.compile(source, false)?;
        let mut handles =
            self.change(Change { add: vec![compiled], initializers: true, ..Change::default() })?;
        Ok(handles.pop().expect("one module added"))
    }

    /// Adds several modules in one step, linked like one shared object: every module is placed before any
    /// name is resolved, so they may reference each other's functions and data in any order and in cycles,
    /// and a name they define wins over host and process symbols. They become visible together; their
    /// constructors then run in list order.
    pub fn add_modules(&self, sources: Vec<Source>) -> Result<Vec<ModuleHandle>> {
        let add = self.compile_all(sources, false)?;
        self.change(Change { add, initializers: true, ..Change::default() })
    }

    /// Replaces the dylib's whole contents in one step (semi-space style): the new modules are compiled
    /// and linked while the old ones keep serving calls, then every name switches at once and the old
    /// modules are retired. Names the new set no longer defines must not be imported by modules of other
    /// dylibs (unless `removal` is [`Removal::Force`]).
    pub fn replace_all(&self, sources: Vec<Source>, removal: Removal) -> Result<Vec<ModuleHandle>> {
        let add = self.compile_all(sources, false)?;
        self.change(Change { add, remove: Remove::All, removal, initializers: true, ..Change::default() })
    }

    /// Like [`add_module`](Self::add_module), but the module is inert: its constructors and destructors
    /// never run and its `.eh_frame` is not registered (for fuzzing arbitrary objects).
    #[doc(hidden)]
    pub fn add_module_without_init(&self, source: Source) -> Result<ModuleHandle> {
        let compiled = self.compile(source, false)?;
        let mut handles = self.change(Change { add: vec![compiled], ..Change::default() })?;
        Ok(handles.pop().expect("one module added"))
    }

    /// Removes a module: its names disappear (refused with [`Error::ModuleInUse`] while a live module
    /// imports one of them), its destructors run, and its memory is freed once no thread can be running it.
    ///
    /// ```
    /// use genjit::{Error, Jit, Source};
    /// let jit = Jit::new()?;
    /// let db = jit.create_dylib("db")?;
    /// let f = db.add_module(Source::ir_text("define i64 @f() {\n  ret i64 1\n}\n").named("f"))?;
    /// let g = db.add_module(Source::ir_text(
    ///     "declare i64 @f()\ndefine i64 @g() {\n  %r = call i64 @f()\n  ret i64 %r\n}\n",
    /// ))?;
    /// // `g` imports `f`: removing `f` alone is refused, and nothing changes.
    /// assert!(matches!(db.remove_module(&f), Err(Error::ModuleInUse { .. })));
    /// db.remove_modules(&[f, g], genjit::Removal::Refuse)?; // together they may go
    /// assert!(db.modules().is_empty());
    /// # Ok::<(), genjit::Error>(())
    /// ```
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
        self.shared
            .define_host(name, Definition::Host { addr: f.addr(), signature: Some(Box::new(F::signature())) })
    }

    /// Defines a host symbol in this dylib by address (data, or code without a recorded signature).
    ///
    /// # Safety
    /// - JIT code that uses `name` may read, write or call `addr` as its own declaration of `name` says, for
    ///   as long as the definition exists: `addr` must be valid for that use.
    pub unsafe fn define_host_address(&self, name: &str, addr: usize) -> Result<()> {
        self.shared.define_host(name, Definition::Host { addr, signature: None })
    }

    /// Creates a redirectable symbol `name` pointing at `target`: an entry like a module function's, whose
    /// target is changed with [`redirect`](Self::redirect) (LLVM's `RedirectionManager`). Its signature is
    /// the target's.
    ///
    /// ```
    /// use genjit::{Jit, RedirectTarget, Source};
    /// extern "C" fn slow(x: i64) -> i64 { x + 1 }
    /// let jit = Jit::new()?;
    /// let db = jit.create_dylib("db")?;
    /// db.add_module(Source::ir_text("define i64 @fast(i64 %x) {\n  %r = add i64 %x, 1\n  ret i64 %r\n}\n"))?;
    /// db.create_redirectable("step", RedirectTarget::host(slow as extern "C" fn(i64) -> i64))?;
    /// let step = db.lookup::<fn(i64) -> i64>("step")?;
    /// assert_eq!(step.call(1), 2);
    /// db.redirect("step", RedirectTarget::symbol(&db, "fast"))?; // every caller switches at once
    /// assert_eq!(step.call(1), 2);
    /// # Ok::<(), genjit::Error>(())
    /// ```
    pub fn create_redirectable(&self, name: &str, target: RedirectTarget<'_>) -> Result<()> {
        self.redirectable(name, target, true)
    }

    /// Points the redirectable symbol `name` at `target`, whose signature must be the symbol's. Calls in
    /// flight finish on the old target.
    pub fn redirect(&self, name: &str, target: RedirectTarget<'_>) -> Result<()> {
        self.redirectable(name, target, false)
    }

    fn definition(&self, name: &str) -> Result<Definition> {
        let own = self.shared.find(name, true);
        let found = own
            .or_else(|| self.shared.links().iter().find_map(|l| l.find(name, false)))
            .or_else(|| self.session.host_definition(name));
        found.ok_or_else(|| Error::SymbolNotFound {
            dylib: self.shared.name.to_string(),
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
                let sig = entry.signature().cloned();
                (Func::entry(entry, self.session.domain.clone()), sig)
            }
            Definition::Host { addr, signature } => (Func::host(addr), signature.map(|s| *s)),
            Definition::Data { .. } => (Func::host(0), None),
        };
        let found = found.ok_or_else(|| Error::NoSignature { symbol: name.to_string() })?;
        if found != expected {
            return Err(Error::SignatureMismatch {
                symbol: name.to_string(),
                expected: Box::new(expected),
                found: Box::new(found),
            });
        }
        Ok(func)
    }

    /// The IR signature of the function `name`, if it is known.
    pub fn signature(&self, name: &str) -> Result<Option<Signature>> {
        Ok(match self.definition(name)? {
            Definition::Function { entry, .. } => entry.signature().cloned(),
            Definition::Data { .. } => None,
            Definition::Host { signature, .. } => signature.map(|s| *s),
        })
    }

    /// The name of the module that currently defines `name` in this dylib, if a module does.
    pub fn defining_module(&self, name: &str) -> Option<String> {
        self.shared.find(name, true)?.module().map(|m| m.name().to_string())
    }

    /// The modules of this dylib, oldest first.
    pub fn modules(&self) -> Vec<ModuleHandle> {
        let state = self.shared.state.lock();
        let mut handles: Vec<_> = state.modules.iter().map(|m| self.handle(&m.0)).collect();
        handles.sort_by_key(|h| h.serial);
        handles
    }

    fn handle(&self, m: &LoadedModule) -> ModuleHandle {
        let (code_bytes, data_bytes) = m.heap_bytes();
        ModuleHandle {
            dylib: self.shared.name.to_string(),
            dylib_id: self.shared.id,
            name: m.name().into_owned(),
            serial: m.serial,
            timings: m.timings(),
            code_bytes,
            data_bytes,
        }
    }
}
