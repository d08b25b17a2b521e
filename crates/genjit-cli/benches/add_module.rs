//! Add-module latency, source text to callable address, in one run against the alternatives a user would
//! pick: LLVM's LLJIT through its C API (with a ResourceTracker per module), inkwell's MCJIT engine per
//! module, and the floor, parse + emit an object with a reused TargetMachine. Every engine removes the
//! module again inside the measured loop (genjit: remove_module; LLJIT: ResourceTracker remove; MCJIT:
//! engine drop), so memory stays flat and all pay for their cleanup.
//!
//! `cargo bench --bench add_module`

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use genjit::inkwell::context::Context;
use genjit::inkwell::memory_buffer::MemoryBuffer;
use genjit::inkwell::passes::PassBuilderOptions;
use genjit::inkwell::targets::{FileType, TargetMachine};
use genjit::inkwell::OptimizationLevel;
use genjit::{Jit, OptLevel, Source};
use genjit_cli::peer::LlJit;
use std::sync::Arc;
use std::time::Duration;

fn function(name: &str) -> String {
    format!(
        "define i64 @{name}(i64 %n) {{\nentry:\n  br label %loop\nloop:\n  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]\n  %acc = phi i64 [ %n, %entry ], [ %a9, %loop ]\n  %a1 = mul i64 %acc, 6364136223846793005\n  %a2 = add i64 %a1, 1442695040888963407\n  %a3 = lshr i64 %a2, 17\n  %a4 = xor i64 %a2, %a3\n  %a5 = shl i64 %a4, 5\n  %a6 = add i64 %a5, %i\n  %a7 = and i64 %a6, 1099511627775\n  %a8 = or i64 %a7, 3\n  %a9 = sub i64 %a8, %a4\n  %i1 = add i64 %i, 1\n  %c = icmp ult i64 %i1, 100\n  br i1 %c, label %loop, label %done\ndone:\n  ret i64 %a9\n}}\n"
    )
}

fn module(functions: usize) -> String {
    (0..functions).map(|i| function(&format!("f{i}"))).collect()
}

fn machine(level: OptLevel) -> TargetMachine {
    genjit::host_target_machine(level).unwrap()
}

fn passes(opt: u8) -> Option<String> {
    (opt > 0).then(|| format!("default<O{opt}>"))
}

fn floor(ir: &str, tm: &TargetMachine, opt: u8) -> usize {
    let ctx = Context::create();
    let m =
        ctx.create_module_from_ir(MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "m")).unwrap();
    if let Some(p) = passes(opt) {
        m.run_passes(&p, tm, PassBuilderOptions::create()).unwrap();
    }
    tm.write_to_memory_buffer(&m, FileType::Object).unwrap().get_size()
}

fn mcjit(ir: &str, tm: &TargetMachine, opt: u8, level: OptimizationLevel) -> usize {
    let ctx = Context::create();
    let m =
        ctx.create_module_from_ir(MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "m")).unwrap();
    if let Some(p) = passes(opt) {
        m.run_passes(&p, tm, PassBuilderOptions::create()).unwrap();
    }
    let engine = m.create_jit_execution_engine(level).unwrap();
    engine.get_function_address("f0").unwrap()
}

fn bench(c: &mut Criterion) {
    for (opt, level, genjit_level) in
        [(0u8, OptimizationLevel::None, OptLevel::O0), (2, OptimizationLevel::Default, OptLevel::O2)]
    {
        let tm = machine(genjit_level);
        let lljit = Arc::new(LlJit::new(genjit_level).unwrap());
        let jit = Jit::builder().opt_level(genjit_level).build().unwrap();
        let dylib = jit.create_dylib("bench").unwrap();
        let mut group = c.benchmark_group(format!("add_module/O{opt}"));
        group.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
        for functions in [1usize, 100] {
            let ir = module(functions);
            let size = if functions == 1 { "small" } else { "100fn" };
            group.bench_with_input(BenchmarkId::new("floor_parse_emit", size), &ir, |b, ir| {
                b.iter(|| floor(ir, &tm, opt))
            });
            group.bench_with_input(BenchmarkId::new("genjit", size), &ir, |b, ir| {
                b.iter(|| {
                    let m = dylib.add_module(Source::ir_text(ir.clone())).unwrap();
                    let addr = dylib.lookup_address("f0").unwrap();
                    dylib.remove_module(&m).unwrap();
                    addr
                })
            });
            group.bench_with_input(BenchmarkId::new("lljit", size), &ir, |b, ir| {
                // Add under a tracker, look up (ORC compiles here), remove (the module's drop).
                b.iter(|| lljit.add("m", ir).unwrap().lookup("f0").unwrap())
            });
            group.bench_with_input(BenchmarkId::new("mcjit", size), &ir, |b, ir| {
                b.iter(|| mcjit(ir, &tm, opt, level))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
