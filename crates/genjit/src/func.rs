//! Typed handles to JIT functions, safe to call.
//!
//! A [`Func<S>`] is what a typed lookup returns: the function's entry (see `runtime::entry`), checked against
//! its IR signature when it was looked up (see [`Signature`](crate::Signature)). The entry's signature is fixed for its
//! life (a redefinition may not change it), so the check stays true across redefinitions.
//!
//! A call pins the thread in the function's dylib (see [`Pinned`]: two plain stores), loads the entry's
//! slot and calls the address: whatever body the slot held at that moment stays mapped until the call
//! returns, even if another thread redefines or removes the function meanwhile. Calling a removed
//! function panics (it never runs freed memory). Host functions need no pin.
//!
//! ```compile_fail
//! // A handle's signature is fixed by its type: it cannot be called with other arguments.
//! fn wrong(f: genjit::Func<fn(i64) -> i64>) { f.call(1.5); }
//! ```

use crate::runtime::entry::Entry;
use crate::runtime::reclaim::{Domain, Pinned};
use crate::signature::{JitReturn, JitSignature, JitType};
use std::marker::PhantomData;
use std::sync::Arc;

#[derive(Clone)]
enum Callee {
    /// A JIT function: its entry, and the JIT's reclamation domain a call pins (the entry's scope).
    Entry(Arc<Entry>, Arc<Domain>),
    Host(usize),
}

/// A JIT function whose IR signature matched the Rust type `S` (e.g. `fn(i64, i64) -> i64`).
///
/// Cheap to clone and `Send + Sync`: hand it to any thread. It follows redefinitions of the function.
///
/// ```
/// let jit = genjit::Jit::new()?;
/// let db = jit.create_dylib("db")?;
/// db.add_module(genjit::Source::ir_text("define i64 @v() {\n  ret i64 1\n}\n"))?;
/// let v = db.lookup::<fn() -> i64>("v")?;
/// let worker = { let v = v.clone(); std::thread::spawn(move || v.call()) };
/// assert_eq!(worker.join().unwrap(), 1);
/// db.add_module(genjit::Source::ir_text("define i64 @v() {\n  ret i64 2\n}\n"))?; // redefine
/// assert_eq!(v.call(), 2);
/// # Ok::<(), genjit::Error>(())
/// ```
pub struct Func<S: JitSignature> {
    callee: Callee,
    _sig: PhantomData<S>,
}

// A panic while a `Func` is borrowed (e.g. calling a removed function) leaves nothing half-updated: the
// entry's state changes only under its dylib's link lock, in steps that are complete at every unlock.
impl<S: JitSignature> std::panic::UnwindSafe for Func<S> {}
impl<S: JitSignature> std::panic::RefUnwindSafe for Func<S> {}

impl<S: JitSignature> Clone for Func<S> {
    fn clone(&self) -> Self {
        Func { callee: self.callee.clone(), _sig: PhantomData }
    }
}

impl<S: JitSignature> std::fmt::Debug for Func<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.callee {
            Callee::Entry(e, _) => f.debug_struct("Func").field("entry", e).finish(),
            Callee::Host(a) => f.debug_struct("Func").field("host", &format_args!("{a:#x}")).finish(),
        }
    }
}

impl<S: JitSignature> Func<S> {
    /// Only a lookup, after checking `S` against the entry's signature, creates a handle.
    pub(crate) fn entry(entry: Arc<Entry>, domain: Arc<Domain>) -> Func<S> {
        Func { callee: Callee::Entry(entry, domain), _sig: PhantomData }
    }

    /// Only a lookup, after checking `S` against the host function's recorded signature, creates a handle.
    pub(crate) fn host(addr: usize) -> Func<S> {
        Func { callee: Callee::Host(addr), _sig: PhantomData }
    }

    /// The function's stable address (its entry's stub, which JIT code sees too).
    pub fn addr(&self) -> usize {
        match &self.callee {
            Callee::Entry(e, _) => e.stub(),
            Callee::Host(a) => *a,
        }
    }

    /// Pins the calling thread for this function's dylib (and what it reaches), for many calls in a row
    /// with [`call_pinned`](Self::call_pinned). `None` for a host function, which needs no pin.
    pub fn pin(&self) -> Option<Pinned<'_>> {
        match &self.callee {
            Callee::Entry(e, domain) => Some(domain.pin(e.scope())),
            Callee::Host(_) => None,
        }
    }

    /// The address of the body the function's entry points at now (`None` if removed). The body stays
    /// mapped while `pinned` lives, even if the function is redefined meanwhile, provided `pinned`
    /// covers the function's dylib (a pin of another JIT, or of a dylib that cannot reach this one, does
    /// not: then this takes its own pin and the address may be freed as soon as it returns) and the
    /// address stays on this thread's stack or in its registers (precise reclamation frees a superseded
    /// body no thread holds an address of: see [`JitBuilder::handshake_after`](crate::JitBuilder)). For
    /// profilers and debuggers, and for measuring the entry's cost: calling it needs `unsafe`.
    pub fn current_address(&self, pinned: &Pinned<'_>) -> Option<usize> {
        match &self.callee {
            Callee::Entry(e, domain) if !pinned.covers(domain, e.scope()) => {
                self.target(&domain.pin(e.scope()))
            }
            _ => self.target(pinned),
        }
    }

    /// Whether the function was removed (calls would panic).
    pub fn is_removed(&self) -> bool {
        match &self.callee {
            Callee::Entry(e, domain) => self.target(&domain.pin(e.scope())).is_none(),
            Callee::Host(_) => false,
        }
    }

    /// The address to call under `pinned`, or `None` if the function was removed. `pinned` must cover
    /// the entry's scope.
    #[inline]
    fn target(&self, pinned: &Pinned<'_>) -> Option<usize> {
        match &self.callee {
            Callee::Entry(e, _) => Some(e.enter(pinned)).filter(|&a| a != e.tombstone()),
            Callee::Host(a) => Some(*a),
        }
    }

    #[cold]
    #[inline(never)]
    fn removed(&self) -> ! {
        match &self.callee {
            Callee::Entry(e, _) => {
                let (dylib, name) = e.names();
                panic!("genjit: `{name}` of dylib `{dylib}` was removed; it can no longer be called")
            }
            Callee::Host(_) => unreachable!("host functions are never removed"),
        }
    }
}

macro_rules! func_call {
    ($($a:ident : $t:ident),*) => {
        impl<R: JitReturn, $($t: JitType),*> Func<fn($($t),*) -> R> {
            /// Calls the function (pinning the thread in its dylib for the call's duration).
            ///
            /// # Panics
            /// If the function was removed.
            #[allow(clippy::too_many_arguments)]
            #[inline]
            pub fn call(&self, $($a: $t),*) -> R {
                match self.try_call($($a),*) {
                    Some(r) => r,
                    None => self.removed(),
                }
            }

            /// Calls the function under a pin the caller already holds (cheaper in a loop of calls). A
            /// pin that does not cover the function's dylib (see [`Func::pin`]) is widened for the call.
            ///
            /// # Panics
            /// If the function was removed.
            #[allow(clippy::too_many_arguments)]
            #[inline]
            pub fn call_pinned(&self, pinned: &Pinned, $($a: $t),*) -> R {
                match self.try_call_pinned(pinned, $($a),*) {
                    Some(r) => r,
                    None => self.removed(),
                }
            }

            /// Calls the function unless it was removed (`None`): checking and calling are one step, so a
            /// removal on another thread cannot slip in between.
            #[allow(clippy::too_many_arguments)]
            #[inline]
            pub fn try_call(&self, $($a: $t),*) -> Option<R> {
                match &self.callee {
                    Callee::Entry(e, domain) => {
                        let pinned = domain.pin(e.scope());
                        self.call_covered(&pinned, $($a),*)
                    }
                    Callee::Host(_) => self.call_host($($a),*),
                }
            }

            /// [`try_call`](Self::try_call) under a pin the caller already holds.
            #[allow(clippy::too_many_arguments)]
            #[inline]
            pub fn try_call_pinned(&self, pinned: &Pinned<'_>, $($a: $t),*) -> Option<R> {
                match &self.callee {
                    Callee::Entry(e, domain) if !pinned.covers(domain, e.scope()) => {
                        // Nested: widens this thread's pin in `domain` for the call.
                        let own = domain.pin(e.scope());
                        self.call_covered(&own, $($a),*)
                    }
                    Callee::Entry(..) => self.call_covered(pinned, $($a),*),
                    Callee::Host(_) => self.call_host($($a),*),
                }
            }

            #[allow(clippy::too_many_arguments)]
            #[inline(always)]
            fn call_covered(&self, pinned: &Pinned<'_>, $($a: $t),*) -> Option<R> {
                let addr = self.target(pinned)?;
                // SAFETY: the lookup checked that the entry's (fixed) IR signature is exactly this C
                // signature (each `JitType` passes like its IR scalar), and every body an entry points at
                // has the entry's signature (a redefinition cannot change it). `pinned` covers the
                // entry's scope, which keeps the body at `addr` mapped until it is dropped.
                let f = unsafe { std::mem::transmute::<usize, extern "C" fn($($t),*) -> R>(addr) };
                Some(f($($a),*))
            }

            #[allow(clippy::too_many_arguments)]
            #[inline(always)]
            fn call_host(&self, $($a: $t),*) -> Option<R> {
                let Callee::Host(addr) = self.callee else { return None };
                // SAFETY: the lookup checked the host function's recorded signature against this one;
                // host functions live as long as the process.
                let f = unsafe { std::mem::transmute::<usize, extern "C" fn($($t),*) -> R>(addr) };
                Some(f($($a),*))
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

/// A host function that JIT code may call: any safe `extern "C" fn` of up to six [`JitType`] parameters.
///
/// Defining it records its signature, so a Rust typed lookup of the name is checked (JIT code's declared
/// type is the IR author's responsibility, as in C). The trait is *sealed*: only Rust function pointers
/// implement it, so the address it gives is always a function with that signature.
///
/// ```compile_fail
/// // Nothing else can claim to be a host function (the bogus address would be called by safe code).
/// #[derive(Clone, Copy)]
/// struct Bogus;
/// impl genjit::HostFn for Bogus {
///     fn addr(self) -> usize { 0xdead }
///     fn signature() -> genjit::Signature { <fn() as genjit::JitSignature>::signature() }
/// }
/// ```
pub trait HostFn: sealed::Sealed + Copy + Send + Sync + 'static {
    /// The function's address.
    fn addr(self) -> usize;
    /// Its signature.
    fn signature() -> crate::Signature;
}

mod sealed {
    /// Implemented only for `extern "C" fn` pointers of [`JitType`](crate::JitType)s.
    pub trait Sealed {}
}

macro_rules! host_fn {
    ($($t:ident),*) => {
        impl<R: JitReturn, $($t: JitType),*> sealed::Sealed for extern "C" fn($($t),*) -> R {}
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
