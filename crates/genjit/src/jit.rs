//! The JIT: configuration, the dylib registry and the figures.
//!
//! A [`Jit`] is a cheap, cloneable, `Send + Sync` handle. It owns the *session* every dylib shares (the code
//! heap, one 2 GiB reservation; the entry table; the import index; host symbols; see `dylib::session`)
//! and the registry of named [`Dylib`]s. Dropping the last handle (and the last `Dylib` handle, which keeps
//! its JIT alive) closes every dylib: destructors run, entries are tombstoned, and memory is reclaimed once
//! no thread can be running it.

use crate::compile::{with_machine, DumpKind, Isolation, OptLevel};
use crate::dylib::{Change, Config, Dylib, DylibShared, Removal, Remove, Session};
use crate::error::{Error, Result};
use crate::func::HostFn;
use crate::heap::HeapStats;
use crate::runtime::reclaim::{self, Pinned, Stall};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Settings for a [`Jit`].
///
/// ```
/// let jit = genjit::Jit::builder().opt_level(genjit::OptLevel::O2).process_symbols(true).build()?;
/// # Ok::<(), genjit::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct JitBuilder {
    config: Config,
}

impl JitBuilder {
    /// The optimization level modules are compiled at (default O0).
    pub fn opt_level(mut self, opt: OptLevel) -> Self {
        self.config.opt = opt;
        self
    }

    /// Whether undefined names fall back to the process's own symbols (libc, libm, ...). Off by default.
    pub fn process_symbols(mut self, enabled: bool) -> Self {
        self.config.process_symbols = enabled;
        self
    }

    /// Writes what is compiled (IR after optimization, assembly or the object) into `dir`, per module.
    pub fn dump(mut self, kind: DumpKind, dir: impl Into<PathBuf>) -> Self {
        self.config.dump.push((kind, dir.into()));
        self
    }

    /// Whether to append every function genjit publishes (its address, size and name) to
    /// `/tmp/perf-<pid>.map`, so that `perf report` names JIT code. Off by default.
    ///
    /// ```no_run
    /// let jit = genjit::Jit::builder().perf_map(true).build()?;
    /// // ... add modules, then: perf record -g -p <pid>; perf report
    /// # Ok::<(), genjit::Error>(())
    /// ```
    pub fn perf_map(mut self, enabled: bool) -> Self {
        self.config.perf_map = enabled;
        self
    }

    /// Whether to register every module with GDB's JIT interface (`__jit_debug_register_code`), so that a
    /// debugger attached to the process names JIT functions in backtraces and can set breakpoints in them.
    /// Off by default: each module then keeps a copy of its object file (~1-2 KiB for a small module)
    /// while it lives.
    pub fn gdb(mut self, enabled: bool) -> Self {
        self.config.gdb = enabled;
        self
    }

    /// Compiles every IR module in worker processes (see [`Isolation`]): a fatal LLVM error or a crash in
    /// the compiler becomes [`Error::CompilerCrashed`] instead of ending the host, and workers are
    /// recycled to bound LLVM's memory growth. Costs a round trip per module (see the README's figures).
    ///
    /// ```no_run
    /// // `genjit compile-worker` serves compiles; any binary calling `genjit::serve_compile_worker` does.
    /// let isolation = genjit::Isolation::command("genjit", ["compile-worker"]).workers(2);
    /// let jit = genjit::Jit::builder().isolate(isolation).build()?;
    /// # Ok::<(), genjit::Error>(())
    /// ```
    pub fn isolate(mut self, isolation: Isolation) -> Self {
        self.config.isolate = Some(isolation);
        self
    }

    /// How long a pin may hold a retirement back before its thread is reported (a `tracing` warning, and
    /// the [`on_stall`](Self::on_stall) callback), once per pin. Default 10 s.
    pub fn stall_after(mut self, age: Duration) -> Self {
        self.config.stall_after = Some(age);
        self
    }

    /// Calls `f` (on the reclaimer thread) for every pin reported as a stall (see
    /// [`stall_after`](Self::stall_after)). Keep it short: reclamation waits for it. A panic is caught
    /// and logged (`tracing` error): the reclaimer thread serves every JIT of the process.
    ///
    /// ```
    /// let jit = genjit::Jit::builder()
    ///     .stall_after(std::time::Duration::from_secs(60))
    ///     .on_stall(|s| eprintln!("{} pinned for {:?} holds {} bytes", s.thread, s.pinned_for, s.bytes))
    ///     .build()?;
    /// # Ok::<(), genjit::Error>(())
    /// ```
    pub fn on_stall(mut self, f: impl Fn(&Stall) + Send + Sync + 'static) -> Self {
        self.config.on_stall = Some(crate::dylib::StallHook(Arc::new(f)));
        self
    }

    /// Precise reclamation: once a pin that holds retired modules back has lasted `after` (default 10 ms),
    /// its thread is asked, by a signal, which of their code and data its registers and stack still
    /// point into (DESIGN.md, "Precise reclamation"); the rest is freed while the pin goes on. `None`
    /// turns it off: retired memory then waits for every pin that could reach it to end. The signal is
    /// the first unused real-time signal from `SIGRTMIN + 8`; a host that uses them all gets `None`.
    ///
    /// A retired module's memory is then guaranteed only to threads that are running its code or hold
    /// its addresses on their stacks or in registers, as after `dlclose`: a pointer into it kept
    /// elsewhere (a heap structure, a global) dangles once it is retired.
    pub fn handshake_after(mut self, after: Option<Duration>) -> Self {
        self.config.handshake_after = Some(after);
        self
    }

    /// How many background threads compile tier-ups and speculative lazy compiles (default 1; see
    /// [`Dylib::enable_tiering`](crate::Dylib::enable_tiering)).
    pub fn tier_up_threads(mut self, threads: usize) -> Self {
        self.config.tier_up_threads = threads.max(1);
        self
    }

    /// How many threads compile the modules of one [`add_modules`](crate::Dylib::add_modules) (or
    /// [`replace_all`](crate::Dylib::replace_all), [`add_lazy_modules`](crate::Dylib::add_lazy_modules))
    /// at once: the calling thread and up to `threads - 1` helpers that live for that call, largest
    /// module first. Default: the machine's available parallelism; 1 compiles on the calling thread
    /// only. (One module is always compiled on the calling thread.)
    pub fn compile_threads(mut self, threads: usize) -> Self {
        self.config.compile_threads = Some(threads.max(1));
        self
    }

    /// Whether a tiered or lazy module's IR is verified a second time, after genjit's own rewrites of its
    /// first tier (counters, lazy declarations), so that a bug in them is an [`Error::Verify`](crate::Error)
    /// instead of whatever LLVM's code generator does with broken IR. The user's IR is always verified
    /// before anything else; this second pass cost a real program's start-up (bzip2's, its first tier)
    /// 2.8% of its instructions, so by default it runs only in debug builds or with the environment
    /// variable `GENJIT_VERIFY_REWRITES` set (genjit's tests set it), like LLVM's `-verify-each`.
    pub fn verify_rewrites(mut self, enabled: bool) -> Self {
        self.config.verify_rewrites = Some(enabled);
        self
    }

    /// Creates the JIT: initializes LLVM for the host and reserves the heap.
    pub fn build(self) -> Result<Jit> {
        with_machine(self.config.opt, |_| Ok(()))?;
        let session = Arc::new(Session::new(self.config)?);
        Ok(Jit { shared: Arc::new(JitShared { session, dylibs: RwLock::new(HashMap::new()) }) })
    }
}

struct JitShared {
    session: Arc<Session>,
    dylibs: RwLock<HashMap<String, Arc<DylibShared>>>,
}

/// The JIT (see the module docs). Clones share one JIT.
#[derive(Clone)]
pub struct Jit {
    shared: Arc<JitShared>,
}

// As for `Dylib`: no operation leaves shared state half-updated when it panics.
impl std::panic::UnwindSafe for Jit {}
impl std::panic::RefUnwindSafe for Jit {}

impl std::fmt::Debug for Jit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jit").field("config", &self.shared.session.config).finish()
    }
}

/// A snapshot of the JIT's memory and contents. Cheap: no `/proc` reads, one pass over the generations
/// and the dylibs.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Stats {
    /// The heap's generations (each with live, free and awaiting-reclamation bytes).
    pub heap: HeapStats,
    /// Every live dylib, with its modules' totals.
    pub dylibs: Vec<DylibStats>,
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
    /// Estimated malloc bytes of those modules (see [`DylibStats::metadata_bytes`]): what a stalled
    /// reclamation holds beyond `awaiting_bytes`.
    pub awaiting_metadata_bytes: usize,
    /// Memory mappings the heap holds (each code generation's two views, each data generation, and the
    /// pieces of the reservation between them): an upper bound, since the kernel may merge neighbours.
    pub heap_mappings: usize,
    /// How long the longest-pinned thread of this JIT has been pinned, if any is (pins in other JITs
    /// never hold this one back).
    pub oldest_pin: Option<Duration>,
    /// Whether the reclaimer orders pins (two plain stores either way) with
    /// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` (Linux 4.14+); otherwise with a page-protection
    /// change whose TLB shootdown interrupts every CPU running the process (slower for the reclaimer
    /// only).
    pub fenceless_pins: bool,
    /// Handshakes run (see [`JitBuilder::handshake_after`]), and retirements they freed while the pins
    /// holding them went on.
    pub handshakes: u64,
    /// See [`handshakes`](Self::handshakes).
    pub freed_by_handshake: u64,
    /// Every thread whose pin holds back memory of this JIT: who, for how long, in which dylibs, and how
    /// much (see [`JitBuilder::stall_after`] for reports as they happen).
    pub stalls: Vec<Stall>,
    /// Time from retirement to release of the last 4096 retirements, if any.
    pub reclamation_lag: Option<Lag>,
    /// Whether freed code faults when executed: whole freed pages raise `SIGBUS` (a userfaultfd watches
    /// the code generations; Linux 5.11+), partly freed pages hold `int3`. Without it whole freed pages
    /// read as zeros.
    pub freed_code_traps: bool,
    /// `.eh_frame` sections registered with the unwinder (one per live module with unwind information).
    pub unwind_sections: usize,
    /// The libgcc objects they form: one per occupied 256 KiB window of code, whatever the number of
    /// modules (the cost of every deregistration and of an unwind's search grows with this, not with
    /// `unwind_sections`).
    pub unwind_objects: usize,
    /// Compile workers started so far, replacements of crashed and recycled ones included (0 unless
    /// compilation is isolated).
    pub compile_workers_started: u64,
}

/// One dylib's share of the heap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct DylibStats {
    /// The dylib's name.
    pub name: String,
    /// Live modules.
    pub modules: usize,
    /// Published symbols.
    pub symbols: usize,
    /// Heap bytes of the live modules' code blocks (text, read-only data, GOT, stubs, unwind tables).
    pub code_bytes: usize,
    /// Heap bytes of the live modules' data blocks.
    pub data_bytes: usize,
    /// genjit's own malloc for the live modules (records, symbols, names, entries and their targets) and
    /// the dylib's tables, estimated from the structures' sizes and capacities, allocator overhead
    /// excluded (measured: ~90% of what `mallinfo2` sees).
    pub metadata_bytes: usize,
    /// Tiering and lazy compilation (all zero in a dylib that uses neither).
    pub tiering: TieringStats,
}

/// A dylib's tiering and lazy compilation figures (see [`Dylib::enable_tiering`](crate::Dylib) and
/// [`Dylib::add_lazy_module`](crate::Dylib)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TieringStats {
    /// Functions moved to the higher tier so far.
    pub tier_ups: u64,
    /// Higher tiers dropped because a callee they inlined was redefined or removed.
    pub invalidations: u64,
    /// On-stack replacement entries compiled (each with a higher tier; DESIGN.md, "On-stack
    /// replacement").
    pub osr_entries: u64,
    /// First-tier calls that left a loop for an OSR entry.
    pub osr_transfers: u64,
    /// Bytes of IR kept for tiering and lazy compilation: the live tiered and lazy modules' promoted IR as
    /// bitcode, or, for a tiered module added as bitcode that has not tiered up yet, that bitcode.
    pub retained_ir_bytes: usize,
    /// Functions defined lazily by the live lazy modules.
    pub lazy_functions: usize,
    /// Of those, the ones never compiled (never called, nor compiled ahead or by speculation).
    pub lazy_uncompiled: usize,
    /// Lazy functions compiled so far (on their first call, ahead, or by speculation).
    pub lazy_compiles: u64,
    /// Of those, the ones compiled by speculation.
    pub speculative_compiles: u64,
    /// Time spent compiling lazy functions (on the threads that called them first, on threads calling
    /// [`Dylib::compile_lazy`](crate::Dylib::compile_lazy), and by speculation).
    pub lazy_compile_time: std::time::Duration,
    /// Of that, by speculation (on the JIT's background thread).
    pub speculative_compile_time: std::time::Duration,
    /// Time spent compiling higher tiers (on the JIT's background thread), kept or dropped.
    pub tier_up_compile_time: std::time::Duration,
    /// Heap bytes (code and data) of the live modules at each tier: `[0]` first-tier and lazy modules and
    /// lazily compiled functions, `[1]` higher tiers.
    pub heap_bytes: [usize; 2],
}

/// Percentiles of the reclamation lag (removal to memory reusable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
    ///
    /// [`Error::Thread`](crate::Error::Thread) when the process's reclaimer thread (started by its
    /// first JIT) cannot be started; [`Error::Heap`](crate::Error::Heap) when the code heap cannot map
    /// its range.
    pub fn new() -> Result<Jit> {
        JitBuilder::default().build()
    }

    /// Starts configuring a JIT.
    pub fn builder() -> JitBuilder {
        JitBuilder::default()
    }

    fn handle(&self, dylib: Arc<DylibShared>) -> Dylib {
        Dylib::new(self.shared.session.clone(), dylib, self.shared.clone())
    }

    /// Creates an empty dylib.
    pub fn create_dylib(&self, name: &str) -> Result<Dylib> {
        let mut dylibs = self.shared.dylibs.write();
        if dylibs.contains_key(name) {
            return Err(Error::DuplicateDylib(name.to_string()));
        }
        let session = &self.shared.session;
        let dylib = Arc::new(DylibShared::new(name, session.heap.clone(), session.domain.clone())?);
        dylibs.insert(name.to_string(), dylib.clone());
        Ok(self.handle(dylib))
    }

    /// The dylib called `name`, if any.
    pub fn dylib(&self, name: &str) -> Option<Dylib> {
        let dylib = self.shared.dylibs.read().get(name).cloned()?;
        Some(self.handle(dylib))
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
        if !registered(&self.shared.dylibs.read()) {
            return Err(Error::DylibRemoved(dylib.name().to_string()));
        }
        // Destructors run inside the change, with no lock held (they may use the JIT); `__cxa_finalize`
        // runs after them and before the dylib's functions are tombstoned (atexit handlers call them).
        let change = Change { remove: Remove::All, removal, ..Default::default() };
        let dso_handle = dylib.shared().dso_handle();
        // SAFETY: `finalize` runs after the removed modules' destructors and before their memory is retired:
        // the handlers' code is still mapped, and the handle is the dylib's.
        dylib.change_then(change, &|| unsafe { crate::sys::cxa_finalize(dso_handle) })?;
        dylib.shared().mark_closed();
        let mut dylibs = self.shared.dylibs.write();
        if registered(&dylibs) {
            dylibs.remove(dylib.name());
        }
        Ok(())
    }

    /// Defines a host function for every dylib (searched after the dylibs' own definitions).
    pub fn define_host<F: HostFn>(&self, name: &str, f: F) -> Result<()> {
        self.shared.session.define_host(name, crate::dylib::host_definition(f.addr(), Some(F::signature())))
    }

    /// Defines a host symbol by address (data, or a function without a recorded signature).
    ///
    /// # Safety
    /// - JIT code that uses `name` may read, write or call `addr` as its own declaration of `name` says, for
    ///   as long as the JIT lives: `addr` must be valid for that use.
    pub unsafe fn define_host_address(&self, name: &str, addr: usize) -> Result<()> {
        self.shared.session.define_host(name, crate::dylib::host_definition(addr, None))
    }

    /// A snapshot of the JIT's memory and contents.
    ///
    /// ```
    /// let jit = genjit::Jit::new()?;
    /// let db = jit.create_dylib("db")?;
    /// let m = db.add_module(genjit::Source::ir_text("@rows = global [64 x i64] zeroinitializer\n"))?;
    /// let stats = jit.stats();
    /// assert_eq!((stats.modules, stats.dylibs[0].name.as_str()), (1, "db"));
    /// assert_eq!(stats.dylibs[0].data_bytes, m.heap_bytes().1);
    /// db.remove_module(&m)?;
    /// jit.reclaim(std::time::Duration::from_secs(5)); // or let the background reclaimer do it
    /// assert_eq!(jit.stats().awaiting_bytes, 0);
    /// # Ok::<(), genjit::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let session = &self.shared.session;
        let (heap, heap_mappings, (unwind_sections, unwind_objects), awaiting_metadata_bytes) = {
            let heap = session.heap.lock();
            (heap.stats(), heap.mappings(), heap.unwind_registrations(), heap.awaiting_metadata)
        };
        let dylibs: Vec<DylibStats> = self.shared.dylibs.read().values().map(|d| d.stats()).collect();
        let (entry_bytes, entries) = session.entries.lock().usage();
        Stats {
            awaiting_bytes: heap.generations.iter().map(|g| g.awaiting_bytes).sum(),
            awaiting_metadata_bytes,
            heap,
            modules: dylibs.iter().map(|d| d.modules).sum(),
            symbols: dylibs.iter().map(|d| d.symbols).sum(),
            dylibs,
            entries,
            entry_bytes,
            heap_mappings,
            oldest_pin: session.domain.oldest_pin_age(),
            stalls: session.domain.stalls(),
            fenceless_pins: crate::runtime::sync::fences_are_asymmetric(),
            handshakes: session.domain.handshake_counts().0,
            freed_by_handshake: session.domain.handshake_counts().1,
            reclamation_lag: session.domain.lag.summary(),
            freed_code_traps: crate::sys::trap::available(),
            unwind_sections,
            unwind_objects,
            compile_workers_started: session.pool.as_ref().map_or(0, |p| p.started()),
        }
    }

    /// Waits until everything this JIT retired before the call has been freed, or `timeout` passes;
    /// returns whether it all was. Reclamation happens in the background anyway; this is for callers that want
    /// the memory back (or the figures settled) before they go on. Threads pinned in this JIT hold it back.
    pub fn reclaim(&self, timeout: Duration) -> bool {
        self.shared.session.domain.reclaim_now(timeout)
    }

    /// Pins the calling thread for every dylib of this JIT: until the `Pinned` is dropped, no code or
    /// data of this JIT that the thread could have reached is freed. For many calls in a row
    /// ([`Func::call_pinned`](crate::Func::call_pinned)) or for running code reached by address.
    /// [`Dylib::pin`](crate::Dylib::pin) holds back less.
    pub fn pin(&self) -> Pinned<'_> {
        self.shared.session.domain.pin(reclaim::ANY_SCOPE)
    }

    /// The heap's reserved address range `[start, end)`.
    pub fn heap_range(&self) -> (usize, usize) {
        self.shared.session.heap.lock().range()
    }
}

impl Drop for JitShared {
    fn drop(&mut self) {
        for dylib in std::mem::take(self.dylibs.get_mut()).into_values() {
            // Lazy modules' destructors may call functions never compiled: compile them first.
            let handle = crate::Dylib::new(self.session.clone(), dylib.clone(), Arc::new(()));
            handle.compile_before_finalizers(&crate::dylib::Remove::All);
            self.session.domain.retire(reclaim::ANY_SCOPE, reclaim::Opaque(dylib.close()), 0, false);
        }
    }
}

impl DylibStats {
    pub(crate) fn new(name: &str, modules: usize, symbols: usize, bytes: (usize, usize, usize)) -> Self {
        let (code_bytes, data_bytes, metadata_bytes) = bytes;
        DylibStats {
            name: name.to_string(),
            modules,
            symbols,
            code_bytes,
            data_bytes,
            metadata_bytes,
            tiering: TieringStats::default(),
        }
    }
}
