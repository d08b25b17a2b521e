//! Redefinition, removal, explicit redirection and reclamation through the public API.

use genjit::{Definer, Error, Importer, Jit, RedirectRefusal, RedirectTarget, Removal, Source};
use std::process::Command;
use std::time::Duration;

fn ret(name: &str, v: i64) -> String {
    format!("define i64 @{name}() {{\n ret i64 {v}\n}}\n")
}

fn caller(name: &str, callee: &str) -> String {
    format!("declare i64 @{callee}()\ndefine i64 @{name}() {{\n %x = call i64 @{callee}()\n ret i64 %x\n}}\n")
}

fn ir(text: String, name: &str) -> Source {
    Source::ir_text(text).named(name)
}

#[test]
fn redefinition_redirects_handles_and_importers_and_retires_the_old_module() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    d.add_module(ir(ret("f", 1), "v1")).unwrap();
    d.add_module(ir(caller("g", "f"), "caller")).unwrap();
    let f = d.lookup::<fn() -> i64>("f").unwrap();
    let g = d.lookup::<fn() -> i64>("g").unwrap();
    let identity = f.addr();
    assert_eq!((f.call(), g.call()), (1, 1));
    d.add_module(ir(ret("f", 2), "v2")).unwrap();
    assert_eq!((f.call(), g.call()), (2, 2), "old handle and JIT importer both see the new body");
    assert_eq!(f.addr(), identity);
    assert_eq!(d.lookup_address("f").unwrap(), identity, "a function's address is stable");
    let names: Vec<_> = d.modules().iter().map(|m| m.name().to_string()).collect();
    assert_eq!(names, ["caller", "v2"], "v1 lost every name and was retired");
    assert_eq!(d.defining_module("f").as_deref(), Some("v2"));
    assert!(jit.reclaim(Duration::from_secs(10)));
    assert_eq!(jit.stats().awaiting_bytes, 0);
}

#[test]
fn a_module_calls_its_own_functions_through_their_entries() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    d.add_module(ir(
        format!("{}{}", ret("f", 1), caller("h", "f").replace("declare i64 @f()\n", "")),
        "both",
    ))
    .unwrap();
    let h = d.lookup::<fn() -> i64>("h").unwrap();
    assert_eq!(h.call(), 1);
    d.add_module(ir(ret("f", 5), "newf")).unwrap();
    assert_eq!(h.call(), 5, "the call inside `both` went through f's entry");
    assert_eq!(d.modules().len(), 2, "`both` still defines h");
}

#[test]
fn modules_of_one_batch_may_call_each_other() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    let even = "declare i64 @odd(i64)\ndefine i64 @even(i64 %n) {\n %z = icmp eq i64 %n, 0\n br i1 %z, label %y, label %r\ny:\n ret i64 1\nr:\n %m = sub i64 %n, 1\n %v = call i64 @odd(i64 %m)\n ret i64 %v\n}\n";
    let odd = "declare i64 @even(i64)\ndefine i64 @odd(i64 %n) {\n %z = icmp eq i64 %n, 0\n br i1 %z, label %y, label %r\ny:\n ret i64 0\nr:\n %m = sub i64 %n, 1\n %v = call i64 @even(i64 %m)\n ret i64 %v\n}\n";
    d.add_modules(vec![ir(even.into(), "even"), ir(odd.into(), "odd")]).unwrap();
    let even = d.lookup::<fn(i64) -> i64>("even").unwrap();
    assert_eq!((even.call(10), even.call(7)), (1, 0));
}

#[test]
fn removing_an_imported_module_is_refused_naming_the_importers() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    let e = jit.create_dylib("e").unwrap();
    e.link_to(&d);
    let a = d.add_module(ir(ret("f", 3), "a")).unwrap();
    let b = d.add_module(ir(caller("g", "f"), "b")).unwrap();
    e.add_module(ir(caller("k", "f"), "c")).unwrap();
    let err = d.remove_module(&a).unwrap_err();
    let Error::ModuleInUse { definer, symbol, importers } = &err else { panic!("{err:?}") };
    assert_eq!((definer, symbol.as_str()), (&Definer::Module("a".into()), "f"));
    let module = |module: &str, dylib: &str| Importer::Module { module: module.into(), dylib: dylib.into() };
    assert_eq!(importers, &[module("b", "d"), module("c", "e")]);
    assert_eq!(
        err.to_string(),
        "module `a` is still used: `f` is imported by module `b` of dylib `d`, module `c` of dylib `e`"
    );
    assert_eq!(d.lookup::<fn() -> i64>("g").unwrap().call(), 3, "nothing changed");
    assert!(matches!(jit.remove_dylib(&d), Err(Error::ModuleInUse { .. })), "e still imports from d");
    assert_eq!(e.lookup::<fn() -> i64>("k").unwrap().call(), 3);
    e.clear(Removal::Refuse).unwrap();
    // Removed together with its importer, the module goes.
    d.remove_modules(&[a, b], Removal::Refuse).unwrap();
    assert!(matches!(d.lookup::<fn() -> i64>("f"), Err(Error::SymbolNotFound { .. })));
}

#[test]
fn a_forced_removal_tombstones_and_a_new_definition_revives_importers() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    let a = d.add_module(ir(ret("f", 3), "a")).unwrap();
    d.add_module(ir(caller("g", "f"), "b")).unwrap();
    let g = d.lookup::<fn() -> i64>("g").unwrap();
    d.remove_modules(&[a], Removal::Force).unwrap();
    assert!(matches!(d.lookup::<fn() -> i64>("f"), Err(Error::SymbolNotFound { .. })));
    // (Calling g now aborts naming `f`: see `removed_functions_fail_loudly`.)
    d.add_module(ir(ret("f", 4), "a2")).unwrap();
    assert_eq!(g.call(), 4, "the orphaned entry took the new definition");
}

#[test]
fn weak_definitions_fall_back_to_a_live_alternate() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    let weak = |v| format!("define weak i64 @w() {{\n ret i64 {v}\n}}\n");
    let a = d.add_module(ir(weak(1), "a")).unwrap();
    d.add_module(ir(weak(2), "b")).unwrap();
    let w = d.lookup::<fn() -> i64>("w").unwrap();
    assert_eq!(w.call(), 1, "the first weak definition wins");
    d.remove_module(&a).unwrap();
    assert_eq!(w.call(), 2, "removing it falls back to b's");
}

#[test]
fn explicit_redirection_between_host_and_jit_targets() {
    extern "C" fn one() -> i64 {
        1
    }
    extern "C" fn two() -> i64 {
        2
    }
    extern "C" fn wide(x: i64) -> i64 {
        x
    }
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    d.create_redirectable("r", RedirectTarget::host(one as extern "C" fn() -> i64)).unwrap();
    d.add_module(ir(caller("via", "r"), "via")).unwrap();
    let via = d.lookup::<fn() -> i64>("via").unwrap();
    let r = d.lookup::<fn() -> i64>("r").unwrap();
    assert_eq!((via.call(), r.call()), (1, 1));
    d.redirect("r", RedirectTarget::host(two as extern "C" fn() -> i64)).unwrap();
    assert_eq!((via.call(), r.call()), (2, 2));
    let fmod = d.add_module(ir(ret("f", 7), "f1")).unwrap();
    d.redirect("r", RedirectTarget::symbol(&d, "f")).unwrap();
    assert_eq!(via.call(), 7);
    d.add_module(ir(ret("f", 8), "f2")).unwrap();
    assert_eq!(via.call(), 8, "a redirection to a JIT symbol follows its redefinitions");
    let _ = fmod;
    let f2 = d.modules().into_iter().find(|m| m.name() == "f2").unwrap();
    let err = d.remove_module(&f2).unwrap_err();
    assert!(
        matches!(&err, Error::ModuleInUse { importers, .. } if importers[0] == Importer::Redirectable { symbol: "r".into(), dylib: "d".into() })
    );
    let err = d.redirect("r", RedirectTarget::host(wide as extern "C" fn(i64) -> i64)).unwrap_err();
    assert!(
        matches!(&err, Error::Redirect { reason, .. } if matches!(**reason, RedirectRefusal::SignatureMismatch { .. })),
        "{err}"
    );
    let refusal = |r: genjit::Result<()>| match r {
        Err(Error::Redirect { reason, .. }) => *reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(refusal(d.redirect("f", RedirectTarget::symbol(&d, "f"))), RedirectRefusal::NotRedirectable);
    assert_eq!(
        refusal(d.redirect("r", RedirectTarget::symbol(&d, "r"))),
        RedirectRefusal::Cycle { through: "r".into() }
    );
    assert_eq!(via.call(), 8, "refused redirections changed nothing");
}

#[test]
fn replace_all_switches_every_name_at_once() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    let e = jit.create_dylib("e").unwrap();
    e.link_to(&d);
    d.add_module(ir(format!("{}{}", ret("a", 1), ret("b", 1)), "v1")).unwrap();
    e.add_module(ir(caller("ka", "a"), "user")).unwrap();
    let ka = e.lookup::<fn() -> i64>("ka").unwrap();
    let b = d.lookup::<fn() -> i64>("b").unwrap();
    d.replace_all(vec![ir(ret("a", 2), "a2"), ir(ret("b", 2), "b2")], Removal::Refuse).unwrap();
    assert_eq!((ka.call(), b.call()), (2, 2));
    let err = d.replace_all(vec![ir(ret("b", 3), "b3")], Removal::Refuse).unwrap_err();
    assert!(matches!(&err, Error::ModuleInUse { symbol, .. } if symbol == "a"), "{err}");
    assert_eq!((ka.call(), b.call()), (2, 2), "a refused replacement changes nothing");
    assert_eq!(d.modules().len(), 2);
}

#[test]
fn stats_show_pins_awaiting_bytes_and_reclamation_lag() {
    // No handshake, which would free the module while the pin goes on (see `stall`).
    let jit = Jit::builder().handshake_after(None).build().unwrap();
    let d = jit.create_dylib("d").unwrap();
    let m = d.add_module(ir(ret("f", 1), "m")).unwrap();
    let pinned = d.pin();
    d.remove_module(&m).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let s = jit.stats();
    assert!(s.awaiting_bytes > 0, "held back by our pin: {s:?}");
    assert!(s.oldest_pin.is_some_and(|age| age >= Duration::from_millis(10)), "{:?}", s.oldest_pin);
    drop(pinned);
    assert!(jit.reclaim(Duration::from_secs(10)));
    let s = jit.stats();
    assert_eq!(s.awaiting_bytes, 0);
    assert!(s.reclamation_lag.is_some_and(|l| l.samples >= 1 && l.max >= Duration::from_millis(20)));
    assert!(s.heap.freed_bytes > 0);
}

/// Runs in a child process (a panic or abort is the point).
fn removed_child(which: &str) {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    let a = d.add_module(ir(ret("f", 3), "a")).unwrap();
    d.add_module(ir(caller("g", "f"), "b")).unwrap();
    let f = d.lookup::<fn() -> i64>("f").unwrap();
    let g = d.lookup::<fn() -> i64>("g").unwrap();
    d.remove_modules(&[a], Removal::Force).unwrap();
    match which {
        "rust" => println!("{}", f.call()),
        _ => println!("{}", g.call()),
    }
}

#[test]
fn removed_functions_fail_loudly() {
    if let Ok(which) = std::env::var("GENJIT_REMOVED_CHILD") {
        removed_child(&which);
        return;
    }
    for (which, expect) in
        [("rust", "`f` of dylib `d` was removed"), ("jit", "call to `f` of dylib `d`, which was removed")]
    {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "redirect::removed_functions_fail_loudly", "--nocapture", "--test-threads=1"])
            .env("GENJIT_REMOVED_CHILD", which)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{which}: the call succeeded");
        assert!(stderr.contains(expect), "{which}: {stderr}");
    }
}

/// IR from clang without `-fPIC` marks every definition `dso_local`; LLVM then calls a module's own
/// functions through a local alias the assembler resolves, and `&f` bypasses the entry. genjit compiles it
/// as PIE code (the "PIE Level" module flag), so those references name the global symbol and go through
/// the entry like `-fPIC` IR: a redefinition is seen by the module's own calls, and `&f` is stable.
#[test]
fn non_pic_clang_ir_still_goes_through_entries() {
    // `clang-19 -fno-pic -O0 -S -emit-llvm` of: long f(void) { return 1; } long g(void) { return f(); }
    // long (*addr_f(void))(void) { return f; }
    let nopic = "define dso_local i64 @f() {\n  ret i64 1\n}\n\
        define dso_local i64 @g() {\n  %r = call i64 @f()\n  ret i64 %r\n}\n\
        define dso_local ptr @addr_f() {\n  ret ptr @f\n}\n";
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("nopic").unwrap();
    d.add_module(Source::ir_text(nopic)).unwrap();
    let g = d.lookup::<fn() -> i64>("g").unwrap();
    let addr_f = d.lookup::<fn() -> *const u8>("addr_f").unwrap();
    let stub = d.lookup_address("f").unwrap();
    assert_eq!(g.call(), 1);
    assert_eq!(addr_f.call() as usize, stub, "&f is the entry");
    d.add_module(Source::ir_text("define dso_local i64 @f() {\n  ret i64 2\n}\n")).unwrap();
    assert_eq!(g.call(), 2, "the module's own call sees the redefinition");
    assert_eq!(addr_f.call() as usize, stub, "&f did not change");
}
