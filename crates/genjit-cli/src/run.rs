//! `genjit run`: execute a program's `main` the way LLVM's `lli` does.
//!
//! The program's modules go into one dylib of a JIT that resolves the process's own symbols (libc, libm,
//! libstdc++, libgcc's compiler-runtime helpers). The extra modules and the main file are added as one
//! batch, like lli's one JITDylib: they link together in any order, cycles included, and a name any of
//! them defines wins over the process's own symbols; static constructors then run in file order. `main`
//! is called as `main()`, `main(argc)`, `main(argc, argv)` or `main(argc, argv, envp)` according to its
//! IR signature (parameter types checked, as lli does), with `argv[0]` the program's path as `lli` passes
//! it. Afterwards the dylib is removed, which runs `llvm.global_dtors` and then the handlers registered
//! with `__cxa_atexit`, and the caller exits with `main`'s return value.

use genjit::{DumpKind, Jit, ModuleHandle, OptLevel, Signature, Source};
use std::ffi::CString;
use std::path::PathBuf;

/// What `genjit run` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The module holding `main`.
    pub program: PathBuf,
    /// Further modules, added before the program.
    pub extra_modules: Vec<PathBuf>,
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Optimization level.
    pub opt: OptLevel,
    /// Dumps to write.
    pub dump: Vec<(DumpKind, PathBuf)>,
    /// Print each module's timings to stderr.
    pub timings: bool,
    /// Write `/tmp/perf-<pid>.map` and a jitdump for `perf`.
    pub perf_map: bool,
    /// Register modules with GDB's JIT interface.
    pub gdb: bool,
    /// Threads compiling the program's modules at once (`None`: one per CPU).
    pub compile_threads: Option<usize>,
    /// Compile in worker processes.
    pub isolate: Option<genjit::Isolation>,
    /// Tier up hot functions (`genjit run --tier`).
    pub tier: Option<genjit::Tiering>,
    /// Compile functions on their first call (`genjit run --lazy`).
    pub lazy: Option<genjit::Lazy>,
    /// Where to write [`RunStats`] as JSON (`--stats-json`).
    pub stats_json: Option<PathBuf>,
}

/// What `genjit run --stats-json` writes: where compile time went and what tiering did. Times in seconds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RunStats {
    /// From the start of adding the modules to `main`'s return.
    pub total_seconds: f64,
    /// Adding the program's modules (compile, link, constructors), before `main` was called.
    pub startup_seconds: f64,
    /// Compile time the program's threads spent or waited for: the start-up's compiles as long as they
    /// held `main` back (wall-clock: the modules compile on several threads at once), and the first
    /// compiles of lazy functions (not speculative ones).
    pub compile_seconds_main_thread: f64,
    /// Compile time on other threads: the start-up's compile helpers beyond that wait, higher tiers and
    /// speculative lazy compiles.
    pub compile_seconds_background: f64,
    /// Compile time by tier: [first tier (modules and lazy functions), higher tier].
    pub compile_seconds_per_tier: [f64; 2],
    /// Heap bytes (code and data) live when `main` returned, by tier: [first tier, higher tier].
    pub live_code_bytes_per_tier: [usize; 2],
    /// Functions moved to the higher tier.
    pub tier_ups: u64,
    /// Higher tiers dropped because a callee they inlined was redefined.
    pub tier_invalidations: u64,
    /// On-stack replacement entries compiled.
    pub osr_entries: u64,
    /// Calls that left a first-tier loop for an OSR entry.
    pub osr_transfers: u64,
    /// Functions defined lazily.
    pub lazy_functions: usize,
    /// Lazy functions compiled (on first call, or by speculation).
    pub lazy_compiles: u64,
    /// Lazy functions compiled by speculation.
    pub speculative_compiles: u64,
    /// Lazy functions never compiled.
    pub lazy_uncompiled: usize,
    /// IR kept for tiering and lazy compilation.
    pub retained_ir_bytes: usize,
}

/// Why a program could not be run (not the program's own failure, which is its exit code).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The JIT refused a module or a lookup.
    #[error(transparent)]
    Jit(#[from] genjit::Error),
    /// `main` has a signature lli would not call either.
    #[error(
        "`main` has IR type `{0}`; expected no parameters, (i32), (i32, ptr) or (i32, ptr, ptr), returning an \
         integer or void"
    )]
    MainSignature(Signature),
    /// `--stats-json` could not be written.
    #[error("cannot write the stats file {}: {error}", path.display())]
    StatsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

extern "C" {
    static environ: *const *const libc::c_char;
}

fn print_timings(module: &ModuleHandle) {
    eprintln!("genjit: timings: module `{}`: {}", module.name(), module.timings());
}

/// Runs the program and returns `main`'s exit code (destructors have run; the caller should exit with it).
pub fn run(options: &RunOptions) -> Result<i32, RunError> {
    let mut builder = Jit::builder()
        .opt_level(options.opt)
        .process_symbols(true)
        .perf_map(options.perf_map)
        .gdb(options.gdb);
    for (kind, dir) in &options.dump {
        builder = builder.dump(*kind, dir);
    }
    if let Some(isolation) = &options.isolate {
        builder = builder.isolate(isolation.clone());
    }
    if let Some(threads) = options.compile_threads {
        builder = builder.compile_threads(threads);
    }
    let jit = builder.build()?;
    let dylib = jit.create_dylib("main")?;
    if let Some(tiering) = &options.tier {
        dylib.enable_tiering(tiering.clone())?;
    }
    let started = std::time::Instant::now();
    // All modules in one batch, as lli puts them in one JITDylib: they may reference each other in any
    // order and in cycles, and a name any of them defines wins over the process's symbols.
    let sources = options.extra_modules.iter().chain([&options.program]).map(Source::file);
    let sources = sources.collect::<Result<Vec<_>, _>>()?;
    let modules = match options.lazy {
        Some(lazy) => dylib.add_lazy_modules(sources, lazy)?,
        None => dylib.add_modules(sources)?,
    };
    let startup = started.elapsed();
    if options.timings {
        modules.iter().for_each(print_timings);
    }
    let args: Vec<CString> = std::iter::once(options.program.display().to_string())
        .chain(options.args.iter().cloned())
        .map(|a| CString::new(a).unwrap_or_default())
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let argc = args.len() as i32;
    // SAFETY: reading the process's environment pointer (set by libc before `main`).
    let envp = unsafe { environ };
    let code = call_main(&dylib, argc, argv.as_ptr(), envp)?;
    let total = started.elapsed();
    let stats = run_stats(&jit, &modules, startup, total);
    if options.tier.is_some() || options.lazy.is_some() {
        // No compile may still run in the background when the process exits (LLVM's static destructors):
        // what is queued is dropped, what is running finishes.
        dylib.cancel_tier_ups();
        dylib.wait_for_tier_ups(std::time::Duration::from_secs(60));
        if options.timings {
            eprintln!(
                "genjit: tiering: {} tier-ups, {} OSR entries ({} transfers), {} of {} lazy functions compiled \
                 ({} by speculation)",
                stats.tier_ups,
                stats.osr_entries,
                stats.osr_transfers,
                stats.lazy_compiles,
                stats.lazy_functions,
                stats.speculative_compiles
            );
            // Modules added while the program ran: lazy functions' compiles and higher tiers, summed.
            let later: Vec<_> = dylib.modules().into_iter().filter(|m| !modules.contains(m)).collect();
            let sum = later.iter().map(|m| m.timings()).fold(genjit::ModuleTimings::default(), |a, t| a + t);
            eprintln!("genjit: timings: {} modules compiled while the program ran: {sum}", later.len());
        }
    }
    if let Some(path) = &options.stats_json {
        let json = serde_json::to_string_pretty(&stats).expect("plain figures serialize");
        std::fs::write(path, json + "\n")
            .map_err(|error| RunError::StatsFile { path: path.clone(), error })?;
    }
    jit.remove_dylib(&dylib)?;
    Ok(code)
}

/// The figures of `--stats-json`, taken when `main` returned.
fn run_stats(
    jit: &Jit,
    modules: &[ModuleHandle],
    startup: std::time::Duration,
    total: std::time::Duration,
) -> RunStats {
    let t = jit.stats().dylibs.into_iter().map(|d| d.tiering).next().unwrap_or_default();
    let compile: f64 = modules
        .iter()
        .map(|m| m.timings())
        .map(|t| (t.parse + t.verify + t.optimize + t.emit).as_secs_f64())
        .sum();
    // The modules compile on several threads at once (`JitBuilder::compile_threads`): the program waited
    // for the start-up less its linking, publishing (shared: each module reports the whole) and
    // constructors; the rest of the compile work ran on the helpers.
    let after_compile: f64 =
        modules.iter().map(|m| (m.timings().link + m.timings().constructors).as_secs_f64()).sum::<f64>()
            + modules.iter().map(|m| m.timings().publish.as_secs_f64()).fold(0.0, f64::max);
    let waited = (startup.as_secs_f64() - after_compile).clamp(0.0, compile);
    let (lazy, speculative, tier_up) = (
        t.lazy_compile_time.as_secs_f64(),
        t.speculative_compile_time.as_secs_f64(),
        t.tier_up_compile_time.as_secs_f64(),
    );
    RunStats {
        total_seconds: total.as_secs_f64(),
        startup_seconds: startup.as_secs_f64(),
        compile_seconds_main_thread: waited + lazy - speculative,
        compile_seconds_background: compile - waited + tier_up + speculative,
        compile_seconds_per_tier: [compile + lazy, tier_up],
        live_code_bytes_per_tier: t.heap_bytes,
        tier_ups: t.tier_ups,
        tier_invalidations: t.invalidations,
        osr_entries: t.osr_entries,
        osr_transfers: t.osr_transfers,
        lazy_functions: t.lazy_functions,
        lazy_compiles: t.lazy_compiles,
        speculative_compiles: t.speculative_compiles,
        lazy_uncompiled: t.lazy_uncompiled,
        retained_ir_bytes: t.retained_ir_bytes,
    }
}

type Argv = *const *const libc::c_char;

/// Calls `main` with whichever signature lli accepts: no parameters, `(i32)`, `(i32, ptr)` or
/// `(i32, ptr, ptr)`, returning any integer of 8 to 64 bits or `void`; its value, zero-extended as lli
/// does, becomes the exit code. Each shape is a typed lookup, so the IR's parameter types (and calling
/// convention) are checked, not only their count.
fn call_main(dylib: &genjit::Dylib, argc: i32, argv: Argv, envp: Argv) -> Result<i32, RunError> {
    macro_rules! try_shapes {
        ($(($($p:ty),*) => ($($a:expr),*)),*) => {
            $(
                if let Ok(main) = dylib.lookup::<fn($($p),*)>("main") {
                    main.call($($a),*);
                    return Ok(0);
                }
                if let Ok(main) = dylib.lookup::<fn($($p),*) -> u8>("main") {
                    return Ok(i32::from(main.call($($a),*)));
                }
                if let Ok(main) = dylib.lookup::<fn($($p),*) -> u16>("main") {
                    return Ok(i32::from(main.call($($a),*)));
                }
                if let Ok(main) = dylib.lookup::<fn($($p),*) -> i32>("main") {
                    return Ok(main.call($($a),*));
                }
                if let Ok(main) = dylib.lookup::<fn($($p),*) -> u64>("main") {
                    return Ok(main.call($($a),*) as i32);
                }
            )*
        };
    }
    try_shapes!(() => (), (i32) => (argc), (i32, Argv) => (argc, argv), (i32, Argv, Argv) => (argc, argv, envp));
    match dylib.signature("main")? {
        Some(signature) => Err(RunError::MainSignature(signature)),
        None => Err(genjit::Error::NoSignature { symbol: "main".into() }.into()),
    }
}
