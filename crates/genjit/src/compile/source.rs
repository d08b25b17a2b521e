//! Where a module's code comes from.

use crate::error::{Error, Result};
use inkwell::context::Context;
use inkwell::module::Module;
use std::path::{Path, PathBuf};

pub(crate) type BuildFn =
    Box<dyn for<'c> FnOnce(&'c Context) -> std::result::Result<Module<'c>, String> + Send>;

pub(crate) enum SourceKind {
    IrText(Vec<u8>),
    Bitcode(Vec<u8>),
    Object(Vec<u8>),
    Build(BuildFn),
}

/// Where a module's code comes from: IR text, bitcode, a closure that builds an inkwell `Module`, or a
/// relocatable x86-64 ELF object.
///
/// ```
/// let source = genjit::Source::ir_text("define i32 @one() {\n  ret i32 1\n}\n").named("one");
/// assert_eq!(source.name(), Some("one"));
/// ```
pub struct Source {
    pub(crate) name: Option<String>,
    pub(crate) kind: SourceKind,
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
    /// Its size in bytes, as a guess of its compile time (a build closure: unknown, 0).
    pub(crate) fn size(&self) -> usize {
        match &self.kind {
            SourceKind::IrText(b) | SourceKind::Bitcode(b) | SourceKind::Object(b) => b.len(),
            SourceKind::Build(_) => 0,
        }
    }

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

    /// Reads a file: bitcode (by its magic number or a `.bc` extension), an object (`.o`), or IR text. The
    /// module is named by the path as given, so LLVM's messages (`path:line:col`) point at the file.
    pub fn file(path: impl AsRef<Path>) -> Result<Source> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let source = if bytes.starts_with(b"BC\xC0\xDE") || ext == "bc" {
            Source::bitcode(bytes)
        } else if ext == "o" {
            Source::object(bytes)
        } else {
            Source { name: None, kind: SourceKind::IrText(bytes) }
        };
        Ok(source.named(path.display().to_string()))
    }

    /// Names the module (used in errors, handles, timings, dumps and profiler maps).
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DumpKind {
    /// The IR after optimization (`.ll`).
    Ir,
    /// Assembly (`.s`), from a second code generation run.
    Asm,
    /// The object handed to the linker (`.o`).
    Obj,
}

impl DumpKind {
    fn extension(self) -> &'static str {
        match self {
            DumpKind::Ir => "ll",
            DumpKind::Asm => "s",
            DumpKind::Obj => "o",
        }
    }

    /// The file a dump of module `name` goes to in `dir` (the name made file-system safe).
    pub(crate) fn path(self, dir: &Path, name: &str) -> PathBuf {
        let safe: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
        dir.join(format!("{safe}.{}", self.extension()))
    }
}
