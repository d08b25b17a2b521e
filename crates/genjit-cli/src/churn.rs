//! `genjit churn`: a query-engine workload that compiles, calls, redefines and unloads expression modules.
//!
//! One mutator thread (the caller of [`churn`]) keeps `live` query modules: each cycle it compiles a new
//! expression module (each a different expression) and either adds it as a new query — removing the oldest
//! one beyond `live` — or redefines an existing query with it. `threads` caller threads call random live
//! queries the whole time. The report gives cycle throughput, add latency percentiles, process RSS and
//! mappings, the JIT's live and awaiting-reclamation bytes, the reclamation lag (removal to memory
//! reusable) and, on request, a time series of memory figures.
//!
//! The same workload runs on two engines ([`Engine`]):
//! - **genjit**: one dylib; callers hold typed [`Func`] handles and call with [`Func::try_call`]; a
//!   redefinition is `add_module` of the same name (every holder sees it at once); removal is
//!   `remove_module`, and freeing waits for the epoch.
//! - **LLJIT** (LLVM's, through its C API, see [`crate::peer`]): a resource tracker per module. ORC frees
//!   code the moment a tracker is removed, so a safe user must keep each module alive while any thread may
//!   be calling it: callers hold an `Arc` of the module and the last holder's drop removes it. ORC cannot
//!   define a name twice in a JITDylib while the old definition lives, so a redefinition is a new module
//!   under a fresh name, swapped into the callers' list.

use crate::peer::{LlJit, LlModule};
use anyhow::Result;
use genjit::{Dylib, Func, Jit, Lag, ModuleHandle, OptLevel, Source};
use hdrhistogram::Histogram;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which JIT runs the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// genjit: entries, epoch reclamation, generational heap.
    Genjit,
    /// LLVM's LLJIT with a ResourceTracker per module.
    Lljit,
}

impl Engine {
    /// The engine's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Genjit => "genjit",
            Engine::Lljit => "lljit",
        }
    }
}

/// Workload settings.
#[derive(Clone, Debug)]
pub struct ChurnOptions {
    /// Which JIT runs it.
    pub engine: Engine,
    /// Caller threads.
    pub threads: usize,
    /// Query modules kept live.
    pub live: usize,
    /// How long to run (at most).
    pub duration: Duration,
    /// Stop after this many cycles, if set (whichever of this and `duration` comes first).
    pub max_cycles: Option<u64>,
    /// Optimization level of every module.
    pub opt: OptLevel,
    /// Record a [`Sample`] this often (none if `None`).
    pub sample_every: Option<Duration>,
    /// Keep a live status line on stderr (a terminal), updated every second.
    pub progress: bool,
    /// genjit compiles in worker processes.
    pub isolate: Option<genjit::Isolation>,
}

impl Default for ChurnOptions {
    fn default() -> Self {
        ChurnOptions {
            engine: Engine::Genjit,
            threads: 2,
            live: 1000,
            duration: Duration::from_secs(10),
            max_cycles: None,
            opt: OptLevel::O0,
            sample_every: None,
            progress: false,
            isolate: None,
        }
    }
}

/// Memory figures at one moment of a run.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the workload started.
    pub t: f64,
    /// Process resident set size, bytes.
    pub rss_bytes: u64,
    /// Process memory mappings.
    pub mappings: usize,
    /// Bytes of JIT'd code and data alive: genjit's heap live bytes (excluding memory awaiting
    /// reclamation); for LLJIT, whose C API reports no such figure, the bytes of its executable anonymous
    /// mappings (its code, page-granular; its data pages are not distinguishable from malloc's).
    pub jit_bytes: u64,
}

/// What a churn run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChurnReport {
    /// The engine that ran.
    pub engine: Engine,
    /// Caller threads.
    pub threads: usize,
    /// Add/redefine/remove cycles completed.
    pub cycles: u64,
    /// Seconds the cycles took.
    pub seconds: f64,
    /// Cycles per second.
    pub cycles_per_sec: f64,
    /// Calls made by the caller threads.
    pub calls: u64,
    /// Median time to compile, link and publish one module, microseconds.
    pub add_p50_us: f64,
    /// 99th percentile of the same.
    pub add_p99_us: f64,
    /// Resident set size at the end, bytes.
    pub rss_bytes: u64,
    /// Resident set size after the first second, bytes (for growth).
    pub rss_start_bytes: u64,
    /// Process memory mappings at the end.
    pub mappings: usize,
    /// See [`Sample::jit_bytes`]; at the end.
    pub jit_bytes: u64,
    /// Heap bytes waiting for their grace period at the end (genjit only; LLJIT frees at once).
    pub awaiting_bytes: u64,
    /// Reclamation lag: median, 99th percentile and maximum, microseconds (genjit only, if anything was
    /// reclaimed).
    pub lag_us: Option<[f64; 3]>,
    /// Memory over time, if sampling was requested.
    pub series: Vec<Sample>,
}

impl ChurnReport {
    /// One JSON object with every figure (and the series, if sampled).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }

    /// Parses what [`to_json`](Self::to_json) printed.
    pub fn from_json(text: &str) -> std::result::Result<ChurnReport, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

/// Resident set size of this process in bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * page_size()
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).unwrap_or(4096)
}

/// Lines in `/proc/self/maps`: the memory mappings of this process.
pub fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").map(|s| s.lines().count()).unwrap_or(0)
}

/// Bytes in this process's anonymous executable mappings (where LLJIT's code lives).
fn anonymous_exec_bytes() -> u64 {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            let (_offset, _dev, inode) = (f.next()?, f.next()?, f.next()?);
            let anonymous = inode == "0" && f.next().is_none();
            if !anonymous || perms.as_bytes().get(2) != Some(&b'x') {
                return None;
            }
            let (lo, hi) = range.split_once('-')?;
            Some(u64::from_str_radix(hi, 16).ok()? - u64::from_str_radix(lo, 16).ok()?)
        })
        .sum()
}

/// The `n`-th expression module: `define i64 @{name}(i64 %x)` computing a different expression.
pub fn expression(name: &str, n: u64) -> String {
    let (a, b, c) = (n % 97 + 1, n / 97 % 89 + 1, n % 13);
    let op = ["add", "sub", "mul", "xor", "and", "or"][(n % 6) as usize];
    format!(
        "define i64 @{name}(i64 %x) {{\n  %a = mul i64 %x, {a}\n  %b = {op} i64 %a, {b}\n  %c = shl i64 %b, {c}\n  \
         %d = add i64 %c, %x\n  ret i64 %d\n}}\n"
    )
}

/// What the workload needs from a JIT.
trait Workload {
    /// What the mutator keeps per query.
    type Handle;
    /// What callers call through.
    type Query: Clone + Send + Sync + 'static;
    /// Compiles query `name` as the `n`-th expression.
    fn add(&mut self, name: &str, n: u64) -> Result<(Self::Handle, Self::Query)>;
    /// Replaces query `name`'s body with the `n`-th expression; a new caller handle if callers must switch.
    fn redefine(&mut self, handle: &mut Self::Handle, name: &str, n: u64) -> Result<Option<Self::Query>>;
    /// Unloads a query (callers no longer find it in their list).
    fn remove(&mut self, handle: Self::Handle) -> Result<()>;
    /// Calls a query; `None` if it was removed meanwhile.
    fn call(query: &Self::Query, x: i64) -> Option<i64>;
    /// Live JIT bytes and bytes awaiting reclamation.
    fn memory(&self) -> (u64, u64);
    /// Reclamation lag, if the engine defers frees.
    fn lag(&self) -> Option<Lag>;
}

struct GenjitWorkload {
    jit: Jit,
    dylib: Dylib,
}

impl Workload for GenjitWorkload {
    type Handle = ModuleHandle;
    type Query = Func<fn(i64) -> i64>;

    fn add(&mut self, name: &str, n: u64) -> Result<(ModuleHandle, Self::Query)> {
        let module = self.dylib.add_module(Source::ir_text(expression(name, n)))?;
        Ok((module, self.dylib.lookup(name)?))
    }

    fn redefine(&mut self, handle: &mut ModuleHandle, name: &str, n: u64) -> Result<Option<Self::Query>> {
        // Same name: the entry every caller holds is redirected; the old module is retired.
        *handle = self.dylib.add_module(Source::ir_text(expression(name, n)))?;
        Ok(None)
    }

    fn remove(&mut self, handle: ModuleHandle) -> Result<()> {
        Ok(self.dylib.remove_module(&handle)?)
    }

    fn call(query: &Self::Query, x: i64) -> Option<i64> {
        query.try_call(x)
    }

    fn memory(&self) -> (u64, u64) {
        let s = self.jit.stats();
        ((s.heap.live_bytes() - s.awaiting_bytes) as u64, s.awaiting_bytes as u64)
    }

    fn lag(&self) -> Option<Lag> {
        self.jit.stats().reclamation_lag
    }
}

/// A compiled LLJIT query: the module (removed when the last holder drops it) and its address.
struct LlQuery {
    /// Held only to keep the code alive.
    _module: LlModule,
    addr: usize,
}

struct LljitWorkload {
    jit: Arc<LlJit>,
}

impl LljitWorkload {
    fn compile(&self, name: &str, n: u64) -> Result<Arc<LlQuery>> {
        // A fresh symbol per version: the previous one may still be alive in the JITDylib.
        let symbol = format!("{name}_v{n}");
        let module = self.jit.add(&symbol, &expression(&symbol, n))?;
        let addr = module.lookup(&symbol)?;
        Ok(Arc::new(LlQuery { _module: module, addr }))
    }
}

impl Workload for LljitWorkload {
    type Handle = Arc<LlQuery>;
    type Query = Arc<LlQuery>;

    fn add(&mut self, name: &str, n: u64) -> Result<(Arc<LlQuery>, Arc<LlQuery>)> {
        let q = self.compile(name, n)?;
        Ok((q.clone(), q))
    }

    fn redefine(&mut self, handle: &mut Arc<LlQuery>, name: &str, n: u64) -> Result<Option<Arc<LlQuery>>> {
        *handle = self.compile(name, n)?;
        Ok(Some(handle.clone()))
    }

    fn remove(&mut self, handle: Arc<LlQuery>) -> Result<()> {
        // The tracker is removed when the last caller drops its clone.
        drop(handle);
        Ok(())
    }

    fn call(query: &Arc<LlQuery>, x: i64) -> Option<i64> {
        // SAFETY: `addr` is the address of `define i64 @..(i64)` (we generated the IR), and the `Arc` the
        // caller holds keeps the module (hence its code) alive for the whole call.
        let f = unsafe { std::mem::transmute::<usize, extern "C" fn(i64) -> i64>(query.addr) };
        Some(f(x))
    }

    fn memory(&self) -> (u64, u64) {
        (anonymous_exec_bytes(), 0)
    }

    fn lag(&self) -> Option<Lag> {
        None
    }
}

/// Runs the workload on `options.engine`.
pub fn churn(options: &ChurnOptions) -> Result<ChurnReport> {
    match options.engine {
        Engine::Genjit => {
            let mut builder = Jit::builder().opt_level(options.opt);
            if let Some(isolation) = &options.isolate {
                builder = builder.isolate(isolation.clone());
            }
            let jit = builder.build()?;
            let dylib = jit.create_dylib("queries")?;
            run(GenjitWorkload { jit, dylib }, options)
        }
        Engine::Lljit => run(LljitWorkload { jit: Arc::new(LlJit::new(options.opt)?) }, options),
    }
}

fn run<W: Workload>(mut w: W, options: &ChurnOptions) -> Result<ChurnReport> {
    // The callers' view, kept in the same order as `handles`.
    let queries: Arc<RwLock<VecDeque<W::Query>>> = Arc::new(RwLock::new(VecDeque::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..options.threads)
        .map(|t| {
            let (queries, stop, calls) = (queries.clone(), stop.clone(), calls.clone());
            std::thread::spawn(move || {
                let mut seed = t as u64 * 7919 + 1;
                let mut made = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let q = {
                        let qs = queries.read();
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        qs.get((seed >> 33) as usize % qs.len().max(1)).cloned()
                    };
                    // `None`: removed between our pick and the call; skip it.
                    match q.and_then(|q| W::call(&q, seed as i64 & 0xffff)) {
                        Some(r) => {
                            std::hint::black_box(r);
                            made += 1;
                        }
                        None => std::thread::yield_now(),
                    }
                }
                // Relaxed: a statistic read after the threads are joined.
                calls.fetch_add(made, Ordering::Relaxed);
            })
        })
        .collect();
    let mut handles: VecDeque<(String, W::Handle)> = VecDeque::new();
    // Microseconds, 1 us to 100 s, three significant digits.
    let mut add_times = Histogram::<u64>::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds");
    let mut series = Vec::new();
    let start = Instant::now();
    let mut rss_start = 0;
    let mut cycles = 0u64;
    let mut last_progress = start;
    let mut last_sample: Option<Instant> = None;
    let sample = |w: &W, t: Duration| Sample {
        t: t.as_secs_f64(),
        rss_bytes: rss_bytes(),
        mappings: mappings(),
        jit_bytes: w.memory().0,
    };
    while start.elapsed() < options.duration && options.max_cycles.is_none_or(|m| cycles < m) {
        cycles += 1;
        let t = Instant::now();
        if handles.len() >= options.live && cycles % 2 == 0 {
            // Redefine a live query in place: same name, a new expression.
            let i = (cycles as usize / 2) % handles.len();
            let (name, handle) = &mut handles[i];
            if let Some(q) = w.redefine(handle, name, cycles)? {
                // Dropped after the lock is released (for LLJIT, possibly removing the old module).
                let old = std::mem::replace(&mut queries.write()[i], q);
                drop(old);
            }
        } else {
            let name = format!("q{cycles}");
            let (handle, query) = w.add(&name, cycles)?;
            queries.write().push_back(query);
            handles.push_back((name, handle));
            if handles.len() > options.live {
                let (_, oldest) = handles.pop_front().expect("non-empty");
                let popped = queries.write().pop_front();
                drop(popped);
                w.remove(oldest)?;
            }
        }
        add_times.saturating_record(t.elapsed().as_micros() as u64);
        if rss_start == 0 && start.elapsed() >= Duration::from_secs(1) {
            rss_start = rss_bytes();
        }
        if let Some(every) = options.sample_every {
            if last_sample.is_none_or(|l| l.elapsed() >= every) {
                last_sample = Some(Instant::now());
                series.push(sample(&w, start.elapsed()));
            }
        }
        if options.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            let (live, awaiting) = w.memory();
            // `\r` + clear to end of line: one status line that rewrites itself.
            eprint!(
                "\r\x1b[K[{:>3.0}s] {}: {cycles} cycles, add p50 {} us, rss {} MiB, {} mappings, jit {} KiB live, {} KiB awaiting",
                start.elapsed().as_secs_f64(),
                options.engine.name(),
                add_times.value_at_quantile(0.5),
                rss_bytes() >> 20,
                mappings(),
                live >> 10,
                awaiting >> 10
            );
            let _ = std::io::stderr().flush();
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().expect("caller thread panicked");
    }
    if options.sample_every.is_some() {
        series.push(sample(&w, elapsed));
    }
    if options.progress {
        eprint!("\r\x1b[K");
    }
    let pct = |q: f64| add_times.value_at_quantile(q) as f64;
    let (jit_bytes, awaiting_bytes) = w.memory();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    Ok(ChurnReport {
        engine: options.engine,
        threads: options.threads,
        cycles,
        seconds: elapsed.as_secs_f64(),
        cycles_per_sec: cycles as f64 / elapsed.as_secs_f64(),
        calls: calls.load(Ordering::Relaxed),
        add_p50_us: pct(0.5),
        add_p99_us: pct(0.99),
        rss_bytes: rss_bytes(),
        rss_start_bytes: if rss_start == 0 { rss_bytes() } else { rss_start },
        mappings: mappings(),
        jit_bytes,
        awaiting_bytes,
        lag_us: w.lag().map(|l| [micros(l.p50), micros(l.p99), micros(l.max)]),
        series,
    })
}
