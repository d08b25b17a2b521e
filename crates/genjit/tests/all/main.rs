//! genjit's integration tests, built as one binary to keep LLVM link time down.

mod adversarial;
mod api;
mod batch;
mod errors;
mod fuzz_corpus;
mod heap;
mod isolate;
mod lazy;
mod leak;
mod model;
mod observe;
mod osr;
mod proptests;
mod redirect;
mod safety;
mod stall;
mod tiering;
mod unwind;

/// Runs test `name` (its path in this binary) in a child process of its own and returns the child's
/// output, or `None` when called in that child (the caller then does the work). For tests whose memory
/// figures must not mix with other tests', or whose 100,000 registered modules would make other tests'
/// unwinding slow (libgcc 12 searches registered `.eh_frame`s linearly).
fn in_child(name: &str) -> Option<std::process::Output> {
    let out = run_child(name)?;
    assert!(out.status.success(), "child test {name} failed: {}", String::from_utf8_lossy(&out.stdout));
    Some(out)
}

/// Runs test `name` alone in a child process (echoing its stderr), or returns `None` in that child.
fn run_child(name: &str) -> Option<std::process::Output> {
    if std::env::var("GENJIT_CHILD_TEST").is_ok_and(|t| t == name) {
        return None;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("GENJIT_CHILD_TEST", name)
        .output()
        .unwrap();
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    Some(out)
}

/// Lines in `/proc/self/maps`: the memory mappings this process holds.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").map(|s| s.lines().count()).unwrap_or(0)
}

/// Resident set size of this process in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

/// A one-function module `i64 @{name}(i64)` computing the `n`-th of many different expressions.
fn expression(name: &str, n: u64) -> String {
    format!(
        "define i64 @{name}(i64 %x) {{\n  %a = mul i64 %x, {}\n  %b = xor i64 %a, {}\n  ret i64 %b\n}}\n",
        n % 97 + 1,
        n
    )
}

/// Runs test `name` in a child process that is expected to die; returns the signal that killed it (or
/// `None` if it exited), after echoing its output.
fn child_signal(name: &str) -> Option<Option<i32>> {
    use std::os::unix::process::ExitStatusExt;
    run_child(name).map(|out| out.status.signal())
}

/// An object defining `i64 @f_000000(i64)`, to be renamed by [`renamed`] (compiling 100,000 modules
/// would take minutes; linking 100,000 objects takes a second).
pub(crate) fn template_object() -> Vec<u8> {
    use inkwell::{context::Context, memory_buffer::MemoryBuffer, targets::FileType};
    let ir = "define i64 @f_000000(i64 %x) {\n  %r = mul i64 %x, 3\n  ret i64 %r\n}\n";
    let ctx = Context::create();
    let module =
        ctx.create_module_from_ir(MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "t")).unwrap();
    let tm = genjit::host_target_machine(genjit::OptLevel::O0).unwrap();
    let object = tm.write_to_memory_buffer(&module, FileType::Object).unwrap().as_slice().to_vec();
    assert!(object.windows(9).any(|w| w == b".eh_frame"), "the template must carry unwind information");
    object
}

/// `template` with its function renamed to `f_{i:06}` (same length: only the string table changes).
pub(crate) fn renamed(template: &[u8], i: usize) -> Vec<u8> {
    let mut object = template.to_vec();
    let name = format!("f_{i:06}");
    let at = object.windows(8).position(|w| w == b"f_000000").expect("the template names f_000000");
    object[at..at + 8].copy_from_slice(name.as_bytes());
    object
}

/// What must not change when an add fails (or when a successful add is undone): module space (entry
/// chunks are a pool that grows on first use), modules and symbols, once reclamation has settled.
#[derive(Debug, PartialEq)]
pub(crate) struct Snapshot {
    live_bytes: usize,
    modules: usize,
    symbols: usize,
}

pub(crate) fn snapshot(jit: &genjit::Jit) -> Snapshot {
    assert!(jit.reclaim(std::time::Duration::from_secs(10)), "reclamation stalled");
    let s = jit.stats();
    Snapshot {
        live_bytes: s.heap.live_bytes() - s.entry_bytes - s.awaiting_bytes,
        modules: s.modules,
        symbols: s.symbols,
    }
}
