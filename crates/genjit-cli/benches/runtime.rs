//! What redirection and reclamation cost at run time, each against the alternative, engines alternating
//! inside one measurement loop (see `common`):
//!
//! - `call`: one call of `i64 f(i64)` (an `add`): `direct` jumps to the body's address (what a caller of
//!   an LLJIT or MCJIT symbol does), `entry stub` calls the entry's stub (what JIT code and `&f` use: one
//!   more indirect jump), `call_pinned` is a typed Rust call under a pin the loop holds, `call` pins for
//!   each call (the safe default); `direct` and `call` again with two threads calling at once (time per
//!   call per thread: a pin shares no cache line between threads).
//! - `redefine`: replacing a function's code from a ready object (no compilation): genjit redirects the
//!   entry and retires the old module (`add_module` of the same name); LLJIT removes the old module's
//!   resource tracker and adds the new one (it cannot define a name twice), then looks it up.
//!   `redirect` points an explicit redirectable symbol at another JIT symbol (LLJIT has no C API for it).
//! - `churn`: cycles of the `genjit churn` workload (compile, add, redefine, remove; live 200), genjit
//!   against LLJIT with a resource tracker per module, with no caller threads (pure add/redefine/remove)
//!   and with two callers (three busy threads on two cores: partly a measure of oversubscription).
//!
//! - `parallel`: adds from two threads into two dylibs against one thread, next to LLVM's parse+emit
//!   alone on one and two threads: how much of the hardware's parallelism an add keeps.
//!
//! - `stall`: a call that stays 60 s inside dylib `a` of one JIT (it waits in a host function) while
//!   dylib `b` of the same JIT churns (add + remove of one-function modules), against the same churn in
//!   a JIT with no long call and in a third JIT, alternating in 3 s rounds during the call: throughput,
//!   peak awaiting bytes and reclamation lag p99 per round, and RSS over the minute.
//!
//! - `counters`: what tier 0's counters of calls and back-edges cost (`Dylib::enable_tiering`, a
//!   threshold never reached): a loop at O0 calling a small function through its entry, and a function
//!   spending its time in one tight loop, each against the same IR in a dylib without tiering; and the
//!   same once the counters ran out and were claimed (a policy keeps the functions at tier 0).
//!
//! - `tier_up`: how long from the call that crosses a function's threshold to its entry leading to the
//!   higher tier (the background compile at O2 and the commit), and what a thread calling the function
//!   sees meanwhile: the latency of every call (p50, p99, p99.9, max) in rounds where the function is
//!   tiered up against rounds where it is not, alternating.
//!
//! - `steady_state`: bzip2 1.0.8's library (7 C files compiled to unoptimized IR, as in the tiering demo)
//!   compressing 1 MB of text-like data in memory (`BZ2_bzBuffToBuffCompress`), once genjit's tiered
//!   dylib has tiered up what is hot, against the same IR compiled ahead of time (`opt -O3` + `clang -O3`,
//!   a shared library loaded with `dlopen` into the same process) and genjit all-O3: one process,
//!   alternating compress by compress, so the machine's drift cancels out of the ratios.
//!
//! `cargo bench -p genjit-cli --bench runtime [call|redefine|churn|parallel|stall|counters|tier_up|steady_state]`

#![allow(missing_docs)]

mod common;

use common::{contest, contest_timed, Contestant};
use genjit::inkwell::context::Context;
use genjit::inkwell::memory_buffer::MemoryBuffer;
use genjit::inkwell::targets::FileType;
use genjit::{Jit, OptLevel, RedirectTarget, Source};
use genjit_cli::churn::{churn, ChurnOptions, Engine};
use genjit_cli::peer::LlJit;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn object(name: &str, addend: i64) -> Vec<u8> {
    let ir = format!("define i64 @{name}(i64 %x) {{\n  %r = add i64 %x, {addend}\n  ret i64 %r\n}}\n");
    let ctx = Context::create();
    let buffer = MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), name);
    let module = ctx.create_module_from_ir(buffer).unwrap();
    let tm = genjit::host_target_machine(OptLevel::O2).unwrap();
    tm.write_to_memory_buffer(&module, FileType::Object).unwrap().as_slice().to_vec()
}

fn calls() {
    let jit = Jit::builder().opt_level(OptLevel::O2).build().unwrap();
    let dylib = jit.create_dylib("calls").unwrap();
    dylib
        .add_module(Source::ir_text("define i64 @f(i64 %x) {\n  %r = add i64 %x, 1\n  ret i64 %r\n}\n"))
        .unwrap();
    let f = dylib.lookup::<fn(i64) -> i64>("f").unwrap();
    let held = jit.pin();
    let body = f.current_address(&held).unwrap();
    // SAFETY: both addresses are `i64 f(i64)` (checked by the typed lookup above); the body stays mapped
    // while `held` lives (the whole function: nothing redefines `f`) and the stub while the dylib defines it.
    let direct = unsafe { std::mem::transmute::<usize, extern "C" fn(i64) -> i64>(body) };
    // SAFETY: as above.
    let stub = unsafe { std::mem::transmute::<usize, extern "C" fn(i64) -> i64>(f.addr()) };
    const N: usize = 1_000_000;
    let mut contestants = [
        Contestant::new("direct", || {
            for _ in 0..N {
                black_box(black_box(direct)(black_box(41)));
            }
        }),
        Contestant::new("entry stub", || {
            for _ in 0..N {
                black_box(black_box(stub)(black_box(41)));
            }
        }),
        Contestant::new("call_pinned", || {
            let pinned = f.pin().unwrap();
            for _ in 0..N {
                black_box(black_box(&f).call_pinned(&pinned, black_box(41)));
            }
        }),
        Contestant::new("call", || {
            for _ in 0..N {
                black_box(black_box(&f).call(black_box(41)));
            }
        }),
        Contestant::new("direct, 2 threads", || {
            let run = || {
                for _ in 0..N {
                    black_box(black_box(direct)(black_box(41)));
                }
            };
            std::thread::scope(|s| {
                s.spawn(run);
                run();
            })
        }),
        Contestant::new("call, 2 threads", || {
            let run = || {
                for _ in 0..N {
                    black_box(black_box(&f).call(black_box(41)));
                }
            };
            std::thread::scope(|s| {
                s.spawn(run);
                run();
            })
        }),
    ];
    let results = contest("call i64 f(i64), per call", 40, 1, &mut contestants);
    // Per call, not per batch of N.
    let results = common::Results {
        samples: results.samples.iter().map(|s| s.iter().map(|t| t / N as f64).collect()).collect(),
        ..results
    };
    results.print(&["direct"]);
    let over = results.median("call") - results.median("direct");
    println!("  call over direct: {:.2} ns", over * 1e9);
    let over2 = results.median("call, 2 threads") - results.median("direct, 2 threads");
    println!("  call over direct, two threads calling: {:.2} ns", over2 * 1e9);
    println!("  fenceless pins (membarrier): {}", jit.stats().fenceless_pins);
    drop(held);
}

fn redefine() {
    let versions = [object("g", 1), object("g", 2)];
    let jit = Jit::new().unwrap();
    let dylib = jit.create_dylib("redefine").unwrap();
    dylib.add_module(Source::object(versions[0].clone())).unwrap();
    let lljit = Arc::new(LlJit::new(OptLevel::O0).unwrap());
    let mut current = Some(lljit.add_object("g", &versions[0]).unwrap());
    let targets = jit.create_dylib("targets").unwrap();
    targets.add_module(Source::object(object("a", 1))).unwrap();
    targets.add_module(Source::object(object("b", 2))).unwrap();
    dylib.create_redirectable("r", RedirectTarget::symbol(&targets, "a")).unwrap();
    let (mut i, mut j, mut k) = (0, 0, 0);
    let mut contestants = [
        Contestant::new("genjit", || {
            i += 1;
            dylib.add_module(Source::object(versions[i % 2].clone())).unwrap();
            black_box(dylib.lookup_address("g").unwrap());
        }),
        Contestant::new("lljit", || {
            j += 1;
            drop(current.take());
            let module = lljit.add_object("g", &versions[j % 2]).unwrap();
            black_box(module.lookup("g").unwrap());
            current = Some(module);
        }),
        Contestant::new("genjit redirect", || {
            k += 1;
            dylib.redirect("r", RedirectTarget::symbol(&targets, ["a", "b"][k % 2])).unwrap();
        }),
    ];
    contest(
        "redefine a function from a ready object (redirect: an explicit redirectable)",
        30,
        200,
        &mut contestants,
    )
    .print(&["lljit"]);
}

fn churn_rate(engine: Engine, threads: usize) -> Duration {
    let options = ChurnOptions {
        engine,
        threads,
        live: 200,
        duration: Duration::from_secs(3600),
        max_cycles: Some(1000),
        ..ChurnOptions::default()
    };
    let report = churn(&options).unwrap();
    assert_eq!(report.cycles, 1000);
    Duration::from_secs_f64(report.seconds / report.cycles as f64)
}

fn churn_cycles() {
    for threads in [0, 2] {
        let mut contestants: [common::Timed<'static>; 2] = [
            ("genjit", Box::new(move || churn_rate(Engine::Genjit, threads))),
            ("lljit", Box::new(move || churn_rate(Engine::Lljit, threads))),
        ];
        let title = format!("churn cycle, live 200, {threads} caller threads (1,000 cycles per sample)");
        contest_timed(&title, 8, &mut contestants).print(&["lljit"]);
    }
}

/// `k` adds and removals of small modules into `dylib`, as a query engine thread would do.
fn add_remove(dylib: &genjit::Dylib, k: usize, salt: usize) {
    for i in 0..k {
        let ir =
            format!("define i64 @p{salt}_{i}(i64 %x) {{\n  %r = mul i64 %x, {}\n  ret i64 %r\n}}\n", i + 3);
        let m = dylib.add_module(Source::ir_text(ir)).unwrap();
        dylib.remove_module(&m).unwrap();
    }
}

/// The same work with LLVM alone: parse and emit an object (the floor of an add).
fn parse_emit(k: usize, salt: usize) {
    let tm = genjit::host_target_machine(OptLevel::O0).unwrap();
    for i in 0..k {
        let ir =
            format!("define i64 @p{salt}_{i}(i64 %x) {{\n  %r = mul i64 %x, {}\n  ret i64 %r\n}}\n", i + 3);
        let ctx = Context::create();
        let m = ctx
            .create_module_from_ir(MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "m"))
            .unwrap();
        black_box(tm.write_to_memory_buffer(&m, FileType::Object).unwrap().get_size());
    }
}

/// Adds from two threads into two dylibs against one thread, and LLVM's parse+emit alone likewise: the
/// scaling is 2 x (one thread's time for k) / (two threads' time for k each).
fn parallel_adds() {
    const K: usize = 40;
    let jit = Jit::new().unwrap();
    let (a, b) = (jit.create_dylib("a").unwrap(), jit.create_dylib("b").unwrap());
    let two = |f: &(dyn Fn(usize) + Sync)| {
        std::thread::scope(|s| {
            s.spawn(|| f(1));
            f(2);
        })
    };
    let mut contestants = [
        Contestant::new("genjit, 1 thread", || add_remove(&a, K, 0)),
        Contestant::new("genjit, 2 threads", || two(&|t| add_remove(if t == 1 { &a } else { &b }, K, t))),
        Contestant::new("parse+emit, 1 thread", || parse_emit(K, 0)),
        Contestant::new("parse+emit, 2 threads", || two(&|t| parse_emit(K, t))),
    ];
    let r = contest("40 small modules per thread, time per round", 15, 1, &mut contestants);
    r.print(&[]);
    let scaling = |one: &str, two: &str| 2.0 * r.median(one) / r.median(two);
    println!(
        "  scaling with 2 threads: genjit {:.2}x, parse+emit {:.2}x",
        scaling("genjit, 1 thread", "genjit, 2 threads"),
        scaling("parse+emit, 1 thread", "parse+emit, 2 threads")
    );
}

static HOLDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn hold() {
    use std::sync::atomic::Ordering::SeqCst;
    HOLDING.store(true, SeqCst);
    while !RELEASE.load(SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4
}

/// One round of churn in `d` for `time`: (cycles per second, peak awaiting bytes, lag p99).
fn churn_round(jit: &Jit, d: &genjit::Dylib, objects: &[Vec<u8>], time: Duration) -> (f64, usize, Duration) {
    let start = std::time::Instant::now();
    let (mut cycles, mut peak) = (0usize, 0usize);
    while start.elapsed() < time {
        let m = d.add_module(Source::object(objects[cycles % objects.len()].clone())).unwrap();
        d.remove_module(&m).unwrap();
        cycles += 1;
        if cycles % 50 == 0 {
            peak = peak.max(jit.stats().awaiting_bytes);
        }
    }
    let lag = jit.stats().reclamation_lag.map_or(Duration::ZERO, |l| l.p99);
    (cycles as f64 / start.elapsed().as_secs_f64(), peak, lag)
}

fn stall() {
    use std::sync::atomic::Ordering::SeqCst;
    const CALL: Duration = Duration::from_secs(60);
    const ROUND: Duration = Duration::from_secs(3);
    let objects: Vec<Vec<u8>> = (0..64).map(|i| object(&format!("f{i}"), i)).collect();
    let quiet = Jit::new().unwrap();
    let qb = quiet.create_dylib("b").unwrap();
    let jit = Jit::new().unwrap();
    jit.define_host("hold", hold as extern "C" fn()).unwrap();
    let a = jit.create_dylib("a").unwrap();
    a.add_module(Source::ir_text(
        "declare void @hold()\ndefine void @long_call() {\n  call void @hold()\n  ret void\n}\n",
    ))
    .unwrap();
    let b = jit.create_dylib("b").unwrap();
    let other = Jit::new().unwrap();
    let c = other.create_dylib("c").unwrap();
    let f = a.lookup::<fn()>("long_call").unwrap();
    let start = std::time::Instant::now();
    let caller = std::thread::Builder::new().name("long-caller".into()).spawn(move || f.call()).unwrap();
    while !HOLDING.load(SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let names = ["no long call (another JIT)", "dylib b beside the long call", "a third JIT"];
    let mut rounds: [Vec<(f64, usize, Duration)>; 3] = Default::default();
    let trimmed_rss = || {
        // SAFETY: malloc_trim only gives free memory back.
        unsafe { libc::malloc_trim(0) };
        rss_kib()
    };
    let mut rss = vec![trimmed_rss()];
    let mut round = 0;
    while start.elapsed() + 3 * ROUND < CALL {
        for k in 0..3 {
            let i = (k + round) % 3;
            let (j, d) = [(&quiet, &qb), (&jit, &b), (&other, &c)][i];
            rounds[i].push(churn_round(j, d, &objects, ROUND));
        }
        rss.push(trimmed_rss());
        round += 1;
    }
    std::thread::sleep(CALL.saturating_sub(start.elapsed()));
    let held = jit.stats();
    RELEASE.store(true, SeqCst);
    caller.join().unwrap();
    println!(
        "\nchurn during a {:?} call in dylib a ({round} rounds of {ROUND:?}, engines interleaved)",
        start.elapsed()
    );
    for (name, r) in names.iter().zip(&rounds) {
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let rate = median(r.iter().map(|x| x.0).collect());
        let peak = r.iter().map(|x| x.1).max().unwrap_or(0);
        let lag = median(r.iter().map(|x| x.2.as_secs_f64() * 1e3).collect());
        let worst = r.iter().map(|x| x.2).max().unwrap_or_default();
        println!("  {name:30} {rate:7.0} cycles/s  peak awaiting {:5} KiB  lag p99 median {lag:.2} ms (worst round {worst:?})", peak / 1024);
    }
    println!("  RSS after each round (KiB, malloc_trim'd): {rss:?}");
    println!(
        "  at the end of the call it held {} retirements, {} bytes, after {} handshakes",
        held.stalls.iter().map(|s| s.retirements).sum::<usize>(),
        held.stalls.iter().map(|s| s.bytes).sum::<usize>(),
        held.handshakes
    );
}

fn counters() {
    const IR: &str = "define i64 @leaf(i64 %x) {\n  %y = mul i64 %x, 3\n  %z = add i64 %y, 1\n  ret i64 %z\n}\n\
        define i64 @calls(i64 %n) {\nentry:\n  br label %loop\nloop:\n  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]\n  \
        %acc = phi i64 [ 0, %entry ], [ %acc1, %loop ]\n  %v = call i64 @leaf(i64 %i)\n  %acc1 = add i64 %acc, %v\n  \
        %i1 = add i64 %i, 1\n  %done = icmp eq i64 %i1, %n\n  br i1 %done, label %exit, label %loop\nexit:\n  ret i64 %acc1\n}\n\
        define i64 @spins(i64 %n) {\nentry:\n  br label %loop\nloop:\n  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]\n  \
        %acc = phi i64 [ 0, %entry ], [ %acc1, %loop ]\n  %m = mul i64 %i, 7\n  %acc1 = xor i64 %acc, %m\n  \
        %i1 = add i64 %i, 1\n  %done = icmp eq i64 %i1, %n\n  br i1 %done, label %exit, label %loop\nexit:\n  ret i64 %acc1\n}\n";
    let jit = Jit::new().unwrap();
    let plain = jit.create_dylib("plain").unwrap();
    plain.add_module(Source::ir_text(IR)).unwrap();
    // Tier 0 without its clean-up, so the difference is the counters' (the clean-up finds nothing to
    // do in these functions anyway: they have no stack slots).
    let counted = jit.create_dylib("counted").unwrap();
    counted.enable_tiering(genjit::Tiering::new().threshold(Some(u64::MAX)).cleanup(false)).unwrap();
    counted.add_module(Source::ir_text(IR)).unwrap();
    // Counters that ran out and were claimed, the functions kept at tier 0 by the policy: what tier 0
    // costs between a claim and the higher tier's arrival.
    let claimed = jit.create_dylib("claimed").unwrap();
    let stay = |_: &genjit::HotFunction<'_>| genjit::Decision::Stay;
    claimed.enable_tiering(genjit::Tiering::new().threshold(Some(1)).policy(stay).cleanup(false)).unwrap();
    claimed.add_module(Source::ir_text(IR)).unwrap();
    const N: i64 = 1_000_000;
    let f = |d: &genjit::Dylib, name: &str| d.lookup::<fn(i64) -> i64>(name).unwrap();
    let (pc, cc, ps, cs) =
        (f(&plain, "calls"), f(&counted, "calls"), f(&plain, "spins"), f(&counted, "spins"));
    let (kc, ks) = (f(&claimed, "calls"), f(&claimed, "spins"));
    assert_eq!(pc.call(N), cc.call(N));
    assert_eq!((kc.call(N), ks.call(N)), (pc.call(N), ps.call(N)));
    let mut contestants = [
        Contestant::new("calls, no counters", || {
            black_box(pc.call(black_box(N)));
        }),
        Contestant::new("calls, counted", || {
            black_box(cc.call(black_box(N)));
        }),
        Contestant::new("loop, no counters", || {
            black_box(ps.call(black_box(N)));
        }),
        Contestant::new("loop, counted", || {
            black_box(cs.call(black_box(N)));
        }),
        Contestant::new("calls, claimed", || {
            black_box(kc.call(black_box(N)));
        }),
        Contestant::new("loop, claimed", || {
            black_box(ks.call(black_box(N)));
        }),
    ];
    let results = contest("tier-0 (O0) call counters, per 1M iterations", 30, 1, &mut contestants);
    results.print(&[]);
    for (counted, plain) in [
        ("calls, counted", "calls, no counters"),
        ("loop, counted", "loop, no counters"),
        ("calls, claimed", "calls, no counters"),
        ("loop, claimed", "loop, no counters"),
    ] {
        let (r, lo, hi) = results.ratio(counted, plain);
        println!("  {counted} / {plain}: {r:.3}x [{lo:.3} .. {hi:.3}]");
    }
    let per = |name: &str| results.median(name) / N as f64 * 1e9;
    println!(
        "  per call (and back-edge) of the call loop: {:.2} ns counted, {:.2} ns not; per iteration of the spinning loop: {:.2} vs {:.2} ns",
        per("calls, counted"),
        per("calls, no counters"),
        per("loop, counted"),
        per("loop, no counters")
    );
    assert!(counted.wait_for_tier_ups(Duration::from_secs(1)));
    assert_eq!(
        jit.stats().dylibs.iter().map(|d| d.tiering.tier_ups).sum::<u64>(),
        0,
        "the threshold is never reached"
    );
}

/// A function with some work in it (so its higher tier differs) and no loop: `(x * 3) ^ (x >> 2)` and so on.
fn work_ir(name: &str, salt: u64) -> String {
    format!(
        "define i64 @{name}(i64 %x) {{\n  %a = mul i64 %x, 3\n  %b = lshr i64 %x, 2\n  %c = xor i64 %a, %b\n  \
         %d = add i64 %c, {salt}\n  %e = mul i64 %d, %d\n  %f = xor i64 %e, %a\n  ret i64 %f\n}}\n"
    )
}

fn tier_up() {
    // 1. Threshold to redirect: 30 functions, each called until its 1,000th call crosses the threshold;
    //    then the entry is polled until it leads elsewhere.
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("tier").unwrap();
    let tiering = genjit::Tiering::new().calls(Some(1_000)).back_edges(None).delay(Duration::ZERO);
    d.enable_tiering(tiering).unwrap();
    let mut waits = Vec::new();
    for i in 0..30 {
        let name = format!("f{i}");
        d.add_module(Source::ir_text(work_ir(&name, i))).unwrap();
        let f = d.lookup::<fn(i64) -> i64>(&name).unwrap();
        for x in 0..999 {
            black_box(f.call(x));
        }
        let tier0 = f.current_address(&d.pin()).unwrap();
        let start = std::time::Instant::now();
        black_box(f.call(999));
        // The call that ended the count pointed the entry past the counting wrapper, at the tier-0 body.
        let body = f.current_address(&d.pin()).unwrap();
        while [tier0, body].contains(&f.current_address(&d.pin()).unwrap()) {
            std::hint::spin_loop();
        }
        waits.push(start.elapsed());
    }
    waits.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "tier_up: threshold to redirect (O2, one small function, 30 functions): median {:.2} ms, min {:.2}, max {:.2}",
        ms(waits[waits.len() / 2]),
        ms(waits[0]),
        ms(waits[waits.len() - 1])
    );
    // 2. Call latency while the function a thread calls is tiered up, against rounds where it is not.
    //    Each round redefines `hot` (tier 0) and lets the caller settle 20 ms; in a tier-up round the
    //    main thread then asks for its higher tier; the caller's calls of the next 50 ms are counted.
    let d = jit.create_dylib("latency").unwrap();
    d.enable_tiering(genjit::Tiering::new().threshold(None).delay(Duration::ZERO)).unwrap();
    d.add_module(Source::ir_text(work_ir("hot", 0))).unwrap();
    let hot = d.lookup::<fn(i64) -> i64>("hot").unwrap();
    let recording = Arc::new(std::sync::atomic::AtomicU8::new(0)); // 0 idle, 1 quiet, 2 tier-up, 3 stop
    let caller = {
        let (hot, recording) = (hot.clone(), recording.clone());
        std::thread::spawn(move || {
            let mut samples: [Vec<u32>; 3] = Default::default();
            let mut x = 0i64;
            loop {
                let phase = recording.load(std::sync::atomic::Ordering::Relaxed);
                if phase == 3 {
                    return samples;
                }
                let start = std::time::Instant::now();
                x = black_box(hot.call(x));
                let took = start.elapsed().as_nanos().min(u32::MAX as u128) as u32;
                if phase != 0 {
                    samples[phase as usize].push(took);
                }
            }
        })
    };
    for round in 0..40u64 {
        recording.store(0, std::sync::atomic::Ordering::Relaxed);
        d.add_module(Source::ir_text(work_ir("hot", round + 1))).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let phase = 1 + (round % 2) as u8;
        recording.store(phase, std::sync::atomic::Ordering::Relaxed);
        if phase == 2 {
            d.reoptimize("hot").unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(d.wait_for_tier_ups(Duration::from_secs(10)));
    }
    recording.store(3, std::sync::atomic::Ordering::Relaxed);
    let mut samples = caller.join().unwrap();
    for (phase, name) in [(1, "no tier-up"), (2, "tier-up in flight")] {
        let s = &mut samples[phase];
        s.sort_unstable();
        let q = |p: f64| s[((s.len() - 1) as f64 * p) as usize];
        println!(
            "tier_up: call latency, {name}: {} calls, p50 {} ns, p99 {} ns, p99.9 {} ns, max {:.1} us",
            s.len(),
            q(0.5),
            q(0.99),
            q(0.999),
            f64::from(q(1.0)) / 1e3
        );
    }
    let stats = jit.stats().dylibs.into_iter().find(|s| s.name == "latency").unwrap().tiering;
    assert_eq!(stats.tier_ups, 20, "every tier-up round moved `hot` up");
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_ref().is_none_or(|f| name.contains(f.as_str()));
    if wanted("call") {
        calls();
    }
    if wanted("redefine") {
        redefine();
    }
    if wanted("churn") {
        churn_cycles();
    }
    if wanted("parallel") {
        parallel_adds();
    }
    if wanted("stall") {
        stall();
    }
    if wanted("tier_up") {
        tier_up();
    }
    if wanted("counters") {
        counters();
    }
    if wanted("steady_state") {
        steady_state();
    }
}

/// Runs a command of the bench's set-up, failing the bench with its output if it fails.
fn run(cmd: &mut std::process::Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Text-like data: lines of words from vocabularies of three sizes (fixed seed; like the demo's).
fn text(bytes: usize) -> Vec<u8> {
    let mut seed = 7u64;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let words: Vec<String> =
        (0..5000).map(|_| (0..2 + next(8)).map(|_| (b'a' + next(26) as u8) as char).collect()).collect();
    let mut out = Vec::with_capacity(bytes + 200);
    while out.len() < bytes {
        let vocabulary = [50, 500, 5000][next(3) as usize];
        for k in 0..3 + next(13) {
            if k > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(words[next(vocabulary) as usize].as_bytes());
        }
        out.push(b'\n');
    }
    out
}

fn steady_state() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let work = root.join("target/steady-state");
    let ir = work.join("ir");
    let libs = ["blocksort", "huffman", "crctable", "randtable", "compress", "decompress", "bzlib"];
    run(std::process::Command::new("bash")
        .arg(root.join("crates/genjit-cli/tests/programs/bzip2/build.sh"))
        .arg(&ir)
        .stdout(std::process::Stdio::null()));
    let bcs: Vec<_> = libs.iter().map(|l| ir.join(format!("{l}.bc"))).collect();
    let (linked, optimized, aot) =
        (work.join("libs.bc"), work.join("libs.O3.bc"), work.join("libbz2-aot.so"));
    run(std::process::Command::new("llvm-link-19").args(&bcs).arg("-o").arg(&linked));
    run(std::process::Command::new("opt-19").arg("-O3").arg(&linked).arg("-o").arg(&optimized));
    run(std::process::Command::new("clang-19")
        .args(["-O3", "-shared", "-fPIC"])
        .arg(&optimized)
        .arg("-o")
        .arg(&aot));
    // The library's one-call API has seven parameters; a wrapper fixes the last three (block size 900k,
    // quiet, default work factor) so a typed genjit lookup can call it.
    const WRAPPER: &str = "declare i32 @BZ2_bzBuffToBuffCompress(ptr, ptr, ptr, i32, i32, i32, i32)\n\
        define i32 @compress(ptr %dest, ptr %dest_len, ptr %source, i32 %len) {\n  \
        %r = call i32 @BZ2_bzBuffToBuffCompress(ptr %dest, ptr %dest_len, ptr %source, i32 %len, i32 9, i32 0, i32 0)\n  \
        ret i32 %r\n}\n";
    type Compress = fn(*mut u8, *mut u32, *const u8, i32) -> i32;
    // bzip2 calls libc (`fprintf`, `stderr`): the process's symbols resolve.
    let jit = Jit::builder().process_symbols(true).build().unwrap();
    let tiered = jit.create_dylib("tiered").unwrap();
    tiered.enable_tiering(genjit::Tiering::new().level(OptLevel::O3)).unwrap();
    let all_o3 = Jit::builder().process_symbols(true).opt_level(OptLevel::O3).build().unwrap();
    let o3 = all_o3.create_dylib("o3").unwrap();
    for d in [&tiered, &o3] {
        let mut sources: Vec<Source> =
            bcs.iter().map(|bc| Source::bitcode(std::fs::read(bc).unwrap())).collect();
        sources.push(Source::ir_text(WRAPPER));
        d.add_modules(sources).unwrap();
    }
    let (t, o) = (tiered.lookup::<Compress>("compress").unwrap(), o3.lookup::<Compress>("compress").unwrap());
    let path = std::ffi::CString::new(aot.to_str().unwrap()).unwrap();
    // SAFETY: the library was just built from bzip2's own C code; its symbol has the C signature below.
    let aot_compress: extern "C" fn(*mut u8, *mut u32, *const u8, u32, i32, i32, i32) -> i32 = unsafe {
        let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        assert!(!handle.is_null(), "dlopen {}", aot.display());
        let symbol = libc::dlsym(handle, c"BZ2_bzBuffToBuffCompress".as_ptr());
        assert!(!symbol.is_null());
        std::mem::transmute(symbol)
    };
    let data = text(1_000_000);
    let capacity = data.len() + data.len() / 100 + 600;
    let compress_with = |engine: &dyn Fn(*mut u8, *mut u32) -> i32| {
        let mut out = vec![0u8; capacity];
        let mut len = capacity as u32;
        assert_eq!(engine(out.as_mut_ptr(), &mut len), 0, "BZ_OK");
        out.truncate(len as usize);
        out
    };
    let jit_engine = |f: &genjit::Func<Compress>| {
        let f = f.clone();
        let data = &data;
        move |out: *mut u8, len: *mut u32| f.call(out, len, data.as_ptr(), data.len() as i32)
    };
    let (tiered_run, o3_run) = (jit_engine(&t), jit_engine(&o));
    let aot_run =
        |out: *mut u8, len: *mut u32| aot_compress(out, len, data.as_ptr(), data.len() as u32, 9, 0, 0);
    // Tier up what is hot (two waves: callees get hot once their callers run faster), then check that
    // the three engines compress alike.
    for _ in 0..3 {
        for _ in 0..3 {
            compress_with(&tiered_run);
        }
        assert!(tiered.wait_for_tier_ups(Duration::from_secs(300)));
    }
    let expected = compress_with(&aot_run);
    assert_eq!(compress_with(&tiered_run), expected, "tiered output differs from ahead-of-time code's");
    assert_eq!(compress_with(&o3_run), expected, "all-O3 output differs from ahead-of-time code's");
    let ups = jit.stats().dylibs.iter().map(|d| d.tiering.tier_ups).sum::<u64>();
    let mut contestants = [
        Contestant::new("ahead of time", || {
            black_box(compress_with(&aot_run));
        }),
        Contestant::new("genjit tiered", || {
            black_box(compress_with(&tiered_run));
        }),
        Contestant::new("genjit all-O3", || {
            black_box(compress_with(&o3_run));
        }),
    ];
    let results = contest("steady state: bzip2 compressing 1 MB in memory", 40, 1, &mut contestants);
    results.print(&["ahead of time"]);
    println!("  the tiered dylib had tiered up {ups} functions");
    for engine in ["genjit tiered", "genjit all-O3"] {
        let (r, lo, hi) = results.ratio("ahead of time", engine);
        println!("  {engine}: {r:.3}x the speed of ahead-of-time code [{lo:.3} .. {hi:.3}]");
    }
}
