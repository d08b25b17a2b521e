//! The `genjit` command line.
//!
//! ```text
//! genjit run [--opt 0|1|2|3] [--dump ir|asm|obj DIR]... [--extra-module FILE]... FILE.ll|FILE.bc [ARGS...]
//! ```

use genjit::run::{run, RunOptions};
use genjit::{DumpKind, OptLevel};
use std::process::ExitCode;

const USAGE: &str = "usage: genjit run [--opt 0|1|2|3] [--dump ir|asm|obj DIR]... [--extra-module FILE]... \
                     FILE.ll|FILE.bc [ARGS...]";

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
