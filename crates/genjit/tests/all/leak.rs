//! Leaks: 100,000 add-call-remove cycles leave RSS and mappings flat (the second half is compared with the
//! first). Runs in a child process so other tests' memory does not blur the figures.

use crate::{expression, mappings, rss_bytes};
use genjit::{Jit, Source};
use std::time::Duration;

/// Cycles in the run (`GENJIT_LEAK_CYCLES` overrides, e.g. for a longer soak).
fn cycles() -> u64 {
    std::env::var("GENJIT_LEAK_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(100_000)
}

#[derive(Debug, Clone, Copy)]
struct Checkpoint {
    rss: u64,
    mappings: usize,
    live: usize,
}

/// The child: cycles of compile + add (a new name and expression each time) + typed lookup + call +
/// remove, reporting memory before the first cycle and after every tenth of the run.
fn child() {
    let jit = Jit::new().unwrap();
    let dylib = jit.create_dylib("queries").unwrap();
    let total = cycles();
    // Baseline: the empty dylib (its `__dso_handle` block lives in the heap).
    report(&jit, 0);
    for i in 1..=total {
        let name = format!("q{i}");
        let module = dylib.add_module(Source::ir_text(expression(&name, i))).unwrap();
        let f = dylib.lookup::<fn(i64) -> i64>(&name).unwrap();
        std::hint::black_box(f.call(i as i64));
        drop(f);
        dylib.remove_module(&module).unwrap();
        if i % (total / 10).max(1) == 0 {
            assert!(jit.reclaim(Duration::from_secs(5)), "reclamation did not finish");
            report(&jit, i);
        }
    }
}

/// Prints checkpoint `i`: RSS, mappings and the heap's live bytes other than entries.
fn report(jit: &Jit, i: u64) {
    // Hand malloc's free memory back first, so RSS counts what is allocated, not what glibc caches
    // (cross-thread frees by the reclaimer otherwise make RSS jump by arena-sized steps).
    // SAFETY: malloc_trim only releases free memory.
    unsafe { libc::malloc_trim(0) };
    let s = jit.stats();
    println!("LEAK {i} {} {} {}", rss_bytes(), mappings(), s.heap.live_bytes() - s.entry_bytes);
}

#[test]
fn add_call_remove_cycles_do_not_grow_memory() {
    let Some(out) = crate::in_child("leak::add_call_remove_cycles_do_not_grow_memory") else {
        child();
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let points: Vec<Checkpoint> = stdout
        .lines()
        .filter_map(|l| l.split("LEAK ").nth(1))
        .map(|l| {
            let f: Vec<u64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            Checkpoint { rss: f[1], mappings: f[2] as usize, live: f[3] as usize }
        })
        .collect();
    assert_eq!(points.len(), 11, "expected a checkpoint before the run and after every tenth: {stdout}");
    let (empty, first, mid, end) = (points[0], points[1], points[5], points[10]);
    eprintln!("leak: {} cycles: empty {empty:?}, after 10% {first:?}, 50% {mid:?}, 100% {end:?}", cycles());
    // Nothing JIT'd stays live once its module is removed and reclaimed (entries excepted: their slots
    // are reused).
    for p in &points {
        assert_eq!(p.live, empty.live, "heap bytes still live after removing every module: {p:?}");
    }
    // The second half of the run adds under 2% RSS, and no mappings beyond a couple (an allocator arena).
    let growth = end.rss as f64 / mid.rss as f64 - 1.0;
    assert!(growth < 0.02, "RSS grew {:.2}% in the second half ({mid:?} -> {end:?})", growth * 100.0);
    assert!(end.mappings <= mid.mappings + 2, "mappings grew in the second half: {mid:?} -> {end:?}");
}

/// Creates and drops one JIT holding a live module in each of two dylibs (one called, one with data).
fn jit_with_live_modules(i: u64) {
    let jit = Jit::new().unwrap();
    let a = jit.create_dylib("a").unwrap();
    let b = jit.create_dylib("b").unwrap();
    a.add_module(Source::ir_text(expression("f", i))).unwrap();
    b.add_module(Source::ir_text("@table = global [512 x i64] zeroinitializer\n")).unwrap();
    std::hint::black_box(a.lookup::<fn(i64) -> i64>("f").unwrap().call(i as i64));
}

#[test]
fn dropping_jits_returns_their_memory() {
    let Some(_) = crate::in_child("leak::dropping_jits_returns_their_memory") else {
        let settle = || {
            // A dropped JIT's modules retire, then its entries, then its heap: a few grace periods.
            for _ in 0..4 {
                assert!(genjit::reclaim_all(Duration::from_secs(10)));
            }
            // SAFETY: malloc_trim only releases free memory.
            unsafe { libc::malloc_trim(0) };
        };
        for i in 0..20 {
            jit_with_live_modules(i);
        }
        settle();
        let (rss0, maps0) = (rss_bytes(), mappings());
        for i in 0..1_000 {
            jit_with_live_modules(i);
        }
        settle();
        let (rss1, maps1) = (rss_bytes(), mappings());
        eprintln!(
            "1,000 JITs made and dropped: RSS {} -> {} KiB, mappings {maps0} -> {maps1}",
            rss0 >> 10,
            rss1 >> 10
        );
        // Each leaked JIT used to keep its code generations' 64 MiB writable views: 1,000 mappings.
        assert!(maps1 <= maps0 + 2, "mappings grew: {maps0} -> {maps1}");
        assert!(rss1 < rss0 + (8 << 20), "RSS grew by {} KiB", (rss1 - rss0) >> 10);
        return;
    };
}

/// A function of ~20 KiB of code (a long chain of dependent operations at O0).
fn big_function(name: &str) -> String {
    let mut ir = format!("define i64 @{name}(i64 %x0) {{\n");
    for i in 0..3000 {
        ir.push_str(&format!("  %x{} = mul i64 %x{i}, {}\n", i + 1, i % 7 + 3));
    }
    ir.push_str("  ret i64 %x3000\n}\n");
    ir
}

/// Runs code at `addr` after its module was removed and reclaimed: must die by a signal.
fn call_freed(addr: usize) -> ! {
    // SAFETY: deliberately unsound, in a child process: the test checks that freed code traps.
    let f = unsafe { std::mem::transmute::<usize, extern "C" fn(i64) -> i64>(addr) };
    let r = f(1);
    println!("freed code returned {r}");
    std::process::exit(0)
}

/// Removes the module defining `name` (a fresh dylib's only module), waits for its memory to be freed,
/// and returns an address inside its former body: `offset` bytes in.
fn freed_body(jit: &Jit, source: String, name: &str, offset: usize) -> usize {
    let d = jit.create_dylib(name).unwrap();
    let m = d.add_module(Source::ir_text(source)).unwrap();
    let f = d.lookup::<fn(i64) -> i64>(name).unwrap();
    let body = f.current_address(&jit.pin()).unwrap();
    drop(f);
    d.remove_module(&m).unwrap();
    assert!(jit.reclaim(Duration::from_secs(10)));
    body + offset
}

#[test]
fn freed_whole_pages_of_code_fault() {
    let Some(signal) = crate::child_signal("leak::freed_whole_pages_of_code_fault") else {
        let jit = Jit::new().unwrap();
        assert!(jit.stats().freed_code_traps, "this kernel gives no userfaultfd");
        // The code and data generations exist once a module was added, and the reclaimer has freed one
        // (its thread's malloc arena exists): count mappings from then on.
        jit.create_dylib("warm").unwrap().add_module(Source::ir_text(expression("warm", 1))).unwrap();
        freed_body(&jit, big_function("warm2"), "warm2", 0);
        let before = mappings();
        // 8 KiB into a ~20 KiB body: a whole page that went back to the OS.
        let addr = freed_body(&jit, big_function("big"), "big", 8192);
        assert!(jit.stats().heap.punched_bytes >= 4096, "no page was punched");
        assert_eq!(mappings(), before, "trapping freed pages added no mapping");
        call_freed(addr);
    };
    assert_eq!(signal, Some(libc::SIGBUS), "a hole-punched code page must raise SIGBUS when executed");
}

#[test]
fn freed_code_on_a_shared_page_traps() {
    let Some(signal) = crate::child_signal("leak::freed_code_on_a_shared_page_traps") else {
        let jit = Jit::new().unwrap();
        let d = jit.create_dylib("keep").unwrap();
        // A neighbour stays live, so the freed function's page stays mapped and is filled with `int3`.
        d.add_module(Source::ir_text(expression("neighbour", 1))).unwrap();
        let addr = freed_body(&jit, expression("small", 2), "small", 0);
        call_freed(addr);
    };
    assert_eq!(signal, Some(libc::SIGTRAP), "freed code bytes on a live page must be int3");
}
