//! Where the time of adding a module goes, phase by phase.
//!
//! Every module added to a dylib carries its [`ModuleTimings`] (see
//! [`ModuleHandle::timings`](crate::ModuleHandle::timings)), the figures PostgreSQL's `EXPLAIN (ANALYZE)`
//! prints for its JIT. Each phase also runs inside a `tracing` span of the same name (level `DEBUG`,
//! target `genjit::...`), under a `compile` or `change` span naming the module or dylib, so a host's
//! subscriber sees them without polling.

use std::fmt;
use std::time::Duration;

/// How long each phase of adding one module took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ModuleTimings {
    /// Parsing IR text or bitcode, or running the user's build closure (zero for objects).
    pub parse: Duration,
    /// LLVM's verifier, the host triple and data layout, the thread-local rewrite, recording signatures.
    pub verify: Duration,
    /// genjit's own IR rewrites (a tiered module's promotion, kept bitcode and counters; a higher tier's
    /// extraction) and the IR pass pipeline (`default<On>`; none at O0).
    pub optimize: Duration,
    /// Code generation into an ELF object (and any requested dumps).
    pub emit: Duration,
    /// genjit's linker: layout, resolution, allocation, relocation.
    pub link: Duration,
    /// Checking and committing the change: redirecting entries and publishing symbols. Shared by all
    /// modules added in one call (each reports the whole).
    pub publish: Duration,
    /// The module's static constructors.
    pub constructors: Duration,
}

impl ModuleTimings {
    /// The sum of every phase.
    pub fn total(&self) -> Duration {
        self.parse + self.verify + self.optimize + self.emit + self.link + self.publish + self.constructors
    }
}

/// Phase by phase (to total several modules' timings).
impl std::ops::Add for ModuleTimings {
    type Output = ModuleTimings;
    fn add(self, o: ModuleTimings) -> ModuleTimings {
        ModuleTimings {
            parse: self.parse + o.parse,
            verify: self.verify + o.verify,
            optimize: self.optimize + o.optimize,
            emit: self.emit + o.emit,
            link: self.link + o.link,
            publish: self.publish + o.publish,
            constructors: self.constructors + o.constructors,
        }
    }
}

impl fmt::Display for ModuleTimings {
    /// One line, milliseconds: `parse 0.051, verify 0.012, ..., total 0.402 ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "parse {:.3}, verify {:.3}, optimize {:.3}, emit {:.3}, link {:.3}, publish {:.3}, \
             constructors {:.3}, total {:.3} ms",
            ms(self.parse),
            ms(self.verify),
            ms(self.optimize),
            ms(self.emit),
            ms(self.link),
            ms(self.publish),
            ms(self.constructors),
            ms(self.total())
        )
    }
}

/// Runs `$body` inside a `DEBUG` span called `$name` and adds its duration to `$slot`.
macro_rules! phase {
    ($slot:expr, $name:literal, $body:expr) => {{
        let _span = tracing::debug_span!($name).entered();
        let start = std::time::Instant::now();
        let out = $body;
        $slot += start.elapsed();
        out
    }};
}
pub(crate) use phase;
