//! The `genjit` command line.
//!
//! ```text
//! genjit run [--opt 0|1|2|3] [--dump ir|asm|obj DIR]... [--extra-module FILE]... FILE.ll|FILE.bc [ARGS...]
//! genjit churn [--engine genjit|lljit|both] [--threads N] [--live K] [--seconds S] [--cycles N] [--opt N]
//!              [--json] [--plot FILE.svg]
//! ```

use genjit::churn::{ChurnOptions, ChurnReport, Engine};
use genjit::run::{run, RunOptions};
use genjit::{DumpKind, OptLevel};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: genjit run [--opt 0|1|2|3] [--dump ir|asm|obj DIR]... [--extra-module FILE]... \
                     FILE.ll|FILE.bc [ARGS...]\n       genjit churn [--engine genjit|lljit|both] [--threads N] [--live K] [--seconds S] \
                     [--cycles N] [--opt 0|1|2|3] [--json] [--plot FILE.svg]";

/// What `genjit churn` was asked for.
struct ChurnCli {
    options: ChurnOptions,
    /// Engines to run; more than one (or a plot) runs each in a child process, for clean RSS figures.
    engines: Vec<Engine>,
    json: bool,
    plot: Option<std::path::PathBuf>,
}

fn parse_churn(args: &[String]) -> Result<ChurnCli, String> {
    let mut cli = ChurnCli {
        options: ChurnOptions { progress: true, ..ChurnOptions::default() },
        engines: vec![Engine::Genjit],
        json: false,
        plot: None,
    };
    let mut i = 0;
    while i < args.len() {
        let value = |flag: &str| args.get(i + 1).ok_or(format!("{flag} needs a value"));
        let number = |flag: &str| -> Result<u64, String> {
            let v = value(flag)?;
            v.parse().map_err(|_| format!("{flag} takes a number, not `{v}`"))
        };
        match args[i].as_str() {
            "--threads" => cli.options.threads = number("--threads")? as usize,
            "--live" => cli.options.live = number("--live")?.max(1) as usize,
            "--seconds" => cli.options.duration = Duration::from_secs(number("--seconds")?),
            "--cycles" => cli.options.max_cycles = Some(number("--cycles")?),
            "--sample-ms" => {
                cli.options.sample_every = Some(Duration::from_millis(number("--sample-ms")?.max(1)))
            }
            "--opt" => {
                let v = value("--opt")?;
                cli.options.opt =
                    OptLevel::from_digit(v).ok_or(format!("--opt takes 0, 1, 2 or 3, not `{v}`"))?;
            }
            "--engine" => {
                cli.engines = match value("--engine")?.as_str() {
                    "genjit" => vec![Engine::Genjit],
                    "lljit" => vec![Engine::Lljit],
                    "both" => vec![Engine::Genjit, Engine::Lljit],
                    other => return Err(format!("--engine takes genjit, lljit or both, not `{other}`")),
                }
            }
            "--plot" => cli.plot = Some(value("--plot")?.into()),
            "--json" => {
                cli.json = true;
                cli.options.progress = false;
                i += 1;
                continue;
            }
            other => return Err(format!("unknown churn option `{other}`")),
        }
        i += 2;
    }
    if cli.plot.is_some() {
        // A plot compares: both engines, sampled.
        cli.engines = vec![Engine::Genjit, Engine::Lljit];
        cli.options.sample_every.get_or_insert(Duration::from_millis(100));
    }
    Ok(cli)
}

/// Runs one engine in a child process (`genjit churn --engine E --json` with the same settings).
fn churn_child(engine: Engine, options: &ChurnOptions, progress: bool) -> Result<ChurnReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["churn", "--engine", engine.name(), "--json"])
        .args(["--threads", &options.threads.to_string(), "--live", &options.live.to_string()])
        .args(["--seconds", &options.duration.as_secs().to_string()])
        .args(["--opt", &options.opt.digit().to_string()]);
    if let Some(c) = options.max_cycles {
        cmd.args(["--cycles", &c.to_string()]);
    }
    if let Some(s) = options.sample_every {
        cmd.args(["--sample-ms", &s.as_millis().to_string()]);
    }
    if progress {
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

fn run_churn(args: &[String]) -> ExitCode {
    let cli = match parse_churn(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("genjit: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let reports: Result<Vec<ChurnReport>, String> = if cli.engines.len() == 1 && cli.plot.is_none() {
        let options = ChurnOptions { engine: cli.engines[0], ..cli.options.clone() };
        genjit::churn::churn(&options).map(|r| vec![r]).map_err(|e| e.to_string())
    } else {
        cli.engines.iter().map(|&e| churn_child(e, &cli.options, !cli.json)).collect()
    };
    let reports = match reports {
        Ok(r) => r,
        Err(e) => {
            eprintln!("genjit: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &cli.plot {
        if let Err(e) = std::fs::write(path, genjit::plot::svg(&reports)) {
            eprintln!("genjit: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if cli.json {
        match reports.as_slice() {
            [one] => println!("{}", one.to_json()),
            many => println!("[{}]", many.iter().map(ChurnReport::to_json).collect::<Vec<_>>().join(",")),
        }
        return ExitCode::SUCCESS;
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
    if let Some(path) = &cli.plot {
        println!("plot            {}", path.display());
    }
    ExitCode::SUCCESS
}

fn parse_run(args: &[String]) -> Result<RunOptions, String> {
    let mut options = RunOptions::default();
    let mut i = 0;
    let value = |i: usize, flag: &str| args.get(i + 1).cloned().ok_or(format!("{flag} needs a value"));
    while i < args.len() {
        match args[i].as_str() {
            "--opt" | "-O" => {
                let v = value(i, "--opt")?;
                options.opt =
                    OptLevel::from_digit(&v).ok_or(format!("--opt takes 0, 1, 2 or 3, not `{v}`"))?;
                i += 2;
            }
            s if s.starts_with("-O") && s.len() == 3 => {
                options.opt = OptLevel::from_digit(&s[2..]).ok_or(format!("unknown option `{s}`"))?;
                i += 1;
            }
            "--dump" => {
                let kind = match value(i, "--dump")?.as_str() {
                    "ir" => DumpKind::Ir,
                    "asm" => DumpKind::Asm,
                    "obj" => DumpKind::Obj,
                    other => return Err(format!("--dump takes ir, asm or obj, not `{other}`")),
                };
                let dir = args.get(i + 2).ok_or("--dump needs a directory")?;
                options.dump.push((kind, dir.into()));
                i += 3;
            }
            "--extra-module" => {
                options.extra_modules.push(value(i, "--extra-module")?.into());
                i += 2;
            }
            s if s.starts_with('-') && options.program.as_os_str().is_empty() => {
                return Err(format!("unknown option `{s}`"));
            }
            _ => {
                options.program = args[i].clone().into();
                options.args = args[i + 1..].to_vec();
                return Ok(options);
            }
        }
    }
    Err("no program file given".to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => match parse_run(&args[1..]) {
            Ok(options) => match run(&options) {
                Ok(code) => std::process::exit(code),
                Err(e) => {
                    eprintln!("genjit: {e}");
                    ExitCode::from(2)
                }
            },
            Err(e) => {
                eprintln!("genjit: {e}\n{USAGE}");
                ExitCode::from(2)
            }
        },
        Some("churn") => run_churn(&args[1..]),
        Some("--help") | Some("-h") | Some("help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
