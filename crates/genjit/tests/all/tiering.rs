//! Tiering (first steps): `reoptimize` moves one function to the higher tier on a background thread,
//! sharing its module's state; a user's change always wins; a module's higher tiers go with it.

use genjit::{Error, Jit, Source, Tiering};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// State a higher tier must not duplicate: a private string, an internal counter, a static-local guard
/// whose initializer has a side effect, an internal helper, a constructor.
const SOURCE: &str = r#"
@.str = private unnamed_addr constant [4 x i8] c"abc\00"
@counter = internal global i64 0
@guard = internal global i1 false
@inits = global i64 0
@ctor_runs = global i64 0
@llvm.global_ctors = appending global [1 x { i32, ptr, ptr }] [{ i32, ptr, ptr } { i32 65535, ptr @ctor, ptr null }]

define internal void @ctor() {
  %c = load i64, ptr @ctor_runs
  %d = add i64 %c, 1
  store i64 %d, ptr @ctor_runs
  ret void
}

define internal i64 @helper(i64 %x) {
  %y = mul i64 %x, 3
  ret i64 %y
}

define i64 @f(i64 %x) {
entry:
  %g = load i1, ptr @guard
  br i1 %g, label %body, label %init
init:
  store i1 true, ptr @guard
  %i = load i64, ptr @inits
  %i1 = add i64 %i, 1
  store i64 %i1, ptr @inits
  br label %body
body:
  %c = load i64, ptr @counter
  %c1 = add i64 %c, 1
  store i64 %c1, ptr @counter
  %h = call i64 @helper(i64 %x)
  %r = add i64 %h, %c1
  ret i64 %r
}

define i64 @str_addr() {
  ret i64 ptrtoint (ptr @.str to i64)
}
"#;

fn global(d: &genjit::Dylib, name: &str) -> i64 {
    // SAFETY: the module defines `name` as an i64 global.
    unsafe { *(d.lookup_address(name).unwrap() as *const i64) }
}

#[test]
fn reoptimize_moves_a_function_up_without_touching_its_state() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("tiers").unwrap();
    // No counters: only `reoptimize` moves anything (the concurrent caller would make `helper` hot).
    d.enable_tiering(Tiering::new().threshold(None)).unwrap();
    let module = d.add_module(Source::ir_text(SOURCE)).unwrap();
    let f = d.lookup::<fn(i64) -> i64>("f").unwrap();
    assert_eq!((f.call(1), f.call(1)), (4, 5));
    let tier0 = f.current_address(&d.pin()).unwrap();
    let str_addr = d.lookup::<fn() -> i64>("str_addr").unwrap().call();
    // A caller keeps calling while the tier-up compiles and redirects: it never waits, never fails.
    let stop = Arc::new(AtomicBool::new(false));
    let caller = {
        let (f, stop) = (f.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut calls = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::hint::black_box(f.call(0));
                calls += 1;
            }
            calls
        })
    };
    d.reoptimize("f").unwrap();
    d.reoptimize("f").unwrap(); // queued once
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    stop.store(true, Ordering::Relaxed);
    let calls = caller.join().unwrap();
    let tier1 = f.current_address(&d.pin()).unwrap();
    assert_ne!(tier1, tier0, "the entry points at the higher tier");
    // The counter went on through both tiers: 2 calls before, `calls` during, this one.
    assert_eq!(f.call(1), 3 + (2 + calls as i64 + 1));
    assert_eq!((global(&d, "inits"), global(&d, "ctor_runs")), (1, 1), "no initializer ran twice");
    assert_eq!(d.lookup::<fn() -> i64>("str_addr").unwrap().call(), str_addr);
    let stats = jit.stats().dylibs.into_iter().find(|s| s.name == "tiers").unwrap();
    assert_eq!(stats.tiering.tier_ups, 1);
    assert!(stats.tiering.retained_ir_bytes > 0);
    // Already at the higher tier: nothing more to do.
    d.reoptimize("f").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(f.current_address(&d.pin()).unwrap(), tier1);
    // Removing the module removes its higher tier with it, and what it kept for tiering.
    d.remove_module(&module).unwrap();
    assert!(f.is_removed());
    assert!(d.modules().is_empty());
    let stats = jit.stats().dylibs.into_iter().find(|s| s.name == "tiers").unwrap();
    assert_eq!(stats.tiering.retained_ir_bytes, 0);
}

#[test]
fn a_redefinition_wins_over_a_tier_up_in_flight() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("race").unwrap();
    d.enable_tiering(Tiering::new()).unwrap();
    for round in 0..20 {
        d.add_module(Source::ir_text(format!("define i64 @g() {{\n  ret i64 {round}\n}}\n"))).unwrap();
        d.reoptimize("g").unwrap();
        // The user's redefinition, racing the tier-up of the previous version.
        let user = 1_000 + round;
        d.add_module(Source::ir_text(format!("define i64 @g() {{\n  ret i64 {user}\n}}\n"))).unwrap();
        assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
        assert_eq!(d.lookup::<fn() -> i64>("g").unwrap().call(), user, "round {round}");
    }
}

#[test]
fn tiering_refusals_are_typed() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("plain").unwrap();
    d.add_module(Source::ir_text("define i64 @h() {\n  ret i64 1\n}\n")).unwrap();
    assert!(matches!(d.reoptimize("h"), Err(Error::Tiering { .. })), "tiering is off");
    // A pipeline LLVM cannot parse is refused when tiering is enabled (not by every tier-up, on a
    // background thread), and leaves tiering as it was: off.
    let err = d.enable_tiering(Tiering::new().passes("function(sroa),no-such-pass")).unwrap_err();
    assert!(matches!(&err, Error::Tiering { reason, .. } if reason.contains("no-such-pass")), "{err}");
    let err = d.reoptimize("h").unwrap_err();
    assert!(matches!(&err, Error::Tiering { reason, .. } if reason.contains("not enabled")), "{err}");
    d.enable_tiering(Tiering::new()).unwrap();
    let err = d.reoptimize("h").unwrap_err();
    assert!(
        matches!(&err, Error::Tiering { reason, .. } if reason.contains("not defined by a tiered module")),
        "{err}"
    );
    assert!(matches!(d.reoptimize("nope"), Err(Error::SymbolNotFound { .. })));
    // A thread-local: the higher tier reaches the same per-thread copy.
    d.add_module(Source::ir_text(
        "@t = thread_local global i64 5\ndefine i64 @k() {\n  %v = load i64, ptr @t\n  %w = add i64 %v, 1\n  \
         store i64 %w, ptr @t\n  ret i64 %v\n}\n",
    ))
    .unwrap();
    let k = d.lookup::<fn() -> i64>("k").unwrap();
    assert_eq!(k.call(), 5);
    d.reoptimize("k").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(jit.stats().dylibs[0].tiering.tier_ups, 1);
    assert_eq!(k.call(), 6);
    assert_eq!(std::thread::spawn(move || k.call()).join().unwrap(), 5, "another thread has its own copy");
}

/// Caps the address space at 1 MiB more than the process has now (a thread's 2 MiB stack cannot be
/// mapped), runs `f`, and lifts the cap again.
fn without_room_for_a_thread<R>(f: impl FnOnce() -> R) -> R {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain system calls on valid structs; the soft limit stays at most the hard one.
    unsafe { assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut old), 0) };
    let capped =
        libc::rlimit { rlim_cur: (address_space() + (1 << 20)).min(old.rlim_max), rlim_max: old.rlim_max };
    // SAFETY: as above.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &capped), 0) };
    let result = f();
    // SAFETY: as above: the soft limit back to what it was.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &old), 0) };
    result
}

/// The first JIT of a process starts its reclaimer thread: when none can be started, `Jit::new` is a
/// typed error (no panic), and the next JIT tries again. In a child: the first JIT of its process.
#[test]
fn a_jit_without_room_for_its_reclaimer_thread_is_an_error_and_the_next_one_works() {
    if crate::in_child(
        "tiering::a_jit_without_room_for_its_reclaimer_thread_is_an_error_and_the_next_one_works",
    )
    .is_some()
    {
        return;
    }
    let err = without_room_for_a_thread(Jit::new).unwrap_err();
    assert!(matches!(&err, Error::Thread { what, .. } if what == "the reclaimer thread"), "{err}");
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("t").unwrap();
    d.add_module(Source::ir_text("define i64 @f() {\n  ret i64 7\n}\n")).unwrap();
    assert_eq!(d.lookup::<fn() -> i64>("f").unwrap().call(), 7);
}

/// The process's address space in bytes (`VmSize`).
fn address_space() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// A tier-up that finds no thread to run it (none can be started: here the address space is capped
/// below a thread's stack) is a typed error, nothing stays queued, and the JIT tiers up once threads can
/// be started again; no panic (the same code runs in the counters' hooks, under JIT code, where a panic
/// would abort the process). In a child: the cap is process-wide.
#[test]
fn a_tier_up_without_a_thread_to_run_it_is_an_error_and_queues_nothing() {
    if crate::in_child("tiering::a_tier_up_without_a_thread_to_run_it_is_an_error_and_queues_nothing")
        .is_some()
    {
        return;
    }
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("t").unwrap();
    d.enable_tiering(Tiering::new().calls(None).back_edges(None)).unwrap();
    d.add_module(Source::ir_text("define i64 @f(i64 %x) {\n  %y = mul i64 %x, 7\n  ret i64 %y\n}\n"))
        .unwrap();
    let f = d.lookup::<fn(i64) -> i64>("f").unwrap();
    assert_eq!(f.call(6), 42);
    let result = without_room_for_a_thread(|| d.reoptimize("f"));
    let err = result.unwrap_err();
    assert!(matches!(&err, Error::Thread { what, .. } if what == "a tier-up thread"), "{err}");
    let status = d.tier_status("f").unwrap();
    assert!(!status.queued && status.tier == 0, "{status:?}");
    assert_eq!(f.call(6), 42);
    // With threads to be had again, the same request goes through.
    d.reoptimize("f").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("f").unwrap().tier, 1);
    assert_eq!(f.call(6), 42);
}

#[test]
fn a_function_called_often_enough_tiers_up_by_itself() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("counted").unwrap();
    d.enable_tiering(Tiering::new().threshold(Some(50))).unwrap();
    d.add_module(Source::ir_text(SOURCE)).unwrap();
    let f = d.lookup::<fn(i64) -> i64>("f").unwrap();
    let tier0 = f.current_address(&d.pin()).unwrap();
    let tier_ups = || jit.stats().dylibs[0].tiering.tier_ups;
    for _ in 0..49 {
        f.call(0);
    }
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!((tier_ups(), f.current_address(&d.pin()).unwrap()), (0, tier0), "49 calls: still tier 0");
    assert_eq!(f.call(0), 50, "the 50th call");
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(tier_ups(), 2, "`f` and its `static` helper, called as often");
    assert_ne!(f.current_address(&d.pin()).unwrap(), tier0, "tiered up after its 50th call");
    assert_eq!(f.call(0), 51, "state went on");
    // A function never called stays where it is.
    let s = d.lookup::<fn() -> i64>("str_addr").unwrap();
    let before = s.current_address(&d.pin()).unwrap();
    s.call();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!((tier_ups(), s.current_address(&d.pin()).unwrap()), (2, before));
}

#[test]
fn a_function_that_spends_its_time_in_loops_tiers_up_too() {
    // Nested loops with phis on every header: the counters rebuild them; results must not change.
    const LOOPS: &str = "define i64 @spins(i64 %n) {\nentry:\n  br label %outer\nouter:\n  \
        %i = phi i64 [ 0, %entry ], [ %i1, %inner_done ]\n  %acc = phi i64 [ 0, %entry ], [ %acc2, %inner_done ]\n  \
        br label %inner\ninner:\n  %j = phi i64 [ 0, %outer ], [ %j1, %inner ]\n  %a = phi i64 [ %acc, %outer ], [ %a1, %inner ]\n  \
        %m = mul i64 %i, %j\n  %a1 = add i64 %a, %m\n  %j1 = add i64 %j, 1\n  %jd = icmp eq i64 %j1, 10\n  \
        br i1 %jd, label %inner_done, label %inner\ninner_done:\n  %acc2 = xor i64 %a1, %i\n  %i1 = add i64 %i, 1\n  \
        %id = icmp eq i64 %i1, %n\n  br i1 %id, label %exit, label %outer\nexit:\n  ret i64 %acc2\n}\n";
    let expected = |n: i64| {
        let mut acc = 0i64;
        for i in 0..n {
            for j in 0..10 {
                acc = acc.wrapping_add(i * j);
            }
            acc ^= i;
        }
        acc
    };
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("loops").unwrap();
    d.enable_tiering(Tiering::new().threshold(Some(1_000))).unwrap();
    d.add_module(Source::ir_text(LOOPS)).unwrap();
    let spins = d.lookup::<fn(i64) -> i64>("spins").unwrap();
    assert_eq!(spins.call(50), expected(50), "550 back-edges: below the threshold");
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(jit.stats().dylibs[0].tiering.tier_ups, 0);
    // One call whose loops cross the threshold: the next call runs the higher tier.
    assert_eq!(spins.call(500), expected(500));
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(jit.stats().dylibs[0].tiering.tier_ups, 1);
    assert_eq!(spins.call(700), expected(700));
}

/// A computed goto tiers up: its jump table holds first-tier labels, so the higher tier takes a copy of
/// its own, holding its own labels. The table here is GCC's idiom (`static void *ops[]`, not `const`);
/// nothing writes it, so promotion marks it constant. Each handler reads the argument `x`, which the
/// first tier keeps in its frame and the higher tier in a register: a higher tier jumping through the
/// first tier's table would land in the first tier's code with the wrong frame. A table the function
/// writes cannot be copied (the tiers would each write their own): that function stays at tier 0, and
/// the rest of its module still tiers up.
#[test]
fn a_computed_goto_tiers_up_with_its_own_copy_of_its_jump_table() {
    fn interpreter(name: &str, table: &str, write: bool) -> String {
        let store = if write { "  store ptr %target, ptr %slot\n" } else { "" };
        format!(
            "@{table} = internal global [3 x ptr] [ptr blockaddress(@{name}, %inc), ptr blockaddress(@{name}, %dbl), ptr blockaddress(@{name}, %halt)]\n\
             define i64 @{name}(ptr %code, i64 %x) {{\nentry:\n  %acc = alloca i64\n  %pc = alloca ptr\n  \
             store i64 %x, ptr %acc\n  store ptr %code, ptr %pc\n  br label %dispatch\n\
             dispatch:\n  %p = load ptr, ptr %pc\n  %op = load i8, ptr %p\n  %next = getelementptr i8, ptr %p, i64 1\n  \
             store ptr %next, ptr %pc\n  %i = zext i8 %op to i64\n  %slot = getelementptr [3 x ptr], ptr @{table}, i64 0, i64 %i\n  \
             %target = load ptr, ptr %slot\n{store}  indirectbr ptr %target, [label %inc, label %dbl, label %halt]\n\
             inc:\n  %a = load i64, ptr %acc\n  %a1 = add i64 %a, %x\n  store i64 %a1, ptr %acc\n  br label %dispatch\n\
             dbl:\n  %b = load i64, ptr %acc\n  %b1 = mul i64 %b, 2\n  store i64 %b1, ptr %acc\n  br label %dispatch\n\
             halt:\n  %r = load i64, ptr %acc\n  ret i64 %r\n}}\n"
        )
    }
    let ir = interpreter("run", "ops", false)
        + &interpreter("patched", "patched_ops", true)
        + "define i64 @other(i64 %x) {\n  %y = add i64 %x, 1\n  ret i64 %y\n}\n";
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("goto").unwrap();
    d.enable_tiering(Tiering::new().threshold(None)).unwrap();
    d.add_module(Source::ir_text(ir)).unwrap();
    let run = d.lookup::<fn(*const u8, i64) -> i64>("run").unwrap();
    let patched = d.lookup::<fn(*const u8, i64) -> i64>("patched").unwrap();
    let other = d.lookup::<fn(i64) -> i64>("other").unwrap();
    // inc, dbl, inc, dbl, halt: ((x + x) * 2 + x) * 2 = 10x.
    let code = [0u8, 1, 0, 1, 2];
    let x = 0x0123_4567_89ab;
    assert_eq!(run.call(code.as_ptr(), x), 10 * x);
    d.reoptimize("run").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("run").unwrap().tier, 1, "a computed goto whose table nothing writes moves up");
    for x in [x, -7, 1 << 40] {
        assert_eq!(run.call(code.as_ptr(), x), 10 * x, "the higher tier jumps to its own labels");
    }
    // Writing its table (each target back where it was read): refused, and the function keeps answering
    // at tier 0.
    assert_eq!(patched.call(code.as_ptr(), x), 10 * x);
    d.reoptimize("patched").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("patched").unwrap().tier, 0, "a computed goto whose table is written stays");
    d.reoptimize("other").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("other").unwrap().tier, 1);
    assert_eq!(jit.stats().dylibs[0].tiering.tier_ups, 2);
    assert_eq!((other.call(1), run.call(code.as_ptr(), 3)), (2, 30));
}

const CALLER_AND_CALLEE: &str = "define i64 @g(i64 %x) {\n  %y = mul i64 %x, 2\n  ret i64 %y\n}\n\
    define i64 @f(i64 %x) {\n  %r = call i64 @g(i64 %x)\n  %s = add i64 %r, 1\n  ret i64 %s\n}\n";

#[test]
fn a_redefinition_after_inlining_is_never_bypassed_by_the_inlined_copy() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("inline").unwrap();
    d.enable_tiering(Tiering::new().threshold(Some(1_000))).unwrap();
    d.add_module(Source::ir_text(CALLER_AND_CALLEE)).unwrap();
    let f = d.lookup::<fn(i64) -> i64>("f").unwrap();
    let tier0 = f.current_address(&d.pin()).unwrap();
    d.reoptimize("f").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    let status = d.tier_status("f").unwrap();
    assert_eq!((status.tier, status.inlined), (1, vec!["g".to_string()]), "`g` was inlined into `f`");
    assert_eq!(f.call(5), 11);
    // Redefining the inlined callee drops `f`'s higher tier in the same step: the very next call sees it.
    d.add_module(Source::ir_text("define i64 @g(i64 %x) {\n  %y = mul i64 %x, 3\n  ret i64 %y\n}\n"))
        .unwrap();
    assert_eq!(f.call(5), 16, "the inlined copy of the old `g` is not used");
    assert_eq!(f.current_address(&d.pin()).unwrap(), tier0, "back on its first tier");
    assert_eq!(d.tier_status("f").unwrap().tier, 0);
    let stats = jit.stats().dylibs.into_iter().find(|s| s.name == "inline").unwrap();
    assert_eq!((stats.tiering.tier_ups, stats.tiering.invalidations), (1, 1));
    // Its counter counts again: hot enough, it moves up once more, now calling the new `g` out of line.
    for _ in 0..1_000 {
        assert_eq!(f.call(5), 16);
    }
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    let status = d.tier_status("f").unwrap();
    assert_eq!((status.tier, status.inlined.len()), (1, 0), "{status:?}");
    assert_eq!(f.call(5), 16);
}

#[test]
fn a_tier_up_that_inlined_a_callee_redefined_meanwhile_is_dropped() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("inline-race").unwrap();
    d.enable_tiering(Tiering::new().threshold(None)).unwrap();
    let f = {
        d.add_module(Source::ir_text(CALLER_AND_CALLEE)).unwrap();
        d.lookup::<fn(i64) -> i64>("f").unwrap()
    };
    for round in 0..20i64 {
        d.reoptimize("f").unwrap();
        // Racing the tier-up (which may have inlined the previous `g`).
        let g = format!("define i64 @g(i64 %x) {{\n  %y = add i64 %x, {round}\n  ret i64 %y\n}}\n");
        d.add_module(Source::ir_text(g)).unwrap();
        assert_eq!(f.call(5), 5 + round + 1, "round {round}: right after the redefinition");
        assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
        assert_eq!(f.call(5), 5 + round + 1, "round {round}: after the tier-up settled");
    }
}

/// `x + 1e-10`, at double precision and, transformed, at float precision (where 1e-10 is lost next to 1).
const ADD_TINY: &str =
    "define double @add_tiny(double %x) {\n  %y = fadd double %x, 1.0e-10\n  ret double %y\n}\n";

/// Rewrites every `fadd double` of `function` into `fadd float` between a truncation and an extension.
fn demote_fadd(module: &inkwell::module::Module<'_>, function: &str) -> Result<(), String> {
    use inkwell::values::{BasicValue, InstructionOpcode};
    let f = module.get_function(function).ok_or("no such function")?;
    let context = module.get_context();
    let builder = context.create_builder();
    let (f32t, f64t) = (context.f32_type(), context.f64_type());
    for block in f.get_basic_blocks() {
        let adds: Vec<_> = block
            .get_instructions()
            .filter(|i| i.get_opcode() == InstructionOpcode::FAdd && i.get_type() == f64t.into())
            .collect();
        for add in adds {
            builder.position_before(&add);
            let operand = |k| add.get_operand(k).and_then(|o| o.value()).map(|v| v.into_float_value());
            let (a, b) = (operand(0).ok_or("operand")?, operand(1).ok_or("operand")?);
            let a = builder.build_float_trunc(a, f32t, "a32").map_err(|e| e.to_string())?;
            let b = builder.build_float_trunc(b, f32t, "b32").map_err(|e| e.to_string())?;
            let sum = builder.build_float_add(a, b, "sum32").map_err(|e| e.to_string())?;
            let wide = builder.build_float_ext(sum, f64t, "sum64").map_err(|e| e.to_string())?;
            add.replace_all_uses_with(&wide.as_instruction_value().ok_or("not an instruction")?);
            add.erase_from_basic_block();
        }
    }
    Ok(())
}

#[test]
fn a_tier_transform_rewriting_double_to_float_changes_the_result_as_expected() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("float").unwrap();
    d.enable_tiering(Tiering::new().threshold(None).delay(Duration::ZERO).transform(demote_fadd)).unwrap();
    d.add_module(Source::ir_text(ADD_TINY)).unwrap();
    let f = d.lookup::<fn(f64) -> f64>("add_tiny").unwrap();
    assert_eq!(f.call(1.0), 1.0 + 1e-10, "tier 0: double precision");
    d.reoptimize("add_tiny").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("add_tiny").unwrap().tier, 1);
    assert_eq!(f.call(1.0), 1.0, "tier 1: float precision, 1e-10 lost next to 1");
    assert_eq!(f.call(0.5), f64::from(0.5f32 + 1e-10f32), "the float sum, widened");
}

#[test]
fn a_transform_that_fails_or_breaks_the_ir_leaves_the_function_where_it_was() {
    for (what, tiering) in [
        ("fails", Tiering::new().transform(|_: &inkwell::module::Module<'_>, _: &str| Err("no".to_string()))),
        (
            "breaks the IR",
            Tiering::new().transform(|m: &inkwell::module::Module<'_>, f: &str| {
                // Deletes the body's terminator: the module no longer verifies.
                let f = m.get_function(f).ok_or("missing")?;
                f.get_first_basic_block()
                    .and_then(|b| b.get_terminator())
                    .ok_or("empty")?
                    .erase_from_basic_block();
                Ok(())
            }),
        ),
    ] {
        let jit = Jit::new().unwrap();
        let d = jit.create_dylib("bad-transform").unwrap();
        d.enable_tiering(tiering.threshold(None).delay(Duration::ZERO)).unwrap();
        d.add_module(Source::ir_text(ADD_TINY)).unwrap();
        d.reoptimize("add_tiny").unwrap();
        assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
        let status = d.tier_status("add_tiny").unwrap();
        assert_eq!((status.tier, status.queued), (0, false), "a transform that {what}");
        assert_eq!(d.lookup::<fn(f64) -> f64>("add_tiny").unwrap().call(1.0), 1.0 + 1e-10);
        assert_eq!(d.modules().len(), 1, "nothing half-added");
    }
}

/// A transform that panics fails its tier-up like one that returns an error, and the tier-up thread lives
/// on: the next request moves the function up.
#[test]
fn a_transform_that_panics_drops_its_tier_up_and_the_next_one_goes_through() {
    let panicked = Arc::new(AtomicBool::new(false));
    let first = panicked.clone();
    let transform = move |_: &inkwell::module::Module<'_>, _: &str| -> Result<(), String> {
        if !first.swap(true, Ordering::SeqCst) {
            panic!("a transform with a bug");
        }
        Ok(())
    };
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("panicking-transform").unwrap();
    d.enable_tiering(Tiering::new().threshold(None).delay(Duration::ZERO).transform(transform)).unwrap();
    d.add_module(Source::ir_text(ADD_TINY)).unwrap();
    d.reoptimize("add_tiny").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)), "the tier-up ended");
    assert!(panicked.load(Ordering::SeqCst));
    let status = d.tier_status("add_tiny").unwrap();
    assert_eq!((status.tier, status.queued), (0, false));
    assert_eq!(d.modules().len(), 1, "nothing half-added");
    let f = d.lookup::<fn(f64) -> f64>("add_tiny").unwrap();
    assert_eq!(f.call(1.0), 1.0 + 1e-10);
    d.reoptimize("add_tiny").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("add_tiny").unwrap().tier, 1, "the tier-up thread survived the panic");
    assert_eq!(f.call(1.0), 1.0 + 1e-10);
}

/// A policy that panics (it runs in the counter's hook, inside JIT code, where a panic would abort the
/// process) is taken as `Stay`: the process lives, the function stays at tier 0, counted no more. In a
/// child: without the catch, the process aborts.
#[test]
fn a_policy_that_panics_leaves_the_function_where_it_is() {
    if crate::in_child("tiering::a_policy_that_panics_leaves_the_function_where_it_is").is_some() {
        return;
    }
    static ASKED: AtomicBool = AtomicBool::new(false);
    let policy = |_: &genjit::HotFunction<'_>| -> genjit::Decision {
        ASKED.store(true, Ordering::SeqCst);
        panic!("a policy with a bug");
    };
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("panicking-policy").unwrap();
    d.enable_tiering(Tiering::new().calls(Some(5)).back_edges(None).delay(Duration::ZERO).policy(policy))
        .unwrap();
    d.add_module(Source::ir_text(CALLER_AND_CALLEE)).unwrap();
    let f = d.lookup::<fn(i64) -> i64>("f").unwrap();
    for i in 0..100 {
        assert_eq!(f.call(i), 2 * i + 1);
    }
    assert!(ASKED.load(Ordering::SeqCst), "the count ran out and the policy was asked");
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    let status = d.tier_status("f").unwrap();
    assert!(status.tier == 0 && !status.queued && !status.counting, "{status:?}");
}

#[test]
fn calls_and_back_edges_have_thresholds_of_their_own() {
    const LOOP: &str = "define i64 @count_to(i64 %n) {\nentry:\n  br label %loop\nloop:\n  \
        %i = phi i64 [ 0, %entry ], [ %i1, %loop ]\n  %i1 = add i64 %i, 1\n  %done = icmp eq i64 %i1, %n\n  \
        br i1 %done, label %exit, label %loop\nexit:\n  ret i64 %i1\n}\n";
    // Calls not counted: one call looping 1,000 times moves up by its back-edges.
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("loops").unwrap();
    d.enable_tiering(Tiering::new().calls(None).back_edges(Some(500)).delay(Duration::ZERO)).unwrap();
    d.add_module(Source::ir_text(LOOP)).unwrap();
    let f = d.lookup::<fn(i64) -> i64>("count_to").unwrap();
    assert_eq!(f.call(400), 400);
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("count_to").unwrap().tier, 0, "400 back-edges");
    assert_eq!(f.call(1_000), 1_000);
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("count_to").unwrap().tier, 1, "1,400 back-edges");
    // Back-edges not counted: 1,000 iterations move nothing; the 3rd call does.
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("calls").unwrap();
    d.enable_tiering(Tiering::new().calls(Some(3)).back_edges(None).delay(Duration::ZERO)).unwrap();
    d.add_module(Source::ir_text(LOOP)).unwrap();
    let f = d.lookup::<fn(i64) -> i64>("count_to").unwrap();
    assert_eq!((f.call(1_000), f.call(1_000)), (1_000, 1_000));
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("count_to").unwrap().tier, 0, "2 calls");
    f.call(1);
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("count_to").unwrap().tier, 1, "3 calls");
}

#[test]
fn a_policy_decides_what_a_hot_function_does() {
    use genjit::{Decision, HotFunction, Trigger};
    use std::sync::Mutex;
    let seen: Arc<Mutex<Vec<(String, Trigger, u64)>>> = Arc::default();
    let policy = {
        let seen = seen.clone();
        move |hot: &HotFunction<'_>| {
            seen.lock().unwrap().push((hot.function.to_string(), hot.trigger, hot.counted));
            match hot.function {
                // Twice as many calls as the threshold before moving up.
                "f" if hot.counted < 20 => Decision::CountAgain(10),
                "f" => Decision::TierUp,
                _ => Decision::Stay,
            }
        }
    };
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("policy").unwrap();
    d.enable_tiering(Tiering::new().threshold(Some(10)).delay(Duration::ZERO).policy(policy)).unwrap();
    d.add_module(Source::ir_text(CALLER_AND_CALLEE)).unwrap();
    let (f, g) = (d.lookup::<fn(i64) -> i64>("f").unwrap(), d.lookup::<fn(i64) -> i64>("g").unwrap());
    for _ in 0..15 {
        assert_eq!(g.call(1), 2);
        assert_eq!(f.call(1), 3);
    }
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("f").unwrap().tier, 0, "15 calls: asked again at 20");
    for _ in 0..10 {
        f.call(1);
    }
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("f").unwrap().tier, 1, "moved up at its 20th call");
    assert_eq!(d.tier_status("g").unwrap().tier, 0, "the policy keeps `g` where it is");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&("f".to_string(), Trigger::Calls, 10)), "{seen:?}");
    assert!(seen.contains(&("f".to_string(), Trigger::Calls, 20)), "{seen:?}");
    assert!(seen.iter().any(|(f, _, n)| f == "g" && *n == 10), "{seen:?}");
    // `reoptimize` is the user's own decision: the policy is not asked.
    d.reoptimize("g").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("g").unwrap().tier, 1);
}

#[test]
fn calls_are_counted_until_the_count_is_over_and_again_after_a_fallback() {
    let jit = Jit::new().unwrap();
    // The policy keeps everything at tier 0: the count ends, the wrapper is skipped.
    let d = jit.create_dylib("stay").unwrap();
    let stay = |_: &genjit::HotFunction<'_>| genjit::Decision::Stay;
    d.enable_tiering(Tiering::new().calls(Some(5)).back_edges(None).policy(stay)).unwrap();
    d.add_module(Source::ir_text(CALLER_AND_CALLEE)).unwrap();
    let f = d.lookup::<fn(i64) -> i64>("f").unwrap();
    for _ in 0..4 {
        assert_eq!(f.call(1), 3);
    }
    assert!(d.tier_status("f").unwrap().counting, "4 calls of 5");
    assert_eq!(f.call(1), 3);
    let status = d.tier_status("f").unwrap();
    assert!(!status.counting && status.tier == 0, "the 5th call ended the count: {status:?}");
    for i in 0..1000 {
        assert_eq!(f.call(i), 2 * i + 1);
    }
    // Tiered up with `g` inlined, then `g` redefined: `f` falls back to its first tier and counts again.
    let d = jit.create_dylib("fallback").unwrap();
    d.enable_tiering(Tiering::new().calls(Some(5)).back_edges(None).delay(Duration::ZERO)).unwrap();
    d.add_module(Source::ir_text(CALLER_AND_CALLEE)).unwrap();
    let f = d.lookup::<fn(i64) -> i64>("f").unwrap();
    for _ in 0..5 {
        assert_eq!(f.call(1), 3);
    }
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    let status = d.tier_status("f").unwrap();
    assert_eq!((status.tier, status.inlined.clone(), status.counting), (1, vec!["g".to_string()], false));
    d.add_module(Source::ir_text("define i64 @g(i64 %x) {\n  ret i64 %x\n}\n")).unwrap();
    let status = d.tier_status("f").unwrap();
    assert!(status.tier == 0 && status.counting, "fallen back, counting again: {status:?}");
    for _ in 0..5 {
        assert_eq!(f.call(5), 6);
    }
    assert!(!d.tier_status("f").unwrap().counting, "counted to 5 again, queued again");
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(f.call(5), 6);
}

#[test]
fn a_tier_up_waits_for_quiet_at_most_max_delay() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("busy").unwrap();
    // A delay no test waits out, as if the first tier never stopped compiling: only the cap lets the
    // tier-up through.
    let tiering = Tiering::new().threshold(None).delay(Duration::from_secs(3600));
    d.enable_tiering(tiering.max_delay(Duration::from_millis(300))).unwrap();
    d.add_module(Source::ir_text(CALLER_AND_CALLEE)).unwrap();
    let asked = std::time::Instant::now();
    d.reoptimize("f").unwrap();
    assert!(!d.wait_for_tier_ups(Duration::from_millis(100)), "not taken before the cap");
    assert_eq!(d.tier_status("f").unwrap().tier, 0);
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("f").unwrap().tier, 1);
    assert!(asked.elapsed() >= Duration::from_millis(300));
    assert_eq!(d.lookup::<fn(i64) -> i64>("f").unwrap().call(1), 3);
}

#[test]
fn tier_ups_queued_together_compile_together() {
    let jit = Jit::builder().tier_up_threads(2).build().unwrap();
    let d = jit.create_dylib("batch").unwrap();
    // A delay long enough that both requests are queued before a thread takes them.
    d.enable_tiering(Tiering::new().threshold(None).delay(Duration::from_millis(300))).unwrap();
    d.add_module(Source::ir_text(CALLER_AND_CALLEE)).unwrap();
    d.reoptimize("f").unwrap();
    d.reoptimize("g").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    let (f, g) = (d.tier_status("f").unwrap(), d.tier_status("g").unwrap());
    assert_eq!((f.tier, g.tier), (1, 1));
    assert_eq!(d.modules().len(), 2, "the first tier and one module with both higher tiers");
    assert_eq!(f.inlined, vec!["g".to_string()], "`g`, compiled alongside, was inlined into `f`");
    // Redefining `g` drops the module with the inlined copy: both fall back.
    d.add_module(Source::ir_text("define i64 @g(i64 %x) {\n  ret i64 %x\n}\n")).unwrap();
    assert_eq!(d.lookup::<fn(i64) -> i64>("f").unwrap().call(5), 6);
    assert_eq!(d.tier_status("f").unwrap().tier, 0);
}

#[test]
fn queued_tier_ups_can_be_cancelled_and_running_ones_finish() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("cancel").unwrap();
    // A long delay keeps the requests queued (the thread waits for a quiet moment before compiling).
    d.enable_tiering(Tiering::new().threshold(None).delay(Duration::from_secs(2))).unwrap();
    d.add_module(Source::ir_text(CALLER_AND_CALLEE)).unwrap();
    d.reoptimize("f").unwrap();
    d.reoptimize("g").unwrap();
    assert!(d.tier_status("f").unwrap().queued);
    assert_eq!(d.cancel_tier_ups(), 2);
    let start = std::time::Instant::now();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert!(start.elapsed() < Duration::from_secs(1), "nothing was compiling: no wait");
    std::thread::sleep(Duration::from_millis(2_500));
    let (f, g) = (d.tier_status("f").unwrap(), d.tier_status("g").unwrap());
    assert_eq!((f.tier, f.queued, g.tier, g.queued), (0, false, 0, false), "dropped, not compiled later");
    assert_eq!(jit.stats().dylibs[0].tiering.tier_ups, 0);
    // Asking again works.
    d.reoptimize("f").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    assert_eq!(d.tier_status("f").unwrap().tier, 1);
}

#[test]
fn a_callee_two_calls_deep_inlined_and_redefined_is_never_bypassed() {
    const CHAIN: &str = "define i64 @h(i64 %x) {\n  %y = mul i64 %x, 2\n  ret i64 %y\n}\n\
        define i64 @g(i64 %x) {\n  %r = call i64 @h(i64 %x)\n  %s = add i64 %r, 1\n  ret i64 %s\n}\n\
        define i64 @f(i64 %x) {\n  %r = call i64 @g(i64 %x)\n  %s = add i64 %r, 1\n  ret i64 %s\n}\n";
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("deep").unwrap();
    d.enable_tiering(Tiering::new().threshold(None).delay(Duration::ZERO)).unwrap();
    d.add_module(Source::ir_text(CHAIN)).unwrap();
    let f = d.lookup::<fn(i64) -> i64>("f").unwrap();
    d.reoptimize("f").unwrap();
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    let status = d.tier_status("f").unwrap();
    assert_eq!(status.tier, 1);
    assert!(status.inlined.contains(&"h".to_string()), "{status:?}");
    assert_eq!(f.call(5), 12);
    d.add_module(Source::ir_text("define i64 @h(i64 %x) {\n  ret i64 %x\n}\n")).unwrap();
    assert_eq!(f.call(5), 7, "the new `h`, not the copy inlined through `g`");
    assert_eq!(d.tier_status("f").unwrap().tier, 0);
}

/// Functions whose arguments travel in every kind of register and on the stack: eight integers (two on
/// the stack) and nine doubles (one on the stack), a variadic call (`al` counts its vector registers),
/// and vectors of 256 and 512 bits (`ymm`/`zmm` registers where the CPU has them).
const EVERY_REGISTER: &str = r#"
declare void @llvm.va_start(ptr)
declare void @llvm.va_end(ptr)
declare float @llvm.vector.reduce.fadd.v8f32(float, <8 x float>)
declare float @llvm.vector.reduce.fadd.v16f32(float, <16 x float>)

define double @many(i64 %a, i64 %b, i64 %c, i64 %d, i64 %e, i64 %f, i64 %g, i64 %h, double %x0, double %x1,
                    double %x2, double %x3, double %x4, double %x5, double %x6, double %x7, double %x8) {
  %i1 = mul i64 %b, 2
  %i2 = mul i64 %c, 3
  %i3 = mul i64 %d, 4
  %i4 = mul i64 %e, 5
  %i5 = mul i64 %f, 6
  %i6 = mul i64 %g, 7
  %i7 = mul i64 %h, 8
  %s1 = add i64 %a, %i1
  %s2 = add i64 %s1, %i2
  %s3 = add i64 %s2, %i3
  %s4 = add i64 %s3, %i4
  %s5 = add i64 %s4, %i5
  %s6 = add i64 %s5, %i6
  %s7 = add i64 %s6, %i7
  %si = sitofp i64 %s7 to double
  %y1 = fmul double %x1, 10.0
  %y2 = fmul double %x2, 100.0
  %y3 = fmul double %x3, 1000.0
  %y4 = fmul double %x4, 10000.0
  %y5 = fmul double %x5, 100000.0
  %y6 = fmul double %x6, 1000000.0
  %y7 = fmul double %x7, 10000000.0
  %y8 = fmul double %x8, 100000000.0
  %t0 = fadd double %si, %x0
  %t1 = fadd double %t0, %y1
  %t2 = fadd double %t1, %y2
  %t3 = fadd double %t2, %y3
  %t4 = fadd double %t3, %y4
  %t5 = fadd double %t4, %y5
  %t6 = fadd double %t5, %y6
  %t7 = fadd double %t6, %y7
  %t8 = fadd double %t7, %y8
  ret double %t8
}

define double @va(i32 %n, ...) {
entry:
  %ap = alloca [24 x i8], align 16
  call void @llvm.va_start(ptr %ap)
  br label %loop
loop:
  %i = phi i32 [ 0, %entry ], [ %i1, %loop ]
  %s = phi double [ 0.0, %entry ], [ %s2, %loop ]
  %v = va_arg ptr %ap, double
  %s1 = fmul double %s, 10.0
  %s2 = fadd double %s1, %v
  %i1 = add i32 %i, 1
  %done = icmp eq i32 %i1, %n
  br i1 %done, label %exit, label %loop
exit:
  call void @llvm.va_end(ptr %ap)
  ret double %s2
}

define <8 x float> @v8(<8 x float> %a, <8 x float> %b) {
  %s = fadd <8 x float> %a, %b
  ret <8 x float> %s
}

define <16 x float> @v16(<16 x float> %a, <16 x float> %b) {
  %s = fadd <16 x float> %a, %b
  ret <16 x float> %s
}

define double @driver() {
  %m = call double @many(i64 1, i64 2, i64 3, i64 4, i64 5, i64 6, i64 7, i64 8, double 1.0, double 2.0,
                         double 3.0, double 4.0, double 5.0, double 6.0, double 7.0, double 8.0, double 9.0)
  %v = call double (i32, ...) @va(i32 9, double 1.0, double 2.0, double 3.0, double 4.0, double 5.0,
                                  double 6.0, double 7.0, double 8.0, double 9.0)
  %p = call <8 x float> @v8(<8 x float> <float 1.0, float 2.0, float 3.0, float 4.0, float 5.0, float 6.0,
                                         float 7.0, float 8.0>,
                            <8 x float> <float 10.0, float 20.0, float 30.0, float 40.0, float 50.0,
                                         float 60.0, float 70.0, float 80.0>)
  %q = call <16 x float> @v16(<16 x float> <float 1.0, float 2.0, float 3.0, float 4.0, float 5.0, float 6.0,
                                            float 7.0, float 8.0, float 9.0, float 10.0, float 11.0,
                                            float 12.0, float 13.0, float 14.0, float 15.0, float 16.0>,
                              <16 x float> <float 100.0, float 100.0, float 100.0, float 100.0, float 100.0,
                                            float 100.0, float 100.0, float 100.0, float 100.0, float 100.0,
                                            float 100.0, float 100.0, float 100.0, float 100.0, float 100.0,
                                            float 100.0>)
  %pr = call float @llvm.vector.reduce.fadd.v8f32(float 0.0, <8 x float> %p)
  %qr = call float @llvm.vector.reduce.fadd.v16f32(float 0.0, <16 x float> %q)
  %pd = fpext float %pr to double
  %qd = fpext float %qr to double
  %a = fmul double %m, 1.0e10
  %b = fmul double %v, 1.0e-10
  %s1 = fadd double %a, %b
  %s2 = fmul double %pd, 1.0e5
  %s3 = fadd double %s1, %s2
  %s4 = fadd double %s3, %qd
  ret double %s4
}
"#;

/// Overwrites every register a calling convention may pass an argument in (and that a callee may
/// change): what any code run by a counting stub's hook is allowed to do.
fn clobber_argument_registers() {
    // SAFETY: the asm writes only the registers it declares as outputs.
    unsafe {
        std::arch::asm!(
            "mov rax, -1", "mov rcx, -1", "mov rdx, -1", "mov rsi, -1", "mov rdi, -1", "mov r8, -1",
            "mov r9, -1", "mov r10, -1", "mov r11, -1",
            "pcmpeqd xmm0, xmm0", "pcmpeqd xmm1, xmm1", "pcmpeqd xmm2, xmm2", "pcmpeqd xmm3, xmm3",
            "pcmpeqd xmm4, xmm4", "pcmpeqd xmm5, xmm5", "pcmpeqd xmm6, xmm6", "pcmpeqd xmm7, xmm7",
            out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _, out("r8") _, out("r9") _,
            out("r10") _, out("r11") _, out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
        );
    }
    #[target_feature(enable = "avx")]
    fn ymm() {
        // SAFETY: as above (AVX is present: checked by the caller).
        unsafe {
            std::arch::asm!(
                "vpcmpeqd ymm0, ymm0, ymm0", "vpcmpeqd ymm1, ymm1, ymm1", "vpcmpeqd ymm2, ymm2, ymm2",
                "vpcmpeqd ymm3, ymm3, ymm3",
                out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
            );
        }
    }
    #[target_feature(enable = "avx512f")]
    fn zmm() {
        // SAFETY: as above (AVX-512 is present: checked by the caller).
        unsafe {
            std::arch::asm!(
                "vpternlogd zmm0, zmm0, zmm0, 0xff", "vpternlogd zmm1, zmm1, zmm1, 0xff",
                "vpternlogd zmm2, zmm2, zmm2, 0xff", "vpternlogd zmm3, zmm3, zmm3, 0xff",
                out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
            );
        }
    }
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX is present.
        unsafe { ymm() };
    }
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present.
        unsafe { zmm() };
    }
}

#[test]
fn a_counting_stub_keeps_every_argument_register_across_its_hook() {
    use std::sync::Mutex;
    // The policy runs inside the hook a counting stub calls, on the JIT code's thread, and wrecks every
    // argument register; the call must still reach the body with its arguments intact.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let policy = {
        let seen = seen.clone();
        move |hot: &genjit::HotFunction<'_>| {
            clobber_argument_registers();
            seen.lock().unwrap().push(hot.function.to_string());
            genjit::Decision::Stay
        }
    };
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("registers").unwrap();
    d.enable_tiering(Tiering::new().calls(Some(1)).back_edges(None).policy(policy)).unwrap();
    d.add_module(Source::ir_text(EVERY_REGISTER)).unwrap();
    let many = 204.0 + 987654321.0;
    let va = 123456789.0;
    let v8 = (1..=8).map(|i| 11.0 * f64::from(i)).sum::<f64>();
    let v16 = (1..=16).map(|i| 100.0 + f64::from(i)).sum::<f64>();
    let expected = many * 1e10 + va * 1e-10 + v8 * 1e5 + v16;
    let driver = d.lookup::<fn() -> f64>("driver").unwrap();
    for round in 0..2 {
        for f in ["driver", "many", "va", "v8", "v16"] {
            assert_eq!(d.tier_status(f).unwrap().counting, round == 0, "{f} in round {round}");
        }
        assert_eq!(driver.call(), expected, "round {round}");
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["driver", "many", "v16", "v8", "va"], "every stub called its hook once");
}
