//! Freed code that faults: a userfaultfd on every code generation's executable view.
//!
//! Whole pages of freed code are given back to the OS by punching a hole in the generation's memfd, and a
//! hole reads as zeros: `00 00` executes as `add %al,(%rax)`, so a stale jump into a hole would run on
//! instead of trapping. genjit registers each code generation's executable view with one process-wide
//! userfaultfd in *missing* mode with the `SIGBUS` feature: any access through that view to a page the
//! memfd does not hold (a hole, or a page never written) raises `SIGBUS` in the faulting thread. No handler
//! thread exists and no page table entry or mapping is added: the registration is a flag on the view's one
//! mapping, so mappings do not grow. genjit itself never reads code through the executable view except
//! the bytes of live functions (for the jitdump), which are always present.
//!
//! Unprivileged processes may use userfaultfd for faults raised in user mode (`UFFD_USER_MODE_ONLY`,
//! Linux 5.11). Where it is unavailable (older kernels, a seccomp filter), registration fails quietly:
//! holes then read as zeros, as before, and [`available`] says so.

use rustix::fd::OwnedFd;
use rustix::ioctl::{ioctl, opcode, Updater};
use rustix::mm::UserfaultfdFlags;
use std::sync::OnceLock;

const UFFD_API: u64 = 0xAA;
const UFFD_USER_MODE_ONLY: u32 = 1;
const UFFD_FEATURE_MISSING_SHMEM: u64 = 1 << 5;
const UFFD_FEATURE_SIGBUS: u64 = 1 << 7;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
const UFFDIO: u8 = 0xAA;

/// `struct uffdio_api` (linux/userfaultfd.h).
#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

/// `struct uffdio_register` (linux/userfaultfd.h).
#[repr(C)]
struct UffdioRegister {
    start: u64,
    len: u64,
    mode: u64,
    ioctls: u64,
}

/// The process's userfaultfd, if the kernel gives one with the features needed.
fn fd() -> Option<&'static OwnedFd> {
    static FD: OnceLock<Option<OwnedFd>> = OnceLock::new();
    FD.get_or_init(|| {
        let flags = UserfaultfdFlags::CLOEXEC
            | UserfaultfdFlags::NONBLOCK
            | UserfaultfdFlags::from_bits_retain(UFFD_USER_MODE_ONLY);
        // SAFETY: the descriptor only ever registers genjit's own code views, in missing mode with
        // SIGBUS: it changes no memory and reads no events.
        let fd = unsafe { rustix::mm::userfaultfd(flags) }.ok()?;
        let mut api = UffdioApi {
            api: UFFD_API,
            features: UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_SIGBUS,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API reads and writes one `uffdio_api`, which `api` is.
        let handshake = unsafe {
            ioctl(&fd, Updater::<{ opcode::read_write::<UffdioApi>(UFFDIO, 0x3F) }, _>::new(&mut api))
        };
        handshake.ok().map(|()| fd)
    })
    .as_ref()
}

/// Whether freed code pages fault when executed (the process has a userfaultfd).
pub(crate) fn available() -> bool {
    fd().is_some()
}

/// Makes every access to a page of `[addr, addr+len)` that its memfd does not hold raise `SIGBUS`.
/// Returns whether the registration took effect.
///
/// # Safety
/// - The range is exactly a code generation's executable view (a shared memfd mapping) that nothing else
///   registered; genjit reads no page of it that may be missing.
pub(crate) unsafe fn trap_missing(addr: usize, len: usize) -> bool {
    let Some(fd) = fd() else { return false };
    let mut register =
        UffdioRegister { start: addr as u64, len: len as u64, mode: UFFDIO_REGISTER_MODE_MISSING, ioctls: 0 };
    // SAFETY: UFFDIO_REGISTER reads and writes one `uffdio_register`; registering a range only changes
    // how faults on its missing pages are delivered (the caller's contract says none is expected).
    let registered = unsafe {
        ioctl(fd, Updater::<{ opcode::read_write::<UffdioRegister>(UFFDIO, 0x00) }, _>::new(&mut register))
    };
    registered.is_ok()
}
