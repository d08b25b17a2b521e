//! A batch links like one shared object: every module is placed before any name is resolved, so modules
//! may reference each other's functions and data in any order and in cycles, and a name the batch defines
//! always wins over the process's symbols.

use genjit::{Error, Jit, Source};

const EVEN: &str = "@odd_table = external global [2 x ptr]\n\
    @even_table = global [2 x ptr] [ptr @odd_table, ptr @even]\n\
    declare i64 @odd(i64)\n\
    define i64 @even(i64 %n) {\n  %z = icmp eq i64 %n, 0\n  br i1 %z, label %yes, label %no\n\
    yes:\n  ret i64 1\nno:\n  %m = sub i64 %n, 1\n  %r = call i64 @odd(i64 %m)\n  ret i64 %r\n}\n\
    define ptr @even_next() {\n  %p = load ptr, ptr @even_table\n  ret ptr %p\n}\n";
const ODD: &str = "@even_table = external global [2 x ptr]\n\
    @odd_table = global [2 x ptr] [ptr @even_table, ptr @odd]\n\
    declare i64 @even(i64)\n\
    define i64 @odd(i64 %n) {\n  %z = icmp eq i64 %n, 0\n  br i1 %z, label %yes, label %no\n\
    yes:\n  ret i64 0\nno:\n  %m = sub i64 %n, 1\n  %r = call i64 @even(i64 %m)\n  ret i64 %r\n}\n\
    define ptr @odd_next() {\n  %p = load ptr, ptr @odd_table\n  ret ptr %p\n}\n";

#[test]
fn mutually_recursive_data_tables_link_in_either_order() {
    for order in [[EVEN, ODD], [ODD, EVEN]] {
        let jit = Jit::new().unwrap();
        let d = jit.create_dylib("tables").unwrap();
        let sources = order.iter().map(|s| Source::ir_text(*s)).collect();
        let modules = d.add_modules(sources).unwrap();
        let even = d.lookup::<fn(i64) -> i64>("even").unwrap();
        assert_eq!((even.call(10), even.call(7)), (1, 0));
        // Each table points at the other: the data references crossed modules both ways.
        let odd_table = d.lookup_address("odd_table").unwrap();
        let even_table = d.lookup_address("even_table").unwrap();
        assert_eq!(d.lookup::<fn() -> *const u8>("even_next").unwrap().call() as usize, odd_table);
        assert_eq!(d.lookup::<fn() -> *const u8>("odd_next").unwrap().call() as usize, even_table);
        // The cycle of data references does not keep the modules alive once both are removed.
        d.remove_modules(&modules, genjit::Removal::Refuse).unwrap();
        assert!(jit.reclaim(std::time::Duration::from_secs(5)));
        let stats = jit.stats();
        assert_eq!((stats.modules, stats.awaiting_bytes), (0, 0));
        assert_eq!(stats.heap.live_bytes(), stats.entry_bytes + 16, "only entries and the dylib's handle");
    }
}

#[test]
fn removing_one_half_of_a_data_cycle_is_refused() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("tables").unwrap();
    let modules = d.add_modules(vec![Source::ir_text(EVEN), Source::ir_text(ODD)]).unwrap();
    let err = d.remove_module(&modules[0]).unwrap_err();
    assert!(matches!(err, Error::ModuleInUse { .. }), "{err}");
}

/// `crc32` (zlib, which libLLVM loads) and `opterr` (libc) exist in the process; a batch that defines
/// them itself must use its own, whichever module comes first.
#[test]
fn a_name_the_batch_defines_wins_over_the_process() {
    let user = "declare i64 @crc32(i64, ptr, i32)\n@opterr = external global i32\n\
        define i64 @use_crc() {\n  %r = call i64 @crc32(i64 0, ptr null, i32 0)\n  ret i64 %r\n}\n\
        define i32 @use_opterr() {\n  %v = load i32, ptr @opterr\n  ret i32 %v\n}\n";
    let definer = "@opterr = global i32 7\ndefine i64 @crc32(i64 %a, ptr %b, i32 %c) {\n  ret i64 4242\n}\n";
    let jit = Jit::builder().process_symbols(true).build().unwrap();
    let process = jit.create_dylib("process").unwrap();
    process.add_module(Source::ir_text(user)).unwrap();
    // Control: alone, the names come from the process (zlib's crc32 of nothing is 0; libc's opterr is 1).
    assert_eq!(process.lookup::<fn() -> i64>("use_crc").unwrap().call(), 0);
    assert_eq!(process.lookup::<fn() -> i32>("use_opterr").unwrap().call(), 1);
    for order in [[user, definer], [definer, user]] {
        let d = jit.create_dylib(&format!("own{}", order[0].len())).unwrap();
        d.add_modules(order.iter().map(|s| Source::ir_text(*s)).collect()).unwrap();
        assert_eq!(d.lookup::<fn() -> i64>("use_crc").unwrap().call(), 4242);
        assert_eq!(d.lookup::<fn() -> i32>("use_opterr").unwrap().call(), 7);
    }
}

#[test]
fn an_unresolved_name_anywhere_in_the_batch_leaves_nothing_behind() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    // Entry chunks are a pool that grows on first use; the modules' own bytes must come back.
    let module_bytes = |s: &genjit::Stats| s.heap.live_bytes() - s.entry_bytes;
    let before = module_bytes(&jit.stats());
    let bad = "declare i64 @nowhere()\ndefine i64 @late() {\n  %r = call i64 @nowhere()\n  ret i64 %r\n}\n";
    let err =
        d.add_modules(vec![Source::ir_text(EVEN), Source::ir_text(ODD), Source::ir_text(bad).named("bad")]);
    let Err(Error::UnresolvedSymbols { module, symbols, .. }) = err else { panic!("{err:?}") };
    assert_eq!((module.as_str(), symbols.as_slice()), ("bad", &["nowhere".to_string()][..]));
    let stats = jit.stats();
    assert_eq!((stats.modules, stats.symbols, module_bytes(&stats)), (0, 0, before));
}

/// A batch's modules compile on several threads at once (`JitBuilder::compile_threads`), yet a failure is
/// reported for the first bad module in the list, whichever thread met it first, and leaves nothing behind;
/// unnamed modules are named in list order.
#[test]
fn a_batch_compiles_in_parallel_and_reports_and_names_in_list_order() {
    use std::sync::mpsc;
    use std::time::Duration;
    let jit = Jit::builder().compile_threads(2).build().unwrap();
    let d = jit.create_dylib("d").unwrap();
    // Two build closures that each need the other running at the same time: they finish only if the
    // batch really compiles on two threads (and fail, rather than hang, if it does not).
    let (to_b, from_a) = mpsc::channel::<()>();
    let (to_a, from_b) = mpsc::channel::<()>();
    let meet = |send: mpsc::Sender<()>, receive: mpsc::Receiver<()>, name: &'static str| {
        Source::build(move |ctx| {
            send.send(()).map_err(|e| e.to_string())?;
            receive
                .recv_timeout(Duration::from_secs(20))
                .map_err(|_| "the other compile never ran".to_string())?;
            let module = ctx.create_module(name);
            let i64t = ctx.i64_type();
            let f = module.add_function(name, i64t.fn_type(&[], false), None);
            let b = ctx.create_builder();
            b.position_at_end(ctx.append_basic_block(f, "entry"));
            b.build_return(Some(&i64t.const_int(name.len() as u64, false))).map_err(|e| e.to_string())?;
            Ok(module)
        })
    };
    let modules = d.add_modules(vec![meet(to_b, from_b, "alpha"), meet(to_a, from_a, "be")]).unwrap();
    assert_eq!(d.lookup::<fn() -> i64>("alpha").unwrap().call(), 5);
    assert_eq!(d.lookup::<fn() -> i64>("be").unwrap().call(), 2);
    d.remove_modules(&modules, genjit::Removal::Refuse).unwrap();

    // The first bad module in the list is the one reported, though a later one is smaller (compiled
    // first: largest first) and fails too.
    let module_bytes = |s: &genjit::Stats| s.heap.live_bytes() - s.entry_bytes;
    assert!(jit.reclaim(Duration::from_secs(5)));
    let before = module_bytes(&jit.stats());
    let bad_early = format!("{EVEN}\ndefine i64 @broken( {{\n");
    let err = d.add_modules(vec![
        Source::ir_text(ODD),
        Source::ir_text(bad_early).named("early"),
        Source::ir_text("define i64 @x() { ret i64 }").named("late"),
    ]);
    let Err(Error::Parse { module, .. }) = &err else { panic!("{err:?}") };
    assert_eq!(module, "early");
    let stats = jit.stats();
    assert_eq!((stats.modules, stats.symbols, module_bytes(&stats)), (0, 0, before));

    // Unnamed modules take their default names (module#N) in list order.
    let sources =
        (0..6).map(|k| Source::ir_text(format!("define i64 @f{k}() {{\n  ret i64 {k}\n}}\n"))).collect();
    let modules = d.add_modules(sources).unwrap();
    let serials: Vec<u64> =
        modules.iter().map(|m| m.name().strip_prefix("module#").unwrap().parse().unwrap()).collect();
    assert!(serials.windows(2).all(|w| w[0] < w[1]), "{serials:?}");
    for k in 0..6 {
        assert_eq!(d.lookup::<fn() -> i64>(&format!("f{k}")).unwrap().call(), k);
    }
}
