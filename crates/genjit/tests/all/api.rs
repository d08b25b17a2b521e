//! The library API: dylibs, host symbols, typed lookups, cross-dylib calls, threads, removal.

use genjit::{Jit, Source};
use std::sync::atomic::{AtomicI64, Ordering};

static LOGGED: AtomicI64 = AtomicI64::new(0);
extern "C" fn log_row(x: i64) {
    LOGGED.fetch_add(x, Ordering::SeqCst);
}

const EVAL: &str = r#"
declare void @log_row(i64)
define i64 @eval(i64 %a, i64 %b) {
  %s = add i64 %a, %b
  call void @log_row(i64 %s)
  ret i64 %s
}
"#;

#[test]
fn host_symbol_and_typed_call() {
    let jit = Jit::new().unwrap();
    let db = jit.create_dylib("query_42").unwrap();
    db.define_host("log_row", log_row as extern "C" fn(i64)).unwrap();
    db.add_module(Source::ir_text(EVAL).named("eval")).unwrap();
    let f = db.lookup::<fn(i64, i64) -> i64>("eval").unwrap();
    let before = LOGGED.load(Ordering::SeqCst);
    assert_eq!(f.call(2, 3), 5);
    assert!(LOGGED.load(Ordering::SeqCst) - before >= 5);
    // The host function is itself typed-lookup-able with its Rust signature.
    assert!(db.lookup::<fn(i64)>("log_row").is_ok());
}

#[test]
fn bitcode_and_builder_sources() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    let ctx = genjit::inkwell::context::Context::create();
    let m = ctx
        .create_module_from_ir(genjit::inkwell::memory_buffer::MemoryBuffer::create_from_memory_range_copy(
            b"define i32 @seven() {\n ret i32 7\n}\n",
            "bc",
        ))
        .unwrap();
    let bc = m.write_bitcode_to_memory().as_slice().to_vec();
    d.add_module(Source::bitcode(bc).named("bc")).unwrap();
    d.add_module(Source::build(|ctx| {
        let module = ctx.create_module("built");
        let i64t = ctx.i64_type();
        let f = module.add_function("twice", i64t.fn_type(&[i64t.into()], false), None);
        let b = ctx.create_builder();
        b.position_at_end(ctx.append_basic_block(f, "entry"));
        let x = f.get_nth_param(0).unwrap().into_int_value();
        let y = b.build_int_add(x, x, "y").map_err(|e| e.to_string())?;
        b.build_return(Some(&y)).map_err(|e| e.to_string())?;
        Ok(module)
    }))
    .unwrap();
    assert_eq!(d.lookup::<fn() -> i32>("seven").unwrap().call(), 7);
    assert_eq!(d.lookup::<fn(i64) -> i64>("twice").unwrap().call(21), 42);
}

#[test]
fn modules_in_one_dylib_and_across_dylibs_call_each_other() {
    let jit = Jit::new().unwrap();
    let base = jit.create_dylib("base").unwrap();
    base.add_module(Source::ir_text(
        "@k = global i64 10\ndefine i64 @scale(i64 %x) {\n %k = load i64, ptr @k\n %r = mul i64 %x, %k\n ret i64 %r\n}\n\
         define hidden i64 @secret() {\n ret i64 1\n}\n",
    ))
    .unwrap();
    base.add_module(Source::ir_text(
        "declare i64 @scale(i64)\ndeclare i64 @secret()\ndefine i64 @scale_plus(i64 %x) {\n %a = call i64 @scale(i64 %x)\n %s = call i64 @secret()\n %r = add i64 %a, %s\n ret i64 %r\n}\n",
    ))
    .unwrap();
    let app = jit.create_dylib("app").unwrap();
    app.link_to(&base);
    app.add_module(Source::ir_text(
        "declare i64 @scale_plus(i64)\n@k = external global i64\ndefine i64 @go(i64 %x) {\n %v = call i64 @scale_plus(i64 %x)\n store i64 3, ptr @k\n ret i64 %v\n}\n",
    ))
    .unwrap();
    let go = app.lookup::<fn(i64) -> i64>("go").unwrap();
    assert_eq!(go.call(4), 41);
    // `go` stored 3 into base's @k: the data is shared, not copied.
    assert_eq!(base.lookup::<fn(i64) -> i64>("scale").unwrap().call(4), 12);
    // Hidden definitions are not visible from another dylib.
    let err = app
        .add_module(Source::ir_text(
            "declare i64 @secret()\ndefine i64 @peek() {\n %s = call i64 @secret()\n ret i64 %s\n}\n",
        ))
        .unwrap_err();
    assert!(
        matches!(err, genjit::Error::UnresolvedSymbols { ref symbols, .. } if symbols == &["secret"]),
        "{err}"
    );
}

#[test]
fn parallel_adds_from_threads() {
    let jit = Jit::new().unwrap();
    let dylibs: Vec<_> = (0..2).map(|i| jit.create_dylib(&format!("d{i}")).unwrap()).collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let d = dylibs[t % 2].clone();
            s.spawn(move || {
                for i in 0..25 {
                    let name = format!("f_{t}_{i}");
                    let ir =
                        format!("define i64 @{name}(i64 %x) {{\n %r = add i64 %x, {i}\n ret i64 %r\n}}\n");
                    d.add_module(Source::ir_text(ir)).unwrap();
                    assert_eq!(d.lookup::<fn(i64) -> i64>(&name).unwrap().call(100), 100 + i);
                }
            });
        }
    });
    assert_eq!(jit.stats().modules, 100);
}

#[test]
fn remove_module_runs_destructors_and_unpublishes() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    static DTOR: AtomicI64 = AtomicI64::new(0);
    extern "C" fn note(x: i64) {
        DTOR.store(x, Ordering::SeqCst);
    }
    d.define_host("note", note as extern "C" fn(i64)).unwrap();
    let m = d
        .add_module(Source::ir_text(
            "declare void @note(i64)\n@llvm.global_ctors = appending global [1 x { i32, ptr, ptr }] [{ i32, ptr, ptr } { i32 65535, ptr @init, ptr null }]\n\
             @llvm.global_dtors = appending global [1 x { i32, ptr, ptr }] [{ i32, ptr, ptr } { i32 65535, ptr @fini, ptr null }]\n\
             define internal void @init() {\n call void @note(i64 1)\n ret void\n}\n\
             define internal void @fini() {\n call void @note(i64 2)\n ret void\n}\n\
             define i64 @f() {\n ret i64 9\n}\n",
        ))
        .unwrap();
    assert_eq!(DTOR.load(Ordering::SeqCst), 1, "constructor ran at add");
    let f = d.lookup::<fn() -> i64>("f").unwrap();
    d.remove_module(&m).unwrap();
    assert_eq!(DTOR.load(Ordering::SeqCst), 2, "destructor ran at remove");
    assert!(matches!(d.lookup::<fn() -> i64>("f"), Err(genjit::Error::SymbolNotFound { .. })));
    // The old handle now refuses to call (it never runs freed code).
    assert!(f.is_removed());
    assert_eq!(f.try_call(), None);
    let panic = std::panic::catch_unwind(|| f.call()).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("`f` of dylib `d` was removed"), "{message}");
    assert!(matches!(d.remove_module(&m), Err(genjit::Error::ModuleNotFound { .. })));
    // The name can be defined again; the removed handle stays removed.
    d.add_module(Source::ir_text("define i64 @f() {\n ret i64 10\n}\n")).unwrap();
    assert_eq!(d.lookup::<fn() -> i64>("f").unwrap().call(), 10);
    assert!(f.is_removed());
}

#[test]
fn memory_is_reused_after_removal() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    let live = |jit: &Jit| {
        let s = jit.stats();
        s.heap.live_bytes() - s.entry_bytes
    };
    let empty = live(&jit);
    for i in 0..50 {
        let m = d
            .add_module(Source::ir_text(format!(
                "@g = global [100 x i64] zeroinitializer\ndefine i64 @f{i}() {{\n ret i64 {i}\n}}\n"
            )))
            .unwrap();
        assert!(live(&jit) > empty);
        d.remove_module(&m).unwrap();
        assert!(jit.reclaim(std::time::Duration::from_secs(10)), "reclamation stalled");
        assert_eq!(jit.stats().awaiting_bytes, 0);
        assert_eq!(live(&jit), empty, "module {i} left heap bytes behind");
    }
}

#[test]
fn dump_writes_ir_asm_and_object() {
    let dir = std::env::temp_dir().join(format!("genjit-dump-{}", std::process::id()));
    let jit = Jit::builder()
        .dump(genjit::DumpKind::Ir, &dir)
        .dump(genjit::DumpKind::Asm, &dir)
        .dump(genjit::DumpKind::Obj, &dir)
        .build()
        .unwrap();
    let d = jit.create_dylib("d").unwrap();
    d.add_module(Source::ir_text("define i32 @dumped() {\n ret i32 1\n}\n").named("dumpme")).unwrap();
    let ll = std::fs::read_to_string(dir.join("dumpme.ll")).unwrap();
    let s = std::fs::read_to_string(dir.join("dumpme.s")).unwrap();
    let o = std::fs::read(dir.join("dumpme.o")).unwrap();
    assert!(ll.contains("@dumped"));
    assert!(s.contains("dumped:"));
    assert_eq!(&o[..4], b"\x7fELF");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn thread_locals_are_per_thread_through_the_api() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    d.add_module(Source::ir_text(
        "@c = thread_local global i64 5\ndefine i64 @bump() {\n %p = call ptr @llvm.threadlocal.address.p0(ptr @c)\n %v = load i64, ptr %p\n %n = add i64 %v, 1\n store i64 %n, ptr %p\n ret i64 %n\n}\ndeclare ptr @llvm.threadlocal.address.p0(ptr)\n",
    ))
    .unwrap();
    let bump = d.lookup::<fn() -> i64>("bump").unwrap();
    assert_eq!(bump.call(), 6);
    assert_eq!(bump.call(), 7);
    let other = bump.clone();
    let seen = std::thread::spawn(move || (other.call(), other.call())).join().unwrap();
    assert_eq!(seen, (6, 7), "another thread starts from the template");
    assert_eq!(bump.call(), 8);
}

/// A global `ifunc` runs its resolver, as the dynamic loader would, and calls reach the implementation
/// it picks (before, the resolver itself was linked as the function: calling `f` returned an address).
#[test]
fn ifunc_resolvers_pick_the_implementation() {
    let ir = "define i64 @impl_fast(i64 %x) {\n  %r = add i64 %x, 100\n  ret i64 %r\n}\n\
              define i64 @impl_slow(i64 %x) {\n  %r = add i64 %x, 1\n  ret i64 %r\n}\n\
              define internal ptr @pick() {\n  ret ptr @impl_fast\n}\n\
              @f = ifunc i64 (i64), ptr @pick\n\
              define i64 @use_f(i64 %x) {\n  %r = call i64 @f(i64 %x)\n  ret i64 %r\n}\n\
              define ptr @addr_f() {\n  ret ptr @f\n}\n";
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("ifunc").unwrap();
    d.add_module(Source::ir_text(ir)).unwrap();
    assert_eq!(d.lookup::<fn(i64) -> i64>("use_f").unwrap().call(1), 101);
    // `&f` is f's entry, which leads to the implementation.
    let addr_f = d.lookup::<fn() -> *const u8>("addr_f").unwrap().call() as usize;
    assert_eq!(addr_f, d.lookup_address("f").unwrap());
    // SAFETY: `f` is `i64 (i64)` (the ifunc's type) and its entry lives while the dylib does.
    let f = unsafe { std::mem::transmute::<usize, extern "C" fn(i64) -> i64>(addr_f) };
    assert_eq!(f(2), 102);
}
