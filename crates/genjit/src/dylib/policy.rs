//! What a tiered dylib decides, and what the user decides for it: [`Tiering`] (levels, thresholds,
//! transforms, delay) and the [`Policy`] trait.

use crate::compile::{OptLevel, Transform};
use std::sync::Arc;
use std::time::Duration;

/// How a dylib tiers up (see [`Dylib::enable_tiering`](crate::Dylib::enable_tiering)).
///
/// genjit has two tiers: the first (the JIT's level, with counters) and the higher one. The thresholds
/// say when a function at the first tier asks for the higher one; a [`Policy`] may then decide
/// otherwise.
#[derive(Clone)]
#[non_exhaustive]
pub struct Tiering {
    /// The level the higher tier is compiled at (default O2).
    pub level: OptLevel,
    /// Calls after which a function asks for the higher tier (default 100; `None`: calls are not
    /// counted). Counted at its entry by one counter per function.
    pub calls: Option<u64>,
    /// Loop back-edges after which a function asks for the higher tier, so a function whose time goes into
    /// one long loop moves up too (default 100; `None`: not counted). One counter per function.
    pub back_edges: Option<u64>,
    /// The pass pipeline of the higher tier, in `opt -passes=` syntax, instead of the level's
    /// `default<On>`.
    pub passes: Option<String>,
    /// A transform of the higher tier's IR before it is optimized (see [`Transform`]).
    pub transform: Option<Transform>,
    /// Decides what a function whose counter ran out does (default: tier up).
    pub policy: Option<Arc<dyn Policy>>,
    /// Tier-ups wait until no first-tier module or lazy function of the JIT was compiled for this long,
    /// so start-up compilation is not slowed (like .NET's call-counting delay; default 100 ms). A
    /// function's counter keeps counting meanwhile.
    pub delay: Duration,
    /// The longest a queued tier-up waits for that quiet (default 1 s): a host that compiles without
    /// pause (a query engine adding expression modules) would otherwise never tier anything up.
    pub max_delay: Duration,
    /// On-stack replacement: a first-tier call still looping this many back-edges after its function
    /// moved up gets an OSR entry for its loop (the function is compiled again with it) and continues
    /// in the higher tier's code (default 1,000; DESIGN.md, "On-stack replacement"). `None`: the call
    /// finishes at the first tier, and first-tier code has no transfer to make.
    pub osr: Option<u64>,
    /// The first tier's clean-up (default on): inside each block, a load from a stack slot whose address
    /// nothing takes reuses the value the block last stored into or loaded from it, and an address or
    /// integer extension computed twice from the same values is computed once. Every store stays, so the
    /// frame at each block boundary is what plain O0 code has (loop state for on-stack replacement, and
    /// for a debugger); the code generator sees fewer instructions, and the code runs fewer (DESIGN.md,
    /// "The first tier's clean-up"). Off: the first tier is the JIT's level exactly, plus counters.
    pub cleanup: bool,
}

impl Default for Tiering {
    fn default() -> Self {
        Tiering {
            level: OptLevel::O2,
            calls: Some(100),
            back_edges: Some(100),
            passes: None,
            transform: None,
            policy: None,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            osr: Some(1_000),
            cleanup: true,
        }
    }
}

impl std::fmt::Debug for Tiering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiering")
            .field("level", &self.level)
            .field("calls", &self.calls)
            .field("back_edges", &self.back_edges)
            .field("passes", &self.passes)
            .field("transform", &self.transform.as_ref().map(|_| "<closure>"))
            .field("policy", &self.policy.as_ref().map(|_| "<policy>"))
            .field("delay", &self.delay)
            .field("max_delay", &self.max_delay)
            .field("osr", &self.osr)
            .field("cleanup", &self.cleanup)
            .finish()
    }
}

impl Tiering {
    /// The default: the higher tier at O2 after 100 calls or 100 back-edges, 100 ms delay (1 s at most).
    pub fn new() -> Tiering {
        Tiering::default()
    }

    /// The level the higher tier is compiled at.
    pub fn level(mut self, level: OptLevel) -> Tiering {
        self.level = level;
        self
    }

    /// Both thresholds at once: calls and back-edges (`None`: only [`Dylib::reoptimize`](crate::Dylib)
    /// moves anything up).
    pub fn threshold(self, count: Option<u64>) -> Tiering {
        self.calls(count).back_edges(count)
    }

    /// The calls after which a function asks for the higher tier (`None`: not counted).
    pub fn calls(mut self, calls: Option<u64>) -> Tiering {
        self.calls = calls.map(|c| c.max(1));
        self
    }

    /// The loop back-edges after which a function asks for the higher tier (`None`: not counted).
    pub fn back_edges(mut self, back_edges: Option<u64>) -> Tiering {
        self.back_edges = back_edges.map(|c| c.max(1));
        self
    }

    /// The higher tier's pass pipeline (`opt -passes=` syntax), instead of `default<On>`; code
    /// generation stays at [`level`](Self::level). One LLVM cannot parse is refused by
    /// [`Dylib::enable_tiering`](crate::Dylib::enable_tiering).
    pub fn passes(mut self, pipeline: &str) -> Tiering {
        self.passes = Some(pipeline.to_string());
        self
    }

    /// A transform of the higher tier's IR, run before the pipeline, on a tier-up thread. An `Err` or a
    /// panic drops that tier-up (the function stays where it is); the module is verified after it.
    pub fn transform<F>(mut self, transform: F) -> Tiering
    where
        F: Fn(&inkwell::module::Module<'_>, &str) -> Result<(), String> + Send + Sync + 'static,
    {
        self.transform = Some(Arc::new(transform));
        self
    }

    /// The policy that decides what a function whose counter ran out does.
    pub fn policy(mut self, policy: impl Policy + 'static) -> Tiering {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// How long the JIT must have compiled nothing at the first tier before tier-ups start.
    pub fn delay(mut self, delay: Duration) -> Tiering {
        self.delay = delay;
        self
    }

    /// The longest a queued tier-up waits for the delay's quiet.
    pub fn max_delay(mut self, max_delay: Duration) -> Tiering {
        self.max_delay = max_delay;
        self
    }

    /// Sets (or turns off) on-stack replacement (see [`osr`](Self::osr)).
    pub fn osr(mut self, back_edges: Option<u64>) -> Tiering {
        self.osr = back_edges.map(|n| n.max(1));
        self
    }

    /// Turns the first tier's clean-up on or off (see [`cleanup`](Self::cleanup)).
    pub fn cleanup(mut self, on: bool) -> Tiering {
        self.cleanup = on;
        self
    }

    pub(crate) fn thresholds(&self) -> crate::compile::tier::Thresholds {
        crate::compile::tier::Thresholds {
            calls: self.calls,
            back_edges: self.back_edges,
            osr: self.osr.is_some(),
            cleanup: self.cleanup,
        }
    }
}

/// What made a function ask for the higher tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trigger {
    /// Its call counter ran out.
    Calls,
    /// Its back-edge counter ran out.
    BackEdges,
}

/// A function asking for the higher tier, as a [`Policy`] sees it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HotFunction<'a> {
    /// The dylib.
    pub dylib: &'a str,
    /// The function.
    pub function: &'a str,
    /// The module it comes from.
    pub module: &'a str,
    /// Which counter ran out.
    pub trigger: Trigger,
    /// What that counter has counted since the function was compiled (its threshold times the number of
    /// times it ran out, [`Decision::CountAgain`] included).
    pub counted: u64,
    /// The dylib's tier-ups so far.
    pub tier_ups: u64,
    /// The dylib's tier-ups (and speculative compiles) queued or compiling now.
    pub queued: usize,
    /// The time spent compiling the dylib's tier-ups so far.
    pub tier_up_compile_time: Duration,
}

/// What a [`Policy`] decides for a [`HotFunction`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Queue its tier-up (the default).
    TierUp,
    /// Count this many more events of the trigger's kind, then ask again.
    CountAgain(u64),
    /// Leave it at the first tier (its counter stops asking; [`Dylib::reoptimize`](crate::Dylib) still
    /// works).
    Stay,
}

/// A user's tiering policy: called on the thread whose counter ran out, from JIT code, so it must be
/// quick and must not call back into the JIT (no adds, removals or lookups; it may queue work of its own).
/// A panic is caught (it would abort the process inside JIT code) and taken as [`Decision::Stay`].
pub trait Policy: Send + Sync {
    /// What `function`, whose counter ran out, does now.
    fn decide(&self, function: &HotFunction<'_>) -> Decision;
}

/// Any `Fn(&HotFunction) -> Decision` is a policy.
impl<F: Fn(&HotFunction<'_>) -> Decision + Send + Sync> Policy for F {
    fn decide(&self, function: &HotFunction<'_>) -> Decision {
        self(function)
    }
}
