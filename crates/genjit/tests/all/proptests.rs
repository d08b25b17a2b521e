//! Randomly generated arithmetic functions, run through genjit and through LLVM's MCJIT (via inkwell) in
//! the same test; results must agree on random inputs.

use genjit::inkwell::context::Context;
use genjit::inkwell::memory_buffer::MemoryBuffer;
use genjit::inkwell::OptimizationLevel;
use genjit::{Jit, OptLevel, Source};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Expr {
    A,
    B,
    Const(i64),
    Bin(&'static str, Box<Expr>, Box<Expr>),
    Shift(&'static str, Box<Expr>, u8),
    Select(Box<Expr>, Box<Expr>, Box<Expr>),
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![Just(Expr::A), Just(Expr::B), any::<i64>().prop_map(Expr::Const)];
    leaf.prop_recursive(5, 40, 3, |inner| {
        prop_oneof![
            (
                prop::sample::select(vec!["add", "sub", "mul", "and", "or", "xor"]),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, l, r)| Expr::Bin(op, Box::new(l), Box::new(r))),
            (prop::sample::select(vec!["shl", "lshr", "ashr"]), inner.clone(), 0u8..64)
                .prop_map(|(op, e, k)| Expr::Shift(op, Box::new(e), k)),
            (inner.clone(), inner.clone(), inner).prop_map(|(c, t, f)| Expr::Select(
                Box::new(c),
                Box::new(t),
                Box::new(f)
            )),
        ]
    })
}

fn emit(e: &Expr, body: &mut String, n: &mut usize) -> String {
    fn fresh(body: &mut String, n: &mut usize, rhs: String) -> String {
        *n += 1;
        body.push_str(&format!("  %t{n} = {rhs}\n"));
        format!("%t{n}")
    }
    match e {
        Expr::A => "%a".into(),
        Expr::B => "%b".into(),
        Expr::Const(c) => c.to_string(),
        Expr::Bin(op, l, r) => {
            let (l, r) = (emit(l, body, n), emit(r, body, n));
            fresh(body, n, format!("{op} i64 {l}, {r}"))
        }
        Expr::Shift(op, x, k) => {
            let x = emit(x, body, n);
            fresh(body, n, format!("{op} i64 {x}, {k}"))
        }
        Expr::Select(c, t, f) => {
            let (c, t, f) = (emit(c, body, n), emit(t, body, n), emit(f, body, n));
            let cond = fresh(body, n, format!("icmp slt i64 {c}, {t}"));
            fresh(body, n, format!("select i1 {cond}, i64 {t}, i64 {f}"))
        }
    }
}

fn function(e: &Expr) -> String {
    let mut body = String::new();
    let result = emit(e, &mut body, &mut 0);
    format!("define i64 @f(i64 %a, i64 %b) {{\n{body}  ret i64 {result}\n}}\n")
}

fn mcjit(ir: &str, inputs: &[(i64, i64)]) -> Vec<i64> {
    let ctx = Context::create();
    let module =
        ctx.create_module_from_ir(MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "m")).unwrap();
    let engine = module.create_jit_execution_engine(OptimizationLevel::Default).unwrap();
    // SAFETY: the IR defines `i64 @f(i64, i64)`, matching this type.
    let f = unsafe { engine.get_function::<unsafe extern "C" fn(i64, i64) -> i64>("f") }.unwrap();
    // SAFETY: as above.
    inputs.iter().map(|&(a, b)| unsafe { f.call(a, b) }).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn arithmetic_matches_mcjit(e in expr(), inputs in prop::collection::vec(any::<(i64, i64)>(), 8), opt in 0u8..4) {
        let ir = function(&e);
        let level: OptLevel = opt.to_string().parse().unwrap();
        let jit = Jit::builder().opt_level(level).build().unwrap();
        let d = jit.create_dylib("p").unwrap();
        d.add_module(Source::ir_text(ir.clone())).unwrap();
        let f = d.lookup::<fn(i64, i64) -> i64>("f").unwrap();
        let ours: Vec<i64> = inputs.iter().map(|&(a, b)| f.call(a, b)).collect();
        prop_assert_eq!(ours, mcjit(&ir, &inputs), "{}", ir);
    }
}
