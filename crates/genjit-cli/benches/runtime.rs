//! What redirection and reclamation cost at run time, each measured in one run against the alternative:
//!
//! - `call/*`: one call of `i64 f(i64)` (an `add`): `direct` jumps to the body's address (what a caller of
//!   an LLJIT or MCJIT symbol does), `entry_stub` calls the entry's stub (what JIT code and `&f` use: one
//!   more indirect jump), `func_call_pinned` is a typed Rust call under a pin the loop holds, `func_call`
//!   pins for each call (the safe default).
//! - `redefine/*`: replacing a function's code from a ready object (no compilation): genjit redirects the
//!   entry and retires the old module (`add_module` of the same name); LLJIT removes the old module's
//!   resource tracker and adds the new one (it cannot define a name twice), then looks it up.
//!   `redirect/genjit` points an explicit redirectable symbol at another JIT symbol.
//! - `churn/*`: cycles of the `genjit churn` workload (compile, add, redefine, remove, with two caller
//!   threads calling throughout), genjit against LLJIT with a resource tracker per module.
//!
//! `cargo bench --bench runtime`

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use genjit::inkwell::context::Context;
use genjit::inkwell::memory_buffer::MemoryBuffer;
use genjit::inkwell::targets::FileType;
use genjit::{pin, Jit, OptLevel, RedirectTarget, Source};
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

fn calls(c: &mut Criterion) {
    let jit = Jit::builder().opt_level(OptLevel::O2).build().unwrap();
    let dylib = jit.create_dylib("calls").unwrap();
    dylib
        .add_module(Source::ir_text("define i64 @f(i64 %x) {\n  %r = add i64 %x, 1\n  ret i64 %r\n}\n"))
        .unwrap();
    let f = dylib.lookup::<fn(i64) -> i64>("f").unwrap();
    let pinned = pin();
    let body = f.current_address(&pinned).unwrap();
    // SAFETY: both addresses are `i64 f(i64)` (checked by the typed lookup above); the body stays mapped
    // while `pinned` lives (it does for the whole group) and the stub while the dylib defines `f`.
    let direct = unsafe { std::mem::transmute::<usize, extern "C" fn(i64) -> i64>(body) };
    // SAFETY: as above.
    let stub = unsafe { std::mem::transmute::<usize, extern "C" fn(i64) -> i64>(f.addr()) };
    let mut group = c.benchmark_group("call");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    group.bench_function("direct", |b| b.iter(|| black_box(direct)(black_box(41))));
    group.bench_function("entry_stub", |b| b.iter(|| black_box(stub)(black_box(41))));
    group
        .bench_function("func_call_pinned", |b| b.iter(|| black_box(&f).call_pinned(&pinned, black_box(41))));
    drop(pinned);
    group.bench_function("func_call", |b| b.iter(|| black_box(&f).call(black_box(41))));
    group.finish();
}

fn redefine(c: &mut Criterion) {
    let versions = [object("g", 1), object("g", 2)];
    let mut group = c.benchmark_group("redefine");
    group.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));

    let jit = Jit::new().unwrap();
    let dylib = jit.create_dylib("redefine").unwrap();
    dylib.add_module(Source::object(versions[0].clone())).unwrap();
    let mut i = 0;
    group.bench_function("genjit", |b| {
        b.iter(|| {
            i += 1;
            dylib.add_module(Source::object(versions[i % 2].clone())).unwrap();
            dylib.lookup_address("g").unwrap()
        })
    });

    let lljit = Arc::new(LlJit::new(OptLevel::O0).unwrap());
    let mut current = Some(lljit.add_object("g", &versions[0]).unwrap());
    let mut i = 0;
    group.bench_function("lljit", |b| {
        b.iter(|| {
            i += 1;
            drop(current.take());
            let module = lljit.add_object("g", &versions[i % 2]).unwrap();
            let addr = module.lookup("g").unwrap();
            current = Some(module);
            addr
        })
    });
    group.finish();

    let mut group = c.benchmark_group("redirect");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    let targets = jit.create_dylib("targets").unwrap();
    targets.add_module(Source::object(object("a", 1))).unwrap();
    targets.add_module(Source::object(object("b", 2))).unwrap();
    dylib.create_redirectable("r", RedirectTarget::Symbol(&targets, "a")).unwrap();
    let mut i = 0;
    group.bench_function("genjit", |b| {
        b.iter(|| {
            i += 1;
            dylib.redirect("r", RedirectTarget::Symbol(&targets, ["a", "b"][i % 2])).unwrap()
        })
    });
    group.finish();
}

fn churn_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(2));
    for engine in [Engine::Genjit, Engine::Lljit] {
        group.bench_function(engine.name(), |b| {
            b.iter_custom(|cycles| {
                let options = ChurnOptions {
                    engine,
                    threads: 2,
                    live: 200,
                    duration: Duration::from_secs(3600),
                    max_cycles: Some(cycles),
                    ..ChurnOptions::default()
                };
                let report = churn(&options).unwrap();
                assert_eq!(report.cycles, cycles);
                Duration::from_secs_f64(report.seconds)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, calls, redefine, churn_throughput);
criterion_main!(benches);
