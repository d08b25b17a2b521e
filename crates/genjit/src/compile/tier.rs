//! Tiering, compile-time half: the IR rewrites that let one function of a module be recompiled on its own
//! (at a higher tier) and linked against the module it came from.
//!
//! - [`promote_locals`] runs on a module *before* its first tier is compiled: every definition with local
//!   linkage (`internal`, `private`: string constants, `static` variables and functions, C++ static-local
//!   guards) gets a name unique to the module and becomes a `hidden` global. The first tier's object then
//!   names them, so the dylib's table has them, visible inside the dylib only.
//! - [`extract_function`] runs on a copy of the promoted IR: it keeps one function's body and turns every
//!   other definition into a declaration of the same name. Compiled and added to the dylib, that module
//!   redefines the function (its entry is redirected, as for any redefinition) and binds every global and
//!   every other function to the first tier's definitions: the same addresses, the same state, no second
//!   run of any initializer (constructors are dropped).

use super::{Compiled, OptLevel};
use crate::error::{Error, Result};
use inkwell::context::Context;
use inkwell::llvm_sys::bit_reader::LLVMGetBitcodeModuleInContext2;
use inkwell::llvm_sys::comdat::LLVMSetComdat;
use inkwell::llvm_sys::core::*;
use inkwell::llvm_sys::prelude::*;
use inkwell::llvm_sys::{LLVMLinkage, LLVMVisibility};
use inkwell::module::Module;
use inkwell::values::AsValueRef;

pub(super) fn value_name(v: LLVMValueRef) -> String {
    let mut len = 0;
    // SAFETY: `v` is a live value of the module being rewritten; LLVM returns a pointer/length pair into it.
    let ptr = unsafe { LLVMGetValueName2(v, &mut len) };
    // SAFETY: as above, `len` bytes are readable at `ptr`.
    String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }).into_owned()
}

pub(super) fn set_name(v: LLVMValueRef, name: &str) {
    // SAFETY: `v` is a live global of the module; LLVM copies the name.
    unsafe { LLVMSetValueName2(v, name.as_ptr().cast(), name.len()) };
}

/// Every function and global variable of `m`, definitions and declarations.
pub(super) fn globals(m: LLVMModuleRef) -> Vec<LLVMValueRef> {
    let mut all = Vec::new();
    // SAFETY: `m` is a live module; the iteration only reads its lists, which nothing changes meanwhile.
    unsafe {
        let mut f = LLVMGetFirstFunction(m);
        while !f.is_null() {
            all.push(f);
            f = LLVMGetNextFunction(f);
        }
        let mut g = LLVMGetFirstGlobal(m);
        while !g.is_null() {
            all.push(g);
            g = LLVMGetNextGlobal(g);
        }
    }
    all
}

/// Makes every local definition of `module` a hidden global named `__gj.<tag>.<name>` (see the module docs),
/// and every discardable one weak.
/// `tag` must be unique among the modules of the dylib (the module's serial).
pub(crate) fn promote_locals(module: &Module<'_>, tag: &str) {
    let m = module.as_mut_ptr();
    // The module's marker: data it always defines, so it stays published (its first-tier bodies are the
    // fallback of its higher tiers) until it is removed, even when every function moved up.
    let marker = std::ffi::CString::new(format!("__gju.{tag}")).expect("no NUL in a tag");
    // SAFETY: `m` is live; the new global gets a zero initializer and hidden visibility.
    unsafe {
        let i8t = LLVMInt8TypeInContext(LLVMGetModuleContext(m));
        let unit = LLVMAddGlobal(m, i8t, marker.as_ptr());
        LLVMSetInitializer(unit, LLVMConstInt(i8t, 0, 0));
        LLVMSetVisibility(unit, LLVMVisibility::LLVMHiddenVisibility);
    }
    for v in globals(m) {
        // SAFETY: `v` is a live global of the module; linkage and visibility are plain attributes.
        unsafe {
            if LLVMIsDeclaration(v) != 0 {
                continue;
            }
            let linkage = LLVMGetLinkage(v);
            // A discardable definition (C++ inline functions and variables) vanishes from an optimized
            // first tier once inlined everywhere, or when only a lazy function's unread body used
            // it: a later tier or lazy compile would then find its name undefined. Keep it, as weak.
            match linkage {
                LLVMLinkage::LLVMLinkOnceAnyLinkage => LLVMSetLinkage(v, LLVMLinkage::LLVMWeakAnyLinkage),
                LLVMLinkage::LLVMLinkOnceODRLinkage => LLVMSetLinkage(v, LLVMLinkage::LLVMWeakODRLinkage),
                _ => {}
            }
            if !matches!(linkage, LLVMLinkage::LLVMInternalLinkage | LLVMLinkage::LLVMPrivateLinkage) {
                continue;
            }
            // A computed goto's table that nothing writes (GCC's own idiom, `static void *ops[] =
            // {&&a, ...}`, is not `const`) is marked constant, as LLVM's GlobalOpt would: a higher tier
            // of its function can then take a copy of its own (`jump_tables`). Local, so every use is
            // in this module, whose bodies are all read here.
            if !LLVMIsAGlobalVariable(v).is_null()
                && LLVMIsGlobalConstant(v) == 0
                && holds_labels(LLVMGetInitializer(v), 4)
                && only_loaded(v, 4)
            {
                LLVMSetGlobalConstant(v, 1);
            }
            let name = value_name(v);
            set_name(v, &format!("__gj.{tag}.{name}"));
            LLVMSetLinkage(v, LLVMLinkage::LLVMExternalLinkage);
            LLVMSetVisibility(v, LLVMVisibility::LLVMHiddenVisibility);
        }
    }
}

/// A user's IR transform for a tier: called with the module holding the function being compiled (other
/// functions of its module are declarations, or `available_externally` callees) and the function's name.
pub type Transform =
    std::sync::Arc<dyn Fn(&Module<'_>, &str) -> std::result::Result<(), String> + Send + Sync>;

const AVAILABLE_EXTERNALLY: LLVMLinkage = LLVMLinkage::LLVMAvailableExternallyLinkage;

/// The runtime function a first-tier back-edge calls while its function's back-edge counter is positive:
/// `void __genjit_back_edge(ptr counter)`, which counts it down (see [`count_calls`]).
pub(crate) const BACK_EDGE: &str = "__genjit_back_edge";

/// What a counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counted {
    Calls,
    BackEdges,
}

/// The name of `function`'s counter of `what` in the module promoted under `tag` (genjit's names have
/// prefixes of their own, so no promoted local's name can look like one).
pub(crate) fn counter_name(tag: &str, what: Counted, function: &str) -> String {
    match what {
        Counted::Calls => format!("__gjc.{tag}.{function}"),
        Counted::BackEdges => format!("__gjb.{tag}.{function}"),
    }
}

/// `name` of a genjit name `<prefix><tag>.<name>` (tags have no dot).
fn genjit_name<'a>(symbol: &'a str, prefix: &str) -> Option<&'a str> {
    symbol.strip_prefix(prefix)?.split_once('.').map(|(_, name)| name)
}

/// The function and what is counted, if `symbol` is a counter (see [`counter_name`]).
pub(crate) fn counter_of(symbol: &str) -> Option<(&str, Counted)> {
    genjit_name(symbol, "__gjc.")
        .map(|f| (f, Counted::Calls))
        .or_else(|| genjit_name(symbol, "__gjb.").map(|f| (f, Counted::BackEdges)))
}

/// Where a function's counters start: calls and loop back-edges before it asks for the higher tier
/// (`None`: that kind is not counted).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Thresholds {
    pub(crate) calls: Option<u64>,
    pub(crate) back_edges: Option<u64>,
    /// Back-edges may transfer a call to an OSR entry (see `osr`).
    pub(crate) osr: bool,
    /// The first tier is cleaned up first (`cleanup`).
    pub(crate) cleanup: bool,
}

/// A back-edge of a function: a `br` to a block laid out at or before its own (where clang puts loop
/// headers; counting an edge that is not one only counts more). `from` ends in `branch`, whose successor
/// `k` is `to`, the block at index `header` of the function's layout.
#[derive(Clone, Copy)]
pub(super) struct BackEdge {
    pub(super) from: LLVMBasicBlockRef,
    pub(super) branch: LLVMValueRef,
    pub(super) k: u32,
    pub(super) to: LLVMBasicBlockRef,
    pub(super) header: usize,
}

/// The back-edges of a function whose blocks are `blocks`, in layout order. A branch to one target
/// twice is left out (the target's phis could not tell the edges apart).
pub(super) fn back_edges(blocks: &[LLVMBasicBlockRef]) -> Vec<BackEdge> {
    let header_of = layout_index(blocks);
    let mut edges = Vec::new();
    for (i, &from) in blocks.iter().enumerate() {
        // SAFETY: `from` is a live block; its terminator and successors are read.
        unsafe {
            let t = LLVMGetBasicBlockTerminator(from);
            if t.is_null() || LLVMIsABranchInst(t).is_null() {
                continue;
            }
            let n = LLVMGetNumSuccessors(t);
            if n == 2 && LLVMGetSuccessor(t, 0) == LLVMGetSuccessor(t, 1) {
                continue;
            }
            for k in 0..n {
                let to = LLVMGetSuccessor(t, k);
                match header_of(to) {
                    Some(header) if header <= i => {
                        edges.push(BackEdge { from, branch: t, k, to, header });
                    }
                    _ => {}
                }
            }
        }
    }
    edges
}

/// Where a block is in `blocks` (the layout), as a lookup. (A sorted list: hashing every block cost more
/// than the search.)
fn layout_index(blocks: &[LLVMBasicBlockRef]) -> impl Fn(LLVMBasicBlockRef) -> Option<usize> {
    let mut index: Vec<(LLVMBasicBlockRef, usize)> =
        blocks.iter().enumerate().map(|(i, &b)| (b, i)).collect();
    index.sort_unstable();
    move |block| index.binary_search_by_key(&block, |&(b, _)| b).ok().map(|k| index[k].1)
}

/// A computed goto's dispatch: the `indirectbr` ending block `from`, at least one of whose destinations
/// is laid out at or before it (clang puts a function's computed gotos in one block, which every
/// handler branches to: each trip through it is an iteration of the interpreter's loop), and its
/// distinct destinations with their indices in the layout.
pub(super) struct Dispatch {
    pub(super) from: LLVMBasicBlockRef,
    pub(super) branch: LLVMValueRef,
    pub(super) destinations: Vec<(LLVMBasicBlockRef, usize)>,
}

/// The computed-goto dispatches of a function whose blocks are `blocks` (see [`Dispatch`]).
pub(super) fn dispatches(blocks: &[LLVMBasicBlockRef]) -> Vec<Dispatch> {
    // Built at the first `indirectbr` only: most functions have none.
    let index_of = std::cell::OnceCell::new();
    let mut found = Vec::new();
    for (i, &from) in blocks.iter().enumerate() {
        // SAFETY: `from` is a live block; its terminator and successors are read.
        unsafe {
            let t = LLVMGetBasicBlockTerminator(from);
            if t.is_null() || LLVMGetInstructionOpcode(t) != inkwell::llvm_sys::LLVMOpcode::LLVMIndirectBr {
                continue;
            }
            let mut destinations: Vec<(LLVMBasicBlockRef, usize)> = Vec::new();
            for k in 0..LLVMGetNumSuccessors(t) {
                let to = LLVMGetSuccessor(t, k);
                if let Some(index) = index_of.get_or_init(|| layout_index(blocks))(to) {
                    if !destinations.iter().any(|&(b, _)| b == to) {
                        destinations.push((to, index));
                    }
                }
            }
            if destinations.iter().any(|&(_, index)| index <= i) {
                found.push(Dispatch { from, branch: t, destinations });
            }
        }
    }
    found
}

/// The blocks of function `f` in layout order.
pub(super) fn blocks_of(f: LLVMValueRef) -> Vec<LLVMBasicBlockRef> {
    let mut blocks = Vec::new();
    // SAFETY: `f` is a live function; its block list is read.
    unsafe {
        let mut b = LLVMGetFirstBasicBlock(f);
        while !b.is_null() {
            blocks.push(b);
            b = LLVMGetNextBasicBlock(b);
        }
    }
    blocks
}

/// Gives every function of `module` (promoted under `tag`, so its `static` functions too) a counter of
/// calls and one of loop back-edges (each only if it has a threshold): hidden `i64` globals starting at
/// their threshold. Calls are counted by the linker's counting stubs (`sys::stubs`); each back-edge
/// ([`back_edges`]) checks its counter and, while it is positive, calls [`BACK_EDGE`] (or, where an OSR
/// entry could continue the loop, `osr::HOT_LOOP`), which counts it down (plain loads and stores:
/// racing threads may lose a decrement, never skip the threshold) and acts when it reaches zero; a
/// counter at zero (claimed) is only read. Runs after the promoted IR was kept, so higher tiers have none.
///
/// Each back-edge gets its own check on the edge, and the target's phis take the edge's value from it
/// (rebuilt: the C API cannot rename an incoming block).
pub(crate) fn count_calls(module: &Module<'_>, tag: &str, thresholds: Thresholds, skip: &[String]) {
    let m = module.as_mut_ptr();
    // SAFETY: every value below is created in, or taken from, `m` and its context; the builder is
    // positioned inside blocks of the function being instrumented; an edge's new blocks are dominated by
    // its source, so the values its phis took from the source are still available; the transfer block is
    // reached only from `hot` blocks, which every alloca of the entry block dominates.
    unsafe {
        let context = LLVMGetModuleContext(m);
        let i64t = LLVMInt64TypeInContext(context);
        let i32t = LLVMInt32TypeInContext(context);
        let ptr = LLVMPointerTypeInContext(context, 0);
        let void = LLVMVoidTypeInContext(context);
        let declare = |name: &str, ty: LLVMTypeRef| {
            let c_name = std::ffi::CString::new(name).expect("no NUL");
            let f = LLVMGetNamedFunction(m, c_name.as_ptr());
            match f.is_null() {
                true => LLVMAddFunction(m, c_name.as_ptr(), ty),
                false => f,
            }
        };
        let mut params = [ptr];
        let hook_type = LLVMFunctionType(void, params.as_mut_ptr(), 1, 0);
        let mut loop_params = [ptr, i32t, ptr];
        let loop_hook_type = LLVMFunctionType(ptr, loop_params.as_mut_ptr(), 3, 0);
        let mut goto_params = [ptr, ptr, ptr, ptr, i32t];
        let goto_hook_type = LLVMFunctionType(ptr, goto_params.as_mut_ptr(), 5, 0);
        let (mut hook, mut loop_hook, mut goto_hook): (LLVMValueRef, LLVMValueRef, LLVMValueRef) =
            (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut());
        let stackmap = c"llvm.experimental.stackmap";
        let stackmap_id = LLVMLookupIntrinsicID(stackmap.as_ptr(), stackmap.count_bytes());
        let stackmap_type = LLVMIntrinsicGetType(context, stackmap_id, std::ptr::null_mut(), 0);
        let builder = LLVMCreateBuilderInContext(context);
        let zero = LLVMConstInt(i64t, 0, 0);
        for f in globals(m) {
            if LLVMIsAFunction(f).is_null() || LLVMIsDeclaration(f) != 0 {
                continue;
            }
            let name = value_name(f);
            if name.starts_with("llvm.") || skip.contains(&name) || LLVMGetLinkage(f) == AVAILABLE_EXTERNALLY
            {
                continue;
            }
            let new_counter = |what: Counted, threshold: u64| {
                let counter_name = counter_name(tag, what, &name);
                let counter_name = std::ffi::CString::new(counter_name).expect("no NUL in IR names");
                let counter = LLVMAddGlobal(m, i64t, counter_name.as_ptr());
                LLVMSetInitializer(counter, LLVMConstInt(i64t, threshold.min(i64::MAX as u64), 0));
                LLVMSetVisibility(counter, LLVMVisibility::LLVMHiddenVisibility);
                counter
            };
            // The calls: only the counter; the linker writes the code that counts (`sys::stubs`).
            if let Some(threshold) = thresholds.calls {
                new_counter(Counted::Calls, threshold);
            }
            let Some(threshold) = thresholds.back_edges else { continue };
            let blocks = blocks_of(f);
            let gotos = dispatches(&blocks);
            // A branch back to a dispatch (from a handler laid out after it) is counted there.
            let mut edges = back_edges(&blocks);
            edges.retain(|e| !gotos.iter().any(|d| d.from == e.to));
            if edges.is_empty() && gotos.is_empty() {
                continue;
            }
            let counter = new_counter(Counted::BackEdges, threshold);
            // Which edges may transfer to an OSR entry: the function's stack slots can be handed over
            // and the header has no phi (whether no other value is live across it is decided at the
            // tier-up, on the same IR: `osr::refused_headers`).
            let slots = if thresholds.osr { super::osr::slots(f) } else { None };
            let osr = |e: &BackEdge| slots.is_some() && super::osr::may_enter(&blocks, e.header);
            // A dispatch's destinations an entry may enter (a handler without a `phi`).
            let enterable = |d: &Dispatch| -> Vec<(LLVMBasicBlockRef, usize)> {
                match slots {
                    Some(_) => d
                        .destinations
                        .iter()
                        .copied()
                        .filter(|&(_, h)| super::osr::may_enter(&blocks, h))
                        .collect(),
                    None => Vec::new(),
                }
            };
            // The transfer: the OSR entry called with the function's arguments and a frame array, which
            // the hook fills with the stack slots' addresses (their frame offsets are read from the stack
            // map recorded here); its result is the function's.
            let any_osr = edges.iter().any(osr) || gotos.iter().any(|d| !enterable(d).is_empty());
            let (transfer, target, frame) = match (any_osr, &slots) {
                (true, Some(slots)) => {
                    let entry = LLVMGetEntryBasicBlock(f);
                    LLVMPositionBuilder(builder, entry, LLVMGetFirstInstruction(entry));
                    let array = LLVMArrayType2(ptr, slots.len().max(1) as u64);
                    let frame = LLVMBuildAlloca(builder, array, c"gj.osr.frame".as_ptr());
                    let transfer = LLVMAppendBasicBlockInContext(context, f, c"gj.osr.transfer".as_ptr());
                    LLVMPositionBuilderAtEnd(builder, transfer);
                    let target = LLVMBuildPhi(builder, ptr, c"gj.osr.entry".as_ptr());
                    let mut args =
                        vec![LLVMConstInt(i64t, super::osr::FRAME_ID, 0), LLVMConstInt(i32t, 0, 0), frame];
                    args.extend(slots);
                    let map = LLVMGetIntrinsicDeclaration(m, stackmap_id, std::ptr::null_mut(), 0);
                    let n = args.len() as u32;
                    LLVMBuildCall2(builder, stackmap_type, map, args.as_mut_ptr(), n, c"".as_ptr());
                    let ty = LLVMGlobalGetValueType(f);
                    // An argument used only in the entry block (clang's stores of the parameters into
                    // their slots) is read by no OSR entry, which starts at a header: it passes as
                    // `poison`, so the function does not keep it for the transfer (a store on every call).
                    let mut args: Vec<LLVMValueRef> = (0..LLVMCountParams(f))
                        .map(|i| LLVMGetParam(f, i))
                        .map(|a| match used_outside(a, entry) {
                            true => a,
                            false => LLVMGetPoison(LLVMTypeOf(a)),
                        })
                        .collect();
                    let mut types: Vec<LLVMTypeRef> = args.iter().map(|&a| LLVMTypeOf(a)).collect();
                    args.push(frame);
                    types.push(ptr);
                    let entry_type =
                        LLVMFunctionType(LLVMGetReturnType(ty), types.as_mut_ptr(), types.len() as u32, 0);
                    let returns = LLVMGetTypeKind(LLVMGetReturnType(ty))
                        != inkwell::llvm_sys::LLVMTypeKind::LLVMVoidTypeKind;
                    let result_name = if returns { c"gj.osr.result" } else { c"" };
                    let n = args.len() as u32;
                    let result = LLVMBuildCall2(
                        builder,
                        entry_type,
                        target,
                        args.as_mut_ptr(),
                        n,
                        result_name.as_ptr(),
                    );
                    match returns {
                        true => LLVMBuildRet(builder, result),
                        false => LLVMBuildRetVoid(builder),
                    };
                    (transfer, target, frame)
                }
                _ => (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut()),
            };
            for e in &edges {
                // An unconditional back-edge (clang's `for.inc`, `while.body`) is checked where it is,
                // the compare and branch replacing its jump; a conditional one gets a block of its own.
                let inline = LLVMIsConditional(e.branch) == 0;
                let check = match inline {
                    true => {
                        LLVMInstructionEraseFromParent(e.branch);
                        e.from
                    }
                    false => LLVMAppendBasicBlockInContext(context, f, c"".as_ptr()),
                };
                // (Unnamed, like the values below: naming them cost more than building them.)
                let hot = LLVMAppendBasicBlockInContext(context, f, c"".as_ptr());
                if !inline {
                    LLVMMoveBasicBlockAfter(check, e.from);
                }
                LLVMMoveBasicBlockAfter(hot, check);
                // Is the counter still running? A claimed counter is 0: from then on the edge costs a
                // compare with memory and an untaken branch (the load's one use folds into the compare).
                LLVMPositionBuilderAtEnd(builder, check);
                let left = LLVMBuildLoad2(builder, i64t, counter, c"".as_ptr());
                let sgt = inkwell::llvm_sys::LLVMIntPredicate::LLVMIntSGT;
                let running = LLVMBuildICmp(builder, sgt, left, zero, c"".as_ptr());
                LLVMBuildCondBr(builder, running, hot, e.to);
                // Count it down in the runtime (a call for each of the first `threshold` back-edges
                // only: LLVM generating the decrement in every function cost more than those calls).
                LLVMPositionBuilderAtEnd(builder, hot);
                if osr(e) {
                    // Ask for an OSR entry at this header; with one, leave for it.
                    loop_hook = match loop_hook.is_null() {
                        true => declare(super::osr::HOT_LOOP, loop_hook_type),
                        false => loop_hook,
                    };
                    let mut args = [counter, LLVMConstInt(i32t, e.header as u64, 0), frame];
                    let name = c"".as_ptr();
                    let found =
                        LLVMBuildCall2(builder, loop_hook_type, loop_hook, args.as_mut_ptr(), 3, name);
                    let ne = inkwell::llvm_sys::LLVMIntPredicate::LLVMIntNE;
                    let go = LLVMBuildICmp(builder, ne, found, LLVMConstNull(ptr), c"".as_ptr());
                    LLVMBuildCondBr(builder, go, transfer, e.to);
                    let (mut value, mut block) = ([found], [hot]);
                    LLVMAddIncoming(target, value.as_mut_ptr(), block.as_mut_ptr(), 1);
                } else {
                    hook = match hook.is_null() {
                        true => declare(BACK_EDGE, hook_type),
                        false => hook,
                    };
                    let mut args = [counter];
                    LLVMBuildCall2(builder, hook_type, hook, args.as_mut_ptr(), 1, c"".as_ptr());
                    LLVMBuildBr(builder, e.to);
                }
                if !inline {
                    LLVMSetSuccessor(e.branch, e.k, check);
                }
                // `to`'s phis: the value that came from `from` now comes from `check` and `hot`.
                move_incoming(builder, e.to, e.from, &[check, hot]);
            }
            // A computed goto's dispatch: the check goes before its `indirectbr`, which moves to a block
            // of its own (`cont`, laid out next: a claimed counter costs a compare and an untaken
            // branch); `hot` passes the address about to be jumped to, which names the header an OSR
            // entry would continue at.
            for d in &gotos {
                let address = LLVMGetOperand(d.branch, 0);
                let count = LLVMGetNumSuccessors(d.branch);
                let all: Vec<LLVMBasicBlockRef> = (0..count).map(|k| LLVMGetSuccessor(d.branch, k)).collect();
                LLVMInstructionEraseFromParent(d.branch);
                let cont = LLVMAppendBasicBlockInContext(context, f, c"".as_ptr());
                let hot = LLVMAppendBasicBlockInContext(context, f, c"".as_ptr());
                LLVMMoveBasicBlockAfter(cont, d.from);
                LLVMMoveBasicBlockAfter(hot, cont);
                LLVMPositionBuilderAtEnd(builder, cont);
                let jump = LLVMBuildIndirectBr(builder, address, count);
                for &to in &all {
                    LLVMAddDestination(jump, to);
                }
                LLVMPositionBuilderAtEnd(builder, d.from);
                let left = LLVMBuildLoad2(builder, i64t, counter, c"".as_ptr());
                let sgt = inkwell::llvm_sys::LLVMIntPredicate::LLVMIntSGT;
                let running = LLVMBuildICmp(builder, sgt, left, zero, c"".as_ptr());
                LLVMBuildCondBr(builder, running, hot, cont);
                LLVMPositionBuilderAtEnd(builder, hot);
                let labels = enterable(d);
                if labels.is_empty() {
                    hook = match hook.is_null() {
                        true => declare(BACK_EDGE, hook_type),
                        false => hook,
                    };
                    let mut args = [counter];
                    LLVMBuildCall2(builder, hook_type, hook, args.as_mut_ptr(), 1, c"".as_ptr());
                    LLVMBuildBr(builder, cont);
                } else {
                    // The table of `{label, header}` pairs the runtime looks the address up in.
                    let mut fields = [ptr, i64t];
                    let pair = LLVMStructTypeInContext(context, fields.as_mut_ptr(), 2, 0);
                    let mut elements: Vec<LLVMValueRef> = labels
                        .iter()
                        .map(|&(block, header)| {
                            let mut values =
                                [LLVMBlockAddress(f, block), LLVMConstInt(i64t, header as u64, 0)];
                            LLVMConstNamedStruct(pair, values.as_mut_ptr(), 2)
                        })
                        .collect();
                    let n = elements.len();
                    let table_type = LLVMArrayType2(pair, n as u64);
                    let table = LLVMAddGlobal(m, table_type, c"".as_ptr());
                    LLVMSetInitializer(table, LLVMConstArray2(pair, elements.as_mut_ptr(), n as u64));
                    LLVMSetGlobalConstant(table, 1);
                    LLVMSetLinkage(table, LLVMLinkage::LLVMPrivateLinkage);
                    goto_hook = match goto_hook.is_null() {
                        true => declare(super::osr::HOT_GOTO, goto_hook_type),
                        false => goto_hook,
                    };
                    let mut args = [counter, address, frame, table, LLVMConstInt(i32t, n as u64, 0)];
                    let found = LLVMBuildCall2(
                        builder,
                        goto_hook_type,
                        goto_hook,
                        args.as_mut_ptr(),
                        5,
                        c"".as_ptr(),
                    );
                    let ne = inkwell::llvm_sys::LLVMIntPredicate::LLVMIntNE;
                    let go = LLVMBuildICmp(builder, ne, found, LLVMConstNull(ptr), c"".as_ptr());
                    LLVMBuildCondBr(builder, go, transfer, cont);
                    let (mut value, mut block) = ([found], [hot]);
                    LLVMAddIncoming(target, value.as_mut_ptr(), block.as_mut_ptr(), 1);
                }
                // The destinations' phis: what came from `from` now comes from `cont`.
                for &to in &all {
                    move_incoming(builder, to, d.from, &[cont]);
                }
            }
        }
        LLVMDisposeBuilder(builder);
    }
}

/// Rebuilds each phi of `block` that has an incoming edge from `from` with that edge's value coming from
/// each of `into` instead (the C API cannot rename an incoming block).
fn move_incoming(
    builder: LLVMBuilderRef,
    block: LLVMBasicBlockRef,
    from: LLVMBasicBlockRef,
    into: &[LLVMBasicBlockRef],
) {
    // SAFETY: `block` is a live block whose phis are rebuilt by `replace_phi` with the same values; `into`
    // are blocks of the same function that branch to `block`.
    unsafe {
        let mut phi = LLVMGetFirstInstruction(block);
        while !phi.is_null() && !LLVMIsAPHINode(phi).is_null() {
            let next = LLVMGetNextInstruction(phi);
            let (mut values, mut preds, mut changed) = (Vec::new(), Vec::new(), false);
            for j in 0..LLVMCountIncoming(phi) {
                let (v, b) = (LLVMGetIncomingValue(phi, j), LLVMGetIncomingBlock(phi, j));
                if b == from {
                    changed = true;
                    values.extend(into.iter().map(|_| v));
                    preds.extend_from_slice(into);
                } else {
                    values.push(v);
                    preds.push(b);
                }
            }
            if changed {
                replace_phi(builder, phi, values, preds);
            }
            phi = next;
        }
    }
}

/// Whether `value` has a use outside `block`.
fn used_outside(value: LLVMValueRef, block: LLVMBasicBlockRef) -> bool {
    // SAFETY: `value` is live; its use list is read, and each user that is an instruction, its block.
    unsafe {
        let mut u = LLVMGetFirstUse(value);
        while !u.is_null() {
            let user = LLVMGetUser(u);
            if LLVMIsAInstruction(user).is_null() || LLVMGetInstructionParent(user) != block {
                return true;
            }
            u = LLVMGetNextUse(u);
        }
        false
    }
}

/// Replaces `phi` by a new phi with the incoming `values` from `blocks` (the C API can neither rename
/// nor remove an incoming block), keeping its name; `builder` is left before the new one.
pub(super) fn replace_phi(
    builder: LLVMBuilderRef,
    phi: LLVMValueRef,
    mut values: Vec<LLVMValueRef>,
    mut blocks: Vec<LLVMBasicBlockRef>,
) {
    // SAFETY: `phi` is a live phi; the new one is built before it in its block, of its type, from
    // values and blocks of its function; its uses move over before it is erased.
    unsafe {
        LLVMPositionBuilderBefore(builder, phi);
        let rebuilt = LLVMBuildPhi(builder, LLVMTypeOf(phi), c"".as_ptr());
        LLVMAddIncoming(rebuilt, values.as_mut_ptr(), blocks.as_mut_ptr(), values.len() as u32);
        let name = value_name(phi);
        LLVMReplaceAllUsesWith(phi, rebuilt);
        LLVMInstructionEraseFromParent(phi);
        set_name(rebuilt, &name);
    }
}

/// Gives `to` (a function of `from`'s type) `from`'s attributes (function, return, parameters) and
/// calling convention.
fn copy_attributes(from: LLVMValueRef, to: LLVMValueRef) {
    // SAFETY: both are live functions of one type; attributes are read from one and added to the other.
    unsafe {
        let function_index = inkwell::llvm_sys::LLVMAttributeFunctionIndex;
        for index in [function_index, 0].into_iter().chain(1..=LLVMCountParams(from)) {
            let count = LLVMGetAttributeCountAtIndex(from, index);
            let mut attributes = vec![std::ptr::null_mut(); count as usize];
            LLVMGetAttributesAtIndex(from, index, attributes.as_mut_ptr());
            for attribute in attributes {
                LLVMAddAttributeAtIndex(to, index, attribute);
            }
        }
        LLVMSetFunctionCallConv(to, LLVMGetFunctionCallConv(from));
    }
}

/// The function's name, if `symbol` is a lazy function's record (`__gjz.<tag>.<name>`).
pub(crate) fn lazy_function(symbol: &str) -> Option<&str> {
    genjit_name(symbol, "__gjz.")
}

/// A lazy function's record byte: the function was weak (see [`make_lazy`]).
pub(crate) const RECORD_WEAK: u8 = 1;
/// A lazy function's record byte: the function was hidden (see [`make_lazy`]).
pub(crate) const RECORD_HIDDEN: u8 = 2;

/// Makes `module` (promoted under `tag`) lazy: every function that can be compiled on its own becomes a
/// declaration, and gets a *record*, a hidden byte `__gjz.<tag>.<name>` holding what the declaration no
/// longer can: whether the function was weak ([`RECORD_WEAK`]) or hidden ([`RECORD_HIDDEN`]). The names
/// of those functions are returned. The linker defines each such function at a lazy stub it writes for
/// the record (`sys::stubs`), which passes the record's address to `dylib::lazy::genjit_lazy` (by which
/// the runtime knows the function); that compiles the function if nobody has (concurrent first callers
/// wait) and returns the function's entry, which now reaches the compiled body, and the stub's trampoline
/// jumps there with the caller's registers and stack untouched. Data, constructors' lists and the
/// functions kept whole (ones whose labels are addressed, which data may name; all of them if the module
/// has aliases or ifuncs, which must name definitions) stay as they are: the module is the first tier's
/// data and fallback.
pub(crate) fn make_lazy(module: &Module<'_>, tag: &str) -> Vec<String> {
    let m = module.as_mut_ptr();
    // SAFETY: reads only.
    if unsafe { !LLVMGetFirstGlobalAlias(m).is_null() || !LLVMGetFirstGlobalIFunc(m).is_null() } {
        return Vec::new();
    }
    let mut lazy = Vec::new();
    // SAFETY: every value is created in, or taken from, `m`; a function becomes a declaration the way
    // extraction makes one (body, personality, comdat and attached metadata gone, external linkage).
    unsafe {
        let i8t = LLVMInt8TypeInContext(LLVMGetModuleContext(m));
        for f in globals(m) {
            if LLVMIsAFunction(f).is_null() || LLVMIsDeclaration(f) != 0 {
                continue;
            }
            let name = value_name(f);
            if name.starts_with("llvm.") || LLVMGetLinkage(f) == AVAILABLE_EXTERNALLY || labels_addressed(f) {
                continue;
            }
            let weak = matches!(
                LLVMGetLinkage(f),
                LLVMLinkage::LLVMWeakAnyLinkage
                    | LLVMLinkage::LLVMWeakODRLinkage
                    | LLVMLinkage::LLVMLinkOnceAnyLinkage
                    | LLVMLinkage::LLVMLinkOnceODRLinkage
            );
            let hidden = LLVMGetVisibility(f) == LLVMVisibility::LLVMHiddenVisibility;
            let flags =
                u64::from(if weak { RECORD_WEAK } else { 0 } | if hidden { RECORD_HIDDEN } else { 0 });
            let record_name = std::ffi::CString::new(format!("__gjz.{tag}.{name}")).expect("no NUL");
            let record = LLVMAddGlobal(m, i8t, record_name.as_ptr());
            LLVMSetInitializer(record, LLVMConstInt(i8t, flags, 0));
            LLVMSetVisibility(record, LLVMVisibility::LLVMHiddenVisibility);
            delete_body(f);
            LLVMSetComdat(f, std::ptr::null_mut());
            LLVMGlobalClearMetadata(f);
            LLVMSetLinkage(f, LLVMLinkage::LLVMExternalLinkage);
            lazy.push(name);
        }
    }
    lazy
}

/// Whether `module` has finalizers: destructors (`llvm.global_dtors`) or a call of `atexit` or
/// `__cxa_atexit` (C++ static objects register their destructors so).
pub(crate) fn has_finalizers(module: &Module<'_>) -> bool {
    module.get_global("llvm.global_dtors").is_some()
        || module.get_function("__cxa_atexit").is_some()
        || module.get_function("atexit").is_some()
}

/// The functions `f` calls directly (the callee operand of its calls and invokes), defined or not.
fn direct_callees(f: LLVMValueRef) -> Vec<LLVMValueRef> {
    let mut callees = Vec::new();
    // SAFETY: `f` is a live function; only its blocks, instructions and operands are read.
    unsafe {
        let mut block = LLVMGetFirstBasicBlock(f);
        while !block.is_null() {
            let mut i = LLVMGetFirstInstruction(block);
            while !i.is_null() {
                if !LLVMIsACallInst(i).is_null() || !LLVMIsAInvokeInst(i).is_null() {
                    let callee = LLVMGetCalledValue(i);
                    if !LLVMIsAFunction(callee).is_null() {
                        callees.push(callee);
                    }
                }
                i = LLVMGetNextInstruction(i);
            }
            block = LLVMGetNextBasicBlock(block);
        }
    }
    callees
}

/// The names of the functions the functions `callers` of `module` call directly.
fn callees_of(module: &Module<'_>, callers: &[String]) -> Vec<String> {
    let functions = callers.iter().filter_map(|c| module.get_function(c)).map(|f| f.as_value_ref());
    functions.flat_map(direct_callees).map(value_name).collect()
}

/// How many direct calls each of the functions `callers` of `module` makes to each of `names` (a caller
/// the module does not define makes none).
fn call_counts(module: &Module<'_>, callers: &[String], names: &[String]) -> Vec<Vec<usize>> {
    callers
        .iter()
        .map(|caller| {
            let callees = callees_of(module, std::slice::from_ref(caller));
            names.iter().map(|n| callees.iter().filter(|c| *c == n).count()).collect()
        })
        .collect()
}

/// Deletes `f`'s body, leaving a declaration with its name, type and attributes.
pub(super) fn delete_body(f: LLVMValueRef) {
    // SAFETY: `f` is a live function with a body; its blocks are listed, then deleted as `delete_blocks`
    // requires (all of them, so no other block uses their values).
    unsafe {
        let mut blocks = Vec::new();
        let mut block = LLVMGetFirstBasicBlock(f);
        while !block.is_null() {
            blocks.push(block);
            block = LLVMGetNextBasicBlock(block);
        }
        delete_blocks(&blocks);
        if LLVMHasPersonalityFn(f) != 0 {
            LLVMSetPersonalityFn(f, std::ptr::null_mut());
        }
    }
}

/// Deletes `blocks` of one function.
///
/// The C API can only delete blocks one at a time, and a block deleted while other blocks still use it
/// or its values leaves dangling uses (and a block whose address is taken then meets a branch where its
/// destructor expects only `blockaddress` users: LLVM 19 crashed there). So first every value the blocks
/// define is replaced by `poison` wherever it is used, then every instruction is erased, and only then
/// are the empty blocks deleted: by then a block's only users are `blockaddress` constants, which its
/// destructor replaces.
///
/// # Safety
/// `blocks` are live blocks of one function, none listed twice; no block left in the function branches
/// to one of them (its values may be used elsewhere: those uses become `poison`).
pub(super) unsafe fn delete_blocks(blocks: &[LLVMBasicBlockRef]) {
    // SAFETY: per the contract; every instruction is erased after its uses were replaced, and blocks are
    // deleted once empty.
    unsafe {
        for &block in blocks {
            let mut i = LLVMGetFirstInstruction(block);
            while !i.is_null() {
                let ty = LLVMTypeOf(i);
                if LLVMGetTypeKind(ty) != inkwell::llvm_sys::LLVMTypeKind::LLVMVoidTypeKind {
                    LLVMReplaceAllUsesWith(i, LLVMGetPoison(ty));
                }
                i = LLVMGetNextInstruction(i);
            }
        }
        for &block in blocks {
            let mut i = LLVMGetLastInstruction(block);
            while !i.is_null() {
                let previous = LLVMGetPreviousInstruction(i);
                LLVMInstructionEraseFromParent(i);
                i = previous;
            }
        }
        for &block in blocks {
            LLVMDeleteBasicBlock(block);
        }
    }
}

/// Parses `bitcode` lazily: types, globals, constants and metadata now, a function's body only when
/// [`materialize`] asks for it (LLVM's lazy bitcode loading; the module owns its copy of the bytes).
///
/// A first call compiles one function of a module that may hold hundreds: parsing every body to keep
/// one cost more than compiling it (bzip2's `compress.c`: 5 ms parsed whole, 0.4 ms lazily). A function
/// whose labels are addressed from the module's data (a computed goto's jump table) is read as soon as
/// anything is (the reader resolves the `blockaddress` constants), so no `blockaddress` ever names a body
/// left unread.
///
/// `bitcode` is genjit's own writing of a verified module; `Err` only if it is not (a bug). The reader
/// reports that error through the context's diagnostic handler, so `context` must have genjit's
/// (`compile_steps` installs it): LLVM's default handler exits the process on an error.
pub(crate) fn load_lazily<'c>(
    context: &'c Context,
    bitcode: &[u8],
    name: &str,
) -> std::result::Result<Module<'c>, String> {
    let name = std::ffi::CString::new(name.replace('\0', " ")).expect("no NUL left");
    let mut m: LLVMModuleRef = std::ptr::null_mut();
    // SAFETY: the buffer is a copy of `bitcode`; the reader takes ownership of it if (and only if) it
    // reads the module (the module reads bodies from it later), so on failure it is disposed here.
    // `context` outlives the module, which `Module::new` owns from here on.
    unsafe {
        let buffer =
            LLVMCreateMemoryBufferWithMemoryRangeCopy(bitcode.as_ptr().cast(), bitcode.len(), name.as_ptr());
        if LLVMGetBitcodeModuleInContext2(context.raw(), buffer, &mut m) != 0 || m.is_null() {
            LLVMDisposeMemoryBuffer(buffer);
            return Err("genjit's bitcode of the module could not be read back".to_string());
        }
        Ok(Module::new(m))
    }
}

/// Reads `f`'s body if it was left unread by [`load_lazily`] (nothing otherwise).
///
/// The C API has no call for it; running an empty legacy function pass manager on a function reads its
/// body first (`FunctionPassManager::run`).
fn materialize(f: LLVMValueRef) {
    // SAFETY: `f` is a live function of a live module; the pass manager has no passes and is disposed
    // before returning. A body that cannot be read is a fatal error in LLVM, but the bytes are genjit's
    // own, written from a verified module.
    unsafe {
        if LLVMIsDeclaration(f) != 0 || !LLVMGetFirstBasicBlock(f).is_null() {
            return;
        }
        let passes = LLVMCreateFunctionPassManagerForModule(LLVMGetGlobalParent(f));
        LLVMInitializeFunctionPassManager(passes);
        LLVMRunFunctionPassManager(passes, f);
        LLVMFinalizeFunctionPassManager(passes);
        LLVMDisposePassManager(passes);
    }
}

/// Whether `f` is a definition whose body [`load_lazily`] left unread.
fn unread(f: LLVMValueRef) -> bool {
    // SAFETY: reads only.
    unsafe { LLVMIsDeclaration(f) == 0 && LLVMGetFirstBasicBlock(f).is_null() }
}

/// Replaces `f`, a definition whose body was never read, by a declaration with its name, type,
/// attributes, calling convention and visibility, used wherever `f` was.
///
/// Nothing in the C API turns an unread body into a declaration (`Function::deleteBody` is C++), and
/// deleting `f` alone would leave the reader's value table naming freed memory when another body is
/// read later. The reader's table holds its values through handles that follow `replaceAllUsesWith`, so
/// after the replacement a body read later names the declaration.
fn declare_instead(f: LLVMValueRef) {
    let name = value_name(f);
    // SAFETY: `f` is a live, unread function of a live module; the declaration is created in the same
    // module with the same type, takes over every use, and `f` is deleted only after that.
    unsafe {
        let m = LLVMGetGlobalParent(f);
        let declaration = LLVMAddFunction(m, c"".as_ptr(), LLVMGlobalGetValueType(f));
        copy_attributes(f, declaration);
        LLVMSetVisibility(declaration, LLVMGetVisibility(f));
        LLVMSetDLLStorageClass(declaration, LLVMGetDLLStorageClass(f));
        LLVMSetUnnamedAddress(declaration, LLVMGetUnnamedAddress(f));
        LLVMReplaceAllUsesWith(f, declaration);
        LLVMDeleteFunction(f);
        set_name(declaration, &name);
    }
}

/// Whether constant `c` is used by an instruction or a global's initializer, directly or through other
/// constants. Constants outlive their last user (LLVM keeps them uniqued in the context): a jump table
/// whose global was emptied still lists the labels, but nothing uses it.
fn constant_used(c: LLVMValueRef, depth: u32) -> bool {
    // SAFETY: `c` is a live value; only use lists are read.
    unsafe {
        let mut u = LLVMGetFirstUse(c);
        while !u.is_null() {
            let user = LLVMGetUser(u);
            let live = LLVMIsAConstant(user).is_null()
                || !LLVMIsAGlobalValue(user).is_null()
                || depth == 0
                || constant_used(user, depth - 1);
            if live {
                return true;
            }
            u = LLVMGetNextUse(u);
        }
        false
    }
}

/// Whether constant `c` holds a `blockaddress`, at most `depth` aggregates or expressions deep.
fn holds_labels(c: LLVMValueRef, depth: u32) -> bool {
    // SAFETY: `c` is a live constant (or null: no initializer); only its operands are read.
    unsafe {
        if c.is_null() || !LLVMIsABlockAddress(c).is_null() {
            return !c.is_null();
        }
        depth > 0
            && LLVMIsAGlobalValue(c).is_null()
            && (0..LLVMGetNumOperands(c)).any(|i| holds_labels(LLVMGetOperand(c, i as u32), depth - 1))
    }
}

/// Whether every use of `v` (a global, or an address computed from it) only reads through it: a load,
/// or an address computation (a `getelementptr`, instruction or constant) whose uses only read, at most
/// `depth` computations deep.
fn only_loaded(v: LLVMValueRef, depth: u32) -> bool {
    // SAFETY: `v` is live; only use lists and opcodes are read.
    unsafe {
        let mut u = LLVMGetFirstUse(v);
        while !u.is_null() {
            let user = LLVMGetUser(u);
            let reads = if !LLVMIsALoadInst(user).is_null() {
                true
            } else if !LLVMIsAGetElementPtrInst(user).is_null()
                || (!LLVMIsAConstantExpr(user).is_null()
                    && LLVMGetConstOpcode(user) == inkwell::llvm_sys::LLVMOpcode::LLVMGetElementPtr)
            {
                // The global must be the base, not an index.
                LLVMGetOperand(user, 0) == v && depth > 0 && only_loaded(user, depth - 1)
            } else {
                // A dead constant (LLVM keeps constants uniqued after their last user) reads nothing.
                !LLVMIsAConstant(user).is_null() && !constant_used(user, 8)
            };
            if !reads {
                return false;
            }
            u = LLVMGetNextUse(u);
        }
        true
    }
}

/// The jump tables of `f`, a function whose labels are addressed: the constant globals whose
/// initializers hold `f`'s labels (and no other function's), which a higher tier of `f` copies as its
/// own (private) data holding its own labels; `Err` if a label of `f` is addressed anywhere else than
/// in such a table or in `f`'s own body (a writable table, another function's code), where a second body
/// could not follow.
pub(super) fn jump_tables(f: LLVMValueRef) -> std::result::Result<Vec<LLVMValueRef>, String> {
    // Walks up from a `blockaddress` of `f` to what uses it.
    fn reach(c: LLVMValueRef, f: LLVMValueRef, depth: u32, tables: &mut Vec<LLVMValueRef>) -> bool {
        // SAFETY: `c` is a live value; only use lists, parents and global attributes are read.
        unsafe {
            let mut u = LLVMGetFirstUse(c);
            while !u.is_null() {
                let user = LLVMGetUser(u);
                let ok = if !LLVMIsAInstruction(user).is_null() {
                    LLVMGetBasicBlockParent(LLVMGetInstructionParent(user)) == f
                } else if !LLVMIsAGlobalVariable(user).is_null() {
                    let own =
                        LLVMIsGlobalConstant(user) != 0 && labels_only_of(LLVMGetInitializer(user), f, 8);
                    if own && !tables.contains(&user) {
                        tables.push(user);
                    }
                    own
                } else if !LLVMIsAConstant(user).is_null() {
                    !constant_used(user, 8) || (depth > 0 && reach(user, f, depth - 1, tables))
                } else {
                    false
                };
                if !ok {
                    return false;
                }
                u = LLVMGetNextUse(u);
            }
            true
        }
    }
    let mut tables = Vec::new();
    for address in label_addresses(f) {
        if !reach(address, f, 8, &mut tables) {
            return Err(format!(
                "`{}` takes the address of its own labels outside a constant jump table of its own",
                value_name(f)
            ));
        }
    }
    Ok(tables)
}

/// Whether every `blockaddress` in constant `c` (at most `depth` deep) names a label of `f`.
fn labels_only_of(c: LLVMValueRef, f: LLVMValueRef, depth: u32) -> bool {
    // SAFETY: `c` is a live constant (or null); only its operands are read.
    unsafe {
        if c.is_null() {
            return false;
        }
        if !LLVMIsABlockAddress(c).is_null() {
            return LLVMGetOperand(c, 0) == f;
        }
        if !LLVMIsAGlobalValue(c).is_null() {
            return true;
        }
        (0..LLVMGetNumOperands(c))
            .all(|i| depth > 0 && labels_only_of(LLVMGetOperand(c, i as u32), f, depth - 1))
    }
}

/// The `blockaddress` constants naming a label of `f`, live or not (branches use blocks too).
fn label_addresses(f: LLVMValueRef) -> Vec<LLVMValueRef> {
    let mut addresses = Vec::new();
    // SAFETY: `f` is a live function; only its block list and use lists are read.
    unsafe {
        let mut block = LLVMGetFirstBasicBlock(f);
        while !block.is_null() {
            let mut u = LLVMGetFirstUse(LLVMBasicBlockAsValue(block));
            while !u.is_null() {
                let user = LLVMGetUser(u);
                if !LLVMIsABlockAddress(user).is_null() {
                    addresses.push(user);
                }
                u = LLVMGetNextUse(u);
            }
            block = LLVMGetNextBasicBlock(block);
        }
    }
    addresses
}

/// Whether a label of `f` is addressed (`blockaddress`) by something that is still used.
pub(super) fn labels_addressed(f: LLVMValueRef) -> bool {
    label_addresses(f).into_iter().any(|address| constant_used(address, 8))
}

/// Keeps the bodies of the functions `keep` and turns every other definition of `module` (a copy of a
/// promoted module) into a declaration bound, at link time, to the first tier's definition (see the
/// module docs). The callees for which `inlinable` says yes (up to `INLINE_DEPTH` calls deep) keep their
/// bodies as `available_externally`: the optimizer may inline them, the code generator emits nothing for
/// them, and calls left out of line still bind to the first tier. Returns the names of those callees:
/// the direct ones, and the deeper ones.
///
/// `Err` names what it does not handle: aliases, ifuncs, thread-local variables (the first tier rewrote
/// those already), a kept function whose labels are addressed other than by its body and its constant jump
/// tables ([`jump_tables`]: copied, holding the new body's labels), labels of another body addressed from
/// elsewhere.
pub(crate) fn extract_function(
    module: &Module<'_>,
    keep: &[String],
    inlinable: &dyn Fn(&str) -> bool,
) -> std::result::Result<(Vec<String>, Vec<String>), String> {
    let m = module.as_mut_ptr();
    // SAFETY: `m` is live; these only read the module's lists.
    let (alias, ifunc) = unsafe { (LLVMGetFirstGlobalAlias(m), LLVMGetFirstGlobalIFunc(m)) };
    if !alias.is_null() || !ifunc.is_null() {
        return Err("the module has aliases or ifuncs".to_string());
    }
    // SAFETY: reads only.
    let (functions, variables): (Vec<_>, Vec<_>) =
        globals(m).into_iter().partition(|&v| unsafe { !LLVMIsAFunction(v).is_null() });
    // SAFETY: reads only.
    let defined = |f: LLVMValueRef| unsafe { LLVMIsDeclaration(f) } == 0;
    let mut kept = Vec::new();
    let mut tables = Vec::new();
    for name in keep {
        let Some(&f) = functions.iter().find(|&&f| value_name(f) == *name && defined(f)) else {
            return Err(format!("the module defines no function `{name}`"));
        };
        materialize(f);
        // A computed goto's jump table is data of the first tier, holding the first tier's labels: a
        // second body jumping through it would land in the first one's code. A constant table gets a
        // copy of its own below; a label addressed anywhere else is refused.
        if labels_addressed(f) {
            tables.extend(jump_tables(f)?);
        }
        kept.push(f);
    }
    // Callees, breadth first from the kept functions, up to `INLINE_DEPTH` calls deep and `INLINE_MAX`
    // functions: how deep the optimizer can inline (a callee's callee only if it has a body too).
    let mut inlined: Vec<LLVMValueRef> = Vec::new();
    let mut direct = 0;
    let mut level: Vec<LLVMValueRef> = kept.clone();
    for depth in 0..INLINE_DEPTH {
        let mut next = Vec::new();
        for callee in level.iter().flat_map(|&f| direct_callees(f)) {
            let name = value_name(callee);
            let eligible = !kept.contains(&callee)
                && defined(callee)
                && !name.starts_with("llvm.")
                && !inlined.contains(&callee)
                && inlined.len() < INLINE_MAX;
            if eligible && inlinable(&name) {
                materialize(callee);
                if !labels_addressed(callee) {
                    inlined.push(callee);
                    next.push(callee);
                }
            }
        }
        if depth == 0 {
            direct = inlined.len();
        }
        level = next;
    }
    // Variables first: their initializers may hold the addresses of labels in the bodies deleted next.
    for v in variables {
        // SAFETY: `v` is a live global variable of `m`; a declaration has no initializer or comdat.
        unsafe {
            let name = value_name(v);
            if name.starts_with("llvm.") {
                if matches!(
                    &*name,
                    "llvm.global_ctors" | "llvm.global_dtors" | "llvm.used" | "llvm.compiler.used"
                ) {
                    LLVMDeleteGlobal(v);
                }
                continue;
            }
            if LLVMIsDeclaration(v) != 0 {
                continue;
            }
            if LLVMIsThreadLocal(v) != 0 {
                return Err(format!("`{name}` is thread-local"));
            }
            LLVMSetComdat(v, std::ptr::null_mut());
            if tables.contains(&v) {
                // A kept function's jump table: this module's own copy, holding the new body's labels
                // (constant, so no state is split between the tiers), under no name the dylib sees.
                LLVMSetLinkage(v, LLVMLinkage::LLVMPrivateLinkage);
                LLVMSetVisibility(v, LLVMVisibility::LLVMDefaultVisibility);
                continue;
            }
            LLVMSetLinkage(v, LLVMLinkage::LLVMExternalLinkage);
            LLVMSetInitializer(v, std::ptr::null_mut());
            // Defined in this dylib, so within reach of a PC-relative access: as hidden, the code
            // generator addresses it directly, as the first tier did, instead of through a GOT load.
            LLVMSetVisibility(v, LLVMVisibility::LLVMHiddenVisibility);
        }
    }
    // Every body that will be read is read before any function is deleted (see `declare_instead`).
    for &f in &functions {
        // SAFETY: reads only.
        if unsafe { LLVMGetLinkage(f) } == AVAILABLE_EXTERNALLY {
            materialize(f);
        }
    }
    for f in functions {
        // SAFETY: `f` is a live function of `m`; a declaration has no body, comdat or personality; a body
        // whose labels are still addressed from elsewhere is refused before anything of it is deleted; a
        // function is deleted only when nothing uses it.
        unsafe {
            // `available_externally` bodies are copies of definitions found elsewhere (C++ inline functions
            // of a library): kept as they are, for the optimizer to inline like the first tier did.
            if !defined(f) || value_name(f).starts_with("llvm.") {
                continue;
            }
            if LLVMGetLinkage(f) == AVAILABLE_EXTERNALLY {
                continue;
            }
            if unread(f) {
                // Not kept, not inlined: gone if unused (most of a module, for one function), else a
                // declaration as below, without reading the body first.
                match LLVMGetFirstUse(f).is_null() {
                    true => LLVMDeleteFunction(f),
                    false => declare_instead(f),
                }
                continue;
            }
            LLVMSetComdat(f, std::ptr::null_mut());
            if inlined.contains(&f) {
                LLVMSetLinkage(f, LLVMLinkage::LLVMAvailableExternallyLinkage);
                continue;
            }
            // A strong definition: the kept one must win over the first tier's, which it redefines.
            LLVMSetLinkage(f, LLVMLinkage::LLVMExternalLinkage);
            if kept.contains(&f) {
                continue;
            }
            if labels_addressed(f) {
                return Err(format!("the labels of `{}` are addressed outside its body", value_name(f)));
            }
            delete_body(f);
        }
    }
    // Declarations nothing uses: most of a module, for one function; dropping them saves verifying them.
    for f in globals(m) {
        // SAFETY: `f` is a live global of `m`; only an unused function declaration is deleted.
        unsafe {
            if !LLVMIsAFunction(f).is_null() && LLVMIsDeclaration(f) != 0 && LLVMGetFirstUse(f).is_null() {
                LLVMDeleteFunction(f);
            }
        }
    }
    let names: Vec<String> = inlined.into_iter().map(value_name).collect();
    Ok((names[..direct].to_vec(), names[direct..].to_vec()))
}

/// How many calls deep a higher tier gets its callees' bodies (see [`extract_function`]).
const INLINE_DEPTH: usize = 3;
/// At most this many callees' bodies per higher-tier module (compile time grows with each).
const INLINE_MAX: usize = 48;

/// Functions compiled on their own from a tiered module's promoted IR (see [`compile_function`]).
pub(crate) struct Extracted {
    pub(crate) compiled: Compiled,
    /// Callees whose bodies the module may contain (inlined).
    pub(crate) inlined: Vec<String>,
    /// The functions of the original module they call directly (for speculation).
    pub(crate) callees: Vec<String>,
    /// The functions compiled: the ones asked for, then the callees compiled along.
    pub(crate) functions: Vec<String>,
    /// The OSR entries built, by function and header (see `osr`).
    pub(crate) osr: Vec<(String, u32)>,
    /// For a higher tier: the loop headers of the functions at which their first tier asks for OSR
    /// entries that cannot be built (`osr::refused_headers`).
    pub(crate) refused: Vec<(String, u32)>,
}

/// How [`compile_function`] compiles functions.
pub(crate) struct Extract<'a> {
    /// The functions, compiled together into one module.
    pub(crate) functions: &'a [String],
    pub(crate) level: OptLevel,
    /// The new module's name.
    pub(crate) name: String,
    /// Which direct callees may be given `available_externally` bodies (inlined).
    pub(crate) inlinable: &'a dyn Fn(&str) -> bool,
    /// Which direct callees to compile along with the functions, in the same module.
    pub(crate) along: &'a dyn Fn(&str) -> bool,
    /// Counters for the next tier: `(tag, thresholds)` (see [`count_calls`]), and whether to verify the
    /// module after adding them (`JitBuilder::verify_rewrites`).
    pub(crate) counters: Option<(&'a str, Thresholds, bool)>,
    /// The user's transform of the extracted module (before optimization), and the pass pipeline
    /// instead of `default<On>`.
    pub(crate) transform: Option<&'a Transform>,
    pub(crate) pipeline: Option<&'a str>,
    /// OSR entries to build along, by function and header (see `osr`); one that cannot be built is left
    /// out (and logged).
    pub(crate) osr: &'a [(String, u32)],
}

/// Compiles `extract.functions` from a tiered module's promoted `bitcode`: those functions at the level,
/// with the direct callees `inlinable` allows as `available_externally` bodies, everything else bound to
/// the first tier (see the module docs). Higher tiers, and a lazy function's first compile.
///
/// What was inlined is found by comparing the functions' calls to each such callee before and after
/// optimization: a callee called fewer times afterwards may have been inlined (or its call deleted as
/// dead), and is reported. A callee whose calls all remain is not: its copy was never used.
pub(crate) fn compile_function(bitcode: &[u8], extract: Extract<'_>) -> Result<Extracted> {
    let Extract { functions, level, name, inlinable, along, counters, transform, pipeline, osr } = extract;
    let kept = std::cell::RefCell::new(functions.to_vec());
    let failed = |message: String| Error::Codegen { module: name.clone(), message };
    // The callees given bodies, the functions (and OSR entries) calling them, how often each calls each
    // before optimization, and every function of the module they call.
    let found = std::cell::RefCell::new((Vec::new(), functions.to_vec(), Vec::new(), Vec::new()));
    // Callees of callees given bodies: if a direct callee was inlined, its copy may hold theirs, which
    // call counts cannot see; they are then recorded as inlined too (conservatively).
    let deeper_callees = std::cell::RefCell::new(Vec::new());
    let mut inlined = Vec::new();
    let mut entries = Vec::new();
    let refused = std::cell::RefCell::new(Vec::new());
    let mut before = |module: &Module<'_>| {
        // OSR entries are copies of the first tier's IR, made before the transform (see `osr`).
        let prepared: Vec<_> = osr
            .iter()
            .filter_map(|(function, header)| match super::osr::prepare_entry(module, function, *header) {
                Ok(p) => Some((p, function, *header)),
                Err(why) => {
                    tracing::warn!(function = %function, header, reason = %why, "no OSR entry");
                    None
                }
            })
            .collect();
        if let Some(transform) = transform {
            for function in functions {
                // A panic is the transform's failure too: it would otherwise end the tier-up thread.
                let done =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| transform(module, function)));
                let reason = match done {
                    Ok(Ok(())) => continue,
                    Ok(Err(reason)) => format!("the tier's transform of `{function}` failed: {reason}"),
                    Err(_) => format!("the tier's transform of `{function}` panicked"),
                };
                return Err(Error::Tiering { dylib: String::new(), reason });
            }
            // A transform may leave anything: the optimizer and code generator must not see broken IR.
            module.verify().map_err(|m| Error::Verify {
                module: name.clone(),
                message: format!("after the tier's transform: {m}"),
            })?;
        }
        for (p, function, header) in prepared {
            let entry = super::osr::link_entry(module, p).map_err(failed)?;
            let (candidates, callers, before, _) = &mut *found.borrow_mut();
            before.extend(call_counts(module, std::slice::from_ref(&entry), candidates));
            callers.push(entry);
            entries.push((function.clone(), header));
        }
        if let Some((tag, thresholds, verify)) = counters {
            if thresholds.cleanup {
                super::cleanup::clean_up(module, &[]);
            }
            count_calls(module, tag, thresholds, &[]);
            if verify {
                super::verify_rewrites(module, &name)?;
            }
        }
        Ok(())
    };
    let mut after = |module: &Module<'_>| {
        let (candidates, callers, before, _) = &*found.borrow();
        let after = call_counts(module, callers, candidates);
        // Inlined somewhere: some caller calls it fewer times than before.
        inlined = candidates
            .iter()
            .enumerate()
            .filter(|&(k, _)| before.iter().zip(&after).any(|(b, a)| a[k] < b[k]))
            .map(|(_, c)| c.clone())
            .collect();
        if !inlined.is_empty() {
            inlined.extend(deeper_callees.borrow().iter().cloned());
        }
    };
    let steps =
        super::Steps { before_optimize: Some(&mut before), pipeline, after_optimize: Some(&mut after) };
    let compiled = super::compile_steps(
        &name,
        level,
        &[],
        |context| {
            let module = load_lazily(context, bitcode, &name).map_err(failed)?;
            let mut callees: Vec<String> = Vec::new();
            for f in functions.iter().filter_map(|f| module.get_function(f)) {
                materialize(f.as_value_ref());
                if counters.is_none() {
                    let name = value_name(f.as_value_ref());
                    let headers = super::osr::refused_headers(f.as_value_ref());
                    refused.borrow_mut().extend(headers.into_iter().map(|h| (name.clone(), h)));
                }
                for c in direct_callees(f.as_value_ref()) {
                    let c_name = value_name(c);
                    // SAFETY: reads only.
                    let defined = unsafe { LLVMIsDeclaration(c) } == 0;
                    if defined
                        && !functions.contains(&c_name)
                        && !c_name.starts_with("llvm.")
                        && !callees.contains(&c_name)
                    {
                        callees.push(c_name);
                    }
                }
            }
            kept.borrow_mut().extend(callees.iter().filter(|c| along(c)).cloned());
            let kept = kept.borrow();
            let (mut candidates, deeper) = extract_function(&module, &kept, inlinable).map_err(failed)?;
            *deeper_callees.borrow_mut() = deeper;
            // A function of the batch may be inlined into another one, too.
            candidates
                .extend(functions.iter().filter(|f| callees_of(&module, functions).contains(f)).cloned());
            let before = call_counts(&module, functions, &candidates);
            *found.borrow_mut() = (candidates, functions.to_vec(), before, callees);
            Ok(module)
        },
        steps,
    )?;
    let callees = std::mem::take(&mut found.borrow_mut().3);
    let refused = refused.into_inner();
    Ok(Extracted { compiled, inlined, callees, functions: kept.into_inner(), osr: entries, refused })
}

#[cfg(test)]
mod tests {
    // What a tier-up shares with its first tier is tested through the API (`tests/all/tiering.rs`).
    use super::*;
    use inkwell::context::Context;
    use inkwell::memory_buffer::MemoryBuffer;

    fn parse<'c>(context: &'c Context, text: &str) -> Module<'c> {
        let buffer = MemoryBuffer::create_from_memory_range_copy(text.as_bytes(), "m");
        context.create_module_from_ir(buffer).unwrap()
    }

    #[test]
    fn promotion_names_locals_and_extraction_keeps_one_body() {
        let context = Context::create();
        let module = parse(
            &context,
            "@.str = private constant [2 x i8] c\"a\\00\"\ndefine internal i64 @h() {\n  ret i64 1\n}\n\
             define i64 @f() {\n  %r = call i64 @h()\n  ret i64 %r\n}\ndefine i64 @g() {\n  ret i64 2\n}\n",
        );
        promote_locals(&module, "7");
        let promoted = module.print_to_string().to_string();
        assert!(promoted.contains("@__gj.7..str = hidden constant"), "{promoted}");
        assert!(promoted.contains("define hidden i64 @__gj.7.h()"), "{promoted}");
        extract_function(&module, &["f".to_string()], &|_| false).unwrap();
        let extracted = module.print_to_string().to_string();
        assert!(extracted.contains("define i64 @f()"), "{extracted}");
        assert!(extracted.contains("declare hidden i64 @__gj.7.h()"), "{extracted}");
        assert!(!extracted.contains("@g()"), "unused, `g` is gone: {extracted}");
        module.verify().unwrap();
    }

    #[test]
    fn counting_leaves_calls_to_the_linker_and_stack_slots_static() {
        // Calls are counted by the linker's stubs: the IR gets an `i64` counter per function and nothing
        // else for them (a loop-free function's body is untouched); a loop's check leaves every
        // fixed-size slot in the entry block (a slot elsewhere would be allocated anew on every call).
        let context = Context::create();
        let module = parse(
            &context,
            "define i64 @v(i32 %n, ...) {\n  %a = alloca [4 x i64]\n  %b = alloca i64\n  store i64 1, ptr %b\n  \
             br label %h\nh:\n  %x = load i64, ptr %b\n  %c = icmp slt i64 %x, 9\n  br i1 %c, label %h, label %e\n\
             e:\n  ret i64 %x\n}\ndefine i64 @w(i64 %p) {\n  %s = alloca i64\n  store i64 %p, ptr %s\n  \
             %r = load i64, ptr %s\n  ret i64 %r\n}\n",
        );
        let w = || {
            use inkwell::values::AnyValue;
            module.get_function("w").unwrap().print_to_string().to_string()
        };
        let before = w();
        let thresholds = Thresholds { calls: Some(10), back_edges: Some(10), osr: true, cleanup: false };
        count_calls(&module, "1", thresholds, &[]);
        module.verify().unwrap();
        let ir = module.print_to_string().to_string();
        assert_eq!(w(), before, "{ir}");
        for counter in ["@__gjc.1.v = hidden global i64 10", "@__gjc.1.w = hidden global i64 10"] {
            assert!(ir.contains(counter), "{counter}: {ir}");
        }
        assert!(ir.contains("@__gjb.1.v = hidden global i64 10"), "v counts its back-edges: {ir}");
        // A variadic function's frame cannot be handed over: its back-edge only counts, in the runtime.
        assert!(ir.contains("call void @__genjit_back_edge(ptr @__gjb.1.v)"), "{ir}");
        assert!(!ir.contains("stackmap") && !ir.contains("__genjit_hot_loop"), "{ir}");
        // SAFETY: the functions are live definitions of `module`; their blocks and instructions are read.
        unsafe {
            for name in ["v", "w"] {
                let f = module.get_function(name).unwrap_or_else(|| panic!("{name}: {ir}")).as_value_ref();
                let entry = LLVMGetEntryBasicBlock(f);
                let mut b = LLVMGetFirstBasicBlock(f);
                let mut slots = 0;
                while !b.is_null() {
                    let mut i = LLVMGetFirstInstruction(b);
                    while !i.is_null() {
                        if !LLVMIsAAllocaInst(i).is_null() {
                            assert_eq!(b, entry, "{name}: a stack slot outside the entry block\n{ir}");
                            slots += 1;
                        }
                        i = LLVMGetNextInstruction(i);
                    }
                    b = LLVMGetNextBasicBlock(b);
                }
                assert!(slots >= 1, "{name}: {ir}");
            }
        }
    }

    #[test]
    fn a_transfer_passes_only_the_arguments_an_entry_can_read() {
        // `%n` is only stored into its slot in the entry block (clang's pattern): the transfer passes
        // `poison` for it, so it is not kept alive across the function; `%p` is used in the loop, past
        // the header, and passes as itself.
        let context = Context::create();
        let module = parse(
            &context,
            "define i64 @f(i64 %n, ptr %p) {\n  %s = alloca i64\n  store i64 %n, ptr %s\n  br label %h\n\
             h:\n  %x = load i64, ptr %s\n  store i64 %x, ptr %p\n  %y = sub i64 %x, 1\n  store i64 %y, ptr %s\n  \
             %c = icmp sgt i64 %y, 0\n  br i1 %c, label %h, label %e\ne:\n  ret i64 %x\n}\n",
        );
        let thresholds = Thresholds { calls: None, back_edges: Some(10), osr: true, cleanup: false };
        count_calls(&module, "1", thresholds, &[]);
        module.verify().unwrap();
        let ir = module.print_to_string().to_string();
        let transfer =
            ir.lines().find(|l| l.contains("%gj.osr.result = call i64")).unwrap_or_else(|| panic!("{ir}"));
        assert!(transfer.contains("(i64 poison, ptr %p, ptr %gj.osr.frame)"), "{transfer}\n{ir}");
    }

    #[test]
    fn what_extraction_does_not_handle_is_refused() {
        let context = Context::create();
        let tls = parse(&context, "@t = thread_local global i64 0\ndefine i64 @f() {\n  ret i64 0\n}\n");
        assert!(extract_function(&tls, &["f".to_string()], &|_| false).unwrap_err().contains("thread-local"));
        let missing = parse(&context, "define i64 @f() {\n  ret i64 0\n}\n");
        assert!(extract_function(&missing, &["g".to_string()], &|_| false)
            .unwrap_err()
            .contains("no function `g`"));
    }

    /// The printed module with every `#N` attribute group reference replaced by the group's contents,
    /// and its lines sorted (a declaration made in place of an unread body comes last).
    fn normalized(module: &Module<'_>) -> Vec<String> {
        let text = module.print_to_string().to_string();
        let groups: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("attributes #"))
            .filter_map(|l| l.split_once(" = "))
            .map(|(n, g)| (format!("#{n}"), g.to_string()))
            .collect();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with("attributes #") && !l.starts_with("; ModuleID"))
            .map(|l| {
                let mut line = l.to_string();
                // Longest first, so `#1` does not replace the start of `#12`.
                for (n, g) in groups.iter().rev() {
                    line = line.replace(&format!("{n} "), &format!("{g} ")).replace(&format!("{n} {{"), g);
                    if line.ends_with(n.as_str()) {
                        line = format!("{}{g}", &line[..line.len() - n.len()]);
                    }
                }
                line
            })
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn lazy_loading_extracts_what_a_whole_parse_extracts() {
        let text = "@table = internal constant [2 x ptr] [ptr blockaddress(@jumps, %a), ptr blockaddress(@jumps, %b)]\n\
            @counter = global i64 0\n\
            define internal i64 @helper(i64 %x) noinline nounwind {\n  %y = add i64 %x, 1\n  ret i64 %y\n}\n\
            define i64 @f(i64 %x) {\n  %r = call i64 @helper(i64 %x)\n  %s = call i64 @g(ptr @counter)\n  %t = add i64 %r, %s\n  ret i64 %t\n}\n\
            define i64 @g(ptr nocapture readonly %p) nounwind willreturn {\n  %v = load i64, ptr %p\n  ret i64 %v\n}\n\
            define i64 @jumps(i64 %i) {\n  %p = getelementptr [2 x ptr], ptr @table, i64 0, i64 %i\n  %t = load ptr, ptr %p\n  indirectbr ptr %t, [label %a, label %b]\na:\n  ret i64 1\nb:\n  ret i64 2\n}\n\
            define linkonce_odr i64 @inline_me(i64 %x) {\n  ret i64 %x\n}\n\
            define i64 @calls_inline(i64 %x) {\n  %r = call i64 @inline_me(i64 %x)\n  ret i64 %r\n}\n";
        let context = Context::create();
        let module = parse(&context, text);
        promote_locals(&module, "3");
        let bitcode = module.write_bitcode_to_memory();
        for (keep, inline) in
            [("f", false), ("f", true), ("g", false), ("calls_inline", true), ("calls_inline", false)]
        {
            let inlinable = |_: &str| inline;
            let whole = Module::parse_bitcode_from_buffer(&bitcode, &context).unwrap();
            let lazy = load_lazily(&context, bitcode.as_slice(), "m").unwrap();
            let a = extract_function(&whole, &[keep.to_string()], &inlinable).unwrap();
            let b = extract_function(&lazy, &[keep.to_string()], &inlinable).unwrap();
            assert_eq!(a, b, "`{keep}`: the same callees given bodies");
            lazy.verify().unwrap();
            assert_eq!(normalized(&whole), normalized(&lazy), "`{keep}` (inlining: {inline})");
            // An unread body became a declaration that keeps its attributes, if used; else it is gone.
            let printed = lazy.print_to_string().to_string();
            match (keep, inline) {
                ("f", false) => {
                    assert!(printed.contains("declare i64 @g(ptr nocapture readonly)"), "{printed}")
                }
                ("calls_inline", _) => assert!(lazy.get_function("g").is_none(), "{printed}"),
                _ => {}
            }
        }
        // Bytes that are not bitcode: an error, the buffer freed once (not owned by a module). The
        // reader reports through the context's handler (LLVM's default one would exit the process).
        let diagnostics = crate::compile::diagnostics::Diagnostics::default();
        let checked = Context::create();
        // SAFETY: `diagnostics` is declared before `checked`, so it outlives it, and never moves.
        unsafe { diagnostics.install(&checked) };
        assert!(load_lazily(&checked, b"not bitcode", "m").is_err());
        assert!(diagnostics.take_errors().is_some_and(|e| e.contains("bitcode")), "reported");
        // The computed goto's body is read with the first body read (its labels are data); extracted, it
        // keeps a private copy of its constant jump table, holding its own labels, as from a whole parse.
        let lazy = load_lazily(&context, bitcode.as_slice(), "m").unwrap();
        extract_function(&lazy, &["jumps".to_string()], &|_| false).unwrap();
        lazy.verify().unwrap();
        let printed = lazy.print_to_string().to_string();
        assert!(
            printed.contains("@__gj.3.table = private constant [2 x ptr] [ptr blockaddress(@jumps, %a), ptr blockaddress(@jumps, %b)]"),
            "{printed}"
        );
    }

    /// Which computed gotos a higher tier can follow: a table nothing writes is marked constant at
    /// promotion (GCC's `static void *ops[]` idiom); a table written, or a label held by another
    /// function's table or code, is refused.
    #[test]
    fn a_jump_table_is_copied_only_when_nothing_writes_it() {
        let context = Context::create();
        let text = "@ops = internal global [2 x ptr] [ptr blockaddress(@read, %a), ptr blockaddress(@read, %b)]\n\
            @wops = internal global [2 x ptr] [ptr blockaddress(@written, %a), ptr blockaddress(@written, %b)]\n\
            @mixed = internal constant [2 x ptr] [ptr blockaddress(@shared, %a), ptr blockaddress(@written, %a)]\n\
            define i64 @read(i64 %i) {\n  %p = getelementptr [2 x ptr], ptr @ops, i64 0, i64 %i\n  %t = load ptr, ptr %p\n  indirectbr ptr %t, [label %a, label %b]\na:\n  ret i64 1\nb:\n  ret i64 2\n}\n\
            define i64 @written(i64 %i) {\n  %p = getelementptr [2 x ptr], ptr @wops, i64 0, i64 %i\n  %t = load ptr, ptr %p\n  store ptr %t, ptr @wops\n  indirectbr ptr %t, [label %a, label %b]\na:\n  ret i64 1\nb:\n  ret i64 2\n}\n\
            define i64 @shared(i64 %i) {\n  %p = getelementptr [2 x ptr], ptr @mixed, i64 0, i64 %i\n  %t = load ptr, ptr %p\n  indirectbr ptr %t, [label %a]\na:\n  ret i64 1\n}\n";
        let module = parse(&context, text);
        promote_locals(&module, "7");
        let printed = module.print_to_string().to_string();
        assert!(printed.contains("@__gj.7.ops = hidden constant"), "only read: constant: {printed}");
        assert!(printed.contains("@__gj.7.wops = hidden global"), "written: left writable: {printed}");
        let bitcode = module.write_bitcode_to_memory();
        let extract = |name: &str| {
            let copy = Module::parse_bitcode_from_buffer(&bitcode, &context).unwrap();
            extract_function(&copy, &[name.to_string()], &|_| false).map(|_| copy)
        };
        let read = extract("read").unwrap();
        read.verify().unwrap();
        assert!(read.print_to_string().to_string().contains("@__gj.7.ops = private constant"));
        for refused in ["written", "shared"] {
            let e = extract(refused).err().unwrap();
            assert!(e.contains("outside a constant jump table of its own"), "`{refused}`: {e}");
        }
    }
}
