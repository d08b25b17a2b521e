//! Model-based and concurrent tests of redefinition and removal.
//!
//! `model`: random sequences of add / redefine / add-caller / remove / remove-dylib / replace-all / call over
//! three dylibs, checked after every step against a plain model of which version each name maps to.
//! `callers_never_see_torn_or_freed_code`: caller threads call continuously while a mutator redefines and
//! churns modules; every result must come from a version live at some point during the call.

use genjit::{Dylib, Error, Jit, ModuleHandle, Removal, Source};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NAMES: usize = 4;
const DYLIBS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    /// Define the names in the bit mask (a redefinition where they exist).
    Add {
        dylib: usize,
        mask: u8,
    },
    /// A module whose function calls `f{callee}`.
    AddCaller {
        dylib: usize,
        callee: usize,
    },
    Remove {
        dylib: usize,
        pick: usize,
        force: bool,
    },
    RemoveDylib {
        dylib: usize,
    },
    ReplaceAll {
        dylib: usize,
        mask: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let d = 0..DYLIBS;
    prop_oneof![
        4 => (d.clone(), 1u8..16).prop_map(|(dylib, mask)| Op::Add { dylib, mask }),
        2 => (d.clone(), 0..NAMES).prop_map(|(dylib, callee)| Op::AddCaller { dylib, callee }),
        3 => (d.clone(), 0usize..8, any::<bool>()).prop_map(|(dylib, pick, force)| Op::Remove { dylib, pick, force }),
        1 => d.clone().prop_map(|dylib| Op::RemoveDylib { dylib }),
        1 => (d, 1u8..16).prop_map(|(dylib, mask)| Op::ReplaceAll { dylib, mask }),
    ]
}

/// One module in the model: what it defines.
#[derive(Clone, Debug)]
enum Def {
    /// `f{i}` returning `version * 10 + i` for each name in the mask.
    Names { mask: u8 },
    /// `c{id}` calling `f{callee}`.
    Caller { callee: usize },
}

#[derive(Default, Debug)]
struct ModelDylib {
    /// Live modules by id, in add order.
    modules: BTreeMap<u64, Def>,
    /// `f{i}` -> (defining module id, value).
    names: BTreeMap<usize, (u64, i64)>,
}

impl ModelDylib {
    fn callers_of(&self, i: usize, except: &[u64]) -> bool {
        self.modules
            .iter()
            .any(|(id, d)| matches!(d, Def::Caller { callee } if *callee == i) && !except.contains(id))
    }

    fn define(&mut self, id: u64, mask: u8, version: i64) {
        for i in 0..NAMES {
            if mask & (1 << i) != 0 {
                self.names.insert(i, (id, version * 10 + i as i64));
            }
        }
        self.modules.insert(id, Def::Names { mask });
        // Modules that lost every name are retired.
        let names = &self.names;
        self.modules.retain(|mid, d| match d {
            Def::Names { mask, .. } => {
                (0..NAMES).any(|i| *mask & (1 << i) != 0 && names.get(&i).is_some_and(|n| n.0 == *mid))
            }
            Def::Caller { .. } => true,
        });
    }
}

fn names_module(mask: u8, version: i64) -> String {
    (0..NAMES)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| format!("define i64 @f{i}() {{\n ret i64 {}\n}}\n", version * 10 + i as i64))
        .collect()
}

struct Real {
    jit: Jit,
    dylibs: Vec<Dylib>,
    handles: BTreeMap<u64, ModuleHandle>,
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let jit = Jit::builder().handshake_after(Some(Duration::ZERO)).build().unwrap();
    let dylibs = (0..DYLIBS).map(|i| jit.create_dylib(&format!("d{i}")).unwrap()).collect();
    let mut real = Real { jit, dylibs, handles: BTreeMap::new() };
    let mut model: Vec<ModelDylib> = (0..DYLIBS).map(|_| ModelDylib::default()).collect();
    for (id, op) in (1u64..).zip(ops) {
        match op {
            Op::Add { dylib, mask } => {
                let h =
                    real.dylibs[dylib].add_module(Source::ir_text(names_module(mask, id as i64))).unwrap();
                real.handles.insert(id, h);
                model[dylib].define(id, mask, id as i64);
            }
            Op::AddCaller { dylib, callee } => {
                let src = format!(
                    "declare i64 @f{callee}()\ndefine i64 @c{id}() {{\n %x = call i64 @f{callee}()\n ret i64 %x\n}}\n"
                );
                let result = real.dylibs[dylib].add_module(Source::ir_text(src));
                if model[dylib].names.contains_key(&callee) {
                    real.handles.insert(id, result.unwrap());
                    model[dylib].modules.insert(id, Def::Caller { callee });
                } else {
                    prop_assert!(matches!(result, Err(Error::UnresolvedSymbols { .. })), "{result:?}");
                }
            }
            Op::Remove { dylib, pick, force } => {
                let m = &mut model[dylib];
                let Some((&victim, def)) = m.modules.iter().nth(pick % m.modules.len().max(1)) else {
                    continue;
                };
                let lost: Vec<usize> = match def {
                    Def::Names { mask, .. } => (0..NAMES)
                        .filter(|&i| mask & (1 << i) != 0 && m.names.get(&i).is_some_and(|n| n.0 == victim))
                        .collect(),
                    Def::Caller { .. } => vec![],
                };
                let refused = !force && lost.iter().any(|&i| m.callers_of(i, &[victim]));
                let removal = if force { Removal::Force } else { Removal::Refuse };
                let result = real.dylibs[dylib].remove_modules(&[real.handles[&victim].clone()], removal);
                if refused {
                    prop_assert!(matches!(result, Err(Error::ModuleInUse { .. })), "{result:?}");
                } else {
                    result.unwrap();
                    m.modules.remove(&victim);
                    for i in lost {
                        m.names.remove(&i);
                    }
                }
            }
            Op::RemoveDylib { dylib } => {
                real.jit.remove_dylib(&real.dylibs[dylib]).unwrap();
                real.dylibs[dylib] = real.jit.create_dylib(&format!("d{dylib}")).unwrap();
                model[dylib] = ModelDylib::default();
            }
            Op::ReplaceAll { dylib, mask } => {
                let src = Source::ir_text(names_module(mask, id as i64));
                let handles = real.dylibs[dylib].replace_all(vec![src], Removal::Refuse).unwrap();
                real.handles.insert(id, handles[0].clone());
                model[dylib] = ModelDylib::default();
                model[dylib].define(id, mask, id as i64);
            }
        }
        check(&real, &model)?;
    }
    Ok(())
}

fn check(real: &Real, model: &[ModelDylib]) -> Result<(), TestCaseError> {
    for (d, m) in real.dylibs.iter().zip(model) {
        for i in 0..NAMES {
            let found = d.lookup::<fn() -> i64>(&format!("f{i}"));
            match m.names.get(&i) {
                Some(&(_, v)) => prop_assert_eq!(found.unwrap().call(), v),
                None => prop_assert!(matches!(found, Err(Error::SymbolNotFound { .. })), "{found:?}"),
            }
        }
        for (id, def) in &m.modules {
            if let Def::Caller { callee } = def {
                // A caller whose callee was force-removed would abort: only call live ones.
                if let Some(&(_, v)) = m.names.get(callee) {
                    prop_assert_eq!(d.lookup::<fn() -> i64>(&format!("c{id}")).unwrap().call(), v);
                }
            }
        }
        let mut live: Vec<u64> = m.modules.keys().copied().collect();
        let mut have: Vec<u64> = d
            .modules()
            .iter()
            .map(|h| *real.handles.iter().find(|(_, r)| *r == h).expect("known handle").0)
            .collect();
        live.sort();
        have.sort();
        prop_assert_eq!(live, have);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}

/// How long the concurrent test runs: `GENJIT_SOAK_SECS` for a longer soak.
fn soak() -> Duration {
    let secs = std::env::var("GENJIT_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    Duration::from_secs(secs)
}

#[test]
fn callers_never_see_torn_or_freed_code() {
    let jit = Jit::builder().handshake_after(Some(Duration::ZERO)).build().unwrap();
    let d = jit.create_dylib("d").unwrap();
    let version = |v: i64| {
        Source::ir_text(format!(
            "define i64 @f(i64 %x) {{\n %a = mul i64 %x, 0\n %r = add i64 %a, {v}\n ret i64 %r\n}}\n\
             define i64 @twice(i64 %x) {{\n %a = call i64 @f(i64 %x)\n %b = call i64 @f(i64 %x)\n %r = add i64 %a, %b\n ret i64 %r\n}}\n"
        ))
    };
    d.add_module(version(1)).unwrap();
    // `committed`: the newest version whose add returned; `started`: the newest whose add began.
    let committed = Arc::new(AtomicI64::new(1));
    let started = Arc::new(AtomicI64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for t in 0..2 {
        let (f, twice) =
            (d.lookup::<fn(i64) -> i64>("f").unwrap(), d.lookup::<fn(i64) -> i64>("twice").unwrap());
        let (committed, started, stop) = (committed.clone(), started.clone(), stop.clone());
        callers.push(std::thread::spawn(move || {
            let mut calls = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let lo = committed.load(Ordering::SeqCst);
                let (r, pair) = if t == 0 {
                    (f.call(7), None)
                } else {
                    let pinned = f.pin().unwrap();
                    (f.call_pinned(&pinned, 7), Some(twice.call_pinned(&pinned, 7)))
                };
                let hi = started.load(Ordering::SeqCst);
                assert!(lo <= r && r <= hi, "result {r} outside versions [{lo}, {hi}] live during the call");
                if let Some(p) = pair {
                    // `twice` calls f twice; each call may see a different (live) version.
                    assert!(2 * lo <= p && p <= 2 * hi, "twice = {p} outside [{}, {}]", 2 * lo, 2 * hi);
                }
                calls += 1;
            }
            calls
        }));
    }
    let deadline = Instant::now() + soak();
    let mut v = 1;
    let mut churn: Vec<ModuleHandle> = Vec::new();
    while Instant::now() < deadline {
        v += 1;
        started.store(v, Ordering::SeqCst);
        d.add_module(version(v)).unwrap();
        committed.store(v, Ordering::SeqCst);
        // Unrelated modules come and go so freed memory is reused while callers run.
        churn.push(
            d.add_module(Source::ir_text(format!("define i64 @g{v}() {{\n ret i64 {v}\n}}\n"))).unwrap(),
        );
        if churn.len() > 4 {
            d.remove_module(&churn.remove(0)).unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let calls: u64 = callers.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(v > 20 && calls > 1000, "too little happened: {v} versions, {calls} calls");
    assert!(jit.reclaim(Duration::from_secs(10)));
    assert_eq!(d.modules().len(), 1 + churn.len(), "superseded versions were retired");
    let s = jit.stats();
    eprintln!(
        "concurrent: {} redefinitions, {calls} calls, {} handshakes freed {} retirements (fenceless pins: {})",
        v - 1,
        s.handshakes,
        s.freed_by_handshake,
        s.fenceless_pins
    );
}
