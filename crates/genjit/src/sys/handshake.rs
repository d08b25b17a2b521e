//! The handshake: ask a thread which of a set of address ranges it may still be using.
//!
//! The reclaimer sends the thread a real-time signal; the handler, running on that thread at an
//! instruction boundary, checks every general-purpose register, the instruction pointer, the vector
//! registers and every word of its own stack from the interrupted stack pointer (less the 128-byte red
//! zone) to the stack's top against the ranges, marks the ranges it found, and answers. An address the
//! thread could still use (a return address into a body, a body it is executing, a pointer into a
//! module's constants or data, a loaded slot value it is about to call) is on its stack or in a register
//! at that moment; the ranges asked about are already unreachable through entries, so it cannot obtain
//! another one afterwards. The scan is conservative: a stale word that happens to point into a range
//! keeps it alive one more round, never the opposite.
//!
//! The handler is async-signal-safe: it reads its own registers and stack and the request, writes
//! atomics, and calls nothing but `gettid`. One request is served at a time (a process-wide slot); the
//! requester waits for the answer (or gives up after [`TIMEOUT`] and treats every range as in use), then
//! clears the slot and waits until no handler is still reading it before freeing the request.
//!
//! The signal is the first real-time signal from `SIGRTMIN + 8` upwards whose disposition is the default
//! (a host that uses it keeps it); with none free, handshakes are off and reclamation waits for pins to
//! end, as before. Interrupted system calls restart (`SA_RESTART`); calls that never restart after a
//! signal handler (`poll`, `epoll_wait`, `nanosleep` with its remaining time) return `EINTR`, as under any
//! runtime that samples threads with signals.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a thread has to answer before its ranges all count as in use.
pub(crate) const TIMEOUT: Duration = Duration::from_millis(50);

/// A question to one thread.
struct Request {
    tid: i32,
    /// The thread's stack, `[lo, hi)`.
    stack: (usize, usize),
    /// Sorted, disjoint ranges `[start, end)`.
    ranges: Vec<(usize, usize)>,
    hits: Vec<AtomicBool>,
    /// The stack pointer was outside the recorded stack (another stack): nothing could be scanned.
    unscanned: AtomicBool,
    done: AtomicBool,
}

static SLOT: AtomicPtr<Request> = AtomicPtr::new(std::ptr::null_mut());
/// Handlers between reading [`SLOT`] and finishing with the request.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// The signal, once installed (0: handshakes unavailable).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Installs the handler (once); returns whether handshakes are available.
pub(crate) fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        for sig in libc::SIGRTMIN() + 8..=libc::SIGRTMAX() {
            // SAFETY: a zeroed `sigaction` is a valid value of the C struct.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: `sigaction` with a null new action only reads the current one into `old`.
            if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0
                || old.sa_sigaction != libc::SIG_DFL
            {
                continue;
            }
            // SAFETY: a zeroed `sigaction` is valid; the handler is async-signal-safe (module docs) and
            // has the `SA_SIGINFO` signature.
            let installed = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handler as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, std::ptr::null_mut()) == 0
            };
            if installed {
                SIGNAL.store(sig, Ordering::Relaxed);
                return true;
            }
        }
        false
    })
}

/// The calling thread's stack, `[lo, hi)`, if the C library knows it.
pub(crate) fn current_stack() -> Option<(usize, usize)> {
    // SAFETY: `pthread_getattr_np` fills `attr` for the calling thread; it is destroyed after use, and
    // `pthread_attr_getstack` only reads it.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let (mut addr, mut size) = (std::ptr::null_mut(), 0usize);
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        ok.then(|| (addr as usize, addr as usize + size))
    }
}

/// Asks thread `tid` (whose stack is `stack`) which of `ranges` (sorted, disjoint) it may still be
/// using. `None` if it could not tell (no handshake signal, no answer in time, or it ran on another
/// stack): the caller must then assume all are. A thread that no longer exists uses none.
pub(crate) fn ask(tid: i32, stack: (usize, usize), ranges: Vec<(usize, usize)>) -> Option<Vec<bool>> {
    let sig = SIGNAL.load(Ordering::Relaxed);
    if sig == 0 {
        return None;
    }
    debug_assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "ranges sorted and disjoint");
    let n = ranges.len();
    let request = Box::new(Request {
        tid,
        stack,
        ranges,
        hits: (0..n).map(|_| AtomicBool::new(false)).collect(),
        unscanned: AtomicBool::new(false),
        done: AtomicBool::new(false),
    });
    let ptr = Box::into_raw(request);
    // One request at a time: the slot is free whenever no `ask` runs (callers are the reclaimer thread).
    let previous = SLOT.swap(ptr, Ordering::SeqCst);
    debug_assert!(previous.is_null(), "one handshake at a time");
    // SAFETY: plain system call; a stale or reused tid only costs a spurious (ignored) handler run.
    let sent = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig) } == 0;
    let gone = !sent && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    let deadline = Instant::now() + TIMEOUT;
    // SAFETY: `ptr` stays allocated until after the slot is cleared and no handler reads it (below).
    let request = unsafe { &*ptr };
    while sent && !request.done.load(Ordering::Acquire) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(20));
    }
    SLOT.store(std::ptr::null_mut(), Ordering::SeqCst);
    while ACTIVE.load(Ordering::SeqCst) != 0 {
        std::hint::spin_loop();
    }
    // SAFETY: no handler can reach the request any more (the slot is clear and none is active).
    let request = unsafe { Box::from_raw(ptr) };
    if gone {
        return Some(vec![false; n]);
    }
    let answered = request.done.load(Ordering::Acquire) && !request.unscanned.load(Ordering::Relaxed);
    answered.then(|| request.hits.iter().map(|h| h.load(Ordering::Relaxed)).collect())
}

/// Marks the range containing `value`, if any.
fn check(request: &Request, value: usize) {
    let i = request.ranges.partition_point(|&(_, end)| end <= value);
    if let Some(&(start, _)) = request.ranges.get(i) {
        if start <= value {
            request.hits[i].store(true, Ordering::Relaxed);
        }
    }
}

extern "C" fn handler(_sig: libc::c_int, _info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    let ptr = SLOT.load(Ordering::SeqCst);
    // SAFETY: a non-null slot points at a live request until `ask` sees `ACTIVE` at zero after clearing
    // the slot, which it cannot while this handler counts as active.
    if let Some(request) = unsafe { ptr.as_ref() } {
        if request.tid == rustix::thread::gettid().as_raw_nonzero().get()
            && !request.done.load(Ordering::Relaxed)
        {
            // SAFETY: the kernel passes the interrupted context to an `SA_SIGINFO` handler.
            let uc = unsafe { &*(context as *const libc::ucontext_t) };
            let gregs = &uc.uc_mcontext.gregs;
            // r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip.
            for &r in &gregs[..=libc::REG_RIP as usize] {
                check(request, r as usize);
            }
            // SAFETY: when not null, `fpregs` points at the saved FPU state in the signal frame.
            if let Some(fp) = unsafe { uc.uc_mcontext.fpregs.as_ref() } {
                for xmm in &fp._xmm {
                    for pair in xmm.element.chunks_exact(2) {
                        check(request, (u64::from(pair[1]) << 32 | u64::from(pair[0])) as usize);
                    }
                }
            }
            let sp = gregs[libc::REG_RSP as usize] as usize;
            let (lo, hi) = request.stack;
            if sp < lo || sp > hi {
                request.unscanned.store(true, Ordering::Relaxed);
            } else {
                let mut at = (sp.saturating_sub(128) & !7).max(lo);
                while at + 8 <= hi {
                    // SAFETY: `[lo, hi)` is this thread's stack, mapped from the red zone below the
                    // interrupted stack pointer (the kernel puts the signal frame below it) to the top.
                    check(request, unsafe { (at as *const usize).read_volatile() });
                    at += 8;
                }
            }
            request.done.store(true, Ordering::Release);
        }
    }
    ACTIVE.fetch_sub(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// A thread keeping a value on its stack is seen to use the range around it, and not another.
    #[test]
    fn a_thread_is_found_using_what_its_stack_holds() {
        assert!(install());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let t = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let held = std::hint::black_box([0x7777_0000_1234usize; 4]);
                tx.send((rustix::thread::gettid().as_raw_nonzero().get(), current_stack().unwrap())).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::hint::black_box(held);
            })
        };
        let (tid, stack) = rx.recv().unwrap();
        let ranges = vec![
            (0x5555_1234_1000, 0x5555_1234_2000),
            (0x7777_0000_1000, 0x7777_0000_2000),
            (0x7777_0000_3000, 0x7777_0000_4000),
        ];
        let hits = ask(tid, stack, ranges).expect("an answer");
        assert_eq!(hits, [false, true, false]);
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        // A thread that is gone uses nothing.
        assert_eq!(ask(tid, stack, vec![(0x7777_0000_1000, 0x7777_0000_2000)]), Some(vec![false]));
    }
}
