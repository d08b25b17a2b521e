//! A REPL redefining a function again and again while another thread keeps calling it: every call runs
//! some complete version, handles follow redefinitions, and superseded versions are freed.
//!
//! `cargo run --release --example repl`

use genjit::{Jit, Source};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn version(n: i64) -> Source {
    Source::ir_text(format!("define i64 @answer(i64 %x) {{\n  %r = add i64 %x, {n}\n  ret i64 %r\n}}\n"))
        .named(format!("answer-v{n}"))
}

fn main() -> genjit::Result<()> {
    let jit = Jit::new()?;
    let session = jit.create_dylib("repl")?;
    session.add_module(version(0))?;
    // A handle looked up once follows every later redefinition.
    let answer = session.lookup::<fn(i64) -> i64>("answer")?;

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let caller = {
        let (answer, stop, calls) = (answer.clone(), stop.clone(), calls.clone());
        std::thread::spawn(move || {
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                let v = answer.call(0);
                // Versions only move forward: a call never sees an older one than a previous call did.
                assert!(v >= last, "went back from v{last} to v{v}");
                last = v;
                calls.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for n in 1..=500 {
        // The user typed a new definition: the same name and signature, a new body.
        let module = session.add_module(version(n))?;
        assert_eq!(answer.call(0), n, "the new version is live as soon as add_module returns");
        if n % 100 == 0 {
            println!("v{n}: added in {:?}", module.timings().total());
        }
    }
    std::thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::Relaxed);
    caller.join().expect("caller thread");
    jit.reclaim(Duration::from_secs(5));
    let stats = jit.stats();
    println!(
        "{} calls during 500 redefinitions; {} module live, {} bytes awaiting reclamation",
        calls.load(Ordering::Relaxed),
        stats.modules,
        stats.awaiting_bytes
    );
    assert_eq!(stats.modules, 1, "superseded versions were retired");
    Ok(())
}
