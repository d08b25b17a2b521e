//! The one error type at genjit's public boundary.
//!
//! Every variant is a specific failure a caller can act on and names what was involved: the module (by the
//! name its [`Source`](crate::Source) was given), the dylib, the symbol, and LLVM's own message where there is
//! one. Every operation that returns an error leaves the JIT as it was before the call: no symbol is half
//! defined, no heap space is kept, no module is lost. A broken internal invariant panics instead.

pub use crate::dylib::Importer;
use crate::signature::Signature;
use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// Who defines (or tried to define) a name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Definer {
    /// A module, by name.
    Module(String),
    /// A host symbol (`define_host`, `define_host_address`).
    Host,
    /// An explicit redirectable symbol (`create_redirectable`).
    Redirectable,
}

impl fmt::Display for Definer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Definer::Module(m) => write!(f, "module `{m}`"),
            Definer::Host => f.write_str("a host definition"),
            Definer::Redirectable => f.write_str("a redirectable symbol"),
        }
    }
}

/// Why an explicit redirection was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedirectRefusal {
    /// The target leads back to the symbol itself (through this many entries, at `through`).
    Cycle {
        /// The target symbol whose chain of redirections reaches the symbol.
        through: String,
    },
    /// The target is data, not a function.
    Data,
    /// The name is not a redirectable symbol of this dylib (a module function, or nothing).
    NotRedirectable,
    /// The target's signature differs from the symbol's.
    SignatureMismatch {
        /// The symbol's signature.
        expected: Box<Signature>,
        /// The target's (`None`: unknown, e.g. a raw address).
        found: Option<Box<Signature>>,
    },
}

impl fmt::Display for RedirectRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectRefusal::Cycle { through } => write!(f, "redirecting to `{through}` would form a cycle"),
            RedirectRefusal::Data => f.write_str("the target is data"),
            RedirectRefusal::NotRedirectable => f.write_str("it is not a redirectable symbol of this dylib"),
            RedirectRefusal::SignatureMismatch { expected, found: Some(found) } => {
                write!(f, "the target has `{found}`, the symbol `{expected}`")
            }
            RedirectRefusal::SignatureMismatch { expected, found: None } => {
                write!(f, "the target has no known signature, the symbol `{expected}`")
            }
        }
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
}

/// The prefixes of the names genjit's linker and runtime treat as genjit's own symbols: counters
/// (`__gjc.`, `__gjb.`), OSR entries (`__gjo.`), lazy records (`__gjz.`) and the runtime's functions
/// (`__genjit_`). A module naming one is refused ([`Error::ReservedName`]). Promoted locals (`__gj.`)
/// are ordinary symbols of their dylib, which a module may redefine (an inlined static helper, by the
/// name `TierStatus::inlined` gives).
pub const RESERVED_PREFIXES: [&str; 5] = ["__gjb.", "__gjc.", "__gjo.", "__gjz.", "__genjit_"];

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
    /// The module defines or uses a name genjit gives its own symbols ([`RESERVED_PREFIXES`]): its
    /// linker would take such a symbol for genjit's (a counter, a lazy record, an OSR entry, a runtime
    /// hook).
    #[error(
        "module `{module}` names `{symbol}`, a name genjit reserves for its own symbols (those starting with {})",
        RESERVED_PREFIXES.map(|p| format!("`{p}`")).join(", ")
    )]
    ReservedName {
        /// The module's name.
        module: String,
        /// The name.
        symbol: String,
    },
    /// The optimization pipeline or code generation failed.
    #[error("module `{module}` failed to compile: {message}")]
    Codegen {
        /// The module's name.
        module: String,
        /// LLVM's message.
        message: String,
    },
    /// The compiler died on this module (isolated compilation, [`JitBuilder::isolate`](crate::JitBuilder::isolate)):
    /// a fatal LLVM error or a crash in a worker process. The JIT is unchanged.
    #[error("compiling module `{module}` crashed the compiler: {reason}")]
    CompilerCrashed {
        /// The module's name.
        module: String,
        /// The worker's signal or exit status, and LLVM's last message if it printed one.
        reason: String,
    },
    /// An isolated compile took longer than [`Isolation::timeout`](crate::Isolation::timeout); its worker
    /// was killed and nothing was added.
    #[error("module `{module}`: compilation took longer than {limit:?}; the compile worker was killed")]
    CompileTimeout {
        /// The module's name.
        module: String,
        /// The limit it exceeded.
        limit: std::time::Duration,
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
    #[error(
        "module `{module}`: {kind} against `{symbol}` does not fit (value {value:#x}); a 32-bit PC-relative \
         reference reaches only the code heap's 2 GiB, so data outside it must go through the GOT: declare it \
         without `dso_local` (compile with -fPIC)"
    )]
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
    /// A name is defined twice (strongly): by a module or a host definition in a dylib that already has
    /// it, or as a JIT-wide host symbol that already exists.
    #[error("{definer} defines `{symbol}`, already defined in {}", dylib.as_ref().map_or("the JIT's host symbols".to_string(), |d| format!("dylib `{d}`")))]
    DuplicateDefinition {
        /// The symbol.
        symbol: String,
        /// Who tried to define it.
        definer: Definer,
        /// The dylib, or `None` for the JIT's host symbols.
        dylib: Option<String>,
    },
    /// Tiering was asked of a dylib that cannot tier (see [`Dylib::enable_tiering`](crate::Dylib)), or a
    /// function that is not a tiered module's.
    #[error("tiering in dylib `{dylib}`: {reason}")]
    Tiering {
        /// The dylib.
        dylib: String,
        /// What was wrong.
        reason: String,
    },
    /// A tier-up of `symbol` was dropped: the function was redefined or removed while it compiled (a
    /// user's change always wins over a tier-up).
    #[error("tier-up of `{symbol}` in dylib `{dylib}` dropped: it was redefined meanwhile")]
    Superseded {
        /// The dylib.
        dylib: String,
        /// The function.
        symbol: String,
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
        expected: Box<Signature>,
        /// The signature in the IR.
        found: Box<Signature>,
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
    /// Removing (or redefining the data of) a definition would leave live importers using a name it
    /// defines. Remove the importers in the same call, or force the removal
    /// ([`Removal::Force`](crate::Removal)).
    #[error("{definer} is still used: `{symbol}` is imported by {}", list(importers))]
    ModuleInUse {
        /// Whose definition would go away: a module or a redirectable symbol.
        definer: Definer,
        /// The first name that is still imported.
        symbol: String,
        /// Who imports it.
        importers: Vec<Importer>,
    },
    /// A redefinition would change a function's signature, which callers compiled against the old one (and
    /// typed `Func` handles) rely on. Remove the old definition first.
    #[error("module `{module}` redefines `{symbol}` as {}, but it is `{old}`", new.as_ref().map_or("code of unknown signature (an object file)".to_string(), |n| format!("`{n}`")))]
    SignatureChanged {
        /// The redefining module.
        module: String,
        /// The function.
        symbol: String,
        /// Its current signature.
        old: Box<Signature>,
        /// The signature in the new module; `None` for an object file, whose code has no IR signature
        /// (a typed function is never redefined by code whose signature is unknown).
        new: Option<Box<Signature>>,
    },
    /// An explicit redirection was refused.
    #[error("cannot redirect `{symbol}` in dylib `{dylib}`: {reason}")]
    Redirect {
        /// The redirectable symbol.
        symbol: String,
        /// Its dylib.
        dylib: String,
        /// Why.
        reason: Box<RedirectRefusal>,
    },
    /// A file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The file, as given.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The code heap could not map memory, or its 2 GiB range is full.
    #[error("code heap: {0}")]
    Heap(#[source] std::io::Error),
    /// A thread genjit needs could not be started (the process is out of threads or memory).
    #[error("cannot start {what}: {source}")]
    Thread {
        /// Which thread.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// `Result` with genjit's [`Error`](enum@Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;
