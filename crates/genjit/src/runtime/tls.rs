//! Thread-local variables at run time: each thread's copies of JIT thread-locals.
//!
//! The compiler rewrote every `thread_local` global into an ordinary global (the *template*) and every
//! access into a call of [`genjit_tls_get`] (see `compile::tls`). Each thread keeps a map from template
//! address to its own copy, created on first access by copying the template. Because the key is the
//! template's address, an external thread-local declared in one module and defined in another resolves to
//! the same copy.
//!
//! ## Removal
//! A removed module's template address may be reused by a later module. [`retire_templates`] records the
//! removed range and bumps a global counter; a thread whose cached counter is stale drops its copies that
//! fall in retired ranges before serving the access. Copies belonging to threads that never touch
//! thread-locals again are freed when those threads exit.

use parking_lot::Mutex;
use std::alloc::Layout;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Name of the runtime entry the rewritten IR calls.
pub(crate) const TLS_GET: &str = "__genjit_tls_get";
struct Retired {
    /// Bumped (release) after each retirement is recorded.
    epoch: AtomicU64,
    ranges: Mutex<Vec<(u64, usize, usize)>>,
}

static RETIRED: Retired = Retired { epoch: AtomicU64::new(0), ranges: Mutex::new(Vec::new()) };

/// Marks every per-thread copy of templates in `[start, end)` stale: the range's module is going away.
pub fn retire_templates(start: usize, end: usize) {
    let mut ranges = RETIRED.ranges.lock();
    let epoch = RETIRED.epoch.load(Ordering::Relaxed) + 1;
    ranges.push((epoch, start, end));
    // Bound the log: threads that lag more than this many retirements flush everything instead.
    if ranges.len() > 4096 {
        ranges.drain(..2048);
    }
    // Release: a thread that sees the new epoch (acquire) also sees the range pushed above.
    RETIRED.epoch.store(epoch, Ordering::Release);
}

struct Copy {
    ptr: *mut u8,
    layout: Layout,
}

impl Drop for Copy {
    fn drop(&mut self) {
        // SAFETY: `ptr` was allocated with `layout` in `genjit_tls_get` and is freed once, here.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

#[derive(Default)]
struct ThreadCopies {
    seen_epoch: u64,
    copies: HashMap<usize, Copy>,
}

impl ThreadCopies {
    fn catch_up(&mut self) {
        // Acquire: pairs with the release in `retire_templates`.
        let now = RETIRED.epoch.load(Ordering::Acquire);
        if now == self.seen_epoch {
            return;
        }
        let ranges = RETIRED.ranges.lock();
        let oldest = ranges.first().map_or(now, |r| r.0);
        if self.seen_epoch + 1 < oldest {
            self.copies.clear();
        } else {
            for &(_, start, end) in ranges.iter().filter(|r| r.0 > self.seen_epoch) {
                self.copies.retain(|&k, _| k < start || k >= end);
            }
        }
        self.seen_epoch = now;
    }
}

thread_local! {
    static COPIES: RefCell<ThreadCopies> = RefCell::new(ThreadCopies::default());
}

/// The per-thread copy of the thread-local whose template is at `template` (`size` bytes, `align`ed).
///
/// # Safety
/// - `template` points at `size` readable bytes that live as long as the module that defines them, and
///   `align` is a power of two. Rewritten JIT code always passes a module-defined global and its layout.
pub unsafe extern "C" fn genjit_tls_get(template: *const u8, size: u64, align: u64) -> *mut u8 {
    COPIES.with(|cell| {
        let mut copies = cell.borrow_mut();
        copies.catch_up();
        let copy = copies.copies.entry(template as usize).or_insert_with(|| {
            let layout = Layout::from_size_align(size.max(1) as usize, align as usize)
                .expect("thread-local layout from the IR's data layout");
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { std::alloc::alloc(layout) };
            if ptr.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            // SAFETY: the caller guarantees `size` readable bytes at `template`; `ptr` has `size` bytes.
            unsafe { std::ptr::copy_nonoverlapping(template, ptr, size as usize) };
            Copy { ptr, layout }
        });
        copy.ptr
    })
}
