//! The first tier's clean-up: inside each block, a value the block already has is reused instead of
//! computed again.
//!
//! - A load from a stack slot whose address nothing takes reuses the value the block last stored into
//!   that slot or loaded from it.
//! - An address (`getelementptr`) or an integer extension (`sext`, `zext`) computed a second time from the
//!   same values, with the same flags, is the first one.
//!
//! clang at `-O0` keeps every local in a stack slot and loads it at each use, and computes an address at
//! each use: a third of bzip2's IR instructions are loads, a third of those read a slot the same block
//! has just stored or loaded (`s->x` loads `s.addr` once per use), and after that one address in twelve
//! is one its block already computed. LLVM's code generation at O0 costs about the same per IR instruction
//! whatever it is, so each one removed is code generation saved, and one less at run time.
//!
//! Only values used inside their own block are created, and every store stays, so the frame in memory is
//! what plain O0 code has at every block boundary: a loop header's state is still its slots (what an OSR
//! entry takes over, see `osr`), a debugger still finds each variable in its slot, and no value crosses a
//! block that did not. A slot qualifies when every use of it is a plain (neither volatile nor atomic)
//! load from it or a plain store of another value into it: no call, intrinsic or address arithmetic sees
//! it, so only those stores change it. A load reuses a value of its own type only. Functions that call
//! something returning twice (`setjmp`) are left as they are.

use super::tier::value_name;
use inkwell::llvm_sys::core::*;
use inkwell::llvm_sys::prelude::*;
use inkwell::llvm_sys::{LLVMAtomicOrdering, LLVMLinkage, LLVMOpcode};
use inkwell::module::Module;
use std::collections::HashMap;

/// What [`clean_up`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Removed {
    pub(crate) loads: usize,
    pub(crate) computations: usize,
}

/// Cleans up `module`'s defined functions, except those in `skip`, as the module docs say.
pub(crate) fn clean_up(module: &Module<'_>, skip: &[String]) -> Removed {
    let m = module.as_mut_ptr();
    let mut removed = Removed::default();
    // SAFETY: `m` is a live module no other thread uses; `clean_function`'s contract holds for each of
    // its definitions.
    unsafe {
        let mut f = LLVMGetFirstFunction(m);
        while !f.is_null() {
            if LLVMIsDeclaration(f) == 0
                && LLVMGetLinkage(f) != LLVMLinkage::LLVMAvailableExternallyLinkage
                && (skip.is_empty() || !skip.contains(&value_name(f)))
            {
                let r = clean_function(f);
                removed.loads += r.loads;
                removed.computations += r.computations;
            }
            f = LLVMGetNextFunction(f);
        }
    }
    removed
}

/// [`clean_up`] for one function.
///
/// # Safety
/// `f` is a live function definition of a module no other thread uses.
unsafe fn clean_function(f: LLVMValueRef) -> Removed {
    let mut removed = Removed::default();
    // SAFETY: `f`'s blocks and instructions are read; an instruction is erased only after every use of it
    // was replaced by a value that dominates them all (one defined before it in its block, an argument or
    // a constant), and the next instruction is taken before the current one is erased.
    unsafe {
        if returns_twice_inside(f) {
            return removed;
        }
        let mut slots = Vec::new();
        for block in super::tier::blocks_of(f) {
            let mut i = LLVMGetFirstInstruction(block);
            while !i.is_null() {
                if LLVMGetInstructionOpcode(i) == LLVMOpcode::LLVMAlloca && only_loaded_and_stored(i) {
                    slots.push(i);
                }
                i = LLVMGetNextInstruction(i);
            }
        }
        slots.sort_unstable();
        let is_slot = |v: LLVMValueRef| slots.binary_search(&v).is_ok();
        // Per block: the value each slot holds (few at a time: a list), and the computations made.
        let mut holds: Vec<(LLVMValueRef, LLVMValueRef)> = Vec::new();
        let mut computed: HashMap<Vec<usize>, LLVMValueRef> = HashMap::new();
        let replace = |i: LLVMValueRef, by: LLVMValueRef| {
            LLVMReplaceAllUsesWith(i, by);
            LLVMInstructionEraseFromParent(i);
        };
        for block in super::tier::blocks_of(f) {
            holds.clear();
            computed.clear();
            let mut i = LLVMGetFirstInstruction(block);
            while !i.is_null() {
                let next = LLVMGetNextInstruction(i);
                match LLVMGetInstructionOpcode(i) {
                    LLVMOpcode::LLVMLoad if is_slot(LLVMGetOperand(i, 0)) => {
                        let slot = LLVMGetOperand(i, 0);
                        match holds.iter_mut().find(|(s, _)| *s == slot) {
                            Some(&mut (_, value)) if LLVMTypeOf(value) == LLVMTypeOf(i) => {
                                replace(i, value);
                                removed.loads += 1;
                            }
                            Some(held) => held.1 = i,
                            None => holds.push((slot, i)),
                        }
                    }
                    LLVMOpcode::LLVMStore if is_slot(LLVMGetOperand(i, 1)) => {
                        let (slot, value) = (LLVMGetOperand(i, 1), LLVMGetOperand(i, 0));
                        match holds.iter_mut().find(|(s, _)| *s == slot) {
                            Some(held) => held.1 = value,
                            None => holds.push((slot, value)),
                        }
                    }
                    opcode
                    @ (LLVMOpcode::LLVMGetElementPtr | LLVMOpcode::LLVMSExt | LLVMOpcode::LLVMZExt) => {
                        let key = computation(i, opcode);
                        match computed.get(&key) {
                            Some(&first) => {
                                replace(i, first);
                                removed.computations += 1;
                            }
                            None => {
                                computed.insert(key, i);
                            }
                        }
                    }
                    _ => {}
                }
                i = next;
            }
        }
    }
    removed
}

/// What makes two `getelementptr`s or extensions the same: opcode, result type, flags (the source
/// element type and no-wrap flags of an address, `nneg` of a `zext`) and operands.
///
/// # Safety
/// `i` is a live instruction with that `opcode`.
unsafe fn computation(i: LLVMValueRef, opcode: LLVMOpcode) -> Vec<usize> {
    // SAFETY: `i`'s type, flags and operands are read.
    unsafe {
        let (a, b) = match opcode {
            LLVMOpcode::LLVMGetElementPtr => {
                (LLVMGetGEPSourceElementType(i) as usize, LLVMGEPGetNoWrapFlags(i) as usize)
            }
            LLVMOpcode::LLVMZExt => (0, LLVMGetNNeg(i) as usize),
            _ => (0, 0),
        };
        let n = LLVMGetNumOperands(i).max(0) as u32;
        let mut key = Vec::with_capacity(4 + n as usize);
        key.extend([opcode as usize, LLVMTypeOf(i) as usize, a, b]);
        key.extend((0..n).map(|k| LLVMGetOperand(i, k) as usize));
        key
    }
}

/// Whether every use of `slot` is a plain load from it or a plain store of another value into it.
///
/// # Safety
/// `slot` is a live `alloca`.
unsafe fn only_loaded_and_stored(slot: LLVMValueRef) -> bool {
    // SAFETY: the use list of a live value, and its users' operands and flags, are read.
    unsafe {
        let plain = |i: LLVMValueRef| {
            LLVMGetVolatile(i) == 0 && LLVMGetOrdering(i) == LLVMAtomicOrdering::LLVMAtomicOrderingNotAtomic
        };
        let mut u = LLVMGetFirstUse(slot);
        while !u.is_null() {
            let user = LLVMGetUser(u);
            let ok = !LLVMIsAInstruction(user).is_null()
                && match LLVMGetInstructionOpcode(user) {
                    LLVMOpcode::LLVMLoad => plain(user),
                    LLVMOpcode::LLVMStore => LLVMGetOperand(user, 0) != slot && plain(user),
                    _ => false,
                };
            if !ok {
                return false;
            }
            u = LLVMGetNextUse(u);
        }
        true
    }
}

/// Whether `f` calls something that returns twice (`setjmp`): a value kept in a register across the call
/// would be stale when it returns the second time.
///
/// # Safety
/// `f` is a live function definition.
unsafe fn returns_twice_inside(f: LLVMValueRef) -> bool {
    // SAFETY: `f`'s instructions are read, and `returns_twice` is asked of its calls.
    unsafe {
        for block in super::tier::blocks_of(f) {
            let mut i = LLVMGetFirstInstruction(block);
            while !i.is_null() {
                if matches!(
                    LLVMGetInstructionOpcode(i),
                    LLVMOpcode::LLVMCall | LLVMOpcode::LLVMInvoke | LLVMOpcode::LLVMCallBr
                ) && super::osr::returns_twice(i)
                {
                    return true;
                }
                i = LLVMGetNextInstruction(i);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inkwell::context::Context;
    use inkwell::memory_buffer::MemoryBuffer;

    fn cleaned(text: &str) -> (Removed, String) {
        let context = Context::create();
        let buffer = MemoryBuffer::create_from_memory_range_copy(text.as_bytes(), "m");
        let module = context.create_module_from_ir(buffer).unwrap();
        let removed = clean_up(&module, &[]);
        module.verify().unwrap();
        (removed, module.print_to_string().to_string())
    }

    #[test]
    fn a_load_reuses_what_its_block_stored_or_loaded() {
        let (removed, ir) = cleaned(
            "define i32 @f(i32 %x) {\nentry:\n  %a = alloca i32\n  store i32 %x, ptr %a\n  \
             %l1 = load i32, ptr %a\n  %l2 = load i32, ptr %a\n  %s = add i32 %l1, %l2\n  br label %next\n\
             next:\n  %l3 = load i32, ptr %a\n  %l4 = load i32, ptr %a\n  %t = add i32 %l3, %l4\n  \
             store i32 %t, ptr %a\n  %l5 = load i32, ptr %a\n  %u = add i32 %s, %l5\n  ret i32 %u\n}\n",
        );
        assert_eq!(removed, Removed { loads: 4, computations: 0 }, "{ir}");
        assert!(ir.contains("%s = add i32 %x, %x"), "{ir}");
        // The next block loads again (its first load), then reuses that and what it stores.
        assert!(ir.contains("%l3 = load i32, ptr %a"), "{ir}");
        assert!(ir.contains("%t = add i32 %l3, %l3"), "{ir}");
        assert!(ir.contains("%u = add i32 %s, %t"), "{ir}");
        assert_eq!(ir.matches("store").count(), 2, "every store stays: {ir}");
    }

    #[test]
    fn an_address_or_extension_computed_twice_in_a_block_is_computed_once() {
        let (removed, ir) = cleaned(
            "%S = type { i32, [4 x i32] }\n\
             define i32 @f(ptr %s, i32 %i) {\nentry:\n  %sp = alloca ptr\n  store ptr %s, ptr %sp\n  \
             %s1 = load ptr, ptr %sp\n  %x = sext i32 %i to i64\n  \
             %p = getelementptr inbounds %S, ptr %s1, i32 0, i32 1, i64 %x\n  %v = load i32, ptr %p\n  \
             %s2 = load ptr, ptr %sp\n  %y = sext i32 %i to i64\n  \
             %q = getelementptr inbounds %S, ptr %s2, i32 0, i32 1, i64 %y\n  %w = load i32, ptr %q\n  \
             %r = getelementptr %S, ptr %s2, i32 0, i32 1, i64 %y\n  %u = load i32, ptr %r\n  \
             %z = zext nneg i32 %i to i64\n  %z2 = zext i32 %i to i64\n  %zs = add i64 %z, %z2\n  \
             %zt = trunc i64 %zs to i32\n  \
             %a = add i32 %v, %w\n  %b = add i32 %a, %u\n  %c = add i32 %b, %zt\n  ret i32 %c\n}\n",
        );
        // Both loads of `%sp` are `%s`, so `%y` is `%x` and `%q` is `%p`; `%r` lacks `inbounds` and
        // `%z2` lacks `nneg`.
        assert_eq!(removed, Removed { loads: 2, computations: 2 }, "{ir}");
        assert!(ir.contains("%p = getelementptr inbounds %S, ptr %s, i32 0, i32 1, i64 %x"), "{ir}");
        assert!(ir.contains("%w = load i32, ptr %p"), "{ir}");
        assert!(ir.contains("%r = getelementptr %S, ptr %s, i32 0, i32 1, i64 %x"), "{ir}");
        assert!(ir.contains("%zs = add i64 %z, %z2"), "{ir}");
        assert_eq!(ir.matches("load i32").count(), 3, "memory is read as often as before: {ir}");
    }

    #[test]
    fn a_slot_something_else_may_change_or_read_differently_is_left() {
        let (removed, ir) = cleaned(
            "declare void @g(ptr)\ndeclare i32 @setjmp(ptr) returns_twice\n\
             define i32 @escapes() {\n  %a = alloca i32\n  store i32 1, ptr %a\n  call void @g(ptr %a)\n  \
             %1 = load i32, ptr %a\n  %2 = load i32, ptr %a\n  %s = add i32 %1, %2\n  ret i32 %s\n}\n\
             define i32 @volatile() {\n  %a = alloca i32\n  store i32 1, ptr %a\n  \
             %1 = load volatile i32, ptr %a\n  %2 = load i32, ptr %a\n  %s = add i32 %1, %2\n  ret i32 %s\n}\n\
             define i32 @atomic() {\n  %a = alloca i32\n  store atomic i32 1, ptr %a seq_cst, align 4\n  \
             %1 = load i32, ptr %a\n  ret i32 %1\n}\n\
             define i8 @punned() {\n  %a = alloca i32\n  store i32 258, ptr %a\n  %1 = load i8, ptr %a\n  \
             ret i8 %1\n}\n\
             define i32 @jumps(ptr %buf) {\n  %a = alloca i32\n  store i32 1, ptr %a\n  \
             %r = call i32 @setjmp(ptr %buf)\n  %1 = load i32, ptr %a\n  ret i32 %1\n}\n",
        );
        assert_eq!(removed, Removed::default(), "{ir}");
    }
}
