//! Isolated compilation: LLVM runs in worker processes (here the test binary itself, serving through
//! the `isolate::worker` test), so what LLVM can only report fatally becomes a typed error.

use genjit::{Error, Isolation, Jit, Source};

/// Serves compiles when started as a worker (and does nothing as an ordinary test).
#[test]
fn worker() {
    if std::env::var_os("GENJIT_COMPILE_WORKER").is_some() {
        genjit::serve_compile_worker().unwrap();
    }
}

fn isolation() -> Isolation {
    let args = ["--exact", "isolate::worker", "--nocapture", "--test-threads=1"];
    Isolation::command(std::env::current_exe().unwrap(), args).env("GENJIT_COMPILE_WORKER", "1")
}

/// An intrinsic of another target: LLVM's x86 backend reports "Cannot select" with
/// `report_fatal_error`, which aborts the process.
const OTHER_TARGET: &str = "declare <4 x float> @llvm.aarch64.neon.frecpe.v4f32(<4 x float>)\n\
    define <4 x float> @f(<4 x float> %x) {\n\
      %r = call <4 x float> @llvm.aarch64.neon.frecpe.v4f32(<4 x float> %x)\n  ret <4 x float> %r\n}\n";

#[test]
fn isolated_modules_run_like_in_process_ones() {
    let jit = Jit::builder().isolate(isolation()).opt_level(genjit::OptLevel::O2).build().unwrap();
    let d = jit.create_dylib("iso").unwrap();
    let m = d
        .add_module(
            Source::ir_text("define i64 @twice(i64 %x) {\n  %r = shl i64 %x, 1\n  ret i64 %r\n}\n")
                .named("twice"),
        )
        .unwrap();
    assert_eq!(d.lookup::<fn(i64) -> i64>("twice").unwrap().call(21), 42, "signatures crossed the process");
    assert!(
        m.timings().emit > std::time::Duration::ZERO,
        "the worker's timings came back: {:?}",
        m.timings()
    );
    // A typed error from the worker keeps its kind, module and LLVM's message.
    let err = d.add_module(Source::ir_text("define i64 @bad(").named("bad")).unwrap_err();
    assert!(
        matches!(&err, Error::Parse { module, message } if module == "bad" && message.contains("bad:1:")),
        "{err:?}"
    );
    assert_eq!(jit.stats().compile_workers_started, 1, "one worker served both");
}

#[test]
fn a_fatal_llvm_error_is_a_typed_error_and_the_jit_goes_on() {
    let jit = Jit::builder().isolate(isolation()).build().unwrap();
    let d = jit.create_dylib("iso").unwrap();
    d.add_module(Source::ir_text("define i64 @keep() {\n  ret i64 7\n}\n")).unwrap();
    let before = jit.stats();
    let err = d.add_module(Source::ir_text(OTHER_TARGET).named("neon")).unwrap_err();
    let Error::CompilerCrashed { module, reason } = &err else { panic!("{err:?}") };
    assert_eq!(module, "neon");
    assert!(reason.contains("signal: 6") && reason.contains("Cannot select"), "{reason}");
    let after = jit.stats();
    assert_eq!((after.modules, after.symbols), (before.modules, before.symbols), "the JIT is unchanged");
    assert_eq!(d.lookup::<fn() -> i64>("keep").unwrap().call(), 7);
    // A new worker takes over.
    d.add_module(Source::ir_text("define i64 @next() {\n  ret i64 8\n}\n")).unwrap();
    assert_eq!(jit.stats().compile_workers_started, 2);
}

#[test]
fn in_process_the_same_module_ends_the_process() {
    // The control: without isolation, LLVM aborts (so this runs in a child process).
    let Some(signal) = crate::child_signal("isolate::in_process_the_same_module_ends_the_process") else {
        let d = Jit::new().unwrap().create_dylib("d").unwrap();
        let _ = d.add_module(Source::ir_text(OTHER_TARGET));
        unreachable!("LLVM returned from a fatal error");
    };
    assert_eq!(signal, Some(libc::SIGABRT));
}

#[test]
fn workers_are_recycled_after_n_compiles() {
    let jit = Jit::builder().isolate(isolation().recycle_after(2)).build().unwrap();
    let d = jit.create_dylib("iso").unwrap();
    for i in 0..5 {
        d.add_module(Source::ir_text(format!("define i64 @f{i}() {{\n  ret i64 {i}\n}}\n"))).unwrap();
    }
    assert_eq!(jit.stats().compile_workers_started, 3, "5 compiles, 2 per worker");
}

#[test]
fn a_compile_past_its_time_limit_is_killed_and_the_jit_goes_on() {
    let limit = std::time::Duration::from_millis(20);
    let jit =
        Jit::builder().isolate(isolation().timeout(limit)).opt_level(genjit::OptLevel::O2).build().unwrap();
    let d = jit.create_dylib("iso").unwrap();
    d.add_module(Source::ir_text("define i64 @keep() {\n  ret i64 7\n}\n")).unwrap();
    let before = jit.stats();
    // 40,000 dependent instructions: ~190 ms at O2 on the CI machine (parsing alone ~50 ms), against a
    // one-line module's ~1 ms.
    let mut ir = String::from("define i64 @huge(i64 %x0) {\n");
    for i in 0..40_000 {
        ir += &format!("  %x{} = {} i64 %x{i}, {}\n", i + 1, ["add", "mul", "xor"][i % 3], i % 97 + 1);
    }
    ir += "  ret i64 %x40000\n}\n";
    let started = std::time::Instant::now();
    let err = d.add_module(Source::ir_text(ir).named("huge")).unwrap_err();
    assert!(
        matches!(&err, Error::CompileTimeout { module, limit: l } if module == "huge" && *l == limit),
        "{err:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the caller was held {:?}",
        started.elapsed()
    );
    let after = jit.stats();
    assert_eq!((after.modules, after.symbols), (before.modules, before.symbols));
    // A fresh worker serves the next module.
    d.add_module(Source::ir_text("define i64 @next() {\n  ret i64 8\n}\n")).unwrap();
    assert_eq!(d.lookup::<fn() -> i64>("next").unwrap().call(), 8);
    assert_eq!(jit.stats().compile_workers_started, 2);
}
