//! The unwinder's view of JIT code: `.eh_frame` sections registered with libgcc one address window at a time.
//!
//! C++ exceptions, Rust panics and backtraces walk JIT frames only if libgcc's `_Unwind_Find_FDE` can find
//! their frame descriptions (FDEs), so every module's `.eh_frame` must be registered before its code can run
//! and deregistered before its memory is reused.
//!
//! ## Why not one registration per module
//! libgcc 12 (Debian bookworm; the b-tree came in GCC 13) keeps registered objects in a linked list.
//! `__deregister_frame` scans it, so with one registration per module freeing a module cost O(live
//! modules): 7.6 us at 1k live, 1.8 ms at 100k, and tearing down a JIT was quadratic (40k modules: 14 s).
//!
//! ## Windows
//! The address space is cut into aligned windows of [`WINDOW`] bytes. All `.eh_frame` sections that start in
//! one window form **one** libgcc object, registered with `__register_frame_info_table_bases` from a
//! NUL-terminated table of section addresses. The number of objects is the number of occupied windows (a
//! 64 MiB generation has at most 256), so deregistration scans a short list whatever the number of modules,
//! and a change rebuilds one table of the few hundred sections that share its window.
//!
//! ## Why this is correct
//! - **Objects never overlap.** libgcc sorts classified objects by their lowest PC, searches the first whose
//!   lowest PC is `<=` the PC looked up, and stops there: two objects with interleaved ranges would hide each
//!   other's frames. A module's `.eh_frame` and all the code its FDEs describe lie in one heap block, and
//!   blocks are disjoint; grouping sections by the window their *address* falls in therefore groups whole
//!   blocks, and the PC ranges of two windows are disjoint and ordered like the windows.
//! - **A registered table never changes.** libgcc reads the table when it first classifies the object (at the
//!   next unwind anywhere in the process) and keeps pointers into the sections afterwards. A change builds a
//!   new table, registers it, and only then deregisters the old one: while both exist, each describes every
//!   frame that can be executing (an added module is not published yet, a removed one is no longer running),
//!   so an unwind on another thread finds its FDE in whichever of the two it searches.
//! - **Deregistration precedes reuse.** The heap removes a block's sections before it fills the block with
//!   `int3` or gives its pages back, and the whole registry is deregistered before the heap unmaps anything.
//! - **A deregistered object outlives its readers.** GCC 12's `_Unwind_Find_FDE` reads the object it found
//!   a frame in (its encoding and bases) *after* releasing its lock. With one object per module that was
//!   harmless (the module could not be freed while its frame was being unwound); with windows, an object
//!   describing live code is replaced at every change to its window, and freeing it at once aborted a
//!   concurrent backtrace (found by `unwind::backtraces_stay_right_while_neighbours_come_and_go`). Its
//!   storage is therefore retired through epoch reclamation like code: the only threads that can be reading
//!   it are unwinding JIT frames, i.e. inside a pinned call.
//!
//! ## Rejected
//! - One object per generation: a change would rebuild a table of every module in the generation (100k
//!   pointers) and re-sort all of them at the next unwind.
//! - Interposing `_Unwind_Find_FDE` with our own lookup: it only works if the executable exports the symbol,
//!   which a library cannot arrange.
//! - Chunks of N modules in insertion order: chunks would interleave in the address space and break libgcc's
//!   lookup (see the first point above).

use std::collections::BTreeMap;

/// Bytes of address space per registered object.
pub const WINDOW: usize = 256 << 10;

extern "C" {
    fn __register_frame_info_table_bases(
        table: *const usize,
        object: *mut Object,
        tbase: *const u8,
        dbase: *const u8,
    );
    fn __deregister_frame_info(begin: *const usize) -> *mut Object;
}

/// Storage for libgcc's `struct object` (six words in GCC 12; room for eight), owned by us and linked into
/// libgcc's lists while registered.
#[derive(Debug)]
#[repr(C, align(16))]
struct Object([usize; 8]);

/// One window's registration: the table libgcc reads and the object it links.
struct Registration {
    /// Section addresses, then a zero.
    table: Box<[usize]>,
    object: Box<Object>,
}

/// The storage of a deregistered object, which must outlive every thread that may still read it (see
/// [`UnwindRegistry::take_retired`]), and the tags of the sections it covered.
#[derive(Debug)]
pub struct RetiredObject {
    #[allow(dead_code)] // held to be dropped later, never read
    object: Box<Object>,
    /// The distinct tags (reclamation scopes) of the sections it covered.
    pub tags: Box<[u32]>,
}

impl Registration {
    /// Registers `sections` (non-empty) as one object.
    ///
    /// # Safety
    /// Every address is a complete, relocated `.eh_frame` section followed by four zero bytes that stays
    /// mapped and unchanged until the returned registration is deregistered.
    unsafe fn new(sections: &[usize]) -> Registration {
        debug_assert!(!sections.is_empty());
        // libgcc skips deregistration when the table's first 32 bits are zero: start with an empty section
        // of our own whose address has non-zero low bits (one of two neighbours always does).
        let empty =
            EMPTY.iter().map(|e| e as *const u32 as usize).find(|&a| a as u32 != 0).expect("one of two");
        let table: Box<[usize]> = [empty].into_iter().chain(sections.iter().copied()).chain([0]).collect();
        let mut object = Box::new(Object([0; 8]));
        // SAFETY: `table` is a NUL-terminated array of `.eh_frame` addresses valid per the caller's contract
        // (plus an empty section, which holds no FDE); `table` and `object` are boxed, so they stay at these
        // addresses while libgcc links them.
        unsafe {
            __register_frame_info_table_bases(
                table.as_ptr(),
                &mut *object,
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        Registration { table, object }
    }

    /// Deregisters the object. Its storage is returned, not freed: a thread whose lookup found a frame in
    /// it reads the object's encoding fields *after* libgcc's lock is released (GCC 12's
    /// `_Unwind_Find_FDE`), so it is freed only once no thread can be in JIT code that was running when
    /// it was deregistered.
    fn deregister(self, tags: Box<[u32]>) -> RetiredObject {
        // SAFETY: registered in `new` with this table, whose first 32 bits are non-zero, and deregistered
        // exactly once, here (`self` is consumed).
        let object = unsafe { __deregister_frame_info(self.table.as_ptr()) };
        assert_eq!(object, &*self.object as *const Object as *mut Object, "libgcc lost an unwind object");
        RetiredObject { object: self.object, tags }
    }
}

/// The code of libgcc's `_Unwind_Find_FDE`, `[start, end)`: the only code that reads a deregistered object
/// (after dropping libgcc's lock, see [`Registration::deregister`]), so a thread whose registers and stack
/// hold no address inside it cannot be reading one. `None` if the symbol or its size cannot be found.
pub fn reader_range() -> Option<(usize, usize)> {
    static RANGE: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
    *RANGE.get_or_init(|| {
        const RTLD_DL_SYMENT: libc::c_int = 1;
        // SAFETY: `dlsym` with a NUL-terminated name; `dladdr1` fills `info` and points `sym` at the
        // symbol table entry of the object containing the address, which stays loaded (libgcc_s is never
        // unloaded while genjit's registrations use it).
        unsafe {
            let addr = libc::dlsym(libc::RTLD_DEFAULT, c"_Unwind_Find_FDE".as_ptr());
            if addr.is_null() {
                return None;
            }
            let mut info: libc::Dl_info = std::mem::zeroed();
            let mut sym: *const libc::Elf64_Sym = std::ptr::null();
            let found = libc::dladdr1(
                addr,
                &mut info,
                (&mut sym as *mut *const libc::Elf64_Sym).cast(),
                RTLD_DL_SYMENT,
            );
            let size = sym.as_ref().map_or(0, |s| s.st_size as usize);
            (found != 0 && size > 0 && info.dli_saddr == addr).then(|| (addr as usize, addr as usize + size))
        }
    })
}

/// An `.eh_frame` section with no entries: just the zero terminator.
static EMPTY: [u32; 2] = [0, 0];

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registration({} sections)", self.table.len() - 2)
    }
}

#[derive(Debug, Default)]
struct Window {
    /// Addresses of the window's `.eh_frame` sections, sorted (so libgcc's sort of their FDEs is linear).
    sections: Vec<usize>,
    registered: Option<Registration>,
    /// Every tag a section of the window had since the window was created: a superset of those of the
    /// sections the current registration covers (8 bytes less per section than a tag each; a tag only
    /// makes more pins wait for the window's replaced objects).
    tags: Vec<u32>,
}

impl Window {
    /// Replaces the registration with one of the current sections: new first, old second.
    ///
    /// # Safety
    /// Every section in `self.sections` satisfies [`Registration::new`]'s contract.
    unsafe fn reregister(&mut self, retired: &mut Vec<RetiredObject>) {
        // SAFETY: forwarded.
        let new = (!self.sections.is_empty()).then(|| unsafe { Registration::new(&self.sections) });
        if let Some(old) = std::mem::replace(&mut self.registered, new) {
            retired.push(old.deregister(self.tags.clone().into()));
        }
    }
}

/// The `.eh_frame` sections of one heap, registered by window (see the module docs).
#[derive(Debug, Default)]
pub struct UnwindRegistry {
    windows: BTreeMap<usize, Window>,
    sections: usize,
    /// Deregistered objects not yet handed to the caller.
    retired: Vec<RetiredObject>,
}

impl UnwindRegistry {
    /// Registers one module's `.eh_frame` section.
    ///
    /// # Safety
    /// - `section` is a complete, relocated `.eh_frame` section followed by four zero bytes, inside a block
    ///   holding all the code its FDEs describe, disjoint from every other registered section's block;
    /// - it stays mapped and unchanged until [`remove_range`](Self::remove_range) covers it or the registry
    ///   is dropped.
    ///
    /// `tag` is handed back with the objects that covered the section (see [`take_retired`]).
    ///
    /// [`take_retired`]: Self::take_retired
    pub unsafe fn insert(&mut self, section: usize, tag: u32) {
        // SAFETY: the section is readable (the caller's contract). An empty one describes nothing, and
        // libgcc's own `__register_frame` skips those too.
        if unsafe { (section as *const u32).read_unaligned() } == 0 {
            return;
        }
        let window = self.windows.entry(section / WINDOW).or_default();
        let at = window.sections.partition_point(|&s| s < section);
        debug_assert!(window.sections.get(at) != Some(&section), "{section:#x} registered twice");
        window.sections.insert(at, section);
        if !window.tags.contains(&tag) {
            window.tags.push(tag);
        }
        self.sections += 1;
        // SAFETY: every section in the window was inserted under this contract and is still valid.
        unsafe { window.reregister(&mut self.retired) };
    }

    /// Deregisters every section in `[start, end)` (a block about to be freed).
    pub fn remove_range(&mut self, start: usize, end: usize) {
        if start >= end || self.sections == 0 {
            return;
        }
        let mut emptied = Vec::new();
        for (&key, window) in self.windows.range_mut(start / WINDOW..=(end - 1) / WINDOW) {
            let lo = window.sections.partition_point(|&s| s < start);
            let hi = window.sections.partition_point(|&s| s < end);
            if lo == hi {
                continue;
            }
            window.sections.drain(lo..hi);
            self.sections -= hi - lo;
            // SAFETY: the sections left were inserted under `insert`'s contract and are not in the range
            // being freed, so they are still valid.
            unsafe { window.reregister(&mut self.retired) };
            if window.sections.is_empty() {
                emptied.push(key);
            }
        }
        for key in emptied {
            self.windows.remove(&key);
        }
    }

    /// The storage of objects deregistered since the last call. The caller frees it after a grace period
    /// (like the code of a module): only a thread unwinding a frame of JIT code the object covered can
    /// still be reading it, and such a thread is inside a call that may run code of one of its tags.
    pub fn take_retired(&mut self) -> Vec<RetiredObject> {
        std::mem::take(&mut self.retired)
    }

    /// Sections registered.
    pub fn sections(&self) -> usize {
        self.sections
    }

    /// Objects registered with libgcc (occupied windows).
    pub fn objects(&self) -> usize {
        self.windows.len()
    }
}

impl Drop for UnwindRegistry {
    fn drop(&mut self) {
        // The heap goes away only after every module in it, so no thread runs code these objects describe:
        // their storage is freed at once.
        for window in std::mem::take(&mut self.windows).into_values() {
            drop(window.registered.map(|r| r.deregister(Box::new([]))));
        }
    }
}
