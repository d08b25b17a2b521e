//! A module once it is linked and published: its memory, its definitions and its lifecycle.
//!
//! ## Lifecycle (drop order written down)
//! 1. `Linked` (from the linker) becomes a [`LoadedModule`]: `.eh_frame` is registered with the unwinder
//!    (by the heap, which deregisters it when the block is freed),
//!    and (if asked for) its functions are appended to the `perf` map and its object is registered with
//!    GDB.
//! 2. The dylib publishes its symbols and runs `.init_array` (outside every lock, so a constructor may use
//!    the JIT).
//! 3. On removal (or when every name it defined has been redefined by other modules) the dylib unpublishes
//!    its symbols, points their entries elsewhere, runs `.fini_array` and [`retires`](LoadedModule::retire)
//!    it: its bytes count as *awaiting reclamation* and every reference the dylib held goes to epoch
//!    reclamation. Functions are reached only through entries, so after the grace period no call can reach
//!    the module; its data is reached directly by importing modules, which therefore hold the exporter in
//!    `deps`.
//! 4. `Drop` (after the last reference, normally on the reclaimer thread): unregister it from GDB, retire its
//!    thread-local templates, then give both blocks back to the heap (`.eh_frame` deregistration, `int3`/zero
//!    fill, hole punching).

use crate::heap::{Block, Heap};
use crate::link::{DefinedSymbol, Linked, RelocRecord};
use crate::runtime::entry::{CodeOwner, Entry};
use crate::runtime::reclaim::Retire;
use crate::sys;
use crate::timings::ModuleTimings;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A linked, published module. Shared by its dylib, its `Func` handles and the modules that import from it.
///
/// Kept small: a live one-function module costs ~200 bytes here (see DESIGN.md, "Metadata"). What most
/// modules do not have (constructors, destructors, a GDB registration, relocation records) lives behind
/// one optional box.
#[derive(Debug)]
pub(crate) struct LoadedModule {
    /// `None` for the default name, `module#<serial>` (formatted on demand).
    name: Option<Box<str>>,
    pub(crate) serial: u64,
    code: Option<Block>,
    data: Option<Block>,
    heap: Arc<Mutex<Heap>>,
    pub(crate) symbols: Symbols,
    /// The modules whose data this one references directly: held so that data outlives this module's
    /// code. Modules of one batch may reference each other's data (a cycle of `Arc`s), so `retire` hands
    /// the list over to be dropped with the module's grace period, which breaks any cycle.
    /// Boxed: 8 bytes in the record for what most modules do not have (a `Vec` would take 24).
    #[allow(clippy::box_collection)]
    deps: Mutex<Option<Box<Vec<Arc<LoadedModule>>>>>,
    /// How many names of its dylib's table this module currently defines (one that drops to zero is
    /// superseded and retired; changed only under the dylib's link lock), and in [`RETIRED`] whether it
    /// was retired.
    published: AtomicU32,
    /// Complete once the module's constructors have run.
    timings: Timings,
    cold: Option<Box<Cold>>,
}

/// The bit of `LoadedModule::published` that says the module was retired.
const RETIRED: u32 = 1 << 31;

/// A module's symbols: one inline (an expression module defines one function), more in a box.
#[derive(Debug)]
pub(crate) enum Symbols {
    One(DefinedSymbol),
    Many(Box<[DefinedSymbol]>),
}

impl std::ops::Deref for Symbols {
    type Target = [DefinedSymbol];
    fn deref(&self) -> &[DefinedSymbol] {
        match self {
            Symbols::One(s) => std::slice::from_ref(s),
            Symbols::Many(s) => s,
        }
    }
}

impl Symbols {
    /// The symbol named `name`, if the module defines it.
    pub(crate) fn get(&self, name: &str) -> Option<&DefinedSymbol> {
        self.iter().find(|s| &*s.name == name)
    }
}

impl From<Vec<DefinedSymbol>> for Symbols {
    fn from(mut symbols: Vec<DefinedSymbol>) -> Symbols {
        match symbols.len() {
            1 => Symbols::One(symbols.pop().expect("one symbol")),
            _ => Symbols::Many(symbols.into()),
        }
    }
}

/// What few modules have.
#[derive(Debug, Default)]
struct Cold {
    /// The entries of the functions this one imports: held so their stubs are never reused while this
    /// module's code can jump to them (a forced removal leaves them tombstoned, not freed).
    #[allow(dead_code)] // held for ownership, never read
    entries: Box<[Arc<Entry>]>,
    init: Box<[usize]>,
    fini: Box<[usize]>,
    /// Kept for relinking at another address, when the linker was asked for them.
    #[allow(dead_code)] // kept for relinking, not read yet
    relocs: Box<[RelocRecord]>,
    /// The module's object, registered with GDB while the module lives (only if the JIT asked for it).
    gdb: Option<sys::gdb::Registration>,
    /// Its OSR entries, by name (a higher tier's; see `compile::osr`).
    osr: Box<[(Box<str>, usize)]>,
    /// Its functions' frames, for transfers to OSR entries (a first tier's; see `link::Linked::frames`).
    frames: Box<[crate::link::FrameSlots]>,
}

/// [`ModuleTimings`] in microseconds (saturating at 71 minutes), 28 bytes instead of 112 plus a lock.
#[derive(Debug, Default)]
struct Timings([AtomicU32; 7]);

impl Timings {
    fn new(t: &ModuleTimings) -> Timings {
        let timings = Timings::default();
        for (i, d) in
            [t.parse, t.verify, t.optimize, t.emit, t.link, t.publish, t.constructors].into_iter().enumerate()
        {
            timings.set(i, d);
        }
        timings
    }

    fn set(&self, i: usize, d: Duration) {
        // Relaxed: each figure is read on its own; `finish_timings` happens-before any `ModuleHandle`
        // of the module reaches another thread.
        self.0[i].store(u32::try_from(d.as_micros()).unwrap_or(u32::MAX), Ordering::Relaxed);
    }

    fn get(&self) -> ModuleTimings {
        let d = |i: usize| Duration::from_micros(u64::from(self.0[i].load(Ordering::Relaxed)));
        ModuleTimings {
            parse: d(0),
            verify: d(1),
            optimize: d(2),
            emit: d(3),
            link: d(4),
            publish: d(5),
            constructors: d(6),
        }
    }
}

impl LoadedModule {
    pub(crate) fn new(
        name: String,
        default_serial: Option<u64>,
        linked: Linked,
        dylib: &super::DylibShared,
        deps: Vec<Arc<LoadedModule>>,
        entries: Vec<Arc<Entry>>,
        timings: ModuleTimings,
    ) -> LoadedModule {
        let (heap, scope) = (dylib.heap.clone(), dylib.scope);
        // Filled only when the JIT was built with `perf_map(true)`.
        sys::perf::record(&name, &linked.functions);
        if let (Some(eh), Some(code)) = (linked.eh_frame, &linked.code) {
            let mut heap = heap.lock();
            // SAFETY: the linker placed the relocated `.eh_frame` at `eh` in this module's code block, next to
            // the code it describes, and zeroed the four bytes after it; the block is immutable from now on
            // and freeing it deregisters the section first.
            unsafe { heap.register_unwind(code, eh, scope) };
            retire_unwind_objects(&mut heap);
        }
        let cold = Cold {
            entries: entries.into(),
            init: linked.init.into(),
            fini: linked.fini.into(),
            relocs: linked.relocs.into(),
            gdb: linked.debug_object.map(sys::gdb::Registration::new),
            osr: linked.osr.into(),
            frames: linked.frames.into(),
        };
        let has_cold = !cold.entries.is_empty()
            || !cold.osr.is_empty()
            || !cold.frames.is_empty()
            || !cold.init.is_empty()
            || !cold.fini.is_empty()
            || !cold.relocs.is_empty()
            || cold.gdb.is_some();
        let (name, serial) = match default_serial {
            Some(serial) => (None, serial),
            None => (Some(name.into()), super::table::next_serial()),
        };
        LoadedModule {
            name,
            serial,
            code: linked.code,
            data: linked.data,
            heap,
            symbols: linked.symbols.into(),
            deps: Mutex::new((!deps.is_empty()).then(|| Box::new(deps))),
            published: AtomicU32::new(0),
            timings: Timings::new(&timings),
            cold: has_cold.then(|| Box::new(cold)),
        }
    }

    /// genjit's own heap memory for this module, estimated from its structures (allocator overhead
    /// excluded): the record, its name, its symbols and their names, and for each function the entry,
    /// its target and its slot in the entry table's name list.
    pub(crate) fn metadata_bytes(&self) -> usize {
        use std::mem::size_of;
        // Per allocation: glibc's chunk header and rounding; per `Arc`: the strong and weak counts.
        const CHUNK: usize = 16;
        const ARC: usize = 16;
        let list = match &self.symbols {
            Symbols::One(_) => 0,
            Symbols::Many(s) => CHUNK + std::mem::size_of_val::<[DefinedSymbol]>(s),
        };
        let symbols: usize = list + self.symbols.iter().map(|s| ARC + CHUNK + s.name.len()).sum::<usize>();
        let functions = self.symbols.iter().filter(|s| s.is_function).count();
        // The entry with its target inline (signatures are interned, shared by equal ones) and its slot
        // in the entry table's name list.
        let per_function = size_of::<Entry>() + ARC + CHUNK + 24;
        let cold = self.cold.as_ref().map_or(0, |c| {
            size_of::<Cold>()
                + CHUNK
                + 8 * (c.entries.len() + c.init.len() + c.fini.len())
                + c.relocs.len() * size_of::<RelocRecord>()
                + c.osr.iter().map(|(n, _)| CHUNK + 24 + n.len()).sum::<usize>()
                + c.frames.iter().map(|(n, f)| 2 * CHUNK + 32 + n.len() + 4 * f.len()).sum::<usize>()
        });
        size_of::<LoadedModule>()
            + ARC
            + CHUNK
            + self.name.as_ref().map_or(0, |n| CHUNK + n.len())
            + symbols
            + functions * per_function
            + cold
    }

    /// The address of this module's OSR entry `name` (see `compile::osr`), if it has it.
    pub(crate) fn osr_entry(&self, name: &str) -> Option<usize> {
        let cold = self.cold.as_ref()?;
        cold.osr.iter().find(|(n, _)| &**n == name).map(|&(_, addr)| addr)
    }

    /// Where `function`'s stack slots are relative to its frame array, if this module's code of it can
    /// transfer to an OSR entry (see `compile::osr`).
    pub(crate) fn frame(&self, function: &str) -> Option<&[i32]> {
        let cold = self.cold.as_ref()?;
        cold.frames.iter().find(|(n, _)| &**n == function).map(|(_, f)| &**f)
    }

    /// The headers of this module's OSR entries of `function`.
    pub(crate) fn osr_headers(&self, function: &str) -> Vec<u32> {
        let Some(cold) = self.cold.as_ref() else { return Vec::new() };
        let headers = cold.osr.iter().filter_map(|(n, _)| crate::compile::osr::entry_of(n));
        headers.filter(|&(_, f)| f == function).map(|(h, _)| h).collect()
    }

    /// Counts one more name of the table defined by this module (under the dylib's link lock).
    pub(crate) fn publish_one(&self) {
        // Relaxed: only ever read and written under the dylib's link lock.
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one name less; returns how many remain (under the dylib's link lock).
    pub(crate) fn unpublish_one(&self) -> u32 {
        // Relaxed: as above.
        let word = self.published.load(Ordering::Relaxed);
        let left = (word & !RETIRED).saturating_sub(1);
        self.published.store(word & RETIRED | left, Ordering::Relaxed);
        left
    }

    /// The module's constructors (`.init_array`), in run order.
    pub(crate) fn init(&self) -> &[usize] {
        self.cold.as_ref().map_or(&[], |c| &c.init)
    }

    /// The module's destructors (`.fini_array`), in run order.
    pub(crate) fn fini(&self) -> &[usize] {
        self.cold.as_ref().map_or(&[], |c| &c.fini)
    }

    /// Records the phases after linking: the change's publish time and the module's constructors.
    pub(crate) fn finish_timings(&self, publish: Duration, constructors: Duration) {
        self.timings.set(5, publish);
        self.timings.set(6, constructors);
    }

    /// How long each phase of adding the module took.
    pub(crate) fn timings(&self) -> ModuleTimings {
        self.timings.get()
    }

    /// Heap bytes of the code block and the data block.
    pub(crate) fn heap_bytes(&self) -> (usize, usize) {
        (self.code.as_ref().map_or(0, Block::len), self.data.as_ref().map_or(0, Block::len))
    }

    /// Counts the module's bytes as awaiting reclamation (once); called when the dylib lets go of it.
    /// Returns the modules it references data of: the caller retires them with this module, so they live
    /// until its grace period ends (and a batch's reference cycle is broken).
    pub(crate) fn retire(&self) -> Vec<Arc<LoadedModule>> {
        // Relaxed: the flag is read again in `Drop`, which the last `Arc` drop orders after this.
        if self.published.fetch_or(RETIRED, Ordering::Relaxed) & RETIRED == 0 {
            let metadata = self.metadata_bytes();
            let mut heap = self.heap.lock();
            self.code.iter().chain(&self.data).for_each(|b| heap.mark_retired(b));
            heap.awaiting_metadata += metadata;
        }
        self.deps.lock().take().map_or_else(Vec::new, |d| *d)
    }

    /// Adds a module whose data this one references (a module of the same batch, known only once all of
    /// the batch's modules exist).
    pub(crate) fn add_dep(&self, module: Arc<LoadedModule>) {
        self.deps.lock().get_or_insert_with(Default::default).push(module);
    }

    /// The module's name.
    pub(crate) fn name(&self) -> std::borrow::Cow<'_, str> {
        match &self.name {
            Some(name) => std::borrow::Cow::Borrowed(name),
            None => std::borrow::Cow::Owned(format!("module#{}", self.serial)),
        }
    }

    /// Runs the entries of an init or fini list.
    ///
    /// The entries are `void (*)(void)` functions produced by the compiler for `llvm.global_ctors` /
    /// `llvm.global_dtors` and relocated into this module's code.
    pub(crate) fn run_list(&self, list: &[usize]) {
        for &f in list {
            // SAFETY: `f` comes from this module's relocated `.init_array`/`.fini_array`, which hold
            // `void(void)` function addresses inside code that `self` keeps mapped.
            let f: extern "C" fn() = unsafe { std::mem::transmute::<usize, extern "C" fn()>(f) };
            f();
        }
    }
}

impl Drop for LoadedModule {
    fn drop(&mut self) {
        // The debugger forgets the module before its memory can be reused.
        drop(self.cold.as_mut().and_then(|c| c.gdb.take()));
        if let Some(data) = &self.data {
            crate::runtime::tls::retire_templates(data.addr(), data.addr() + data.len());
        }
        let retired = *self.published.get_mut() & RETIRED != 0;
        let metadata = if retired { self.metadata_bytes() } else { 0 };
        let mut heap = self.heap.lock();
        heap.awaiting_metadata -= metadata;
        for b in self.code.take().into_iter().chain(self.data.take()) {
            if retired {
                heap.free_retired(b);
            } else {
                heap.free(b);
            }
        }
        retire_unwind_objects(&mut heap);
    }
}

/// Hands the unwind objects the heap just replaced to reclamation (see `sys::unwind`). A thread
/// unwinding a frame the object covered may read it: one running code of one of the dylibs whose modules
/// lay in its window, so it waits for the pins of each of those scopes (one shared reference per scope).
fn retire_unwind_objects(heap: &mut Heap) {
    let retired = heap.take_retired_unwind();
    if retired.is_empty() {
        return;
    }
    let domain = heap.domain.clone().expect("a heap with unwind registrations belongs to a JIT");
    for object in retired {
        let tags = object.tags.clone();
        let object = Arc::new(object);
        for &tag in tags.iter() {
            domain.retire(tag, UnwindObject(object.clone()), 0, false);
        }
    }
}

/// A deregistered unwind object's storage. The only threads that can read it are inside libgcc's
/// `_Unwind_Find_FDE` (see `sys::unwind`), so for the handshake it is "in use" while a holder's registers
/// or stack point into that function.
struct UnwindObject(#[allow(dead_code)] Arc<sys::unwind::RetiredObject>); // held, never read

impl Retire for UnwindObject {
    fn ranges(&self, out: &mut Vec<(usize, usize)>) -> bool {
        sys::unwind::reader_range().map(|r| out.push(r)).is_some()
    }
}

impl CodeOwner for LoadedModule {
    fn ranges(&self, out: &mut Vec<(usize, usize)>) {
        out.extend(self.code.iter().chain(&self.data).map(|b| (b.addr(), b.addr() + b.len())));
    }
}
