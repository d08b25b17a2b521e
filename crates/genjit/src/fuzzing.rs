//! Oracles for the fuzz targets (kept in the library so the corpus also runs as an ordinary test).
//!
//! Each oracle feeds arbitrary bytes to one entry point and checks the contract: `Ok` or a typed error,
//! never a crash, and a failed add leaves the dylib and the heap as they were. Modules are added inert: their
//! constructors never run (they are arbitrary code).

use crate::{Error, Jit, Source};

/// Which entry point the bytes go to.
#[derive(Clone, Copy, Debug)]
pub enum Input {
    /// `Source::ir_text`.
    IrText,
    /// `Source::bitcode`.
    Bitcode,
    /// `Source::object` (linked without running initializers).
    Object,
}

/// Feeds `bytes` to the JIT as `input`; panics if the contract is broken.
pub fn check(jit: &Jit, input: Input, bytes: &[u8]) {
    let dylib = jit.create_dylib("fuzz").expect("fresh dylib");
    let before = jit.stats();
    let result = match input {
        Input::IrText => {
            dylib.add_module_without_init(Source::ir_text(String::from_utf8_lossy(bytes).into_owned()))
        }
        Input::Bitcode => dylib.add_module_without_init(Source::bitcode(bytes.to_vec())),
        Input::Object => dylib.add_module_without_init(Source::object(bytes.to_vec())),
    };
    match result {
        Ok(_) => {}
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(dylib.modules().is_empty(), "a failed add left a module behind");
            let after = jit.stats();
            assert_eq!(live_bytes(&before), live_bytes(&after), "a failed add ({e}) leaked heap space");
            let _: &Error = &e;
        }
    }
    jit.remove_dylib(&dylib).expect("remove fuzz dylib");
}

fn live_bytes(stats: &crate::Stats) -> usize {
    // Entry chunks are a pool that grows on first use and is never shrunk; what matters is module space.
    // Retired modules free themselves in the background: count only bytes that are neither.
    stats.heap.live_bytes() - stats.entry_bytes - stats.awaiting_bytes
}
