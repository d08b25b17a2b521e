//! From a [`Source`] to a relocatable ELF object: parse, verify, optimize, emit.
//!
//! ## Data flow
//! 1. A fresh LLVM `Context` is created on the calling thread for every compile (~4 us) and dropped at the
//!    end, so compiles on different threads share nothing and need no lock. (A shared context would
//!    serialize all compilation and grow forever with the types and constants of dead modules.)
//! 2. The source becomes a `Module`: text IR is parsed (LLVM's message carries line and column), bitcode is
//!    read, or the user's closure builds it. The module is then **verified before anything else runs**: the
//!    optimizer and code generator assume valid IR.
//! 3. Its triple and data layout are set to the host's; thread-local variables are rewritten to per-thread
//!    storage ([`tls`]); the IR signature of every exported function is recorded for typed lookups.
//! 4. The new pass manager runs `default<On>` (nothing at O0), and the module is emitted as an object by
//!    this thread's [`machine`] for the level.
//!
//! An object-file source skips all of this and goes straight to the linker. Each phase is timed and traced
//! (see [`crate::timings`]).

mod cleanup;
mod diagnostics;
mod isolate;
mod machine;
pub(crate) mod osr;
mod source;
pub(crate) mod tier;
mod tls;

pub(crate) use isolate::Pool;
pub use isolate::{serve_compile_worker, Isolation};
pub use machine::{host_target_machine, OptLevel, ParseOptLevelError};
pub use source::{DumpKind, Source};
pub use tier::Transform;

use crate::error::{Error, Result};
use crate::signature::{IrType, Signature, ValType};
use crate::timings::{phase, ModuleTimings};
use diagnostics::Diagnostics;
use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::context::Context;
use inkwell::memory_buffer::MemoryBuffer;
use inkwell::module::{FlagBehavior, Linkage, Module};
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{FileType, TargetMachine};
use inkwell::values::FunctionValue;
pub(crate) use machine::with_machine;
use source::SourceKind;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A compiled module, ready for the linker.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// The module's name.
    pub(crate) name: String,
    /// When the name is the default `module#N`: N, which becomes the module's serial (so the name need
    /// not be stored: see DESIGN.md, "Metadata").
    pub(crate) default_serial: Option<u64>,
    /// The relocatable object.
    pub(crate) object: Vec<u8>,
    /// IR signatures of the functions it defines.
    pub(crate) signatures: HashMap<String, Signature>,
    /// For a tiered or lazy module: its IR as later compiles read it (see [`KeptIr`]).
    pub(crate) kept: Option<KeptIr>,
    /// For a lazy module: it has finalizers (`tier::has_finalizers`), which may call any of its functions
    /// when it is removed.
    pub(crate) finalizers: bool,
    /// A lazy origin: its lazy functions are declarations with records (`tier::make_lazy`), which the
    /// linker defines by lazy stubs. Only then does the linker read records: in any other module a name
    /// like a record's is plain data.
    pub(crate) lazy: bool,
    /// The compile phases' times (the link and publish phases are filled in later).
    pub(crate) timings: ModuleTimings,
}

impl Compiled {
    /// A module compiled to `object`, not tiered.
    pub(crate) fn new(
        name: String,
        object: Vec<u8>,
        signatures: HashMap<String, Signature>,
        timings: ModuleTimings,
    ) -> Compiled {
        let (kept, finalizers, lazy) = (None, false, false);
        Compiled { name, default_serial: None, object, signatures, kept, finalizers, lazy, timings }
    }
}

/// A tiered or lazy module's IR, kept for the compiles that follow it (a tier-up, a lazy function's first
/// call: `tier::compile_function`), which read the *promoted* module (`tier::promote_locals`) as bitcode.
#[derive(Clone, Debug)]
pub(crate) enum KeptIr {
    /// The promoted module's bitcode, written when the module was added.
    Promoted(Arc<[u8]>),
    /// The bitcode the module was added from, promoted under `tag` by the first tier-up that needs it, on
    /// its background thread: the same steps as when it was added (parse, [`prepare`],
    /// `tier::promote_locals`) give the same module. Writing the promoted bitcode when the module is
    /// added cost bzip2's start-up 51 M instructions of its 1,350 M (callgrind), on the thread adding it,
    /// for every module, most of which never tier up.
    Source(Arc<KeptSource>),
}

/// The bitcode a tiered module was added from (see [`KeptIr::Source`]).
#[derive(Debug)]
pub(crate) struct KeptSource {
    bytes: Vec<u8>,
    name: String,
    tag: String,
}

impl KeptIr {
    /// The bytes kept.
    pub(crate) fn len(&self) -> usize {
        match self {
            KeptIr::Promoted(b) => b.len(),
            KeptIr::Source(s) => s.bytes.len(),
        }
    }

    /// The promoted bitcode; derived from the source first if that is what is kept (`Err` only if the
    /// source no longer compiles the way it did, which would be a genjit bug).
    pub(crate) fn promoted(&self) -> Result<Arc<[u8]>> {
        let KeptSource { bytes, name, tag } = match self {
            KeptIr::Promoted(b) => return Ok(b.clone()),
            KeptIr::Source(source) => &**source,
        };
        let diagnostics = Diagnostics::default();
        let context = Context::create();
        // SAFETY: `diagnostics` is declared before `context`, so it is dropped after it, and never moves.
        unsafe { diagnostics.install(&context) };
        let module = load_module(&context, SourceKind::Bitcode(bytes.clone()), name)?;
        with_machine(OptLevel::O0, |machine| prepare(&module, name, machine))?;
        tier::promote_locals(&module, tag);
        Ok(module.write_bitcode_to_memory().as_slice().into())
    }
}

/// Compiles `source` at `level`; `dump` writes the requested artifacts into directories. `name` is used
/// when the source has none.
pub(crate) fn compile(
    source: Source,
    name: String,
    level: OptLevel,
    dump: &[(DumpKind, PathBuf)],
) -> Result<Compiled> {
    compile_with(source, name, level, dump, None)
}

/// How a first-tier module is compiled (see `tier`): the tag its locals are promoted under, and the call
/// count after which its functions ask for the higher tier.
pub(crate) struct FirstTier<'a> {
    pub(crate) tag: &'a str,
    pub(crate) thresholds: tier::Thresholds,
    /// Leave the functions that can be compiled alone declarations the linker defines by lazy stubs
    /// (`tier::make_lazy`).
    pub(crate) lazy: bool,
    /// Verify the module again after these rewrites (`JitBuilder::verify_rewrites`).
    pub(crate) verify: bool,
}

/// [`compile`]; for a first tier, the module's locals are promoted under its tag first
/// (`tier::promote_locals`), [`Compiled::bitcode`] keeps the promoted IR for later tiers, and then (with a
/// threshold) its functions get call counters (`tier::count_calls`).
pub(crate) fn compile_with(
    source: Source,
    name: String,
    level: OptLevel,
    dump: &[(DumpKind, PathBuf)],
    first_tier: Option<FirstTier<'_>>,
) -> Result<Compiled> {
    let name = source.name.clone().unwrap_or(name);
    if let SourceKind::Object(object) = source.kind {
        refuse_reserved_in_object(&object, &name)?;
        dump_bytes(dump, &name, DumpKind::Obj, &object);
        return Ok(Compiled::new(name, object, HashMap::new(), ModuleTimings::default()));
    }
    let mut kept = None;
    let mut finalizers = false;
    let mut lazy_origin = false;
    let mut first_tier = first_tier;
    // A tiered module added as bitcode keeps that (see `KeptIr::Source`); a lazy one is compiled from
    // its promoted IR at a first call, on the calling thread, so it writes that now.
    let mut source_bytes = match (&source.kind, &first_tier) {
        (SourceKind::Bitcode(bytes), Some(t)) if !t.lazy => Some(bytes.clone()),
        _ => None,
    };
    let mut before = |module: &Module<'_>| {
        let Some(t) = first_tier.take() else { return Ok(()) };
        tier::promote_locals(module, t.tag);
        kept = Some(match source_bytes.take() {
            Some(bytes) => {
                KeptIr::Source(Arc::new(KeptSource { bytes, name: name.clone(), tag: t.tag.into() }))
            }
            None => KeptIr::Promoted(module.write_bitcode_to_memory().as_slice().into()),
        });
        let lazy = if t.lazy { tier::make_lazy(module, t.tag) } else { Vec::new() };
        finalizers = !lazy.is_empty() && tier::has_finalizers(module);
        lazy_origin = !lazy.is_empty();
        if t.thresholds.cleanup {
            cleanup::clean_up(module, &lazy);
        }
        tier::count_calls(module, t.tag, t.thresholds, &lazy);
        match t.verify {
            true => verify_rewrites(module, &name),
            false => Ok(()),
        }
    };
    let steps = Steps { before_optimize: Some(&mut before), ..Steps::default() };
    let kind = source.kind;
    let mut compiled = compile_steps(&name, level, dump, |context| load_module(context, kind, &name), steps)?;
    compiled.kept = kept;
    compiled.finalizers = finalizers;
    compiled.lazy = lazy_origin;
    Ok(compiled)
}

/// Verifies `module` after genjit's own rewrites of it (see `JitBuilder::verify_rewrites`): a broken one
/// is an error naming genjit, never a module handed to LLVM's code generator (which aborts, or worse).
pub(crate) fn verify_rewrites(module: &Module<'_>, name: &str) -> Result<()> {
    module.verify().map_err(|m| Error::Verify {
        module: name.to_string(),
        message: format!("after genjit's tier-0 rewrites (a genjit bug): {m}"),
    })
}

/// A step run on a module between the phases of [`compile_steps`].
pub(crate) type ModuleStep<'a> = &'a mut dyn FnMut(&Module<'_>) -> Result<()>;

/// What [`compile_steps`] does besides parse, verify, optimize and emit.
#[derive(Default)]
pub(crate) struct Steps<'a> {
    /// Runs on the verified module, pointed at the host, before optimization.
    pub(crate) before_optimize: Option<ModuleStep<'a>>,
    /// The pass pipeline, instead of the level's `default<On>`.
    pub(crate) pipeline: Option<&'a str>,
    /// Runs on the optimized module, before code generation.
    pub(crate) after_optimize: Option<&'a mut dyn FnMut(&Module<'_>)>,
}

/// Builds a module in a fresh context with `load`, then verifies, prepares, optimizes and emits it, with
/// `steps` in between (see the module docs).
pub(crate) fn compile_steps(
    name: &str,
    level: OptLevel,
    dump: &[(DumpKind, PathBuf)],
    load: impl for<'c> FnOnce(&'c Context) -> Result<Module<'c>>,
    steps: Steps<'_>,
) -> Result<Compiled> {
    let _span = tracing::debug_span!("compile", module = %name, level = %level).entered();
    let mut timings = ModuleTimings::default();
    // Declared before the context, so it outlives it (the handler points at it).
    let diagnostics = Diagnostics::default();
    let context = Context::create();
    // SAFETY: `diagnostics` is declared before `context`, so it is dropped after it, and never moves.
    unsafe { diagnostics.install(&context) };
    let failed = |message: String| Error::Codegen { module: name.to_string(), message };
    let module = phase!(timings.parse, "parse", load(&context))?;
    let Steps { before_optimize, pipeline, after_optimize } = steps;
    with_machine(level, |machine| {
        let signatures = phase!(timings.verify, "verify", prepare(&module, name, machine))?;
        if let Some(before) = before_optimize {
            phase!(timings.optimize, "rewrite", before(&module))?;
        }
        if let Some(pipeline) = pipeline.map(str::to_string).or_else(|| level.pipeline()) {
            let options = PassBuilderOptions::create();
            phase!(timings.optimize, "optimize", module.run_passes(&pipeline, machine, options))
                .map_err(|m| failed(m.to_string()))?;
        }
        if let Some(after) = after_optimize {
            after(&module);
        }
        let object = phase!(timings.emit, "emit", emit(&module, name, machine, dump))?;
        // An error diagnostic (e.g. invalid inline asm) lets code generation run to the end, with an
        // object that must not be used.
        match diagnostics.take_errors() {
            Some(errors) => Err(failed(errors)),
            None => Ok(Compiled::new(name.to_string(), object, signatures, timings)),
        }
    })
}

/// Verifies the module, points it at the host, rewrites thread-locals and records signatures.
/// Whether `pipeline` (`opt -passes=` syntax) parses, checked by running it on an empty module: LLVM
/// reports a pipeline it cannot parse only when it runs one, which for a tier-up is on a background
/// thread, where every tier-up would be dropped one by one.
pub(crate) fn check_pipeline(pipeline: &str) -> std::result::Result<(), String> {
    let context = Context::create();
    let module = context.create_module("pipeline-check");
    with_machine(OptLevel::O0, |machine| {
        Ok(module.run_passes(pipeline, machine, PassBuilderOptions::create()))
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

fn prepare(module: &Module<'_>, name: &str, machine: &TargetMachine) -> Result<HashMap<String, Signature>> {
    module.verify().map_err(|m| Error::Verify { module: name.to_string(), message: m.to_string() })?;
    module.set_triple(&machine.get_triple());
    module.set_data_layout(&machine.get_target_data().get_data_layout());
    assume_pie(module);
    tls::rewrite_module(module, name)?;
    Ok(signatures(module))
}

/// Compiles `dso_local` definitions the way `-fPIC` IR compiles: through the entry.
///
/// clang without `-fPIC` (or with `-fPIE`) marks every definition `dso_local`. Under the PIC relocation
/// model and with no "PIE Level" flag, LLVM then calls a module's own functions and takes their addresses
/// through a local alias (`f$local`) that the assembler resolves inside the section: no relocation is
/// left for the linker to point at the entry, so a redefinition would not be seen by the module's own
/// calls and `&f` would not be stable. With the flag set (what `-fPIE` does) LLVM names the global symbol
/// instead, the relocation stays, and the linker sends it to the entry. The C API cannot clear
/// `dso_local` itself; the flag reaches the same code generation. Data declared `dso_local` and defined
/// outside the heap still cannot be reached PC-relatively: that is refused with a typed error naming the
/// fix (`RelocationOutOfRange`).
fn assume_pie(module: &Module<'_>) {
    if module.get_flag("PIE Level").is_none() {
        let level = module.get_context().i32_type().const_int(2, false);
        // The behaviour only matters when IR modules are linked together, which genjit never does.
        module.add_basic_value_flag("PIE Level", FlagBehavior::Warning, level);
    }
}

fn emit(
    module: &Module<'_>,
    name: &str,
    machine: &TargetMachine,
    dump: &[(DumpKind, PathBuf)],
) -> Result<Vec<u8>> {
    write_dumps(dump, name, module, machine);
    let buffer = machine
        .write_to_memory_buffer(module, FileType::Object)
        .map_err(|m| Error::Codegen { module: name.to_string(), message: m.to_string() })?;
    let object = buffer.as_slice().to_vec();
    dump_bytes(dump, name, DumpKind::Obj, &object);
    Ok(object)
}

fn load_module<'c>(context: &'c Context, kind: SourceKind, name: &str) -> Result<Module<'c>> {
    // LLVM's message ends in a newline after the caret line; the error's `Display` adds its own context.
    let parse_error =
        |m: String| Error::Parse { module: name.to_string(), message: m.trim_end().to_string() };
    let module = match kind {
        SourceKind::IrText(text) => {
            let buffer = MemoryBuffer::create_from_memory_range_copy(&text, name);
            context.create_module_from_ir(buffer).map_err(|m| parse_error(m.to_string()))
        }
        SourceKind::Bitcode(bytes) => {
            let buffer = MemoryBuffer::create_from_memory_range_copy(&bytes, name);
            Module::parse_bitcode_from_buffer(&buffer, context).map_err(|m| parse_error(m.to_string()))
        }
        SourceKind::Build(build) => build(context).map_err(parse_error),
        SourceKind::Object(_) => unreachable!("objects are not parsed as IR"),
    }?;
    use inkwell::llvm_sys::core::*;
    let m = module.as_mut_ptr();
    let mut named = tier::globals(m);
    // SAFETY: the module is live; its lists of aliases and ifuncs are only read.
    unsafe {
        let mut a = LLVMGetFirstGlobalAlias(m);
        while !a.is_null() {
            named.push(a);
            a = LLVMGetNextGlobalAlias(a);
        }
        let mut i = LLVMGetFirstGlobalIFunc(m);
        while !i.is_null() {
            named.push(i);
            i = LLVMGetNextGlobalIFunc(i);
        }
    }
    let reserved = named.into_iter().map(tier::value_name).find(|n| reserved(n));
    match reserved {
        Some(symbol) => Err(Error::ReservedName { module: name.to_string(), symbol }),
        None => Ok(module),
    }
}

/// Whether `name` starts like one of genjit's own symbols (`RESERVED_PREFIXES`).
fn reserved(name: &str) -> bool {
    crate::error::RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Refuses an object that defines or uses one of genjit's own names (an object that does not parse is
/// left to the linker, which names what is wrong with it).
fn refuse_reserved_in_object(object: &[u8], name: &str) -> Result<()> {
    use object::{Object, ObjectSymbol};
    let Ok(file) = object::File::parse(object) else { return Ok(()) };
    let found = file.symbols().filter(|s| !s.is_local()).filter_map(|s| s.name().ok()).find(|n| reserved(n));
    match found {
        Some(symbol) => Err(Error::ReservedName { module: name.to_string(), symbol: symbol.to_string() }),
        None => Ok(()),
    }
}

fn signatures(module: &Module<'_>) -> HashMap<String, Signature> {
    module
        .get_functions()
        .filter(|f| f.count_basic_blocks() > 0)
        .filter(|f| !matches!(f.get_linkage(), Linkage::Internal | Linkage::Private))
        .map(|f| (f.get_name().to_string_lossy().into_owned(), signature(f)))
        .collect()
}

/// Parameter attributes that change how an argument is passed: a parameter carrying one matches no Rust
/// type, whatever its IR type.
const ABI_ATTRIBUTES: [&str; 10] = [
    "byval",
    "byref",
    "sret",
    "inreg",
    "inalloca",
    "preallocated",
    "nest",
    "swiftself",
    "swiftasync",
    "swifterror",
];

fn signature(f: FunctionValue<'_>) -> Signature {
    let ty = f.get_type();
    let params = ty
        .get_param_types()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let abi: Vec<&str> = ABI_ATTRIBUTES
                .into_iter()
                .filter(|a| {
                    let kind = Attribute::get_named_enum_kind_id(a);
                    f.get_enum_attribute(AttributeLoc::Param(i as u32), kind).is_some()
                })
                .collect();
            match abi.is_empty() {
                true => ir_type(&t.to_string()),
                false => IrType::Other(format!("{} {}", t.to_string().trim_matches('"'), abi.join(" "))),
            }
        })
        .collect();
    let ret = ty.get_return_type().map(|t| ir_type(&t.to_string()));
    Signature::new(params, ret, ty.is_var_arg()).with_call_conv(f.get_call_conventions())
}

pub(crate) fn ir_type(spelling: &str) -> IrType {
    let spelling = spelling.trim_matches('"');
    IrType::Val(match spelling {
        "i8" => ValType::I8,
        "i16" => ValType::I16,
        "i32" => ValType::I32,
        "i64" => ValType::I64,
        "float" => ValType::F32,
        "double" => ValType::F64,
        "ptr" => ValType::Ptr,
        other => return IrType::Other(other.to_string()),
    })
}

fn dump_bytes(dump: &[(DumpKind, PathBuf)], name: &str, kind: DumpKind, bytes: &[u8]) {
    for (_, dir) in dump.iter().filter(|(k, _)| *k == kind) {
        // A dump is a debugging aid: failing to write one must not fail the compile.
        let _ = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(kind.path(dir, name), bytes));
    }
}

fn write_dumps(dump: &[(DumpKind, PathBuf)], name: &str, module: &Module<'_>, machine: &TargetMachine) {
    if dump.iter().any(|(k, _)| *k == DumpKind::Ir) {
        dump_bytes(dump, name, DumpKind::Ir, module.print_to_string().to_bytes());
    }
    if dump.iter().any(|(k, _)| *k == DumpKind::Asm) {
        if let Ok(asm) = machine.write_to_memory_buffer(module, FileType::Assembly) {
            dump_bytes(dump, name, DumpKind::Asm, asm.as_slice());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Locals of every kind promotion renames, a discardable definition it makes weak, and a
    /// thread-local `prepare` rewrites before promotion.
    const IR: &str = r#"
@.str = private unnamed_addr constant [4 x i8] c"abc\00"
@0 = internal global i64 1
@count = internal global i64 0
@tls = internal thread_local global i64 5
define internal i64 @helper(i64 %x) {
  %y = mul i64 %x, 3
  ret i64 %y
}
define linkonce_odr i64 @inline_fn(i64 %x) {
  ret i64 %x
}
define i64 @f(i64 %x) {
  %c = load i64, ptr @count
  %t = load i64, ptr @tls
  %u = load i64, ptr @0
  %h = call i64 @helper(i64 %x)
  %i = call i64 @inline_fn(i64 %h)
  %s = add i64 %c, %t
  %v = add i64 %s, %u
  %r = add i64 %v, %i
  ret i64 %r
}
define i64 @str() {
  ret i64 ptrtoint (ptr @.str to i64)
}
"#;

    #[test]
    fn a_module_kept_as_its_source_promotes_to_the_module_that_was_compiled() {
        let context = Context::create();
        let parsed =
            context.create_module_from_ir(MemoryBuffer::create_from_memory_range_copy(IR.as_bytes(), "m"));
        let bitcode = parsed.unwrap().write_bitcode_to_memory().as_slice().to_vec();
        let first = |lazy| {
            let tier = FirstTier { tag: "7", thresholds: tier::Thresholds::default(), lazy, verify: true };
            let source = Source::bitcode(bitcode.clone()).named("m");
            compile_with(source, "m".into(), OptLevel::O0, &[], Some(tier)).unwrap().kept.unwrap()
        };
        // Tiered: the source is kept; lazy: the promoted IR is written when the module is added.
        let (kept, written) = (first(false), first(true));
        assert!(matches!(kept, KeptIr::Source(_)), "{kept:?}");
        assert!(matches!(written, KeptIr::Promoted(_)), "{written:?}");
        let text = |bitcode: &[u8]| {
            let buffer = MemoryBuffer::create_from_memory_range_copy(bitcode, "m");
            Module::parse_bitcode_from_buffer(&buffer, &context).unwrap().print_to_string().to_string()
        };
        let (derived, written) = (text(&kept.promoted().unwrap()), text(&written.promoted().unwrap()));
        assert_eq!(derived, written);
        for promoted in ["@__gj.7.helper", "@__gj.7.count", "@__gj.7.tls", "@__gju.7", "weak_odr"] {
            assert!(derived.contains(promoted), "{promoted}: {derived}");
        }
        assert!(!derived.contains("thread_local"), "prepared before promotion: {derived}");
    }
}
