//! Function signatures as the IR states them, and the Rust types that stand for them.
//!
//! The compiler records the IR type of every function a module defines (a [`Signature`]). A typed lookup
//! names a Rust function-pointer type such as `fn(i64, f64) -> i32`; [`JitSignature`] turns that type into a
//! [`Signature`], and the lookup succeeds only when the two are equal. That check is what makes
//! [`Func::call`](crate::Func) safe to call: the machine-level calling convention of the IR function and
//! of the `extern "C"` function pointer genjit calls it through are then the same.
//!
//! Only scalar types cross: integers of 8 to 64 bits (signedness is the caller's choice, as in C), `float`,
//! `double` and pointers. Aggregates, `i1`, `i128`, vectors and varargs functions are refused at lookup;
//! such functions can still be reached through an address lookup. Everything else that changes how
//! arguments travel is part of the signature too, so it takes part in the comparison: the calling
//! convention (a Rust `extern "C"` function pointer is LLVM's `ccc`, number 0; a `ghccc` or `fastcc`
//! function never matches) and ABI-changing parameter attributes (`byval`, `sret`, `inreg`, `inalloca`,
//! ...), which make the parameter's type an [`IrType::Other`] that no Rust type stands for.

use std::fmt;

/// A scalar IR type that can cross between Rust and JIT code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValType {
    /// `i8`
    I8,
    /// `i16`
    I16,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `float`
    F32,
    /// `double`
    F64,
    /// `ptr`
    Ptr,
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValType::I8 => "i8",
            ValType::I16 => "i16",
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "float",
            ValType::F64 => "double",
            ValType::Ptr => "ptr",
        })
    }
}

/// An IR parameter or return type: a crossable scalar, or anything else (kept by its IR spelling).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IrType {
    /// A scalar Rust can pass.
    Val(ValType),
    /// Any other type, e.g. `{ i64, i64 }` or `i1`.
    Other(String),
}

impl fmt::Display for IrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IrType::Val(v) => v.fmt(f),
            IrType::Other(s) => f.write_str(s),
        }
    }
}

/// A function's IR signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Signature {
    /// Parameter types.
    pub params: Vec<IrType>,
    /// Return type; `None` for `void`.
    pub ret: Option<IrType>,
    /// Whether the function takes `...`.
    pub varargs: bool,
    /// LLVM's calling-convention number: 0 is C (`ccc`), what every Rust `extern "C"` function uses.
    pub call_conv: u32,
}

/// LLVM's number for the C calling convention.
pub const C_CALL_CONV: u32 = 0;

impl Signature {
    /// A C-calling-convention signature.
    pub fn new(params: Vec<IrType>, ret: Option<IrType>, varargs: bool) -> Signature {
        Signature { params, ret, varargs, call_conv: C_CALL_CONV }
    }

    /// The same signature under calling convention `call_conv`.
    pub fn with_call_conv(mut self, call_conv: u32) -> Signature {
        self.call_conv = call_conv;
        self
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.call_conv != C_CALL_CONV {
            write!(f, "cc {} ", self.call_conv)?;
        }
        match &self.ret {
            Some(r) => write!(f, "{r} (")?,
            None => f.write_str("void (")?,
        }
        for (i, p) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{p}")?;
        }
        if self.varargs {
            f.write_str(if self.params.is_empty() { "..." } else { ", ..." })?;
        }
        f.write_str(")")
    }
}

/// A Rust type that is passed exactly like an IR scalar under the C calling convention.
///
/// # Safety
/// - `TYPE` must be the IR type whose C-ABI passing (register class and width) matches `Self`'s.
pub unsafe trait JitType: Copy + 'static {
    /// The IR type this Rust type stands for.
    const TYPE: ValType;
}

macro_rules! jit_types {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        // SAFETY: same size and register class as the named IR scalar under the System V x86-64 ABI.
        unsafe impl JitType for $t { const TYPE: ValType = ValType::$v; }
    )*};
}
jit_types!(i8 => I8, u8 => I8, i16 => I16, u16 => I16, i32 => I32, u32 => I32, i64 => I64, u64 => I64,
    isize => I64, usize => I64, f32 => F32, f64 => F64);

// SAFETY: pointers are passed as 64-bit integers, like IR `ptr`.
unsafe impl<T: 'static> JitType for *const T {
    const TYPE: ValType = ValType::Ptr;
}
// SAFETY: as above.
unsafe impl<T: 'static> JitType for *mut T {
    const TYPE: ValType = ValType::Ptr;
}

/// A Rust return type: a [`JitType`] or `()` for `void`.
///
/// # Safety
/// - `TYPE` must match `Self` as in [`JitType`]; `None` only for `()`.
pub unsafe trait JitReturn: Copy + 'static {
    /// The IR return type, `None` for `void`.
    const TYPE: Option<ValType>;
}

// SAFETY: `()` is returned as nothing, like `void`.
unsafe impl JitReturn for () {
    const TYPE: Option<ValType> = None;
}
// SAFETY: forwarded from `JitType`'s contract.
unsafe impl<T: JitType> JitReturn for T {
    const TYPE: Option<ValType> = Some(T::TYPE);
}

/// A Rust function-pointer type naming a JIT function's signature, e.g. `fn(i64, i64) -> i64`.
///
/// Implemented for `fn(A, ...) -> R` of up to six [`JitType`] parameters. The type is used only as a marker;
/// genjit calls the code through the matching `extern "C" fn` type.
pub trait JitSignature: Copy + Send + Sync + 'static {
    /// The signature this type stands for.
    fn signature() -> Signature;
}

macro_rules! jit_signature {
    ($($a:ident),*) => {
        impl<R: JitReturn, $($a: JitType),*> JitSignature for fn($($a),*) -> R {
            fn signature() -> Signature {
                Signature::new(vec![$(IrType::Val($a::TYPE)),*], R::TYPE.map(IrType::Val), false)
            }
        }
    };
}
jit_signature!();
jit_signature!(A);
jit_signature!(A, B);
jit_signature!(A, B, C);
jit_signature!(A, B, C, D);
jit_signature!(A, B, C, D, E);
jit_signature!(A, B, C, D, E, F);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_types_spell_their_ir_signature() {
        let s = <fn(i64, *const u8, f64) -> i32>::signature();
        assert_eq!(s.to_string(), "i32 (i64, ptr, double)");
        assert_eq!(<fn()>::signature().to_string(), "void ()");
        let ghc = <fn(i64) -> i64>::signature().with_call_conv(10);
        assert_eq!(ghc.to_string(), "cc 10 i64 (i64)");
        assert_ne!(ghc, <fn(i64) -> i64>::signature());
    }
}
