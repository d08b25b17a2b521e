//! Stable entries: the redirectable identity of every JIT function.
//!
//! An [`Entry`] is a 32-byte *stub* in a code generation plus an 8-byte *machine slot* in a data generation.
//! The stub's address is the function's identity for as long as the entry exists: importers call it, take
//! its address, store it in vtables; Rust calls load the slot directly. Redirecting is one store into the
//! slot (see `handoff`).
//!
//! ```text
//! stub+0   ff 25 <slot-(stub+6)>      jmp *slot(%rip)          ; the function
//! stub+6   cc cc                                                ; never reached
//! stub+8   48 8d 3d f1 ff ff ff       lea -15(%rip), %rdi      ; the tombstone landing: rdi = stub
//! stub+15  ff 25 <tomb-(stub+21)>     jmp *tomb(%rip)          ; -> genjit_tombstone(stub)
//! stub+21  cc ...                                               ; padding to 32
//! ```
//!
//! A slot with no body points at its own tombstone landing, which reports the entry's name and aborts: a
//! call through a removed function never runs freed memory. Rust calls check for the landing first and
//! panic instead (`Func::call`).
//!
//! Entries are packed 64 to a *chunk* (one 2 KiB code block and one 520-byte data block); free indices
//! wait in a list. A chunk is never moved or freed while its table lives; an index is reused only after the entry
//! that held it was dropped *and* a grace period passed (in the entry's scope: its dylib), so a stale call
//! in flight cannot land in an unrelated function's stub.

use super::handoff::{Body, Handoff};
use super::reclaim::{Domain, Pinned, Retire};
use super::sync::AtomicUsize;
use crate::heap::{Block, Heap, Kind, TRAP_BYTE};
use crate::signature::Signature;
use parking_lot::Mutex;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};

const PER_CHUNK: usize = 64;
/// Bytes per stub.
pub const STUB_SIZE: usize = 32;
const TOMBSTONE_OFFSET: usize = 8;

/// What a slot points at, and what keeps that code alive.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) addr: usize,
    pub(crate) owner: Owner,
}

/// What owns a target's code, seen only as the memory it keeps alive: entries need not know what a module
/// is. Implemented by modules, by [`Entry`] (an explicit redirection to a JIT symbol follows that
/// symbol's redefinitions) and by the host (whose code lives as long as the process).
pub(crate) trait CodeOwner: Send + Sync + 'static {
    /// Appends the address ranges freed when the last reference goes (see [`Retire`]).
    fn ranges(&self, out: &mut Vec<(usize, usize)>);

    /// The entry, if this owner is one.
    fn into_entry(self: Arc<Self>) -> Option<Arc<Entry>> {
        None
    }
}

/// The owner of a target's code: one fat pointer (a module, an entry or the host), so a target is 24
/// bytes and sits inline in its entry.
#[derive(Clone)]
pub(crate) struct Owner(Arc<dyn CodeOwner>);

struct HostCode;

impl CodeOwner for HostCode {
    fn ranges(&self, _: &mut Vec<(usize, usize)>) {}
}

impl CodeOwner for Entry {
    /// An entry frees nothing when a target lets go of it: a dropped entry retires its own stub.
    fn ranges(&self, _: &mut Vec<(usize, usize)>) {}

    fn into_entry(self: Arc<Self>) -> Option<Arc<Entry>> {
        Some(self)
    }
}

impl Owner {
    /// A body in JIT code: `owner` (a module) is kept alive.
    pub(crate) fn code(owner: Arc<dyn CodeOwner>) -> Owner {
        Owner(owner)
    }

    /// Another entry's stub.
    pub(crate) fn entry(entry: Arc<Entry>) -> Owner {
        Owner(entry)
    }

    /// Host code.
    pub(crate) fn host() -> Owner {
        static HOST: std::sync::OnceLock<Arc<dyn CodeOwner>> = std::sync::OnceLock::new();
        Owner(HOST.get_or_init(|| Arc::new(HostCode)).clone())
    }

    /// The entry this owner is, if it is one.
    pub(crate) fn as_entry(&self) -> Option<Arc<Entry>> {
        self.0.clone().into_entry()
    }
}

impl Body for Target {
    fn addr(&self) -> usize {
        self.addr
    }
}

impl Target {
    /// Whether `other` is this very target (same address, same owner), not merely an equal one.
    pub(crate) fn same(&self, other: &Target) -> bool {
        self.addr == other.addr && std::ptr::addr_eq(Arc::as_ptr(&self.owner.0), Arc::as_ptr(&other.owner.0))
    }
}

impl Retire for Target {
    /// A body's module; another entry or host code free nothing a thread may be running.
    fn ranges(&self, out: &mut Vec<(usize, usize)>) -> bool {
        self.owner.0.ranges(out);
        true
    }
}

/// A pointer to a machine slot inside a chunk's data block.
pub(crate) struct SlotRef(NonNull<AtomicUsize>);

// SAFETY: the slot is an `AtomicUsize`, shared by design; `SlotRef` only hands out `&AtomicUsize`.
unsafe impl Send for SlotRef {}
// SAFETY: as above.
unsafe impl Sync for SlotRef {}

impl std::ops::Deref for SlotRef {
    type Target = AtomicUsize;
    fn deref(&self) -> &AtomicUsize {
        // SAFETY: the pointer is 8-aligned, inside a chunk's data block, which the table keeps mapped for as
        // long as any entry (which holds the table) exists; the word is only ever accessed atomically.
        unsafe { self.0.as_ref() }
    }
}

/// A stable, redirectable function entry (see the module docs).
pub struct Entry {
    /// Interned: functions with equal signatures share one (see [`intern`]).
    sig: Option<Arc<Signature>>,
    index: u32,
    /// The reclamation scope of the entry's dylib (see `reclaim`).
    scope: u32,
    stub: usize,
    handoff: Handoff<SlotRef, Target>,
    table: Arc<Mutex<EntryTable>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("stub", &format_args!("{:#x}", self.stub)).finish()
    }
}

impl Entry {
    /// The stub: the function's stable address.
    pub(crate) fn stub(&self) -> usize {
        self.stub
    }

    /// Where the slot points while the entry has no body.
    pub(crate) fn tombstone(&self) -> usize {
        self.stub + TOMBSTONE_OFFSET
    }

    /// The function's IR signature, if known.
    pub(crate) fn signature(&self) -> Option<&Signature> {
        self.sig.as_deref()
    }

    /// `(dylib, function)` of this entry (kept in the entry table, where the tombstone finds it too).
    pub(crate) fn names(&self) -> (Arc<str>, Arc<str>) {
        let table = self.table.lock();
        let (name, scope) = table.names[self.index as usize].clone().expect("a live entry's index is taken");
        (table.domain.scope_name(scope).unwrap_or_else(|| "?".into()), name)
    }

    /// The reclamation scope of the entry's dylib.
    pub(crate) fn scope(&self) -> u32 {
        self.scope
    }

    /// The current target, if the entry has a body.
    pub(crate) fn target(&self) -> Option<Target> {
        self.handoff.current()
    }

    /// The address a call under `_pinned` must jump to (possibly the tombstone). The pin must cover the
    /// entry's scope (`Func` checks).
    #[inline]
    pub(crate) fn enter(&self, _pinned: &Pinned<'_>) -> usize {
        self.handoff.enter()
    }

    /// Points the entry at `target` (or at its tombstone) and retires the previous target. Callers hold
    /// the owning dylib's link lock.
    pub(crate) fn redirect(&self, target: Option<Target>) {
        if let Some(old) = self.handoff.redirect(target, self.tombstone()) {
            let domain = self.table.lock().domain.clone();
            domain.retire(self.scope, old, 0, false);
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // The index goes back only after a grace period: a thread pinned now may still be about to jump
        // through this stub (a stale call lands on the tombstone, never on a reused stub).
        /// Gives the index back for reuse (its stub then belongs to another function).
        struct Release {
            table: Arc<Mutex<EntryTable>>,
            index: usize,
            stub: usize,
            target: Option<Target>,
        }
        impl Drop for Release {
            fn drop(&mut self) {
                let mut table = self.table.lock();
                table.names[self.index] = None;
                table.free.push(self.index as u32);
            }
        }
        impl Retire for Release {
            fn ranges(&self, out: &mut Vec<(usize, usize)>) -> bool {
                out.push((self.stub, self.stub + STUB_SIZE));
                self.target.as_ref().is_none_or(|t| t.ranges(out))
            }
        }
        let target = self.handoff.redirect(None, self.tombstone());
        let domain = self.table.lock().domain.clone();
        let release =
            Release { table: self.table.clone(), index: self.index as usize, stub: self.stub, target };
        domain.retire(self.scope, release, 0, false);
    }
}

/// One shared copy of each signature in use: query engines compile thousands of expressions with the
/// same few signatures, and a signature is ~90 bytes with its parameter list. The set holds a reference
/// too; copies nobody else holds are dropped whenever the set has doubled since the last sweep.
static SIGNATURES: Mutex<Interned> = Mutex::new(Interned { set: None, swept_at: 0 });

struct Interned {
    set: Option<std::collections::HashSet<Arc<Signature>>>,
    swept_at: usize,
}

/// The shared copy of `signature`.
pub(crate) fn intern(signature: Signature) -> Arc<Signature> {
    let mut interned = SIGNATURES.lock();
    let Interned { set, swept_at } = &mut *interned;
    let set = set.get_or_insert_with(Default::default);
    if let Some(shared) = set.get(&signature) {
        return shared.clone();
    }
    if set.len() >= 2 * (*swept_at).max(32) {
        set.retain(|s| Arc::strong_count(s) > 1);
        *swept_at = set.len();
    }
    let shared = Arc::new(signature);
    set.insert(shared.clone());
    shared
}

/// Every entry table of the process, so the tombstone can name the function a stub belonged to.
static TABLES: Mutex<Vec<Weak<Mutex<EntryTable>>>> = Mutex::new(Vec::new());

/// Where a tombstoned entry's calls end: report the function's name and abort (never run freed memory).
extern "C" fn genjit_tombstone(stub: usize) -> ! {
    // `try_lock` on the tables: the caller may hold them (a destructor calling a removed function); then
    // the message goes without the name. The domain holds its scope names' lock only briefly and never
    // while JIT code runs, so waiting for it cannot deadlock (a `try_lock` there lost races with the
    // reclaimer).
    let name = TABLES.try_lock().and_then(|tables| {
        tables.iter().filter_map(Weak::upgrade).find_map(|table| {
            let t = table.try_lock()?;
            let (name, scope) = t.name_of(stub)?;
            Some((t.domain.scope_name(scope).unwrap_or_else(|| "?".into()), name))
        })
    });
    match name {
        Some((dylib, name)) => {
            eprintln!(
                "genjit: call to `{name}` of dylib `{dylib}`, which was removed (stub {stub:#x}); aborting"
            )
        }
        None => eprintln!("genjit: call through a removed function entry (stub {stub:#x}); aborting"),
    }
    std::process::abort()
}

struct Chunk {
    code: Block,
    data: Block,
}

/// Every entry of one JIT.
pub(crate) struct EntryTable {
    heap: Arc<Mutex<Heap>>,
    domain: Arc<Domain>,
    chunks: Vec<Chunk>,
    /// Indices given back (reused last-in first-out); every index below `chunks.len() * 64` not in this
    /// list is taken. 4 bytes per free slot, where a slab took 16 per slot.
    free: Vec<u32>,
    /// `(function, dylib's scope)` by entry index while the index is taken, for the tombstone's message:
    /// the entry itself may be gone when a stale call lands there. (A process-wide map by stub address
    /// cost ~80 bytes per entry; this costs 24 per slot.)
    names: Vec<Option<(Arc<str>, u32)>>,
}

impl EntryTable {
    pub(crate) fn new(heap: Arc<Mutex<Heap>>, domain: Arc<Domain>) -> Arc<Mutex<EntryTable>> {
        let table = Arc::new(Mutex::new(EntryTable {
            heap,
            domain,
            chunks: Vec::new(),
            free: Vec::new(),
            names: Vec::new(),
        }));
        let mut tables = TABLES.lock();
        tables.retain(|t| t.strong_count() > 0);
        tables.push(Arc::downgrade(&table));
        table
    }

    /// Bytes of code and data the chunks occupy, and live entries.
    pub(crate) fn usage(&self) -> (usize, usize) {
        (
            self.chunks.iter().map(|c| c.code.len() + c.data.len()).sum(),
            self.chunks.len() * PER_CHUNK - self.free.len(),
        )
    }

    fn add_chunk(&mut self) -> std::io::Result<()> {
        let mut heap = self.heap.lock();
        let mut code = heap.alloc(Kind::Code, PER_CHUNK * STUB_SIZE, 16)?;
        let mut data = match heap.alloc(Kind::Data, PER_CHUNK * 8 + 8, 16) {
            Ok(d) => d,
            Err(e) => {
                heap.free(code);
                return Err(e);
            }
        };
        drop(heap);
        let tomb = data.addr() + PER_CHUNK * 8;
        data.bytes_mut()[PER_CHUNK * 8..PER_CHUNK * 8 + 8]
            .copy_from_slice(&(genjit_tombstone as *const () as usize as u64).to_le_bytes());
        let base = code.addr();
        let bytes = code.bytes_mut();
        bytes.fill(TRAP_BYTE);
        for i in 0..PER_CHUNK {
            let stub = base + i * STUB_SIZE;
            let slot = data.addr() + i * 8;
            let b = &mut bytes[i * STUB_SIZE..(i + 1) * STUB_SIZE];
            b[0..2].copy_from_slice(&[0xff, 0x25]);
            b[2..6].copy_from_slice(&rel32(slot, stub + 6).to_le_bytes());
            b[8..15].copy_from_slice(&[0x48, 0x8d, 0x3d, 0xf1, 0xff, 0xff, 0xff]);
            b[15..17].copy_from_slice(&[0xff, 0x25]);
            b[17..21].copy_from_slice(&rel32(tomb, stub + 21).to_le_bytes());
            data.bytes_mut()[i * 8..i * 8 + 8]
                .copy_from_slice(&((stub + TOMBSTONE_OFFSET) as u64).to_le_bytes());
        }
        self.chunks.push(Chunk { code, data });
        // Exact growth: a chunk's worth of slots at a time, with no doubling slack.
        self.names.reserve_exact(PER_CHUNK);
        self.names.resize(self.chunks.len() * PER_CHUNK, None);
        // The new chunk's indices are free, lowest first out.
        let base = (self.chunks.len() - 1) * PER_CHUNK;
        self.free.reserve_exact(PER_CHUNK);
        self.free.extend((base..base + PER_CHUNK).rev().map(|i| i as u32));
        Ok(())
    }

    /// The `(dylib, function)` whose entry has the stub `stub`, if it is still taken.
    fn name_of(&self, stub: usize) -> Option<(Arc<str>, u32)> {
        let (i, chunk) = self
            .chunks
            .iter()
            .enumerate()
            .find(|(_, c)| (c.code.addr()..c.code.addr() + PER_CHUNK * STUB_SIZE).contains(&stub))?;
        self.names.get(i * PER_CHUNK + (stub - chunk.code.addr()) / STUB_SIZE)?.clone()
    }

    /// A fresh entry with no body.
    pub(crate) fn create(
        table: &Arc<Mutex<EntryTable>>,
        scope: u32,
        name: Arc<str>,
        signature: Option<Signature>,
    ) -> std::io::Result<Arc<Entry>> {
        let mut t = table.lock();
        if t.free.is_empty() {
            t.add_chunk()?;
        }
        let index = t.free.pop().expect("a chunk was added") as usize;
        let chunk = &t.chunks[index / PER_CHUNK];
        let stub = chunk.code.addr() + (index % PER_CHUNK) * STUB_SIZE;
        let slot = chunk.data.addr() + (index % PER_CHUNK) * 8;
        t.names[index] = Some((name, scope));
        drop(t);
        let slot = SlotRef(NonNull::new(slot as *mut AtomicUsize).expect("heap addresses are not null"));
        Ok(Arc::new(Entry {
            sig: signature.map(intern),
            index: u32::try_from(index).expect("entries fit the 2 GiB heap: fewer than 2^26"),
            scope,
            stub,
            handoff: Handoff::new(slot, stub + TOMBSTONE_OFFSET),
            table: table.clone(),
        }))
    }
}

impl Drop for EntryTable {
    fn drop(&mut self) {
        let mut heap = self.heap.lock();
        for c in self.chunks.drain(..) {
            heap.free(c.code);
            heap.free(c.data);
        }
    }
}

fn rel32(target: usize, next: usize) -> i32 {
    i32::try_from(target as i64 - next as i64).expect("stub and slot lie in one 2 GiB heap")
}
