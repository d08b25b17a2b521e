//! Bad input: each case returns a specific typed error AND leaves the JIT exactly as it was.

use genjit::{Definer, Error, Jit, JitSignature, Source};

use crate::snapshot;

fn setup() -> (Jit, genjit::Dylib) {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    d.add_module(Source::ir_text("define i64 @existing(i64 %x) {\n ret i64 %x\n}\n").named("first")).unwrap();
    (jit, d)
}

fn add_fails(source: Source) -> Error {
    let (jit, d) = setup();
    let before = snapshot(&jit);
    let err = d.add_module(source).unwrap_err();
    assert_eq!(snapshot(&jit), before, "failed add changed the JIT: {err}");
    assert_eq!(d.lookup::<fn(i64) -> i64>("existing").unwrap().call(4), 4, "old module still works");
    err
}

#[test]
fn malformed_ir_text_reports_line_and_column() {
    let err = add_fails(Source::ir_text("define i64 @f() {\n  ret i64 %nope\n}\n").named("bad.ll"));
    let Error::Parse { module, message } = &err else { panic!("{err:?}") };
    assert_eq!(module, "bad.ll");
    assert!(message.contains("bad.ll:2:"), "no line/column in {message}");
}

#[test]
fn garbage_bitcode() {
    let err = add_fails(Source::bitcode(b"BC\xC0\xDEgarbage garbage".to_vec()).named("bad.bc"));
    assert!(matches!(err, Error::Parse { ref module, .. } if module == "bad.bc"), "{err:?}");
}

#[test]
fn ir_that_fails_the_verifier() {
    // Parses, but a use does not follow its definition: only the verifier catches it.
    let err = add_fails(Source::ir_text(
        "define i64 @f() {\n  %a = add i64 %b, 1\n  %b = add i64 1, 1\n  ret i64 %a\n}\n",
    ));
    assert!(matches!(err, Error::Verify { .. }), "{err:?}");
}

#[test]
fn duplicate_definition_in_one_batch_names_symbol_and_frees_space() {
    let (jit, d) = setup();
    let before = snapshot(&jit);
    let one = "@data = global [4096 x i8] zeroinitializer\ndefine i64 @twice() {\n ret i64 1\n}\n";
    let two = "define i64 @twice() {\n ret i64 2\n}\n";
    let err = d.add_modules(vec![Source::ir_text(one).named("one"), Source::ir_text(two).named("two")]);
    let err = err.unwrap_err();
    let Error::DuplicateDefinition { definer, symbol, dylib } = &err else { panic!("{err:?}") };
    assert_eq!(
        (definer, symbol.as_str(), dylib.as_deref()),
        (&Definer::Module("two".into()), "twice", Some("d"))
    );
    assert_eq!(snapshot(&jit), before);
}

#[test]
fn redefinition_may_not_change_a_signature() {
    let err = add_fails(Source::ir_text("define i32 @existing(i32 %x) {\n ret i32 %x\n}\n").named("second"));
    let Error::SignatureChanged { module, symbol, old, new } = &err else { panic!("{err:?}") };
    assert_eq!((module.as_str(), symbol.as_str()), ("second", "existing"));
    let new = new.as_ref().expect("an IR redefinition has a signature");
    assert_eq!((old.to_string(), new.to_string()), ("i64 (i64)".to_string(), "i32 (i32)".to_string()));
    assert_eq!(
        **old,
        <fn(i64) -> i64 as JitSignature>::signature(),
        "the signature is structured, not a string"
    );
}

#[test]
fn a_module_may_not_redefine_a_host_symbol() {
    let (jit, d) = setup();
    // SAFETY: no JIT code ever uses `host_thing` (the module that would define it is refused).
    unsafe { d.define_host_address("host_thing", 0x1000) }.unwrap();
    let before = snapshot(&jit);
    let err = d.add_module(Source::ir_text("define i64 @host_thing() {\n ret i64 1\n}\n")).unwrap_err();
    assert!(matches!(err, Error::DuplicateDefinition { ref symbol, .. } if symbol == "host_thing"), "{err}");
    assert_eq!(snapshot(&jit), before);
}

#[test]
fn unresolved_symbols_are_all_listed() {
    let src = "declare i64 @a()\ndeclare i64 @b()\ndefine i64 @g() {\n %x = call i64 @a()\n %y = call i64 @b()\n %z = add i64 %x, %y\n ret i64 %z\n}\n";
    let err = add_fails(Source::ir_text(src).named("needs"));
    let Error::UnresolvedSymbols { module, dylib, symbols } = &err else { panic!("{err:?}") };
    assert_eq!((module.as_str(), dylib.as_str()), ("needs", "d"));
    assert_eq!(symbols, &["a", "b"]);
}

#[test]
fn signature_mismatch_at_lookup() {
    let (_jit, d) = setup();
    let err = d.lookup::<fn(f64) -> i64>("existing").unwrap_err();
    let Error::SignatureMismatch { symbol, expected, found } = &err else { panic!("{err:?}") };
    assert_eq!(symbol, "existing");
    assert_eq!(
        (expected.to_string(), found.to_string()),
        ("i64 (double)".to_string(), "i64 (i64)".to_string())
    );
    assert!(matches!(d.lookup::<fn() -> i64>("missing"), Err(Error::SymbolNotFound { .. })));
}

#[test]
fn garbage_object() {
    let err = add_fails(Source::object(b"\x7fELF not really an object".to_vec()).named("junk.o"));
    assert!(matches!(err, Error::Object { ref module, .. } if module == "junk.o"), "{err:?}");
}

fn object_from_ir(ir: &str) -> Vec<u8> {
    use genjit::inkwell::targets::*;
    Target::initialize_native(&InitializationConfig::default()).unwrap();
    let ctx = genjit::inkwell::context::Context::create();
    let buf = genjit::inkwell::memory_buffer::MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "o");
    let m = ctx.create_module_from_ir(buf).unwrap();
    let triple = TargetMachine::get_default_triple();
    let tm = Target::from_triple(&triple)
        .unwrap()
        .create_target_machine(
            &triple,
            "x86-64",
            "",
            genjit::inkwell::OptimizationLevel::None,
            RelocMode::PIC,
            CodeModel::Small,
        )
        .unwrap();
    tm.write_to_memory_buffer(&m, FileType::Object).unwrap().as_slice().to_vec()
}

#[test]
fn genjits_own_names_are_refused_with_the_jit_unchanged() {
    // A user's global named like a lazy record, a counter or a runtime hook would be taken for genjit's
    // own by its linker (a stub decrementing the user's data, a hook called with the user's arguments).
    let cases = [
        ("@\"__gjz.0.foo\" = global i8 3\ndefine i64 @foo() {\n  ret i64 5\n}\n", "__gjz.0.foo"),
        ("@\"__gjc.1.foo\" = global i64 3\ndefine i64 @foo() {\n  ret i64 5\n}\n", "__gjc.1.foo"),
        ("declare void @__genjit_back_edge(ptr)\ndefine void @f() {\n  call void @__genjit_back_edge(ptr null)\n  \
          ret void\n}\n", "__genjit_back_edge"),
        ("define i64 @\"__gjo.f.1\"() {\n  ret i64 5\n}\n", "__gjo.f.1"),
    ];
    for (ir, name) in cases {
        for how in ["plain", "tiered", "lazy"] {
            let (jit, d) = setup();
            if how == "tiered" {
                d.enable_tiering(genjit::Tiering::new()).unwrap();
            }
            let before = snapshot(&jit);
            let source = Source::ir_text(ir).named("mine.ll");
            let err = match how {
                "lazy" => d.add_lazy_module(source, genjit::Lazy::new()).unwrap_err(),
                _ => d.add_module(source).unwrap_err(),
            };
            let Error::ReservedName { module, symbol } = &err else { panic!("{how}: {err:?}") };
            assert_eq!((module.as_str(), symbol.as_str()), ("mine.ll", name), "{how}");
            assert!(err.to_string().contains("reserves"), "{err}");
            assert_eq!(snapshot(&jit), before, "{how}: a refused module changed the JIT");
            assert_eq!(d.lookup::<fn(i64) -> i64>("existing").unwrap().call(4), 4);
        }
    }
    // An object is read for them too.
    let obj = object_from_ir("@\"__gjz.0.foo\" = global i8 3\ndefine i64 @foo() {\n  ret i64 5\n}\n");
    let err = add_fails(Source::object(obj).named("mine.o"));
    assert!(matches!(&err, Error::ReservedName { symbol, .. } if symbol == "__gjz.0.foo"), "{err:?}");
}

#[test]
fn unsupported_relocation_is_named() {
    // An object (not IR, so no thread-local rewrite) reaching an external TLS variable: R_X86_64_TLSGD.
    let obj = object_from_ir(
        "@t = external thread_local global i32\ndefine i32 @get() {\n %v = load i32, ptr @t\n ret i32 %v\n}\n",
    );
    let (jit, d) = setup();
    // SAFETY: the only module that would use these names is refused, so no code ever touches them.
    unsafe { d.define_host_address("t", 0x1000) }.unwrap();
    // SAFETY: as above.
    unsafe { d.define_host_address("__tls_get_addr", 0x2000) }.unwrap();
    let before = snapshot(&jit);
    let err = d.add_module(Source::object(obj).named("tls.o")).unwrap_err();
    assert_eq!(snapshot(&jit), before);
    let Error::UnsupportedRelocation { module, kind, symbol, .. } = &err else { panic!("{err:?}") };
    assert_eq!((module.as_str(), kind.as_str(), symbol.as_str()), ("tls.o", "R_X86_64_TLSGD", "t"));
}

static FAR_AWAY: i64 = 77;

#[test]
fn out_of_range_pc_relative_data_reference() {
    // `dso_local` promises the linker a near address; a host static is 2+ GiB away from the heap.
    let (jit, d) = setup();
    // SAFETY: JIT code only loads an `i64` from `far`, and `FAR_AWAY` is a static `i64`.
    unsafe { d.define_host_address("far", &FAR_AWAY as *const i64 as usize) }.unwrap();
    let before = snapshot(&jit);
    let err = d
        .add_module(Source::ir_text("@far = external dso_local global i64\ndefine i64 @r() {\n %v = load i64, ptr @far\n ret i64 %v\n}\n"))
        .unwrap_err();
    assert_eq!(snapshot(&jit), before);
    assert!(matches!(err, Error::RelocationOutOfRange { ref symbol, .. } if symbol == "far"), "{err:?}");
    assert!(err.to_string().contains("compile with -fPIC"), "the error names the fix: {err}");
    // Without `dso_local` the reference goes through the GOT and works.
    d.add_module(Source::ir_text(
        "@far = external global i64\ndefine i64 @r() {\n %v = load i64, ptr @far\n ret i64 %v\n}\n",
    ))
    .unwrap();
    assert_eq!(d.lookup::<fn() -> i64>("r").unwrap().call(), 77);
}

#[test]
fn thread_local_in_a_constant_initializer() {
    let err = add_fails(Source::ir_text("@t = thread_local global i32 1\n@p = global ptr @t\n"));
    assert!(matches!(err, Error::UnsupportedThreadLocal { ref symbol, .. } if symbol == "t"), "{err:?}");
}

#[test]
fn duplicate_dylib_and_host_symbol() {
    let (jit, d) = setup();
    assert!(matches!(jit.create_dylib("d"), Err(Error::DuplicateDylib(ref n)) if n == "d"));
    assert!(matches!(
        // SAFETY: the definition is refused (the name exists), so nothing can use the address.
        unsafe { d.define_host_address("existing", 1) },
        Err(Error::DuplicateDefinition { definer: Definer::Host, dylib: Some(ref n), .. }) if n == "d"
    ));
    // SAFETY: no JIT code in this test uses `jit_wide`.
    unsafe { jit.define_host_address("jit_wide", 1) }.unwrap();
    // SAFETY: refused: the name exists.
    let err = unsafe { jit.define_host_address("jit_wide", 2) }.unwrap_err();
    assert!(matches!(err, Error::DuplicateDefinition { definer: Definer::Host, dylib: None, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "a host definition defines `jit_wide`, already defined in the JIT's host symbols"
    );
    assert_eq!(d.lookup::<fn(i64) -> i64>("existing").unwrap().call(1), 1);
}

/// LLVM reports these as error diagnostics and, with no handler on the context, calls `exit(1)`: each
/// runs in a child process so that a regression fails the test instead of ending the test binary.
#[test]
fn invalid_inline_asm_is_a_typed_error_not_an_exit() {
    if crate::in_child("errors::invalid_inline_asm_is_a_typed_error_not_an_exit").is_some() {
        return;
    }
    let inline =
        "define i64 @bad() {\n  call void asm sideeffect \"notaninstruction %eax\", \"\"()\n  ret i64 0\n}\n";
    let err = add_fails(Source::ir_text(inline).named("inline_asm"));
    let Error::Codegen { module, message } = &err else { panic!("{err:?}") };
    assert_eq!(module, "inline_asm");
    assert!(message.contains("invalid instruction mnemonic 'notaninstruction'"), "{message}");
    let module_asm = "module asm \"this is garbage @@@\"\ndefine i64 @g() {\n  ret i64 0\n}\n";
    let err = add_fails(Source::ir_text(module_asm).named("module_asm"));
    assert!(
        matches!(&err, Error::Codegen { message, .. } if message.contains("unexpected token")),
        "{err:?}"
    );
    // The JIT goes on compiling after a failed module.
    let (_jit, d) = setup();
    d.add_module(Source::ir_text("define i64 @ok() {\n  ret i64 1\n}\n")).unwrap();
}

#[test]
fn a_function_in_a_writable_executable_section_is_refused() {
    // Accepted before, placed as (non-executable) data: the first call segfaulted.
    let ir = "module asm \".section .wxtext,\\22awx\\22,@progbits\"\n\
              module asm \".globl wx\"\nmodule asm \".type wx,@function\"\n\
              module asm \"wx: movl $$1, %eax; ret\"\n";
    let err = add_fails(Source::ir_text(ir).named("wx"));
    let Error::Unsupported { module, what } = &err else { panic!("{err:?}") };
    assert_eq!(module, "wx");
    assert!(what.contains("writable and executable"), "{what}");
}

#[test]
fn a_local_ifunc_is_refused() {
    let ir =
        "define i64 @impl(i64 %x) {\n  ret i64 %x\n}\ndefine internal ptr @pick() {\n  ret ptr @impl\n}\n\
              @g = internal ifunc i64 (i64), ptr @pick\n\
              define i64 @use_g(i64 %x) {\n  %r = call i64 @g(i64 %x)\n  ret i64 %r\n}\n";
    let err = add_fails(Source::ir_text(ir).named("local_ifunc"));
    assert!(matches!(&err, Error::Unsupported { what, .. } if what.contains("ifunc")), "{err:?}");
}
