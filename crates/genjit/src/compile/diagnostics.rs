//! LLVM's diagnostics, caught instead of printed.
//!
//! Without a handler on its context, LLVM prints an error diagnostic (an inline-asm string with an invalid
//! instruction, garbage module-level asm, ...) to stderr and calls `exit(1)`: bad input would end the
//! host. Every compile installs a [`Diagnostics`] collector on its fresh context; errors are collected with
//! LLVM's message (and source line, for asm) and the compile then fails with a typed error. Warnings go to
//! `tracing` (WARN); remarks and notes are dropped. What LLVM can only report fatally (`report_fatal_error`,
//! e.g. "Cannot select" for another target's intrinsic) never reaches a handler: see isolated compilation.

use inkwell::context::Context;
use inkwell::llvm_sys::core::{
    LLVMContextSetDiagnosticHandler, LLVMDisposeMessage, LLVMGetDiagInfoDescription, LLVMGetDiagInfoSeverity,
};
use inkwell::llvm_sys::prelude::LLVMDiagnosticInfoRef;
use inkwell::llvm_sys::LLVMDiagnosticSeverity;
use std::cell::RefCell;
use std::ffi::{c_void, CStr};

/// Error messages LLVM reported on one context.
#[derive(Default)]
pub(crate) struct Diagnostics {
    errors: RefCell<Vec<String>>,
}

extern "C" fn handle(info: LLVMDiagnosticInfoRef, collector: *mut c_void) {
    // SAFETY: `collector` is the `Diagnostics` that `install` registered, which outlives the context (the
    // contract of `install`); LLVM calls the handler on the thread using the context, and only shared
    // references to the collector exist meanwhile (its `RefCell` guards the vector).
    let diagnostics = unsafe { &*(collector as *const Diagnostics) };
    // SAFETY: `info` is valid for the duration of the call.
    let severity = unsafe { LLVMGetDiagInfoSeverity(info) };
    // Remarks and notes are dropped before their text is made (LLVM sends optimization remarks, such as
    // FastISel's misses, through the same handler).
    if !matches!(severity, LLVMDiagnosticSeverity::LLVMDSError | LLVMDiagnosticSeverity::LLVMDSWarning) {
        return;
    }
    // SAFETY: `info` is valid for the duration of the call; the description is an owned C string that is
    // copied and then disposed once.
    let message = unsafe {
        let text = LLVMGetDiagInfoDescription(info);
        let message = CStr::from_ptr(text).to_string_lossy().trim_end().to_string();
        LLVMDisposeMessage(text);
        message
    };
    match severity {
        LLVMDiagnosticSeverity::LLVMDSError => diagnostics.errors.borrow_mut().push(message),
        LLVMDiagnosticSeverity::LLVMDSWarning => tracing::warn!(target: "genjit::llvm", "{message}"),
        _ => {}
    }
}

impl Diagnostics {
    /// Routes every diagnostic of `context` to `self`.
    ///
    /// # Safety
    /// - `self` outlives every use of `context` that may report a diagnostic (declare it before the
    ///   context, so it is dropped after it), and is not moved meanwhile.
    pub(crate) unsafe fn install(&self, context: &Context) {
        let collector = self as *const Diagnostics as *mut c_void;
        // SAFETY: the context is live; the handler and its argument stay valid by the caller's contract.
        unsafe { LLVMContextSetDiagnosticHandler(context.raw(), Some(handle), collector) };
    }

    /// The errors reported so far, one per line, if any.
    pub(crate) fn take_errors(&self) -> Option<String> {
        let errors = std::mem::take(&mut *self.errors.borrow_mut());
        (!errors.is_empty()).then(|| errors.join("\n"))
    }
}
