//! On-stack replacement: a first-tier call looping in a function that moved up leaves the loop for the
//! higher tier's code without returning, with its locals where they were.

use genjit::{Jit, Source, Tiering};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, Ordering};
use std::time::{Duration, Instant};

/// `spin` as clang -O0 -Xclang -disable-O0-optnone compiles it (metadata dropped): every local in a stack
/// slot. `acc` (a scalar) and `buf` (an array, through address arithmetic) never leave the function, so
/// an OSR entry copies them; `seen`'s address goes to the host, which reads it through that pointer on
/// every iteration, so the entry must use the first tier's slot itself. `calls` is a static, `total` a
/// global: both must stay the first tier's.
///
/// ```c
/// int64_t total; static int64_t calls;
/// int64_t spin(uint64_t seed, int64_t *iterations) {
///     uint64_t acc = seed; uint64_t buf[8] = {0}; int64_t seen = 0;
///     observe(&seen); calls++;
///     int64_t i = 0;
///     while (keep_going(i)) {
///         acc = acc * 6364136223846793005u + 1442695040888963407u;
///         buf[i & 7] += acc >> 33; seen += 1; total += 1; i++;
///     }
///     *iterations = i;
///     uint64_t sum = acc;
///     for (int k = 0; k < 8; k++) sum ^= buf[k] + k;
///     return (int64_t)(sum + seen * 1000 + calls);
/// }
/// ```
const SPIN: &str = r#"
@calls = internal global i64 0, align 8
@total = dso_local global i64 0, align 8

define dso_local i64 @spin(i64 noundef %seed, ptr noundef %iterations) {
entry:
  %seed.addr = alloca i64, align 8
  %iterations.addr = alloca ptr, align 8
  %acc = alloca i64, align 8
  %buf = alloca [8 x i64], align 16
  %seen = alloca i64, align 8
  %i = alloca i64, align 8
  %sum = alloca i64, align 8
  %k = alloca i32, align 4
  store i64 %seed, ptr %seed.addr, align 8
  store ptr %iterations, ptr %iterations.addr, align 8
  %0 = load i64, ptr %seed.addr, align 8
  store i64 %0, ptr %acc, align 8
  call void @llvm.memset.p0.i64(ptr align 16 %buf, i8 0, i64 64, i1 false)
  store i64 0, ptr %seen, align 8
  call void @observe(ptr noundef %seen)
  %1 = load i64, ptr @calls, align 8
  %inc = add nsw i64 %1, 1
  store i64 %inc, ptr @calls, align 8
  store i64 0, ptr %i, align 8
  br label %while.cond

while.cond:
  %2 = load i64, ptr %i, align 8
  %call = call i32 @keep_going(i64 noundef %2)
  %tobool = icmp ne i32 %call, 0
  br i1 %tobool, label %while.body, label %while.end

while.body:
  %3 = load i64, ptr %acc, align 8
  %mul = mul i64 %3, 6364136223846793005
  %add = add i64 %mul, 1442695040888963407
  store i64 %add, ptr %acc, align 8
  %4 = load i64, ptr %acc, align 8
  %shr = lshr i64 %4, 33
  %5 = load i64, ptr %i, align 8
  %and = and i64 %5, 7
  %arrayidx = getelementptr inbounds [8 x i64], ptr %buf, i64 0, i64 %and
  %6 = load i64, ptr %arrayidx, align 8
  %add1 = add i64 %6, %shr
  store i64 %add1, ptr %arrayidx, align 8
  %7 = load i64, ptr %seen, align 8
  %add2 = add nsw i64 %7, 1
  store i64 %add2, ptr %seen, align 8
  %8 = load i64, ptr @total, align 8
  %add3 = add nsw i64 %8, 1
  store i64 %add3, ptr @total, align 8
  %9 = load i64, ptr %i, align 8
  %inc4 = add nsw i64 %9, 1
  store i64 %inc4, ptr %i, align 8
  br label %while.cond

while.end:
  %10 = load i64, ptr %i, align 8
  %11 = load ptr, ptr %iterations.addr, align 8
  store i64 %10, ptr %11, align 8
  %12 = load i64, ptr %acc, align 8
  store i64 %12, ptr %sum, align 8
  store i32 0, ptr %k, align 4
  br label %for.cond

for.cond:
  %13 = load i32, ptr %k, align 4
  %cmp = icmp slt i32 %13, 8
  br i1 %cmp, label %for.body, label %for.end

for.body:
  %14 = load i32, ptr %k, align 4
  %idxprom = sext i32 %14 to i64
  %arrayidx5 = getelementptr inbounds [8 x i64], ptr %buf, i64 0, i64 %idxprom
  %15 = load i64, ptr %arrayidx5, align 8
  %16 = load i32, ptr %k, align 4
  %conv = sext i32 %16 to i64
  %add6 = add i64 %15, %conv
  %17 = load i64, ptr %sum, align 8
  %xor = xor i64 %17, %add6
  store i64 %xor, ptr %sum, align 8
  br label %for.inc

for.inc:
  %18 = load i32, ptr %k, align 4
  %inc7 = add nsw i32 %18, 1
  store i32 %inc7, ptr %k, align 4
  br label %for.cond

for.end:
  %19 = load i64, ptr %sum, align 8
  %20 = load i64, ptr %seen, align 8
  %mul8 = mul nsw i64 %20, 1000
  %add9 = add i64 %19, %mul8
  %21 = load i64, ptr @calls, align 8
  %add10 = add i64 %add9, %21
  ret i64 %add10
}

declare void @llvm.memset.p0.i64(ptr nocapture writeonly, i8, i64, i1 immarg)
declare void @observe(ptr noundef)
declare i32 @keep_going(i64 noundef)
"#;

/// What `spin(seed)` returns after `n` iterations, as its `calls`-th call.
fn expected(seed: u64, n: i64, calls: i64) -> i64 {
    let (mut acc, mut buf) = (seed, [0u64; 8]);
    for i in 0..n {
        acc = acc.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        buf[(i & 7) as usize] = buf[(i & 7) as usize].wrapping_add(acc >> 33);
    }
    let mut sum = acc;
    for (k, b) in buf.iter().enumerate() {
        sum ^= b.wrapping_add(k as u64);
    }
    sum.wrapping_add((n * 1000) as u64).wrapping_add(calls as u64) as i64
}

static SEEN: AtomicPtr<i64> = AtomicPtr::new(std::ptr::null_mut());
static STOP_AT: AtomicI64 = AtomicI64::new(i64::MAX);
static STOP: AtomicBool = AtomicBool::new(false);
static MISMATCH: AtomicBool = AtomicBool::new(false);

extern "C" fn observe(seen: *mut i64) {
    SEEN.store(seen, Ordering::SeqCst);
}

/// Goes on until told to stop (or `STOP_AT` iterations); checks on every iteration that the address
/// `observe` was given still holds the count: the OSR entry kept using the first tier's slot.
extern "C" fn keep_going(i: i64) -> i32 {
    // SAFETY: `spin`'s frame, which owns the slot, is live while it calls this.
    if unsafe { *SEEN.load(Ordering::SeqCst) } != i {
        MISMATCH.store(true, Ordering::SeqCst);
    }
    (!STOP.load(Ordering::SeqCst) && i < STOP_AT.load(Ordering::SeqCst)) as i32
}

#[test]
fn a_call_looping_at_the_first_tier_continues_at_the_higher_tier_with_its_locals() {
    let jit = Jit::builder().process_symbols(true).build().unwrap();
    let d = jit.create_dylib("osr").unwrap();
    d.define_host("observe", observe as extern "C" fn(*mut i64)).unwrap();
    d.define_host("keep_going", keep_going as extern "C" fn(i64) -> i32).unwrap();
    // The call asks for the higher tier after 1,000 back-edges, and for an OSR entry after 1,000 more
    // once its function is there.
    let tiering = Tiering::new().calls(None).back_edges(Some(1_000)).osr(Some(1_000)).delay(Duration::ZERO);
    d.enable_tiering(tiering).unwrap();
    d.add_module(Source::ir_text(SPIN)).unwrap();
    let spin = d.lookup::<fn(u64, *mut i64) -> i64>("spin").unwrap();
    let tiering = || jit.stats().dylibs[0].tiering.clone();

    // One call, looping until the test sees it leave for the OSR entry.
    let result = std::thread::scope(|s| {
        let call = s.spawn(|| {
            let mut n = 0i64;
            let r = spin.call(7, &mut n);
            (r, n)
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while tiering().osr_transfers == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        STOP.store(true, Ordering::SeqCst);
        call.join().unwrap()
    });
    let stats = tiering();
    assert_eq!((stats.tier_ups, stats.osr_entries, stats.osr_transfers), (1, 1, 1));
    let (r, n) = result;
    assert!(n > 2_000, "left the loop after {n} iterations");
    assert_eq!(r, expected(7, n, 1), "the call's locals survived the transfer ({n} iterations)");
    assert!(!MISMATCH.load(Ordering::SeqCst), "the escaped local stayed where the host saw it");
    // SAFETY: the module defines `total` as an i64.
    let total = unsafe { *(d.lookup_address("total").unwrap() as *const i64) };
    assert_eq!(total, n, "the global is the first tier's");

    // The next call starts at the higher tier; the static is the same one.
    STOP.store(false, Ordering::SeqCst);
    STOP_AT.store(5_000, Ordering::SeqCst);
    let mut n2 = 0i64;
    assert_eq!(spin.call(9, &mut n2), expected(9, 5_000, 2));
    assert_eq!(d.tier_status("spin").unwrap().tier, 1);
    assert_eq!(tiering().osr_transfers, 1, "a call of the higher tier has no transfer to make");
}

/// A bytecode interpreter dispatching by computed goto, as clang -O0 lays it out: every handler fetches
/// the next instruction, loads its handler's address from a constant table and branches to one shared
/// block at the end, whose `phi` gathers the addresses for its one `indirectbr`. The loop is that
/// `indirectbr` jumping back to a handler, not a branch to a header. Opcodes: 0 `acc += x`,
/// 1 `acc *= 3`, 2 halt, 3 `n += 1` and back to the start while `go_on(n)`.
fn goto_interpreter() -> String {
    let fetch = |k: &str| {
        format!(
            "  %p{k} = load ptr, ptr %pc\n  %op{k} = load i8, ptr %p{k}\n  %next{k} = getelementptr i8, ptr %p{k}, i64 1\n  \
             store ptr %next{k}, ptr %pc\n  %i{k} = zext i8 %op{k} to i64\n  \
             %slot{k} = getelementptr [4 x ptr], ptr @ops, i64 0, i64 %i{k}\n  %t{k} = load ptr, ptr %slot{k}\n  \
             br label %indirectgoto\n"
        )
    };
    format!(
        "@ops = internal global [4 x ptr] [ptr blockaddress(@run, %inc), ptr blockaddress(@run, %triple), \
         ptr blockaddress(@run, %halt), ptr blockaddress(@run, %back)]\n\
         declare i32 @go_on(i64)\n\
         define i64 @run(ptr %code, i64 %x) {{\nentry:\n  %acc = alloca i64\n  %pc = alloca ptr\n  %n = alloca i64\n  \
         store i64 0, ptr %acc\n  store ptr %code, ptr %pc\n  store i64 0, ptr %n\n{}\
         inc:\n  %a = load i64, ptr %acc\n  %a1 = add i64 %a, %x\n  store i64 %a1, ptr %acc\n{}\
         triple:\n  %b = load i64, ptr %acc\n  %b1 = mul i64 %b, 3\n  store i64 %b1, ptr %acc\n{}\
         back:\n  %c = load i64, ptr %n\n  %c1 = add i64 %c, 1\n  store i64 %c1, ptr %n\n  %g = call i32 @go_on(i64 %c1)\n  \
         %again = icmp ne i32 %g, 0\n  br i1 %again, label %restart, label %on\n\
         restart:\n  store ptr %code, ptr %pc\n  br label %on\n\
         on:\n{}\
         halt:\n  %r = load i64, ptr %acc\n  %m = load i64, ptr %n\n  %m1 = mul i64 %m, 1000000\n  %s = add i64 %r, %m1\n  ret i64 %s\n\
         indirectgoto:\n  %t = phi ptr [ %t0, %entry ], [ %t1, %inc ], [ %t2, %triple ], [ %t3, %on ]\n  \
         indirectbr ptr %t, [label %inc, label %triple, label %halt, label %back]\n}}\n",
        fetch("0"),
        fetch("1"),
        fetch("2"),
        fetch("3"),
    )
}

static GOTO_STOP: AtomicBool = AtomicBool::new(false);
static GOTO_TRIPS: AtomicI64 = AtomicI64::new(0);

/// Records the trip count it is called with; goes on until told to stop.
extern "C" fn go_on(n: i64) -> i32 {
    GOTO_TRIPS.store(n, Ordering::SeqCst);
    !GOTO_STOP.load(Ordering::SeqCst) as i32
}

/// A computed-goto interpreter running one long program (Lua's `luaV_execute` running a script's main
/// chunk) leaves the first tier at its dispatch: the runtime finds the handler the `indirectbr` was about
/// to jump to, and the entry continues there, jumping through its own copy of the table (through the
/// first tier's, or the higher tier's function's, it would land in another function's frame).
#[test]
fn a_computed_goto_call_continues_at_the_higher_tier_from_its_dispatch() {
    let jit = Jit::builder().process_symbols(true).build().unwrap();
    let d = jit.create_dylib("osr-goto").unwrap();
    d.define_host("go_on", go_on as extern "C" fn(i64) -> i32).unwrap();
    let tiering = Tiering::new().calls(None).back_edges(Some(1_000)).osr(Some(1_000)).delay(Duration::ZERO);
    d.enable_tiering(tiering).unwrap();
    d.add_module(Source::ir_text(goto_interpreter())).unwrap();
    let run = d.lookup::<fn(*const u8, i64) -> i64>("run").unwrap();
    let tiering = || jit.stats().dylibs[0].tiering.clone();
    // (acc + x) * 3, once per trip, until told to stop.
    let code = [0u8, 1, 3, 2];
    let x = 0x0123_4567;
    let expected = |n: i64| {
        let acc = (0..n).fold(0i64, |acc, _| acc.wrapping_add(x).wrapping_mul(3));
        acc.wrapping_add(n * 1_000_000)
    };
    let result = std::thread::scope(|s| {
        let call = s.spawn(|| run.call(code.as_ptr(), x));
        let deadline = Instant::now() + Duration::from_secs(60);
        while tiering().osr_transfers == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        GOTO_STOP.store(true, Ordering::SeqCst);
        call.join().unwrap()
    });
    let stats = tiering();
    assert_eq!((stats.tier_ups, stats.osr_entries, stats.osr_transfers), (1, 1, 1));
    let trips = GOTO_TRIPS.load(Ordering::SeqCst);
    assert!(trips > 1_000, "left after {trips} trips");
    assert_eq!(result, expected(trips), "the accumulator and the trip count survived the transfer");
    // The next call starts at the higher tier, whose own table is intact.
    GOTO_STOP.store(false, Ordering::SeqCst);
    let once = [0u8, 1, 0, 2];
    assert_eq!(run.call(once.as_ptr(), 5), (5 * 3) + 5);
    assert_eq!(d.tier_status("run").unwrap().tier, 1);
}
