//! `genjit run`: execute a program's `main` the way LLVM's `lli` does.
//!
//! The program's modules go into one dylib of a JIT that resolves the process's own symbols (libc, libm,
//! libstdc++, libgcc's compiler-runtime helpers). The extra modules and the main file are added as one
//! batch, like lli's one JITDylib: they link together in any order, cycles included, and a name any of
//! them defines wins over the process's own symbols; static constructors then run in file order. `main` is called as `main()`,
//! `main(argc, argv)` or `main(argc, argv, envp)` according to its IR signature, with `argv[0]` the
//! program's path as `lli` passes it. Afterwards the dylib is removed, which runs `llvm.global_dtors` and
//! then the handlers registered with `__cxa_atexit`, and the caller exits with `main`'s return value.

use genjit::{DumpKind, IrType, Jit, ModuleHandle, OptLevel, Signature, Source, ValType};
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
}

/// Why a program could not be run (not the program's own failure, which is its exit code).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The JIT refused a module or a lookup.
    #[error(transparent)]
    Jit(#[from] genjit::Error),
    /// `main` has a signature `genjit run` cannot call.
    #[error("`main` has IR type `{0}`; expected i32 (), i32 (i32, ptr) or i32 (i32, ptr, ptr)")]
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
    let jit = builder.build()?;
    let dylib = jit.create_dylib("main")?;
    // All modules in one batch, as lli puts them in one JITDylib: they may reference each other in any
    // order and in cycles, and a name any of them defines wins over the process's symbols.
    let sources = options.extra_modules.iter().chain([&options.program]).map(Source::file);
    let modules = dylib.add_modules(sources.collect::<Result<Vec<_>, _>>()?)?;
    if options.timings {
        modules.iter().for_each(print_timings);
    }
    let signature =
        dylib.signature("main")?.ok_or_else(|| genjit::Error::NoSignature { symbol: "main".into() })?;
    let addr = dylib.lookup_address("main")?;
    let args: Vec<CString> = std::iter::once(options.program.display().to_string())
        .chain(options.args.iter().cloned())
        .map(|a| CString::new(a).unwrap_or_default())
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let argc = args.len() as libc::c_int;
    let int = |t: &IrType| matches!(t, IrType::Val(ValType::I32) | IrType::Val(ValType::I64));
    let returns_int = signature.ret.as_ref().is_some_and(int);
    let code = match signature.params.len() {
        // SAFETY (all three arms): the IR says `main` takes exactly these parameters (C's `int, char**,
        // char**`), `argv` is a NULL-terminated array of NUL-terminated strings that outlives the call, and
        // `environ` is the process environment. The JIT (and so the code) stays alive across the call.
        // SAFETY: see above (no parameters).
        0 => unsafe { std::mem::transmute::<usize, extern "C" fn() -> libc::c_int>(addr)() },
        // SAFETY: see above (argc, argv).
        2 => unsafe {
            std::mem::transmute::<usize, extern "C" fn(libc::c_int, *const *const libc::c_char) -> libc::c_int>(
                addr,
            )(argc, argv.as_ptr())
        },
        // SAFETY: see above (argc, argv, envp).
        3 => unsafe {
            type Main3 = extern "C" fn(
                libc::c_int,
                *const *const libc::c_char,
                *const *const libc::c_char,
            ) -> libc::c_int;
            std::mem::transmute::<usize, Main3>(addr)(argc, argv.as_ptr(), environ)
        },
        _ => return Err(RunError::MainSignature(signature)),
    };
    jit.remove_dylib(&dylib)?;
    Ok(if returns_int { code } else { 0 })
}
