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
    /// Compile in worker processes.
    pub isolate: Option<genjit::Isolation>,
    /// Tier up functions called or looping this many times (`genjit run --tier`), at O2.
    pub tier: Option<u64>,
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
    let jit = builder.build()?;
    let dylib = jit.create_dylib("main")?;
    if let Some(threshold) = options.tier {
        dylib.enable_tiering(genjit::Tiering::new().threshold(Some(threshold)))?;
    }
    // All modules in one batch, as lli puts them in one JITDylib: they may reference each other in any
    // order and in cycles, and a name any of them defines wins over the process's symbols.
    let sources = options.extra_modules.iter().chain([&options.program]).map(Source::file);
    let modules = dylib.add_modules(sources.collect::<Result<Vec<_>, _>>()?)?;
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
    if options.tier.is_some() {
        // No compile may still run in the background when the process exits (LLVM's static destructors).
        dylib.wait_for_tier_ups(std::time::Duration::from_secs(60));
        if options.timings {
            let stats = jit.stats();
            eprintln!("tier-ups: {}", stats.dylibs.iter().map(|d| d.tiering.tier_ups).sum::<u64>());
        }
    }
    jit.remove_dylib(&dylib)?;
    Ok(code)
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
