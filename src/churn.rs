//! `genjit churn`: a query-engine workload that compiles, calls, redefines and unloads expression modules.
//!
//! One mutator thread (the caller of [`churn`]) keeps `live` query modules: each cycle it compiles a new
//! expression module (each a different expression) and either adds it as a new query — removing the oldest
//! one beyond `live` — or redefines an existing query's function with it. `threads` caller threads call
//! random live queries through typed handles the whole time. The result reports cycle throughput, add
//! latency percentiles, process RSS and mappings, the heap's live and awaiting-reclamation bytes and the
//! reclamation lag (removal to memory reusable).

use crate::{Dylib, Func, Jit, Result, Source};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Workload settings.
#[derive(Clone, Debug)]
pub struct ChurnOptions {
    /// Caller threads.
    pub threads: usize,
    /// Query modules kept live.
    pub live: usize,
    /// How long to run.
    pub duration: Duration,
    /// Print a progress line every second to stderr.
    pub progress: bool,
}

/// What a churn run measured.
#[derive(Clone, Debug, Default)]
pub struct ChurnReport {
    /// Add/redefine/remove cycles completed.
    pub cycles: u64,
    /// Cycles per second.
    pub cycles_per_sec: f64,
    /// Calls made by the caller threads.
    pub calls: u64,
    /// Median and 99th-percentile time to compile, link and publish one module.
    pub add_p50: Duration,
    /// See `add_p50`.
    pub add_p99: Duration,
    /// Resident set size at the end, bytes.
    pub rss_bytes: u64,
    /// Resident set size after the first second, bytes (for growth).
    pub rss_start_bytes: u64,
    /// Process memory mappings at the end.
    pub mappings: usize,
    /// Heap bytes of live modules and entries at the end.
    pub live_bytes: usize,
    /// Heap bytes waiting for their grace period at the end.
    pub awaiting_bytes: usize,
    /// Reclamation lag percentiles, if anything was reclaimed.
    pub lag: Option<crate::Lag>,
}

impl ChurnReport {
    /// One JSON object with every figure.
    pub fn to_json(&self) -> String {
        let lag = |f: fn(&crate::Lag) -> Duration| self.lag.map_or(-1.0, |l| f(&l).as_secs_f64() * 1e6);
        format!(
            "{{\"cycles\":{},\"cycles_per_sec\":{:.1},\"calls\":{},\"add_p50_us\":{:.1},\"add_p99_us\":{:.1},\
             \"rss_bytes\":{},\"rss_start_bytes\":{},\"mappings\":{},\"live_bytes\":{},\"awaiting_bytes\":{},\
             \"lag_p50_us\":{:.0},\"lag_p99_us\":{:.0},\"lag_max_us\":{:.0}}}",
            self.cycles,
            self.cycles_per_sec,
            self.calls,
            self.add_p50.as_secs_f64() * 1e6,
            self.add_p99.as_secs_f64() * 1e6,
            self.rss_bytes,
            self.rss_start_bytes,
            self.mappings,
            self.live_bytes,
            self.awaiting_bytes,
            lag(|l| l.p50),
            lag(|l| l.p99),
            lag(|l| l.max),
        )
    }
}

/// Resident set size of this process in bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * crate::sys::PAGE as u64
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

type Query = Func<fn(i64) -> i64>;

/// Runs the workload on genjit.
pub fn churn(options: &ChurnOptions) -> Result<ChurnReport> {
    let jit = Jit::new()?;
    let dylib: Dylib = jit.create_dylib("queries")?;
    let queries: Arc<RwLock<Vec<Query>>> = Arc::new(RwLock::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..options.threads)
        .map(|t| {
            let (queries, stop, calls) = (queries.clone(), stop.clone(), calls.clone());
            std::thread::spawn(move || {
                let mut seed = t as u64 * 7919 + 1;
                while !stop.load(Ordering::Relaxed) {
                    let q = {
                        let qs = queries.read().unwrap_or_else(|e| e.into_inner());
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        qs.get((seed >> 33) as usize % qs.len().max(1)).cloned()
                    };
                    // `None`: removed between our pick and the call; skip it.
                    match q.and_then(|q| q.try_call(seed as i64 & 0xffff)) {
                        Some(r) => {
                            std::hint::black_box(r);
                            // Relaxed: a statistic read after the threads are joined.
                            calls.fetch_add(1, Ordering::Relaxed);
                        }
                        None => std::thread::yield_now(),
                    }
                }
            })
        })
        .collect();
    let mut handles: VecDeque<(String, crate::ModuleHandle)> = VecDeque::new();
    let mut add_times = Vec::new();
    let start = Instant::now();
    let mut rss_start = 0;
    let mut cycles = 0u64;
    let mut last_progress = start;
    while start.elapsed() < options.duration {
        cycles += 1;
        let redefine = handles.len() >= options.live && cycles % 2 == 0;
        let t = Instant::now();
        if redefine {
            // Redefine a live query in place: same name, a new expression.
            let (name, _) = &handles[(cycles as usize / 2) % handles.len()];
            dylib.add_module(Source::ir_text(expression(name, cycles)))?;
        } else {
            let name = format!("q{cycles}");
            let handle = dylib.add_module(Source::ir_text(expression(&name, cycles)))?;
            let query = dylib.lookup::<fn(i64) -> i64>(&name)?;
            queries.write().unwrap_or_else(|e| e.into_inner()).push(query);
            handles.push_back((name, handle));
            if handles.len() > options.live {
                let (name, _) = handles.pop_front().expect("non-empty");
                let stub = dylib.lookup_address(&name)?;
                queries.write().unwrap_or_else(|e| e.into_inner()).retain(|q| q.addr() != stub);
                // The query's current module (possibly a redefinition) defines only it.
                let defining = dylib.defining_module(&name);
                let module = dylib.modules().into_iter().find(|m| defining.as_deref() == Some(m.name()));
                if let Some(module) = module {
                    dylib.remove_module(&module)?;
                }
            }
        }
        add_times.push(t.elapsed());
        if rss_start == 0 && start.elapsed() >= Duration::from_secs(1) {
            rss_start = rss_bytes();
        }
        if options.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            let s = jit.stats();
            eprintln!(
                "[{:>3.0}s] {cycles} cycles, {} calls, rss {} MiB, {} mappings, awaiting {} KiB",
                start.elapsed().as_secs_f64(),
                calls.load(Ordering::Relaxed),
                rss_bytes() >> 20,
                s.mappings,
                s.awaiting_bytes >> 10
            );
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().expect("caller thread panicked");
    }
    add_times.sort_unstable();
    let pct = |q: f64| {
        add_times.get(((add_times.len().max(1) - 1) as f64 * q) as usize).copied().unwrap_or_default()
    };
    let s = jit.stats();
    Ok(ChurnReport {
        cycles,
        cycles_per_sec: cycles as f64 / elapsed.as_secs_f64(),
        calls: calls.load(Ordering::Relaxed),
        add_p50: pct(0.5),
        add_p99: pct(0.99),
        rss_bytes: rss_bytes(),
        rss_start_bytes: rss_start,
        mappings: s.mappings,
        live_bytes: s.heap.generations.iter().map(|g| g.live_bytes).sum::<usize>() - s.awaiting_bytes,
        awaiting_bytes: s.awaiting_bytes,
        lag: s.reclamation_lag,
    })
}
