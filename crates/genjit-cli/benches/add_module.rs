//! Add-module latency, IR text to callable address and removed again, against the alternatives a user
//! would pick: LLVM's LLJIT through its C API (a ResourceTracker per module), inkwell's MCJIT engine per
//! module, and the floor, parse + emit an object with a reused TargetMachine. Every engine removes the
//! module inside the measured iteration (genjit: remove_module; LLJIT: tracker removal; MCJIT: engine drop),
//! so memory stays flat and all pay for their cleanup. The engines alternate inside one measurement loop
//! (see `common`); each row's ratios compare runs of the same rounds. `genjit isolated` compiles in a
//! worker process (`JitBuilder::isolate`, the worker recycled every 100 modules): the cost of isolation.
//!
//! `cargo bench -p genjit-cli --bench add_module`

#![allow(missing_docs)]

mod common;

use common::{contest, Contestant};
use genjit::inkwell::context::Context;
use genjit::inkwell::memory_buffer::MemoryBuffer;
use genjit::inkwell::module::Module;
use genjit::inkwell::passes::PassBuilderOptions;
use genjit::inkwell::targets::{FileType, TargetMachine};
use genjit::inkwell::OptimizationLevel;
use genjit::{Jit, OptLevel, Source};
use genjit_cli::peer::LlJit;
use std::hint::black_box;
use std::sync::Arc;

fn function(name: &str) -> String {
    format!(
        "define i64 @{name}(i64 %n) {{\nentry:\n  br label %loop\nloop:\n  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]\n  %acc = phi i64 [ %n, %entry ], [ %a9, %loop ]\n  %a1 = mul i64 %acc, 6364136223846793005\n  %a2 = add i64 %a1, 1442695040888963407\n  %a3 = lshr i64 %a2, 17\n  %a4 = xor i64 %a2, %a3\n  %a5 = shl i64 %a4, 5\n  %a6 = add i64 %a5, %i\n  %a7 = and i64 %a6, 1099511627775\n  %a8 = or i64 %a7, 3\n  %a9 = sub i64 %a8, %a4\n  %i1 = add i64 %i, 1\n  %c = icmp ult i64 %i1, 100\n  br i1 %c, label %loop, label %done\ndone:\n  ret i64 %a9\n}}\n"
    )
}

fn module(functions: usize) -> String {
    (0..functions).map(|i| function(&format!("f{i}"))).collect()
}

/// Parses `ir` and runs the level's IR pipeline: the part every engine shares.
fn parsed<'c>(ctx: &'c Context, ir: &str, tm: &TargetMachine, level: OptLevel) -> Module<'c> {
    let m =
        ctx.create_module_from_ir(MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "m")).unwrap();
    if level != OptLevel::O0 {
        m.run_passes(&format!("default<{level}>"), tm, PassBuilderOptions::create()).unwrap();
    }
    m
}

fn floor(ir: &str, tm: &TargetMachine, level: OptLevel) -> usize {
    let ctx = Context::create();
    let m = parsed(&ctx, ir, tm, level);
    tm.write_to_memory_buffer(&m, FileType::Object).unwrap().get_size()
}

fn mcjit(ir: &str, tm: &TargetMachine, level: OptLevel) -> usize {
    let ctx = Context::create();
    let m = parsed(&ctx, ir, tm, level);
    let codegen = if level == OptLevel::O0 { OptimizationLevel::None } else { OptimizationLevel::Default };
    let engine = m.create_jit_execution_engine(codegen).unwrap();
    engine.get_function_address("f0").unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects rows by substring.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for level in [OptLevel::O0, OptLevel::O2] {
        let tm = genjit::host_target_machine(level).unwrap();
        let lljit = Arc::new(LlJit::new(level).unwrap());
        let jit = Jit::builder().opt_level(level).build().unwrap();
        let dylib = jit.create_dylib("bench").unwrap();
        // The same, compiling in a worker process (`genjit compile-worker`).
        let worker = genjit::Isolation::command(env!("CARGO_BIN_EXE_genjit"), ["compile-worker"]);
        let isolated_jit = Jit::builder().opt_level(level).isolate(worker).build().unwrap();
        let isolated = isolated_jit.create_dylib("bench").unwrap();
        for (functions, size) in [(1usize, "small"), (100, "100 functions")] {
            let title = format!("add_module {level}, {size}");
            if filter.as_ref().is_some_and(|f| !title.contains(f.as_str())) {
                continue;
            }
            let ir = module(functions);
            // About 10-40 ms per sample.
            let (rounds, batch) = match (level, functions) {
                (OptLevel::O0, 1) => (30, 40),
                (_, 1) => (30, 4),
                (OptLevel::O0, _) => (20, 3),
                _ => (8, 1),
            };
            let mut contestants = [
                Contestant::new("floor parse+emit", || {
                    black_box(floor(&ir, &tm, level));
                }),
                Contestant::new("genjit", || {
                    let m = dylib.add_module(Source::ir_text(ir.clone())).unwrap();
                    black_box(dylib.lookup_address("f0").unwrap());
                    dylib.remove_module(&m).unwrap();
                }),
                Contestant::new("genjit isolated", || {
                    let m = isolated.add_module(Source::ir_text(ir.clone())).unwrap();
                    black_box(isolated.lookup_address("f0").unwrap());
                    isolated.remove_module(&m).unwrap();
                }),
                Contestant::new("lljit", || {
                    black_box(lljit.add("m", &ir).unwrap().lookup("f0").unwrap());
                }),
                Contestant::new("mcjit", || {
                    black_box(mcjit(&ir, &tm, level));
                }),
            ];
            contest(&title, rounds, batch, &mut contestants).print(&["floor parse+emit", "genjit", "lljit"]);
        }
    }
}
