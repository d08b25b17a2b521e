//! GDB's JIT interface: telling a debugger about code that no file describes.
//!
//! GDB (and LLDB) find JIT code through a process-wide list of in-memory object files, the descriptor
//! `__jit_debug_descriptor`, and a breakpoint on the empty function `__jit_debug_register_code`, which the
//! JIT calls after each change to the list ("JIT Compilation Interface" in GDB's manual). genjit uses the
//! descriptor and function that `libLLVM` already exports (LLVM's own JITs register through them), so a
//! process has one list whatever mix of JITs it runs; genjit's registrations are serialized by its own
//! lock. (Do not enable LLVM's GDB listener for an LLVM JIT in the same process: the two would race on the
//! list.)
//!
//! One entry per module: the module's object file with every allocated section's address set to where
//! genjit placed it (`link::debug_object`), registered when the module is loaded and unregistered before
//! its memory is freed ([`Registration`] is the RAII owner). With no debugger attached a registration is a
//! list insertion; with one attached, GDB reads each new object as it arrives.

use parking_lot::Mutex;

const JIT_NOACTION: u32 = 0;
const JIT_REGISTER: u32 = 1;
const JIT_UNREGISTER: u32 = 2;

/// `struct jit_code_entry` of GDB's interface.
#[repr(C)]
struct CodeEntry {
    next: *mut CodeEntry,
    prev: *mut CodeEntry,
    symfile_addr: *const u8,
    symfile_size: u64,
}

/// `struct jit_descriptor` of GDB's interface.
#[repr(C)]
struct Descriptor {
    version: u32,
    action_flag: u32,
    relevant_entry: *mut CodeEntry,
    first_entry: *mut CodeEntry,
}

extern "C" {
    /// Defined by libLLVM (`JITLoaderGDB`): the list GDB reads.
    static mut __jit_debug_descriptor: Descriptor;
    /// Defined by libLLVM: GDB breaks here to learn that the list changed.
    fn __jit_debug_register_code();
}

/// Serializes genjit's changes to the list.
static LOCK: Mutex<()> = Mutex::new(());

/// A module's object file, registered with the debugger until dropped.
pub(crate) struct Registration {
    entry: Box<CodeEntry>,
    /// The bytes `entry` points at; never moved or changed while registered.
    _object: Box<[u8]>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").field("symfile_size", &self.entry.symfile_size).finish()
    }
}

// SAFETY: the raw pointers in `entry` point into the registration's own boxes and into the process-wide
// list, which is only touched under `LOCK`.
unsafe impl Send for Registration {}
// SAFETY: as above; `&Registration` exposes nothing.
unsafe impl Sync for Registration {}

impl Registration {
    /// Registers `object` (an ELF object with its sections' run-time addresses) with the debugger.
    pub(crate) fn new(object: Vec<u8>) -> Registration {
        let object = object.into_boxed_slice();
        let mut entry = Box::new(CodeEntry {
            next: std::ptr::null_mut(),
            prev: std::ptr::null_mut(),
            symfile_addr: object.as_ptr(),
            symfile_size: object.len() as u64,
        });
        let _guard = LOCK.lock();
        let ptr: *mut CodeEntry = &mut *entry;
        // SAFETY: the descriptor is only modified under `LOCK` (by genjit); `ptr` is a live, boxed entry
        // that stays at this address until `drop` unlinks it, and `first` is null or a live entry.
        unsafe {
            let descriptor = &raw mut __jit_debug_descriptor;
            let first = (*descriptor).first_entry;
            (*ptr).next = first;
            if !first.is_null() {
                (*first).prev = ptr;
            }
            (*descriptor).first_entry = ptr;
            notify(descriptor, ptr, JIT_REGISTER);
        }
        Registration { entry, _object: object }
    }
}

/// Tells the debugger about `entry` with `action`.
///
/// # Safety
/// - The caller holds `LOCK`; `descriptor` is libLLVM's descriptor and `entry` a live entry of its list.
unsafe fn notify(descriptor: *mut Descriptor, entry: *mut CodeEntry, action: u32) {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        (*descriptor).version = 1;
        (*descriptor).relevant_entry = entry;
        (*descriptor).action_flag = action;
        __jit_debug_register_code();
        (*descriptor).action_flag = JIT_NOACTION;
        (*descriptor).relevant_entry = std::ptr::null_mut();
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _guard = LOCK.lock();
        let ptr: *mut CodeEntry = &mut *self.entry;
        // SAFETY: `ptr` was linked into the list by `new` and is unlinked once, here, under `LOCK`; its
        // neighbours are live entries (or null) because every removal goes through this code.
        unsafe {
            let descriptor = &raw mut __jit_debug_descriptor;
            let (prev, next) = ((*ptr).prev, (*ptr).next);
            if prev.is_null() {
                (*descriptor).first_entry = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            notify(descriptor, ptr, JIT_UNREGISTER);
        }
    }
}
