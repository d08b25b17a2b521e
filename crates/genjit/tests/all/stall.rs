//! Reclamation a long-running caller cannot stall (DESIGN.md, "Reclamation domains").
//!
//! A thread stays inside a JIT call in dylib `a` (the call waits in a host function) while dylib `b` of
//! the same JIT and dylib `c` of another JIT churn: neither may be held back. What the long call *can*
//! reach (a redefinition in `a`) is held, and reported as a stall naming the thread, unless the handshake
//! finds the thread not using it: then it is freed during the call, except the body the call is running.
//!
//! Each test runs in a child process: the host wait is process-wide, and RSS must not mix with other
//! tests'.

use genjit::{Dylib, Jit, Source, Stall};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

static ENTERED: AtomicBool = AtomicBool::new(false);
static RELEASE: AtomicBool = AtomicBool::new(false);

/// The host function the long call waits in.
extern "C" fn hold() {
    ENTERED.store(true, Ordering::SeqCst);
    while !RELEASE.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts a thread named `long-caller` inside `long_call` of `a`; returns once it is in the host wait.
fn start_long_call(a: &Dylib) -> std::thread::JoinHandle<()> {
    let f = a.lookup::<fn()>("long_call").unwrap();
    let t = std::thread::Builder::new().name("long-caller".into()).spawn(move || f.call()).unwrap();
    while !ENTERED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    t
}

struct Churned {
    cycles: usize,
    max_awaiting: usize,
    lag_p99: Duration,
}

/// Adds and removes one-function modules in `d` for `time`, sampling the JIT's awaiting bytes.
fn churn(jit: &Jit, d: &Dylib, time: Duration, salt: usize) -> Churned {
    let template = crate::template_object();
    let deadline = Instant::now() + time;
    let (mut cycles, mut max_awaiting) = (0, 0);
    while Instant::now() < deadline {
        let m = d.add_module(Source::object(crate::renamed(&template, salt + cycles % 100_000))).unwrap();
        d.remove_module(&m).unwrap();
        cycles += 1;
        if cycles % 50 == 0 {
            max_awaiting = max_awaiting.max(jit.stats().awaiting_bytes);
        }
    }
    let lag = jit.stats().reclamation_lag.expect("churn reclaimed something");
    Churned { cycles, max_awaiting, lag_p99: lag.p99 }
}

#[test]
fn a_long_call_holds_back_neither_other_dylibs_nor_other_jits() {
    // Own process: the host wait is process-wide, and RSS must not mix with other tests'.
    if crate::in_child("stall::a_long_call_holds_back_neither_other_dylibs_nor_other_jits").is_some() {
        return;
    }
    const PHASE: Duration = Duration::from_millis(2500);
    // Without a long call: the baseline.
    let quiet = Jit::new().unwrap();
    let qb = quiet.create_dylib("b").unwrap();
    let base = churn(&quiet, &qb, PHASE, 0);

    let stalls: Arc<Mutex<Vec<Stall>>> = Arc::default();
    let reported = stalls.clone();
    let jit = Jit::builder()
        .stall_after(Duration::from_millis(300))
        .on_stall(move |s| reported.lock().push(s.clone()))
        .build()
        .unwrap();
    jit.define_host("hold", hold as extern "C" fn()).unwrap();
    let a = jit.create_dylib("a").unwrap();
    let running = a
        .add_module(Source::ir_text(
            "declare void @hold()\ndefine void @long_call() {\n  call void @hold()\n  ret void\n}\n",
        ))
        .unwrap();
    let b = jit.create_dylib("b").unwrap();
    let other = Jit::new().unwrap();
    let c = other.create_dylib("c").unwrap();
    let caller = start_long_call(&a);
    let same = churn(&jit, &b, PHASE, 0);
    let apart = churn(&other, &c, PHASE / 2, 0);
    let s = jit.stats();
    eprintln!(
        "no long call: {} cycles, awaiting <= {} B, lag p99 {:?}; during a long call in `a`: dylib `b` {} \
         cycles, awaiting <= {} B, lag p99 {:?}; another JIT {} cycles, awaiting <= {} B, lag p99 {:?}",
        base.cycles,
        base.max_awaiting,
        base.lag_p99,
        same.cycles,
        same.max_awaiting,
        same.lag_p99,
        apart.cycles,
        apart.max_awaiting,
        apart.lag_p99
    );
    assert!(s.oldest_pin.is_some_and(|age| age >= PHASE), "the long call is pinned: {:?}", s.oldest_pin);
    // The unwind objects of the 256 KiB window `a`'s module shares with `b`'s churn could be read by a
    // thread unwinding `a`'s code; the handshake frees them (the caller is not in the unwinder).
    assert!(s.stalls.iter().all(|st| st.bytes == 0), "the long call holds nothing of `b`: {:?}", s.stalls);
    assert!(same.cycles > 500 && apart.cycles > 250, "too little churn");
    // Not held back: everything `b` and the other JIT retired is freed while the call goes on (held, it
    // would wait for the call's end and these would time out). Load-independent: a starved reclaimer
    // is slower, never stuck; the figures (awaiting, lag, RSS) are the bench's (`runtime stall`).
    assert!(jit.reclaim(std::time::Duration::from_secs(20)), "`b`'s retirements wait for the long call");
    assert!(other.reclaim(std::time::Duration::from_secs(20)), "the other JIT's retirements wait");
    assert!(s.oldest_pin.is_some() && jit.stats().oldest_pin.is_some(), "the call is still running");
    // What the long call is running is held, and reported: supersede the running body.
    a.add_module(Source::ir_text("define void @long_call() {\n  ret void\n}\n")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let s = jit.stats();
    let [stall] = &s.stalls[..] else { panic!("one stall expected: {:?}", s.stalls) };
    assert_eq!((stall.thread.as_str(), &stall.dylibs[..]), ("long-caller", &["a".to_string()][..]));
    let (code, data) = running.heap_bytes();
    assert!(stall.retirements >= 1 && stall.bytes >= code + data && stall.pinned_for >= PHASE, "{stall:?}");
    let held = stall.bytes;
    assert!(s.awaiting_bytes > 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while stalls.lock().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let reports = stalls.lock().clone();
    assert!(
        reports.len() == 1 && reports[0].thread == "long-caller" && reports[0].bytes >= held,
        "reported once, naming the thread: {reports:?}"
    );
    RELEASE.store(true, Ordering::SeqCst);
    caller.join().unwrap();
    assert!(jit.reclaim(Duration::from_secs(5)));
    let s = jit.stats();
    assert_eq!((s.awaiting_bytes, s.stalls.len(), s.oldest_pin), (0, 0, None));
}

#[test]
fn superseded_bodies_are_freed_during_a_long_call_except_the_running_one() {
    if crate::in_child("stall::superseded_bodies_are_freed_during_a_long_call_except_the_running_one")
        .is_some()
    {
        return;
    }
    const REDEFINITIONS: i64 = 1_000;
    let jit = Jit::builder().handshake_after(Some(Duration::from_millis(10))).build().unwrap();
    jit.define_host("hold", hold as extern "C" fn()).unwrap();
    let a = jit.create_dylib("a").unwrap();
    // The long call runs `long_call` of this module: it calls `g`, waits in the host, then adds 40 to
    // what `g` returned. Its return address into this module is on the caller's stack meanwhile.
    a.add_module(Source::ir_text("define i64 @g() {\n  ret i64 2\n}\n")).unwrap();
    let running = a
        .add_module(Source::ir_text(
            "declare void @hold()\ndeclare i64 @g()\ndefine i64 @long_call() {\n  %r = call i64 @g()\n  \
             call void @hold()\n  %s = add i64 %r, 40\n  ret i64 %s\n}\n",
        ))
        .unwrap();
    let (code, data) = running.heap_bytes();
    let f = a.lookup::<fn() -> i64>("long_call").unwrap();
    let caller = std::thread::Builder::new().name("long-caller".into()).spawn(move || f.call()).unwrap();
    while !ENTERED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Supersede the running body, then redefine `g` again and again.
    a.add_module(Source::ir_text("declare i64 @g()\ndefine i64 @long_call() {\n  ret i64 0\n}\n")).unwrap();
    let g = a.lookup::<fn() -> i64>("g").unwrap();
    for v in 3..3 + REDEFINITIONS {
        a.add_module(Source::ir_text(format!("define i64 @g() {{\n  ret i64 {v}\n}}\n"))).unwrap();
        assert_eq!(g.call(), v);
    }
    // All but the running module come back while the call goes on.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = jit.stats();
    while s.awaiting_bytes > code + data && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        s = jit.stats();
    }
    eprintln!(
        "{REDEFINITIONS} redefinitions during a long call: {} handshakes freed {} retirements; awaiting {} B \
         (the running module: {} B); stalls {:?}",
        s.handshakes,
        s.freed_by_handshake,
        s.awaiting_bytes,
        code + data,
        s.stalls
    );
    assert_eq!(s.awaiting_bytes, code + data, "only the running module waits");
    assert!(s.freed_by_handshake >= REDEFINITIONS as u64 / 2, "{} freed by handshakes", s.freed_by_handshake);
    let [stall] = &s.stalls[..] else { panic!("one stall expected: {:?}", s.stalls) };
    assert!(stall.thread == "long-caller" && stall.bytes >= code + data, "{stall:?}");
    // The running body was kept: the call finishes in it (`g` was 2 when it was called).
    RELEASE.store(true, Ordering::SeqCst);
    assert_eq!(caller.join().unwrap(), 42);
    assert!(jit.reclaim(Duration::from_secs(5)));
    assert_eq!(jit.stats().awaiting_bytes, 0);
}

#[test]
fn without_membarrier_pins_stay_correct() {
    // The model test's callers and mutator, with the page-protection flush as the heavy fence.
    let name = "model::callers_never_see_torn_or_freed_code";
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("GENJIT_NO_MEMBARRIER", "1")
        .env("GENJIT_SOAK_SECS", "2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("(fenceless pins: false)"), "{stderr}");
}

/// A stall callback that panics runs on the process's reclaimer thread: the panic is caught, and
/// reclamation goes on (uncaught, it ended that thread, and no JIT of the process freed anything again).
#[test]
fn a_stall_callback_that_panics_does_not_stop_reclamation() {
    if crate::in_child("stall::a_stall_callback_that_panics_does_not_stop_reclamation").is_some() {
        return;
    }
    static CALLED: AtomicBool = AtomicBool::new(false);
    let jit = Jit::builder()
        .stall_after(Duration::from_millis(100))
        .on_stall(|_| {
            CALLED.store(true, Ordering::SeqCst);
            panic!("a stall callback with a bug");
        })
        .build()
        .unwrap();
    jit.define_host("hold", hold as extern "C" fn()).unwrap();
    let a = jit.create_dylib("a").unwrap();
    a.add_module(Source::ir_text(
        "declare void @hold()\ndefine void @long_call() {\n  call void @hold()\n  ret void\n}\n",
    ))
    .unwrap();
    let caller = start_long_call(&a);
    // The running body, superseded: held back by the call, which is reported.
    a.add_module(Source::ir_text("define void @long_call() {\n  ret void\n}\n")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !CALLED.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(CALLED.load(Ordering::SeqCst), "the stall was reported");
    RELEASE.store(true, Ordering::SeqCst);
    caller.join().unwrap();
    assert!(jit.reclaim(Duration::from_secs(20)), "the reclaimer lives on: the old body is freed");
    let other = Jit::new().unwrap();
    let d = other.create_dylib("d").unwrap();
    let m = d.add_module(Source::ir_text("define i64 @f() {\n  ret i64 1\n}\n")).unwrap();
    d.remove_module(&m).unwrap();
    assert!(other.reclaim(Duration::from_secs(20)), "and another JIT's removals are freed too");
}
