//! A hot loop: hold one pin across many calls instead of pinning for each.
//!
//! `Func::call` pins the thread for the duration of the call so that the code cannot be freed under it.
//! A pin is two plain stores, so the gain of pinning once (`Func::pin`) and calling with `call_pinned`
//! in a loop of millions of calls is small. Keep such scopes short: while a thread is pinned, what its
//! dylib can reach and what was retired after the pin began cannot be freed.
//!
//! `cargo run --release --example hot_loop` (an illustration; the measured comparison is
//! `cargo bench -p genjit-cli --bench runtime call`).

use genjit::{Jit, OptLevel, Source};
use std::hint::black_box;
use std::time::Instant;

fn main() -> genjit::Result<()> {
    let jit = Jit::builder().opt_level(OptLevel::O2).build()?;
    let dylib = jit.create_dylib("kernels")?;
    dylib.add_module(Source::ir_text(
        "define i64 @step(i64 %x) {\n  %m = mul i64 %x, 6364136223846793005\n  %r = add i64 %m, 1442695040888963407\n  ret i64 %r\n}\n",
    ))?;
    let step = dylib.lookup::<fn(i64) -> i64>("step")?;
    const N: u64 = 10_000_000;

    let start = Instant::now();
    let mut x = 1;
    for _ in 0..N {
        x = step.call(black_box(x));
    }
    let per_call = start.elapsed() / N as u32;

    let start = Instant::now();
    let mut y = 1;
    {
        let pinned = step.pin().expect("a JIT function");
        for _ in 0..N {
            y = step.call_pinned(&pinned, black_box(y));
        }
    } // The pin ends here: reclamation may proceed.
    let per_pinned = start.elapsed() / N as u32;

    assert_eq!(x, y, "both loops computed the same sequence");
    println!("{N} calls: call {per_call:?} each, call_pinned {per_pinned:?} each (result {x:#x})");
    Ok(())
}
