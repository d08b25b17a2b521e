//! The fuzz corpus (fuzz/corpus/*) through the fuzz oracle on stable Rust, plus deterministic mutations of
//! the valid inputs (byte flips, truncations) so CI exercises the error paths the fuzzer finds.

use genjit::fuzzing::{check, Input};
use genjit::Jit;
use std::path::Path;

fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(kind);
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn run(kind: &str, input: Input, mutations_per_file: usize) {
    let jit = Jit::new().unwrap();
    let files = corpus(kind);
    assert!(!files.is_empty());
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for bytes in &files {
        check(&jit, input, bytes);
        tiered_adds_like_plain(&jit, input, bytes);
        for _ in 0..mutations_per_file {
            let mut m = bytes.clone();
            match next() % 3 {
                0 => m.truncate((next() as usize) % (bytes.len() + 1)),
                _ => {
                    for _ in 0..1 + next() % 4 {
                        let at = (next() as usize) % m.len().max(1);
                        if let Some(b) = m.get_mut(at) {
                            *b ^= 1 << (next() % 8);
                        }
                    }
                }
            }
            check(&jit, input, &m);
        }
    }
    assert!(jit.reclaim(std::time::Duration::from_secs(30)), "reclamation stalled");
    let stats = jit.stats();
    let live = stats.heap.live_bytes() - stats.entry_bytes;
    // Every module and dylib handle is gone and reclaimed (the entry pool stays): the heap is empty again.
    assert_eq!(live, 0, "fuzzing left heap bytes behind");
}

/// Tier 0's instrumentation (promoted locals, counters of calls and back-edges at threshold 1) and lazy
/// trampolines never turn a module that adds into one that does not, and every lazy function compiles.
fn tiered_adds_like_plain(jit: &Jit, input: Input, bytes: &[u8]) {
    let source = || match input {
        Input::IrText => genjit::Source::ir_text(String::from_utf8_lossy(bytes).into_owned()),
        Input::Bitcode => genjit::Source::bitcode(bytes.to_vec()),
        Input::Object => genjit::Source::object(bytes.to_vec()),
    };
    let (plain, tiered) = (jit.create_dylib("plain").unwrap(), jit.create_dylib("tiered").unwrap());
    let lazy = jit.create_dylib("lazy").unwrap();
    tiered.enable_tiering(genjit::Tiering::new().threshold(Some(1))).unwrap();
    lazy.enable_tiering(genjit::Tiering::new().threshold(Some(1))).unwrap();
    if plain.add_module_without_init(source()).is_ok() {
        let result = tiered.add_module_without_init(source());
        assert!(result.is_ok(), "tier 0 broke a module that adds plainly: {:?}", result.err());
        // Laziness neither: the trampolines add, and every function compiles alone.
        let result = lazy.add_lazy_module_without_init(source());
        assert!(result.is_ok(), "laziness broke a module that adds plainly: {:?}", result.err());
        let compiled = lazy.compile_all_lazy();
        assert!(compiled.is_ok(), "a lazy function did not compile alone: {:?}", compiled.err());
        let stats = jit.stats().dylibs.into_iter().find(|d| d.name == "lazy").unwrap().tiering;
        assert_eq!(stats.lazy_uncompiled, 0, "{stats:?}");
    }
    jit.remove_dylib(&plain).unwrap();
    jit.remove_dylib(&tiered).unwrap();
    jit.remove_dylib(&lazy).unwrap();
}

#[test]
fn ir_text_corpus() {
    run("ir_text", Input::IrText, 30);
}

#[test]
fn bitcode_corpus() {
    run("bitcode", Input::Bitcode, 30);
}

#[test]
fn object_corpus() {
    run("object", Input::Object, 300);
}
