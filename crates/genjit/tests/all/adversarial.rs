//! The adversarial corpus: hostile objects built field by field, and hostile IR. Every case runs in a child
//! process (one per group; each case's name is printed before it runs, so a crash names it) and must end
//! in a typed error or a correct success, with the JIT exactly as it was afterwards: same modules, symbols
//! and heap bytes, and the module added before still callable.
//!
//! Groups: every x86-64 relocation type (0..=43) at in-bounds, edge and wild offsets with extreme addends
//! against functions, data, sections and externals; every field of every section header and of the ELF
//! header set to hostile values; every field of every symbol; IR asking for more memory than the heap has.

use genjit::{Error, Jit, Source};
use object::write::{Object, Relocation, StandardSection, Symbol, SymbolSection};
use object::{Architecture, BinaryFormat, Endianness, RelocationFlags, SymbolFlags, SymbolKind, SymbolScope};

use crate::snapshot;

/// A JIT with one working module and the host symbol `ext` the hostile objects import.
fn setup() -> (Jit, genjit::Dylib) {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    d.add_module(Source::ir_text("define i64 @existing(i64 %x) {\n ret i64 %x\n}\n").named("first")).unwrap();
    extern "C" fn ext() {}
    d.define_host("ext", ext as extern "C" fn()).unwrap();
    (jit, d)
}

/// Adds `bytes` as an object named `case`; checks the contract and returns whether the add succeeded.
fn check(jit: &Jit, d: &genjit::Dylib, case: &str, bytes: Vec<u8>, must_fail: bool) -> bool {
    eprintln!("case {case}");
    let before = snapshot(jit);
    let ok = match d.add_module_without_init(Source::object(bytes).named(case)) {
        Ok(m) => {
            assert!(!must_fail, "{case}: accepted");
            d.remove_module(&m).unwrap();
            true
        }
        Err(e) => {
            let named = match &e {
                Error::Object { module, .. }
                | Error::UnsupportedRelocation { module, .. }
                | Error::Unsupported { module, .. }
                | Error::RelocationOutOfRange { module, .. }
                | Error::UnresolvedSymbols { module, .. }
                | Error::UnsupportedThreadLocal { module, .. } => module == case,
                Error::DuplicateDefinition { definer: genjit::Definer::Module(module), .. } => module == case,
                Error::Heap(_) => true,
                other => panic!("{case}: unexpected error kind {other:?}"),
            };
            assert!(named, "{case}: the error does not name the module: {e}");
            false
        }
    };
    assert_eq!(snapshot(jit), before, "{case}: the JIT changed");
    assert_eq!(d.lookup::<fn(i64) -> i64>("existing").unwrap().call(4), 4, "{case}: the old module broke");
    ok
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Function,
    Data,
    External,
    Section,
}

/// `.text` (64 bytes of `ret`) defining `f`, `.data` (16 bytes) defining `d`, an undefined `ext`, and one
/// relocation in `.text`.
fn with_relocation(r_type: u32, offset: u64, target: Target, addend: i64) -> Vec<u8> {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let text = obj.section_id(StandardSection::Text);
    obj.append_section_data(text, &[0xc3; 64], 16);
    let data = obj.section_id(StandardSection::Data);
    obj.append_section_data(data, &[0; 16], 8);
    let symbol = |name: &str, kind, section| Symbol {
        name: name.as_bytes().to_vec(),
        value: 0,
        size: 0,
        kind,
        scope: SymbolScope::Dynamic,
        weak: false,
        section,
        flags: SymbolFlags::None,
    };
    let f = obj.add_symbol(symbol("f", SymbolKind::Text, SymbolSection::Section(text)));
    let d = obj.add_symbol(symbol("d", SymbolKind::Data, SymbolSection::Section(data)));
    let ext = obj.add_symbol(symbol("ext", SymbolKind::Text, SymbolSection::Undefined));
    let symbol = match target {
        Target::Function => f,
        Target::Data => d,
        Target::External => ext,
        Target::Section => obj.section_symbol(data),
    };
    obj.add_relocation(text, Relocation { offset, symbol, addend, flags: RelocationFlags::Elf { r_type } })
        .unwrap();
    obj.write().unwrap()
}

#[test]
fn every_relocation_type_at_hostile_places() {
    if crate::in_child("adversarial::every_relocation_type_at_hostile_places").is_some() {
        return;
    }
    let (jit, d) = setup();
    let mut accepted = 0;
    let mut cases = 0;
    for r_type in 0..=43u32 {
        for offset in [0u64, 60, 63, 64, 1 << 40, u64::MAX - 3] {
            for target in [Target::Function, Target::Data, Target::External, Target::Section] {
                for addend in [0i64, -4, i64::MAX, i64::MIN] {
                    let case = format!("r{r_type}@{offset:#x}->{target:?}{addend:+}");
                    // No x86-64 field is wider than 8 bytes: past 56 some widths overrun the 64-byte section,
                    // and every field at 64 or beyond is outside it.
                    let must_fail = offset >= 64;
                    cases += 1;
                    if check(&jit, &d, &case, with_relocation(r_type, offset, target, addend), must_fail) {
                        accepted += 1;
                    }
                }
            }
        }
    }
    eprintln!("{cases} relocation cases: {accepted} linked correctly, the rest refused with typed errors");
    assert!(accepted > 0 && accepted < cases);
}

/// A realistic object from LLVM: text, read-only data, data, bss, `.eh_frame`, relocations, an import.
fn llvm_object() -> Vec<u8> {
    use genjit::inkwell::{context::Context, memory_buffer::MemoryBuffer, targets::FileType};
    let ir = r#"
@greeting = private constant [6 x i8] c"hello\00"
@counter = global i64 5
@zeros = global [64 x i64] zeroinitializer
declare void @ext()
define i64 @g(i64 %x) {
  call void @ext()
  %c = load i64, ptr @counter
  %p = getelementptr [64 x i64], ptr @zeros, i64 0, i64 %x
  store i64 %c, ptr %p
  %s = load i8, ptr @greeting
  %w = zext i8 %s to i64
  %r = add i64 %w, %c
  ret i64 %r
}
"#;
    let ctx = Context::create();
    let module =
        ctx.create_module_from_ir(MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "m")).unwrap();
    let tm = genjit::host_target_machine(genjit::OptLevel::O0).unwrap();
    tm.write_to_memory_buffer(&module, FileType::Object).unwrap().as_slice().to_vec()
}

fn put(bytes: &mut [u8], at: usize, value: u64, width: usize) {
    bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

fn get(bytes: &[u8], at: usize, width: usize) -> u64 {
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(&bytes[at..at + width]);
    u64::from_le_bytes(v)
}

#[test]
fn hostile_headers_sections_and_symbols() {
    if crate::in_child("adversarial::hostile_headers_sections_and_symbols").is_some() {
        return;
    }
    let (jit, d) = setup();
    let base = llvm_object();
    assert!(check(&jit, &d, "unmodified", base.clone(), false), "the unmodified object links");
    let shoff = get(&base, 40, 8) as usize;
    let shnum = get(&base, 60, 2) as usize;
    let len = base.len() as u64;
    let mut cases = 0;
    let mut run = |case: String, at: usize, value: u64, width: usize| {
        let mut bytes = base.clone();
        put(&mut bytes, at, value, width);
        cases += 1;
        check(&jit, &d, &case, bytes, false);
    };
    // The ELF header: e_shoff, e_shentsize, e_shnum, e_shstrndx, e_type, e_machine.
    for (field, at, width) in [("shoff", 40, 8), ("shentsize", 58, 2), ("shnum", 60, 2), ("shstrndx", 62, 2)]
    {
        for value in [0, 1, len - 1, len, 0xffff, u64::MAX] {
            run(format!("ehdr.{field}={value:#x}"), at, value, width);
        }
    }
    // Every field of every section header: (name, offset, width).
    const FIELDS: [(&str, usize, usize); 10] = [
        ("name", 0, 4),
        ("type", 4, 4),
        ("flags", 8, 8),
        ("addr", 16, 8),
        ("offset", 24, 8),
        ("size", 32, 8),
        ("link", 40, 4),
        ("info", 44, 4),
        ("addralign", 48, 8),
        ("entsize", 56, 8),
    ];
    let mut symtab = None;
    for i in 1..shnum {
        let header = shoff + i * 64;
        if get(&base, header + 4, 4) == 2 {
            symtab = Some((get(&base, header + 24, 8) as usize, get(&base, header + 32, 8) as usize));
        }
        for (field, offset, width) in FIELDS {
            let values: &[u64] = match field {
                "type" => &[0, 1, 4, 8, 9, 0x6fff_fff6, 0xffff_ffff],
                "flags" => &[0, 0x7, 0x400, 0x4 | 0x2 | 0x1, u64::MAX],
                "addralign" => &[0, 3, 1 << 12, 1 << 13, 1 << 40, 1 << 63],
                "size" => &[0, len, 1 << 31, 1 << 40, u64::MAX],
                _ => &[len, 0xffff, 1 << 40, u64::MAX],
            };
            for &value in values {
                let width_max = if width == 4 { u64::from(u32::MAX) } else { u64::MAX };
                run(format!("shdr[{i}].{field}={value:#x}"), header + offset, value.min(width_max), width);
            }
        }
    }
    // Every field of every symbol.
    let (symoff, symsize) = symtab.expect("the object has a symbol table");
    for s in 1..symsize / 24 {
        let sym = symoff + s * 24;
        for (field, offset, width, values) in [
            ("name", 0, 4, &[0xffff_ffffu64, len][..]),
            ("info", 4, 1, &[0x06, 0x0a, 0x13, 0x1a, 0xff][..]),
            ("shndx", 6, 2, &[0xfff1, 0xfff2, 0xff00, 0xffff, shnum as u64][..]),
            ("value", 8, 8, &[1 << 40, u64::MAX][..]),
            ("size", 16, 8, &[1 << 40, u64::MAX][..]),
        ] {
            for &value in values {
                run(format!("sym[{s}].{field}={value:#x}"), sym + offset, value, width);
            }
        }
    }
    // Truncations at every 64th byte and at the last few.
    for cut in (0..base.len()).step_by(64).chain(base.len() - 4..base.len()) {
        let case = format!("truncated@{cut}");
        cases += 1;
        check(&jit, &d, &case, base[..cut].to_vec(), true);
    }
    eprintln!("{cases} header, section, symbol and truncation cases");
}

#[test]
fn ir_that_asks_for_more_than_the_heap_has() {
    if crate::in_child("adversarial::ir_that_asks_for_more_than_the_heap_has").is_some() {
        return;
    }
    let (jit, d) = setup();
    for (case, ir) in [
        ("bss-4GiB", "@big = global [4294967296 x i8] zeroinitializer\n"),
        ("bss-1TiB", "@big = global [1099511627776 x i8] zeroinitializer\n"),
        ("code-align", "define void @f() align 1073741824 {\n ret void\n}\n"),
        ("data-align", "@a = global i64 1, align 1073741824\n"),
    ] {
        eprintln!("case {case}");
        let before = snapshot(&jit);
        let result = d.add_module(Source::ir_text(ir).named(case));
        match result {
            Ok(m) => {
                // Acceptable only if the module really got what it asked for.
                panic!("{case}: accepted ({:?} bytes)", m.heap_bytes())
            }
            Err(e) => eprintln!("{case}: {e}"),
        }
        assert_eq!(snapshot(&jit), before, "{case}: the JIT changed");
        assert_eq!(d.lookup::<fn(i64) -> i64>("existing").unwrap().call(4), 4);
    }
}
