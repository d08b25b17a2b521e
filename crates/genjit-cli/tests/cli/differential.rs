//! Every program in tests/programs runs through `genjit run` and through LLVM's own JIT (`lli-19`) in the
//! same test; stdout, stderr and the exit code must match.

use std::path::{Path, PathBuf};
use std::process::Command;

fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

fn outcome(mut cmd: Command) -> (String, String, i32) {
    let out = cmd.output().expect("spawn");
    let code = out.status.code().expect("exited normally (not by a signal)");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        code,
    )
}

fn compare(name: &str, opt: u8, extra: Option<&str>) {
    compare_with(name, opt, extra, &[]);
    // Lazy, and tiered at threshold 1 (every function moves up on its first call or loop iteration).
    compare_with(name, opt, extra, &["--lazy", "--tier", "--tier-threshold", "1"]);
}

fn compare_with(name: &str, opt: u8, extra: Option<&str>, flags: &[&str]) {
    let dir = programs_dir();
    let program = dir.join(format!("{name}.ll"));
    let mut ours = Command::new(env!("CARGO_BIN_EXE_genjit"));
    ours.arg("run").arg("--opt").arg(opt.to_string()).args(flags);
    let mut theirs = Command::new("lli-19");
    theirs.arg(format!("-O{opt}"));
    if let Some(extra) = extra {
        ours.arg("--extra-module").arg(dir.join(format!("{extra}.ll")));
        theirs.arg(format!("-extra-module={}", dir.join(format!("{extra}.ll")).display()));
    }
    ours.arg(&program).arg("arg1");
    theirs.arg(&program).arg("arg1");
    let ours = outcome(ours);
    let theirs = outcome(theirs);
    assert!(!theirs.0.is_empty(), "{name}: lli printed nothing; the comparison would be empty");
    assert_eq!(ours, theirs, "{name} at O{opt} {flags:?}: genjit vs lli-19 (stdout, stderr, exit code)");
}

macro_rules! differential {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            compare(stringify!($name), 0, None);
            compare(stringify!($name), 2, None);
        }
    )*};
}

differential!(
    recursion,
    globals,
    strings,
    switch,
    floats,
    qsort,
    structs,
    varargs,
    int128,
    bigdata,
    computed_goto,
    setjmp,
    malloc,
    ctors,
    exceptions,
    tls,
);

#[test]
fn multi_module() {
    compare("multi_main", 0, Some("multi_helper"));
    compare("multi_main", 3, Some("multi_helper"));
}

#[test]
fn every_program_is_in_the_suite() {
    let listed = [
        "recursion",
        "globals",
        "strings",
        "switch",
        "floats",
        "qsort",
        "structs",
        "varargs",
        "int128",
        "bigdata",
        "computed_goto",
        "setjmp",
        "malloc",
        "ctors",
        "exceptions",
        "tls",
        "multi_main",
        "multi_helper",
    ];
    for entry in std::fs::read_dir(programs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ll") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(listed.contains(&stem.as_str()), "{stem}.ll is not compared by any test");
        }
    }
}

/// Lua 5.4 built into `CARGO_TARGET_TMPDIR/dir` by tests/programs/lua/build.sh: the 32 library modules
/// (sorted), the output directory (with `main.bc`), the test script, and what lli-19 makes of it.
fn lua(dir: &str) -> (Vec<PathBuf>, PathBuf, PathBuf, (String, String, i32)) {
    let programs = programs_dir().join("lua");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let build = Command::new("bash").arg(programs.join("build.sh")).arg(&out).output().expect("run build.sh");
    assert!(build.status.success(), "build.sh: {}", String::from_utf8_lossy(&build.stderr));
    let mut modules: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bc") && !p.ends_with("main.bc"))
        .collect();
    modules.sort();
    assert!(modules.len() >= 30, "{} modules", modules.len());
    let script = programs.join("test.lua");
    let mut lli = Command::new("lli-19");
    lli.args(modules.iter().map(|m| format!("-extra-module={}", m.display())));
    lli.arg(out.join("main.bc")).arg(&script);
    let theirs = outcome(lli);
    assert!(theirs.0.contains("fib(20)\t6765"), "lli: {theirs:?}");
    (modules, out, script, theirs)
}

/// A real 33-file C program, Lua 5.4 (from the `lua-src` crate's sources, one bitcode file per C file,
/// built by tests/programs/lua/build.sh), run by `genjit run` with every file but the driver as
/// `--extra-module`, in three orders, against `lli-19`. Its files call each other in cycles, so before
/// batch linking no order linked at all.
#[test]
fn lua_interpreter_from_33_modules_in_any_order() {
    let (modules, out, script, theirs) = lua("lua-ir");
    let mut orders = vec![modules.clone(), modules.iter().rev().cloned().collect()];
    // A fixed shuffle (an LCG), so a failure reproduces.
    let mut shuffled = modules.clone();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..shuffled.len()).rev() {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        shuffled.swap(i, (seed >> 33) as usize % (i + 1));
    }
    orders.push(shuffled);
    for order in orders {
        let mut ours = Command::new(env!("CARGO_BIN_EXE_genjit"));
        ours.arg("run");
        for m in &order {
            ours.arg("--extra-module").arg(m);
        }
        ours.arg(out.join("main.bc")).arg(&script);
        let first: Vec<_> = order.iter().take(3).map(|m| m.file_name().unwrap().to_owned()).collect();
        assert_eq!(outcome(ours), theirs, "genjit vs lli-19 with modules in the order {first:?}...");
    }
}

/// Lua again, tiered (`genjit run --tier`) at thresholds from one call to a thousand, lazy, and both: the
/// same output as lli-19, with functions compiled on their first call and moved to O2 in the background
/// while the interpreter runs.
#[test]
fn lua_interpreter_tiered_up_while_it_runs() {
    let (modules, out, script, theirs) = lua("lua-ir-tier");
    let modes: [&[&str]; 7] = [
        &["--tier", "--tier-threshold", "1"],
        &["--tier", "--tier-threshold", "10"],
        &["--tier", "--tier-threshold", "1000"],
        &["--lazy"],
        &["--lazy", "--speculate"],
        &["--lazy", "--lazy-callees", "--tier", "--tier-threshold", "1"],
        &["--lazy", "--tier", "--tier-threshold", "1"],
    ];
    for flags in modes {
        let mut ours = Command::new(env!("CARGO_BIN_EXE_genjit"));
        ours.arg("run").args(flags);
        for m in &modules {
            ours.arg("--extra-module").arg(m);
        }
        ours.arg(out.join("main.bc")).arg(&script);
        assert_eq!(outcome(ours), theirs, "genjit run {flags:?} vs lli-19");
    }
}

/// bzip2 1.0.8's own command-line program (8 files from the `bzip2-sys` crate, built by
/// tests/programs/bzip2/build.sh), compressing and decompressing through stdin and stdout: the bytes must
/// be lli-19's, plain, tiered at threshold 1, lazy, and lazy with speculation.
#[test]
fn bzip2_compresses_like_lli_tiered_and_lazy() {
    use std::io::Write;
    use std::process::Stdio;
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bzip2-ir");
    let programs = programs_dir().join("bzip2");
    let build = Command::new("bash").arg(programs.join("build.sh")).arg(&out).output().expect("run build.sh");
    assert!(build.status.success(), "build.sh: {}", String::from_utf8_lossy(&build.stderr));
    let libs: Vec<PathBuf> =
        ["blocksort", "huffman", "crctable", "randtable", "compress", "decompress", "bzlib"]
            .iter()
            .map(|m| out.join(format!("{m}.bc")))
            .collect();
    // 400 KB of text-like data (an LCG picking words and numbers): one bzip2 block.
    let mut seed = 7u64;
    let mut input = Vec::new();
    while input.len() < 400_000 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let word = ["alpha ", "beta ", "gamma ", "delta\n", "epsilon ", "zeta ", "eta ", "theta "];
        input.extend_from_slice(word[(seed >> 60) as usize % word.len()].as_bytes());
        input.extend_from_slice(format!("{} ", (seed >> 40) % 1000).as_bytes());
    }
    let run = |mut cmd: Command, stdin: &[u8]| -> (Vec<u8>, i32) {
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || pipe.write_all(&data));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
        (output.stdout, output.status.code().expect("exited normally"))
    };
    let lli = |args: &[&str], stdin: &[u8]| {
        let mut cmd = Command::new("lli-19");
        cmd.args(libs.iter().map(|m| format!("-extra-module={}", m.display())));
        cmd.arg(out.join("bzip2.bc")).args(args);
        run(cmd, stdin)
    };
    let compressed = lli(&["-c"], &input);
    assert_eq!(compressed.1, 0);
    assert!(compressed.0.starts_with(b"BZh9") && compressed.0.len() < input.len() / 2);
    let modes: [&[&str]; 5] = [
        &[],
        &["--tier", "--tier-threshold", "1"],
        &["--lazy", "--tier", "--tier-threshold", "1"],
        &["--lazy", "--lazy-callees"],
        &["--lazy", "--speculate"],
    ];
    for flags in modes {
        let ours = |args: &[&str], stdin: &[u8]| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_genjit"));
            cmd.arg("run").args(flags);
            for m in &libs {
                cmd.arg("--extra-module").arg(m);
            }
            cmd.arg(out.join("bzip2.bc")).args(args);
            run(cmd, stdin)
        };
        assert!(ours(&["-c"], &input) == compressed, "genjit run {flags:?} bzip2 -c: not lli-19's bytes");
        assert!(ours(&["-dc"], &compressed.0) == (input.clone(), 0), "genjit run {flags:?} bzip2 -dc");
    }
}
