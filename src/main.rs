//! The `genjit` command line.
//!
//! ```text
//! genjit run [--opt 0|1|2|3] [--dump ir|asm|obj DIR]... [--extra-module FILE]... FILE.ll|FILE.bc [ARGS...]
//! genjit churn [--threads N] [--live K] [--seconds S] [--json]
//! ```

use genjit::run::{run, RunOptions};
use genjit::{DumpKind, OptLevel};
use std::process::ExitCode;

const USAGE: &str = "usage: genjit run [--opt 0|1|2|3] [--dump ir|asm|obj DIR]... [--extra-module FILE]... \
                     FILE.ll|FILE.bc [ARGS...]\n       genjit churn [--threads N] [--live K] [--seconds S] [--json]";

fn parse_churn(args: &[String]) -> Result<(genjit::churn::ChurnOptions, bool), String> {
    let mut options = genjit::churn::ChurnOptions {
        threads: 2,
        live: 1000,
        duration: std::time::Duration::from_secs(10),
        progress: true,
    };
    let mut json = false;
    let mut i = 0;
    while i < args.len() {
        let number = |flag: &str| -> Result<u64, String> {
            let v = args.get(i + 1).ok_or(format!("{flag} needs a value"))?;
            v.parse().map_err(|_| format!("{flag} takes a number, not `{v}`"))
        };
        match args[i].as_str() {
            "--threads" => options.threads = number("--threads")? as usize,
            "--live" => options.live = number("--live")?.max(1) as usize,
            "--seconds" => options.duration = std::time::Duration::from_secs(number("--seconds")?),
            "--json" => {
                json = true;
                options.progress = false;
                i += 1;
                continue;
            }
            other => return Err(format!("unknown churn option `{other}`")),
        }
        i += 2;
    }
    Ok((options, json))
}

fn run_churn(args: &[String]) -> ExitCode {
    let (options, json) = match parse_churn(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("genjit: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match genjit::churn::churn(&options) {
        Ok(r) if json => {
            println!("{}", r.to_json());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "cycles          {} ({:.0}/s), {} calls from {} threads",
                r.cycles, r.cycles_per_sec, r.calls, options.threads
            );
            println!("add latency     p50 {:?}, p99 {:?}", r.add_p50, r.add_p99);
            println!(
                "rss             {} MiB (after 1 s: {} MiB)",
                r.rss_bytes >> 20,
                r.rss_start_bytes >> 20
            );
            println!("mappings        {}", r.mappings);
            println!(
                "heap            {} KiB live, {} KiB awaiting reclamation",
                r.live_bytes >> 10,
                r.awaiting_bytes >> 10
            );
            match r.lag {
                Some(l) => println!("reclamation lag p50 {:?}, p99 {:?}, max {:?}", l.p50, l.p99, l.max),
                None => println!("reclamation lag (nothing reclaimed)"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("genjit: {e}");
            ExitCode::from(2)
        }
    }
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
