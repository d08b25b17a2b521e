//! The heap's density goal: 100,000 live small modules in fewer than 100 memory mappings.

use genjit::{Jit, Source};

#[test]
fn hundred_thousand_live_modules_share_a_few_mappings() {
    // Own process: the mapping count is process-wide, and 100,000 registered modules would slow any
    // other test's unwinding.
    if crate::in_child("heap::hundred_thousand_live_modules_share_a_few_mappings").is_some() {
        return;
    }
    const MODULES: usize = 100_000;
    let jit = Jit::new().unwrap();
    let before = crate::mappings();
    let dylibs: Vec<_> = (0..2).map(|t| jit.create_dylib(&format!("d{t}")).unwrap()).collect();
    std::thread::scope(|s| {
        for (t, d) in dylibs.iter().enumerate() {
            s.spawn(move || {
                for i in (t..MODULES).step_by(2) {
                    let ir = format!(
                        "@counter_{i} = global i64 {i}\ndefine i64 @f_{i}(i64 %x) {{\n %c = load i64, ptr @counter_{i}\n %r = add i64 %x, %c\n ret i64 %r\n}}\n"
                    );
                    d.add_module(Source::ir_text(ir)).unwrap();
                }
            });
        }
    });
    let stats = jit.stats();
    assert_eq!(stats.modules, MODULES);
    for i in [0, 1, 4_999, 77_777, MODULES - 1] {
        let d = &dylibs[i % 2];
        assert_eq!(d.lookup::<fn(i64) -> i64>(&format!("f_{i}")).unwrap().call(1), 1 + i as i64);
    }
    let added = crate::mappings().saturating_sub(before);
    assert!(stats.heap_mappings < 100, "the heap's own count: {}", stats.heap_mappings);
    eprintln!("{MODULES} modules: {} mappings added, {} generations", added, stats.heap.generations.len());
    assert!(added < 100, "{added} mappings for {MODULES} modules");
}

/// Microseconds per module to remove and free the `k` most recently added modules of `handles`.
fn free_cost_us(jit: &Jit, dylib: &genjit::Dylib, handles: &mut Vec<genjit::ModuleHandle>, k: usize) -> f64 {
    let victims = handles.split_off(handles.len() - k);
    assert!(jit.reclaim(std::time::Duration::from_secs(30)));
    let start = std::time::Instant::now();
    for m in &victims {
        dylib.remove_module(m).unwrap();
    }
    drop(victims);
    assert!(jit.reclaim(std::time::Duration::from_secs(60)));
    start.elapsed().as_secs_f64() * 1e6 / k as f64
}

#[test]
fn freeing_and_teardown_cost_do_not_grow_with_live_modules() {
    // Own process: unwind registrations are process-wide.
    if crate::in_child("heap::freeing_and_teardown_cost_do_not_grow_with_live_modules").is_some() {
        return;
    }
    const SMALL: usize = 1_000;
    const LARGE: usize = 100_000;
    const FREED: usize = 2_000;
    let template = crate::template_object();
    let jit = Jit::new().unwrap();
    let dylib = jit.create_dylib("d").unwrap();
    let mut handles = Vec::new();
    let add_up_to = |handles: &mut Vec<genjit::ModuleHandle>, n: usize| {
        for i in handles.len()..n {
            handles.push(dylib.add_module(Source::object(crate::renamed(&template, i))).unwrap());
        }
    };
    add_up_to(&mut handles, SMALL + FREED);
    let small = free_cost_us(&jit, &dylib, &mut handles, FREED);
    add_up_to(&mut handles, LARGE + FREED);
    let large = free_cost_us(&jit, &dylib, &mut handles, FREED);
    let stats = jit.stats();
    assert_eq!((stats.modules, stats.unwind_sections), (LARGE, LARGE));
    assert!(stats.unwind_objects < LARGE / 100, "{} unwind objects", stats.unwind_objects);
    // Every module still runs, and the unwinder still finds its way through them (see `api::backtrace*`).
    let _pin = jit.pin();
    for i in [0, 777, LARGE - 1] {
        let addr = dylib.lookup_address(&format!("f_{i:06}")).unwrap();
        // SAFETY: the object defines `i64 f_NNNNNN(i64)`; the pin keeps its module mapped during the call.
        let f = unsafe { std::mem::transmute::<usize, extern "C" fn(i64) -> i64>(addr) };
        assert_eq!(f(5), 15);
    }
    drop(_pin);
    let start = std::time::Instant::now();
    drop((handles, dylib, jit));
    assert!(genjit::reclaim_all(std::time::Duration::from_secs(120)));
    let teardown = start.elapsed();
    eprintln!(
        "free one module: {small:.1} us at {SMALL} live, {large:.1} us at {LARGE} live ({:.2}x); \
         teardown of {LARGE} modules: {teardown:?}",
        large / small
    );
    // Goals: within 2x, under 2 s. The bounds leave room for a loaded machine; per-module unwind
    // registration measured 1,800 us and over a minute here.
    assert!(large < 4.0 * small, "freeing at {LARGE} live costs {large:.1} us vs {small:.1} us at {SMALL}");
    assert!(teardown < std::time::Duration::from_secs(6), "tearing down {LARGE} modules took {teardown:?}");
}

/// Bytes malloc has handed out and not taken back (small and mmapped chunks).
fn malloc_in_use() -> usize {
    // SAFETY: `mallinfo2` only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    m.uordblks + m.hblkhd
}

#[test]
fn metadata_per_module_is_small_and_counted() {
    // Own process: malloc's counters are process-wide.
    if crate::in_child("heap::metadata_per_module_is_small_and_counted").is_some() {
        return;
    }
    const N: usize = 12_000;
    let template = crate::template_object();
    // No handshake: the retired figure is what waits while a pin holds the modules back.
    let jit = Jit::builder().handshake_after(None).build().unwrap();
    let d = jit.create_dylib("d").unwrap();
    // Warm up the allocator, the entry table and the reclaimer.
    for i in 0..100 {
        let m = d.add_module(Source::object(crate::renamed(&template, 900_000 + i))).unwrap();
        d.remove_module(&m).unwrap();
    }
    assert!(jit.reclaim(std::time::Duration::from_secs(10)));
    let (before, stats_before) = (malloc_in_use(), jit.stats());
    for i in 0..N {
        d.add_module(Source::object(crate::renamed(&template, i))).unwrap();
    }
    // Settled: what the adds retired (replaced unwind tables) is freed first.
    assert!(jit.reclaim(std::time::Duration::from_secs(10)));
    let live = (malloc_in_use() - before) / N;
    let stats = jit.stats();
    let counted = (stats.dylibs[0].metadata_bytes - stats_before.dylibs[0].metadata_bytes) / N;
    // Retire them all while a pin holds reclamation back.
    let handles = d.modules();
    let pin = jit.pin();
    for h in &handles {
        d.remove_module(h).unwrap();
    }
    drop(handles);
    let retired = (malloc_in_use() - before) / N;
    let stalled = jit.stats();
    let counted_retired = (stalled.awaiting_metadata_bytes + stalled.dylibs[0].metadata_bytes) / N;
    drop(pin);
    assert!(jit.reclaim(std::time::Duration::from_secs(30)));
    let after = jit.stats();
    eprintln!(
        "per one-function module: live {live} B (stats count {counted}), retired {retired} B (stats count \
         {counted_retired})"
    );
    // Where it goes: DESIGN.md, "Metadata". It was 1,560 B live and 6,368 B retired; the goals are
    // 512 / 1,024 (measured 471-475 / 747-807 with 12,000 modules; with 4,000, one binary gave 505-522 B
    // live from run to run, so the test failed at random: tables that grow by doubling weigh more per
    // module over fewer of them).
    assert!(live <= 512, "{live} B of malloc per live module");
    assert!(retired <= 1_024, "{retired} B of malloc per retired module");
    // The figures a host sees are close to the truth, and go back to nothing.
    assert!(counted * 10 >= live * 7 && counted <= live, "stats count {counted} B of {live}");
    assert!(
        counted_retired * 10 >= retired * 7 && counted_retired <= retired,
        "{counted_retired} of {retired}"
    );
    assert_eq!(after.awaiting_metadata_bytes, 0);
}
