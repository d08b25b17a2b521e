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
        // The probe JIT outlives the others only to wait for reclamation (which is process-wide).
        let probe = Jit::new().unwrap();
        let settle = || {
            // A dropped JIT's modules retire, then its entries, then its heap: a few grace periods.
            for _ in 0..4 {
                assert!(probe.reclaim(Duration::from_secs(10)));
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
