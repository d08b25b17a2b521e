//! The heap's density goal: 100,000 live small modules in fewer than 100 memory mappings.

use genjit::{Jit, Source};

#[test]
fn hundred_thousand_live_modules_share_a_few_mappings() {
    // Own process: the mapping count is process-wide, and 100,000 registered modules would slow any
    // other test's unwinding.
    if crate::in_child("heap::hundred_thousand_live_modules_share_a_few_mappings").is_some() {
        return;
    }
    const MODULES: usize = 100_000;
    let jit = Jit::new().unwrap();
    let before = crate::mappings();
    let dylibs: Vec<_> = (0..2).map(|t| jit.create_dylib(&format!("d{t}")).unwrap()).collect();
    std::thread::scope(|s| {
        for (t, d) in dylibs.iter().enumerate() {
            s.spawn(move || {
                for i in (t..MODULES).step_by(2) {
                    let ir = format!(
                        "@counter_{i} = global i64 {i}\ndefine i64 @f_{i}(i64 %x) {{\n %c = load i64, ptr @counter_{i}\n %r = add i64 %x, %c\n ret i64 %r\n}}\n"
                    );
                    d.add_module(Source::ir_text(ir)).unwrap();
                }
            });
        }
    });
    let stats = jit.stats();
    assert_eq!(stats.modules, MODULES);
    for i in [0, 1, 4_999, 77_777, MODULES - 1] {
        let d = &dylibs[i % 2];
        assert_eq!(d.lookup::<fn(i64) -> i64>(&format!("f_{i}")).unwrap().call(1), 1 + i as i64);
    }
    let added = crate::mappings().saturating_sub(before);
    assert!(stats.heap_mappings < 100, "the heap's own count: {}", stats.heap_mappings);
    eprintln!("{MODULES} modules: {} mappings added, {} generations", added, stats.heap.generations.len());
    assert!(added < 100, "{added} mappings for {MODULES} modules");
}
