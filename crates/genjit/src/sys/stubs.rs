//! Stubs the linker writes that enter the runtime with every argument register kept (x86-64): call
//! counting and lazy compilation.
//!
//! A tiered function's entry (`runtime::entry`) first leads to its *counting stub*, which the linker
//! writes after the module's code (`link`, from the counter `__gjc.<tag>.<name>` the first tier defines),
//! and which the runtime skips once the count is over (`dylib::tiering`): .NET's call-counting stubs.
//! The stub touches no register but the flags:
//!
//! ```text
//!  0: subq $1, counter(%rip)      the count (racy: a lost decrement never skips zero)
//!  8: je   16                     the decrement that reached zero
//! 10: jmp  body                   every other call: one decrement and two jumps more than the body
//! 16: pushq 32(%rip-relative)     the stub's data address, pushed from memory (no register is free)
//! 22: jmpq *56(%rip-relative)     the counting trampoline
//! 32: .quad stub + 40             40: .quad counter   48: .quad body   56: .quad trampoline
//! ```
//!
//! A lazy function is defined in its origin by a *lazy stub*: `compile::tier::make_lazy` leaves the
//! function a declaration and defines its record `__gjz.<tag>.<name>`, and the linker defines the
//! function at a stub it writes for the record (`link`):
//!
//! ```text
//!  0: pushq 16(%rip-relative)     the record's address
//!  6: jmpq *24(%rip-relative)     the lazy trampoline
//! 16: .quad record                24: .quad trampoline
//! ```
//!
//! Both trampolines (below; one per hook) keep every register any calling convention may pass an
//! argument in: the general-purpose ones they may change, and the whole vector state with `xsave`
//! (`fxsave` where the OS has not enabled it). They call the hook with the word the stub pushed, restore
//! everything and jump to the address the hook returned, with the stack exactly as the caller left it:
//! the counting hook (`count_hook`: `dylib::tiering::genjit_hot`, then the body) and the lazy one
//! (`dylib::lazy::genjit_lazy`: the function compiled, then its entry). So any signature is forwarded,
//! variadic ones and arguments passed on the stack included. A trampoline never `ret`s to an address
//! no `call` pushed, so a shadow stack (CET) stays balanced.
//!
//! *Rejected*: counting wrappers and lazy trampolines in IR (the previous designs: LLVM generating a
//! function per counted function cost bzip2's first tier 55 M instructions of code generation, 5% of its
//! start-up; one per lazy function cost adding its modules lazily 52 M of 246 M, and a `musttail` call
//! cannot forward variadic arguments or `byval` ones, which kept those functions out of lazy
//! compilation); saving only the C convention's argument registers (ORC's resolver stubs: every other
//! convention, vector arguments in `ymm`/`zmm` and `nest`/`swifterror` registers would be clobbered).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

/// A counting stub's size in bytes (16-aligned).
pub(crate) const STUB_LEN: usize = 64;
/// Where the counting stub's data (`counter`, then `body`) starts.
const DATA: usize = 40;
/// A lazy stub's size in bytes (16-aligned).
pub(crate) const LAZY_STUB_LEN: usize = 32;

/// The `xsave` component mask the trampolines save (x87, SSE, AVX, MPX, AVX-512: everything a
/// calling convention may use, intersected with what the OS enabled), or 0 for `fxsave`.
static MASK: AtomicU32 = AtomicU32::new(0);
/// The bytes a trampoline reserves on the stack for the save area (before 64-byte alignment).
static AREA: AtomicU64 = AtomicU64::new(0);

extern "C" {
    /// The slow path of every counting stub (see the module docs); not callable from Rust.
    fn genjit_count_trampoline();
    /// The path of every lazy stub (see the module docs); not callable from Rust.
    fn genjit_lazy_trampoline();
}

/// Defines trampoline `$name`, which calls `$hook` (`extern "C" fn(usize) -> usize`). On entry `[rsp]`
/// is the word its stub pushed and `[rsp+8]` the JIT caller's return address; every register still holds
/// the call's arguments.
macro_rules! trampoline {
    ($name:literal, $hook:path) => {
        std::arch::global_asm!(
            concat!(".pushsection .text.", $name, ",\"ax\",@progbits"),
            ".p2align 4",
            concat!(".globl ", $name),
            concat!(".hidden ", $name),
            concat!(".type ", $name, ",@function"),
            concat!($name, ":"),
            "push rbp",
            "mov rbp, rsp",
            "push rax",
            "push rcx",
            "push rdx",
            "push rsi",
            "push rdi",
            "push r8",
            "push r9",
            "push r10",
            "push r11",
            "sub rsp, qword ptr [rip + {area}]",
            "and rsp, -64",
            // The XSAVE header (bytes 512..576) must hold zeros where XSAVE writes none, or XRSTOR faults.
            "xor eax, eax",
            "mov qword ptr [rsp + 512], rax",
            "mov qword ptr [rsp + 520], rax",
            "mov qword ptr [rsp + 528], rax",
            "mov qword ptr [rsp + 536], rax",
            "mov qword ptr [rsp + 544], rax",
            "mov qword ptr [rsp + 552], rax",
            "mov qword ptr [rsp + 560], rax",
            "mov qword ptr [rsp + 568], rax",
            "mov eax, dword ptr [rip + {mask}]",
            "xor edx, edx",
            "test eax, eax",
            "jz 2f",
            "xsave64 [rsp]",
            "jmp 3f",
            "2:",
            "fxsave64 [rsp]",
            "3:",
            "mov rdi, qword ptr [rbp + 8]",
            "call {hook}",
            // Where the stub pushed its word, the hook's target; then leave through it without `ret`.
            "mov qword ptr [rbp + 8], rax",
            "mov eax, dword ptr [rip + {mask}]",
            "xor edx, edx",
            "test eax, eax",
            "jz 4f",
            "xrstor64 [rsp]",
            "jmp 5f",
            "4:",
            "fxrstor64 [rsp]",
            "5:",
            "lea rsp, [rbp - 72]",
            "pop r11",
            "pop r10",
            "pop r9",
            "pop r8",
            "pop rdi",
            "pop rsi",
            "pop rdx",
            "pop rcx",
            "pop rax",
            "pop rbp",
            "lea rsp, [rsp + 8]",
            "jmp qword ptr [rsp - 8]",
            concat!(".size ", $name, ", . - ", $name),
            ".popsection",
            area = sym AREA,
            mask = sym MASK,
            hook = sym $hook,
        );
    };
}

trampoline!("genjit_count_trampoline", count_hook);
trampoline!("genjit_lazy_trampoline", crate::dylib::lazy::genjit_lazy);

/// The counting trampoline's hook: `data` is a counting stub's data (counter, body); counts the call out
/// (`genjit_hot`) and returns the body.
extern "C" fn count_hook(data: *const usize) -> usize {
    // SAFETY: `data` is the data of a counting stub written by `write_stub` (pushed by the stub itself),
    // in a code block that stays mapped while the stub runs; its two words are 8-aligned and immutable.
    let (counter, body) = unsafe { (*data, *data.add(1)) };
    crate::dylib::tiering::genjit_hot(counter as *const _);
    body
}

/// The trampolines' addresses (counting, lazy), their save area sized for this CPU first (once).
fn trampolines() -> (usize, usize) {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let (mask, size) = save_area();
        // Relaxed: the stubs that read these are written after this and published to other threads by
        // the module's publication (a lock and a release store of the entry).
        MASK.store(mask, Ordering::Relaxed);
        AREA.store(size as u64 + 64, Ordering::Relaxed);
    });
    (genjit_count_trampoline as *const () as usize, genjit_lazy_trampoline as *const () as usize)
}

/// The `xsave` mask and the save area's size in bytes (at least 576: the header is zeroed even for
/// `fxsave`, whose area is 512 bytes).
fn save_area() -> (u32, usize) {
    use std::arch::x86_64::__cpuid_count;
    let osxsave = __cpuid_count(1, 0).ecx & (1 << 27) != 0;
    if !osxsave {
        return (0, 576);
    }
    let xcr0: u32;
    // SAFETY: `xgetbv` with ECX = 0 is valid once the OS enabled XSAVE (OSXSAVE, checked above); it reads
    // XCR0 into EDX:EAX and touches nothing else.
    unsafe {
        std::arch::asm!("xgetbv", in("ecx") 0, out("eax") xcr0, out("edx") _, options(nomem, nostack));
    }
    let mask = xcr0 & 0xFF;
    let mut end = 576;
    for component in 2..8 {
        if mask & (1 << component) != 0 {
            // Leaf 0xD exists where XSAVE does: EAX is the component's size, EBX its offset.
            let leaf = __cpuid_count(0xD, component);
            end = end.max(leaf.ebx as usize + leaf.eax as usize);
        }
    }
    (mask, end)
}

/// Writes a counting stub at `stub` (its run-time address; `bytes` are its [`STUB_LEN`] bytes, seen
/// through the writable view) for the counter at `counter` and the body at `body`.
pub(crate) fn write_stub(bytes: &mut [u8], stub: usize, counter: usize, body: usize) {
    assert_eq!(bytes.len(), STUB_LEN);
    // The heap spans less than 2 GiB, so code and data are always within a 32-bit displacement.
    let rel = |to: usize, end: usize| {
        i32::try_from(to as i64 - end as i64).expect("a heap spans less than 2 GiB").to_le_bytes()
    };
    bytes.fill(0xCC);
    bytes[0..3].copy_from_slice(&[0x48, 0x83, 0x2D]);
    bytes[3..7].copy_from_slice(&rel(counter, stub + 8));
    bytes[7] = 1;
    bytes[8..10].copy_from_slice(&[0x74, 6]);
    bytes[10] = 0xE9;
    bytes[11..15].copy_from_slice(&rel(body, stub + 15));
    bytes[16..18].copy_from_slice(&[0xFF, 0x35]);
    bytes[18..22].copy_from_slice(&10i32.to_le_bytes());
    bytes[22..24].copy_from_slice(&[0xFF, 0x25]);
    bytes[24..28].copy_from_slice(&28i32.to_le_bytes());
    bytes[32..40].copy_from_slice(&((stub + DATA) as u64).to_le_bytes());
    bytes[40..48].copy_from_slice(&(counter as u64).to_le_bytes());
    bytes[48..56].copy_from_slice(&(body as u64).to_le_bytes());
    bytes[56..64].copy_from_slice(&(trampolines().0 as u64).to_le_bytes());
}

/// The body a counting stub written by [`write_stub`] leads to.
///
/// # Safety
/// - `stub` is the address of a counting stub in a module's code block that stays mapped for the call.
pub(crate) unsafe fn stub_body(stub: usize) -> usize {
    // SAFETY: per the contract, the stub's 64 bytes are mapped and readable (the code view is r-x) and
    // immutable once written; its body field is 8-aligned at `DATA + 8` (stubs are 16-aligned).
    unsafe { *((stub + DATA + 8) as *const usize) }
}

/// Writes a lazy stub (`bytes`: its [`LAZY_STUB_LEN`] bytes, seen through the writable view; the code is
/// position-independent) for the lazy function whose record is at `record`.
pub(crate) fn write_lazy_stub(bytes: &mut [u8], record: usize) {
    assert_eq!(bytes.len(), LAZY_STUB_LEN);
    bytes.fill(0xCC);
    bytes[0..2].copy_from_slice(&[0xFF, 0x35]);
    bytes[2..6].copy_from_slice(&10i32.to_le_bytes());
    bytes[6..8].copy_from_slice(&[0xFF, 0x25]);
    bytes[8..12].copy_from_slice(&12i32.to_le_bytes());
    bytes[16..24].copy_from_slice(&(record as u64).to_le_bytes());
    bytes[24..32].copy_from_slice(&(trampolines().1 as u64).to_le_bytes());
}
