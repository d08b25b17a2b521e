//! The unwinder walks through JIT frames: one registered object per window of code, kept right while
//! modules come and go around the frames being walked.

use genjit::{Jit, Source};
use std::cell::RefCell;
use std::ffi::c_void;

extern "C" {
    fn _Unwind_Backtrace(
        trace: extern "C" fn(ctx: *mut c_void, arg: *mut c_void) -> i32,
        arg: *mut c_void,
    ) -> i32;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
}

const URC_END_OF_STACK: i32 = 5;

thread_local! {
    static WALK: RefCell<(Vec<usize>, i32)> = const { RefCell::new((Vec::new(), 0)) };
}

extern "C" fn record_frame(ctx: *mut c_void, _: *mut c_void) -> i32 {
    // SAFETY: `ctx` is the context libgcc passes to a backtrace callback.
    let ip = unsafe { _Unwind_GetIP(ctx) };
    WALK.with(|w| w.borrow_mut().0.push(ip));
    0
}

/// Called from JIT code: walks the stack with libgcc's unwinder and keeps the IPs for the test.
extern "C" fn walk() -> i64 {
    WALK.with(|w| w.borrow_mut().0.clear());
    // SAFETY: the callback matches `_Unwind_Trace_Fn`; no argument is used.
    let code = unsafe { _Unwind_Backtrace(record_frame, std::ptr::null_mut()) };
    WALK.with(|w| w.borrow_mut().1 = code);
    7
}

/// `outer` calls `inner` calls the host's `walk`: two JIT frames between the walk and the test.
const CALLERS: &str = "declare i64 @walk()\n\
    define i64 @inner() {\n  %r = call i64 @walk()\n  %s = add i64 %r, 1\n  ret i64 %s\n}\n\
    define i64 @outer() {\n  %r = call i64 @inner()\n  %s = add i64 %r, 1\n  ret i64 %s\n}\n";

/// Calls `outer` and checks the walk: it ended normally, it saw both JIT frames, and it went on through
/// the host frames above them (an unregistered frame stops the walk right there).
fn check_walk(outer: &genjit::Func<fn() -> i64>, heap: (usize, usize)) {
    assert_eq!(outer.call(), 9);
    let (ips, code) = WALK.with(|w| w.borrow().clone());
    let in_jit: Vec<usize> =
        ips.iter().enumerate().filter(|(_, &ip)| ip >= heap.0 && ip < heap.1).map(|(i, _)| i).collect();
    assert_eq!(code, URC_END_OF_STACK, "the walk stopped early at {} frames: {ips:x?}", ips.len());
    assert_eq!(in_jit.len(), 2, "JIT frames in {ips:x?} (heap {heap:x?})");
    let after = ips.len() - 1 - in_jit[1];
    assert!(after >= 3, "only {after} host frames above the JIT frames: {ips:x?}");
}

#[test]
fn backtraces_walk_through_jit_frames() {
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    d.define_host("walk", walk as extern "C" fn() -> i64).unwrap();
    d.add_module(Source::ir_text(CALLERS)).unwrap();
    let outer = d.lookup::<fn() -> i64>("outer").unwrap();
    check_walk(&outer, jit.heap_range());
    let stats = jit.stats();
    assert_eq!((stats.unwind_sections, stats.unwind_objects), (1, 1));
}

#[test]
fn backtraces_stay_right_while_neighbours_come_and_go() {
    // Own process: the unwinder's registry is process-wide, and other tests' modules would share nothing
    // with this heap but the list libgcc scans.
    if crate::in_child("unwind::backtraces_stay_right_while_neighbours_come_and_go").is_some() {
        return;
    }
    let template = crate::template_object();
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("d").unwrap();
    d.define_host("walk", walk as extern "C" fn() -> i64).unwrap();
    // Neighbours on both sides of the walked module, in the same window.
    let before: Vec<_> =
        (0..200).map(|i| d.add_module(Source::object(crate::renamed(&template, i))).unwrap()).collect();
    d.add_module(Source::ir_text(CALLERS)).unwrap();
    let after: Vec<_> =
        (200..400).map(|i| d.add_module(Source::object(crate::renamed(&template, i))).unwrap()).collect();
    let outer = d.lookup::<fn() -> i64>("outer").unwrap();
    let heap = jit.heap_range();
    check_walk(&outer, heap);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let walks = std::thread::scope(|s| {
        let walker = s.spawn(|| {
            let mut walks = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                check_walk(&outer, heap);
                walks += 1;
            }
            walks
        });
        // Every add and every free re-registers the window the walked frames are in.
        for round in 0..3_000 {
            let m = d.add_module(Source::object(crate::renamed(&template, 1_000 + round))).unwrap();
            d.remove_module(&m).unwrap();
            if round % 100 == 0 {
                assert!(jit.reclaim(std::time::Duration::from_secs(10)));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        walker.join().unwrap()
    });
    assert!(walks > 100, "only {walks} walks overlapped the churn");
    for m in before.iter().chain(&after) {
        d.remove_module(m).unwrap();
    }
    assert!(jit.reclaim(std::time::Duration::from_secs(10)));
    let stats = jit.stats();
    assert_eq!(stats.unwind_sections, 1, "only the walked module is left");
    check_walk(&outer, heap);
}
