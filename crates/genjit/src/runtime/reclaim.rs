//! Reclamation domains: pins, retirement, the background reclaimer, and what holds memory back.
//!
//! ## Domains and scopes
//! Every `Jit` has its own [`Domain`]: its own epoch, its own readers, its own retirements. A thread
//! pinned in one JIT never delays another. Within a domain, every dylib is a *scope*, and the domain
//! knows which scopes' code each scope can reach (its link order, transitively, and redirections to
//! other dylibs' symbols; the graph only grows). A pin names the scope it runs (`Func::call` the callee's
//! dylib; [`Jit::pin`](crate::Jit::pin) every scope); a retirement names the scope it came from. A
//! thread that has run in dylib A for an hour holds back only what A can reach.
//!
//! ## Pinning
//! A pin is two plain stores into the thread's reader word and compiler fences (`grace`); the reclaimer
//! pays for the ordering with `membarrier`. The thread's reader for a domain is found through a
//! one-entry thread-local cache (the last domain used), so a call costs no lookup. Pins nest; a nested
//! pin in another scope widens the outer one to every scope.
//!
//! ## Retiring and reclaiming
//! [`Domain::retire`] stamps a value with the epoch and queues it. One process-wide reclaimer thread
//! runs a *pass* per domain every [`TICK`] while anything is queued: it takes the new retirements,
//! advances the epoch, runs the heavy fence, observes every reader, and drops each retirement no reader
//! can still be using (see [`grace::holds`]). Retirements held back by a reader wait in a second list
//! that is looked at again only when some reader's pin changes, so a long stall costs a pass nothing per
//! waiting value. Values are dropped on the reclaimer thread, outside every lock; each retirement's
//! time to release is the *reclamation lag*.
//!
//! ## Stalls
//! A reader whose pin began in an epoch before the current one and that holds a retirement back is a
//! *stall*: [`Domain::stalls`] names the thread, how long it has been pinned (from when its epoch began;
//! epochs advance at least once a second), the scopes it runs and what it holds. A stall that has held a
//! retirement back for longer than the domain's threshold is reported once per pin, as a `tracing`
//! warning and to the JIT's callback.
//!
//! ## Precise reclamation
//! Every retired value says what dropping it may free ([`Retire::ranges`]: a module's code and data
//! blocks, a stub). When retirements are held only by readers pinned for longer than the domain's
//! `handshake_after`, the reclaimer asks each of those threads (`sys::handshake`: a signal whose handler
//! scans the thread's registers and stack) which of those ranges it still holds an address in, and frees
//! the retirements none of their holders uses, while the pins go on. At most one round per
//! `handshake_after` (at least 1 ms).

use super::grace::{self, Epoch, ReaderState, ANY};
use parking_lot::{Condvar, Mutex};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How often the reclaimer passes while something waits for its grace period.
pub(crate) const TICK: Duration = Duration::from_millis(2);
/// How often an idle reclaimer wakes: to advance the epochs pin ages are read from, and to report stalls.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Signalled by [`Domain::retire`]: there is work for an idle reclaimer.
static WAKE: Condvar = Condvar::new();
static WAKE_LOCK: Mutex<bool> = Mutex::new(false);
/// Signalled by the reclaimer after a pass dropped something, for [`Domain::reclaim_now`].
static DRAINED: Condvar = Condvar::new();
static DRAINED_LOCK: Mutex<()> = Mutex::new(());
/// Every domain with a `Jit` or with retirements left.
static DOMAINS: Mutex<Vec<Arc<Domain>>> = Mutex::new(Vec::new());
static START: OnceLock<Instant> = OnceLock::new();
static NEXT_DOMAIN: AtomicU64 = AtomicU64::new(1);

/// The scope of a pin or retirement that concerns every dylib of a JIT.
pub(crate) const ANY_SCOPE: u32 = ANY;

/// What one pending retirement costs beyond its value (its record), for `Stats::awaiting_metadata_bytes`.
pub(crate) const RECORD_BYTES: usize = std::mem::size_of::<Retired>();

/// Nanoseconds since the process's first domain.
fn now_ns() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A retired value: what dropping it may free, for the handshake (see [`Domain::retire`]).
pub(crate) trait Retire: Send + 'static {
    /// Appends the address ranges `[start, end)` that dropping this value may free (code and data
    /// blocks, stubs); `false` if it cannot say, and then only the end of every pin holding it frees it.
    fn ranges(&self, out: &mut Vec<(usize, usize)>) -> bool;
}

impl Retire for Box<[Box<dyn Retire>]> {
    fn ranges(&self, out: &mut Vec<(usize, usize)>) -> bool {
        self.iter().all(|v| v.ranges(out))
    }
}

/// A value with nothing to say about its memory (dropping it frees nothing a thread may be running).
pub(crate) struct Opaque<T>(pub(crate) T);

impl<T: Send + 'static> Retire for Opaque<T> {
    fn ranges(&self, _: &mut Vec<(usize, usize)>) -> bool {
        false
    }
}

/// A thread reported as holding memory back (see [`Stats::stalls`](crate::Stats::stalls)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Stall {
    /// The thread's name, or `tid <n>` if it has none.
    pub thread: String,
    /// Its kernel thread id.
    pub tid: i32,
    /// How long its pin has lasted (to the epoch: within 2 ms while reclamation is under way, a
    /// second otherwise).
    pub pinned_for: Duration,
    /// How long the oldest retirement it holds has waited (what `stall_after` is compared with: a
    /// retirement the handshake frees soon is not a stall).
    pub waiting: Duration,
    /// The dylibs whose code it may be running (`["*"]`: any dylib of the JIT).
    pub dylibs: Vec<String>,
    /// Retirements (each a change's removed modules and replaced bodies, or smaller pieces) it holds.
    pub retirements: usize,
    /// Heap and metadata bytes of those retirements.
    pub bytes: usize,
}

/// Reclamation figures of one domain's timed retirements.
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

/// One retired value waiting for its grace period.
struct Retired {
    value: Box<dyn Retire>,
    /// Retirement order in the domain, for [`Domain::reclaim_now`].
    number: u64,
    stamp: u64,
    /// Nanoseconds since [`START`] at retirement (8 bytes where an `Instant` takes 16).
    at: u64,
    /// Heap and metadata bytes it holds, for stall reports (saturating).
    bytes: u32,
    scope: u32,
    /// Whether its lag is recorded (changes to dylibs; not the reclaimer's own follow-ups).
    timed: bool,
}

/// A thread's reader in one domain. Aligned to two cache lines: readers of different threads are written
/// on every call and must not share a line (or its prefetched neighbour).
#[repr(align(128))]
pub(crate) struct Reader {
    state: ReaderState,
    /// Pins in progress; touched only by the owning thread.
    depth: AtomicU32,
    /// Set when the thread's thread-locals are torn down: the domain forgets the reader once unpinned.
    dead: AtomicBool,
    domain: u64,
    thread: Box<str>,
    tid: i32,
    /// The thread's stack `[lo, hi)`, for the handshake (`(0, 0)` if unknown: never scanned).
    stack: (usize, usize),
}

impl Reader {
    fn new(domain: u64) -> Reader {
        let tid = rustix::thread::gettid().as_raw_nonzero().get();
        let thread = match std::thread::current().name() {
            Some(name) => name.into(),
            None => format!("tid {tid}").into(),
        };
        Reader {
            state: ReaderState::default(),
            depth: AtomicU32::new(0),
            dead: AtomicBool::new(false),
            domain,
            thread,
            tid,
            stack: crate::sys::handshake::current_stack().unwrap_or((0, 0)),
        }
    }
}

/// The scopes (dylibs) of a domain and which can reach which.
#[derive(Default)]
struct Scopes {
    names: Vec<Arc<str>>,
    /// `links[a]`: scopes whose code scope `a`'s code may call or read directly.
    links: Vec<Vec<u32>>,
}

impl Scopes {
    /// Every scope `from` reaches (itself included), as a membership table.
    fn reach(&self, from: u32) -> Vec<bool> {
        let mut seen = vec![false; self.names.len()];
        let mut stack = vec![from];
        while let Some(s) = stack.pop() {
            let Some(slot) = seen.get_mut(s as usize) else { continue };
            if !std::mem::replace(slot, true) {
                stack.extend(self.links[s as usize].iter().copied());
            }
        }
        seen
    }
}

#[derive(Default)]
struct Queues {
    next: u64,
    /// Retired since the last pass.
    incoming: Vec<Retired>,
    /// Held back at the last pass; looked at again when a reader's pin changes.
    held: Vec<Retired>,
    /// The smallest number a running pass took out of the lists, until it put back what it kept.
    in_pass: Option<u64>,
}

/// What the last pass observed: the pinned readers (by address, epoch and scope).
#[derive(Default)]
struct PassMemory {
    observed: Vec<(usize, u64, u32)>,
    /// Start times of the epochs pinned readers sit at, and of the current one.
    starts: Vec<(u64, u64)>,
    /// Pins already reported as stalls, by reader address and epoch.
    reported: Vec<(usize, u64)>,
    /// When the next handshake may run (nanoseconds since [`START`]).
    next_handshake: u64,
}

/// The scopes each observed reader's scope reaches (see [`Domain::reach_tables`]).
struct Reaches(Vec<(u32, Vec<bool>)>);

impl Reaches {
    /// Whether a reader observed at `(epoch, scope)` may still use `r` (a scope without a table: yes).
    fn holds(&self, reader: (u64, u32), r: &Retired) -> bool {
        grace::holds(reader, r.stamp, r.scope, |a, b| {
            self.0
                .iter()
                .find(|(from, _)| *from == a)
                .is_none_or(|(_, t)| t.get(b as usize).copied().unwrap_or(true))
        })
    }
}

/// A retirement the handshake may free: its number, the readers holding it, what it would free.
type Candidate = (u64, Vec<usize>, Vec<(usize, usize)>);

/// What a stall report calls.
pub(crate) type StallCallback = Arc<dyn Fn(&Stall) + Send + Sync>;

impl PassMemory {
    /// When epoch `epoch` began (the start of the latest epoch known not after it).
    fn started(&self, epoch: u64) -> Option<u64> {
        self.starts.iter().filter(|&&(e, _)| e <= epoch).map(|&(_, t)| t).max()
    }
}

/// One JIT's reclamation domain (see the module docs).
pub(crate) struct Domain {
    id: u64,
    epoch: Epoch,
    readers: Mutex<Vec<Arc<Reader>>>,
    queues: Mutex<Queues>,
    scopes: Mutex<Scopes>,
    pass: Mutex<PassMemory>,
    pub(crate) lag: LagStats,
    stall_after: Duration,
    on_stall: Option<StallCallback>,
    /// How long a pin must have lasted before its thread is asked which retired ranges it still uses
    /// (`None`: never; also when no signal could be installed).
    handshake_after: Option<Duration>,
    /// Handshakes run and retirements they freed, for `Stats`.
    handshakes: AtomicU64,
    freed_by_handshake: AtomicU64,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain").field("id", &self.id).finish()
    }
}

impl Domain {
    /// A domain, registered with the reclaimer (started with the first one; an error if it cannot be).
    pub(crate) fn new(
        stall_after: Duration,
        on_stall: Option<StallCallback>,
        handshake_after: Option<Duration>,
    ) -> std::io::Result<Arc<Domain>> {
        super::sync::init_fences();
        start()?;
        let handshake_after = handshake_after.filter(|_| crate::sys::handshake::install());
        let domain = Arc::new(Domain {
            id: NEXT_DOMAIN.fetch_add(1, Ordering::Relaxed),
            epoch: Epoch::new(),
            readers: Mutex::new(Vec::new()),
            queues: Mutex::new(Queues::default()),
            scopes: Mutex::new(Scopes::default()),
            pass: Mutex::new(PassMemory { starts: vec![(1, now_ns())], ..Default::default() }),
            lag: LagStats::default(),
            stall_after,
            on_stall,
            handshake_after,
            handshakes: AtomicU64::new(0),
            freed_by_handshake: AtomicU64::new(0),
        });
        DOMAINS.lock().push(domain.clone());
        Ok(domain)
    }

    /// A new scope for the dylib `name` ([`ANY`] once 2^24 - 1 were made: always held, never wrong).
    pub(crate) fn add_scope(&self, name: Arc<str>) -> u32 {
        let mut scopes = self.scopes.lock();
        let id = scopes.names.len() as u32;
        if id >= ANY {
            return ANY;
        }
        scopes.names.push(name);
        scopes.links.push(Vec::new());
        id
    }

    /// The name of the dylib whose scope is `scope`.
    pub(crate) fn scope_name(&self, scope: u32) -> Option<Arc<str>> {
        self.scopes.lock().names.get(scope as usize).cloned()
    }

    /// Records that code of scope `from` may reach code of scope `to` (a link or a redirection).
    pub(crate) fn link(&self, from: u32, to: u32) {
        if from == to || from == ANY || to == ANY {
            return;
        }
        let mut scopes = self.scopes.lock();
        let links = &mut scopes.links[from as usize];
        if !links.contains(&to) {
            links.push(to);
        }
    }

    /// Pins the calling thread in `scope` of this domain (see [`Pinned`]).
    #[inline]
    pub(crate) fn pin(&self, scope: u32) -> Pinned<'_> {
        let (id, reader) = CURRENT.with(Cell::get);
        let reader = if id == self.id && !reader.is_null() { reader } else { self.reader() };
        // SAFETY: `reader` points into an `Arc<Reader>` held by this thread's `OWNED` list (the cache is
        // cleared before that list is dropped) or, during thread teardown, by the domain's list, which
        // keeps it while it is pinned (see `reader`).
        let r = unsafe { &*reader };
        let depth = r.depth.load(Ordering::Relaxed);
        if depth == 0 {
            r.state.enter(&self.epoch, scope);
        } else {
            r.state.widen(scope);
        }
        r.depth.store(depth + 1, Ordering::Relaxed);
        Pinned { reader, domain: self, scope }
    }

    /// The slow path of [`pin`](Self::pin): this thread's reader for this domain, registered on first use.
    #[cold]
    #[inline(never)]
    fn reader(&self) -> *const Reader {
        let found = OWNED.try_with(|owned| {
            let mut owned = owned.0.borrow_mut();
            let reader = match owned.iter().find(|r| r.domain == self.id) {
                Some(r) => r.clone(),
                None => {
                    let r = self.register();
                    // Forget readers of domains that are gone.
                    owned.retain(|r| DOMAINS.lock().iter().any(|d| d.id == r.domain));
                    owned.push(r.clone());
                    r
                }
            };
            let ptr = Arc::as_ptr(&reader);
            CURRENT.with(|c| c.set((self.id, ptr)));
            ptr
        });
        // While the thread's thread-locals are torn down: a reader for this pin only, already marked
        // dead. Only the domain's list holds it, and the domain forgets dead readers only once they are
        // unpinned (the pin's last access is the store that unpins it).
        found.unwrap_or_else(|_| {
            let r = self.register();
            r.dead.store(true, Ordering::Relaxed);
            Arc::as_ptr(&r)
        })
    }

    fn register(&self) -> Arc<Reader> {
        let reader = Arc::new(Reader::new(self.id));
        let mut readers = self.readers.lock();
        readers.retain(|r| !(r.dead.load(Ordering::Relaxed) && r.state.observe().is_none()));
        readers.push(reader.clone());
        reader
    }

    /// Drops `value` once no thread that is pinned now, in a scope that reaches `scope`, can still be
    /// using it. `bytes` is what it holds (for stall reports); `timed` records its lag. The caller must
    /// have unlinked it (no new pin can reach it) before calling.
    pub(crate) fn retire<T: Retire>(&self, scope: u32, value: T, bytes: usize, timed: bool) {
        let mut value = Some(Box::new(value) as Box<dyn Retire>);
        // Inside `batched` on this domain, join the batch; otherwise (or during thread teardown) go alone.
        let _ = BATCH.try_with(|b| {
            if let Some(batch) = b.borrow_mut().as_mut().filter(|batch| batch.domain == self.id) {
                match batch.groups.iter_mut().find(|g| g.scope == scope) {
                    Some(g) => {
                        g.values.extend(value.take());
                        g.bytes += bytes;
                        g.timed |= timed;
                    }
                    None => batch.groups.push(Group {
                        scope,
                        values: value.take().into_iter().collect(),
                        bytes,
                        timed,
                    }),
                }
            }
        });
        if let Some(value) = value {
            self.retire_boxed(scope, value, bytes, timed);
        }
    }

    fn retire_boxed(&self, scope: u32, value: Box<dyn Retire>, bytes: usize, timed: bool) {
        let stamp = self.epoch.stamp();
        let mut queues = self.queues.lock();
        let number = queues.next;
        queues.next += 1;
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        queues.incoming.push(Retired { value, number, stamp, at: now_ns(), bytes, scope, timed });
        drop(queues);
        let mut work = WAKE_LOCK.lock();
        if !*work {
            *work = true;
            WAKE.notify_one();
        }
    }

    /// Runs `f`; everything this thread retires into this domain meanwhile waits as one retirement per
    /// scope, stamped when `f` returns (or unwinds). One change to a dylib retires its modules, old slot
    /// targets and garbage together: one record instead of one per value. A later stamp only lengthens
    /// the grace period.
    pub(crate) fn batched<R>(&self, f: impl FnOnce() -> R) -> R {
        struct End<'a>(&'a Domain);
        impl Drop for End<'_> {
            fn drop(&mut self) {
                if let Some(batch) = BATCH.with(|b| b.borrow_mut().take()) {
                    for mut g in batch.groups {
                        match g.values.len() {
                            0 => {}
                            1 => {
                                let value = g.values.pop().expect("one value");
                                self.0.retire_boxed(g.scope, value, g.bytes, g.timed)
                            }
                            _ => self.0.retire_boxed(
                                g.scope,
                                Box::new(g.values.into_boxed_slice()),
                                g.bytes,
                                g.timed,
                            ),
                        }
                    }
                }
            }
        }
        if BATCH.with(|b| b.borrow().is_some()) {
            return f();
        }
        BATCH.with(|b| *b.borrow_mut() = Some(Batch { domain: self.id, groups: Vec::new() }));
        let _end = End(self);
        f()
    }

    /// Whether anything waits for its grace period.
    fn busy(&self) -> bool {
        let q = self.queues.lock();
        !q.incoming.is_empty() || !q.held.is_empty()
    }

    /// One reclaimer pass (see the module docs); with nothing queued it only advances the epoch and
    /// reports stalls.
    fn pass(&self) {
        let (incoming, recheck) = {
            let mut q = self.queues.lock();
            let incoming = std::mem::take(&mut q.incoming);
            q.in_pass = incoming.first().map(|r| r.number);
            (incoming, !q.held.is_empty())
        };
        let epoch = self.epoch.advance();
        let now = now_ns();
        if !incoming.is_empty() || recheck {
            grace::heavy();
        }
        let observed = self.observe();
        let reaches = self.reach_tables(&observed);
        let holds = |r: &Retired| observed.iter().any(|&(_, e, s)| reaches.holds((e, s), r));
        let (mut free, mut keep): (Vec<Retired>, Vec<Retired>) =
            incoming.into_iter().partition(|r| !holds(r));
        let changed = {
            let mut memory = self.pass.lock();
            let changed = memory.observed != observed;
            memory.observed.clone_from(&observed);
            memory.starts.retain(|&(e, _)| observed.iter().any(|&(_, o, _)| o == e));
            memory.starts.push((epoch, now));
            memory.reported.retain(|&(r, e)| observed.iter().any(|&(o, oe, _)| o == r && oe == e));
            changed
        };
        {
            let mut q = self.queues.lock();
            if changed && !q.held.is_empty() {
                let (f, k): (Vec<Retired>, Vec<Retired>) =
                    std::mem::take(&mut q.held).into_iter().partition(|r| !holds(r));
                free.extend(f);
                q.held = k;
            }
            if !keep.is_empty() {
                q.held.append(&mut keep);
                q.held.shrink_to_fit();
            }
            // What is about to be dropped still counts as pending for `reclaim_now`.
            q.in_pass = free.iter().map(|r| r.number).min();
        }
        let precise = self.precise(&observed, now);
        if !precise.is_empty() {
            self.freed_by_handshake.fetch_add(precise.len() as u64, Ordering::Relaxed);
            free.extend(precise);
        }
        self.report_stalls(&observed, now);
        if free.is_empty() {
            return;
        }
        let _span = tracing::debug_span!("reclaim", values = free.len()).entered();
        // Values that retire others when dropped (an entry frees its index after a grace period of its
        // own) retire them together.
        self.batched(|| {
            for r in free {
                let Retired { value, at, timed, .. } = r;
                drop(value);
                if timed {
                    self.lag.record(Duration::from_nanos(now_ns().saturating_sub(at)));
                }
            }
        });
        self.queues.lock().in_pass = None;
        let _lock = DRAINED_LOCK.lock();
        DRAINED.notify_all();
    }

    /// Frees precisely what only long pins hold (see `sys::handshake`): asks each reader pinned for longer
    /// than `handshake_after` that holds a retirement which says what it frees, and takes out of `held`
    /// every such retirement none of its holders was found using. At most once per `handshake_after`.
    fn precise(&self, observed: &[(usize, u64, u32)], now: u64) -> Vec<Retired> {
        let Some(after) = self.handshake_after else { return Vec::new() };
        if observed.is_empty() {
            return Vec::new();
        }
        let stalled: Vec<usize> = {
            let mut memory = self.pass.lock();
            if now < memory.next_handshake {
                return Vec::new();
            }
            memory.next_handshake = now + (after.as_nanos() as u64).max(1_000_000);
            let started = |e: u64| memory.started(e);
            observed
                .iter()
                .filter(|&&(_, e, _)| {
                    started(e).is_some_and(|t| now.saturating_sub(t) >= after.as_nanos() as u64)
                })
                .map(|&(r, _, _)| r)
                .collect()
        };
        if stalled.is_empty() {
            return Vec::new();
        }
        let reaches = self.reach_tables(observed);
        let holders_of = |r: &Retired| -> Vec<usize> {
            observed.iter().filter(|&&(_, e, s)| reaches.holds((e, s), r)).map(|&(r, _, _)| r).collect()
        };
        // Retirements held only by stalled readers, with what they would free.
        let mut candidates: Vec<Candidate> = Vec::new();
        {
            let q = self.queues.lock();
            for r in &q.held {
                let holders = holders_of(r);
                if holders.is_empty() || !holders.iter().all(|h| stalled.contains(h)) {
                    continue;
                }
                let mut ranges = Vec::new();
                if r.value.ranges(&mut ranges) {
                    candidates.push((r.number, holders, ranges));
                }
            }
        }
        if candidates.is_empty() {
            return Vec::new();
        }
        // What frees no memory a thread could use needs no question.
        let mut free: Vec<u64> = candidates.iter().filter(|c| c.2.is_empty()).map(|c| c.0).collect();
        candidates.retain(|c| !c.2.is_empty());
        // One question per thread: every candidate range, sorted and merged.
        let mut merged: Vec<(usize, usize)> = candidates.iter().flat_map(|c| c.2.iter().copied()).collect();
        merged.sort_unstable();
        // Only overlapping ranges merge: adjacent blocks of different modules must stay apart.
        merged.dedup_by(|next, prev| {
            let overlaps = next.0 < prev.1;
            if overlaps {
                prev.1 = prev.1.max(next.1);
            }
            overlaps
        });
        let readers: Vec<Arc<Reader>> = self.readers.lock().clone();
        let mut asked: Vec<(usize, Option<Vec<bool>>)> = Vec::new();
        for c in &candidates {
            for &h in &c.1 {
                if asked.iter().any(|(a, _)| *a == h) {
                    continue;
                }
                let answer = readers.iter().find(|r| Arc::as_ptr(r) as usize == h).and_then(|r| {
                    let _span = tracing::debug_span!("handshake", thread = %r.thread).entered();
                    crate::sys::handshake::ask(r.tid, r.stack, merged.clone())
                });
                self.handshakes.fetch_add(1, Ordering::Relaxed);
                asked.push((h, answer));
            }
        }
        let index = |addr: usize| merged.partition_point(|&(_, end)| end <= addr);
        free.extend(
            candidates
                .iter()
                .filter(|(_, holders, ranges)| {
                    holders.iter().all(|h| {
                        let answer = asked.iter().find(|(a, _)| a == h).and_then(|(_, hits)| hits.as_ref());
                        answer.is_some_and(|hits| ranges.iter().all(|&(start, _)| !hits[index(start)]))
                    })
                })
                .map(|c| c.0),
        );
        if free.is_empty() {
            return Vec::new();
        }
        let mut q = self.queues.lock();
        let (f, k): (Vec<Retired>, Vec<Retired>) =
            std::mem::take(&mut q.held).into_iter().partition(|r| free.contains(&r.number));
        q.held = k;
        // About to be dropped: still pending for `reclaim_now`.
        let least = f.iter().map(|r| r.number).min();
        q.in_pass = match (q.in_pass, least) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        f
    }

    /// Handshakes run so far, and the retirements they freed before their holders' pins ended.
    pub(crate) fn handshake_counts(&self) -> (u64, u64) {
        (self.handshakes.load(Ordering::Relaxed), self.freed_by_handshake.load(Ordering::Relaxed))
    }

    /// The pinned readers, by address: `(reader, epoch, scope)`, sorted.
    fn observe(&self) -> Vec<(usize, u64, u32)> {
        let readers = self.readers.lock();
        let mut observed: Vec<_> = readers
            .iter()
            .filter_map(|r| r.state.observe().map(|(e, s)| (Arc::as_ptr(r) as usize, e, s)))
            .collect();
        observed.sort_unstable();
        observed
    }

    /// For every scope a pinned reader runs in, the scopes it reaches.
    fn reach_tables(&self, observed: &[(usize, u64, u32)]) -> Reaches {
        let mut tables: Vec<(u32, Vec<bool>)> = Vec::new();
        if observed.is_empty() {
            return Reaches(tables);
        }
        let scopes = self.scopes.lock();
        for &(_, _, s) in observed {
            if s != ANY && !tables.iter().any(|(from, _)| *from == s) {
                tables.push((s, scopes.reach(s)));
            }
        }
        Reaches(tables)
    }

    /// Threads holding retirements back (see [`Stall`]).
    pub(crate) fn stalls(&self) -> Vec<Stall> {
        let observed = self.observe();
        self.stalls_of(&observed, now_ns()).into_iter().map(|(_, stall)| stall).collect()
    }

    /// The stalls among `observed`, each with its reader's `(address, epoch)`.
    fn stalls_of(&self, observed: &[(usize, u64, u32)], now: u64) -> Vec<((usize, u64), Stall)> {
        if observed.is_empty() {
            return Vec::new();
        }
        let reaches = self.reach_tables(observed);
        let started = |epoch: u64| {
            let memory = self.pass.lock();
            memory.started(epoch).unwrap_or(0)
        };
        let readers: Vec<Arc<Reader>> = self.readers.lock().clone();
        let q = self.queues.lock();
        let scopes = self.scopes.lock();
        let mut stalls = Vec::new();
        for &(addr, epoch, scope) in observed {
            let (mut retirements, mut bytes, mut first) = (0, 0, u64::MAX);
            for r in q.held.iter().chain(&q.incoming) {
                if reaches.holds((epoch, scope), r) {
                    retirements += 1;
                    first = first.min(r.at);
                    bytes += r.bytes as usize;
                }
            }
            if retirements == 0 {
                continue;
            }
            let Some(reader) = readers.iter().find(|r| Arc::as_ptr(r) as usize == addr) else { continue };
            let dylibs = if scope == ANY {
                vec!["*".to_string()]
            } else {
                scopes
                    .reach(scope)
                    .iter()
                    .enumerate()
                    .filter(|(_, &r)| r)
                    .map(|(i, _)| scopes.names[i].to_string())
                    .collect()
            };
            let stall = Stall {
                thread: reader.thread.to_string(),
                tid: reader.tid,
                pinned_for: Duration::from_nanos(now.saturating_sub(started(epoch))),
                waiting: Duration::from_nanos(now.saturating_sub(first)),
                dylibs,
                retirements,
                bytes,
            };
            stalls.push(((addr, epoch), stall));
        }
        stalls
    }

    fn report_stalls(&self, observed: &[(usize, u64, u32)], now: u64) {
        if observed.is_empty() {
            return;
        }
        let oldest = {
            let memory = self.pass.lock();
            observed
                .iter()
                .filter(|&&(r, e, _)| !memory.reported.contains(&(r, e)))
                .filter_map(|&(_, e, _)| memory.started(e))
                .min()
        };
        let Some(oldest) = oldest else { return };
        if Duration::from_nanos(now.saturating_sub(oldest)) < self.stall_after {
            return;
        }
        for (key, stall) in self.stalls_of(observed, now) {
            if stall.waiting < self.stall_after {
                continue;
            }
            {
                let mut memory = self.pass.lock();
                if memory.reported.contains(&key) {
                    continue;
                }
                memory.reported.push(key);
            }
            tracing::warn!(
                thread = %stall.thread,
                pinned_for = ?stall.pinned_for,
                waiting = ?stall.waiting,
                dylibs = ?stall.dylibs,
                retirements = stall.retirements,
                bytes = stall.bytes,
                "a thread pinned in genjit code holds back reclamation"
            );
            if let Some(callback) = &self.on_stall {
                // Caught: a panic would end the process's reclaimer thread, and every JIT's reclamation.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(&stall))).is_err() {
                    tracing::error!(thread = %stall.thread, "the stall callback panicked");
                }
            }
        }
    }

    /// How long the longest-pinned thread of this domain has been pinned, if any is.
    pub(crate) fn oldest_pin_age(&self) -> Option<Duration> {
        let observed = self.observe();
        let oldest = observed.iter().map(|&(_, e, _)| e).min()?;
        let memory = self.pass.lock();
        let started = memory.started(oldest).unwrap_or(0);
        Some(Duration::from_nanos(now_ns().saturating_sub(started)))
    }

    /// Waits until everything this domain retired before the call has been dropped, or `timeout`
    /// passes; returns whether it all was. Threads pinned in reaching scopes hold it back; later
    /// retirements do not.
    pub(crate) fn reclaim_now(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let before = self.queues.lock().next;
        loop {
            {
                let q = self.queues.lock();
                let oldest =
                    [q.in_pass, q.incoming.first().map(|r| r.number), q.held.iter().map(|r| r.number).min()]
                        .into_iter()
                        .flatten()
                        .min();
                if oldest.is_none_or(|n| n >= before) {
                    return true;
                }
            }
            {
                let mut work = WAKE_LOCK.lock();
                *work = true;
                WAKE.notify_one();
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let mut lock = DRAINED_LOCK.lock();
            DRAINED.wait_for(&mut lock, TICK.min(deadline - now));
        }
    }
}

/// A pinned scope: while it lives, no code this thread may run through it is freed.
///
/// `Func::call` pins for the duration of one call; hold a `Pinned` yourself (from
/// [`Jit::pin`](crate::Jit::pin), [`Dylib::pin`](crate::Dylib::pin) or [`Func::pin`](crate::Func::pin))
/// to make many calls under one pin. A pin holds back the reclamation of what its scope can reach and
/// was retired after it began: keep long ones narrow (see [`crate::Stats::stalls`]).
///
/// ```compile_fail
/// // A pin belongs to its thread.
/// fn needs_send<T: Send>(_: T) {}
/// let jit = genjit::Jit::new().unwrap();
/// needs_send(jit.pin());
/// ```
pub struct Pinned<'a> {
    reader: *const Reader,
    domain: &'a Domain,
    scope: u32,
}

impl std::fmt::Debug for Pinned<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinned").field("domain", &self.domain.id).field("scope", &self.scope).finish()
    }
}

impl Pinned<'_> {
    /// Whether this pin protects code of `scope` in `domain`.
    #[inline]
    pub(crate) fn covers(&self, domain: &Domain, scope: u32) -> bool {
        std::ptr::eq(self.domain, domain) && (self.scope == scope || self.scope == ANY)
    }
}

impl Drop for Pinned<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: as in `Domain::pin`.
        let r = unsafe { &*self.reader };
        let depth = r.depth.load(Ordering::Relaxed) - 1;
        r.depth.store(depth, Ordering::Relaxed);
        if depth == 0 {
            r.state.exit();
        }
    }
}

struct Owned(RefCell<Vec<Arc<Reader>>>);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set((0, std::ptr::null())));
        for r in self.0.borrow().iter() {
            r.dead.store(true, Ordering::Relaxed);
        }
    }
}

struct Group {
    scope: u32,
    values: Vec<Box<dyn Retire>>,
    bytes: usize,
    timed: bool,
}

struct Batch {
    domain: u64,
    groups: Vec<Group>,
}

thread_local! {
    /// The domain this thread pinned in last, and its reader there.
    static CURRENT: Cell<(u64, *const Reader)> = const { Cell::new((0, std::ptr::null())) };
    static OWNED: Owned = const { Owned(RefCell::new(Vec::new())) };
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Starts the process's reclaimer thread, unless it runs already; an error if it could not be started
/// (tried again by the next JIT).
fn start() -> std::io::Result<()> {
    static STARTED: Mutex<bool> = Mutex::new(false);
    let mut started = STARTED.lock();
    if !*started {
        START.get_or_init(Instant::now);
        std::thread::Builder::new().name("genjit-reclaimer".to_string()).spawn(|| loop {
            wait_for_work();
            let domains: Vec<Arc<Domain>> = DOMAINS.lock().clone();
            for d in &domains {
                d.pass();
            }
            drop(domains);
            // A domain whose JIT is gone and that has nothing left is forgotten.
            DOMAINS.lock().retain(|d| Arc::strong_count(d) > 1 || d.busy());
        })?;
        *started = true;
    }
    Ok(())
}

/// Returns after a tick if anything is queued, else when a retirement signals or the idle tick passes.
fn wait_for_work() {
    let busy = DOMAINS.lock().iter().any(|d| d.busy());
    let mut work = WAKE_LOCK.lock();
    if busy || *work {
        *work = false;
        drop(work);
        std::thread::sleep(TICK);
    } else {
        WAKE.wait_for(&mut work, IDLE_TICK);
        *work = false;
    }
}

/// Waits until everything retired before the call, in every JIT of the process (dropped ones included),
/// has been freed, or `timeout` passes; returns whether it all was. For hosts that drop a JIT and want
/// its memory back before they go on (a JIT's memory outlives it until no thread can be running it).
pub fn reclaim_all(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let domains: Vec<Arc<Domain>> = DOMAINS.lock().clone();
    domains.iter().all(|d| d.reclaim_now(deadline.saturating_duration_since(Instant::now())))
}
