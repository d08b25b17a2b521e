//! On-stack replacement, compile-time half: a first-tier call looping in a function that has moved up
//! leaves its loop for the higher tier's code without returning (DESIGN.md, "On-stack replacement").
//!
//! - At tier 0 ([`tier::count_calls`](super::tier::count_calls)), a function whose stack slots (its
//!   static `alloca`s) can be handed over ([`slots`]) gets a *transfer* on each back-edge to a header
//!   without a `phi` ([`may_enter`]): when the back-edge counter runs out, the runtime's [`HOT_LOOP`]
//!   returns the address of an *OSR entry* for that header, or null; with an address, it has filled the
//!   function's frame array with its slots' addresses (from the frame offsets of the stack map the
//!   function records, [`FRAME_ID`]), and the function returns what the entry returns, called with its
//!   own arguments and the array. Whether the header can be entered ([`header_ok`]: no value but a slot
//!   live across it) is decided at the tier-up ([`refused_headers`]).
//! - At the higher tier ([`add_entry`]), the OSR entry `__gjo.<header>.<function>` is a copy of the
//!   function's first-tier IR whose new entry block takes the stack slots over and branches to the
//!   header: a slot whose address never leaves its loads, stores and address arithmetic is copied into a
//!   fresh `alloca` (which the optimizer then keeps in registers), any other is used where it is, in the
//!   first tier's frame, which stays below the entry's until it returns. The blocks the header cannot
//!   reach are deleted, and the copy is optimized with the function it was compiled along with.
//!
//! clang at `-O0` keeps every local in an `alloca` and no value in a register across a loop header, so
//! its functions have the shape; IR that keeps values in registers across a header (a `phi` in it, or a
//! value defined before it and used after) is not entered there.

use super::tier::{
    blocks_of, delete_blocks, delete_body, jump_tables, labels_addressed, replace_phi, value_name,
};
use inkwell::llvm_sys::analysis::{LLVMVerifierFailureAction, LLVMVerifyFunction};
use inkwell::llvm_sys::core::*;
use inkwell::llvm_sys::linker::LLVMLinkModules2;
use inkwell::llvm_sys::prelude::*;
use inkwell::llvm_sys::{LLVMLinkage, LLVMOpcode, LLVMVisibility};
use inkwell::module::Module;
use std::collections::{HashMap, HashSet};

/// The runtime function a first-tier back-edge that could transfer calls while its function's back-edge
/// counter is positive: `ptr __genjit_hot_loop(ptr counter, i32 header, ptr frame)`, which counts it down
/// and, once it runs out, returns an OSR entry for the header (having filled `frame`) or null.
pub(crate) const HOT_LOOP: &str = "__genjit_hot_loop";

/// What a first-tier computed goto's dispatch (an `indirectbr` with a destination laid out before it)
/// calls instead of [`HOT_LOOP`]: `ptr __genjit_hot_goto(ptr counter, ptr target, ptr frame, ptr labels,
/// i32 n)`, with the address it jumps to and its table of `n` `{ptr label, i64 header}` pairs, the
/// destinations an entry may enter; the runtime finds the header the target labels.
pub(crate) const HOT_GOTO: &str = "__genjit_hot_goto";

/// The ID of the stack map (`llvm.experimental.stackmap`) a first tier records in a function with a
/// transfer: its frame array, then its stack slots, each as a frame offset (a `Direct` location), from
/// which the runtime fills the array (`link::stackmap`). ("gjosr")
pub(crate) const FRAME_ID: u64 = 0x0067_6a6f_7372;

/// The name of `function`'s OSR entry at header `header` (the header's index in the function's block
/// list, as the first tier's IR lays it out).
pub(crate) fn entry_name(header: u32, function: &str) -> String {
    format!("__gjo.{header}.{function}")
}

/// The header and function of OSR entry `symbol`, if it is one.
pub(crate) fn entry_of(symbol: &str) -> Option<(u32, &str)> {
    let (header, function) = symbol.strip_prefix("__gjo.")?.split_once('.')?;
    Some((header.parse().ok()?, function))
}

/// Whether `symbol` names an OSR entry: a module's own, never published in its dylib's table (see
/// `link::Linked::osr`).
pub(crate) fn is_entry(symbol: &str) -> bool {
    symbol.starts_with("__gjo.")
}

/// What a function must be for a loop of it to be entered from outside: its blocks in layout order (a
/// header is an index into them) and its stack slots, the static `alloca`s of its entry block in order
/// (the array a transfer passes).
pub(crate) struct Shape {
    pub(crate) blocks: Vec<LLVMBasicBlockRef>,
    pub(crate) allocas: Vec<LLVMValueRef>,
    /// Each block's successors, as indices into `blocks`.
    successors: Vec<Vec<u32>>,
    /// The (defining block, using block) pairs of the values other than stack slots used outside their
    /// own block, once each: what [`header_ok`] checks against a header's reach, gathered in one pass
    /// (a pass per header made the first tier's compile 1.2x as long on bzip2).
    crossings: Vec<(u32, u32)>,
}

/// Parameter attributes an OSR entry could not take over: the argument is not a plain value or pointer
/// (`byval`, `sret` and the like are pointers the first tier's frame keeps valid, and pass as such).
const UNMOVABLE: [&str; 5] = ["inalloca", "preallocated", "swiftself", "swiftasync", "swifterror"];

/// Intrinsics whose state a frame cannot hand over: the stack pointer's own (`stacksave`), the frame's
/// address escaping to another function (`localescape`), varargs.
const UNMOVABLE_CALLS: [&str; 5] =
    ["llvm.stacksave", "llvm.stackrestore", "llvm.localescape", "llvm.va_", "llvm.eh.sjlj"];

/// Whether call `i` (a call, invoke or callbr) may return twice (`setjmp`): the call site or its
/// callee says `returns_twice`.
///
/// # Safety
/// `i` is a live call-like instruction.
pub(super) unsafe fn returns_twice(i: LLVMValueRef) -> bool {
    let kind = enum_kind("returns_twice");
    // SAFETY: the call's attributes and its callee's are read.
    unsafe {
        let callee = LLVMGetCalledValue(i);
        !LLVMGetCallSiteEnumAttribute(i, u32::MAX, kind).is_null()
            || (!LLVMIsAFunction(callee).is_null()
                && !LLVMGetEnumAttributeAtIndex(callee, u32::MAX, kind).is_null())
    }
}

fn enum_kind(name: &str) -> u32 {
    // SAFETY: reads a constant table.
    unsafe { LLVMGetEnumAttributeKindForName(name.as_ptr().cast(), name.len()) }
}

/// `f`'s stack slots (the static `alloca`s of its entry block, in order: the frame a transfer hands
/// over), or `None` if no loop of it can be entered from outside: variadic, naked, labels addressed, a
/// dynamic `alloca`, a `musttail` call (its caller's signature is fixed), a call that returns twice
/// (`setjmp`: a `longjmp` back into the first tier's frame would find state the entry changed), a stack
/// save, or a parameter that is not a plain value. One pass over the instructions: the first tier asks
/// this of every function with a loop; what needs the whole control flow ([`header_ok`]) waits for the
/// tier-up.
pub(crate) fn slots(f: LLVMValueRef) -> Option<Vec<LLVMValueRef>> {
    scan(f).map(|(_, allocas)| allocas)
}

/// [`slots`] and the function's blocks in layout order.
fn scan(f: LLVMValueRef) -> Option<(Vec<LLVMBasicBlockRef>, Vec<LLVMValueRef>)> {
    // SAFETY: `f` is a live function definition; its type, attributes, blocks and instructions are only
    // read; a name is borrowed while its value lives.
    unsafe {
        // A computed goto's function may be entered if its labels are addressed only by its own constant
        // jump tables: its entry gets copies of them holding the entry's labels (`prepare_entry`).
        if LLVMIsFunctionVarArg(LLVMGlobalGetValueType(f)) != 0
            || (labels_addressed(f) && jump_tables(f).is_err())
        {
            return None;
        }
        if !LLVMGetEnumAttributeAtIndex(f, u32::MAX, enum_kind("naked")).is_null() {
            return None;
        }
        let params = LLVMCountParams(f);
        let unmovable = UNMOVABLE.iter().any(|a| {
            let kind = enum_kind(a);
            (1..=params).any(|i| !LLVMGetEnumAttributeAtIndex(f, i, kind).is_null())
        });
        if unmovable {
            return None;
        }
        let mut blocks = Vec::new();
        let mut allocas = Vec::new();
        let mut block = LLVMGetFirstBasicBlock(f);
        while !block.is_null() {
            let mut i = LLVMGetFirstInstruction(block);
            while !i.is_null() {
                let opcode = LLVMGetInstructionOpcode(i);
                if opcode == LLVMOpcode::LLVMAlloca {
                    let size = LLVMGetOperand(i, 0);
                    if !blocks.is_empty() || LLVMIsAConstantInt(size).is_null() {
                        return None; // a dynamic stack slot
                    }
                    allocas.push(i);
                }
                if matches!(opcode, LLVMOpcode::LLVMCall | LLVMOpcode::LLVMInvoke | LLVMOpcode::LLVMCallBr) {
                    if opcode == LLVMOpcode::LLVMCall
                        && LLVMGetTailCallKind(i)
                            == inkwell::llvm_sys::LLVMTailCallKind::LLVMTailCallKindMustTail
                    {
                        return None;
                    }
                    let callee = LLVMGetCalledValue(i);
                    if !LLVMIsAFunction(callee).is_null() {
                        let mut len = 0;
                        let name = LLVMGetValueName2(callee, &mut len);
                        let name = std::slice::from_raw_parts(name.cast::<u8>(), len);
                        if UNMOVABLE_CALLS.iter().any(|p| name.starts_with(p.as_bytes())) {
                            return None;
                        }
                    }
                    if returns_twice(i) {
                        return None;
                    }
                }
                i = LLVMGetNextInstruction(i);
            }
            blocks.push(block);
            block = LLVMGetNextBasicBlock(block);
        }
        Some((blocks, allocas))
    }
}

/// Whether a first tier asks for an OSR entry at block `header` of `blocks`: not the entry block, and no
/// `phi` (its value on entry would have to be handed over). The rest of [`header_ok`] is the tier-up's.
pub(crate) fn may_enter(blocks: &[LLVMBasicBlockRef], header: usize) -> bool {
    // SAFETY: the header is a live block; its first instruction is read. (A header is a branch's target,
    // so it is no exception pad.)
    header != 0
        && blocks.get(header).is_some_and(|&h| unsafe {
            let first = LLVMGetFirstInstruction(h);
            !first.is_null() && LLVMIsAPHINode(first).is_null()
        })
}

/// `f`'s [`Shape`], or `None` if no loop of it can be entered from outside (see [`slots`]).
pub(crate) fn shape(f: LLVMValueRef) -> Option<Shape> {
    let (blocks, allocas) = scan(f)?;
    // SAFETY: as in `scan`.
    unsafe {
        let index: HashMap<LLVMBasicBlockRef, u32> =
            blocks.iter().enumerate().map(|(k, &b)| (b, k as u32)).collect();
        let mut successors = Vec::with_capacity(blocks.len());
        let mut crossings = HashSet::new();
        for (k, &b) in blocks.iter().enumerate() {
            let t = LLVMGetBasicBlockTerminator(b);
            let n = if t.is_null() { 0 } else { LLVMGetNumSuccessors(t) };
            successors.push((0..n).filter_map(|j| index.get(&LLVMGetSuccessor(t, j)).copied()).collect());
            let mut i = LLVMGetFirstInstruction(b);
            while !i.is_null() {
                if LLVMIsAAllocaInst(i).is_null() {
                    let mut u = LLVMGetFirstUse(i);
                    while !u.is_null() {
                        let user = LLVMGetUser(u);
                        // A `phi` uses its value at the end of the block it comes from (an entry drops
                        // the incoming edges of blocks it cannot reach: `drop_incoming`).
                        let mut at_blocks = Vec::new();
                        if !LLVMIsAPHINode(user).is_null() {
                            for j in 0..LLVMCountIncoming(user) {
                                if LLVMGetIncomingValue(user, j) == i {
                                    at_blocks.push(LLVMGetIncomingBlock(user, j));
                                }
                            }
                        } else if !LLVMIsAInstruction(user).is_null() {
                            at_blocks.push(LLVMGetInstructionParent(user));
                        }
                        for at in at_blocks {
                            match index.get(&at) {
                                Some(&at) if at != k as u32 => _ = crossings.insert((k as u32, at)),
                                _ => {}
                            }
                        }
                        u = LLVMGetNextUse(u);
                    }
                }
                i = LLVMGetNextInstruction(i);
            }
        }
        Some(Shape { blocks, allocas, successors, crossings: crossings.into_iter().collect() })
    }
}

/// The blocks reachable from `from` (itself included).
fn reachable(from: LLVMBasicBlockRef) -> HashSet<LLVMBasicBlockRef> {
    let mut seen = HashSet::from([from]);
    let mut work = vec![from];
    while let Some(b) = work.pop() {
        // SAFETY: `b` is a live block; its terminator's successors are read.
        unsafe {
            let t = LLVMGetBasicBlockTerminator(b);
            if t.is_null() {
                continue;
            }
            for k in 0..LLVMGetNumSuccessors(t) {
                let s = LLVMGetSuccessor(t, k);
                if seen.insert(s) {
                    work.push(s);
                }
            }
        }
    }
    seen
}

/// Whether the loop at `shape.blocks[header]` can be entered from outside: the header has no `phi` (its
/// value on entry would have to be handed over), and no value other than a stack
/// slot is defined where the header cannot reach and used where it can (it would be live on entry).
pub(crate) fn header_ok(shape: &Shape, header: usize) -> bool {
    if !may_enter(&shape.blocks, header) {
        return false;
    }
    let mut inside = vec![false; shape.blocks.len()];
    inside[header] = true;
    let mut work = vec![header as u32];
    while let Some(b) = work.pop() {
        for &s in &shape.successors[b as usize] {
            if !std::mem::replace(&mut inside[s as usize], true) {
                work.push(s);
            }
        }
    }
    !shape.crossings.iter().any(|&(def, at)| !inside[def as usize] && inside[at as usize])
}

/// The loop headers of `f` at which its first tier asks for OSR entries ([`slots`], [`may_enter`]) but no
/// entry can enter ([`header_ok`]): the tier-up records them, so that no first-tier call asks for them
/// (and no compile is spent finding out).
pub(crate) fn refused_headers(f: LLVMValueRef) -> Vec<u32> {
    let Some(shape) = shape(f) else { return Vec::new() };
    let edges = super::tier::back_edges(&shape.blocks);
    let mut refused: Vec<u32> = edges
        .iter()
        .map(|e| e.header)
        .filter(|&h| may_enter(&shape.blocks, h) && !header_ok(&shape, h))
        .map(|h| h as u32)
        .collect();
    refused.sort_unstable();
    refused.dedup();
    refused
}

/// Whether a pointer to `slot` may exist anywhere but in the operands of its own loads, stores (as the
/// address), address arithmetic and memory intrinsics: then the entry must use the first tier's slot
/// itself, else it may copy it.
fn escapes(slot: LLVMValueRef) -> bool {
    let mut work = vec![slot];
    while let Some(p) = work.pop() {
        // SAFETY: `p` is a live value; its use list and its users' operands are read.
        unsafe {
            let mut u = LLVMGetFirstUse(p);
            while !u.is_null() {
                let user = LLVMGetUser(u);
                u = LLVMGetNextUse(u);
                if LLVMIsAInstruction(user).is_null() {
                    return true;
                }
                match LLVMGetInstructionOpcode(user) {
                    LLVMOpcode::LLVMLoad => {}
                    LLVMOpcode::LLVMStore if LLVMGetOperand(user, 0) != p => {}
                    LLVMOpcode::LLVMGetElementPtr if LLVMGetOperand(user, 0) == p => work.push(user),
                    LLVMOpcode::LLVMCall => {
                        let callee = LLVMGetCalledValue(user);
                        let name = if LLVMIsAFunction(callee).is_null() {
                            String::new()
                        } else {
                            value_name(callee)
                        };
                        let harmless =
                            ["llvm.lifetime.", "llvm.dbg.", "llvm.memcpy", "llvm.memmove", "llvm.memset"];
                        if !harmless.iter().any(|h| name.starts_with(h)) {
                            return true;
                        }
                    }
                    _ => return true,
                }
            }
        }
    }
    false
}

/// Removes from `block`'s `phi`s the values coming from blocks not in `keep` (rebuilt: the C API cannot
/// remove an incoming value).
fn drop_incoming(builder: LLVMBuilderRef, block: LLVMBasicBlockRef, keep: &HashSet<LLVMBasicBlockRef>) {
    // SAFETY: `block` is live; each phi is replaced by a new one with a subset of its incoming pairs, its
    // uses moved over, then erased.
    unsafe {
        let mut phi = LLVMGetFirstInstruction(block);
        while !phi.is_null() && !LLVMIsAPHINode(phi).is_null() {
            let next = LLVMGetNextInstruction(phi);
            let n = LLVMCountIncoming(phi);
            let (mut values, mut blocks) = (Vec::new(), Vec::new());
            for j in 0..n {
                let from = LLVMGetIncomingBlock(phi, j);
                if keep.contains(&from) {
                    values.push(LLVMGetIncomingValue(phi, j));
                    blocks.push(from);
                }
            }
            if values.len() as u32 != n {
                replace_phi(builder, phi, values, blocks);
            }
            phi = next;
        }
    }
}

/// An OSR entry built in a copy of a module, not linked into it yet (see [`prepare_entry`]); dropped
/// unlinked, the copy is disposed.
pub(crate) struct Prepared {
    copy: LLVMModuleRef,
    pub(crate) name: String,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if !self.copy.is_null() {
            // SAFETY: the copy is owned here and was not linked (which consumes it); its context is the
            // module's, alive while the compile that prepared it runs.
            unsafe { LLVMDisposeModule(self.copy) };
        }
    }
}

/// Builds the OSR entry of `function` at `header` (see the module docs) in a copy of `module` (a higher
/// tier being built, which defines `function` from the first tier's IR): before the tier's transform runs,
/// so the entry continues a first-tier call with the code that call was running, only optimized. `Err`
/// says why it cannot (the first tier asked for it only if it could, from the same IR).
pub(crate) fn prepare_entry(module: &Module<'_>, function: &str, header: u32) -> Result<Prepared, String> {
    let name = entry_name(header, function);
    let m = module.as_mut_ptr();
    let c_function = std::ffi::CString::new(function).map_err(|e| e.to_string())?;
    let c_name = std::ffi::CString::new(name.clone()).map_err(|e| e.to_string())?;
    // SAFETY: `m` is a live, verified module; its copy lives in the same context, owned by `Prepared`.
    // Every value changed below belongs to the copy: the function's blocks are moved whole into the
    // entry, values are replaced before the instructions defining them are erased, and blocks are
    // deleted only once empty.
    unsafe {
        let original = LLVMGetNamedFunction(m, c_function.as_ptr());
        if original.is_null() || LLVMIsDeclaration(original) != 0 {
            return Err(format!("the module defines no function `{function}`"));
        }
        let prepared = Prepared { copy: LLVMCloneModule(m), name };
        let copy = prepared.copy;
        let f = LLVMGetNamedFunction(copy, c_function.as_ptr());
        let Some(shape) = shape(f).filter(|s| header_ok(s, header as usize)) else {
            return Err(format!("no loop of `{function}` can be entered at block {header}"));
        };
        // The copy brings only the entry: every other function it defines is declared instead (bound to
        // the module's own at link time), except local ones, which stay copies. Debug information goes:
        // its subprogram belongs to the function.
        let mut g = LLVMGetFirstFunction(copy);
        while !g.is_null() {
            let next = LLVMGetNextFunction(g);
            let local = matches!(
                LLVMGetLinkage(g),
                LLVMLinkage::LLVMInternalLinkage | LLVMLinkage::LLVMPrivateLinkage
            );
            if g != f && LLVMIsDeclaration(g) == 0 && !local {
                delete_body(g);
                LLVMSetLinkage(g, LLVMLinkage::LLVMExternalLinkage);
            }
            g = next;
        }
        inkwell::llvm_sys::debuginfo::LLVMStripModuleDebugInfo(copy);
        let context = LLVMGetModuleContext(copy);
        let ptr = LLVMPointerTypeInContext(context, 0);
        let ty = LLVMGlobalGetValueType(f);
        let params = LLVMCountParams(f);
        let mut param_types: Vec<LLVMTypeRef> = (0..params).map(|i| LLVMTypeOf(LLVMGetParam(f, i))).collect();
        param_types.push(ptr);
        let entry_type =
            LLVMFunctionType(LLVMGetReturnType(ty), param_types.as_mut_ptr(), param_types.len() as u32, 0);
        let entry = LLVMAddFunction(copy, c_name.as_ptr(), entry_type);
        LLVMSetVisibility(entry, LLVMVisibility::LLVMHiddenVisibility);
        // The function's own attributes (target features, frame pointers, ...); none on the parameters or
        // the return value, which the first tier's call passes plainly.
        let index = inkwell::llvm_sys::LLVMAttributeFunctionIndex;
        let count = LLVMGetAttributeCountAtIndex(f, index);
        let mut attributes = vec![std::ptr::null_mut(); count as usize];
        LLVMGetAttributesAtIndex(f, index, attributes.as_mut_ptr());
        for a in attributes {
            LLVMAddAttributeAtIndex(entry, index, a);
        }
        if LLVMHasPersonalityFn(f) != 0 {
            LLVMSetPersonalityFn(entry, LLVMGetPersonalityFn(f));
            LLVMSetPersonalityFn(f, std::ptr::null_mut());
        }
        for &block in &shape.blocks {
            LLVMRemoveBasicBlockFromParent(block);
            LLVMAppendExistingBasicBlock(entry, block);
        }
        // A computed goto's jump tables (the higher tier's own, private: the copy's are renamed when
        // linked in, so the function keeps its own) are made the entry's: `LLVMCloneModule` leaves a
        // cloned initializer's `blockaddress` naming the *original* module's block (it maps initializers
        // before bodies), and linking would then make it a label of the function, where the entry's frame
        // is not. Each becomes the label of the copy's block at the same place in the layout.
        let original_blocks = blocks_of(original);
        let mut g = LLVMGetFirstGlobal(copy);
        while !g.is_null() {
            let init = LLVMGetInitializer(g);
            if !init.is_null() {
                match relabel(init, &original_blocks, &shape.blocks, entry, 8) {
                    Some(relabeled) if relabeled != init => LLVMSetInitializer(g, relabeled),
                    Some(_) => {}
                    None => {
                        return Err(format!(
                            "a jump table of `{function}` has a form its OSR entry cannot copy"
                        ))
                    }
                }
            }
            g = LLVMGetNextGlobal(g);
        }
        for i in 0..params {
            LLVMReplaceAllUsesWith(LLVMGetParam(f, i), LLVMGetParam(entry, i));
        }
        // The new entry block: take the slots over, then go to the header.
        let builder = LLVMCreateBuilderInContext(context);
        let start = LLVMInsertBasicBlockInContext(context, shape.blocks[0], c"gj.osr".as_ptr());
        LLVMPositionBuilderAtEnd(builder, start);
        let frame = LLVMGetParam(entry, params);
        let i64t = LLVMInt64TypeInContext(context);
        let array = LLVMArrayType2(ptr, shape.allocas.len() as u64);
        let layout = inkwell::llvm_sys::target::LLVMGetModuleDataLayout(copy);
        for (k, &slot) in shape.allocas.iter().enumerate() {
            let mut indices = [LLVMConstInt(i64t, 0, 0), LLVMConstInt(i64t, k as u64, 0)];
            let at = LLVMBuildInBoundsGEP2(builder, array, frame, indices.as_mut_ptr(), 2, c"".as_ptr());
            let first_tier = LLVMBuildLoad2(builder, ptr, at, c"gj.slot".as_ptr());
            let slot_name = std::ffi::CString::new(value_name(slot)).unwrap_or_default();
            LLVMInstructionRemoveFromParent(slot);
            LLVMInsertIntoBuilderWithName(builder, slot, slot_name.as_ptr());
            if escapes(slot) {
                LLVMReplaceAllUsesWith(slot, first_tier);
                LLVMInstructionEraseFromParent(slot);
            } else {
                let bytes = inkwell::llvm_sys::target::LLVMABISizeOfType(layout, LLVMGetAllocatedType(slot));
                let n = LLVMConstIntGetZExtValue(LLVMGetOperand(slot, 0));
                let size = LLVMConstInt(i64t, bytes * n, 0);
                let align = LLVMGetAlignment(slot);
                LLVMBuildMemCpy(builder, slot, align, first_tier, align, size);
            }
        }
        LLVMBuildBr(builder, shape.blocks[header as usize]);
        // Blocks the header cannot reach go (their values are used only among them: `header_ok`), and
        // the phis of the ones it can reach forget them.
        let inside = reachable(start);
        let outside: Vec<_> = shape.blocks.iter().copied().filter(|b| !inside.contains(b)).collect();
        for &b in &inside {
            drop_incoming(builder, b, &inside);
        }
        LLVMDisposeBuilder(builder);
        // (No inside block branches to an outside one: inside is all that `start` reaches.)
        delete_blocks(&outside);
        // Lifetime markers go: a copied slot is live from the entry block on, whatever markers the
        // function had before the header.
        for &b in &inside {
            let mut i = LLVMGetFirstInstruction(b);
            while !i.is_null() {
                let next = LLVMGetNextInstruction(i);
                if !LLVMIsACallInst(i).is_null() {
                    let callee = LLVMGetCalledValue(i);
                    if !LLVMIsAFunction(callee).is_null() && value_name(callee).starts_with("llvm.lifetime.")
                    {
                        LLVMInstructionEraseFromParent(i);
                    }
                }
                i = next;
            }
        }
        if LLVMVerifyFunction(entry, LLVMVerifierFailureAction::LLVMReturnStatusAction) != 0 {
            return Err(format!(
                "the OSR entry of `{function}` at block {header} does not verify (a genjit bug)"
            ));
        }
        Ok(prepared)
    }
}

/// Constant `c` with each label of a block in `from` the label of the block at the same index in `to`, in
/// function `entry`; `None` if one is inside a constant expression (a relative table's `sub`), where
/// it cannot be rebuilt: only arrays and structs (`depth` deep) are.
fn relabel(
    c: LLVMValueRef,
    from: &[LLVMBasicBlockRef],
    to: &[LLVMBasicBlockRef],
    entry: LLVMValueRef,
    depth: u32,
) -> Option<LLVMValueRef> {
    // SAFETY: `c` is a live constant and `to`'s blocks live blocks of `entry`; new constants are created
    // in their context.
    unsafe {
        if !LLVMIsABlockAddress(c).is_null() {
            let block = LLVMGetBlockAddressBasicBlock(c);
            return Some(match from.iter().position(|&b| b == block) {
                Some(k) => LLVMBlockAddress(entry, *to.get(k)?),
                None => c,
            });
        }
        let n = LLVMGetNumOperands(c).max(0) as u32;
        if n == 0 {
            return Some(c);
        }
        let array = !LLVMIsAConstantArray(c).is_null();
        if !array && LLVMIsAConstantStruct(c).is_null() {
            return (!mentions(c, from, depth)).then_some(c);
        }
        if depth == 0 {
            return None;
        }
        let mut elements = (0..n)
            .map(|i| relabel(LLVMGetOperand(c, i), from, to, entry, depth - 1))
            .collect::<Option<Vec<_>>>()?;
        let ty = LLVMTypeOf(c);
        Some(match array {
            true => LLVMConstArray2(LLVMGetElementType(ty), elements.as_mut_ptr(), n as u64),
            false => LLVMConstNamedStruct(ty, elements.as_mut_ptr(), n),
        })
    }
}

/// Whether constant `c` holds the label of a block in `blocks` (`depth` operands deep; deeper counts).
fn mentions(c: LLVMValueRef, blocks: &[LLVMBasicBlockRef], depth: u32) -> bool {
    // SAFETY: `c` is a live constant; its operands are read.
    unsafe {
        if !LLVMIsABlockAddress(c).is_null() {
            return blocks.contains(&LLVMGetBlockAddressBasicBlock(c));
        }
        let n = LLVMGetNumOperands(c).max(0) as u32;
        n > 0 && (depth == 0 || (0..n).any(|i| mentions(LLVMGetOperand(c, i), blocks, depth - 1)))
    }
}

/// Links a prepared OSR entry into `module`, the module it was copied from; returns its name.
pub(crate) fn link_entry(module: &Module<'_>, mut prepared: Prepared) -> Result<String, String> {
    let copy = std::mem::replace(&mut prepared.copy, std::ptr::null_mut());
    // SAFETY: both modules are live and share a context; linking consumes the copy (disposed by LLVM).
    if unsafe { LLVMLinkModules2(module.as_mut_ptr(), copy) } != 0 {
        return Err(format!("the OSR entry `{}` could not be linked", prepared.name));
    }
    Ok(std::mem::take(&mut prepared.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use inkwell::context::Context;
    use inkwell::memory_buffer::MemoryBuffer;
    use inkwell::values::{AnyValue, AsValueRef};

    /// Slots as clang -O0 leaves them: `x` copied, `a` (address arithmetic only) copied, `p` (given
    /// away) used in place; one loop at block 1 (`head`), a second at block 4 (`head2`), whose `phi`
    /// keeps it from being entered, and values defined before later blocks and used after them.
    const IR: &str = r#"
declare void @take(ptr)
declare void @llvm.lifetime.start.p0(i64, ptr)

define i64 @f(i64 %n) {
entry:
  %x = alloca i64
  %a = alloca [4 x i64]
  %p = alloca i64
  call void @llvm.lifetime.start.p0(i64 8, ptr %x)
  store i64 0, ptr %x
  call void @take(ptr %p)
  br label %head
head:
  %v = load i64, ptr %x
  %more = icmp slt i64 %v, %n
  br i1 %more, label %body, label %done
body:
  %e = getelementptr [4 x i64], ptr %a, i64 0, i64 1
  store i64 %v, ptr %e
  %v1 = add i64 %v, 1
  store i64 %v1, ptr %x
  br label %head
done:
  %w = load i64, ptr %x
  br label %head2
head2:
  %j = phi i64 [ 0, %done ], [ %j1, %head2 ]
  %j1 = add i64 %j, 1
  %again = icmp slt i64 %j1, 3
  br i1 %again, label %head2, label %out
out:
  %live = add i64 %w, %j1
  br label %head3
head3:
  %u = load i64, ptr %p
  %u1 = add i64 %u, %live
  store i64 %u1, ptr %p
  %stop = icmp sgt i64 %u1, 100
  br i1 %stop, label %end, label %head3
end:
  ret i64 %u1
}
"#;

    fn parse(context: &Context) -> Module<'_> {
        let buffer = MemoryBuffer::create_from_memory_range_copy(IR.as_bytes(), "osr");
        context.create_module_from_ir(buffer).unwrap()
    }

    fn allocas(f: LLVMValueRef) -> Vec<String> {
        let mut names = Vec::new();
        // SAFETY: reads a live function's entry block.
        unsafe {
            let mut i = LLVMGetFirstInstruction(LLVMGetEntryBasicBlock(f));
            while !i.is_null() {
                if !LLVMIsAAllocaInst(i).is_null() {
                    names.push(value_name(i));
                }
                i = LLVMGetNextInstruction(i);
            }
        }
        names
    }

    #[test]
    fn headers_are_entered_only_without_values_live_across_them() {
        let context = Context::create();
        let module = parse(&context);
        let f = module.get_function("f").unwrap().as_value_ref();
        let shape = shape(f).unwrap();
        assert_eq!(shape.allocas.len(), 3);
        let ok: Vec<bool> = (0..shape.blocks.len()).map(|h| header_ok(&shape, h)).collect();
        // entry (no loop enters it), head, body, done; head2 (a phi); out (`%w`, `%j1` from before it),
        // head3 (`%live`), end (`%u1`): values live across the header.
        assert_eq!(ok, [false, true, true, true, false, false, false, false]);
    }

    #[test]
    fn an_entry_copies_private_slots_and_uses_given_away_ones_in_place() {
        let context = Context::create();
        let module = parse(&context);
        let prepared = prepare_entry(&module, "f", 1).unwrap();
        assert_eq!(link_entry(&module, prepared).unwrap(), "__gjo.1.f");
        module.verify().unwrap();
        let entry = module.get_function("__gjo.1.f").unwrap();
        assert_eq!(entry.count_params(), 2);
        assert_eq!(allocas(entry.as_value_ref()), ["x", "a"], "`p` is the first tier's");
        let text = entry.print_to_string().to_string();
        assert!(!text.contains("lifetime"), "{text}");
        assert!(!text.contains("call void @take"), "code before the header is gone: {text}");
        assert!(module.get_function("f").unwrap().count_basic_blocks() > 0, "the function itself stays");
        assert!(prepare_entry(&module, "f", 4).is_err(), "a phi in the header");
    }
}
