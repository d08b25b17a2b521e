//! The host `TargetMachine`: the one place genjit's code-generation settings are chosen.
//!
//! Every module is emitted for the host CPU and its features (inkwell's MCJIT constructors compile for
//! generic x86-64 and lack e.g. `popcnt`), with the **PIC relocation model and the small code model**:
//! ordinary `.text`, 32-bit PC-relative references and GOT-relative access to external data, which the
//! heap's 2 GiB span keeps in range (see `heap`). A `TargetMachine` is neither `Send` nor `Sync` and costs
//! ~150 us to build, so each compiling thread keeps one per optimization level.

use crate::error::{Error, Result};
use inkwell::targets::{CodeModel, InitializationConfig, RelocMode, Target, TargetMachine};
use inkwell::OptimizationLevel;
use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// How hard LLVM works on a module: the IR pipeline (`default<On>`) and the code generator's level.
///
/// Parses from `0`..`3` or `O0`..`O3` and prints as `O0`..`O3`.
///
/// ```
/// let level: genjit::OptLevel = "2".parse().unwrap();
/// assert_eq!(level, genjit::OptLevel::O2);
/// assert_eq!(level.to_string(), "O2");
/// assert!("4".parse::<genjit::OptLevel>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
    /// Every level, lowest first.
    pub const ALL: [OptLevel; 4] = [OptLevel::O0, OptLevel::O1, OptLevel::O2, OptLevel::O3];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The new pass manager's pipeline for this level, or `None` at O0 (no IR passes, as LLJIT and MCJIT).
    pub(crate) fn pipeline(self) -> Option<String> {
        (self != OptLevel::O0).then(|| format!("default<O{}>", self.index()))
    }

    fn codegen(self) -> OptimizationLevel {
        match self {
            OptLevel::O0 => OptimizationLevel::None,
            OptLevel::O1 => OptimizationLevel::Less,
            OptLevel::O2 => OptimizationLevel::Default,
            OptLevel::O3 => OptimizationLevel::Aggressive,
        }
    }
}

impl fmt::Display for OptLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "O{}", self.index())
    }
}

/// An optimization level that is not `0`..`3` (or `O0`..`O3`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("optimization level `{0}` is not one of 0, 1, 2, 3")]
pub struct ParseOptLevelError(String);

impl FromStr for OptLevel {
    type Err = ParseOptLevelError;

    fn from_str(s: &str) -> std::result::Result<OptLevel, ParseOptLevelError> {
        let digit = s.strip_prefix('O').unwrap_or(s);
        OptLevel::ALL
            .into_iter()
            .find(|l| l.index().to_string() == digit)
            .ok_or(ParseOptLevelError(s.to_string()))
    }
}

fn init_llvm() -> Result<()> {
    static INIT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| Target::initialize_native(&InitializationConfig::default()))
        .clone()
        .map_err(Error::Target)
}

/// A new `TargetMachine` with exactly the settings genjit compiles with: the host triple, CPU and
/// features, PIC, the small code model, and `level`'s code-generation level.
///
/// genjit keeps its own per thread; this is for code that must match it, e.g. building objects for
/// [`Source::object`](crate::Source::object) or configuring another engine identically for a comparison.
pub fn host_target_machine(level: OptLevel) -> Result<TargetMachine> {
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
pub(crate) fn with_machine<T>(level: OptLevel, f: impl FnOnce(&TargetMachine) -> Result<T>) -> Result<T> {
    MACHINES.with(|cell| {
        let mut machines = cell.borrow_mut();
        let slot = &mut machines[level.index()];
        if slot.is_none() {
            *slot = Some(host_target_machine(level)?);
        }
        f(slot.as_ref().expect("just created"))
    })
}
