//! The generational code heap: where linked modules live.
//!
//! ## Shape
//! A [`Heap`] reserves one contiguous range of address space ([`HEAP_SPAN`], 2 GiB less a page) when the JIT
//! is created. Everything any module owns, code and data alike, is carved out of that range, so any two
//! addresses inside it are less than 2^31 apart: every PC-relative reference a module makes to its own data,
//! GOT or stubs, or to another module, fits a 32-bit displacement whatever the heap's history
//! (cranelift-jit's hot-swap broke on exactly this, wasmtime#5005).
//!
//! The range is split into *generations*, each a run of pages mapped over the reservation:
//! - a **code generation** is a memfd mapped twice ([`crate::sys::DualMapping`]): read+execute inside the
//!   reservation, read+write elsewhere. Text, read-only data, `.eh_frame`, GOT entries and stubs are written
//!   through the writable view and run through the executable one. No page is ever writable and executable
//!   at the same address, and no `mprotect` is needed per module.
//! - a **data generation** is anonymous read+write memory (`.data`, `.bss`, `.init_array`).
//!
//! Modules are packed into generations at 16-byte granularity ([`FreeList`]), so thousands of modules share
//! a handful of mappings: each generation costs at most three (two views, plus a split of the reservation),
//! whatever the number of modules in it. New blocks go to the youngest generation that fits; a new
//! generation is mapped only when none does. A generation that becomes empty and is not the youngest of its
//! kind is unmapped at once and its address range returned to the reservation.
//!
//! ## Ownership
//! A [`Block`] is an exclusive claim on a range of one generation. Its bytes may be written only through
//! [`Block::bytes_mut`], which needs `&mut Block`; the linker owns the block until the module is published,
//! after which it is kept only inside an immutable `LoadedModule`. [`Heap::free`] takes the block back by
//! value, fills code with `int3` so a stale jump traps loudly, and may release the generation.

mod freelist;

use crate::sys::unwind::UnwindRegistry;
use crate::sys::{self, DualMapping, PageLen, Reservation, SendSyncPtr, PAGE};
use freelist::FreeList;
use slab::Slab;
use std::io;

/// Address space reserved per JIT: every address in it is within a 32-bit displacement of every other.
pub const HEAP_SPAN: usize = (2 << 30) - PAGE;
/// Default size of a generation (larger blocks get a generation of their own size).
pub const GENERATION_SIZE: usize = 64 << 20;
/// Allocation granularity inside a generation.
pub const GRANULE: usize = 16;
/// `int3`: what freed code bytes are filled with.
pub const TRAP_BYTE: u8 = 0xCC;

/// Which kind of generation a block lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Kind {
    /// Read+execute through the code address, written through a second view.
    Code,
    /// Read+write.
    Data,
}

#[derive(Debug)]
struct Generation {
    kind: Kind,
    region: usize,
    len: PageLen,
    mapping: Option<DualMapping>,
    alloc: FreeList,
    blocks: usize,
    /// Bytes of live blocks whose module was retired and waits for its grace period.
    awaiting: usize,
}

impl Generation {
    fn exec_base(&self, reservation: &Reservation) -> usize {
        reservation.base() + self.region
    }

    fn write_base(&self, reservation: &Reservation) -> SendSyncPtr {
        match &self.mapping {
            Some(m) => m.write_base(),
            None => {
                let addr = self.exec_base(reservation) as *mut u8;
                SendSyncPtr::from_ptr(addr)
            }
        }
    }
}

/// An exclusive claim on `len` bytes of one generation.
#[derive(Debug)]
pub struct Block {
    addr: usize,
    write: SendSyncPtr,
    /// At most a generation's length, which the heap's 2 GiB span bounds.
    len: u32,
    gen: u32,
}

impl Block {
    /// The address code runs at (and data is read at).
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// The block's bytes, through the writable view.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the heap handed this range to this block alone (FreeList never hands a range out twice),
        // the generation stays mapped while any block of it is live (it is released only when empty), and
        // `&mut self` makes this the only live view of the bytes through the writable mapping.
        unsafe { std::slice::from_raw_parts_mut(self.write.as_ptr(), self.len()) }
    }
}

/// Per-generation figures for [`HeapStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct GenerationStats {
    /// Code or data.
    pub kind: Kind,
    /// First address.
    pub base: usize,
    /// Size in bytes.
    pub size: usize,
    /// Bytes held by live blocks.
    pub live_bytes: usize,
    /// Bytes free for new blocks.
    pub free_bytes: usize,
    /// Number of live blocks.
    pub blocks: usize,
    /// Bytes of live blocks that belong to removed or superseded modules still in their grace period.
    pub awaiting_bytes: usize,
}

/// A snapshot of the heap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct HeapStats {
    /// One entry per mapped generation, in address order.
    pub generations: Vec<GenerationStats>,
    /// Generations unmapped so far.
    pub generations_released: u64,
    /// Bytes of blocks freed so far.
    pub freed_bytes: u64,
    /// Bytes of free pages given back to the OS inside live generations so far.
    pub punched_bytes: u64,
}

impl HeapStats {
    /// Bytes allocated across all generations (live blocks, including those awaiting reclamation).
    pub fn live_bytes(&self) -> usize {
        self.generations.iter().map(|g| g.live_bytes).sum()
    }
}

/// The generational heap (see the module docs). Callers serialize access with a lock.
#[derive(Debug)]
pub struct Heap {
    /// Declared first so it is dropped first: every `.eh_frame` is deregistered before anything is unmapped.
    unwind: UnwindRegistry,
    reservation: Reservation,
    regions: FreeList,
    gens: Slab<Generation>,
    youngest: [Option<usize>; 2],
    released: u64,
    freed: u64,
    punched: u64,
    /// Estimated malloc bytes of the retired modules whose blocks are awaiting reclamation (kept here
    /// because retiring and freeing a module both take the heap's lock anyway).
    pub(crate) awaiting_metadata: usize,
    /// The JIT's reclamation domain, into which replaced unwind objects are retired (set by the JIT that
    /// owns the heap; a heap used on its own registers no unwind information).
    pub(crate) domain: Option<std::sync::Arc<crate::runtime::reclaim::Domain>>,
}

/// `x` rounded up to a multiple of `align` (a power of two or any non-zero granule).
pub(crate) fn align_up(x: usize, align: usize) -> usize {
    x.div_ceil(align) * align
}

fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Code => 0,
        Kind::Data => 1,
    }
}

impl Heap {
    /// Reserves the heap's address range; nothing is committed yet.
    pub fn new() -> io::Result<Heap> {
        let reservation = Reservation::new(PageLen::round_up(HEAP_SPAN))?;
        let regions = FreeList::new(reservation.len(), PAGE);
        Ok(Heap {
            unwind: UnwindRegistry::default(),
            reservation,
            regions,
            gens: Slab::new(),
            youngest: [None, None],
            released: 0,
            freed: 0,
            punched: 0,
            awaiting_metadata: 0,
            domain: None,
        })
    }

    /// The reserved range `[start, end)`.
    pub fn range(&self) -> (usize, usize) {
        (self.reservation.base(), self.reservation.base() + self.reservation.len())
    }

    /// Allocates `len` bytes aligned to `align` (a power of two, at most a page) in a generation of `kind`.
    pub fn alloc(&mut self, kind: Kind, len: usize, align: usize) -> io::Result<Block> {
        assert!(align.is_power_of_two() && align <= PAGE, "alignment {align} unsupported");
        let len = len.max(1).div_ceil(GRANULE) * GRANULE;
        let mut candidates: Vec<usize> =
            self.gens.iter().filter(|(_, g)| g.kind == kind).map(|(i, _)| i).collect();
        // Youngest first: generations are created in increasing slab order only when reused slots are
        // exhausted, so prefer the designated youngest, then the rest.
        if let Some(y) = self.youngest[kind_index(kind)] {
            candidates.retain(|&i| i != y);
            candidates.insert(0, y);
        }
        for gen in candidates {
            if let Some(offset) = self.gens[gen].alloc.alloc(len, align) {
                return Ok(self.make_block(gen, offset, len));
            }
        }
        let gen = self.new_generation(kind, len)?;
        let offset = self.gens[gen].alloc.alloc(len, align).expect("fresh generation fits the block");
        Ok(self.make_block(gen, offset, len))
    }

    fn make_block(&mut self, gen: usize, offset: usize, len: usize) -> Block {
        let g = &mut self.gens[gen];
        g.blocks += 1;
        let addr = g.exec_base(&self.reservation) + offset;
        let write = g.write_base(&self.reservation).offset(offset);
        let len = u32::try_from(len).expect("a block fits the 2 GiB heap");
        Block { addr, write, len, gen: u32::try_from(gen).expect("fewer than 2^32 generations") }
    }

    fn new_generation(&mut self, kind: Kind, min_len: usize) -> io::Result<usize> {
        let len = PageLen::round_up(min_len.max(GENERATION_SIZE));
        let region = self.regions.alloc(len.get(), PAGE).ok_or_else(|| {
            io::Error::new(io::ErrorKind::OutOfMemory, "the JIT's 2 GiB code heap range is full")
        })?;
        let mapping = match kind {
            // SAFETY: `region` was just taken from the reservation's free ranges: no generation lives there.
            Kind::Code => unsafe { self.reservation.map_code(region, len) }.map(Some),
            // SAFETY: as above.
            Kind::Data => unsafe { self.reservation.map_data(region, len) }.map(|_| None),
        };
        let mapping = match mapping {
            Ok(m) => m,
            Err(e) => {
                self.regions.free(region, len.get());
                return Err(e);
            }
        };
        let alloc = FreeList::new(len.get(), GRANULE);
        let gen = self.gens.insert(Generation { kind, region, len, mapping, alloc, blocks: 0, awaiting: 0 });
        self.youngest[kind_index(kind)] = Some(gen);
        Ok(gen)
    }

    /// Registers the `.eh_frame` section at `section`, inside `block`, with the unwinder until the block is
    /// freed (see [`crate::sys::unwind`]). `tag` names who may run the code (a reclamation scope): the
    /// unwind objects that covered it are retired with it.
    ///
    /// # Safety
    /// `section` is a complete, relocated `.eh_frame` section followed by four zero bytes, and `block` holds
    /// all the code its FDEs describe; neither changes until the block is freed.
    pub unsafe fn register_unwind(&mut self, block: &Block, section: usize, tag: u32) {
        assert!(
            (block.addr..block.addr + block.len()).contains(&section),
            "an .eh_frame outside its module's code block"
        );
        // SAFETY: the caller's contract; blocks are disjoint, and `free` removes the section first.
        unsafe { self.unwind.insert(section, tag) }
    }

    /// Unwind objects deregistered since the last call, to be freed after a grace period (see
    /// [`UnwindRegistry::take_retired`]).
    pub fn take_retired_unwind(&mut self) -> Vec<sys::unwind::RetiredObject> {
        self.unwind.take_retired()
    }

    /// `.eh_frame` sections registered, and the libgcc objects they form.
    pub fn unwind_registrations(&self) -> (usize, usize) {
        (self.unwind.sections(), self.unwind.objects())
    }

    /// Counts `block` as awaiting reclamation (its module was retired) until [`free_retired`] frees it.
    ///
    /// [`free_retired`]: Heap::free_retired
    pub fn mark_retired(&mut self, block: &Block) {
        self.gens[block.gen as usize].awaiting += block.len();
    }

    /// Frees a block previously passed to [`mark_retired`](Heap::mark_retired).
    pub fn free_retired(&mut self, block: Block) {
        self.gens[block.gen as usize].awaiting -= block.len();
        self.free(block);
    }

    /// Returns a block.
    ///
    /// Whole free pages around it go back to the OS (hole punched in a code generation's memfd,
    /// `MADV_DONTNEED` in a data generation) and read as zeros; the block's bytes on pages still shared with
    /// live blocks are overwritten: with `int3` in code, so a stale jump traps, and with zeros in data, so
    /// free data memory is always zero (a later block's `.bss` relies on it). An empty generation other than
    /// the youngest of its kind is unmapped.
    pub fn free(&mut self, mut block: Block) {
        let (gen, block_len) = (block.gen as usize, block.len());
        self.freed += block_len as u64;
        // The unwinder must stop reading the block before it is overwritten.
        self.unwind.remove_range(block.addr, block.addr + block_len);
        let offset = block.addr - self.gens[gen].exec_base(&self.reservation);
        let g = &mut self.gens[gen];
        g.alloc.free(offset, block_len);
        g.blocks -= 1;
        let empty = g.alloc.is_empty();
        debug_assert_eq!(empty, g.blocks == 0);
        if empty && !self.youngest.contains(&Some(gen)) {
            self.release_generation(gen);
            return;
        }
        // Whole pages of the merged free range that the block touches.
        let (start, len) = g.alloc.extent(offset).expect("a block just freed is free");
        let lo = (start.div_ceil(PAGE) * PAGE).max(offset / PAGE * PAGE);
        let hi = ((start + len) / PAGE * PAGE).min((offset + block_len).div_ceil(PAGE) * PAGE);
        let fill = if g.kind == Kind::Code { TRAP_BYTE } else { 0 };
        let bytes = block.bytes_mut();
        if lo < hi {
            let (a, b) = (lo.saturating_sub(offset), (hi - offset).min(bytes.len()));
            bytes[..a].fill(fill);
            bytes[b..].fill(fill);
            match &g.mapping {
                Some(m) => {
                    // SAFETY: [lo, hi) are whole pages of the merged free range around the block just freed:
                    // no live block overlaps them, and the block's module was retired after its grace period.
                    if unsafe { m.punch(lo, hi - lo) }.is_err() {
                        bytes[a..b].fill(fill);
                        return;
                    }
                }
                None => {
                    // SAFETY: [lo, hi) are whole pages of this data generation inside its merged free
                    // range, so no live block overlaps them.
                    unsafe { sys::discard_pages(g.exec_base(&self.reservation) + lo, hi - lo) }
                }
            }
            self.punched += (hi - lo) as u64;
        } else {
            bytes.fill(fill);
        }
    }

    fn release_generation(&mut self, gen: usize) {
        let g = self.gens.remove(gen);
        // The writable view goes with the mapping; the executable view goes back to the reservation below.
        drop(g.mapping);
        // SAFETY: the generation is empty (it is released only when its last block was freed).
        unsafe { self.reservation.release(g.region, g.len) }.expect("re-reserving a released generation");
        self.regions.free(g.region, g.len.get());
        self.released += 1;
    }

    /// Memory mappings the heap holds: two views per code generation, one per data generation, and the
    /// `PROT_NONE` pieces of the reservation between generations (an upper bound: the kernel may merge
    /// neighbouring mappings with equal protections).
    pub fn mappings(&self) -> usize {
        let views: usize = self.gens.iter().map(|(_, g)| if g.kind == Kind::Code { 2 } else { 1 }).sum();
        views + self.regions.ranges()
    }

    /// A snapshot of every generation.
    pub fn stats(&self) -> HeapStats {
        let mut generations: Vec<GenerationStats> = self
            .gens
            .iter()
            .map(|(_, g)| GenerationStats {
                kind: g.kind,
                base: g.exec_base(&self.reservation),
                size: g.len.get(),
                live_bytes: g.alloc.capacity() - g.alloc.free_bytes(),
                free_bytes: g.alloc.free_bytes(),
                blocks: g.blocks,
                awaiting_bytes: g.awaiting,
            })
            .collect();
        generations.sort_by_key(|g| g.base);
        HeapStats {
            generations,
            generations_released: self.released,
            freed_bytes: self.freed,
            punched_bytes: self.punched,
        }
    }
}
