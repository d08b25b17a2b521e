//! Epoch pinning for calls into JIT code, and the background reclaimer that frees retired code.
//!
//! ## Pinning
//! Every Rust call into JIT code runs under a [`Pinned`] scope: a crossbeam-epoch guard (on the process-wide
//! default collector) plus a note of when the thread's outermost pin began, so [`oldest_pin_age`] can say
//! which thread is holding reclamation back. Pins nest; only the outermost one is timed. The time is read
//! from a coarse clock the reclaimer advances every [`TICK`], so pinning costs no system call.
//!
//! ## Retiring
//! [`retire`] appends a value to a list; at its next collection the reclaimer hands the whole list to
//! crossbeam-epoch as one deferred function (one bag per batch, not per value: see [`retire`]) that does
//! *not* drop the values: it only moves them to the reclaimer's queue. So whichever thread happens to run crossbeam's collection (possibly a
//! caller inside `Func::call`) pays a push, never the cost of freeing a module (heap lock, `int3` fill, hole
//! punching, unwinder deregistration). The reclaimer thread drops queued values and records how long each
//! waited between retirement and release (the *reclamation lag*).
//!
//! ## The reclaimer
//! One thread per process, started with the first `Jit`. While anything retired is still pending it wakes
//! every [`TICK`] (2 ms): it advances the coarse clock, pins and flushes (which lets crossbeam advance the
//! global epoch and run due deferred functions), and drops what is queued. When nothing is pending it
//! sleeps on a condition variable that [`retire`] signals, waking otherwise only once a second to advance
//! the clock: an idle JIT costs no measurable CPU (it used to wake every 2 ms forever, ~2% of a core). Pin
//! ages are therefore exact to the tick while reclamation is under way and to a second while idle. Users
//! never need to call anything for memory to come back; [`reclaim_now`] exists for tests and for callers
//! that want the memory back before they continue.

use crossbeam_epoch as epoch;
use parking_lot::{Condvar, Mutex};
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant};

/// How often the reclaimer collects while something waits for its grace period.
pub(crate) const TICK: Duration = Duration::from_millis(2);
/// How often an idle reclaimer wakes, only to advance the clock pin ages are read from.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Signalled by [`retire`]: there is work for an idle reclaimer.
static WAKE: Condvar = Condvar::new();
/// Signalled by the reclaimer after it dropped a batch, for [`reclaim_now`].
static DRAINED: Condvar = Condvar::new();

/// Milliseconds since [`start`] first ran, advanced by the reclaimer (a coarse clock for pin ages).
static CLOCK_MS: AtomicU64 = AtomicU64::new(1);
static EPOCH_START: OnceLock<Instant> = OnceLock::new();

/// What one pending retirement costs beyond its value: its record in the deferred batch and its number
/// in the pending set, for `Stats::awaiting_metadata_bytes`.
pub(crate) const RECORD_BYTES: usize = std::mem::size_of::<Retired>() + 32;

/// Values retired since the reclaimer's last collection: their grace period has not started yet.
static INCOMING: Mutex<Vec<Retired>> = Mutex::new(Vec::new());
/// Values whose grace period has passed, waiting for the reclaimer to drop them.
static QUEUE: Mutex<Vec<Retired>> = Mutex::new(Vec::new());
/// Retired values not yet dropped (queued or still waiting for their grace period), by retirement number,
/// so [`reclaim_now`] can wait for what was retired before it was called and not for later retirements
/// (which, under a steady stream of them, may never all be gone at once).
static PENDING: Mutex<Pending> = Mutex::new(Pending { next: 0, numbers: BTreeSet::new() });

struct Pending {
    next: u64,
    numbers: BTreeSet<u64>,
}

/// Where each thread publishes when its outermost pin began (0: not pinned).
static PIN_STARTS: Mutex<Vec<Arc<AtomicU64>>> = Mutex::new(Vec::new());

struct PinSlot {
    depth: Cell<usize>,
    since: Arc<AtomicU64>,
}

impl PinSlot {
    fn new() -> PinSlot {
        let since = Arc::new(AtomicU64::new(0));
        PIN_STARTS.lock().push(since.clone());
        PinSlot { depth: Cell::new(0), since }
    }
}

impl Drop for PinSlot {
    fn drop(&mut self) {
        PIN_STARTS.lock().retain(|s| !Arc::ptr_eq(s, &self.since));
    }
}

thread_local! {
    static PIN_SLOT: PinSlot = PinSlot::new();
}

/// A pinned scope: while it lives, no code this thread can reach through genjit is freed.
///
/// `Func::call` pins for the duration of one call; hold a `Pinned` yourself to make many calls under one pin
/// ([`Func::call_pinned`](crate::Func)). Keep scopes short: a thread that stays pinned holds back the
/// reclamation of everything retired after it pinned (see [`crate::Stats::oldest_pin`]).
///
/// ```compile_fail
/// // A pin belongs to its thread.
/// fn needs_send<T: Send>(_: T) {}
/// needs_send(genjit::pin());
/// ```
pub struct Pinned {
    guard: epoch::Guard,
}

impl std::fmt::Debug for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pinned")
    }
}

impl Pinned {
    pub(crate) fn guard(&self) -> &epoch::Guard {
        &self.guard
    }
}

/// Pins the calling thread (see [`Pinned`]).
#[inline]
pub fn pin() -> Pinned {
    // `try_with`: during thread teardown the slot may be gone; the pin itself still protects.
    let _ = PIN_SLOT.try_with(|slot| {
        let depth = slot.depth.get();
        if depth == 0 {
            // Relaxed: the value is a diagnostic read by `oldest_pin_age`, not a synchronization point.
            slot.since.store(CLOCK_MS.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        slot.depth.set(depth + 1);
    });
    Pinned { guard: epoch::pin() }
}

impl Drop for Pinned {
    #[inline]
    fn drop(&mut self) {
        let _ = PIN_SLOT.try_with(|slot| {
            let depth = slot.depth.get() - 1;
            slot.depth.set(depth);
            if depth == 0 {
                slot.since.store(0, Ordering::Relaxed);
            }
        });
    }
}

/// How long the longest-pinned thread has been pinned (to the reclaimer's tick), if any thread is pinned.
pub(crate) fn oldest_pin_age() -> Option<Duration> {
    let now = CLOCK_MS.load(Ordering::Relaxed);
    let oldest = PIN_STARTS.lock().iter().map(|s| s.load(Ordering::Relaxed)).filter(|&s| s != 0).min()?;
    Some(Duration::from_millis(now.saturating_sub(oldest)))
}

/// Reclamation figures shared by one JIT's retirements.
#[derive(Debug, Default)]
pub(crate) struct LagStats {
    samples: Mutex<Vec<u32>>,
    next: AtomicUsize,
}

const LAG_WINDOW: usize = 4096;

impl LagStats {
    fn record(&self, lag: Duration) {
        let micros = lag.as_micros().min(u128::from(u32::MAX)) as u32;
        let mut samples = self.samples.lock();
        if samples.len() < LAG_WINDOW {
            samples.push(micros);
        } else {
            // Relaxed: the index only spreads samples over the window.
            let i = self.next.fetch_add(1, Ordering::Relaxed) % LAG_WINDOW;
            samples[i] = micros;
        }
    }

    /// Median, 99th percentile and maximum over the last 4096 reclamations.
    pub(crate) fn summary(&self) -> Option<crate::Lag> {
        let mut s = self.samples.lock().clone();
        if s.is_empty() {
            return None;
        }
        s.sort_unstable();
        let at = |q: f64| Duration::from_micros(u64::from(s[((s.len() - 1) as f64 * q).round() as usize]));
        Some(crate::Lag { p50: at(0.5), p99: at(0.99), max: at(1.0), samples: s.len() })
    }
}

struct Retired {
    number: u64,
    value: Box<dyn Send>,
    /// Nanoseconds since [`EPOCH_START`] (8 bytes where an `Instant` takes 16).
    at: u64,
    lag: Option<Arc<LagStats>>,
}

/// Nanoseconds since the process's first `Jit`, for retirement times.
fn now_ns() -> u64 {
    EPOCH_START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Hands `value` to epoch reclamation; it is dropped by the reclaimer after every thread pinned now has
/// unpinned. `lag` records how long that took.
///
/// The value only joins [`INCOMING`]; the reclaimer defers the whole batch to crossbeam at its next
/// collection. Deferring later than the retirement only makes the grace period longer (every thread pinned
/// at retirement is still pinned, or has unpinned, when the batch is deferred). Deferring each value with
/// its own flush, as genjit first did, sealed one crossbeam bag (64 slots, ~2 KiB) per retirement: about
/// 6 KiB held per removed module while it waited, three times the module's own metadata.
pub(crate) fn retire<T: Send + 'static>(value: T, lag: Option<Arc<LagStats>>) {
    let mut value = Some(Box::new(value) as Box<dyn Send>);
    // Inside `batched`, join the batch; otherwise (or while the thread is being torn down) go alone.
    let _ = BATCH.try_with(|b| {
        if let Some(batch) = b.borrow_mut().as_mut() {
            batch.values.extend(value.take());
            if batch.lag.is_none() {
                batch.lag = lag.clone();
            }
        }
    });
    if let Some(value) = value {
        retire_boxed(value, lag);
    }
}

fn retire_boxed(value: Box<dyn Send>, lag: Option<Arc<LagStats>>) {
    let number = {
        let mut pending = PENDING.lock();
        let number = pending.next;
        pending.next += 1;
        pending.numbers.insert(number);
        number
    };
    INCOMING.lock().push(Retired { number, value, at: now_ns(), lag });
    // No system call unless the reclaimer is waiting.
    WAKE.notify_one();
}

/// Values retired on this thread inside [`batched`], not yet handed over.
#[derive(Default)]
struct Batch {
    values: Vec<Box<dyn Send>>,
    lag: Option<Arc<LagStats>>,
}

thread_local! {
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Runs `f`; everything this thread retires meanwhile is retired as one value when `f` returns (or
/// unwinds). One change to a dylib retires its modules, its old slot targets and its garbage together,
/// and one reclaimer pass retires every entry index it frees together: one pending record instead of one
/// per value (each costs ~100 bytes while it waits). Retiring later only lengthens the grace period.
pub(crate) fn batched<R>(f: impl FnOnce() -> R) -> R {
    struct End;
    impl Drop for End {
        fn drop(&mut self) {
            if let Some(mut batch) = BATCH.with(|b| b.borrow_mut().take()) {
                match batch.values.len() {
                    0 => {}
                    1 => retire_boxed(batch.values.pop().expect("one value"), batch.lag),
                    _ => retire_boxed(Box::new(batch.values.into_boxed_slice()), batch.lag),
                }
            }
        }
    }
    if BATCH.with(|b| b.borrow().is_some()) {
        return f();
    }
    BATCH.with(|b| *b.borrow_mut() = Some(Batch::default()));
    let _end = End;
    f()
}

/// Starts the grace period of everything retired since the last call: one deferred function, one bag.
fn defer_incoming() {
    let mut batch = std::mem::take(&mut *INCOMING.lock());
    if batch.is_empty() {
        return;
    }
    // It may wait long (a pinned thread): without the list's doubling slack.
    batch.shrink_to_fit();
    let guard = epoch::pin();
    guard.defer(move || QUEUE.lock().extend(batch));
    // Move the deferred function to the global queue now, so the next collection can run it (otherwise it
    // waits in this thread's local bag until 64 more arrive).
    guard.flush();
}

/// Drops everything whose grace period has passed; returns how many values were dropped.
fn drain() -> usize {
    let batch = std::mem::take(&mut *QUEUE.lock());
    let n = batch.len();
    if n == 0 {
        return 0;
    }
    let _span = tracing::debug_span!("reclaim", values = n).entered();
    let mut numbers = Vec::with_capacity(n);
    // Values that retire others when dropped (an entry frees its index after a grace period of its own)
    // retire them as one.
    batched(|| {
        for r in batch {
            let Retired { number, value, at, lag } = r;
            drop(value);
            if let Some(lag) = lag {
                lag.record(Duration::from_nanos(now_ns().saturating_sub(at)));
            }
            numbers.push(number);
        }
    });
    let mut pending = PENDING.lock();
    for number in numbers {
        pending.numbers.remove(&number);
    }
    DRAINED.notify_all();
    n
}

fn collect() {
    defer_incoming();
    // Each flush lets crossbeam advance the global epoch once and run up to eight sealed bags; a few per
    // tick keep up with thousands of retirements a second.
    for _ in 0..8 {
        epoch::pin().flush();
    }
    drain();
}

/// Starts the process's reclaimer thread (once).
pub(crate) fn start() {
    static START: Once = Once::new();
    START.call_once(|| {
        let t0 = *EPOCH_START.get_or_init(Instant::now);
        std::thread::Builder::new()
            .name("genjit-reclaimer".to_string())
            .spawn(move || loop {
                wait_for_work();
                let ms = t0.elapsed().as_millis() as u64 + 1;
                CLOCK_MS.store(ms, Ordering::Relaxed);
                collect();
            })
            .expect("spawning the genjit reclaimer thread");
    });
}

/// Returns after a tick if anything is pending, else when [`retire`] signals or the idle tick passes.
fn wait_for_work() {
    let mut pending = PENDING.lock();
    if pending.numbers.is_empty() {
        WAKE.wait_for(&mut pending, IDLE_TICK);
    } else {
        drop(pending);
        std::thread::sleep(TICK);
    }
}

/// Waits until everything retired before this call has been dropped, or `timeout` passes; returns whether
/// it all was. Threads that stay pinned hold this back; later retirements do not.
///
/// The caller helps the epoch advance but leaves the dropping to the reclaimer thread: two threads freeing
/// at once mostly fought over the allocator's locks (tearing down 100k modules took 25% longer).
pub(crate) fn reclaim_now(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let before = PENDING.lock().next;
    loop {
        defer_incoming();
        for _ in 0..8 {
            epoch::pin().flush();
        }
        WAKE.notify_one();
        let mut pending = PENDING.lock();
        if pending.numbers.first().is_none_or(|&oldest| oldest >= before) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        DRAINED.wait_for(&mut pending, TICK.min(deadline - now));
    }
}
