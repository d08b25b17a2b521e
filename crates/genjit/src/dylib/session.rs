//! What every dylib of one JIT shares: the heap, the entry table, the import index, host symbols and the
//! settings. (ORC calls the same thing an `ExecutionSession`.)
//!
//! ## Resolution order
//! An undefined name in a module added to dylib `D` resolves to the first of:
//! 1. genjit's runtime symbols: `__genjit_tls_get` (thread-locals) and `__dso_handle` (`D`'s own handle, so
//!    `__cxa_atexit` registrations can be finalized when `D` goes away);
//! 2. `D`'s own definitions, hidden ones included (modules of one dylib are one "shared object");
//! 3. the exported definitions of the dylibs `D` links to, in link order (not transitively, as in ORC);
//! 4. host symbols defined on the `Jit`;
//! 5. the process's own symbols (`dlsym`), only when enabled with
//!    [`JitBuilder::process_symbols`](crate::JitBuilder::process_symbols).
//!
//! Steps 2 and 3 are the dylib's (see `txn`); this module answers 1, 4 and 5.
//!
//! ## Locks, in the order they are taken
//! 1. a dylib's *link lock* (its `State`), held for one change to that dylib;
//! 2. the session's *import lock* ([`Imports`]): every resolution of a name into a dylib and every check
//!    that a name may disappear happen under it;
//! 3. symbol-table `RwLock`s (a writer holds only its own dylib's), then the entry table and the heap.
//!
//! No thread takes a link lock while holding a later lock, so changes to dylibs that link to each other
//! cannot deadlock. Compilation holds no lock at all.

use super::imports::Imports;
use super::table::{Definition, DylibShared};
use crate::compile::{DumpKind, OptLevel};
use crate::error::{Error, Result};
use crate::heap::Heap;
use crate::runtime::entry::EntryTable;
use crate::runtime::reclaim::{Domain, StallCallback};
use crate::runtime::tls;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A JIT's settings (what [`JitBuilder`](crate::JitBuilder) collects).
#[derive(Clone, Debug, Default)]
pub(crate) struct Config {
    pub(crate) opt: OptLevel,
    pub(crate) process_symbols: bool,
    pub(crate) dump: Vec<(DumpKind, PathBuf)>,
    /// Append every published function to `/tmp/perf-<pid>.map` and the jitdump.
    pub(crate) perf_map: bool,
    /// Register every module with GDB's JIT interface.
    pub(crate) gdb: bool,
    /// Compile in worker processes.
    pub(crate) isolate: Option<crate::compile::Isolation>,
    /// Background threads compiling tier-ups and speculative lazy compiles (0 means 1).
    pub(crate) tier_up_threads: usize,
    /// Threads compiling the modules of one batch at once (`None`: the machine's parallelism).
    pub(crate) compile_threads: Option<usize>,
    /// Verify IR again after genjit's own first-tier rewrites (`None`: see [`Config::verify_rewrites`]).
    pub(crate) verify_rewrites: Option<bool>,
    /// When a pin holding reclamation back is reported (default 10 s), and to whom besides `tracing`.
    pub(crate) stall_after: Option<std::time::Duration>,
    pub(crate) on_stall: Option<StallHook>,
    /// After how long a pin holding retirements back is asked what it still uses (`Some(None)`: never;
    /// `None`: the default, 10 ms).
    pub(crate) handshake_after: Option<Option<std::time::Duration>>,
}

/// The JIT's stall callback.
#[derive(Clone)]
pub(crate) struct StallHook(pub(crate) StallCallback);

impl std::fmt::Debug for StallHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StallHook")
    }
}

impl Config {
    /// How many threads compile one batch's modules: as set, else the machine's available parallelism.
    pub(crate) fn compile_threads(&self) -> usize {
        self.compile_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    /// Whether IR is verified again after genjit's own first-tier rewrites (counters, lazy declarations):
    /// as set, else in debug builds or with `GENJIT_VERIFY_REWRITES` set (not to `0`).
    pub(crate) fn verify_rewrites(&self) -> bool {
        self.verify_rewrites.unwrap_or_else(|| {
            cfg!(debug_assertions) || std::env::var_os("GENJIT_VERIFY_REWRITES").is_some_and(|v| v != "0")
        })
    }

    /// What the linker must produce beyond the image for the profilers and debuggers asked for.
    pub(crate) fn extras(&self) -> crate::link::Extras {
        crate::link::Extras { functions: self.perf_map, debug_object: self.gdb, relocs: false }
    }
}

/// The JIT-wide state every dylib uses (see the module docs).
pub(crate) struct Session {
    pub(crate) heap: Arc<Mutex<Heap>>,
    pub(crate) entries: Arc<Mutex<EntryTable>>,
    pub(crate) imports: Mutex<Imports>,
    host: RwLock<HashMap<Arc<str>, Definition>>,
    /// The JIT's reclamation domain: its pins, retirements and reclamation figures.
    pub(crate) domain: Arc<Domain>,
    /// Compile workers, when compilation is isolated.
    pub(crate) pool: Option<crate::compile::Pool>,
    /// The tier-up threads' queue, once background work was asked for (see `tiering::Jobs`).
    tier_jobs: Mutex<Option<Arc<super::tiering::Jobs>>>,
    /// When the session was created, and nanoseconds from then to the last compile (for the tiering
    /// delay).
    created: std::time::Instant,
    last_compile: std::sync::atomic::AtomicU64,
    pub(crate) config: Config,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Queued jobs hold their dylib, hence the session: the queue is empty by now.
        if let Some(jobs) = self.tier_jobs.get_mut() {
            jobs.close();
        }
    }
}

impl Session {
    pub(crate) fn new(config: Config) -> Result<Session> {
        let stall_after = config.stall_after.unwrap_or(std::time::Duration::from_secs(10));
        let handshake_after = config.handshake_after.unwrap_or(Some(std::time::Duration::from_millis(10)));
        let domain = Domain::new(stall_after, config.on_stall.as_ref().map(|h| h.0.clone()), handshake_after)
            .map_err(|source| Error::Thread { what: "the reclaimer thread".to_string(), source })?;
        let mut heap = Heap::new().map_err(Error::Heap)?;
        heap.domain = Some(domain.clone());
        let heap = Arc::new(Mutex::new(heap));
        Ok(Session {
            entries: EntryTable::new(heap.clone(), domain.clone()),
            heap,
            imports: Mutex::new(Imports::default()),
            host: RwLock::new(HashMap::new()),
            domain,
            tier_jobs: Mutex::new(None),
            created: std::time::Instant::now(),
            last_compile: std::sync::atomic::AtomicU64::new(0),
            pool: config.isolate.clone().map(crate::compile::Pool::new),
            config,
        })
    }

    /// Queues work for the JIT's tier-up threads ([`JitBuilder::tier_up_threads`](crate::JitBuilder), one
    /// by default; started on first use; they end when the session does: see `tiering::Jobs`). An error
    /// only when no thread could be started (the process is out of threads or memory): the job is not
    /// queued, and starting is tried again with the next one. Never a panic: this runs inside the
    /// counters' hooks, called by JIT code, where a panic would abort the process.
    pub(crate) fn background(&self, job: super::tiering::Job) -> std::io::Result<()> {
        let jobs = {
            let mut slot = self.tier_jobs.lock();
            match &*slot {
                Some(jobs) => jobs.clone(),
                None => {
                    let jobs = Arc::new(super::tiering::Jobs::default());
                    let mut started = 0;
                    for i in 0..self.config.tier_up_threads.max(1) {
                        let worker = jobs.clone();
                        let spawned = std::thread::Builder::new()
                            .name(format!("genjit-tier-up-{i}"))
                            .spawn(move || worker.work());
                        match (spawned, started) {
                            (Ok(_), _) => started += 1,
                            (Err(e), 0) => return Err(e),
                            // Fewer threads than asked for: the ones running serve the queue.
                            (Err(_), _) => break,
                        }
                    }
                    *slot = Some(jobs.clone());
                    jobs
                }
            }
        };
        jobs.push(job);
        Ok(())
    }

    /// Notes that a module or function was compiled at the first tier (start-up-like activity).
    pub(crate) fn note_compile(&self) {
        let now = self.created.elapsed().as_nanos() as u64;
        self.last_compile.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// How much longer until nothing was compiled at the first tier for `delay` (the tiering delay).
    pub(crate) fn quiet_left(&self, delay: std::time::Duration) -> std::time::Duration {
        let last =
            std::time::Duration::from_nanos(self.last_compile.load(std::sync::atomic::Ordering::Relaxed));
        let quiet = self.created.elapsed().saturating_sub(last);
        delay.saturating_sub(quiet)
    }

    /// genjit's runtime symbols for a module of `dylib` (resolved before anything else).
    pub(crate) fn runtime_symbol(&self, dylib: &DylibShared, name: &str) -> Option<usize> {
        match name {
            tls::TLS_GET => Some(tls::genjit_tls_get as *const () as usize),
            crate::compile::tier::BACK_EDGE => Some(super::tiering::genjit_back_edge as *const () as usize),
            crate::compile::osr::HOT_LOOP => Some(super::tiering::genjit_hot_loop as *const () as usize),
            crate::compile::osr::HOT_GOTO => Some(super::tiering::genjit_hot_goto as *const () as usize),
            "__dso_handle" => Some(dylib.dso_handle()),
            _ => None,
        }
    }

    /// Names outside every dylib: the JIT's host symbols, then (if enabled) the process's.
    pub(crate) fn outside_symbol(&self, name: &str) -> Option<usize> {
        if let Some(def) = self.host.read().get(name) {
            return Some(def.addr());
        }
        if self.config.process_symbols {
            return crate::sys::process_symbol(name);
        }
        None
    }

    /// A host definition by name (for typed lookups of host functions).
    pub(crate) fn host_definition(&self, name: &str) -> Option<Definition> {
        self.host.read().get(name).cloned()
    }

    /// Defines a host symbol for every dylib; refused if the name is taken.
    pub(crate) fn define_host(&self, name: &str, def: Definition) -> Result<()> {
        let mut host = self.host.write();
        if host.contains_key(name) {
            return Err(Error::DuplicateDefinition {
                symbol: name.to_string(),
                definer: crate::error::Definer::Host,
                dylib: None,
            });
        }
        host.insert(name.into(), def);
        Ok(())
    }
}
