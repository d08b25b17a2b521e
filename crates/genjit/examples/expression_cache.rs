//! A query engine's expression cache: compile each distinct expression once, call it many times, and
//! unload the least recently used ones so memory stays bounded however long the engine runs.
//!
//! `cargo run --release --example expression_cache`

use genjit::{Dylib, Func, Jit, ModuleHandle, Source};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// A compiled expression: `(a, b) -> value`.
type Expr = Func<fn(i64, i64) -> i64>;

/// Compiled expressions by their text, at most `capacity` of them.
struct ExpressionCache {
    dylib: Dylib,
    capacity: usize,
    entries: HashMap<String, (Expr, ModuleHandle)>,
    /// Least recently used first.
    order: VecDeque<String>,
    next_id: u64,
    /// Total time spent adding modules (every phase, from each module's timings).
    compile_time: Duration,
}

impl ExpressionCache {
    fn new(jit: &Jit, capacity: usize) -> genjit::Result<Self> {
        Ok(ExpressionCache {
            dylib: jit.create_dylib("expressions")?,
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_id: 0,
            compile_time: Duration::ZERO,
        })
    }

    /// The compiled form of `expr`, an IR expression over `%a` and `%b` ending in a value `%r`.
    fn get(&mut self, expr: &str) -> genjit::Result<Expr> {
        if let Some((f, _)) = self.entries.get(expr) {
            let f = f.clone();
            self.touch(expr);
            return Ok(f);
        }
        self.next_id += 1;
        let name = format!("expr{}", self.next_id);
        let ir = format!("define i64 @{name}(i64 %a, i64 %b) {{\n{expr}\n  ret i64 %r\n}}\n");
        let module = self.dylib.add_module(Source::ir_text(ir).named(&name))?;
        self.compile_time += module.timings().total();
        let f = self.dylib.lookup::<fn(i64, i64) -> i64>(&name)?;
        self.entries.insert(expr.to_string(), (f.clone(), module));
        self.order.push_back(expr.to_string());
        while self.order.len() > self.capacity {
            let oldest = self.order.pop_front().expect("over capacity");
            let (_, module) = self.entries.remove(&oldest).expect("cached");
            // Calls still running the old code finish; its memory returns once none is.
            self.dylib.remove_module(&module)?;
        }
        Ok(f)
    }

    fn touch(&mut self, expr: &str) {
        if let Some(i) = self.order.iter().position(|e| e == expr) {
            let e = self.order.remove(i).expect("present");
            self.order.push_back(e);
        }
    }
}

fn main() -> genjit::Result<()> {
    let jit = Jit::new()?;
    let mut cache = ExpressionCache::new(&jit, 64)?;
    let mut checksum = 0i64;
    for query in 0..2_000u64 {
        // A workload with a hot set of 32 expressions and a long tail of one-offs.
        let k = if query % 4 == 0 { query } else { query % 32 };
        let expr = format!("  %t = mul i64 %a, {}\n  %r = add i64 %t, %b", k + 1);
        let f = cache.get(&expr)?;
        for row in 0..100 {
            checksum = checksum.wrapping_add(f.call(row, k as i64));
        }
    }
    jit.reclaim(Duration::from_secs(5));
    let stats = jit.stats();
    let dylib = &stats.dylibs[0];
    println!("checksum {checksum}");
    println!(
        "{} expressions cached, {} KiB of code and {} KiB of data, {} heap mappings; {:?} spent compiling",
        dylib.modules,
        dylib.code_bytes / 1024,
        dylib.data_bytes / 1024,
        stats.heap_mappings,
        cache.compile_time
    );
    assert_eq!(dylib.modules, 64, "the cache stays bounded");
    Ok(())
}
