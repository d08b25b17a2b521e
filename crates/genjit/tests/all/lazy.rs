//! Lazy compilation: functions compile on their first call, once, sharing their module's state; functions
//! never called never compile; a user's change wins over a first call in flight.

use genjit::{Jit, Lazy, Source, Tiering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// A module with state (a counter, a private string, a static-local guard set by a constructor), an
/// internal helper, a recursive function, and functions nobody calls.
const SOURCE: &str = r#"
@.str = private unnamed_addr constant [4 x i8] c"abc\00"
@counter = internal global i64 0
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
  %c = load i64, ptr @counter
  %c1 = add i64 %c, 1
  store i64 %c1, ptr @counter
  %h = call i64 @helper(i64 %x)
  %r = add i64 %h, %c1
  ret i64 %r
}

define i64 @fib(i64 %n) {
entry:
  %small = icmp slt i64 %n, 2
  br i1 %small, label %done, label %rec
rec:
  %a = sub i64 %n, 1
  %b = sub i64 %n, 2
  %fa = call i64 @fib(i64 %a)
  %fb = call i64 @fib(i64 %b)
  %s = add i64 %fa, %fb
  ret i64 %s
done:
  ret i64 %n
}

define i64 @str_addr() {
  ret i64 ptrtoint (ptr @.str to i64)
}

define i64 @never1() {
  ret i64 1
}

define i64 @never2(i64 %x) {
  %y = call i64 @never1()
  %z = add i64 %x, %y
  ret i64 %z
}

define i64 @sum(i32 %n, ...) {
  ret i64 0
}

define i64 @jumps(i64 %x) {
entry:
  %t = getelementptr [2 x ptr], ptr @targets, i64 0, i64 %x
  %a = load ptr, ptr %t
  indirectbr ptr %a, [label %zero, label %one]
zero:
  ret i64 10
one:
  ret i64 11
}

@targets = internal constant [2 x ptr] [ptr blockaddress(@jumps, %zero), ptr blockaddress(@jumps, %one)]
"#;

fn tiering(jit: &Jit) -> genjit::TieringStats {
    jit.stats().dylibs[0].tiering.clone()
}

#[test]
fn functions_compile_on_their_first_call_and_never_otherwise() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("lazy").unwrap();
    d.add_lazy_module(Source::ir_text(SOURCE), Lazy::new()).unwrap();
    // Lazy: ctor, helper, f, fib, str_addr, never1, never2, sum (`jumps`, whose labels its table
    // holds, is compiled with the module). The constructor ran when the module was added: its first
    // call compiled it.
    let after_add = tiering(&jit);
    assert_eq!((after_add.lazy_functions, after_add.lazy_compiles, after_add.lazy_uncompiled), (8, 1, 7));
    assert!(d.tier_status("f").unwrap().lazy && d.tier_status("sum").unwrap().lazy);
    assert!(!d.tier_status("jumps").unwrap().lazy, "labels addressed by data: compiled with the module");
    assert_eq!(d.lookup::<fn(i64) -> i64>("jumps").unwrap().call(1), 11);
    let f = d.lookup::<fn(i64) -> i64>("f").unwrap();
    let trampoline = f.current_address(&d.pin()).unwrap();
    assert_eq!(f.call(2), 7, "compiled on this call, with its helper on the helper's first call");
    let body = f.current_address(&d.pin()).unwrap();
    assert_ne!(body, trampoline, "the entry now leads to the compiled body");
    assert_eq!(f.call(2), 8, "state is the module's own");
    assert_eq!(d.lookup::<fn(i64) -> i64>("fib").unwrap().call(20), 6765);
    let str_addr = d.lookup::<fn() -> i64>("str_addr").unwrap().call();
    assert_eq!(str_addr as usize, d.lookup_address("__gj.0..str").unwrap_or(str_addr as usize));
    let stats = tiering(&jit);
    assert_eq!((stats.lazy_compiles, stats.lazy_uncompiled), (5, 3), "{stats:?}");
    assert!(stats.lazy_compile_time > Duration::ZERO && stats.retained_ir_bytes > 0);
    assert!(!d.tier_status("f").unwrap().lazy && d.tier_status("never2").unwrap().lazy);
    // SAFETY: `ctor_runs` is an i64 global of the module.
    assert_eq!(unsafe { *(d.lookup_address("ctor_runs").unwrap() as *const i64) }, 1);
    // Compiling ahead of the first call, with errors as values.
    d.compile_lazy(&["never2"]).unwrap();
    assert!(matches!(d.compile_lazy(&["nope"]), Err(genjit::Error::SymbolNotFound { .. })));
    assert_eq!(tiering(&jit).lazy_uncompiled, 2);
    assert_eq!(d.lookup::<fn(i64) -> i64>("never2").unwrap().call(1), 2, "calls `never1` lazily");
    assert_eq!(tiering(&jit).lazy_uncompiled, 1);
    // Removing the module takes its compiled functions and what it kept with it.
    d.remove_module(&d.modules()[0]).unwrap();
    assert!(f.is_removed());
    assert!(d.modules().is_empty(), "{:?}", d.modules());
    let stats = tiering(&jit);
    assert_eq!((stats.lazy_functions, stats.retained_ir_bytes, stats.heap_bytes), (0, 0, [0, 0]));
}

#[test]
fn concurrent_first_callers_wait_for_one_compile() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("lazy").unwrap();
    d.add_lazy_module(Source::ir_text(SOURCE), Lazy::new()).unwrap();
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let callers: Vec<_> = (0..threads)
        .map(|_| {
            let (fib, barrier) = (d.lookup::<fn(i64) -> i64>("fib").unwrap(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                fib.call(15)
            })
        })
        .collect();
    for c in callers {
        assert_eq!(c.join().unwrap(), 610);
    }
    assert_eq!(tiering(&jit).lazy_compiles, 2, "the constructor and `fib`, once");
}

#[test]
fn a_redefinition_before_the_first_call_wins() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("lazy").unwrap();
    d.add_lazy_module(Source::ir_text(SOURCE), Lazy::new()).unwrap();
    d.add_module(Source::ir_text("define i64 @never1() {\n  ret i64 100\n}\n")).unwrap();
    assert_eq!(d.lookup::<fn(i64) -> i64>("never2").unwrap().call(1), 101);
    let stats = tiering(&jit);
    assert_eq!(
        (stats.lazy_compiles, stats.lazy_uncompiled),
        (2, 5),
        "`never1` was never compiled: {stats:?}"
    );
}

/// Signatures a lazy stub must forward untouched: a result through `sret`, a struct `byval` on the stack,
/// variadic integers and doubles (`%al` counts the vector registers), and integer, double and vector
/// arguments past the registers.
const SIGNATURES: &str = r#"
%S = type { i64, i64, i64 }
declare void @llvm.va_start.p0(ptr)
declare void @llvm.va_end.p0(ptr)

define void @make(ptr sret(%S) align 8 %out, i64 %a) {
  %p1 = getelementptr %S, ptr %out, i32 0, i32 1
  %p2 = getelementptr %S, ptr %out, i32 0, i32 2
  %a1 = add i64 %a, 1
  %a2 = add i64 %a, 2
  store i64 %a, ptr %out
  store i64 %a1, ptr %p1
  store i64 %a2, ptr %p2
  ret void
}

define i64 @by_value(ptr byval(%S) align 8 %s) {
  %p1 = getelementptr %S, ptr %s, i32 0, i32 1
  %p2 = getelementptr %S, ptr %s, i32 0, i32 2
  %x0 = load i64, ptr %s
  %x1 = load i64, ptr %p1
  %x2 = load i64, ptr %p2
  %y1 = mul i64 %x1, 10
  %y2 = mul i64 %x2, 100
  %s1 = add i64 %x0, %y1
  %r = add i64 %s1, %y2
  ret i64 %r
}

define i64 @vsum(i32 %n, ...) {
entry:
  %ap = alloca [1 x { i32, i32, ptr, ptr }], align 8
  call void @llvm.va_start.p0(ptr %ap)
  br label %loop
loop:
  %i = phi i32 [ 0, %entry ], [ %i1, %body ]
  %acc = phi i64 [ 0, %entry ], [ %acc1, %body ]
  %more = icmp slt i32 %i, %n
  br i1 %more, label %body, label %done
body:
  %v = va_arg ptr %ap, i64
  %acc1 = add i64 %acc, %v
  %i1 = add i32 %i, 1
  br label %loop
done:
  call void @llvm.va_end.p0(ptr %ap)
  ret i64 %acc
}

define i64 @vdoubles(i32 %n, ...) {
entry:
  %ap = alloca [1 x { i32, i32, ptr, ptr }], align 8
  call void @llvm.va_start.p0(ptr %ap)
  br label %loop
loop:
  %i = phi i32 [ 0, %entry ], [ %i1, %body ]
  %acc = phi double [ 0.0, %entry ], [ %acc1, %body ]
  %more = icmp slt i32 %i, %n
  br i1 %more, label %body, label %done
body:
  %v = va_arg ptr %ap, double
  %acc1 = fadd double %acc, %v
  %i1 = add i32 %i, 1
  br label %loop
done:
  call void @llvm.va_end.p0(ptr %ap)
  %t = fmul double %acc, 10.0
  %r = fptosi double %t to i64
  ret i64 %r
}

define i64 @mix(i64 %a, double %b, i64 %c, double %d, i64 %e, i64 %f, i64 %g, i64 %h, i64 %i,
                double %j, <4 x float> %v) {
  %c2 = shl i64 %c, 1
  %e2 = shl i64 %e, 2
  %f2 = shl i64 %f, 3
  %g2 = shl i64 %g, 4
  %h2 = shl i64 %h, 5
  %i2 = shl i64 %i, 6
  %s1 = add i64 %a, %c2
  %s2 = add i64 %s1, %e2
  %s3 = add i64 %s2, %f2
  %s4 = add i64 %s3, %g2
  %s5 = add i64 %s4, %h2
  %s6 = add i64 %s5, %i2
  %b2 = fmul double %b, 1024.0
  %d2 = fmul double %d, 2048.0
  %j2 = fmul double %j, 4096.0
  %fs1 = fadd double %b2, %d2
  %fs2 = fadd double %fs1, %j2
  %v0 = extractelement <4 x float> %v, i32 0
  %v1 = extractelement <4 x float> %v, i32 1
  %v2 = extractelement <4 x float> %v, i32 2
  %v3 = extractelement <4 x float> %v, i32 3
  %w1 = fadd float %v0, %v1
  %w2 = fadd float %w1, %v2
  %w3 = fadd float %w2, %v3
  %w = fpext float %w3 to double
  %fs3 = fadd double %fs2, %w
  %fi = fptosi double %fs3 to i64
  %r = add i64 %s6, %fi
  ret i64 %r
}

define i64 @drive() {
  %s = alloca %S, align 8
  call void @make(ptr sret(%S) align 8 %s, i64 1)
  %bv = call i64 @by_value(ptr byval(%S) align 8 %s)
  %vs = call i64 (i32, ...) @vsum(i32 3, i64 1000, i64 20000, i64 300000)
  %vd = call i64 (i32, ...) @vdoubles(i32 2, double 1.5, double 2.5)
  %m = call i64 @mix(i64 1, double 0.5, i64 2, double 0.25, i64 3, i64 4, i64 5, i64 6, i64 7,
                     double 0.125, <4 x float> <float 1.0, float 2.0, float 3.0, float 4.0>)
  %r1 = add i64 %bv, %vs
  %r2 = add i64 %r1, %vd
  %r = add i64 %r2, %m
  ret i64 %r
}
"#;

#[test]
fn a_lazy_stub_forwards_any_signature() {
    // make + by_value 321, vsum 321,000, vdoubles 40, mix 769 + 3 * 512 + 10.
    let expected = 321 + 321_000 + 40 + 2_315;
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("lazy").unwrap();
    let eager = jit.create_dylib("eager").unwrap();
    eager.add_module(Source::ir_text(SIGNATURES)).unwrap();
    assert_eq!(eager.lookup::<fn() -> i64>("drive").unwrap().call(), expected);
    d.add_lazy_module(Source::ir_text(SIGNATURES), Lazy::new()).unwrap();
    let functions = ["make", "by_value", "vsum", "vdoubles", "mix", "drive"];
    assert!(functions.iter().all(|f| d.tier_status(f).unwrap().lazy));
    assert_eq!(d.lookup::<fn() -> i64>("drive").unwrap().call(), expected);
    assert!(functions.iter().all(|f| !d.tier_status(f).unwrap().lazy));
    let stats = jit.stats().dylibs.into_iter().find(|s| s.name == "lazy").unwrap().tiering;
    assert_eq!((stats.lazy_functions, stats.lazy_compiles, stats.lazy_uncompiled), (6, 6, 0), "{stats:?}");
    assert_eq!(d.lookup::<fn() -> i64>("drive").unwrap().call(), expected, "compiled bodies, called again");
}

/// `pick` calls `rare` only for a positive argument; `other` is nobody's callee.
const PICK: &str = "define i64 @rare(i64 %x) {\n  ret i64 %x\n}\ndefine i64 @other() {\n  ret i64 7\n}\n\
        define i64 @pick(i64 %x) {\nentry:\n  %c = icmp sgt i64 %x, 0\n  br i1 %c, label %call, label %done\n\
        call:\n  %r = call i64 @rare(i64 %x)\n  ret i64 %r\ndone:\n  ret i64 -1\n}\n";

#[test]
fn speculation_compiles_callees_before_their_first_call() {
    for speculate in [false, true] {
        let jit = Jit::new().unwrap();
        let d = jit.create_dylib("lazy").unwrap();
        d.add_lazy_module(Source::ir_text(PICK), Lazy::new().speculate(speculate)).unwrap();
        // `rare` is not called by this call of `pick`.
        assert_eq!(d.lookup::<fn(i64) -> i64>("pick").unwrap().call(0), -1);
        assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
        let stats = tiering(&jit);
        let expected = if speculate { (2, 1, 1) } else { (1, 0, 2) };
        assert_eq!(
            (stats.lazy_compiles, stats.speculative_compiles, stats.lazy_uncompiled),
            expected,
            "{stats:?}"
        );
        assert_eq!(d.tier_status("rare").unwrap().lazy, !speculate);
        assert!(d.tier_status("other").unwrap().lazy, "not a callee: never compiled");
        assert_eq!(d.lookup::<fn(i64) -> i64>("pick").unwrap().call(5), 5);
    }
}

#[test]
fn with_callees_a_first_call_compiles_the_lazy_direct_callees_along() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("lazy").unwrap();
    d.add_lazy_module(Source::ir_text(PICK), Lazy::new().callees(true)).unwrap();
    assert_eq!(d.lookup::<fn(i64) -> i64>("pick").unwrap().call(0), -1);
    let stats = tiering(&jit);
    assert_eq!(
        (stats.lazy_compiles, stats.lazy_uncompiled),
        (1, 1),
        "`pick` and `rare` in one compile: {stats:?}"
    );
    assert!(!d.tier_status("rare").unwrap().lazy && d.tier_status("other").unwrap().lazy);
    assert_eq!(d.lookup::<fn(i64) -> i64>("rare").unwrap().call(3), 3);
    assert_eq!(d.lookup::<fn(i64) -> i64>("pick").unwrap().call(5), 5);
    assert_eq!(tiering(&jit).lazy_compiles, 1, "no compile on their later calls");
    // A callee compiled already by its own first call is not compiled again.
    let d = jit.create_dylib("raced").unwrap();
    d.add_lazy_module(Source::ir_text(PICK), Lazy::new().callees(true)).unwrap();
    assert_eq!(d.lookup::<fn(i64) -> i64>("rare").unwrap().call(4), 4);
    assert_eq!(d.lookup::<fn(i64) -> i64>("pick").unwrap().call(6), 6);
    let raced = jit.stats().dylibs.into_iter().find(|s| s.name == "raced").unwrap().tiering;
    assert_eq!((raced.lazy_compiles, raced.lazy_uncompiled), (2, 1), "`rare`, then `pick` alone: {raced:?}");
}

#[test]
fn lazy_functions_tier_up_like_any_other() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("lazy").unwrap();
    d.enable_tiering(Tiering::new().threshold(Some(10))).unwrap();
    d.add_lazy_module(Source::ir_text(SOURCE), Lazy::new()).unwrap();
    let f = d.lookup::<fn(i64) -> i64>("f").unwrap();
    let mut expected = Vec::new();
    let mut got = Vec::new();
    for i in 1..=100 {
        expected.push(3 * 2 + i);
        got.push(f.call(2));
    }
    assert_eq!(got, expected);
    assert!(d.wait_for_tier_ups(Duration::from_secs(60)));
    let status = d.tier_status("f").unwrap();
    assert_eq!((status.tier, status.lazy), (1, false), "{status:?}");
    assert_eq!(f.call(2), 107, "state went on through the trampoline, tier 0 and tier 1");
    let stats = tiering(&jit);
    assert!(stats.tier_ups >= 1 && stats.heap_bytes[1] > 0, "{stats:?}");
    // The static helper inlined into `f` at tier 1 is redefined (by its promoted name): `f` falls back to
    // its lazily compiled tier 0, which calls the new helper.
    assert_eq!(status.inlined.len(), 1, "{status:?}");
    let helper = &status.inlined[0];
    assert!(helper.ends_with(".helper"), "{helper}");
    let redefined = format!("define hidden i64 @{helper}(i64 %x) {{\n  ret i64 0\n}}\n");
    d.add_module(Source::ir_text(redefined)).unwrap();
    assert_eq!(f.call(2), 102, "the new helper, not the inlined copy");
    let status = d.tier_status("f").unwrap();
    assert_eq!((status.tier, status.lazy), (0, false), "back on its lazily compiled body");
}

/// Verifies, but its code generation fails (an instruction the assembler does not know).
const BAD_ASM: &str =
    "define i64 @bad() {\n  call void asm sideeffect \"notaninstruction %eax\", \"\"()\n  ret i64 0\n}\n\
    define i64 @good() {\n  ret i64 3\n}\n";

/// Parses, but does not verify.
const NOT_DOMINATED: &str = "define i64 @f() {\n  %a = add i64 %b, 1\n  %b = add i64 1, 1\n  ret i64 %a\n}\n";

#[test]
fn bad_input_is_refused_with_the_jit_unchanged() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("lazy").unwrap();
    let err = d.add_lazy_module(Source::ir_text("define i64 @f( {"), Lazy::new()).unwrap_err();
    assert!(matches!(err, genjit::Error::Parse { .. }), "{err}");
    let err = d.add_lazy_module(Source::ir_text(NOT_DOMINATED), Lazy::new()).unwrap_err();
    assert!(matches!(err, genjit::Error::Verify { .. }), "{err}");
    assert!(d.modules().is_empty());
    assert_eq!(tiering(&jit).retained_ir_bytes, 0);
    // A function whose code generation fails: compiling it ahead reports it, and leaves it lazy.
    d.add_lazy_module(Source::ir_text(BAD_ASM), Lazy::new()).unwrap();
    let (heap, modules) = (jit.stats().heap.live_bytes(), d.modules().len());
    let err = d.compile_lazy(&["bad"]).unwrap_err();
    assert!(
        matches!(&err, genjit::Error::Codegen { message, .. } if message.contains("notaninstruction")),
        "{err}"
    );
    assert_eq!((jit.stats().heap.live_bytes(), d.modules().len()), (heap, modules));
    assert!(d.tier_status("bad").unwrap().lazy);
    assert_eq!(d.lookup::<fn() -> i64>("good").unwrap().call(), 3, "the module's other functions work");
}

#[test]
fn a_first_call_that_cannot_compile_reports_the_function_and_aborts() {
    let Some(signal) =
        crate::child_signal("lazy::a_first_call_that_cannot_compile_reports_the_function_and_aborts")
    else {
        let d = Jit::new().unwrap().create_dylib("lazy").unwrap();
        d.add_lazy_module(Source::ir_text(BAD_ASM), Lazy::new()).unwrap();
        d.lookup::<fn() -> i64>("bad").unwrap().call();
        unreachable!("a lazy function that cannot compile returned");
    };
    assert_eq!(signal, Some(libc::SIGABRT));
}

#[test]
fn a_first_call_compiling_does_not_block_callers_of_other_functions() {
    // `big`'s compile takes a while (100,000 instructions); `quick` is lazy too, and small.
    let mut body = String::from("define i64 @big(i64 %x) {\n  %v0 = add i64 %x, 1\n");
    for i in 1..100_000 {
        body += &format!("  %v{i} = mul i64 %v{}, {}\n", i - 1, i % 7 + 2);
    }
    body += "  ret i64 %v99999\n}\ndefine i64 @quick(i64 %x) {\n  %y = add i64 %x, 1\n  ret i64 %y\n}\n";
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("lazy").unwrap();
    d.add_lazy_module(Source::ir_text(body), Lazy::new()).unwrap();
    let quick = d.lookup::<fn(i64) -> i64>("quick").unwrap();
    let big = d.lookup::<fn(i64) -> i64>("big").unwrap();
    let started = Arc::new(Barrier::new(2));
    let compiling = {
        let started = started.clone();
        std::thread::spawn(move || {
            started.wait();
            big.call(1);
            std::time::Instant::now()
        })
    };
    started.wait();
    // While `big` compiles on the other thread, `quick`'s first call compiles it on this one, then it
    // is called 10,000 times: none of it waits for `big`.
    for x in 0..10_000 {
        assert_eq!(quick.call(x), x + 1);
    }
    let quick_done = std::time::Instant::now();
    let big_done = compiling.join().unwrap();
    assert!(quick_done < big_done, "`quick` waited for `big`'s compile");
    assert_eq!(tiering(&jit).lazy_compiles, 2);
}

static RECORDED: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

extern "C" fn record(x: i64) {
    RECORDED.store(x, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn a_destructor_may_call_a_lazy_function_never_called_when_the_jit_goes() {
    // In a child: a failure here would abort the process.
    if crate::in_child("lazy::a_destructor_may_call_a_lazy_function_never_called_when_the_jit_goes").is_some()
    {
        return;
    }
    const DTOR: &str = "declare void @record(i64)\n\
        @llvm.global_dtors = appending global [1 x { i32, ptr, ptr }] [{ i32, ptr, ptr } { i32 65535, ptr @bye, ptr null }]\n\
        define internal void @bye() {\n  call void @farewell(i64 42)\n  ret void\n}\n\
        define void @farewell(i64 %x) {\n  call void @record(i64 %x)\n  ret void\n}\n";
    for removal in ["remove_dylib", "drop"] {
        RECORDED.store(0, std::sync::atomic::Ordering::SeqCst);
        let jit = Jit::new().unwrap();
        let d = jit.create_dylib("lazy").unwrap();
        d.define_host("record", record as extern "C" fn(i64)).unwrap();
        d.add_lazy_module(Source::ir_text(DTOR), Lazy::new()).unwrap();
        assert!(d.tier_status("farewell").unwrap().lazy);
        match removal {
            "remove_dylib" => jit.remove_dylib(&d).unwrap(),
            _ => drop((d, jit)),
        }
        assert_eq!(RECORDED.load(std::sync::atomic::Ordering::SeqCst), 42, "{removal}");
    }
}
