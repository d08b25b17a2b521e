//! Typed handles to JIT functions, safe to call.
//!
//! A [`Func<S>`] is what a typed lookup returns: the function's address, checked against its IR signature
//! when it was looked up (see [`crate::signature`]), and a strong reference to the module that holds the
//! code, so the code cannot be freed while the handle exists. Calling it is an ordinary `extern "C"` call.
//!
//! ```compile_fail
//! // A handle's signature is fixed by its type: it cannot be called with other arguments.
//! fn wrong(f: genjit::Func<fn(i64) -> i64>) { f.call(1.5); }
//! ```

use crate::module::LoadedModule;
use crate::signature::{JitReturn, JitSignature, JitType};
use std::marker::PhantomData;
use std::sync::Arc;

/// A JIT function whose IR signature matched the Rust type `S` (e.g. `fn(i64, i64) -> i64`).
pub struct Func<S: JitSignature> {
    addr: usize,
    module: Option<Arc<LoadedModule>>,
    _sig: PhantomData<S>,
}

impl<S: JitSignature> Clone for Func<S> {
    fn clone(&self) -> Self {
        Func { addr: self.addr, module: self.module.clone(), _sig: PhantomData }
    }
}

impl<S: JitSignature> std::fmt::Debug for Func<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Func")
            .field("addr", &format_args!("{:#x}", self.addr))
            .field("module", &self.module.as_ref().map(|m| m.name()))
            .finish()
    }
}

impl<S: JitSignature> Func<S> {
    /// Only the lookup, after checking `S` against the IR signature, creates a handle.
    pub(crate) fn new(addr: usize, module: Option<Arc<LoadedModule>>) -> Func<S> {
        Func { addr, module, _sig: PhantomData }
    }

    /// The function's address.
    pub fn addr(&self) -> usize {
        self.addr
    }
}

macro_rules! func_call {
    ($($a:ident : $t:ident),*) => {
        impl<R: JitReturn, $($t: JitType),*> Func<fn($($t),*) -> R> {
            /// Calls the function.
            #[allow(clippy::too_many_arguments)]
            pub fn call(&self, $($a: $t),*) -> R {
                // SAFETY: the lookup checked that the IR function at `addr` has exactly this C signature
                // (each `JitType` passes like its IR scalar), and `self.module` keeps its code mapped
                // (host functions need no keeping).
                let f = unsafe { std::mem::transmute::<usize, extern "C" fn($($t),*) -> R>(self.addr) };
                f($($a),*)
            }
        }
    };
}
func_call!();
func_call!(a: A);
func_call!(a: A, b: B);
func_call!(a: A, b: B, c: C);
func_call!(a: A, b: B, c: C, d: D);
func_call!(a: A, b: B, c: C, d: D, e: E);
func_call!(a: A, b: B, c: C, d: D, e: E, f: F);

/// A host function that JIT code may call: any `extern "C" fn` of up to six [`JitType`] parameters.
///
/// Defining it records its signature, so JIT code's declared type is not checked against it, but a Rust
/// typed lookup of the name is.
pub trait HostFn: Copy + Send + Sync + 'static {
    /// The function's address.
    fn addr(self) -> usize;
    /// Its signature.
    fn signature() -> crate::Signature;
}

macro_rules! host_fn {
    ($($t:ident),*) => {
        impl<R: JitReturn, $($t: JitType),*> HostFn for extern "C" fn($($t),*) -> R {
            fn addr(self) -> usize {
                self as usize
            }
            fn signature() -> crate::Signature {
                <fn($($t),*) -> R as JitSignature>::signature()
            }
        }
    };
}
host_fn!();
host_fn!(A);
host_fn!(A, B);
host_fn!(A, B, C);
host_fn!(A, B, C, D);
host_fn!(A, B, C, D, E);
host_fn!(A, B, C, D, E, F);
