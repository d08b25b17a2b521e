//! From a [`Source`] to a relocatable ELF object: parse, verify, optimize, emit.
//!
//! ## Data flow
//! 1. A fresh LLVM `Context` is created on the calling thread for every compile (~4 us) and dropped at the
//!    end, so compiles on different threads share nothing and need no lock.
//! 2. The source becomes a `Module`: text IR is parsed (LLVM's message carries line and column), bitcode is
//!    read, or the user's closure builds it. The module is then **verified before anything else runs**.
//! 3. Its triple and data layout are set to the host's; thread-local variables are rewritten to per-thread
//!    storage ([`crate::tls`]); the IR signature of every exported function is recorded for typed lookups.
//! 4. The new pass manager runs `default<On>` (nothing at O0), and the module is emitted as an object by a
//!    `TargetMachine` built once per thread and optimization level for the host CPU and its features, with
//!    the PIC relocation model and the small code model: ordinary `.text` and 32-bit PC-relative references,
//!    which the heap's 2 GiB span keeps in range.
//!
//! An object-file source skips all of this and goes straight to the linker.

use crate::error::{Error, Result};
use crate::signature::{IrType, Signature, ValType};
use inkwell::context::Context;
use inkwell::llvm_sys;
use inkwell::memory_buffer::MemoryBuffer;
use inkwell::module::{Linkage, Module};
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{
    CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine, TargetTriple,
};
use inkwell::OptimizationLevel;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// How hard LLVM works on a module: the IR pipeline (`default<On>`) and the code generator's level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OptLevel {
    /// No IR passes; fast instruction selection.
    #[default]
    O0,
    /// `default<O1>`.
    O1,
    /// `default<O2>`.
    O2,
    /// `default<O3>`.
    O3,
}

impl OptLevel {
    /// Parses `0`..`3`.
    pub fn from_digit(s: &str) -> Option<OptLevel> {
        Some(match s {
            "0" => OptLevel::O0,
            "1" => OptLevel::O1,
            "2" => OptLevel::O2,
            "3" => OptLevel::O3,
            _ => return None,
        })
    }

    /// The level's digit (`0`..`3`), as [`from_digit`](Self::from_digit) reads it.
    pub fn digit(self) -> usize {
        self as usize
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn codegen(self) -> OptimizationLevel {
        match self {
            OptLevel::O0 => OptimizationLevel::None,
            OptLevel::O1 => OptimizationLevel::Less,
            OptLevel::O2 => OptimizationLevel::Default,
            OptLevel::O3 => OptimizationLevel::Aggressive,
        }
    }
}

type BuildFn = Box<dyn for<'c> FnOnce(&'c Context) -> std::result::Result<Module<'c>, String> + Send>;

enum SourceKind {
    IrText(Vec<u8>),
    Bitcode(Vec<u8>),
    Object(Vec<u8>),
    Build(BuildFn),
}

/// Where a module's code comes from: IR text, bitcode, a closure that builds an inkwell `Module`, or a
/// relocatable x86-64 ELF object.
pub struct Source {
    name: Option<String>,
    kind: SourceKind,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            SourceKind::IrText(_) => "ir_text",
            SourceKind::Bitcode(_) => "bitcode",
            SourceKind::Object(_) => "object",
            SourceKind::Build(_) => "build",
        };
        f.debug_struct("Source").field("name", &self.name).field("kind", &kind).finish()
    }
}

impl Source {
    /// LLVM IR in its text form.
    pub fn ir_text(text: impl Into<String>) -> Source {
        Source { name: None, kind: SourceKind::IrText(text.into().into_bytes()) }
    }

    /// LLVM bitcode.
    pub fn bitcode(bytes: impl Into<Vec<u8>>) -> Source {
        Source { name: None, kind: SourceKind::Bitcode(bytes.into()) }
    }

    /// A relocatable x86-64 ELF object (no IR signatures: reach its functions by address).
    pub fn object(bytes: impl Into<Vec<u8>>) -> Source {
        Source { name: None, kind: SourceKind::Object(bytes.into()) }
    }

    /// A closure that builds the module in the context genjit gives it, on the compiling thread.
    pub fn build<F>(f: F) -> Source
    where
        F: for<'c> FnOnce(&'c Context) -> std::result::Result<Module<'c>, String> + Send + 'static,
    {
        Source { name: None, kind: SourceKind::Build(Box::new(f)) }
    }

    /// Reads a file: `.bc` (or bitcode magic) as bitcode, `.o` as an object, anything else as IR text.
    /// The module is named after the file.
    pub fn file(path: impl Into<PathBuf>) -> std::io::Result<Source> {
        let path = path.into();
        let bytes = std::fs::read(&path)?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let source = if bytes.starts_with(b"BC\xC0\xDE") || ext == "bc" {
            Source::bitcode(bytes)
        } else if ext == "o" {
            Source::object(bytes)
        } else {
            Source { name: None, kind: SourceKind::IrText(bytes) }
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        Ok(source.named(name.unwrap_or_default()))
    }

    /// Names the module (used in errors, handles and dumps).
    pub fn named(mut self, name: impl Into<String>) -> Source {
        self.name = Some(name.into());
        self
    }

    /// The module's name, if one was given.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// What to write out for debugging, per module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpKind {
    /// The IR after optimization (`.ll`).
    Ir,
    /// Assembly (`.s`), from a second code generation run.
    Asm,
    /// The object handed to the linker (`.o`).
    Obj,
}

/// A compiled module, ready for the linker.
#[derive(Debug)]
pub struct Compiled {
    /// The module's name.
    pub name: String,
    /// The relocatable object.
    pub object: Vec<u8>,
    /// IR signatures of the functions it defines.
    pub signatures: HashMap<String, Signature>,
}

fn init_llvm() -> Result<()> {
    static INIT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| Target::initialize_native(&InitializationConfig::default()))
        .clone()
        .map_err(Error::Target)
}

pub(crate) fn new_machine(level: OptLevel) -> Result<TargetMachine> {
    init_llvm()?;
    let triple = TargetMachine::get_default_triple();
    let target = Target::from_triple(&triple).map_err(|e| Error::Target(e.to_string()))?;
    let cpu = TargetMachine::get_host_cpu_name();
    let features = TargetMachine::get_host_cpu_features();
    target
        .create_target_machine(
            &triple,
            cpu.to_str().unwrap_or("generic"),
            features.to_str().unwrap_or(""),
            level.codegen(),
            RelocMode::PIC,
            CodeModel::Small,
        )
        .ok_or_else(|| Error::Target(format!("no target machine for {triple}")))
}

thread_local! {
    static MACHINES: RefCell<[Option<TargetMachine>; 4]> = const { RefCell::new([None, None, None, None]) };
}

/// Runs `f` with this thread's target machine for `level`, creating it on first use (~150 us).
pub fn with_machine<T>(level: OptLevel, f: impl FnOnce(&TargetMachine) -> Result<T>) -> Result<T> {
    MACHINES.with(|cell| {
        let mut machines = cell.borrow_mut();
        let slot = &mut machines[level.index()];
        if slot.is_none() {
            *slot = Some(new_machine(level)?);
        }
        f(slot.as_ref().expect("just created"))
    })
}

/// The host triple genjit compiles for.
pub fn host_triple() -> TargetTriple {
    TargetMachine::get_default_triple()
}

/// Compiles `source` at `level`; `dump` writes the requested artifacts to a directory.
pub fn compile(source: Source, level: OptLevel, dump: &[(DumpKind, PathBuf)]) -> Result<Compiled> {
    let name = source.name.clone().unwrap_or_else(|| "<module>".to_string());
    if let SourceKind::Object(object) = source.kind {
        dump_bytes(dump, &name, DumpKind::Obj, &object);
        return Ok(Compiled { name, object, signatures: HashMap::new() });
    }
    let context = Context::create();
    let module = load_module(&context, source.kind, &name)?;
    module.verify().map_err(|m| Error::Verify { module: name.clone(), message: m.to_string() })?;
    with_machine(level, |machine| {
        module.set_triple(&machine.get_triple());
        module.set_data_layout(&machine.get_target_data().get_data_layout());
        crate::tls::rewrite_module(&module, &name)?;
        let signatures = signatures(&module);
        if level != OptLevel::O0 {
            let pipeline = format!("default<O{}>", level.index());
            module
                .run_passes(&pipeline, machine, PassBuilderOptions::create())
                .map_err(|m| Error::Codegen { module: name.clone(), message: m.to_string() })?;
        }
        write_dumps(dump, &name, &module, machine);
        let buffer = machine
            .write_to_memory_buffer(&module, FileType::Object)
            .map_err(|m| Error::Codegen { module: name.clone(), message: m.to_string() })?;
        let object = buffer.as_slice().to_vec();
        dump_bytes(dump, &name, DumpKind::Obj, &object);
        Ok(Compiled { name: name.clone(), object, signatures })
    })
}

fn load_module<'c>(context: &'c Context, kind: SourceKind, name: &str) -> Result<Module<'c>> {
    let parse_error = |m: String| Error::Parse { module: name.to_string(), message: m };
    match kind {
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
    }
}

fn signatures(module: &Module<'_>) -> HashMap<String, Signature> {
    module
        .get_functions()
        .filter(|f| f.count_basic_blocks() > 0)
        .filter(|f| !matches!(f.get_linkage(), Linkage::Internal | Linkage::Private))
        .map(|f| {
            let name = f.get_name().to_string_lossy().into_owned();
            let ty = f.get_type();
            let params = ty.get_param_types().iter().map(|t| ir_type(&t.to_string())).collect();
            let ret = ty.get_return_type().map(|t| ir_type(&t.to_string()));
            (name, Signature { params, ret, varargs: ty.is_var_arg() })
        })
        .collect()
}

fn ir_type(spelling: &str) -> IrType {
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

fn dump_path(dir: &std::path::Path, name: &str, ext: &str) -> PathBuf {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
    dir.join(format!("{safe}.{ext}"))
}

fn dump_bytes(dump: &[(DumpKind, PathBuf)], name: &str, kind: DumpKind, bytes: &[u8]) {
    for (k, dir) in dump.iter().filter(|(k, _)| *k == kind) {
        let ext = match k {
            DumpKind::Ir => "ll",
            DumpKind::Asm => "s",
            DumpKind::Obj => "o",
        };
        // A dump is a debugging aid: failing to write one must not fail the compile.
        let _ = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(dump_path(dir, name, ext), bytes));
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

/// The raw LLVM handle of a module, for the IR rewrites in [`crate::tls`].
pub(crate) fn module_ref(module: &Module<'_>) -> llvm_sys::prelude::LLVMModuleRef {
    module.as_mut_ptr()
}
