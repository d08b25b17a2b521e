//! Everything platform-specific, behind one small door.
//!
//! genjit runs on Linux x86-64. This module is the only place that calls `mmap`, `munmap`, `memfd_create`,
//! `fallocate` (through rustix, which turns errno into `io::Error` and owns descriptors), `dlsym` or the
//! unwinder's frame registry; porting genjit means editing this file (and the
//! relocation table in `link`). Every function here is a thin, checked wrapper: sizes are page-aligned by
//! type ([`PageLen`]), failures come back as `io::Error`, and the `unsafe` that remains is local and argued.
//!
//! ## Memory primitives
//! - [`Reservation`]: a range of address space reserved `PROT_NONE`; nothing is committed until a generation
//!   maps something over part of it. Dropping it unmaps the whole range.
//! - [`DualMapping`]: a memfd mapped twice, read+execute inside a reservation and read+write somewhere else.
//!   No page is ever writable and executable through the same address (W^X), yet code can be written
//!   without `mprotect` and without a TLB shootdown per module.
//! - [`Reservation::map_data`]: anonymous read+write memory at a fixed address inside a reservation (the
//!   data heap).
//!
//! ## Profilers and debuggers
//! - [`perf`]: `/tmp/perf-<pid>.map` lines and a jitdump for `perf inject --jit`; [`map_marker`] maps
//!   the jitdump so `perf record` notices it.
//! - [`gdb`]: GDB's JIT interface, one registered object per module.
//! - [`trap`]: a userfaultfd that makes freed (hole-punched) code pages fault instead of reading zeros.
//!
//! ## Machine code genjit writes itself
//! - [`stubs`]: call-counting and lazy stubs and their trampolines, which keep every argument register.
//!
//! ## Threads
//! - [`handshake`]: a signal asking a thread which address ranges its registers and stack still hold
//!   (precise reclamation under a long pin).
//! - [`flush_store_buffers`]: the heavy fence where `membarrier` is unavailable.
//!
//! ## Symbols and unwinding
//! - [`process_symbol`]: `dlsym(RTLD_DEFAULT, name)`, the process's own symbols (libc, libm, libstdc++,
//!   libgcc's compiler-runtime helpers).
//! - [`unwind`]: libgcc's frame registry, one registered object per 256 KiB window of JIT code.

pub(crate) mod gdb;
pub(crate) mod handshake;
pub(crate) mod perf;
pub(crate) mod stubs;
pub(crate) mod trap;
pub(crate) mod unwind;

use rustix::fd::OwnedFd;
use rustix::fs::{FallocateFlags, MemfdFlags};
use rustix::mm::{self, MapFlags, ProtFlags};
use std::ffi::CString;
use std::io;
use std::ptr::NonNull;

/// The page size genjit assumes (x86-64 Linux).
pub const PAGE: usize = 4096;

/// A length that is a non-zero whole number of pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLen(usize);

impl PageLen {
    /// Rounds `len` up to whole pages (at least one page).
    pub fn round_up(len: usize) -> PageLen {
        PageLen(len.max(1).div_ceil(PAGE) * PAGE)
    }

    /// The length in bytes.
    pub fn get(self) -> usize {
        self.0
    }
}

/// A raw pointer that may be sent between threads because its owner guarantees exclusive or read-only use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendSyncPtr(NonNull<u8>);

// SAFETY: the pointer is only an address; every owner documents who may write through it.
unsafe impl Send for SendSyncPtr {}
// SAFETY: as above; shared use is read-only or serialized by the owner's lock.
unsafe impl Sync for SendSyncPtr {}

impl SendSyncPtr {
    /// The address as a pointer.
    pub fn as_ptr(self) -> *mut u8 {
        self.0.as_ptr()
    }

    /// The address as an integer.
    pub fn addr(self) -> usize {
        self.0.as_ptr() as usize
    }

    /// Wraps a non-null pointer (panics on null).
    pub fn from_ptr(ptr: *mut u8) -> SendSyncPtr {
        SendSyncPtr(NonNull::new(ptr).expect("null pointer"))
    }

    /// The address `n` bytes further on.
    pub fn offset(self, n: usize) -> SendSyncPtr {
        SendSyncPtr::from_ptr(self.0.as_ptr().wrapping_add(n))
    }
}

/// A reserved range of address space (`PROT_NONE`, no memory committed).
#[derive(Debug)]
pub struct Reservation {
    base: SendSyncPtr,
    len: PageLen,
}

/// The base pointer of a fresh mapping (mmap never returns null for a non-fixed, successful map).
fn mapped(ptr: *mut std::ffi::c_void) -> io::Result<SendSyncPtr> {
    NonNull::new(ptr.cast()).map(SendSyncPtr).ok_or_else(|| io::Error::other("mmap returned null"))
}

impl Reservation {
    /// Reserves `len` bytes of address space.
    pub fn new(len: PageLen) -> io::Result<Reservation> {
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing aliases nothing.
        let ptr = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                len.get(),
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }?;
        Ok(Reservation { base: mapped(ptr)?, len })
    }

    /// First address of the range.
    pub fn base(&self) -> usize {
        self.base.addr()
    }

    /// Length of the range.
    pub fn len(&self) -> usize {
        self.len.get()
    }

    /// The address of `[offset, offset+len)` after checking it lies inside the reservation.
    fn inside(&self, offset: usize, len: PageLen) -> *mut std::ffi::c_void {
        assert!(offset % PAGE == 0 && offset + len.get() <= self.len(), "range outside the reservation");
        self.base.as_ptr().wrapping_add(offset).cast()
    }

    /// Returns `[offset, offset+len)` to `PROT_NONE`, discarding its contents (and any mapping over it).
    ///
    /// # Safety
    /// - Nothing lives in the range any more: no block, and no code any thread may still run.
    pub unsafe fn release(&self, offset: usize, len: PageLen) -> io::Result<()> {
        let at = self.inside(offset, len);
        let flags = MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED;
        // SAFETY: the range lies inside our reservation (checked by `inside`), and the caller promises that
        // nothing lives there, so replacing the pages discards nothing anyone uses.
        unsafe { mm::mmap_anonymous(at, len.get(), ProtFlags::empty(), flags) }?;
        Ok(())
    }

    /// Maps anonymous read+write memory over `[offset, offset+len)` of the reservation.
    ///
    /// # Safety
    /// - The range is unused reservation (`PROT_NONE`): mapping over it must not replace live memory.
    pub unsafe fn map_data(&self, offset: usize, len: PageLen) -> io::Result<SendSyncPtr> {
        let at = self.inside(offset, len);
        // SAFETY: MAP_FIXED inside our own reservation (checked by `inside`) over pages the caller promises
        // are unused.
        let ptr = unsafe {
            mm::mmap_anonymous(
                at,
                len.get(),
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::FIXED,
            )
        }?;
        mapped(ptr)
    }

    /// Maps a fresh memfd of `len` bytes twice: read+execute over `[offset, offset+len)` of the
    /// reservation, and read+write at an address of the kernel's choosing.
    ///
    /// # Safety
    /// - As for [`map_data`](Self::map_data): the range is unused reservation.
    pub unsafe fn map_code(&self, offset: usize, len: PageLen) -> io::Result<DualMapping> {
        let at = self.inside(offset, len);
        let fd = rustix::fs::memfd_create(c"genjit-code", MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&fd, len.get() as u64)?;
        // SAFETY: MAP_FIXED inside our own reservation (checked by `inside`) over pages the caller promises
        // are unused.
        let exec = unsafe {
            mm::mmap(
                at,
                len.get(),
                ProtFlags::READ | ProtFlags::EXEC,
                MapFlags::SHARED | MapFlags::FIXED,
                &fd,
                0,
            )
        }?;
        // SAFETY: a new mapping at an address of the kernel's choosing aliases nothing but the memfd.
        let write = unsafe {
            mm::mmap(
                std::ptr::null_mut(),
                len.get(),
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        };
        let write = match write {
            Ok(w) => mapped(w)?,
            Err(e) => {
                // SAFETY: the range held only the executable view just made, which nothing uses yet.
                unsafe { self.release(offset, len) }?;
                return Err(e.into());
            }
        };
        let exec = mapped(exec)?;
        // SAFETY: `exec` is exactly this generation's executable view, just mapped; nothing reads it yet.
        unsafe { trap::trap_missing(exec.addr(), len.get()) };
        // The descriptor stays open for hole punching (`DualMapping::punch`).
        Ok(DualMapping { exec, write, len, fd })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: we own the whole range; the heap that owns the reservation drops it last.
        let _ = unsafe { mm::munmap(self.base.as_ptr().cast(), self.len.get()) };
    }
}

/// One memfd seen through two views: `exec` (read+execute, inside the reservation) and `write` (read+write).
pub struct DualMapping {
    exec: SendSyncPtr,
    write: SendSyncPtr,
    len: PageLen,
    fd: OwnedFd,
}

impl Drop for DualMapping {
    fn drop(&mut self) {
        // The executable view lies inside the reservation, which its owner releases (or unmaps whole);
        // the writable view is this mapping's alone. Without this, every dropped heap leaked a 64 MiB view.
        // SAFETY: nobody writes code through the view once the generation is gone (the heap drops the
        // mapping only when releasing an empty generation or when the heap itself is dropped).
        let _ = unsafe { mm::munmap(self.write.as_ptr().cast(), self.len.get()) };
    }
}

impl std::fmt::Debug for DualMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DualMapping").field("exec", &self.exec).field("len", &self.len).finish()
    }
}

impl DualMapping {
    /// Address of the writable view.
    pub fn write_base(&self) -> SendSyncPtr {
        self.write
    }

    /// Gives the memfd's pages `[offset, offset+len)` back to the OS (they read as zeros afterwards).
    ///
    /// # Safety
    /// - No live block overlaps the pages, and no thread may still run code on them.
    pub unsafe fn punch(&self, offset: usize, len: usize) -> io::Result<()> {
        assert!(offset % PAGE == 0 && len % PAGE == 0 && offset + len <= self.len.get());
        let mode = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        rustix::fs::fallocate(&self.fd, mode, offset as u64, len as u64)?;
        Ok(())
    }
}

/// Discards the anonymous pages `[addr, addr+len)`: their memory goes back to the OS and they read as zeros.
///
/// # Safety
/// - The range is page-aligned, inside a data generation of the heap, and no live block overlaps it.
pub unsafe fn discard_pages(addr: usize, len: usize) {
    // SAFETY: forwarded from the caller's contract; MADV_DONTNEED on private anonymous memory only drops
    // page contents.
    let _ = unsafe { mm::madvise(addr as *mut std::ffi::c_void, len, mm::Advice::LinuxDontNeed) };
}

/// Looks `name` up among the process's own symbols (`dlsym(RTLD_DEFAULT, ...)`).
pub fn process_symbol(name: &str) -> Option<usize> {
    let name = CString::new(name).ok()?;
    // SAFETY: dlsym only reads the NUL-terminated name.
    let addr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!addr.is_null()).then_some(addr as usize)
}

/// Runs and forgets the `__cxa_atexit` handlers registered with `dso_handle` (what `dlclose` does).
///
/// # Safety
/// - `dso_handle` is a dylib's handle, and the code of every handler registered with it is still mapped.
pub unsafe fn cxa_finalize(dso_handle: usize) {
    extern "C" {
        fn __cxa_finalize(dso: *mut libc::c_void);
    }
    // SAFETY: glibc's `__cxa_finalize` runs only handlers registered with this exact handle; the handle is
    // a live allocation of the dylib being closed, whose code is still mapped while this runs.
    unsafe { __cxa_finalize(dso_handle as *mut libc::c_void) }
}

/// Maps the first page of `file` executable and leaves it mapped for the life of the process: the
/// jitdump *marker* (see [`perf`]). `perf record` logs executable mappings, and this one tells
/// `perf inject` which file holds the JIT's records. A failure only means `perf` will not find the dump.
pub(crate) fn map_marker(file: &std::fs::File) {
    // SAFETY: a new private mapping of a file we hold open, at an address of the kernel's choosing, aliases
    // nothing; it is never unmapped, and nothing reads or executes it (it exists to be seen by `perf`).
    let _ = unsafe {
        mm::mmap(std::ptr::null_mut(), PAGE, ProtFlags::READ | ProtFlags::EXEC, MapFlags::PRIVATE, file, 0)
    };
}

/// What .NET's `FlushProcessWriteBuffers` does without membarrier: revoking access to a dirty page makes
/// the kernel interrupt every CPU that may cache its translation (every CPU running one of our threads) to
/// flush its TLB, and an interrupt drains the store buffer.
pub(crate) fn flush_store_buffers() {
    use rustix::mm::{mmap_anonymous, mprotect, MapFlags, MprotectFlags, ProtFlags};
    struct Page(*mut u64);
    // SAFETY: the page is only touched under the mutex.
    unsafe impl Send for Page {}
    static PAGE: parking_lot::Mutex<Option<Page>> = parking_lot::Mutex::new(None);
    let mut page = PAGE.lock();
    if page.is_none() {
        // SAFETY: a fresh private anonymous mapping, never unmapped.
        let p = unsafe {
            mmap_anonymous(std::ptr::null_mut(), 4096, ProtFlags::READ | ProtFlags::WRITE, MapFlags::PRIVATE)
        }
        .expect("mapping the fence page");
        // SAFETY: locking our own mapping in memory (so its translation stays cached and the kernel must
        // interrupt to revoke it); failure only makes the flush slower, never wrong.
        let _ = unsafe { rustix::mm::mlock(p, 4096) };
        *page = Some(Page(p.cast()));
    }
    let p = page.as_ref().expect("mapped above").0;
    // SAFETY: `p` is our page; writable between the two protection changes, under the mutex.
    unsafe {
        mprotect(p.cast(), 4096, MprotectFlags::READ | MprotectFlags::WRITE).expect("fence page");
        p.write_volatile(p.read_volatile().wrapping_add(1));
        mprotect(p.cast(), 4096, MprotectFlags::empty()).expect("fence page");
    }
}
