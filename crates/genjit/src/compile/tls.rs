//! Thread-local variables in JIT code, compile-time half: the IR rewrite.
//!
//! ELF thread-locals assume the dynamic linker laid out every module's TLS block when the thread started
//! (local-exec, initial-exec) or that `__tls_get_addr` knows the module's TLS index (general-dynamic). A JIT
//! that adds modules to running threads has neither, so genjit rewrites thread-locals in the IR instead.
//! Every `thread_local` global becomes an ordinary global: its contents are now the *template*, the image
//! each thread's copy starts from. Every access, which clang 16+ routes through
//! `llvm.threadlocal.address(@g)`, becomes `__genjit_tls_get(@g, size, align)`. A direct instruction operand
//! (older IR) gets the same call inserted before it. A use inside a constant expression or a phi cannot be
//! rewritten this way and is a typed error, and the module is left as it was.
//!
//! The run-time half, which serves each thread its copy, is `runtime::tls`.
//!
//! The rewrite walks use lists through LLVM's C API rather than inkwell's `BasicValueUse::get_user`,
//! which classifies each user by its type and panics on token- and label-typed values: valid IR from an
//! untrusted source must not be able to panic through `add_module`.

use crate::error::{Error, Result};
use crate::runtime::tls::TLS_GET;
use inkwell::llvm_sys::core::*;
use inkwell::llvm_sys::prelude::*;
use inkwell::llvm_sys::target::{LLVMABIAlignmentOfType, LLVMABISizeOfType, LLVMGetModuleDataLayout};
use inkwell::module::Module;
use std::ffi::CString;

fn value_name(v: LLVMValueRef) -> String {
    let mut len = 0;
    // SAFETY: `v` is a live value of the module being rewritten; LLVM returns a pointer/length pair into it.
    let ptr = unsafe { LLVMGetValueName2(v, &mut len) };
    // SAFETY: as above, `len` bytes are readable at `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    String::from_utf8_lossy(bytes).into_owned()
}

/// Rewrites every thread-local of `module` to the per-thread runtime (see the module docs).
pub(crate) fn rewrite_module(module: &Module<'_>, module_name: &str) -> Result<()> {
    let m = module.as_mut_ptr();
    let mut tls = Vec::new();
    // SAFETY: `m` is a live module owned by `module`, borrowed for this call; iterating its globals only reads.
    let mut g = unsafe { LLVMGetFirstGlobal(m) };
    while !g.is_null() {
        // SAFETY: `g` is a global of `m`.
        if unsafe { LLVMIsThreadLocal(g) } != 0 {
            tls.push(g);
        }
        // SAFETY: as above.
        g = unsafe { LLVMGetNextGlobal(g) };
    }
    if tls.is_empty() {
        return Ok(());
    }
    let rewriter = Rewriter::new(m);
    let result = tls.iter().try_for_each(|&g| rewriter.rewrite_global(g, module_name));
    rewriter.dispose();
    result
}

struct Rewriter {
    module: LLVMModuleRef,
    builder: LLVMBuilderRef,
    func: LLVMValueRef,
    fn_ty: LLVMTypeRef,
    i64_ty: LLVMTypeRef,
}

impl Rewriter {
    fn new(module: LLVMModuleRef) -> Rewriter {
        // SAFETY: `module` is live for the rewrite; every call below creates or reads objects in its context.
        unsafe {
            let ctx = LLVMGetModuleContext(module);
            let ptr_ty = LLVMPointerTypeInContext(ctx, 0);
            let i64_ty = LLVMInt64TypeInContext(ctx);
            let mut params = [ptr_ty, i64_ty, i64_ty];
            let fn_ty = LLVMFunctionType(ptr_ty, params.as_mut_ptr(), 3, 0);
            let name = CString::new(TLS_GET).expect("no NUL in the runtime's name");
            let mut func = LLVMGetNamedFunction(module, name.as_ptr());
            if func.is_null() {
                func = LLVMAddFunction(module, name.as_ptr(), fn_ty);
            }
            let builder = LLVMCreateBuilderInContext(ctx);
            Rewriter { module, builder, func, fn_ty, i64_ty }
        }
    }

    fn dispose(self) {
        // SAFETY: the builder was created in `new` and is disposed once.
        unsafe { LLVMDisposeBuilder(self.builder) }
    }

    fn rewrite_global(&self, g: LLVMValueRef, module_name: &str) -> Result<()> {
        let unsupported = |reason: &str| Error::UnsupportedThreadLocal {
            module: module_name.to_string(),
            symbol: value_name(g),
            reason: reason.to_string(),
        };
        let mut users = Vec::new();
        // SAFETY: `g` is a global of the live module; walking its use list only reads.
        unsafe {
            let mut u = LLVMGetFirstUse(g);
            while !u.is_null() {
                users.push(LLVMGetUser(u));
                u = LLVMGetNextUse(u);
            }
        }
        users.dedup();
        // Check every use before changing anything, so a refused module is left as it was.
        for &user in &users {
            // SAFETY: `user` is a live value of the module.
            unsafe {
                if LLVMIsAInstruction(user).is_null() {
                    return Err(unsupported("is used inside a constant expression or initializer"));
                }
                if !LLVMIsAPHINode(user).is_null() {
                    return Err(unsupported("is used directly by a phi node"));
                }
            }
        }
        let (size, align) = self.layout_of(g);
        for user in users {
            self.rewrite_use(g, user, size, align);
        }
        // SAFETY: `g` is a live global; it is now an ordinary global holding the template.
        unsafe { LLVMSetThreadLocal(g, 0) };
        Ok(())
    }

    fn layout_of(&self, g: LLVMValueRef) -> (u64, u64) {
        // SAFETY: the module's data layout was set from the target machine before the rewrite; `g` is live.
        unsafe {
            let td = LLVMGetModuleDataLayout(self.module);
            let ty = LLVMGlobalGetValueType(g);
            let size = LLVMABISizeOfType(td, ty);
            let align = u64::from(LLVMABIAlignmentOfType(td, ty)).max(u64::from(LLVMGetAlignment(g)));
            (size, align.max(1))
        }
    }

    fn rewrite_use(&self, g: LLVMValueRef, user: LLVMValueRef, size: u64, align: u64) {
        // SAFETY: `user` is an instruction (checked by the caller) of a function of the live module; the
        // builder inserts a call just before it, and the call's type matches `__genjit_tls_get`.
        unsafe {
            LLVMPositionBuilderBefore(self.builder, user);
            let mut args = [g, LLVMConstInt(self.i64_ty, size, 0), LLVMConstInt(self.i64_ty, align, 0)];
            let call =
                LLVMBuildCall2(self.builder, self.fn_ty, self.func, args.as_mut_ptr(), 3, c"".as_ptr());
            if is_threadlocal_address(user) {
                LLVMReplaceAllUsesWith(user, call);
                LLVMInstructionEraseFromParent(user);
                return;
            }
            for i in 0..LLVMGetNumOperands(user) {
                if LLVMGetOperand(user, i as u32) == g {
                    LLVMSetOperand(user, i as u32, call);
                }
            }
        }
    }
}

fn is_threadlocal_address(inst: LLVMValueRef) -> bool {
    // SAFETY: `inst` is a live instruction; reading its callee and the callee's name only reads.
    unsafe {
        if LLVMIsACallInst(inst).is_null() {
            return false;
        }
        let callee = LLVMGetCalledValue(inst);
        !callee.is_null() && value_name(callee).starts_with("llvm.threadlocal.address")
    }
}
