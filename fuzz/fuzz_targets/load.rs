//! Arbitrary bytes as IR text, bitcode or an object file: `Ok` or a typed error, never a crash.
//! The first byte picks the input kind; the oracle lives in `genjit::fuzzing`.
#![no_main]

use genjit::fuzzing::{check, Input};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static JIT: OnceLock<genjit::Jit> = OnceLock::new();
    let jit = JIT.get_or_init(|| genjit::Jit::new().expect("jit"));
    let Some((&kind, bytes)) = data.split_first() else { return };
    let input = match kind % 3 {
        0 => Input::IrText,
        1 => Input::Bitcode,
        _ => Input::Object,
    };
    check(jit, input, bytes);
});
