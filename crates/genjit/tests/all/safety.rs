//! Safe code cannot crash through genjit's API: each hole a review found, closed. The compile-time ones
//! are `compile_fail` doc tests (`HostFn` is sealed, `RedirectTarget` has no public raw variants,
//! `define_host_address` is `unsafe`, internals such as the heap are private); these are the run-time ones.

use genjit::{Error, Jit, Source};

fn object(ir: &str) -> Vec<u8> {
    use genjit::inkwell::context::Context;
    use genjit::inkwell::memory_buffer::MemoryBuffer;
    use genjit::inkwell::targets::FileType;
    let ctx = Context::create();
    let m =
        ctx.create_module_from_ir(MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "o")).unwrap();
    let tm = genjit::host_target_machine(genjit::OptLevel::O0).unwrap();
    tm.write_to_memory_buffer(&m, FileType::Object).unwrap().as_slice().to_vec()
}

#[test]
fn a_calling_convention_other_than_c_is_part_of_the_signature() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("cc").unwrap();
    d.add_module(Source::ir_text("define ghccc i64 @g(i64 %x) {\n  ret i64 %x\n}\n")).unwrap();
    let err = d.lookup::<fn(i64) -> i64>("g").unwrap_err();
    let Error::SignatureMismatch { found, .. } = &err else { panic!("{err:?}") };
    assert_eq!(found.call_conv, 10, "ghccc is LLVM calling convention 10");
    assert_eq!(found.to_string(), "cc 10 i64 (i64)");
}

#[test]
fn abi_changing_parameter_attributes_match_no_rust_type() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("abi").unwrap();
    let ir = "%pair = type { i64, i64 }\n\
              define i64 @byval(ptr byval(%pair) %p) {\n  %v = load i64, ptr %p\n  ret i64 %v\n}\n\
              define void @sret(ptr sret(%pair) %out, i64 %x) {\n  store i64 %x, ptr %out\n  ret void\n}\n\
              define i64 @inreg(i64 inreg %x) {\n  ret i64 %x\n}\n\
              define i64 @plain(ptr noundef nonnull %p) {\n  %v = load i64, ptr %p\n  ret i64 %v\n}\n";
    d.add_module(Source::ir_text(ir)).unwrap();
    for (name, attribute) in [("byval", "byval"), ("inreg", "inreg")] {
        let err = d.lookup::<fn(*const u8) -> i64>(name).unwrap_err();
        assert!(matches!(err, Error::SignatureMismatch { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains(attribute), "{err}");
    }
    assert!(d.lookup::<fn(*mut u8, i64)>("sret").is_err());
    // Attributes that do not change how the argument travels still match.
    assert!(d.lookup::<fn(*const i64) -> i64>("plain").is_ok());
}

#[test]
fn an_object_cannot_take_over_a_typed_function() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("typed").unwrap();
    d.add_module(Source::ir_text("define i64 @f(i64 %x) {\n  %r = add i64 %x, 1\n  ret i64 %r\n}\n"))
        .unwrap();
    let f = d.lookup::<fn(i64) -> i64>("f").unwrap();
    // Same name, but object code: its signature is unknown, so `f`'s typed handles could no longer be
    // called safely. Here it even takes no argument and returns nothing.
    let obj = object("define void @f() {\n  ret void\n}\n");
    let before = jit.stats();
    let err = d.add_module(Source::object(obj).named("f.o")).unwrap_err();
    let Error::SignatureChanged { module, symbol, new, .. } = &err else { panic!("{err:?}") };
    assert_eq!((module.as_str(), symbol.as_str(), new), ("f.o", "f", &None));
    assert!(err.to_string().contains("code of unknown signature"), "{err}");
    assert_eq!(f.call(1), 2, "the typed function is untouched");
    assert_eq!(jit.stats().modules, before.modules);
    // An object may still redefine an object's function (no signature on either side).
    let untyped = jit.create_dylib("untyped").unwrap();
    untyped.add_module(Source::object(object("define i64 @h() {\n  ret i64 1\n}\n"))).unwrap();
    untyped.add_module(Source::object(object("define i64 @h() {\n  ret i64 2\n}\n"))).unwrap();
}
