//! The one error type at genjit's public boundary.
//!
//! Every variant is a specific failure a caller can act on and names what was involved: the module (by the
//! name its [`Source`](crate::Source) was given), the dylib, the symbol, and LLVM's own message where there is
//! one. Every operation that returns an error leaves the JIT as it was before the call: no symbol is half
//! defined, no heap space is kept, no module is lost. A broken internal invariant panics instead.

use thiserror::Error;

/// What went wrong.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// LLVM could not be initialized for the host, or no target machine could be built.
    #[error("LLVM target initialization failed: {0}")]
    Target(String),
    /// The IR text or bitcode did not parse; LLVM's message (with line and column for text).
    #[error("module `{module}` does not parse: {message}")]
    Parse {
        /// The module's name.
        module: String,
        /// LLVM's message.
        message: String,
    },
    /// The module parsed but failed LLVM's verifier.
    #[error("module `{module}` is not valid IR: {message}")]
    Verify {
        /// The module's name.
        module: String,
        /// LLVM's verifier output.
        message: String,
    },
    /// The optimization pipeline or code generation failed.
    #[error("module `{module}` failed to compile: {message}")]
    Codegen {
        /// The module's name.
        module: String,
        /// LLVM's message.
        message: String,
    },
    /// A thread-local variable is used in a way genjit cannot redirect to per-thread storage.
    #[error("module `{module}`: thread-local `{symbol}` {reason}")]
    UnsupportedThreadLocal {
        /// The module's name.
        module: String,
        /// The variable.
        symbol: String,
        /// What use was found.
        reason: String,
    },
    /// The object file is not a relocatable x86-64 ELF object genjit can read.
    #[error("module `{module}`: bad object file: {message}")]
    Object {
        /// The module's name.
        module: String,
        /// What was wrong.
        message: String,
    },
    /// The object uses a relocation kind the linker does not implement.
    #[error("module `{module}`: unsupported relocation {kind} in section `{section}` (against `{symbol}`)")]
    UnsupportedRelocation {
        /// The module's name.
        module: String,
        /// The relocation type, e.g. `R_X86_64_TPOFF32`.
        kind: String,
        /// The section being relocated.
        section: String,
        /// The symbol the relocation refers to.
        symbol: String,
    },
    /// The object has a section or symbol kind the linker does not implement.
    #[error("module `{module}`: unsupported {what}")]
    Unsupported {
        /// The module's name.
        module: String,
        /// What was found.
        what: String,
    },
    /// A relocated value does not fit its field (e.g. a 32-bit PC-relative reference to a far host symbol).
    #[error("module `{module}`: {kind} against `{symbol}` does not fit (value {value:#x})")]
    RelocationOutOfRange {
        /// The module's name.
        module: String,
        /// The relocation type.
        kind: String,
        /// The symbol.
        symbol: String,
        /// The value that did not fit.
        value: i128,
    },
    /// Symbols the module needs are defined nowhere it can see.
    #[error("module `{module}` in dylib `{dylib}`: unresolved symbols: {}", symbols.join(", "))]
    UnresolvedSymbols {
        /// The module's name.
        module: String,
        /// The dylib it was being added to.
        dylib: String,
        /// Every unresolved name.
        symbols: Vec<String>,
    },
    /// The module defines a symbol the dylib already has (strongly).
    #[error("module `{module}` defines `{symbol}`, already defined in dylib `{dylib}`")]
    DuplicateDefinition {
        /// The module's name.
        module: String,
        /// The symbol.
        symbol: String,
        /// The dylib.
        dylib: String,
    },
    /// A lookup found no such symbol.
    #[error("symbol `{symbol}` not found in dylib `{dylib}`")]
    SymbolNotFound {
        /// The dylib searched.
        dylib: String,
        /// The symbol.
        symbol: String,
    },
    /// The Rust type given to a typed lookup does not match the function's IR signature.
    #[error("`{symbol}` has IR type `{found}`, but was looked up as `{expected}`")]
    SignatureMismatch {
        /// The symbol.
        symbol: String,
        /// The signature the Rust type stands for.
        expected: String,
        /// The signature in the IR.
        found: String,
    },
    /// The symbol has no IR signature (it came from an object file or is data); use an address lookup.
    #[error("`{symbol}` has no known function signature (object-file code or data)")]
    NoSignature {
        /// The symbol.
        symbol: String,
    },
    /// The dylib was removed from its JIT.
    #[error("dylib `{0}` was removed")]
    DylibRemoved(String),
    /// A dylib of that name already exists.
    #[error("a dylib named `{0}` already exists")]
    DuplicateDylib(String),
    /// The handle names a module that is not (or no longer) in the dylib.
    #[error("module `{module}` is not in dylib `{dylib}`")]
    ModuleNotFound {
        /// The module.
        module: String,
        /// The dylib.
        dylib: String,
    },
    /// Removing (or redefining the data of) the module would leave live modules using a name it defines.
    /// Remove the importers in the same call, or force the removal ([`Removal::Force`](crate::Removal)).
    #[error("module `{module}` is still used: `{symbol}` is imported by {}", importers.join(", "))]
    ModuleInUse {
        /// The module (or redirectable symbol) whose definition would go away.
        module: String,
        /// The first name that is still imported.
        symbol: String,
        /// Who imports it, e.g. "module `q7` of dylib `main`".
        importers: Vec<String>,
    },
    /// A redefinition would change a function's signature, which callers compiled against the old one (and
    /// typed `Func` handles) rely on. Remove the old definition first.
    #[error("module `{module}` redefines `{symbol}` as `{new}`, but it is `{old}`")]
    SignatureChanged {
        /// The redefining module.
        module: String,
        /// The function.
        symbol: String,
        /// Its current signature.
        old: String,
        /// The signature in the new module.
        new: String,
    },
    /// An explicit redirection was refused.
    #[error("cannot redirect `{symbol}` in dylib `{dylib}`: {reason}")]
    Redirect {
        /// The redirectable symbol.
        symbol: String,
        /// Its dylib.
        dylib: String,
        /// Why.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The code heap could not map memory (or its 2 GiB range is full).
    #[error("code heap: {0}")]
    Memory(#[from] std::io::Error),
}

/// `Result` with genjit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
