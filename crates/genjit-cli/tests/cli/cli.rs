//! The command line as a user meets it: help, version, usage errors, bad input, exit codes.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::Path;

fn genjit() -> Command {
    Command::cargo_bin("genjit").unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("genjit-cli-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether `tool` runs; on CI it must (scripts/setup.sh installs it), elsewhere a missing tool skips the
/// test loudly.
fn installed(tool: &str) -> bool {
    if std::process::Command::new(tool).arg("--version").output().is_ok() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{tool} is not installed on CI (scripts/setup.sh installs it)");
    eprintln!("{tool} not installed: skipping");
    false
}

#[test]
fn every_subcommand_has_help_and_the_tool_a_version() {
    for sub in [&["--help"][..], &["run", "--help"], &["churn", "--help"], &["help", "run"]] {
        genjit().args(sub).assert().success().stdout(predicate::str::contains("Usage: genjit"));
    }
    genjit().arg("run").arg("--help").assert().stdout(predicate::str::contains("--extra-module"));
    genjit().arg("churn").arg("--help").assert().stdout(predicate::str::contains("--sample-ms"));
    genjit().arg("--version").assert().success().stdout(format!("genjit {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_2_with_a_hint() {
    genjit().args(["run", "--bogus", "x.ll"]).assert().code(2).stderr(predicate::str::contains("--bogus"));
    genjit().args(["run"]).assert().code(2).stderr(predicate::str::contains("<FILE [ARGS]>"));
    genjit()
        .args(["frobnicate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unrecognized subcommand"));
    genjit()
        .args(["run", "-O7", "x.ll"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("optimization level `7` is not one of 0, 1, 2, 3"));
    genjit()
        .args(["churn", "--engine", "v8"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("genjit, lljit, both"));
    genjit().args(["churn", "--live", "0"]).assert().code(2);
}

#[test]
fn genjit_failures_exit_125_naming_the_file_as_given() {
    let dir = scratch("failures");
    genjit()
        .args(["run", "no/such/file.ll"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains("genjit: cannot read `no/such/file.ll`"));
    let bad = write(&dir, "bad.ll", "define i32 @main() {\n  %x = add i32 1,\n  ret i32 0\n}\n");
    // LLVM's message names the file as given, then the source line, then a caret under column 3.
    genjit().arg("run").arg(&bad).assert().code(125).stderr(format!(
        "genjit: module `{0}` does not parse: {0}:3:3: error: expected value token\n  ret i32 0\n  ^\n",
        bad.display()
    ));
    let unresolved = write(
        &dir,
        "unresolved.ll",
        "declare i32 @nowhere()\ndefine i32 @main() {\n  %r = call i32 @nowhere()\n  ret i32 %r\n}\n",
    );
    genjit()
        .arg("run")
        .arg(&unresolved)
        .assert()
        .code(125)
        .stderr(predicate::str::contains("unresolved symbols: nowhere"));
    let no_main = write(&dir, "no_main.ll", "define i32 @other() {\n  ret i32 0\n}\n");
    genjit()
        .arg("run")
        .arg(&no_main)
        .assert()
        .code(125)
        .stderr(predicate::str::contains("symbol `main` not found"));
}

#[test]
fn run_exits_with_the_programs_code_and_passes_its_arguments() {
    let dir = scratch("exit");
    let prog = write(
        &dir,
        "argc.ll",
        "define i32 @main(i32 %argc, ptr %argv) {\n  %r = add i32 %argc, 40\n  ret i32 %r\n}\n",
    );
    // argc = 1 (program) + 2 arguments, one of which looks like an option of genjit's.
    genjit().args(["run", "-O2"]).arg(&prog).args(["--opt", "x"]).assert().code(43);
    let two = write(&dir, "two.ll", "define i32 @main() {\n  ret i32 2\n}\n");
    genjit().arg("run").arg(&two).assert().code(2).stderr("");
}

#[test]
fn run_prints_timings_and_writes_dumps() {
    let dir = scratch("timings");
    let prog = write(&dir, "zero.ll", "define i32 @main() {\n  ret i32 0\n}\n");
    let dumps = dir.join("dumps");
    genjit()
        .args(["run", "--timings", "--dump", "ir", "--dump", "obj", "--dump-dir"])
        .arg(&dumps)
        .arg(&prog)
        .assert()
        .success()
        .stderr(predicate::str::is_match(r"timings: module `.*zero.ll`: parse [0-9.]+, verify [0-9.]+, optimize [0-9.]+, emit [0-9.]+, link [0-9.]+, publish [0-9.]+, constructors [0-9.]+, total [0-9.]+ ms").unwrap());
    let names: Vec<String> = std::fs::read_dir(&dumps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(".ll")) && names.iter().any(|n| n.ends_with(".o")), "{names:?}");
    // `--dump` no longer swallows the program as its directory.
    genjit().args(["run", "--dump", "ir"]).arg(&prog).current_dir(&dir).assert().success();
    assert!(dir.join("genjit-dump").is_dir());
}

#[test]
fn churn_json_is_quiet_and_parses() {
    let out = genjit()
        .args(["churn", "--threads", "0", "--live", "10", "--cycles", "40", "--seconds", "20", "--json"])
        .assert()
        .success()
        .stderr("")
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["engine"], "genjit");
    assert_eq!(report["cycles"], 40);
    assert!(report["add_p50_us"].as_f64().unwrap() > 0.0);
}

/// `perf record` of `genjit run --perf-map`, `perf inject --jit` (reading genjit's jitdump), then
/// `perf report`: the JIT function that ran must be named.
/// Skipped (loudly) only outside CI when `perf` is missing; CI installs it (scripts/setup.sh).
#[test]
fn perf_report_names_jit_code() {
    if !installed("perf") {
        return;
    }
    let dir = scratch("perf");
    // ~0.3 s inside one JIT function.
    let prog = write(&dir, "spin.ll", "define i64 @spin_in_jit_code(i64 %n) {\nentry:\n  br label %loop\nloop:\n  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]\n  %a = phi i64 [ 1, %entry ], [ %a1, %loop ]\n  %a1 = mul i64 %a, 6364136223846793005\n  %i1 = add i64 %i, 1\n  %c = icmp ult i64 %i1, %n\n  br i1 %c, label %loop, label %done\ndone:\n  ret i64 %a1\n}\ndefine i32 @main() {\n  %r = call i64 @spin_in_jit_code(i64 300000000)\n  %t = trunc i64 %r to i32\n  %z = and i32 %t, 0\n  ret i32 %z\n}\n");
    let data = dir.join("perf.data");
    let record = std::process::Command::new("perf")
        .args(["record", "-q", "-k", "mono", "-e", "cpu-clock", "-o"])
        .arg(&data)
        .arg(assert_cmd::cargo::cargo_bin("genjit"))
        .args(["run", "--perf-map"])
        .arg(&prog)
        .output()
        .unwrap();
    assert!(record.status.success(), "perf record: {}", String::from_utf8_lossy(&record.stderr));
    let injected = dir.join("perf.jit.data");
    let inject = std::process::Command::new("perf")
        .args(["inject", "--jit", "-i"])
        .arg(&data)
        .arg("-o")
        .arg(&injected)
        .output()
        .unwrap();
    assert!(inject.status.success(), "perf inject: {}", String::from_utf8_lossy(&inject.stderr));
    let report = std::process::Command::new("perf")
        .args(["report", "--stdio", "--sort", "sym", "-i"])
        .arg(&injected)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    // Most samples fall in the loop: the named function must carry a large share of them.
    let line = text.lines().find(|l| l.contains("spin_in_jit_code [genjit:")).unwrap_or_else(|| {
        panic!("perf report did not name the JIT function:\n{text}");
    });
    let share: f64 = line.trim().split('%').next().unwrap().trim().parse().unwrap();
    assert!(share > 50.0, "only {share}% of samples named: {line}");
}

/// GDB's JIT interface: a program that crashes two JIT frames deep, run under `gdb -batch`; with `--gdb`
/// the backtrace names both JIT functions and `main`, without it (the control) it cannot.
#[test]
fn gdb_backtrace_names_jit_functions() {
    if !installed("gdb") {
        return;
    }
    let dir = scratch("gdb");
    let prog = write(&dir, "crash.ll", "define void @crash_here(ptr %p) {\n  store volatile i32 42, ptr %p\n  ret void\n}\ndefine void @calls_crash(ptr %p) {\n  call void @crash_here(ptr %p)\n  ret void\n}\ndefine i32 @main() {\n  call void @calls_crash(ptr null)\n  ret i32 0\n}\n");
    let backtrace = |gdb_flag: bool| {
        let mut cmd = std::process::Command::new("gdb");
        cmd.args(["-nx", "-batch", "-ex", "run", "-ex", "bt", "--args"])
            .arg(assert_cmd::cargo::cargo_bin("genjit"))
            .arg("run");
        if gdb_flag {
            cmd.arg("--gdb");
        }
        let out = cmd.arg(&prog).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let named = backtrace(true);
    assert!(named.contains("SIGSEGV"), "the program did not crash under gdb:\n{named}");
    let frames: Vec<&str> = named.lines().filter(|l| l.starts_with('#')).collect();
    assert!(frames.len() >= 3, "{named}");
    assert!(frames[0].contains(" in crash_here ()"), "{named}");
    assert!(frames[1].contains(" in calls_crash ()"), "{named}");
    assert!(frames[2].contains(" in main ()"), "{named}");
    let unnamed = backtrace(false);
    assert!(unnamed.contains("SIGSEGV") && !unnamed.contains("crash_here"), "control:\n{unnamed}");
}

/// Every `main` lli accepts runs, with lli's exit code; the parameters' types are checked, not only
/// their count (LLVM's own ExecutionEngine tests use `i32 @main(i32)`).
#[test]
fn main_signatures_as_lli_accepts_them() {
    let dir = scratch("mains");
    let accepted = [
        ("argc_only", "define i32 @main(i32 %argc) {\n  %r = add i32 %argc, 10\n  ret i32 %r\n}\n"),
        ("returns_i8", "define i8 @main() {\n  ret i8 -1\n}\n"),
        ("returns_i64", "define i64 @main(i32 %c, ptr %v) {\n  ret i64 4294967303\n}\n"),
    ];
    for (name, ir) in accepted {
        let prog = write(&dir, &format!("{name}.ll"), ir);
        let lli = std::process::Command::new("lli-19").arg(&prog).arg("x").output().unwrap();
        let expected = lli.status.code().unwrap();
        genjit().arg("run").arg(&prog).arg("x").assert().code(expected);
    }
    // lli exits with whatever `eax` held after a `void` main (MCJIT reads it as an `int`); genjit with 0.
    let void = write(&dir, "returns_void.ll", "define void @main(i32 %c, ptr %v, ptr %e) {\n  ret void\n}\n");
    genjit().arg("run").arg(&void).assert().code(0);
    for (name, ir, shown) in [
        ("double_arg", "define i32 @main(double %x) {\n  ret i32 0\n}\n", "i32 (double)"),
        ("int_argv", "define i32 @main(i32 %c, i32 %v) {\n  ret i32 0\n}\n", "i32 (i32, i32)"),
        ("four", "define i32 @main(i32 %a, ptr %b, ptr %c, ptr %d) {\n  ret i32 0\n}\n", "ptr, ptr, ptr)"),
    ] {
        let prog = write(&dir, &format!("{name}.ll"), ir);
        genjit()
            .arg("run")
            .arg(&prog)
            .assert()
            .code(125)
            .stderr(predicate::str::contains("`main` has IR type").and(predicate::str::contains(shown)));
    }
}

/// `--isolate`: LLVM's fatal error on another target's intrinsic is genjit's failure (125) with LLVM's
/// message, where it used to abort the process (the control, without `--isolate`, still does).
#[test]
fn isolate_turns_llvm_aborts_into_errors() {
    let dir = scratch("isolate");
    let prog = write(&dir, "neon.ll", "declare <4 x float> @llvm.aarch64.neon.frecpe.v4f32(<4 x float>)\ndefine <4 x float> @f(<4 x float> %x) {\n  %r = call <4 x float> @llvm.aarch64.neon.frecpe.v4f32(<4 x float> %x)\n  ret <4 x float> %r\n}\ndefine i32 @main() {\n  ret i32 3\n}\n");
    genjit().args(["run", "--isolate"]).arg(&prog).assert().code(125).stderr(predicate::str::contains(
        "crashed the compiler: signal: 6 (SIGABRT): LLVM ERROR: Cannot select",
    ));
    let aborted = genjit().arg("run").arg(&prog).output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(aborted.status.signal(), Some(libc::SIGABRT), "the control: in-process LLVM aborts");
    let ok = write(&dir, "ok.ll", "define i32 @main() {\n  ret i32 3\n}\n");
    genjit().args(["run", "--isolate"]).arg(&ok).assert().code(3);
    // `--compile-timeout`: a module that takes ~190 ms at O2 against a 20 ms limit fails fast with 125.
    let mut huge = String::from("define i32 @main(i32 %x0) {\n");
    for i in 0..40_000 {
        huge += &format!("  %x{} = {} i32 %x{i}, {}\n", i + 1, ["add", "mul", "xor"][i % 3], i % 97 + 1);
    }
    huge += "  %r = and i32 %x40000, 63\n  ret i32 %r\n}\n";
    let huge = write(&dir, "huge.ll", &huge);
    genjit()
        .args(["run", "-O2", "--isolate", "--compile-timeout", "0.02"])
        .arg(&huge)
        .assert()
        .code(125)
        .stderr(predicate::str::contains("compilation took longer than 20ms; the compile worker was killed"));
    // Without --isolate there is no worker to kill: a usage error.
    genjit().args(["run", "--compile-timeout", "1"]).arg(&ok).assert().code(2);
}

#[test]
fn rust_log_shows_tier_ups_and_a_bad_pipeline_is_refused_up_front() {
    let dir = scratch("log");
    // `f` is called 50 times: with a threshold of 10 its counter runs out on the main thread, which
    // logs the decision and the queueing before `main` returns (the compile itself may be cancelled).
    let prog = write(
        &dir,
        "calls.ll",
        "define i32 @f(i32 %x) {\n  %y = add i32 %x, 1\n  ret i32 %y\n}\n\
         define i32 @main() {\nentry:\n  br label %loop\nloop:\n  %i = phi i32 [ 0, %entry ], [ %j, %loop ]\n  \
         %j = call i32 @f(i32 %i)\n  %done = icmp eq i32 %j, 50\n  br i1 %done, label %out, label %loop\n\
         out:\n  ret i32 0\n}\n",
    );
    let tier = ["run", "--tier", "--tier-calls", "10", "--tier-back-edges", "0"];
    genjit()
        .args(tier)
        .arg(&prog)
        .env("RUST_LOG", "genjit=debug")
        .assert()
        .success()
        .stderr(predicate::str::contains("hot function=f trigger=Calls counted=10 decision=TierUp"))
        .stderr(predicate::str::contains("tier-up queued function=f"));
    // Without RUST_LOG, nothing.
    genjit().args(tier).arg(&prog).env_remove("RUST_LOG").assert().success().stderr("");
    // One that is not a filter is said, and the program runs unlogged.
    genjit()
        .args(tier)
        .arg(&prog)
        .env("RUST_LOG", "genjit=loud")
        .assert()
        .success()
        .stderr(predicate::str::starts_with("genjit: RUST_LOG=\"genjit=loud\" is not a filter ("))
        .stderr(predicate::str::contains("tier-up queued").not());
    genjit()
        .args(tier)
        .args(["--tier-passes", "function(sroa),no-such-pass"])
        .arg(&prog)
        .assert()
        .code(125)
        .stderr(predicate::str::contains("pass pipeline `function(sroa),no-such-pass` is invalid"));
}
