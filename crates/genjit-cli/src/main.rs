//! The `genjit` command: run LLVM IR programs like `lli`, and the churn workload against LLVM's LLJIT.
//!
//! Exit status: `genjit run` exits with the program's own code; genjit's own failures (a file that does
//! not parse, an unresolved symbol, ...) exit with 125, which programs rarely use (as `env`, `timeout` and
//! `docker run` do); usage errors exit with 2.

use clap::{Args, Parser, Subcommand, ValueEnum};
use genjit::{DumpKind, OptLevel};
use genjit_cli::churn::{ChurnOptions, ChurnReport, Engine};
use genjit_cli::run::{run, RunOptions};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The exit status of genjit's own failures (not the program's, not usage errors).
const FAILURE: u8 = 125;

const EXIT_STATUS: &str = "Logging:\n  \
    RUST_LOG=genjit=debug (any tracing-subscriber filter) prints genjit's events to stderr: tier-ups\n  \
    queued, committed or dropped (with the reason), OSR transfers, lazy compiles, reclamation.\n\n\
    Exit status:\n  \
    `genjit run` exits with the program's own exit code.\n  \
    125  genjit itself failed (bad input, unresolved symbols, I/O); the message says what.\n  \
    2    usage error (unknown option, missing argument).";

#[derive(Parser, Debug)]
#[command(
    name = "genjit",
    version,
    about = "A memory-reclaiming JIT dylib manager for LLVM 19: run IR programs, or the churn workload",
    after_help = EXIT_STATUS,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run an LLVM IR program's `main`, like `lli` (resolving libc and the rest of the process)
    #[command(after_help = EXIT_STATUS)]
    Run(RunArgs),
    /// The query-engine workload: compile, call, redefine and unload modules under concurrent callers
    #[command(after_help = EXIT_STATUS)]
    Churn(ChurnArgs),
    /// Serve compiles for an isolated JIT on stdin/stdout (started by `--isolate`, not by hand)
    #[command(hide = true)]
    CompileWorker,
}

/// Isolation that runs this very executable as the compile worker.
fn isolation() -> Result<genjit::Isolation, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    Ok(genjit::Isolation::command(exe, ["compile-worker"]))
}

fn seconds(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    std::time::Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
}

fn opt_level(s: &str) -> Result<OptLevel, String> {
    s.parse().map_err(|e: genjit::ParseOptLevelError| e.to_string())
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Dump {
    /// The IR after optimization (.ll)
    Ir,
    /// Assembly (.s)
    Asm,
    /// The object file the linker gets (.o)
    Obj,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Optimization level: 0, 1, 2 or 3 (also written -O0 .. -O3)
    #[arg(short = 'O', long = "opt", value_name = "LEVEL", default_value = "0", value_parser = opt_level)]
    opt: OptLevel,
    /// A module to add before the program (repeatable), like lli's -extra-module
    #[arg(long = "extra-module", value_name = "FILE")]
    extra_modules: Vec<PathBuf>,
    /// Write what is compiled into --dump-dir, per module (repeatable)
    #[arg(long, value_enum, value_name = "KIND")]
    dump: Vec<Dump>,
    /// Where --dump writes
    #[arg(long, value_name = "DIR", default_value = "genjit-dump")]
    dump_dir: PathBuf,
    /// Append every JIT function to /tmp/perf-<pid>.map so `perf report` names JIT code
    #[arg(long)]
    perf_map: bool,
    /// Register every module with GDB's JIT interface, so a debugger names JIT functions
    #[arg(long)]
    gdb: bool,
    /// Compile in a worker process: a fatal LLVM error becomes an error message instead of an abort
    #[arg(long)]
    isolate: bool,
    /// With --isolate: kill a compile that takes longer than this and fail instead of waiting
    #[arg(long, value_name = "SECONDS", requires = "isolate", value_parser = seconds)]
    compile_timeout: Option<std::time::Duration>,
    /// Threads compiling the program's modules at once (default: one per CPU; 1: on the main thread only)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    compile_threads: Option<u64>,
    /// Print each module's phase timings (parse, verify, optimize, emit, link, publish, constructors) to stderr
    #[arg(long)]
    timings: bool,
    /// Compile at the given level (tier 0), then recompile each function called or looping often enough
    /// at --tier-level in the background (tiering; not with --isolate)
    #[arg(long, conflicts_with = "isolate")]
    tier: bool,
    /// With --tier: how many calls and loop iterations make a function hot
    #[arg(long, value_name = "N", requires = "tier", default_value = "100")]
    tier_threshold: u64,
    /// With --tier: calls that make a function hot, instead of --tier-threshold (0: calls not counted)
    #[arg(long, value_name = "N", requires = "tier")]
    tier_calls: Option<u64>,
    /// With --tier: loop back-edges that make a function hot, instead of --tier-threshold (0: not counted)
    #[arg(long, value_name = "N", requires = "tier")]
    tier_back_edges: Option<u64>,
    /// With --tier: the level functions are recompiled at
    #[arg(long, value_name = "LEVEL", requires = "tier", default_value = "2", value_parser = opt_level)]
    tier_level: OptLevel,
    /// With --tier: the higher tier's IR pass pipeline in `opt -passes=` syntax, instead of --tier-level's
    /// `default<On>` (code generation stays at --tier-level)
    #[arg(long, value_name = "PIPELINE", requires = "tier")]
    tier_passes: Option<String>,
    /// With --tier: loop back-edges a call still makes at tier 0 after its function moved up before it
    /// continues in the higher tier (on-stack replacement; 0: never)
    #[arg(long, value_name = "N", requires = "tier", default_value = "1000")]
    tier_osr: u64,
    /// With --tier: milliseconds without a new tier-0 compile before tier-ups start (as .NET delays call
    /// counting while startup compiles)
    #[arg(long, value_name = "MS", requires = "tier", default_value = "100")]
    tier_delay: u64,
    /// With --tier: milliseconds after which tier-ups start even while tier-0 compiles go on
    #[arg(long, value_name = "MS", requires = "tier", default_value = "1000")]
    tier_max_delay: u64,
    /// With --tier: tier 0 without its clean-up (inside a block, loads of a local reusing what the block
    /// stored or loaded, and an address computed once): the JIT's level exactly, plus counters
    #[arg(long, requires = "tier")]
    tier_plain: bool,
    /// Compile each function on its first call (functions never called are never compiled; not with
    /// --isolate)
    #[arg(long, conflicts_with = "isolate")]
    lazy: bool,
    /// With --lazy: also compile the direct callees of each function compiled, in the background
    #[arg(long, requires = "lazy")]
    speculate: bool,
    /// With --lazy: a function's first compile also compiles its direct callees not compiled yet (fewer,
    /// larger compiles)
    #[arg(long, requires = "lazy")]
    lazy_callees: bool,
    /// Write compile and tiering figures as JSON to FILE when the program ends
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
    /// The program (LLVM IR text .ll or bitcode .bc), then the arguments for its `main`: everything after
    /// the file goes to the program, even what looks like an option of genjit's (as with lli)
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, value_name = "FILE [ARGS]")]
    program: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EngineArg {
    /// genjit
    Genjit,
    /// LLVM's LLJIT through its C API (a ResourceTracker per module)
    Lljit,
    /// Both, each in its own process, and their ratio
    Both,
}

#[derive(Args, Debug)]
struct ChurnArgs {
    /// Which JIT runs the workload
    #[arg(long, value_enum, default_value = "genjit")]
    engine: EngineArg,
    /// Caller threads calling random live queries throughout (0: pure add/redefine/remove)
    #[arg(long, default_value_t = 2, value_name = "N")]
    threads: usize,
    /// Query modules kept live
    #[arg(long, default_value_t = 1000, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    live: u64,
    /// How long to run
    #[arg(long, default_value_t = 10, value_name = "S")]
    seconds: u64,
    /// Stop after this many cycles (whichever of this and --seconds comes first)
    #[arg(long, value_name = "N")]
    cycles: Option<u64>,
    /// Optimization level of every module: 0, 1, 2 or 3 (also -O0 .. -O3)
    #[arg(short = 'O', long = "opt", value_name = "LEVEL", default_value = "0", value_parser = opt_level)]
    opt: OptLevel,
    /// Record memory figures every MS milliseconds for the report's time series (100 with --plot)
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    sample_ms: Option<u64>,
    /// Print the report as JSON on stdout (and no progress line)
    #[arg(long)]
    json: bool,
    /// Run both engines and write memory over time as an SVG
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// genjit compiles in a worker process (isolated compilation)
    #[arg(long)]
    isolate: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log_to_stderr();
    let result = match cli.command {
        Command::Run(args) => run_program(args),
        Command::Churn(args) => run_churn(args),
        Command::CompileWorker => genjit::serve_compile_worker()
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| format!("compile worker: {e}")),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("genjit: {message}");
            ExitCode::from(FAILURE)
        }
    }
}

/// With `RUST_LOG` set, genjit's `tracing` events go to stderr (times since start, as tier-ups are
/// read against the program's progress); without it nothing is installed and an event costs a branch. A
/// `RUST_LOG` that is not a filter is said on stderr, and nothing is logged.
fn log_to_stderr() {
    let Some(value) = std::env::var_os("RUST_LOG") else { return };
    let filter = match value.to_str().map(tracing_subscriber::EnvFilter::try_new) {
        Some(Ok(filter)) => filter,
        Some(Err(e)) => {
            return eprintln!("genjit: RUST_LOG={value:?} is not a filter ({e}); nothing is logged")
        }
        None => return eprintln!("genjit: RUST_LOG={value:?} is not UTF-8; nothing is logged"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_ansi(false)
        .init();
}

fn run_program(args: RunArgs) -> Result<ExitCode, String> {
    let kind = |d: Dump| match d {
        Dump::Ir => DumpKind::Ir,
        Dump::Asm => DumpKind::Asm,
        Dump::Obj => DumpKind::Obj,
    };
    let mut program = args.program.into_iter();
    let options = RunOptions {
        program: program.next().expect("clap requires the file").into(),
        extra_modules: args.extra_modules,
        args: program.collect(),
        opt: args.opt,
        dump: args.dump.into_iter().map(|d| (kind(d), args.dump_dir.clone())).collect(),
        timings: args.timings,
        perf_map: args.perf_map,
        gdb: args.gdb,
        compile_threads: args.compile_threads.map(|n| n as usize),
        isolate: if args.isolate {
            let isolation = isolation()?;
            Some(match args.compile_timeout {
                Some(limit) => isolation.timeout(limit),
                None => isolation,
            })
        } else {
            None
        },
        tier: args.tier.then(|| {
            let or_threshold = |n: Option<u64>| Some(n.unwrap_or(args.tier_threshold)).filter(|&n| n > 0);
            let tiering = genjit::Tiering::new();
            let tiering = match &args.tier_passes {
                Some(pipeline) => tiering.passes(pipeline),
                None => tiering,
            };
            tiering
                .calls(or_threshold(args.tier_calls))
                .back_edges(or_threshold(args.tier_back_edges))
                .level(args.tier_level)
                .osr(Some(args.tier_osr).filter(|&n| n > 0))
                .delay(std::time::Duration::from_millis(args.tier_delay))
                .max_delay(std::time::Duration::from_millis(args.tier_max_delay))
                .cleanup(!args.tier_plain)
        }),
        lazy: args.lazy.then_some(genjit::Lazy::new().speculate(args.speculate).callees(args.lazy_callees)),
        stats_json: args.stats_json,
    };
    let code = run(&options).map_err(|e| e.to_string())?;
    // The program's own status, as lli exits with it (the low 8 bits, like the shell sees).
    std::process::exit(code);
}

fn run_churn(args: ChurnArgs) -> Result<ExitCode, String> {
    let engines = match (args.engine, args.plot.is_some()) {
        (EngineArg::Both, _) | (_, true) => vec![Engine::Genjit, Engine::Lljit],
        (EngineArg::Genjit, false) => vec![Engine::Genjit],
        (EngineArg::Lljit, false) => vec![Engine::Lljit],
    };
    let sample_ms = args.sample_ms.or(args.plot.as_ref().map(|_| 100));
    let options = ChurnOptions {
        engine: engines[0],
        threads: args.threads,
        live: args.live as usize,
        duration: Duration::from_secs(args.seconds),
        max_cycles: args.cycles,
        opt: args.opt,
        sample_every: sample_ms.map(Duration::from_millis),
        progress: !args.json && std::io::stderr().is_terminal(),
        isolate: if args.isolate { Some(isolation()?) } else { None },
    };
    let reports: Vec<ChurnReport> = if engines.len() == 1 {
        vec![genjit_cli::churn::churn(&options).map_err(|e| format!("{e:#}"))?]
    } else {
        engines.iter().map(|&e| churn_child(e, &options, !args.json)).collect::<Result<_, _>>()?
    };
    if let Some(path) = &args.plot {
        std::fs::write(path, genjit_cli::plot::svg(&reports))
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    }
    if args.json {
        match reports.as_slice() {
            [one] => println!("{}", one.to_json()),
            many => println!("[{}]", many.iter().map(ChurnReport::to_json).collect::<Vec<_>>().join(",")),
        }
        return Ok(ExitCode::SUCCESS);
    }
    for r in &reports {
        print_report(r);
    }
    if let [g, l] = reports.as_slice() {
        println!("== genjit vs lljit ==");
        println!("throughput      {:.2}x", g.cycles_per_sec / l.cycles_per_sec);
        println!("mappings        {} vs {}", g.mappings, l.mappings);
        println!("rss             {} MiB vs {} MiB", g.rss_bytes >> 20, l.rss_bytes >> 20);
    }
    if let Some(path) = &args.plot {
        println!("plot            {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one engine in a child process (`genjit churn --engine E --json` with the same settings), so each
/// engine's RSS starts clean.
fn churn_child(engine: Engine, options: &ChurnOptions, announce: bool) -> Result<ChurnReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["churn", "--engine", engine.name(), "--json"])
        .args(["--threads", &options.threads.to_string(), "--live", &options.live.to_string()])
        .args(["--seconds", &options.duration.as_secs().to_string()])
        .args(["--opt", &options.opt.to_string()]);
    if let Some(c) = options.max_cycles {
        cmd.args(["--cycles", &c.to_string()]);
    }
    if let Some(s) = options.sample_every {
        cmd.args(["--sample-ms", &s.as_millis().to_string()]);
    }
    if options.isolate.is_some() {
        cmd.arg("--isolate");
    }
    if announce {
        eprintln!("running {} ...", engine.name());
    }
    let out = cmd.stderr(std::process::Stdio::inherit()).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("the {} run failed ({})", engine.name(), out.status));
    }
    ChurnReport::from_json(&String::from_utf8_lossy(&out.stdout))
        .map_err(|e| format!("the {} run printed no report: {e}", engine.name()))
}

fn print_report(r: &ChurnReport) {
    println!("== {} ==", r.engine.name());
    println!(
        "cycles          {} in {:.1} s ({:.0}/s), {} calls from {} threads",
        r.cycles, r.seconds, r.cycles_per_sec, r.calls, r.threads
    );
    println!("add latency     p50 {:.0} us, p99 {:.0} us", r.add_p50_us, r.add_p99_us);
    println!("rss             {} MiB (after 1 s: {} MiB)", r.rss_bytes >> 20, r.rss_start_bytes >> 20);
    println!("mappings        {}", r.mappings);
    match r.engine {
        Engine::Genjit => println!(
            "heap            {} KiB live, {} KiB awaiting reclamation",
            r.jit_bytes >> 10,
            r.awaiting_bytes >> 10
        ),
        Engine::Lljit => {
            println!("code pages      {} KiB (executable anonymous mappings)", r.jit_bytes >> 10)
        }
    }
    match (r.engine, r.lag_us) {
        (_, Some([p50, p99, max])) => {
            println!("reclamation lag p50 {p50:.0} us, p99 {p99:.0} us, max {max:.0} us")
        }
        (Engine::Genjit, None) => println!("reclamation lag (nothing reclaimed)"),
        (Engine::Lljit, None) => {
            println!("reclamation     immediate on tracker removal (no guard for running threads)")
        }
    }
}
